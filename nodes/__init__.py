"""ComfyUI node classes for the JoJoGAN pack (thin adapters over `jojogan`).

One module per category of nodes (`loaders`, `faces`, `pipeline`, `toy`), what they share in
`common`, the node table below. The core library is the top-level package ``jojogan`` (inside
ComfyUI, the pack's root ``__init__.py`` makes it importable). Importing this package (inside
ComfyUI) registers and creates the ``models/jojogan`` and ``models/facedetection`` folders and
copies the pack's example inputs into ComfyUI's input folder (never over a file of the same
name); everywhere it runs the toy style files listed in ``$JOJOGAN_TOY_STYLES``
(`host.load_toy_style_modules`).
"""

from . import faces, host, loaders, pipeline, toy

# The node table, id -> class: the one place the ids are written. A saved workflow (UI and API
# format) names its nodes by these ids, so they are written out, never derived from class names
# (renaming a class keeps its id); never change or remove one, add new ones. Pinned by
# tests/test_nodes.py.
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
