"""The JoJoGAN nodes (ComfyUI's classic node API). Thin: check inputs, convert, call the core.

IMAGE is ``[B,H,W,3]`` float in [0,1] and MASK ``[B,H,W]``; the core takes ``[B,3,H,W]`` in
[-1,1]: `jojogan.images.comfy_to_core` / `core_to_comfy` convert. Widgets carry the names and
defaults of the core's settings (`FinetuneSettings`, `invert`, `stylize`, `sample`, `align_faces`);
every input has a tooltip and every node a DESCRIPTION. Models wait on the CPU and run on
ComfyUI's device only inside a node's call (`host.on_device`). Node ids: `nodes/ids.py`.

Bad input is a ValueError that starts with the node's display name and names the input the user
sees. ComfyUI's API enforces nothing the frontend shows, so every call first checks its values
against the node's own INPUT_TYPES (`_check_inputs`: types, min/max/step, choices, NaN/inf, file
names inside the model folder, tensors with data, finite codes); nodes with STRING widgets,
which ComfyUI cannot check itself, also do it at queue time (`VALIDATE_INPUTS`). Layer lists go
through `jojogan.mixing.parse_layers`, bounded by the model; batch outputs are checked against
`jojogan.images.check_output_budget` before anything is allocated; any other error reaches
ComfyUI as a ValueError naming the node (`_node_errors`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import math
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
from jojogan import weights
from jojogan.devices import PRECISIONS
from jojogan.images import (
    DEFAULT_MIN_SIDE,
    check_output_budget,
    comfy_to_core,
    core_to_comfy,
    image_grid,
)

from . import host, ids
from . import sockets as S

CATEGORY = "JoJoGAN"
INT_MAX = 2**31 - 1
PREVIEW_EVERY = 25  # steps between live previews in Finetune and optimisation inversion
NOTEBOOK_MEAN_SAMPLES = 10_000  # the notebook's mean_latent(10000), Sample Styled's truncation

# Tooltips shared by several nodes.
_PRECISION = (
    "float32: exact. tf32 (CUDA) and bf16 (autocast) are faster on GPUs with reduced precision "
    "(bf16 moved a fine-tune step's loss ~0.1% and its gradient ~2.5% in our tests)."
)
_MISSING = (
    " Files not in the folder yet are listed too: choosing one tells you where to get it and the "
    "exact download command."
)
_SIZE = "Side of the aligned square crop in px: 1024 for the FFHQ generator, 64 for the toy model."
_MIN_FACE = "Faces smaller than this (shorter side of the detector's box, px) are skipped."
_DETECTOR = (
    "Optional (Load Face Detector). Unconnected: auto = RetinaFace when facexlib and its weights "
    "are installed, else dlib (bundled, offline)."
)
_STYLE_MODEL = "The fine-tuned generator: Finetune's output or Load Style Model."
_LATENT = "Codes of the aligned faces to stylize (Invert)."


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
# What else a node must never hand to ComfyUI raw: turned into a ValueError naming the node (the
# original kept as __cause__). Exceptions of other classes pass through untouched: ComfyUI's
# interrupt, Finetune's cancel.
_UNEXPECTED_ERRORS: tuple[type[BaseException], ...] = (
    LookupError,
    RuntimeError,
    OSError,
    ArithmeticError,
    AttributeError,
    AssertionError,
)
_QUOTE = 40  # characters of a user's value quoted in a message
_MAX_TEXT = 1000  # characters of a STRING widget
# Combo widgets that name a model file: their lists are the folder's files plus the known files
# not there yet, and `host.resolve_model` says what is wrong with a name; here only its form is
# checked (a name inside the model folder).
_FILE_WIDGETS = frozenset({"ckpt_name", "encoder_name", "model_name", "style_name"})
# STRING widgets that list layers (`jojogan.mixing.parse_layers`): checked at queue time against
# any generator's depth, when the node runs against its model's.
_LAYER_WIDGETS = frozenset({"blend_layers", "layers", "feature_layers", "train_layers"})
_WIDGET_TYPES = frozenset({"INT", "FLOAT", "STRING", "BOOLEAN"})
_SOCKET_CLASSES: dict[str, type] = {
    S.GENERATOR: S.GeneratorModel,
    S.DISCRIMINATOR: S.DiscriminatorModel,
    S.ENCODER: S.EncoderModel,
    S.ARCFACE: S.ArcFaceModel,
    S.LATENT: S.Latents,
    S.DATASET: S.MixedDataset,
    S.FACES: S.AlignedFaces,
    S.STYLE_MODEL: S.StyleModelSocket,
    S.FACE_DETECTOR: S.FaceDetectorModel,
}


def _show(value: Any) -> str:
    """A user's value for a message: numbers and text quoted up to 40 characters."""
    if value is None:
        return "nothing"
    if isinstance(value, bool | int | float | str):
        text = repr(value)
        return text[:_QUOTE] + ("..." if len(text) > _QUOTE else "")
    return f"a {type(value).__name__}"


def _check_widget(display: str, name: str, spec: tuple, value: Any) -> Any:
    """One widget value against its own INPUT_TYPES entry (type, min/max/step, combo choices);
    returns it normalised (an integral float as int). Raises ValueError naming node and widget."""
    kind, opts = spec[0], (spec[1] if len(spec) > 1 else {})
    lo, hi = opts.get("min"), opts.get("max")
    span = "" if lo is None or hi is None else f" in {lo}..{hi}"
    if isinstance(kind, list) and name in _FILE_WIDGETS:
        return _check_file_name(display, name, value)
    if isinstance(kind, list):
        if not isinstance(value, str) or value not in kind:
            shown = ", ".join(map(repr, kind[:12])) + (", ..." if len(kind) > 12 else "")
            raise ValueError(f"{display}: '{name}' must be one of {shown}; got {_show(value)}")
        return value
    if kind == "INT":
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            value = int(value)
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or (lo is not None and value < lo)
            or (hi is not None and value > hi)
        ):
            raise ValueError(
                f"{display}: '{name}' must be a whole number{span}, got {_show(value)}"
            )
        step = opts.get("step", 1)
        if step > 1 and lo is not None and lo % step == 0 and value % step:
            raise ValueError(
                f"{display}: '{name}' must be a multiple of {step}{span}, got {_show(value)}"
            )
        return value
    if kind == "FLOAT":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{display}: '{name}' must be a number{span}, got {_show(value)}")
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"{display}: '{name}' must be a finite number{span}, got {value!r}")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise ValueError(f"{display}: '{name}' must be a number{span}, got {_show(value)}")
        return value
    if kind == "BOOLEAN":
        if not isinstance(value, bool):
            raise ValueError(f"{display}: '{name}' must be true or false, got {_show(value)}")
        return value
    if kind == "STRING":
        if not isinstance(value, str):
            raise ValueError(f"{display}: '{name}' must be a text, got {_show(value)}")
        if len(value) > _MAX_TEXT:
            raise ValueError(
                f"{display}: '{name}' is {len(value)} characters long (at most {_MAX_TEXT}): "
                f"{_show(value)}"
            )
        return value
    if kind == "IMAGE":
        return _check_tensor(display, f"input '{name}'", value)
    cls = _SOCKET_CLASSES.get(kind)
    if cls is not None:
        return _check_socket(display, name, _need(display, name, value, cls, kind))
    return value


