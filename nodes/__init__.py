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

from . import host, ids  # noqa: E402
from .faces import AlignFaces, AlignVideo, PasteBack  # noqa: E402
from .loaders import (  # noqa: E402
    LoadArcFace,
    LoadEncoder,
    LoadFaceDetector,
    LoadStyleGAN2,
    LoadStyleModel,
    SaveStyleModel,
)
from .pipeline import (  # noqa: E402
    BuildMixedDataset,
    Finetune,
    InterpolateStyle,
    Invert,
    SampleStyled,
    Stylize,
)
from .toy import LoadToyModel, ToyRender  # noqa: E402

# The node table: id (nodes/ids.py, the contract with saved workflows) -> class.
NODE_CLASS_MAPPINGS: dict[str, type] = {
    ids.LOAD_STYLEGAN2: LoadStyleGAN2,
    ids.LOAD_TOY_MODEL: LoadToyModel,
    ids.LOAD_ENCODER: LoadEncoder,
    ids.LOAD_ARCFACE: LoadArcFace,
    ids.LOAD_FACE_DETECTOR: LoadFaceDetector,
    ids.LOAD_STYLE_MODEL: LoadStyleModel,
    ids.SAVE_STYLE_MODEL: SaveStyleModel,
    ids.ALIGN_FACES: AlignFaces,
    ids.ALIGN_VIDEO: AlignVideo,
    ids.PASTE_BACK: PasteBack,
    ids.INVERT: Invert,
    ids.BUILD_MIXED_DATASET: BuildMixedDataset,
    ids.FINETUNE: Finetune,
    ids.STYLIZE: Stylize,
    ids.INTERPOLATE_STYLE: InterpolateStyle,
    ids.SAMPLE_STYLED: SampleStyled,
    ids.TOY_RENDER: ToyRender,
}
NODE_DISPLAY_NAME_MAPPINGS = {key: cls.DISPLAY for key, cls in NODE_CLASS_MAPPINGS.items()}
NODES: list[type] = list(NODE_CLASS_MAPPINGS.values())

host.register_model_folders()
host.install_example_inputs()
host.load_toy_style_modules()

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "NODES"]
