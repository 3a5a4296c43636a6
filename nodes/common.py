"""The node machinery every JoJoGAN node shares (ComfyUI's classic node API).

IMAGE is ``[B,H,W,3]`` float in [0,1] and MASK ``[B,H,W]``; the core takes ``[B,3,H,W]`` in
[-1,1]: `jojogan.images.comfy_to_core` / `core_to_comfy` convert (`_images`, `_out`). Widgets carry
the names and defaults of the core's settings (`_default`); every input has a tooltip and every
node a DESCRIPTION. Models wait on the CPU and run on ComfyUI's device only inside a node's call
(`host.on_device`); loaders build each model once per file version (`_load_cached`).

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

import functools
import inspect
import math
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch

from jojogan import faces as jf
from jojogan import finetune as jft
from jojogan import mixing as jmix
from jojogan import weights
from jojogan.images import comfy_to_core, core_to_comfy

from . import host
from . import sockets as S

CATEGORY = "JoJoGAN"


INT_MAX = 2**31 - 1


# Tooltips shared by several nodes.


_STYLE_MODEL = "The fine-tuned generator: Finetune's output or Load Style Model."


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
    error (KeyError, RuntimeError, MemoryError, OSError, ...) into one too (`_unexpected`).

    A function that takes its widgets as ``**widgets`` (their names spelled once, in
    INPUT_TYPES) gets every declared widget, those not given at their INPUT_TYPES default, and
    no undeclared name."""

    def wrap(fn: Callable) -> Callable:
        sig = inspect.signature(fn)
        var = [p.name for p in sig.parameters.values() if p.kind is p.VAR_KEYWORD]

        @functools.wraps(fn)
        def run(self, *args: Any, **kwargs: Any) -> Any:
            try:
                try:
                    bound = sig.bind(self, *args, **kwargs)
                except TypeError as e:
                    raise ValueError(f"{display}: {e}") from None
                values = dict(bound.arguments)
                values.pop("self")
                if var:
                    given = values.pop(var[0], {})
                    values.update(_widgets(type(self), given, set(sig.parameters)))
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


def _widgets(cls: type, given: dict[str, Any], named: set[str]) -> dict[str, Any]:
    """The values a node's ``**widgets`` takes: ``given``, and every other widget of its
    INPUT_TYPES that is not one of the function's ``named`` parameters at its default (a combo
    at its first choice, as ComfyUI does)."""
    spec = cls.INPUT_TYPES()
    declared = {**spec.get("optional", {}), **spec.get("required", {})}
    declared = {k: v for k, v in declared.items() if k not in named}
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise ValueError(f"{cls.DISPLAY}: no input named {_show(unknown[0])}")
    out = {}
    for name, entry in declared.items():
        kind, opts = entry[0], (entry[1] if len(entry) > 1 else {})
        if name in given:
            out[name] = given[name]
        elif isinstance(kind, list):
            out[name] = opts.get("default", kind[0] if kind else None)
        elif kind in _WIDGET_TYPES:
            out[name] = opts.get("default")
    return out


def _need(display: str, name: str, value: Any, kind: type, socket: str) -> Any:
    if not isinstance(value, kind):
        got = "nothing" if value is None else type(value).__name__
        raise ValueError(f"{display}: input '{name}' must be a {socket}, got {got}")
    return value


def _optional(display: str, name: str, value: Any, kind: type, socket: str, part: str) -> Any:
    """An optional socket's model (its field ``part``), or None when it is not connected."""
    return None if value is None else getattr(_need(display, name, value, kind, socket), part)


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


def _images(display: str, name: str, t: Any) -> torch.Tensor:
    """IMAGE -> core [B,3,H,W] in [-1,1] (ImageInputError names the input)."""
    return comfy_to_core(t, f"input '{name}'")


def _out(images: torch.Tensor, name: str = "output") -> torch.Tensor:
    return core_to_comfy(images, name).to(host.offload_device())
