"""The JoJoGAN nodes (ComfyUI's classic node API). Thin: check inputs, convert, call the core.

IMAGE is ``[B,H,W,3]`` float in [0,1] and MASK ``[B,H,W]``; the core takes ``[B,3,H,W]`` in
[-1,1]: `jojogan.images.comfy_to_core` / `core_to_comfy` convert. Widgets carry the names and
defaults of the core's settings (`FinetuneSettings`, `invert`, `stylize`, `sample`, `align_faces`).
Bad input is a ValueError that starts with the node's display name and names the input.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import re
import warnings
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch

from jojogan import checkpoints as ck
from jojogan import faces as jf
from jojogan import finetune as jft
from jojogan import invert as jinv
from jojogan import mixing as jmix
from jojogan import style_model as jsm
from jojogan import stylize as jst
from jojogan.devices import PRECISIONS
from jojogan.images import comfy_to_core, core_to_comfy

from . import host
from . import sockets as S

_PRECISION = (
    "float32: exact. tf32 (CUDA) and bf16 (autocast) are faster on GPUs with reduced precision "
    "(bf16 moved a fine-tune step's loss ~0.1% and its gradient ~2.5% in our tests)."
)
CATEGORY = "JoJoGAN"
PREFIX = "JoJoGAN_"
INT_MAX = 2**31 - 1


# ------------------------------------------------------------------------------------ helpers


def _default(obj: Any, name: str) -> Any:
    """The default of a dataclass field or a function parameter, so widgets follow the core."""
    if isinstance(obj, type) and hasattr(obj, "__dataclass_fields__"):
        for f in fields(obj):
            if f.name == name:
                return f.default
        raise KeyError(name)
    return inspect.signature(obj).parameters[name].default


_EXPECTED_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,
    TypeError,
    FileNotFoundError,
    jf.DetectorUnavailableError,
    jft.FinetuneDiverged,
)


def _node_errors(display: str) -> Callable:
    """Turn the core's clear errors into a ValueError that names the node (no deep traceback)."""

    def wrap(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def run(self, *args: Any, **kwargs: Any) -> Any:
            try:
                return fn(self, *args, **kwargs)
            except _EXPECTED_ERRORS as e:
                msg = str(e)
                if msg.startswith(display):
                    raise ValueError(msg) from None
                raise ValueError(f"{display}: {msg}") from None

        return run

    return wrap


def _need(display: str, name: str, value: Any, kind: type, socket: str) -> Any:
    if not isinstance(value, kind):
        got = "nothing" if value is None else type(value).__name__
        raise ValueError(f"{display}: input '{name}' must be a {socket}, got {got}")
    return value


def _int_list(display: str, widget: str, text: str) -> tuple[int, ...] | None:
    """ "7-17" or "9,11,15,16,17" (or both) -> indices; "" -> None."""
    text = (text or "").strip()
    if not text:
        return None
    out: list[int] = []
    for part in re.split(r"[,\s]+", text):
        if not part:
            continue
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if m is None:
            raise ValueError(
                f"{display}: '{widget}' must list layer indices like '7-17' or '9,11,15', got "
                f"{text!r}"
            )
        a, b = int(m.group(1)), int(m.group(2) or m.group(1))
        if b < a:
            raise ValueError(f"{display}: '{widget}': range {part!r} runs backwards")
        out.extend(range(a, b + 1))
    return tuple(sorted(set(out)))


def _layer_range(n_layers: int, start: int, end: int, display: str) -> tuple[int, int] | None:
    """Widgets layer_start/layer_end (-1 = last) -> the core's inclusive range, None = all."""
    end = n_layers - 1 if end < 0 else end
    if start == 0 and end == n_layers - 1:
        return None
    if not 0 <= start <= end < n_layers:
        raise ValueError(
            f"{display}: layer_start/layer_end ({start}, {end}) must satisfy 0 <= start <= end "
            f"< {n_layers} (the generator's synthesis layers)"
        )
    return (start, end)


def _to(latents: S.Latents, space: str, device: torch.device) -> torch.Tensor | list:
    codes = latents.codes(space)
    if isinstance(codes, torch.Tensor):
        return codes.to(device)
    return [c.to(device) for c in codes]


def _model_device(m: torch.nn.Module) -> torch.device:
    return next(m.parameters()).device


def _load_cached(kind: str, path: Path, load: Callable[[torch.device], Any]) -> Any:
    device = host.torch_device()
    key = (kind, *host.ModelCache.file_key(path), str(device))

    def build():
        # ComfyUI runs nodes under torch.inference_mode(); weights made there could never take
        # part in Finetune's backward pass, so models are always built outside it.
        with torch.inference_mode(False):
            return load(device)

    return host.CACHE.get(key, build)


@contextlib.contextmanager
def _training():
    """Gradients on, even inside ComfyUI's inference_mode (Finetune, optimisation inversion)."""
    with torch.inference_mode(False), torch.enable_grad():
        yield


def _normal(t: torch.Tensor) -> torch.Tensor:
    """A tensor usable by autograd (ComfyUI hands over inference-mode tensors); call inside
    :func:`_training`."""
    return t.clone() if t.is_inference() else t


def _images(display: str, name: str, t: Any) -> torch.Tensor:
    """IMAGE -> core [B,3,H,W] in [-1,1] (ImageInputError names the input)."""
    return comfy_to_core(t, f"input '{name}'")


def _photos(display: str, name: str, t: Any) -> torch.Tensor:
    """IMAGE -> [B,3,H,W] in [0,1] (what jojogan.faces takes)."""
    return (comfy_to_core(t, f"input '{name}'") + 1.0) * 0.5


def _out(images: torch.Tensor, name: str = "output") -> torch.Tensor:
    return core_to_comfy(images, name).to(host.offload_device())


# ----------------------------------------------------------------------------------- loaders


class LoadStyleGAN2:
    DISPLAY = "JoJoGAN Load StyleGAN2"
    CATEGORY = f"{CATEGORY}/loaders"
    FUNCTION = "load"
    RETURN_TYPES = (S.GENERATOR, S.DISCRIMINATOR)
    RETURN_NAMES = ("generator", "discriminator")
    DESCRIPTION = (
        "A base StyleGAN2 checkpoint (rosinality layout, e.g. stylegan2-ffhq-config-f.pt, or our "
        ".safetensors) from models/jojogan. Fine-tuning needs its discriminator 'd'."
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"ckpt_name": (host.list_models(),)}}

    @_node_errors(DISPLAY)
    def load(self, ckpt_name: str):
        path = host.resolve_model(self.DISPLAY, "ckpt_name", ckpt_name)

        def load(device):
            ck_ = ck.load_stylegan2(path, device=device)
            gen = ck_.g_ema if ck_.g_ema is not None else ck_.g
            g = S.GeneratorModel(gen, ck_.latent_avg, str(path))
            d = S.DiscriminatorModel(ck_.d, str(path)) if ck_.d is not None else None
            return g, d

        return _load_cached("stylegan2", path, load)


