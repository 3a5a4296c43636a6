"""Loader nodes: the base StyleGAN2, encoders, ArcFace, the face detector, and style models (load
and save). Each resolves a name inside its model folder (`host.resolve_model`) and builds the model
once per file version (`common._load_cached`)."""

from __future__ import annotations

import contextlib

import torch

from jojogan import checkpoints as ck
from jojogan import faces as jf
from jojogan import style_model as jsm
from jojogan.arcface import load_arcface
from jojogan.encoders import load_encoder

from . import host
from . import sockets as S
from .common import _STYLE_MODEL, CATEGORY, _load_cached, _need, _node_errors, _queue_check, _show

_MISSING = (
    " Files not in the folder yet are listed too: choosing one tells you where to get it and the "
    "exact download command."
)


@contextlib.contextmanager
def _reading(display: str, widget: str):
    """An error while reading a model file names the widget that chose it."""
    try:
        yield
    except ValueError as e:
        msg = str(e)
        if msg.startswith(display):
            raise
        raise ValueError(f"{display}: '{widget}': {msg}") from None


class LoadStyleGAN2:
    DISPLAY = "JoJoGAN Load StyleGAN2"
    CATEGORY = f"{CATEGORY}/loaders"
    FUNCTION = "load"
    RETURN_TYPES = (S.GENERATOR, S.DISCRIMINATOR)
    RETURN_NAMES = ("generator", "discriminator")
    OUTPUT_TOOLTIPS = (
        "The base generator (g_ema), frozen.",
        "Its discriminator (d): Finetune's loss. Missing from g_ema-only files.",
    )
    DESCRIPTION = (
        "Load a base StyleGAN2 from models/jojogan: stylegan2-ffhq-config-f.pt (rosinality "
        "layout; `python -m jojogan download stylegan2-ffhq-config-f.pt`) or a .safetensors "
        "written by this pack. Fine-tuning needs the file's discriminator 'd'. Next: Invert."
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "ckpt_name": (
                    host.list_models("stylegan2"),
                    {
                        "tooltip": "Base StyleGAN2 checkpoint in models/jojogan (with g_ema and "
                        "d)." + _MISSING
                    },
                )
            }
        }

    @_node_errors(DISPLAY)
    def load(self, ckpt_name: str):
        path = host.resolve_model(self.DISPLAY, "ckpt_name", ckpt_name)

        def load(device):
            ck_ = ck.load_stylegan2(path, device=device)
            gen = ck_.g_ema if ck_.g_ema is not None else ck_.g
            g = S.GeneratorModel(gen, ck_.latent_avg, str(path))
            d = S.DiscriminatorModel(ck_.d, str(path)) if ck_.d is not None else None
            return g, d

        with _reading(self.DISPLAY, "ckpt_name"):
            return _load_cached("stylegan2", path, load)


class LoadEncoder:
    DISPLAY = "JoJoGAN Load Encoder"
    CATEGORY = f"{CATEGORY}/loaders"
    FUNCTION = "load"
    RETURN_TYPES = (S.ENCODER,)
    RETURN_NAMES = ("encoder",)
    OUTPUT_TOOLTIPS = ("The encoder, for Invert (method encoder, or optimize's start).",)
    DESCRIPTION = (
        "Load an e4e (e4e_ffhq_encode.pt) or ReStyle-pSp (restyle_psp_ffhq_encode.pt) encoder "
        "from models/jojogan; the kind is read from the file. Next: Invert."
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "encoder_name": (
                    host.list_models("encoder"),
                    {"tooltip": "e4e or ReStyle encoder file in models/jojogan." + _MISSING},
                )
            }
        }

    @_node_errors(DISPLAY)
    def load(self, encoder_name: str):
        path = host.resolve_model(self.DISPLAY, "encoder_name", encoder_name)
        with _reading(self.DISPLAY, "encoder_name"):
            return (
                _load_cached(
                    "encoder",
                    path,
                    lambda device: S.EncoderModel(load_encoder(path, device=device), str(path)),
                ),
            )


class LoadArcFace:
    DISPLAY = "JoJoGAN Load ArcFace"
    CATEGORY = f"{CATEGORY}/loaders"
    FUNCTION = "load"
    RETURN_TYPES = (S.ARCFACE,)
    RETURN_NAMES = ("arcface",)
    OUTPUT_TOOLTIPS = ("ArcFace, for Finetune's identity loss (id_weight > 0).",)
    DESCRIPTION = (
        "Load ArcFace IR-SE50 (model_ir_se50.pth) from models/jojogan for Finetune's identity "
        "loss, which keeps the input's identity in colour-preserving styles."
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model_name": (
                    host.list_models("arcface"),
                    {"tooltip": "ArcFace IR-SE50 file in models/jojogan." + _MISSING},
                )
            }
        }

    @_node_errors(DISPLAY)
    def load(self, model_name: str):
        path = host.resolve_model(self.DISPLAY, "model_name", model_name)
        with _reading(self.DISPLAY, "model_name"):
            return (
                _load_cached(
                    "arcface",
                    path,
                    lambda device: S.ArcFaceModel(load_arcface(path, device=device), str(path)),
                ),
            )