def _check_file_name(display: str, name: str, value: Any) -> str:
    """A model file name: a name inside the model folder, by the loaders' one rule
    (`jojogan.weights.check_model_name`: no absolute path, no '..', no control character)."""
    try:
        return weights.check_model_name(value)
    except weights.ModelNameError as e:
        raise ValueError(f"{display}: '{name}': {e}") from None


def _check_tensor(display: str, what: str, t: Any) -> Any:
    """A tensor input that carries data: not a meta or sparse tensor; detached (an IMAGE that
    requires grad is used as data, never trained through)."""
    if not isinstance(t, torch.Tensor):
        return t  # the converters name what is wrong
    if t.is_meta or t.layout != torch.strided:
        raise ValueError(
            f"{display}: {what} holds no data (a {'meta' if t.is_meta else 'sparse'} tensor); "
            "connect real images or codes"
        )
    return t.detach()


def _finite_codes(display: str, what: str, t: Any) -> None:
    t = _check_tensor(display, what, t)
    if not isinstance(t, torch.Tensor) or not t.is_floating_point() or t.dim() < 2:
        raise ValueError(f"{display}: {what} must be float codes [B,layers,D], got {_show(t)}")
    if t.shape[0] == 0:
        raise ValueError(f"{display}: {what} holds no codes (an empty batch)")
    if not bool(torch.isfinite(t).all()):
        raise ValueError(
            f"{display}: {what} contains NaN or infinite values; invert the images again"
        )


def _check_socket(display: str, name: str, value: Any) -> Any:
    """Data carried by our sockets: latent codes and paired sets finite, with data."""
    if isinstance(value, S.Latents):
        _finite_codes(display, f"input '{name}'", value.w)
        for c in value.styles or ():
            _finite_codes(display, f"input '{name}'", c[:, None])
    elif isinstance(value, S.MixedDataset):
        _check_socket(display, name, value.latents)
        _check_tensor(display, f"input '{name}'", value.references)
    return value


def _check_inputs(cls: type, values: dict[str, Any], *, at_queue: bool = False) -> dict:
    """Check a node's input values against its own INPUT_TYPES, as the frontend would, and more
    (the API enforces nothing). At queue time (VALIDATE_INPUTS) None is a linked input, not known
    yet, and is skipped. Returns the values normalised."""
    spec = cls.INPUT_TYPES()
    required, optional = spec.get("required", {}), spec.get("optional", {})
    out = dict(values)
    for name, value in values.items():
        entry = required.get(name) or optional.get(name)
        if entry is None:
            continue
        widget = isinstance(entry[0], list) or entry[0] in _WIDGET_TYPES
        if value is None and (at_queue or (name in optional and not widget)):
            continue  # linked (at queue time) or an optional socket left unconnected
        out[name] = _check_widget(cls.DISPLAY, name, entry, value)
        if at_queue and name in _LAYER_WIDGETS:
            jmix.parse_layers(out[name], jmix.MAX_LAYERS, f"{cls.DISPLAY}: '{name}'")
        if name == "filename_prefix":
            out[name] = _check_prefix(cls.DISPLAY, name, out[name])
    return out


def _check_prefix(display: str, name: str, value: str) -> str:
    """A file name prefix inside the model folder, like 'styles/my_style' (normalised; the
    loaders' name rule, `jojogan.weights.check_model_name`)."""
    prefix = value.strip().replace("\\", "/")
    try:
        weights.check_model_name(prefix)
    except weights.ModelNameError as e:
        raise ValueError(
            f"{display}: '{name}' must be a relative name like 'styles/my_style': {e}"
        ) from None
    return prefix


def _queue_check(*names: str) -> classmethod:
    """ComfyUI's VALIDATE_INPUTS for widgets ``names``, so a bad graph fails when it is queued.

    ComfyUI skips its own checks for an input named in VALIDATE_INPUTS's signature, so the
    whole check (`_check_inputs`) runs here. Only STRING widgets are named (layer lists, file
    name prefixes: the values ComfyUI cannot check at all): ComfyUI reports a failed
    VALIDATE_INPUTS against every input it names, so naming numbers too would mark the wrong
    widget red. Numbers keep ComfyUI's own min/max check at queue time; NaN, which passes it,
    is refused when the node runs.
    """

    def VALIDATE_INPUTS(cls, **values: Any) -> bool | str:  # noqa: N802 (ComfyUI's name)
        try:
            _check_inputs(cls, values, at_queue=True)
        except ValueError as e:
            return str(e)
        return True

    P = inspect.Parameter
    VALIDATE_INPUTS.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [P("cls", P.POSITIONAL_OR_KEYWORD)]
        + [P(n, P.POSITIONAL_OR_KEYWORD, default=None) for n in names]
    )
    return classmethod(VALIDATE_INPUTS)


def _unexpected(display: str, e: BaseException) -> ValueError:
    """A ValueError naming the node for an error that is not one of the core's clear ones."""
    if isinstance(e, MemoryError | torch.OutOfMemoryError):
        return ValueError(
            f"{display}: out of memory. Ask for fewer or smaller images (count, size, "
            "batch_size, refs_per_chunk) or free memory, then queue again"
        )
    if isinstance(e, OSError):
        where = f" ({_show(str(e.filename))})" if e.filename else ""
        return ValueError(
            f"{display}: could not read or write a file{where}: {e.strerror or type(e).__name__}"
            "; check the folder, its permissions and the free space"
        )
    text = str(e).splitlines()[0] if str(e) else ""
    text = text[:160] + ("..." if len(text) > 160 else "")
    return ValueError(f"{display}: failed ({type(e).__name__}: {text}); please report this")


def _node_errors(display: str) -> Callable:
    """Check the node's inputs against its INPUT_TYPES (`_check_inputs`), then run it; turn the
    core's clear errors into a ValueError that names the node (no deep traceback) and any other
    error (KeyError, RuntimeError, MemoryError, OSError, ...) into one too (`_unexpected`)."""

    def wrap(fn: Callable) -> Callable:
        sig = inspect.signature(fn)

        @functools.wraps(fn)
        def run(self, *args: Any, **kwargs: Any) -> Any:
            try:
                try:
                    bound = sig.bind(self, *args, **kwargs)
                except TypeError as e:
                    raise ValueError(f"{display}: {e}") from None
                values = dict(bound.arguments)
                values.pop("self")
                return fn(self, **_check_inputs(type(self), values))
            except _EXPECTED_ERRORS as e:
                msg = str(e)
                if msg.startswith(display):
                    raise ValueError(msg) from None
                raise ValueError(f"{display}: {msg}") from None
            except (MemoryError, *_UNEXPECTED_ERRORS) as e:
                raise _unexpected(display, e) from e

        return run

    return wrap


def _need(display: str, name: str, value: Any, kind: type, socket: str) -> Any:
    if not isinstance(value, kind):
        got = "nothing" if value is None else type(value).__name__
        raise ValueError(f"{display}: input '{name}' must be a {socket}, got {got}")
    return value


def _min_reference_side(g: torch.nn.Module) -> int:
    """The smallest reference side Build Mixed Dataset and Finetune take: the images module's
    minimum (`DEFAULT_MIN_SIDE`), or the generator's own size when that is smaller."""
    return min(DEFAULT_MIN_SIDE, int(g.size))