class LoadToyModel:
    DISPLAY = "JoJoGAN Load Toy Model"
    CATEGORY = f"{CATEGORY}/loaders"
    FUNCTION = "load"
    RETURN_TYPES = (S.GENERATOR, S.DISCRIMINATOR, S.ENCODER)
    RETURN_NAMES = ("generator", "discriminator", "encoder")
    DESCRIPTION = "The small toy-faces StyleGAN2, discriminator and encoder shipped in the pack."

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}}

    @_node_errors(DISPLAY)
    def load(self):
        from jojogan.__main__ import TOY_FILE, find_toy_dir, load_toy_model

        folder = find_toy_dir()  # the shipped jojogan/toy/weights, or $JOJOGAN_TOY_DIR
        gpath = folder / TOY_FILE

        def load(device):
            g, d, enc, _cfg = load_toy_model(folder, device=device)
            g.requires_grad_(False)
            d.requires_grad_(False)
            gen = S.GeneratorModel(g, None, str(gpath))
            disc = S.DiscriminatorModel(d, str(gpath))
            encoder = None
            if enc is not None:
                enc.requires_grad_(False)
                encoder = S.EncoderModel(enc, str(folder / "toy_encoder.safetensors"))
            return gen, disc, encoder

        return _load_cached("toy", gpath, load)


