"""Node ids: the public contract with every saved workflow (UI and API format name nodes by id).

One constant per node, written out rather than derived from class names, so that renaming a class
never breaks a user's workflow. Never change or remove an id; add new ones. Pinned by
tests/test_nodes.py.
"""

LOAD_STYLEGAN2 = "JoJoGAN_LoadStyleGAN2"
LOAD_TOY_MODEL = "JoJoGAN_LoadToyModel"
LOAD_ENCODER = "JoJoGAN_LoadEncoder"
LOAD_ARCFACE = "JoJoGAN_LoadArcFace"
LOAD_FACE_DETECTOR = "JoJoGAN_LoadFaceDetector"
LOAD_STYLE_MODEL = "JoJoGAN_LoadStyleModel"
SAVE_STYLE_MODEL = "JoJoGAN_SaveStyleModel"
ALIGN_FACES = "JoJoGAN_AlignFaces"
ALIGN_VIDEO = "JoJoGAN_AlignVideo"
PASTE_BACK = "JoJoGAN_PasteBack"
INVERT = "JoJoGAN_Invert"
BUILD_MIXED_DATASET = "JoJoGAN_BuildMixedDataset"
FINETUNE = "JoJoGAN_Finetune"
STYLIZE = "JoJoGAN_Stylize"
INTERPOLATE_STYLE = "JoJoGAN_InterpolateStyle"
SAMPLE_STYLED = "JoJoGAN_SampleStyled"
TOY_RENDER = "JoJoGAN_ToyRender"
