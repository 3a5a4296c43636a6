"""ComfyUI node classes for the JoJoGAN pack (thin adapters over `jojogan`).

The core library is imported as the top-level package ``jojogan`` (its modules import each other
that way), so the pack's folder is put on ``sys.path`` when ``jojogan`` is not importable yet.
Importing this package (inside ComfyUI) registers and creates the ``models/jojogan`` and
``models/facedetection`` folders and copies the pack's example inputs into ComfyUI's input folder
(never over a file of the same name); everywhere it runs the toy style files listed in
``$JOJOGAN_TOY_STYLES`` (`host.load_toy_style_modules`).
"""

import os
import sys

_PACK_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _ensure_core_importable() -> None:
    mod = sys.modules.get("jojogan")
    if mod is not None:
        where = os.path.dirname(os.path.dirname(os.path.abspath(getattr(mod, "__file__", ""))))
        if os.path.realpath(where) != os.path.realpath(_PACK_ROOT):
            import warnings

            warnings.warn(
                f"JoJoGAN nodes: another 'jojogan' package is already imported from {where}; "
                f"this pack's core is in {_PACK_ROOT}",
                stacklevel=2,
            )
        return
    if _PACK_ROOT not in sys.path:
        sys.path.insert(0, _PACK_ROOT)


_ensure_core_importable()

from . import faces, host, loaders, pipeline, toy  # noqa: E402

# The node table, id -> class: the one place the ids are written. A saved workflow (UI and API
# format) names its nodes by these ids, so they are written out, never derived from class names
# (renaming a class keeps its id); never change or remove one, add new ones. Pinned by
# tests/test_nodes.py. ComfyUI lists the nodes in this order.
NODE_CLASS_MAPPINGS: dict[str, type] = {
    "JoJoGAN_LoadStyleGAN2": loaders.LoadStyleGAN2,
    "JoJoGAN_LoadToyModel": toy.LoadToyModel,
    "JoJoGAN_LoadEncoder": loaders.LoadEncoder,
    "JoJoGAN_LoadArcFace": loaders.LoadArcFace,
    "JoJoGAN_LoadFaceDetector": loaders.LoadFaceDetector,
    "JoJoGAN_LoadStyleModel": loaders.LoadStyleModel,
    "JoJoGAN_SaveStyleModel": loaders.SaveStyleModel,
    "JoJoGAN_AlignFaces": faces.AlignFaces,
    "JoJoGAN_AlignVideo": faces.AlignVideo,
    "JoJoGAN_PasteBack": faces.PasteBack,
    "JoJoGAN_Invert": pipeline.Invert,
    "JoJoGAN_BuildMixedDataset": pipeline.BuildMixedDataset,
    "JoJoGAN_Finetune": pipeline.Finetune,
    "JoJoGAN_Stylize": pipeline.Stylize,
    "JoJoGAN_InterpolateStyle": pipeline.InterpolateStyle,
    "JoJoGAN_SampleStyled": pipeline.SampleStyled,
    "JoJoGAN_ToyRender": toy.ToyRender,
}
NODE_DISPLAY_NAME_MAPPINGS = {key: cls.DISPLAY for key, cls in NODE_CLASS_MAPPINGS.items()}

host.register_model_folders()
host.install_example_inputs()
host.load_toy_style_modules()

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