class LoadEncoder:
    DISPLAY = "JoJoGAN Load Encoder"
    CATEGORY = f"{CATEGORY}/loaders"
    FUNCTION = "load"
    RETURN_TYPES = (S.ENCODER,)
    RETURN_NAMES = ("encoder",)
    DESCRIPTION = "An e4e (e4e_ffhq_encode.pt) or ReStyle-pSp encoder from models/jojogan."

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"encoder_name": (host.list_models(),)}}

    @_node_errors(DISPLAY)
    def load(self, encoder_name: str):
        from jojogan.encoders import load_encoder

        path = host.resolve_model(self.DISPLAY, "encoder_name", encoder_name)
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
    DESCRIPTION = "ArcFace IR-SE50 (model_ir_se50.pth) for Finetune's identity loss."

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model_name": (host.list_models(),)}}

    @_node_errors(DISPLAY)
    def load(self, model_name: str):
        from jojogan.arcface import load_arcface

        path = host.resolve_model(self.DISPLAY, "model_name", model_name)
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
    DESCRIPTION = (
        "dlib (offline, bundled) or RetinaFace (facexlib; detection_Resnet50_Final.pth in "
        "models/facedetection). auto: RetinaFace when available, else dlib."
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"backend": (["auto", "dlib", "retinaface"],)}}

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
    DESCRIPTION = (
        "A style model saved by Save Style Model (.safetensors), or a released JoJoGAN style "
        "(.pt: jojo, disney, arcane_jinx, ...), for the base generator it was made from."
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "generator": (S.GENERATOR,),
                "style_name": (host.list_models(),),
                "check_base": ("BOOLEAN", {"default": True}),
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

        style = host.CACHE.get(key, load)
        return (S.StyleModelSocket(style, base),)


class SaveStyleModel:
    DISPLAY = "JoJoGAN Save Style Model"
    CATEGORY = f"{CATEGORY}/loaders"
    FUNCTION = "save"
    OUTPUT_NODE = True
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("path",)
    DESCRIPTION = (
        "Write the style model as .safetensors (with its settings and base-model identity) into "
        "models/jojogan/<prefix>_00001.safetensors; never overwrites a file."
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "style_model": (S.STYLE_MODEL,),
                "filename_prefix": ("STRING", {"default": "styles/jojogan_style"}),
                "dtype": (["float16", "float32"],),
            }
        }

    @_node_errors(DISPLAY)
    def save(self, style_model, filename_prefix: str, dtype: str):
        sm = _need(self.DISPLAY, "style_model", style_model, S.StyleModelSocket, S.STYLE_MODEL)
        prefix = (filename_prefix or "").strip().replace("\\", "/")
        if not prefix or prefix.startswith("/") or ".." in prefix.split("/"):
            raise ValueError(
                f"{self.DISPLAY}: 'filename_prefix' must be a relative name like "
                f"'styles/my_style', got {filename_prefix!r}"
            )
        root = host.model_dirs(host.FOLDER_MODELS)[0]
        target = None
        for i in range(1, 100_000):
            cand = root / f"{prefix}_{i:05d}.safetensors"
            if not cand.exists():
                target = cand
                break
        assert target is not None
        target.parent.mkdir(parents=True, exist_ok=True)
        tuned = sm.result if sm.result is not None else sm.generator
        jsm.save_style_model(
            target,
            tuned,
            sm.base.generator,
            dtype=torch.float16 if dtype == "float16" else torch.float32,
            inputs=[sm.base.source],
        )
        return {"ui": {"text": [str(target)]}, "result": (str(target),)}


# ----------------------------------------------------------------------------------- faces


class AlignFaces:
    DISPLAY = "JoJoGAN Align Faces"
    CATEGORY = f"{CATEGORY}/faces"
    FUNCTION = "align"
    RETURN_TYPES = ("IMAGE", S.FACES)
    RETURN_NAMES = ("aligned", "faces")
    DESCRIPTION = "Detect faces and FFHQ-align them (the crop the generator expects)."

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "images": ("IMAGE",),
                "size": ("INT", {"default": 1024, "min": 16, "max": 4096, "step": 8}),
                "which": (["largest", "all"],),
                "min_face": (
                    "FLOAT",
                    {"default": float(jf.DEFAULT_MIN_FACE), "min": 1.0, "max": 4096.0},
                ),
            },
            "optional": {"detector": (S.FACE_DETECTOR,)},
        }

    @_node_errors(DISPLAY)
    def align(self, images, size: int, which: str, min_face: float, detector=None):
        photos = _photos(self.DISPLAY, "images", images)
        det = self._detector(detector)
        faces, index = [], []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", jf.FaceNote)
            for i, photo in enumerate(photos):
                found = jf.align_faces(
                    photo,
                    size=int(size),
                    detector=det,
                    which=which,
                    min_face=float(min_face),
                    name=f"images[{i}]",
                )
                faces.extend(found)
                index.extend([i] * len(found))
        crops = torch.stack([f.image for f in faces])
        return (_out(crops, "aligned"), S.AlignedFaces(faces, index, int(size)))

    @staticmethod
    def _detector(detector):
        if detector is None:
            models_dir = host.model_dirs(host.FOLDER_DETECTION)[0]
            return jf.get_detector("auto", models_dir=models_dir)
        return _need(
            "JoJoGAN Align Faces", "detector", detector, S.FaceDetectorModel, S.FACE_DETECTOR
        ).detector