def _min_side(
    display: str, name: str, x: torch.Tensor, side: int, g: torch.nn.Module | None = None
) -> None:
    """Refuse images [B,3,H,W] smaller than ``side`` px a side."""
    if min(x.shape[-2:]) < side:
        crop = "" if g is None else f" (the aligned crop: {g.size} px for this generator)"
        raise ValueError(
            f"{display}: input '{name}' is {x.shape[-2]}x{x.shape[-1]} px; it needs at least "
            f"{side} px a side{crop}"
        )


def _codes_fit(display: str, name: str, lat: S.Latents, g: torch.nn.Module) -> None:
    """Codes made for this generator: [B, n_latent, style_dim]."""
    want = (int(g.n_latent), int(g.style_dim))
    if lat.w.dim() != 3 or tuple(lat.w.shape[1:]) != want:
        raise ValueError(
            f"{display}: input '{name}' holds codes {list(lat.w.shape)} but this {g.size} px "
            f"generator takes [B, {want[0]}, {want[1]}]; invert with the same base generator"
        )


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


def _to(codes: torch.Tensor | list, device: torch.device) -> torch.Tensor | list:
    if isinstance(codes, torch.Tensor):
        return codes.to(device)
    return [c.to(device) for c in codes]


def _load_cached(kind: str, path: Path, load: Callable[[torch.device], Any]) -> Any:
    """Build a model once per file version; it waits on `host.storage_device()` (the CPU inside
    ComfyUI) and each node moves it to the compute device for its call."""
    device = host.storage_device()
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
    """IMAGE -> [B,3,H,W] in [0,1] (what jojogan.faces takes), at least `DEFAULT_MIN_SIDE` px a
    side (the images module's minimum: no face to find in less)."""
    x = (comfy_to_core(t, f"input '{name}'") + 1.0) * 0.5
    if min(x.shape[-2:]) < DEFAULT_MIN_SIDE:
        raise ValueError(
            f"{display}: input '{name}' is {x.shape[-2]}x{x.shape[-1]} px; a photo needs at "
            f"least {DEFAULT_MIN_SIDE} px a side"
        )
    return x


def _out(images: torch.Tensor, name: str = "output") -> torch.Tensor:
    return core_to_comfy(images, name).to(host.offload_device())


def _references(
    display: str, references: Any, latent: Any, g: torch.nn.Module
) -> tuple[torch.Tensor, S.Latents]:
    """The style references (IMAGE -> core images) and their codes, one code per image, made for
    generator ``g``; references at least `_min_reference_side` px."""
    lat = _need(display, "latent", latent, S.Latents, S.LATENT)
    refs = _images(display, "references", references)
    if refs.shape[0] != len(lat):
        raise ValueError(
            f"{display}: {refs.shape[0]} references but {len(lat)} latents; invert the same "
            "references"
        )
    _min_side(display, "references", refs, _min_reference_side(g), g)
    _codes_fit(display, "latent", lat, g)
    return refs, lat


def _preview_every() -> tuple:
    return (
        "INT",
        {
            "default": PREVIEW_EVERY,
            "min": 0,
            "max": 10_000,
            "tooltip": "Show the current result inside the node every N steps (0 = progress bar "
            "only). Each preview costs one generator forward pass.",
        },
    )


# ----------------------------------------------------------------------------------- loaders


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


class LoadToyModel:
    DISPLAY = "JoJoGAN Load Toy Model"
    CATEGORY = f"{CATEGORY}/loaders"
    FUNCTION = "load"
    RETURN_TYPES = (S.GENERATOR, S.DISCRIMINATOR, S.ENCODER)
    RETURN_NAMES = ("generator", "discriminator", "encoder")
    OUTPUT_TOOLTIPS = (
        "The toy-faces generator (64 px).",
        "Its discriminator, for Finetune.",
        "Its encoder, for Invert.",
    )
    DESCRIPTION = (
        "The small toy-faces StyleGAN2, discriminator and encoder shipped inside the pack: the "
        "whole pipeline in a minute on a CPU, no download. Pair it with Toy Render."
    )

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
        from jojogan.encoders import load_encoder

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
        from jojogan.arcface import load_arcface

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


# ----------------------------------------------------------------------------------- faces