class LoadFaceDetector:
    DISPLAY = "JoJoGAN Load Face Detector"
    CATEGORY = f"{CATEGORY}/loaders"
    FUNCTION = "load"
    RETURN_TYPES = (S.FACE_DETECTOR,)
    RETURN_NAMES = ("detector",)
    OUTPUT_TOOLTIPS = ("The face detector, for Align Faces / Align Video.",)
    DESCRIPTION = (
        "Choose the face detector of the Align nodes: dlib (bundled, offline) or RetinaFace "
        "(pip install facexlib, and detection_Resnet50_Final.pth in models/facedetection)."
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "backend": (
                    list(jf.DETECTORS),
                    {
                        "tooltip": "auto: RetinaFace when facexlib and its weights are "
                        "installed, else dlib. dlib: bundled, offline, detects as the FFHQ / "
                        "JoJoGAN recipe does (the released pipeline's crops). dlib-fast: 2.5-4x "
                        "faster on big photos, crops a little off the recipe's. retinaface: "
                        "better on small or turned faces, fast on a GPU."
                    },
                )
            }
        }

    @_node_errors(DISPLAY)
    def load(self, backend: str):
        models_dir = host.model_dirs(host.FOLDER_DETECTION)[0]
        det = jf.get_detector(backend, models_dir=models_dir)
        return (S.FaceDetectorModel(det, getattr(det, "name", backend)),)


class LoadStyleModel:
    DISPLAY = "JoJoGAN Load Style Model"
    CATEGORY = f"{CATEGORY}/loaders"
    FUNCTION = "load"
    RETURN_TYPES = (S.STYLE_MODEL,)
    RETURN_NAMES = ("style_model",)
    OUTPUT_TOOLTIPS = ("The fine-tuned generator, for Stylize, Interpolate Style, Sample.",)
    DESCRIPTION = (
        "Load a style model saved by Save Style Model (.safetensors), or a released JoJoGAN "
        "style (jojo.pt, disney.pt, arcane_jinx.pt, ...), for the base generator it was made "
        "from. Next: Stylize."
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "generator": (
                    S.GENERATOR,
                    {"tooltip": "The base generator the style was fine-tuned from."},
                ),
                "style_name": (
                    host.list_models("style"),
                    {"tooltip": "Style model file in models/jojogan." + _MISSING},
                ),
                "check_base": (
                    "BOOLEAN",
                    {
                        "default": True,
                        "tooltip": "Refuse a style model made from another base generator "
                        "(our .safetensors record the base's identity; released .pt styles do "
                        "not).",
                    },
                ),
            }
        }

    @_node_errors(DISPLAY)
    def load(self, generator, style_name: str, check_base: bool):
        base = _need(self.DISPLAY, "generator", generator, S.GeneratorModel, S.GENERATOR)
        path = host.resolve_model(self.DISPLAY, "style_name", style_name)
        key = ("style", *host.ModelCache.file_key(path), id(base.generator), bool(check_base))

        def load():
            with torch.inference_mode(False):
                return jsm.load_style_model(path, base.generator, check_base=check_base)

        with _reading(self.DISPLAY, "style_name"):
            style = host.CACHE.get(key, load)
        return (S.StyleModelSocket(style, base),)


class SaveStyleModel:
    DISPLAY = "JoJoGAN Save Style Model"
    CATEGORY = f"{CATEGORY}/loaders"
    FUNCTION = "save"
    OUTPUT_NODE = True
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("path",)
    OUTPUT_TOOLTIPS = ("Where the file was written.",)
    DESCRIPTION = (
        "Write the style model as .safetensors (with its settings and base-model identity) into "
        "models/jojogan/<prefix>_00001.safetensors; never overwrites a file. Load it again with "
        "Load Style Model."
    )
    VALIDATE_INPUTS = _queue_check("filename_prefix")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "style_model": (S.STYLE_MODEL, {"tooltip": _STYLE_MODEL}),
                "filename_prefix": (
                    "STRING",
                    {
                        "default": "styles/jojogan_style",
                        "tooltip": "Name inside models/jojogan; a counter and .safetensors are "
                        "added (styles/jojogan_style_00001.safetensors).",
                    },
                ),
                "dtype": (
                    ["float16", "float32", "same as model"],
                    {
                        "tooltip": "float16 halves the file with no visible change; float32 "
                        "keeps float32 weights exactly; 'same as model' keeps the dtype the "
                        "weights have (bfloat16 stays bfloat16)."
                    },
                ),
            }
        }

    @_node_errors(DISPLAY)
    def save(self, style_model, filename_prefix: str, dtype: str):
        sm = _need(self.DISPLAY, "style_model", style_model, S.StyleModelSocket, S.STYLE_MODEL)
        prefix = filename_prefix  # checked and normalised by _check_inputs
        target = host.output_model_path(self.DISPLAY, "filename_prefix", prefix)
        tuned = sm.result if sm.result is not None else sm.generator
        try:
            jsm.save_style_model(
                target,
                tuned,
                sm.base.generator,
                dtype={"float16": torch.float16, "float32": torch.float32}.get(dtype),
                inputs=[sm.base.source],
            )
        except OSError as e:
            raise ValueError(
                f"{self.DISPLAY}: 'filename_prefix' {_show(prefix)}: cannot write "
                f"{_show(target.name)} there ({e.strerror or type(e).__name__}); choose another "
                "name or folder"
            ) from e
        return {"ui": {"text": [str(target)]}, "result": (str(target),)}