class AlignVideo:
    DISPLAY = "JoJoGAN Align Video"
    CATEGORY = f"{CATEGORY}/faces"
    FUNCTION = "align"
    RETURN_TYPES = ("IMAGE", S.FACES)
    RETURN_NAMES = ("aligned", "faces")
    DESCRIPTION = "One face per frame, landmarks smoothed over time (no crop jitter)."

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "frames": ("IMAGE",),
                "size": ("INT", {"default": 1024, "min": 16, "max": 4096, "step": 8}),
                "smooth": ("BOOLEAN", {"default": _default(jf.align_video, "smooth")}),
                "fps": ("FLOAT", {"default": _default(jf.align_video, "fps"), "min": 1.0}),
                "min_cutoff": (
                    "FLOAT",
                    {"default": _default(jf.align_video, "min_cutoff"), "min": 0.001},
                ),
                "beta": ("FLOAT", {"default": _default(jf.align_video, "beta"), "min": 0.0}),
                "min_face": (
                    "FLOAT",
                    {"default": float(_default(jf.align_video, "min_face")), "min": 1.0},
                ),
            },
            "optional": {"detector": (S.FACE_DETECTOR,)},
        }

    @_node_errors(DISPLAY)
    def align(self, frames, size, smooth, fps, min_cutoff, beta, min_face, detector=None):
        photos = _photos(self.DISPLAY, "frames", frames)
        det = AlignFaces._detector(detector)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", jf.FaceNote)
            faces = jf.align_video(
                photos,
                size=int(size),
                detector=det,
                smooth=bool(smooth),
                fps=float(fps),
                min_cutoff=float(min_cutoff),
                beta=float(beta),
                min_face=float(min_face),
                name="frames",
            )
        crops = torch.stack([f.image for f in faces])
        index = [int(f.index) for f in faces]
        return (_out(crops, "aligned"), S.AlignedFaces(list(faces), index, int(size)))


class PasteBack:
    DISPLAY = "JoJoGAN Paste Back"
    CATEGORY = f"{CATEGORY}/faces"
    FUNCTION = "paste"
    RETURN_TYPES = ("IMAGE", "MASK")
    RETURN_NAMES = ("images", "mask")
    DESCRIPTION = "Put stylized faces back into the photos they were aligned from."

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "images": ("IMAGE",),
                "stylized": ("IMAGE",),
                "faces": (S.FACES,),
                "feather": (
                    "FLOAT",
                    {"default": _default(jf.paste_back, "feather"), "min": 0.01, "max": 0.5},
                ),
            }
        }

    @_node_errors(DISPLAY)
    def paste(self, images, stylized, faces, feather):
        aligned = _need(self.DISPLAY, "faces", faces, S.AlignedFaces, S.FACES)
        photos = _photos(self.DISPLAY, "images", images)
        styl = _images(self.DISPLAY, "stylized", stylized)
        if styl.shape[0] != len(aligned):
            raise ValueError(
                f"{self.DISPLAY}: input 'stylized' has {styl.shape[0]} images but 'faces' has "
                f"{len(aligned)}; stylize the aligned faces of the same Align node"
            )
        if aligned.photo_index and max(aligned.photo_index) >= photos.shape[0]:
            raise ValueError(
                f"{self.DISPLAY}: 'faces' came from {max(aligned.photo_index) + 1} photos but "
                f"'images' has {photos.shape[0]}; connect the photos that were aligned"
            )
        outs, masks = [], []
        for i, photo in enumerate(photos):
            ks = [k for k, j in enumerate(aligned.photo_index) if j == i]
            if not ks:
                outs.append(photo)
                masks.append(torch.zeros(photo.shape[1:], dtype=photo.dtype))
                continue
            img, mask = jf.paste_back(
                photo,
                [aligned.faces[k] for k in ks],
                styl[ks],
                feather=float(feather),
                return_mask=True,
            )
            outs.append(img.cpu())
            masks.append(mask.cpu())
        out = torch.stack(outs).permute(0, 2, 3, 1).clamp(0, 1).contiguous()
        off = host.offload_device()
        return (out.to(off), torch.stack(masks).to(off))


# -------------------------------------------------------------------------------- pipeline