class AlignFaces:
    DISPLAY = "JoJoGAN Align Faces"
    CATEGORY = f"{CATEGORY}/faces"
    FUNCTION = "align"
    RETURN_TYPES = ("IMAGE", S.FACES)
    RETURN_NAMES = ("aligned", "faces")
    OUTPUT_TOOLTIPS = (
        "The aligned square crops, for Invert (and as references).",
        "Where each crop came from, for Paste Back.",
    )
    DESCRIPTION = (
        "Detect faces and FFHQ-align them: the crop the generator was trained on. Use it on "
        "style references and on photos alike. Next: Invert."
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "images": ("IMAGE", {"tooltip": "Photos of any size (Load Image)."}),
                "size": (
                    "INT",
                    {"default": 1024, "min": 16, "max": 4096, "step": 8, "tooltip": _SIZE},
                ),
                "which": (
                    ["largest", "all"],
                    {
                        "tooltip": "largest: one face per photo; all: every face found (Paste "
                        "Back puts each one back)."
                    },
                ),
                "min_face": (
                    "FLOAT",
                    {
                        "default": float(jf.DEFAULT_MIN_FACE),
                        "min": 1.0,
                        "max": 4096.0,
                        "tooltip": _MIN_FACE,
                    },
                ),
            },
            "optional": {"detector": (S.FACE_DETECTOR, {"tooltip": _DETECTOR})},
        }

    @_node_errors(DISPLAY)
    def align(self, images, size: int, which: str, min_face: float, detector=None):
        photos = _photos(self.DISPLAY, "images", images)
        det = self._detector(detector)
        faces, index = [], []
        with host.on_device(det), warnings.catch_warnings():
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
    OUTPUT_TOOLTIPS = (
        "One aligned crop per frame, for Invert.",
        "Where each crop came from, for Paste Back.",
    )
    DESCRIPTION = (
        "Align one face per video frame with the landmarks smoothed over time, so the crops do "
        "not jitter. Connect Get Video Components' frames and fps."
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "frames": (
                    "IMAGE",
                    {"tooltip": "The video's frames as one batch (Get Video Components)."},
                ),
                "size": (
                    "INT",
                    {"default": 1024, "min": 16, "max": 4096, "step": 8, "tooltip": _SIZE},
                ),
                "smooth": (
                    "BOOLEAN",
                    {
                        "default": _default(jf.align_video, "smooth"),
                        "tooltip": "Smooth the landmarks over time (a one-euro filter run "
                        "forward and backward); off = each frame aligned on its own.",
                    },
                ),
                "fps": (
                    "FLOAT",
                    {
                        "default": _default(jf.align_video, "fps"),
                        "min": 1.0,
                        "max": 1000.0,
                        "tooltip": "The clip's frame rate (connect Get Video Components' fps): "
                        "the smoothing's cut-offs are in Hz.",
                    },
                ),
                "min_cutoff": (
                    "FLOAT",
                    {
                        "default": _default(jf.align_video, "min_cutoff"),
                        "min": 0.001,
                        "max": 100.0,
                        "tooltip": "Lowest cut-off frequency (Hz): lower = steadier crop, more "
                        "lag on slow moves.",
                    },
                ),
                "beta": (
                    "FLOAT",
                    {
                        "default": _default(jf.align_video, "beta"),
                        "min": 0.0,
                        "max": 1000.0,
                        "tooltip": "How fast the cut-off rises with speed: higher = less lag on "
                        "fast head moves, more jitter.",
                    },
                ),
                "min_face": (
                    "FLOAT",
                    {
                        "default": float(_default(jf.align_video, "min_face")),
                        "min": 1.0,
                        "max": 4096.0,
                        "tooltip": _MIN_FACE,
                    },
                ),
            },
            "optional": {"detector": (S.FACE_DETECTOR, {"tooltip": _DETECTOR})},
        }

    @_node_errors(DISPLAY)
    def align(self, frames, size, smooth, fps, min_cutoff, beta, min_face, detector=None):
        photos = _photos(self.DISPLAY, "frames", frames)
        det = AlignFaces._detector(detector)
        with host.on_device(det), warnings.catch_warnings():
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
    OUTPUT_TOOLTIPS = ("The photos with their faces stylized.", "Where faces were pasted.")
    DESCRIPTION = "Put stylized faces back into the photos (or frames) they were aligned from."

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "images": (
                    "IMAGE",
                    {"tooltip": "The photos or frames the faces were aligned from."},
                ),
                "stylized": (
                    "IMAGE",
                    {"tooltip": "The stylized faces, in the order of 'faces' (Stylize)."},
                ),
                "faces": (
                    S.FACES,
                    {"tooltip": "The 'faces' output of the Align node that made the crops."},
                ),
                "feather": (
                    "FLOAT",
                    {
                        "default": _default(jf.paste_back, "feather"),
                        "min": 0.01,
                        "max": 0.5,
                        "step": 0.01,
                        "tooltip": "Width of the soft edge, as a fraction of the crop: larger "
                        "hides seams, smaller keeps more of the photo.",
                    },
                ),
            }
        }

    @_node_errors(DISPLAY)
    def paste(self, images, stylized, faces, feather):
        aligned = _need(self.DISPLAY, "faces", faces, S.AlignedFaces, S.FACES)
        photos = _photos(self.DISPLAY, "images", images)
        styl = _images(self.DISPLAY, "stylized", stylized)
        _min_side(self.DISPLAY, "stylized", styl, min(DEFAULT_MIN_SIDE, aligned.size))
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
    OUTPUT_TOOLTIPS = (
        "The codes, for Build Mixed Dataset (references) or Stylize (faces).",
        "What the base generator draws from the codes: check the inversion here.",
    )
    DESCRIPTION = (
        "Invert aligned faces into the generator's W+ space (JoJoGAN step 1): encoder "
        "(e4e/ReStyle), optimisation (from the encoder's codes when an encoder is connected; "
        "live preview), the mean code (extreme references), or a blend with it. objective "
        "'edges' matches the image's edges only, for a stylized reference whose colours and "
        "textures no photo face has."
    )
    VALIDATE_INPUTS = _queue_check("blend_layers")

    @classmethod
    def INPUT_TYPES(cls):
        d = functools.partial(_default, jinv.invert)
        return {
            "required": {
                "generator": (S.GENERATOR, {"tooltip": "The base generator to invert into."}),
                "method": (
                    list(jinv.METHODS),
                    {
                        "tooltip": "encoder: e4e/ReStyle, fast (needs 'encoder'). optimize: "
                        "Adam on the codes to match the image (from the encoder's codes when "
                        "one is connected). mean: the mean code, for references that are not "
                        "faces (Sec. 4). blend: the inversion in 'blend_layers', the mean "
                        "code elsewhere (virtual inverter, Sec. 5.1)."
                    },
                ),
                "steps": (
                    "INT",
                    {
                        "default": d("steps"),
                        "min": 1,
                        "max": 100_000,
                        "tooltip": "Optimisation steps (method optimize; blend without an "
                        "encoder).",
                    },
                ),
                "lr": (
                    "FLOAT",
                    {
                        "default": d("lr"),
                        "min": 1e-5,
                        "max": 1.0,
                        "step": 0.001,
                        "tooltip": "Optimisation learning rate (0.01 when refining an "
                        "encoder's codes).",
                    },
                ),
                "seed": (
                    "INT",
                    {
                        "default": d("seed"),
                        "min": 0,
                        "max": INT_MAX,
                        "tooltip": "Seed of the samples behind the mean code (mean, blend, and "
                        "optimisation without an encoder).",
                    },
                ),
                "n_iters": (
                    "INT",
                    {
                        "default": 0,
                        "min": 0,
                        "max": 100,
                        "tooltip": "ReStyle refinement iterations; 0 = its default (5). Leave "
                        "at 0 for e4e.",
                    },
                ),
                "blend_layers": (
                    "STRING",
                    {
                        "default": "",
                        "tooltip": "method blend: the W+ layers that keep the inversion, e.g. "
                        "'0-6' (pose and face shape); the others take the mean code. Leave it "
                        "empty with the other methods (a list there is refused, not ignored).",
                    },
                ),
            },
            "optional": {
                "images": ("IMAGE", {"tooltip": "Aligned faces (Align Faces, Toy Render)."}),
                "encoder": (
                    S.ENCODER,
                    {
                        "tooltip": "Load Encoder, or the toy model's. Needed by method "
                        "encoder; with optimize, the starting point."
                    },
                ),
                "discriminator": (
                    S.DISCRIMINATOR,
                    {
                        "tooltip": "Optional, for optimize with objective pixel: its features "
                        "are matched too (sharper details)."
                    },
                ),
                "objective": (
                    list(jinv.OBJECTIVES),
                    {
                        "tooltip": "What optimisation matches: pixel (colours, plus the "
                        "discriminator's features when connected) or edges (luminance edges "
                        "only: for stylized references)."
                    },
                ),
                "preview_every": _preview_every(),
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
        preview_every=PREVIEW_EVERY,
    ):
        gen = _need(self.DISPLAY, "generator", generator, S.GeneratorModel, S.GENERATOR)
        g = gen.generator
        if images is None and method != "mean":
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
        keep = jmix.parse_layers(blend_layers, int(g.n_latent), f"{self.DISPLAY}: 'blend_layers'")
        mask = None
        if method == "blend":
            if keep is None:
                raise ValueError(
                    f"{self.DISPLAY}: method 'blend' needs 'blend_layers', the W+ layers that "
                    "keep the inversion (e.g. '0-6'); the others take the mean code"
                )
            mask = [1.0 if k in keep else 0.0 for k in range(g.n_latent)]
        elif keep is not None:
            raise ValueError(
                f"{self.DISPLAY}: 'blend_layers' applies to method 'blend' only; clear it or "
                f"choose method 'blend' (method is '{method}')"
            )
        bar = host.Progress(steps if optimise else 1)

        def progress(step, loss):
            host.check_interrupted()
            bar.update(step)

        def preview(step, image):
            bar.update(step, image[:4])

        kwargs: dict[str, Any] = {"encoder": enc, "seed": int(seed), "mean_cache": gen.mean_cache}
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
            if int(preview_every) > 0:
                kwargs.update(preview=preview, preview_every=int(preview_every))
        if mask is not None:
            kwargs["mask"] = mask
        x = None
        if images is not None:
            x = _images(self.DISPLAY, "images", images)
            _min_side(self.DISPLAY, "images", x, _min_reference_side(g), g)
        with host.on_device(g, enc, disc) as device, _training():
            x = None if x is None else _normal(x).to(device)
            if method == "optimize" and enc is not None:
                its = {"n_iters": kwargs.pop("n_iters")} if "n_iters" in kwargs else {}
                init = jinv.invert(x, g, "encoder", encoder=kwargs.pop("encoder"), **its)
                w = jinv.invert(x, g, "optimize", init=init, **kwargs)
            else:
                w = jinv.invert(x, g, method, **kwargs)
            recon = jst.stylize(g, w)
        bar.update(bar.total)
        lat = S.Latents(w.detach().to(host.offload_device()), None, method)
        return (lat, _out(recon, "reconstruction"))


class BuildMixedDataset:
    DISPLAY = "JoJoGAN Build Mixed Dataset"
    CATEGORY = f"{CATEGORY}/pipeline"
    FUNCTION = "build"
    RETURN_TYPES = (S.DATASET, "IMAGE")
    RETURN_NAMES = ("dataset", "preview")
    OUTPUT_TOOLTIPS = (
        "The paired set's recipe, for Finetune.",
        "Mixed codes drawn by the base generator: the faces Finetune will map to the reference.",
    )
    DESCRIPTION = (
        "The paired set of Eq. 1: s_i = M*s + (1-M)*s(FC(z_i)), the reference's code mixed with "
        "random faces' codes. preset: full (takes the reference's colours), preserve_color, the "
        "paper's X and C; custom: 'layers'. Next: Finetune."
    )
    VALIDATE_INPUTS = _queue_check("layers")

    @classmethod
    def INPUT_TYPES(cls):
        d = functools.partial(_default, jft.FinetuneSettings)
        return {
            "required": {
                "generator": (S.GENERATOR, {"tooltip": "The base generator."}),
                "references": (
                    "IMAGE",
                    {"tooltip": "The aligned style reference(s): the images that were inverted."},
                ),
                "latent": (S.LATENT, {"tooltip": "The references' codes (Invert)."}),
                "space": (
                    list(jmix.SPACES),
                    {
                        "tooltip": "w+: mix W+ layers (18 at 1024 px); s: mix S-space "
                        "modulation layers (26 at 1024 px), finer control."
                    },
                ),
                "preset": (
                    [*jmix.PRESETS, "custom"],
                    {
                        "tooltip": "Which layers take random faces' codes (the rest keep the "
                        "reference's): full = the released default, the style's colours too; "
                        "preserve_color = the released colour-keeping mask; X and C = the "
                        "paper's sets (C with Finetune's grayscale); custom = 'layers'."
                    },
                ),
                "layers": (
                    "STRING",
                    {
                        "default": "",
                        "tooltip": "preset custom: the layers that take random faces' codes, "
                        "e.g. '7-17' or '9,11,15,16,17'; the others keep the reference's. Leave "
                        "it empty with the other presets (a list there is refused, not ignored).",
                    },
                ),
                "blend": (
                    "FLOAT",
                    {
                        "default": d("blend"),
                        "min": 0.0,
                        "max": 1.0,
                        "step": 0.05,
                        "tooltip": "How far the mixed layers go to the random faces' codes: 1 "
                        "= fully (the notebook's style strength 1); lower keeps part of the "
                        "reference's code there.",
                    },
                ),
                "preview_count": (
                    "INT",
                    {
                        "default": 4,
                        "min": 0,
                        "max": 64,
                        "tooltip": "How many mixed codes to draw in the preview (0 = none).",
                    },
                ),
                "seed": (
                    "INT",
                    {
                        "default": d("seed"),
                        "min": 0,
                        "max": INT_MAX,
                        "tooltip": "Seed of the preview's random faces (Finetune draws its own "
                        "each step from its seed).",
                    },
                ),
            }
        }

    @_node_errors(DISPLAY)
    def build(
        self, generator, references, latent, space, preset, layers, blend, preview_count, seed
    ):
        g = _need(self.DISPLAY, "generator", generator, S.GeneratorModel, S.GENERATOR).generator
        refs, lat = _references(self.DISPLAY, references, latent, g)
        n_layers = int(g.n_latent) if space == "w+" else len(jmix.style_layer_latents(g))
        custom = jmix.parse_layers(layers, n_layers, f"{self.DISPLAY}: 'layers'")
        if preset == "custom" and custom is None:
            raise ValueError(f"{self.DISPLAY}: preset 'custom' needs 'layers' (e.g. '7-17')")
        if preset != "custom" and custom is not None:
            raise ValueError(
                f"{self.DISPLAY}: 'layers' is used by preset 'custom' only; choose preset "
                f"'custom' to mix these layers, or clear 'layers' (preset is '{preset}')"
            )
        n = int(preview_count)
        if n:
            check_output_budget(
                n, g.size, g.size, what=f"{self.DISPLAY}: 'preview_count' {n} at {g.size} px"
            )
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
        if n == 0:
            prev = torch.zeros(1, g.size, g.size, 3)
            return (ds, prev)
        with host.on_device(g) as device:
            mixed = _mixed_codes(g, lat.w[:1].to(device), space, mask, n, int(seed))
            return (ds, _out(jst.stylize(g, mixed), "preview"))


def _mixed_codes(g, codes, space: str, mask, n: int, seed: int) -> torch.Tensor | list:
    """n codes of Eq. 1 made from the first of ``codes`` (W+) and fresh random faces."""
    rng = torch.Generator().manual_seed(seed)
    codes = jmix.to_style_codes(g, codes[:1]) if space == "s" else codes[:1]
    if isinstance(codes, torch.Tensor):
        base = codes.expand(n, -1, -1)
    else:
        base = [c.expand(n, -1) for c in codes]
    return jmix.mix_codes(base, jmix.sample_random_codes(g, n, rng, space), mask)


class Finetune:
    DISPLAY = "JoJoGAN Finetune"
    CATEGORY = f"{CATEGORY}/pipeline"
    FUNCTION = "finetune"
    RETURN_TYPES = (S.STYLE_MODEL, "IMAGE")
    RETURN_NAMES = ("style_model", "preview")
    OUTPUT_TOOLTIPS = (
        "The fine-tuned generator, for Stylize, Interpolate Style, Sample Styled, Save.",
        "The references' codes drawn by the fine-tuned generator.",
    )
    DESCRIPTION = (
        "Fine-tune a copy of the generator so that G(s_i) ~= the reference (Eq. 2). With "
        "'references' and 'latent' connected it runs the released JoJoGAN notebook's recipe "
        "exactly (steps, strength, preserve_color, seed: the notebook's run after "
        "torch.manual_seed(seed)); with a 'dataset' from Build Mixed Dataset, that node's "
        "paired set (S space, the paper's sets, custom layers). The other widgets (identity "
        "loss, taps, noise, ...) are marked advanced. Shows the current stylization every "
        "'preview_every' steps; Cancel stops it within a step. Next: Stylize."
    )
    VALIDATE_INPUTS = _queue_check("feature_layers", "train_layers")

    @classmethod
    def INPUT_TYPES(cls):
        d = functools.partial(_default, jft.FinetuneSettings)
        rel = jft.FinetuneSettings.released()
        adv = {"advanced": True}
        return {
            "required": {
                "generator": (S.GENERATOR, {"tooltip": "The base generator (a copy is tuned)."}),
                "discriminator": (
                    S.DISCRIMINATOR,
                    {"tooltip": "The base model's discriminator: its frozen features are the loss"},
                ),
                "steps": (
                    "INT",
                    {
                        "default": rel.steps,
                        "min": 1,
                        "max": jft.MAX_STEPS,
                        "tooltip": "Fine-tune steps (the notebook's num_iter, 300); the paper "
                        "uses 200-500. More = stronger style and more of the reference's features.",
                    },
                ),
                "lr": (
                    "FLOAT",
                    {
                        "default": rel.lr,
                        "min": 1e-6,
                        "max": 1.0,
                        "step": 0.0001,
                        "tooltip": "Adam learning rate (the notebook's 2e-3).",
                        **adv,
                    },
                ),
                "grayscale": (
                    "BOOLEAN",
                    {
                        "default": rel.grayscale,
                        "tooltip": "Compare luminance only, so the reference's colours are not "
                        "learnt (with colour-preserving presets such as C). Not in the notebook.",
                        **adv,
                    },
                ),
                "id_weight": (
                    "FLOAT",
                    {
                        "default": rel.id_weight,
                        "min": 0.0,
                        "max": 1e5,
                        "step": 100.0,
                        "tooltip": "Weight of the ArcFace identity loss (2000-5000 in the "
                        "paper); needs the 'arcface' input. 0 = off (the notebook).",
                        **adv,
                    },
                ),
                "feature_layers": (
                    "STRING",
                    {
                        "default": "",
                        "tooltip": "Discriminator taps compared, e.g. '1,3,4,5'; empty = the "
                        "notebook's taps 1,3,4,5 (as far as the discriminator has them).",
                        **adv,
                    },
                ),
                "noise_mode": (
                    list(jft.NOISE_MODES),
                    {
                        "default": rel.noise_mode,
                        "tooltip": "Noise inputs while training: random = fresh noise each step "
                        "(the notebook); const = the stored noise; none = zero.",
                        **adv,
                    },
                ),
                "refs_per_chunk": (
                    "INT",
                    {
                        "default": d("refs_per_chunk"),
                        "min": 1,
                        "max": 64,
                        "tooltip": "References per forward pass: fewer use less memory; the "
                        "result is the same (gradients are accumulated).",
                        **adv,
                    },
                ),
                "seed": (
                    "INT",
                    {
                        "default": d("seed"),
                        "min": 0,
                        "max": INT_MAX,
                        "tooltip": "Seed of the random faces and noise: the notebook's run "
                        "after torch.manual_seed(seed); the same seed gives the same model.",
                    },
                ),
            },
            "optional": {
                "dataset": (
                    S.DATASET,
                    {
                        "tooltip": "Instead of references + latent: a paired set from Build "
                        "Mixed Dataset (S space, the paper's sets, custom layers)."
                    },
                ),
                "arcface": (
                    S.ARCFACE,
                    {"tooltip": "Load ArcFace, for id_weight > 0."},
                ),
                "precision": (
                    list(PRECISIONS),
                    {"default": "float32", "tooltip": _PRECISION, **adv},
                ),
                "train_layers": (
                    "STRING",
                    {
                        "default": "",
                        "tooltip": "S layers whose weights are trained, e.g. '8-13' (the finest "
                        "two resolutions of the 64 px toy model); empty = all (the notebook)",
                        **adv,
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
                        **adv,
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
                        **adv,
                    },
                ),
                "preview_every": _preview_every(),
                "references": (
                    "IMAGE",
                    {"tooltip": "The aligned style reference(s) (the notebook's targets)."},
                ),
                "latent": (
                    S.LATENT,
                    {"tooltip": "Their codes from Invert (the notebook's latents)."},
                ),
                "strength": (
                    "FLOAT",
                    {
                        "default": rel.blend,
                        "min": 0.0,
                        "max": 1.0,
                        "step": 0.05,
                        "tooltip": "The notebook's style strength (its alpha slider): how far "
                        "the mixed layers go to random faces' codes; 1 = fully.",
                    },
                ),
                "preserve_color": (
                    "BOOLEAN",
                    {
                        "default": False,
                        "tooltip": "The notebook's preserve_color: mix only W+ layers "
                        "9,11,15,16,17, so the outputs keep their own colours (1024 px models).",
                    },
                ),
            },
        }

    @_node_errors(DISPLAY)
    def finetune(
        self,
        generator,
        discriminator,
        dataset=None,
        steps=300,
        lr=2e-3,
        grayscale=False,
        id_weight=0.0,
        feature_layers="",
        noise_mode="random",
        refs_per_chunk=4,
        seed=0,
        arcface=None,
        precision="float32",
        train_layers="",
        structure_weight=0.0,
        gram_weight=0.0,
        preview_every=PREVIEW_EVERY,
        references=None,
        latent=None,
        strength=1.0,
        preserve_color=False,
    ):
        gen = _need(self.DISPLAY, "generator", generator, S.GeneratorModel, S.GENERATOR)
        disc = _need(
            self.DISPLAY, "discriminator", discriminator, S.DiscriminatorModel, S.DISCRIMINATOR
        )
        arc = None
        if arcface is not None:
            arc = _need(self.DISPLAY, "arcface", arcface, S.ArcFaceModel, S.ARCFACE).model
        if float(id_weight) > 0 and arc is None:
            raise ValueError(
                f"{self.DISPLAY}: 'id_weight' > 0 needs the 'arcface' input (Load ArcFace with "
                "model_ir_se50.pth), or set id_weight to 0"
            )
        g, d = gen.generator, disc.discriminator
        ds = self._paired_set(dataset, references, latent, strength, preserve_color, g)
        # Everything the widgets set beyond the recipe of the paired set; on the released path,
        # widgets left at their defaults keep the notebook's recipe exactly.
        extra = dict(
            lr=float(lr),
            feature_layers=jmix.parse_layers(
                feature_layers, jft.n_feature_layers(d), f"{self.DISPLAY}: 'feature_layers'"
            ),
            train_layers=jmix.parse_layers(
                train_layers, int(g.n_styles), f"{self.DISPLAY}: 'train_layers'"
            ),
            grayscale=bool(grayscale),
            id_weight=float(id_weight),
            structure_weight=float(structure_weight),
            gram_weight=float(gram_weight),
            noise_mode=noise_mode,
        )
        operational = dict(
            refs_per_chunk=int(refs_per_chunk),
            precision=precision,
            preview_every=int(preview_every),
        )
        try:
            settings = self._settings(ds, dataset is None, steps, strength, preserve_color, seed)
            changed = {k: v for k, v in extra.items() if getattr(settings, k) != v}
            settings = dataclasses.replace(settings, **changed, **operational)
            settings.validate(g, d)
        except ValueError as e:
            # the core names its fields; the user sees widgets (blend is 'strength' here)
            msg = str(e).replace("FinetuneSettings.blend", "'strength'")
            raise ValueError(re.sub(r"FinetuneSettings\.(\w+)", r"'\1'", msg)) from None
        bar = host.Progress(settings.steps)

        def callback(step, loss, preview):
            host.check_interrupted()
            bar.update(step, preview)

        with host.on_device(g, disc.discriminator, arc) as device, _training():
            codes = _to(ds.latents.codes(ds.space), device)
            codes = _normal(codes) if isinstance(codes, torch.Tensor) else list(map(_normal, codes))
            shown = None
            if settings.preview_every:
                # what the node shows while it trains: the reference's code and three random
                # faces mixed with it (Eq. 1), drawn by the generator being tuned
                with torch.no_grad():
                    mixed = _mixed_codes(
                        g, ds.latents.w[:1].to(device), ds.space, settings.mask(g), 3, 1
                    )
                    first = codes[:1] if isinstance(codes, torch.Tensor) else [c[:1] for c in codes]
                    if ds.space == "s":
                        first = jmix.to_style_codes(g, first)
                    if isinstance(mixed, torch.Tensor):
                        shown = torch.cat([first, mixed])
                    else:
                        shown = [torch.cat([a, b]) for a, b in zip(first, mixed, strict=True)]
            result = jft.finetune(
                g,
                disc.discriminator,
                _normal(ds.references.to(device)),
                codes,
                settings,
                arcface=arc,
                callback=callback,
                preview_codes=shown,
            )
            preview = jst.stylize(result.generator, ds.latents.w.to(device))
            result.generator.to(host.storage_device())
        style = jsm.StyleModel(
            result.generator, {"settings": settings.to_dict(), "recipe": settings.recipe()}
        )
        return (S.StyleModelSocket(style, gen, result), _out(preview, "preview"))

    @staticmethod
    def _settings(ds, released, steps, strength, preserve_color, seed) -> jft.FinetuneSettings:
        """The recipe of the paired set, before the other widgets are applied."""
        if released:
            return jft.FinetuneSettings.released(
                int(steps),
                float(strength),
                bool(preserve_color),
                seed=int(seed),
                rng="global",  # the notebook's draws after torch.manual_seed(seed), restored
            )
        # a Build Mixed Dataset paired set: the pack's settings, our own seeded stream (as before
        # the released recipe became the default, so saved workflows keep their results)
        return jft.FinetuneSettings(
            steps=int(steps),
            space=ds.space,
            preset=ds.preset,
            layers=ds.layers,
            blend=float(ds.blend),
            seed=int(seed),
        )

    def _paired_set(self, dataset, references, latent, strength, preserve_color, g):
        """The references and their codes: a Build Mixed Dataset set, or 'references' + 'latent'
        (the released recipe's mixing, from 'strength' and 'preserve_color'), checked against
        generator ``g``."""
        if dataset is not None:
            ds = _need(self.DISPLAY, "dataset", dataset, S.MixedDataset, S.DATASET)
            _codes_fit(self.DISPLAY, "dataset", ds.latents, g)
            if references is not None or latent is not None:
                raise ValueError(
                    f"{self.DISPLAY}: connect either 'dataset' or 'references' + 'latent', not both"
                )
            if float(strength) != 1.0 or bool(preserve_color):
                raise ValueError(
                    f"{self.DISPLAY}: 'strength' and 'preserve_color' apply to 'references' + "
                    "'latent'; with a 'dataset', set its preset and blend on Build Mixed Dataset"
                )
            return ds
        if references is None or latent is None:
            raise ValueError(
                f"{self.DISPLAY}: connect 'references' (the aligned style images) and 'latent' "
                "(their codes from Invert), or a 'dataset' from Build Mixed Dataset"
            )
        refs, lat = _references(self.DISPLAY, references, latent, g)
        if not 0.0 <= float(strength) <= 1.0:
            raise ValueError(f"{self.DISPLAY}: 'strength' must be in [0,1], got {strength!r}")
        preset = "preserve_color" if preserve_color else "full"
        return S.MixedDataset(
            refs.to(host.offload_device()), lat, "w+", preset, None, float(strength)
        )


def _stylize_inputs(extra: dict, optional: dict | None = None) -> dict:
    d = functools.partial(_default, jst.stylize)
    req = {
        "style_model": (S.STYLE_MODEL, {"tooltip": _STYLE_MODEL}),
        "latent": (S.LATENT, {"tooltip": _LATENT}),
        **extra,
        "layer_start": (
            "INT",
            {
                "default": 0,
                "min": 0,
                "max": 64,
                "tooltip": "First synthesis layer that takes the style (0 = from the coarsest).",
            },
        ),
        "layer_end": (
            "INT",
            {
                "default": -1,
                "min": -1,
                "max": 64,
                "tooltip": "Last synthesis layer that takes the style (-1 = the last).",
            },
        ),
        "batch_size": (
            "INT",
            {
                "default": d("batch_size"),
                "min": 1,
                "max": 256,
                "tooltip": "Faces per forward pass: memory against speed; same result.",
            },
        ),
    }
    return {"required": req, **({"optional": optional} if optional else {})}


_INTENSITY = (
    "Style strength by feature interpolation (Sec. 4), no retraining: 0 = the base generator "
    "(the inversion), 1 = the fine-tuned one."
)


class Stylize:
    DISPLAY = "JoJoGAN Stylize"
    CATEGORY = f"{CATEGORY}/pipeline"
    FUNCTION = "stylize"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("images",)
    OUTPUT_TOOLTIPS = ("The stylized faces (aligned crops; Paste Back puts them in the photo).",)
    DESCRIPTION = (
        "G_new(codes) for inverted faces (JoJoGAN step 4). intensity < 1 blends the base and "
        "fine-tuned generators' features per layer (Sec. 4); layer_start/layer_end limit the "
        "style to a range of synthesis layers (-1 = last)."
    )

    @classmethod
    def INPUT_TYPES(cls):
        d = functools.partial(_default, jst.stylize)
        return _stylize_inputs(
            {
                "intensity": (
                    "FLOAT",
                    {
                        "default": d("intensity"),
                        "min": 0.0,
                        "max": 1.0,
                        "step": 0.05,
                        "tooltip": _INTENSITY,
                    },
                ),
                "noise_mode": (
                    ["const", "random", "none"],
                    {
                        "tooltip": "const (default): the stored noise, what the inversion was "
                        "fitted with, the same on every frame of a video; random: the notebook's "
                        "(generator(w, input_is_latent=True)), drawn after "
                        "torch.manual_seed(seed); none: no noise (smoother)."
                    },
                ),
                "seed": (
                    "INT",
                    {
                        "default": d("seed"),
                        "min": 0,
                        "max": INT_MAX,
                        "tooltip": "Seed of the noise when noise_mode is random (the same seed "
                        "gives the same images).",
                    },
                ),
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
        _codes_fit(self.DISPLAY, "latent", lat, tuned)
        layers = _layer_range(int(tuned.n_styles), layer_start, layer_end, self.DISPLAY)
        b, size = len(lat), int(tuned.size)
        check_output_budget(
            b, size, size, what=f"{self.DISPLAY}: {b} faces in 'latent' at {size} px"
        )
        with host.on_device(tuned, sm.base.generator) as device:
            out = jst.stylize(
                tuned,
                lat.w.to(device),
                base=sm.base.generator,
                intensity=float(intensity),
                layers=layers,
                batch_size=int(batch_size),
                noise_mode=noise_mode,
                seed=int(seed),
                rng="global",  # the notebook's draws after torch.manual_seed(seed), restored
                precision=precision,
            )
            return (_out(out, "images"),)


class InterpolateStyle:
    DISPLAY = "JoJoGAN Interpolate Style"
    CATEGORY = f"{CATEGORY}/pipeline"
    FUNCTION = "interpolate"
    RETURN_TYPES = ("IMAGE", "IMAGE")
    RETURN_NAMES = ("images", "grid")
    OUTPUT_TOOLTIPS = (
        "count images per input, input by input (input 1 at every intensity, then input 2...).",
        "One picture: a row per input, a column per intensity (weakest on the left).",
    )
    DESCRIPTION = (
        "An intensity sweep by feature interpolation, no retraining: 'count' intensities from "
        "intensity_from to intensity_to for every input. 'grid' lays them out with one row per "
        "input and one column per intensity."
    )

    @classmethod
    def INPUT_TYPES(cls):
        return _stylize_inputs(
            {
                "intensity_from": (
                    "FLOAT",
                    {
                        "default": 0.0,
                        "min": 0.0,
                        "max": 1.0,
                        "step": 0.05,
                        "tooltip": "First intensity (0 = the base generator). " + _INTENSITY,
                    },
                ),
                "intensity_to": (
                    "FLOAT",
                    {
                        "default": 1.0,
                        "min": 0.0,
                        "max": 1.0,
                        "step": 0.05,
                        "tooltip": "Last intensity (1 = the fine-tuned generator).",
                    },
                ),
                "count": (
                    "INT",
                    {
                        "default": 5,
                        "min": 1,
                        "max": 64,
                        "tooltip": "How many intensities, evenly spaced from first to last.",
                    },
                ),
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
        _codes_fit(self.DISPLAY, "latent", lat, tuned)
        layers = _layer_range(int(tuned.n_styles), layer_start, layer_end, self.DISPLAY)
        n, b, size = int(count), len(lat), int(tuned.size)
        # the images and the grid of the same images
        check_output_budget(
            2 * n * b, size, size, what=f"{self.DISPLAY}: 'count' {n} x {b} faces at {size} px"
        )
        alphas = [
            float(intensity_from)
            + (float(intensity_to) - float(intensity_from)) * k / max(n - 1, 1)
            for k in range(n)
        ]
        with host.on_device(tuned, sm.base.generator) as device:
            codes = lat.w.to(device)
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
        grid = image_grid(out.cpu(), cols=n, pad=max(2, out.shape[-1] // 64), fill=1.0)
        return (_out(out, "images"), _out(grid[None], "grid"))


class SampleStyled:
    DISPLAY = "JoJoGAN Sample Styled"
    CATEGORY = f"{CATEGORY}/pipeline"
    FUNCTION = "sample"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("images",)
    OUTPUT_TOOLTIPS = ("Random faces in the style.",)
    DESCRIPTION = (
        "Random stylized faces from z, as the notebook draws them: generator([z], truncation, "
        "truncation_latent=the base's mean of 10,000 w), z and noise drawn after "
        "torch.manual_seed(seed). What the style does to any face."
    )

    @classmethod
    def INPUT_TYPES(cls):
        d = functools.partial(_default, jst.sample)
        return {
            "required": {
                "style_model": (S.STYLE_MODEL, {"tooltip": _STYLE_MODEL}),
                "count": (
                    "INT",
                    {"default": 4, "min": 1, "max": 256, "tooltip": "How many faces to draw."},
                ),
                "seed": (
                    "INT",
                    {
                        "default": d("seed"),
                        "min": 0,
                        "max": INT_MAX,
                        "tooltip": "Seed of the random faces.",
                    },
                ),
                "truncation": (
                    "FLOAT",
                    {
                        "default": d("truncation"),
                        "min": 0.0,
                        "max": 1.0,
                        "step": 0.05,
                        "tooltip": "Pull toward the average face: 1 = none, lower = more "
                        "typical faces (0.7 is StyleGAN2's usual).",
                    },
                ),
                "intensity": (
                    "FLOAT",
                    {
                        "default": d("intensity"),
                        "min": 0.0,
                        "max": 1.0,
                        "step": 0.05,
                        "tooltip": _INTENSITY,
                    },
                ),
            },
            "optional": {
                "noise_mode": (
                    ["random", "const", "none"],
                    {
                        "default": "random",
                        "tooltip": "random (default): the notebook's samples, noise drawn after "
                        "torch.manual_seed(seed); const: the stored noise; none: no noise.",
                    },
                ),
            },
        }

    @_node_errors(DISPLAY)
    def sample(self, style_model, count, seed, truncation, intensity, noise_mode="random"):
        sm = _need(self.DISPLAY, "style_model", style_model, S.StyleModelSocket, S.STYLE_MODEL)
        base = sm.base
        size = int(sm.generator.size)
        check_output_budget(count, size, size, what=f"{self.DISPLAY}: 'count' {count} at {size} px")
        with host.on_device(sm.generator, base.generator) as device:
            # the notebook's truncation_latent: original_generator.mean_latent(10000), here drawn
            # from its own seed (the notebook's after torch.manual_seed(0)), cached per base
            key = ("mean_latent", NOTEBOOK_MEAN_SAMPLES, 0)
            if key not in base.mean_cache:
                with torch.no_grad():
                    base.mean_cache[key] = base.generator.mean_latent(
                        NOTEBOOK_MEAN_SAMPLES, seed=0
                    ).cpu()
            out = jst.sample(
                sm.generator,
                int(count),
                base=base.generator,
                seed=int(seed),
                rng="global",  # the notebook's draws after torch.manual_seed(seed), restored
                truncation=float(truncation),
                mean_latent=base.mean_cache[key].to(device),
                noise_mode=noise_mode,
                intensity=float(intensity),
            )
            return (_out(out, "images"),)


class ToyRender:
    DISPLAY = "JoJoGAN Toy Render"
    CATEGORY = f"{CATEGORY}/toy"
    FUNCTION = "render"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("images",)
    OUTPUT_TOOLTIPS = ("Toy faces, already aligned: connect them to Invert directly.",)
    DESCRIPTION = (
        "Procedural toy faces (the shipped toy model's domain): 'photo' for inputs, any other "
        "style for a reference. The same seed gives the same identities in every style."
    )

    @classmethod
    def INPUT_TYPES(cls):
        from jojogan.toy import render

        return {
            "required": {
                "style": (
                    render.style_names(),
                    {
                        "tooltip": "photo: what the toy model knows (inputs); any other style "
                        "makes a reference."
                    },
                ),
                "seed": (
                    "INT",
                    {
                        "default": 0,
                        "min": 0,
                        "max": INT_MAX,
                        "tooltip": "Which faces: the same seed gives the same identities in "
                        "every style.",
                    },
                ),
                "count": (
                    "INT",
                    {"default": 1, "min": 1, "max": 256, "tooltip": "How many faces."},
                ),
                "size": (
                    "INT",
                    {
                        "default": 64,
                        "min": 16,
                        "max": 1024,
                        "step": 16,
                        "tooltip": "Side in px; the toy model works at 64.",
                    },
                ),
            }
        }

    @_node_errors(DISPLAY)
    def render(self, style, seed, count, size):
        from jojogan.toy import render

        check_output_budget(
            count, size, size, what=f"{self.DISPLAY}: 'count' {count} at 'size' {size}"
        )
        params = render.sample_params(int(seed), int(count))
        img = torch.from_numpy(render.render_float(params, style, int(size)))
        return (img.to(host.offload_device()),)


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

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "NODES"]