class Invert:
    DISPLAY = "JoJoGAN Invert"
    CATEGORY = f"{CATEGORY}/pipeline"
    FUNCTION = "invert"
    RETURN_TYPES = (S.LATENT, "IMAGE")
    RETURN_NAMES = ("latent", "reconstruction")
    DESCRIPTION = (
        "Invert aligned faces into the generator's W+ space: encoder (e4e/ReStyle), "
        "optimisation (from the encoder's codes when an encoder is connected), the mean code "
        "(extreme references), or a blend with it. objective 'edges': optimisation matches "
        "the image's edges only, for a stylized reference whose colours and textures no "
        "photo face has."
    )

    @classmethod
    def INPUT_TYPES(cls):
        d = functools.partial(_default, jinv.invert)
        return {
            "required": {
                "generator": (S.GENERATOR,),
                "method": (list(jinv.METHODS),),
                "steps": ("INT", {"default": d("steps"), "min": 1, "max": 100_000}),
                "lr": ("FLOAT", {"default": d("lr"), "min": 1e-5, "max": 1.0, "step": 0.001}),
                "seed": ("INT", {"default": d("seed"), "min": 0, "max": INT_MAX}),
                "n_iters": ("INT", {"default": 0, "min": 0, "max": 100}),
                "blend_layers": ("STRING", {"default": ""}),
            },
            "optional": {
                "images": ("IMAGE",),
                "encoder": (S.ENCODER,),
                "discriminator": (S.DISCRIMINATOR,),
                "objective": (list(jinv.OBJECTIVES),),
            },
        }

    @_node_errors(DISPLAY)
    def invert(
        self,
        generator,
        method,
        steps,
        lr,
        seed,
        n_iters,
        blend_layers,
        images=None,
        encoder=None,
        discriminator=None,
        objective="pixel",
    ):
        gen = _need(self.DISPLAY, "generator", generator, S.GeneratorModel, S.GENERATOR)
        g = gen.generator
        device = _model_device(g)
        x = None
        if images is not None:
            x = _images(self.DISPLAY, "images", images).to(device)
        elif method != "mean":
            raise ValueError(f"{self.DISPLAY}: method '{method}' needs the 'images' input")
        enc = None
        uses_encoder = method == "encoder" or (method != "mean" and encoder is not None)
        if uses_encoder:
            enc = _need(self.DISPLAY, "encoder", encoder, S.EncoderModel, S.ENCODER).encoder
        # optimisation runs for "optimize" (from the encoder's codes when one is connected) and
        # for "blend" without an encoder
        optimise = method == "optimize" or (method == "blend" and enc is None)
        if objective != "pixel" and not optimise:
            raise ValueError(
                f"{self.DISPLAY}: objective '{objective}' applies to optimisation; choose "
                "method 'optimize' (connect an encoder to start from its codes)"
            )
        disc = None
        if discriminator is not None and optimise:
            disc = _need(
                self.DISPLAY, "discriminator", discriminator, S.DiscriminatorModel, S.DISCRIMINATOR
            ).discriminator
        mask = None
        if method == "blend":
            keep = _int_list(self.DISPLAY, "blend_layers", blend_layers)
            if keep is None:
                raise ValueError(
                    f"{self.DISPLAY}: method 'blend' needs 'blend_layers', the W+ layers that "
                    "keep the inversion (e.g. '0-6'); the others take the mean code"
                )
            bad = [k for k in keep if k >= g.n_latent]
            if bad:
                raise ValueError(
                    f"{self.DISPLAY}: 'blend_layers' {bad} out of range 0..{g.n_latent - 1}"
                )
            mask = [1.0 if k in keep else 0.0 for k in range(g.n_latent)]
        bar = host.Progress(steps if optimise else 1)

        def progress(step, loss):
            host.check_interrupted()
            bar.update(step)

        kwargs: dict[str, Any] = {
            "encoder": enc,
            "seed": int(seed),
            "mean_cache": gen.mean_cache,
        }
        if enc is not None and n_iters > 0:
            kwargs["n_iters"] = int(n_iters)
        if optimise:
            kwargs.update(
                steps=int(steps),
                lr=float(lr),
                discriminator=disc,
                progress=progress,
                objective=objective,
            )
        if mask is not None:
            kwargs["mask"] = mask
        with _training():
            x = None if x is None else _normal(x)
            if method == "optimize" and enc is not None:
                its = {"n_iters": kwargs.pop("n_iters")} if "n_iters" in kwargs else {}
                init = jinv.invert(x, g, "encoder", encoder=kwargs.pop("encoder"), **its)
                w = jinv.invert(x, g, "optimize", init=init, **kwargs)
            else:
                w = jinv.invert(x, g, method, **kwargs)
        bar.update(bar.total)
        recon = jst.stylize(g, w)
        lat = S.Latents(w.detach().to(host.offload_device()), None, method)
        return (lat, _out(recon, "reconstruction"))


class BuildMixedDataset:
    DISPLAY = "JoJoGAN Build Mixed Dataset"
    CATEGORY = f"{CATEGORY}/pipeline"
    FUNCTION = "build"
    RETURN_TYPES = (S.DATASET, "IMAGE")
    RETURN_NAMES = ("dataset", "preview")
    DESCRIPTION = (
        "The paired set of Eq. 1: s_i = M*s + (1-M)*s(FC(z_i)). preset: full (takes the "
        "reference's colours), preserve_color, the paper's X and C; custom: 'layers'. The "
        "preview shows mixed codes rendered by the base generator."
    )

    @classmethod
    def INPUT_TYPES(cls):
        d = functools.partial(_default, jft.FinetuneSettings)
        return {
            "required": {
                "generator": (S.GENERATOR,),
                "references": ("IMAGE",),
                "latent": (S.LATENT,),
                "space": (list(jmix.SPACES),),
                "preset": ([*jmix.PRESETS, "custom"],),
                "layers": ("STRING", {"default": ""}),
                "blend": ("FLOAT", {"default": d("blend"), "min": 0.0, "max": 1.0, "step": 0.05}),
                "preview_count": ("INT", {"default": 4, "min": 0, "max": 64}),
                "seed": ("INT", {"default": d("seed"), "min": 0, "max": INT_MAX}),
            }
        }

    @_node_errors(DISPLAY)
    def build(
        self, generator, references, latent, space, preset, layers, blend, preview_count, seed
    ):
        gen = _need(self.DISPLAY, "generator", generator, S.GeneratorModel, S.GENERATOR)
        lat = _need(self.DISPLAY, "latent", latent, S.Latents, S.LATENT)
        refs = _images(self.DISPLAY, "references", references)
        if refs.shape[0] != len(lat):
            raise ValueError(
                f"{self.DISPLAY}: {refs.shape[0]} references but {len(lat)} latents; invert the "
                "same references"
            )
        custom = _int_list(self.DISPLAY, "layers", layers)
        if preset == "custom" and custom is None:
            raise ValueError(f"{self.DISPLAY}: preset 'custom' needs 'layers' (e.g. '7-17')")
        g = gen.generator
        settings = jft.FinetuneSettings(
            space=space,
            preset=None if preset == "custom" else preset,
            layers=custom if preset == "custom" else None,
            blend=float(blend),
            seed=int(seed),
        )
        settings.validate()
        mask = settings.mask(g)  # layer ranges checked against this generator
        ds = S.MixedDataset(
            refs.to(host.offload_device()), lat, space, settings.preset, settings.layers, blend
        )
        device = _model_device(g)
        n = int(preview_count)
        if n == 0:
            prev = torch.zeros(1, g.size, g.size, 3)
            return (ds, prev)
        rng = torch.Generator().manual_seed(int(seed))
        codes = jmix.to_style_codes(g, lat.w[:1].to(device)) if space == "s" else lat.w[:1]
        if isinstance(codes, torch.Tensor):
            base = codes.to(device).expand(n, -1, -1)
        else:
            base = [c.to(device).expand(n, -1) for c in codes]
        mixed = jmix.mix_codes(base, jmix.sample_random_codes(g, n, rng, space), mask)
        return (ds, _out(jst.stylize(g, mixed), "preview"))


class Finetune:
    DISPLAY = "JoJoGAN Finetune"
    CATEGORY = f"{CATEGORY}/pipeline"
    FUNCTION = "finetune"
    RETURN_TYPES = (S.STYLE_MODEL, "IMAGE")
    RETURN_NAMES = ("style_model", "preview")
    DESCRIPTION = (
        "Fine-tune a copy of the generator so that G(s_i) ~= the reference (Eq. 2): L1 of the "
        "frozen discriminator's features, optional grayscale and identity (ArcFace) losses. "
        "Shows progress; Cancel stops it within a step."
    )

    @classmethod
    def INPUT_TYPES(cls):
        d = functools.partial(_default, jft.FinetuneSettings)
        return {
            "required": {
                "generator": (S.GENERATOR,),
                "discriminator": (S.DISCRIMINATOR,),
                "dataset": (S.DATASET,),
                "steps": ("INT", {"default": d("steps"), "min": 1, "max": jft.MAX_STEPS}),
                "lr": ("FLOAT", {"default": d("lr"), "min": 1e-6, "max": 1.0, "step": 0.0001}),
                "grayscale": ("BOOLEAN", {"default": d("grayscale")}),
                "id_weight": (
                    "FLOAT",
                    {"default": d("id_weight"), "min": 0.0, "max": 1e5, "step": 100.0},
                ),
                "feature_layers": ("STRING", {"default": ""}),
                "noise_mode": (list(jft.NOISE_MODES),),
                "refs_per_chunk": ("INT", {"default": d("refs_per_chunk"), "min": 1, "max": 64}),
                "seed": ("INT", {"default": d("seed"), "min": 0, "max": INT_MAX}),
            },
            "optional": {
                "arcface": (S.ARCFACE,),
                "precision": (list(PRECISIONS), {"default": "float32", "tooltip": _PRECISION}),
                "train_layers": (
                    "STRING",
                    {
                        "default": "",
                        "tooltip": "S layers whose weights are trained, e.g. '8-13' (the finest "
                        "two resolutions of the 64 px toy model); empty = all (the paper)",
                    },
                ),
                "structure_weight": (
                    "FLOAT",
                    {
                        "default": d("structure_weight"),
                        "min": 0.0,
                        "max": 1e5,
                        "step": 0.05,
                        "tooltip": "random faces keep the edges the base model draws for them "
                        "(less of the reference's outline on other faces); 0 = off (the paper)",
                    },
                ),
                "gram_weight": (
                    "FLOAT",
                    {
                        "default": d("gram_weight"),
                        "min": 0.0,
                        "max": 1e5,
                        "step": 1.0,
                        "tooltip": "random faces take the reference's texture statistics (Gram "
                        "matrices of the discriminator's first layers); 0 = off (the paper)",
                    },
                ),
            },
        }

    @_node_errors(DISPLAY)
    def finetune(
        self,
        generator,
        discriminator,
        dataset,
        steps,
        lr,
        grayscale,
        id_weight,
        feature_layers,
        noise_mode,
        refs_per_chunk,
        seed,
        arcface=None,
        precision="float32",
        train_layers="",
        structure_weight=0.0,
        gram_weight=0.0,
    ):
        gen = _need(self.DISPLAY, "generator", generator, S.GeneratorModel, S.GENERATOR)
        disc = _need(
            self.DISPLAY, "discriminator", discriminator, S.DiscriminatorModel, S.DISCRIMINATOR
        )
        ds = _need(self.DISPLAY, "dataset", dataset, S.MixedDataset, S.DATASET)
        arc = None
        if arcface is not None:
            arc = _need(self.DISPLAY, "arcface", arcface, S.ArcFaceModel, S.ARCFACE).model
        if float(id_weight) > 0 and arc is None:
            raise ValueError(
                f"{self.DISPLAY}: 'id_weight' > 0 needs the 'arcface' input (Load ArcFace with "
                "model_ir_se50.pth), or set id_weight to 0"
            )
        settings = jft.FinetuneSettings(
            steps=int(steps),
            lr=float(lr),
            space=ds.space,
            preset=ds.preset,
            layers=ds.layers,
            blend=float(ds.blend),
            feature_layers=_int_list(self.DISPLAY, "feature_layers", feature_layers),
            train_layers=_int_list(self.DISPLAY, "train_layers", train_layers),
            grayscale=bool(grayscale),
            id_weight=float(id_weight),
            structure_weight=float(structure_weight),
            gram_weight=float(gram_weight),
            refs_per_chunk=int(refs_per_chunk),
            noise_mode=noise_mode,
            seed=int(seed),
            precision=precision,
        )
        g = gen.generator
        device = _model_device(g)
        bar = host.Progress(settings.steps)

        def callback(step, loss, preview):
            host.check_interrupted()
            bar.update(step)

        codes = _to(ds.latents, ds.space, device)
        with _training():
            codes = _normal(codes) if isinstance(codes, torch.Tensor) else list(map(_normal, codes))
            result = jft.finetune(
                g,
                disc.discriminator,
                _normal(ds.references.to(device)),
                codes,
                settings,
                arcface=arc,
                callback=callback,
            )
        style = jsm.StyleModel(result.generator, {"settings": settings.to_dict()})
        preview = jst.stylize(result.generator, ds.latents.w.to(device))
        return (S.StyleModelSocket(style, gen, result), _out(preview, "preview"))


def _stylize_inputs(extra: dict, optional: dict | None = None) -> dict:
    d = functools.partial(_default, jst.stylize)
    req = {
        "style_model": (S.STYLE_MODEL,),
        "latent": (S.LATENT,),
        **extra,
        "layer_start": ("INT", {"default": 0, "min": 0, "max": 64}),
        "layer_end": ("INT", {"default": -1, "min": -1, "max": 64}),
        "batch_size": ("INT", {"default": d("batch_size"), "min": 1, "max": 256}),
    }
    return {"required": req, **({"optional": optional} if optional else {})}


class Stylize:
    DISPLAY = "JoJoGAN Stylize"
    CATEGORY = f"{CATEGORY}/pipeline"
    FUNCTION = "stylize"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("images",)
    DESCRIPTION = (
        "G_new(codes) for inverted faces. intensity < 1 blends the base and fine-tuned "
        "generators' features per layer (Sec. 4); layer_start/layer_end limit the style to a "
        "range of synthesis layers (-1 = last)."
    )

    @classmethod
    def INPUT_TYPES(cls):
        d = functools.partial(_default, jst.stylize)
        return _stylize_inputs(
            {
                "intensity": (
                    "FLOAT",
                    {"default": d("intensity"), "min": 0.0, "max": 1.0, "step": 0.05},
                ),
                "noise_mode": (["const", "random", "none"],),
                "seed": ("INT", {"default": d("seed"), "min": 0, "max": INT_MAX}),
            },
            optional={
                "precision": (list(PRECISIONS), {"default": "float32", "tooltip": _PRECISION})
            },
        )

    @_node_errors(DISPLAY)
    def stylize(
        self,
        style_model,
        latent,
        intensity,
        noise_mode,
        seed,
        layer_start,
        layer_end,
        batch_size,
        precision="float32",
    ):
        sm = _need(self.DISPLAY, "style_model", style_model, S.StyleModelSocket, S.STYLE_MODEL)
        lat = _need(self.DISPLAY, "latent", latent, S.Latents, S.LATENT)
        tuned = sm.generator
        layers = _layer_range(int(tuned.n_styles), layer_start, layer_end, self.DISPLAY)
        out = jst.stylize(
            tuned,
            lat.w.to(_model_device(tuned)),
            base=sm.base.generator,
            intensity=float(intensity),
            layers=layers,
            batch_size=int(batch_size),
            noise_mode=noise_mode,
            seed=int(seed),
            precision=precision,
        )
        return (_out(out, "images"),)


class InterpolateStyle:
    DISPLAY = "JoJoGAN Interpolate Style"
    CATEGORY = f"{CATEGORY}/pipeline"
    FUNCTION = "interpolate"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("images",)
    DESCRIPTION = (
        "An intensity sweep by feature interpolation, no retraining: 'count' images per input "
        "from intensity_from to intensity_to (input-major order)."
    )

    @classmethod
    def INPUT_TYPES(cls):
        return _stylize_inputs(
            {
                "intensity_from": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.05}),
                "intensity_to": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.05}),
                "count": ("INT", {"default": 5, "min": 1, "max": 64}),
            }
        )

    @_node_errors(DISPLAY)
    def interpolate(
        self,
        style_model,
        latent,
        intensity_from,
        intensity_to,
        count,
        layer_start,
        layer_end,
        batch_size,
    ):
        sm = _need(self.DISPLAY, "style_model", style_model, S.StyleModelSocket, S.STYLE_MODEL)
        lat = _need(self.DISPLAY, "latent", latent, S.Latents, S.LATENT)
        tuned = sm.generator
        layers = _layer_range(int(tuned.n_styles), layer_start, layer_end, self.DISPLAY)
        codes = lat.w.to(_model_device(tuned))
        n = int(count)
        alphas = [
            float(intensity_from)
            + (float(intensity_to) - float(intensity_from)) * k / max(n - 1, 1)
            for k in range(n)
        ]
        per_alpha = [
            jst.stylize(
                tuned,
                codes,
                base=sm.base.generator,
                intensity=a,
                layers=layers,
                batch_size=int(batch_size),
            )
            for a in alphas
        ]
        out = torch.stack(per_alpha, dim=1).flatten(0, 1)  # [B*count,3,H,W], input-major
        return (_out(out, "images"),)


class SampleStyled:
    DISPLAY = "JoJoGAN Sample Styled"
    CATEGORY = f"{CATEGORY}/pipeline"
    FUNCTION = "sample"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("images",)
    DESCRIPTION = "Random stylized faces from z (truncation toward the mean W)."

    @classmethod
    def INPUT_TYPES(cls):
        d = functools.partial(_default, jst.sample)
        return {
            "required": {
                "style_model": (S.STYLE_MODEL,),
                "count": ("INT", {"default": 4, "min": 1, "max": 256}),
                "seed": ("INT", {"default": d("seed"), "min": 0, "max": INT_MAX}),
                "truncation": (
                    "FLOAT",
                    {"default": d("truncation"), "min": 0.0, "max": 1.0, "step": 0.05},
                ),
                "intensity": (
                    "FLOAT",
                    {"default": d("intensity"), "min": 0.0, "max": 1.0, "step": 0.05},
                ),
            }
        }

    @_node_errors(DISPLAY)
    def sample(self, style_model, count, seed, truncation, intensity):
        sm = _need(self.DISPLAY, "style_model", style_model, S.StyleModelSocket, S.STYLE_MODEL)
        out = jst.sample(
            sm.generator,
            int(count),
            base=sm.base.generator,
            seed=int(seed),
            truncation=float(truncation),
            intensity=float(intensity),
        )
        return (_out(out, "images"),)


class ToyRender:
    DISPLAY = "JoJoGAN Toy Render"
    CATEGORY = f"{CATEGORY}/toy"
    FUNCTION = "render"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("images",)
    DESCRIPTION = (
        "Procedural toy faces (the shipped toy model's domain): 'photo' for inputs, any other "
        "style for a reference. The same seed gives the same identities in every style."
    )

    @classmethod
    def INPUT_TYPES(cls):
        from jojogan.toy import render

        return {
            "required": {
                "style": (render.style_names(),),
                "seed": ("INT", {"default": 0, "min": 0, "max": INT_MAX}),
                "count": ("INT", {"default": 1, "min": 1, "max": 256}),
                "size": ("INT", {"default": 64, "min": 16, "max": 1024, "step": 16}),
            }
        }

    @_node_errors(DISPLAY)
    def render(self, style, seed, count, size):
        from jojogan.toy import render

        params = render.sample_params(int(seed), int(count))
        img = torch.from_numpy(render.render_float(params, style, int(size)))
        return (img.to(host.offload_device()),)


NODES: list[type] = [
    LoadStyleGAN2,
    LoadToyModel,
    LoadEncoder,
    LoadArcFace,
    LoadFaceDetector,
    LoadStyleModel,
    SaveStyleModel,
    AlignFaces,
    AlignVideo,
    PasteBack,
    Invert,
    BuildMixedDataset,
    Finetune,
    Stylize,
    InterpolateStyle,
    SampleStyled,
    ToyRender,
]

NODE_CLASS_MAPPINGS = {PREFIX + cls.__name__: cls for cls in NODES}
NODE_DISPLAY_NAME_MAPPINGS = {PREFIX + cls.__name__: cls.DISPLAY for cls in NODES}

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "NODES"]
