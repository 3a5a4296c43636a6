"""The StyleGAN2 loader: configs inferred from tensor shapes, strict loading that names every
mismatch, :func:`load_stylegan2`, :func:`load_generator_weights` and :func:`save_stylegan2`."""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..stylegan2 import Discriminator, Generator, channel_table
from .folders import _loader_path
from .layouts import (
    _PARTS,
    LAYOUT_DISCRIMINATOR,
    LAYOUT_GENERATOR,
    LAYOUT_JOJOGAN_STYLE,
    LAYOUT_ROSINALITY,
    LAYOUT_ROSINALITY_TRAINING,
    _keys_summary,
    _unflatten,
    _wrong_layout_message,
    detect_layout,
)
from .reading import CheckpointError, PathLike, _short, check_finite, load_file
from .writing import save_safetensors

# --------------------------------------------------------------------------------------------
# Config inference from shapes
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GeneratorConfig:
    """Constructor arguments of :class:`jojogan.stylegan2.Generator`, inferred from a file.

    ``channels`` maps resolution -> width and is set only when the widths do not follow
    rosinality's table for some ``channel_multiplier``.
    """

    size: int
    style_dim: int = 512
    n_mlp: int = 8
    channel_multiplier: int | None = 2
    channels: dict[int, int] | None = None

    def kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = {"style_dim": self.style_dim, "n_mlp": self.n_mlp}
        if self.channels is not None:
            kw["channels"] = dict(self.channels)
            kw["channel_max"] = max(self.channels.values())
        else:
            kw["channel_multiplier"] = self.channel_multiplier
        return kw

    def describe(self) -> str:
        width = (
            f"channel_multiplier {self.channel_multiplier}"
            if self.channels is None
            else f"channels {self.channels}"
        )
        return f"{self.size} px generator (style_dim {self.style_dim}, n_mlp {self.n_mlp}, {width})"


@dataclass(frozen=True)
class DiscriminatorConfig:
    """Constructor arguments of :class:`jojogan.stylegan2.Discriminator`, inferred from a file."""

    size: int
    channel_multiplier: int | None = 2
    channels: dict[int, int] | None = None

    def kwargs(self) -> dict[str, Any]:
        if self.channels is not None:
            return {"channels": dict(self.channels), "channel_max": max(self.channels.values())}
        return {"channel_multiplier": self.channel_multiplier}

    def describe(self) -> str:
        width = (
            f"channel_multiplier {self.channel_multiplier}"
            if self.channels is None
            else f"channels {self.channels}"
        )
        return f"{self.size} px discriminator ({width})"


def _shape(sd: Mapping[str, torch.Tensor], key: str, p: Path, what: str) -> tuple[int, ...]:
    t = sd.get(key)
    if not isinstance(t, torch.Tensor):
        raise CheckpointError(
            f"{p}: {what}: key '{key}' is missing, so the architecture cannot be inferred "
            f"(keys found: {_keys_summary(sd.keys())}). The file is not a complete StyleGAN2 "
            f"{what} in rosinality's layout."
        )
    return tuple(t.shape)


def _count_indexed(keys: Iterable[str], prefix: str) -> set[int]:
    out = set()
    for k in keys:
        if k.startswith(prefix):
            head = k[len(prefix) :].split(".", 1)[0]
            if head.isdigit():
                out.add(int(head))
    return out


def _match_multiplier(size: int, channels: dict[int, int]) -> int | None:
    """The channel multiplier whose table (rosinality's, as the project's modules build it)
    gives exactly these widths, or None."""
    for m in (2, 1, 4, 8):
        if channel_table(size, m) == channels:
            return m
    return None


def _log2_size(n_blocks: int, p: Path, what: str) -> int:
    size = 2 ** (n_blocks + 2)
    if not 16 <= size <= 1024:
        raise CheckpointError(
            f"{p}: {what}: {n_blocks} resolution blocks found, i.e. {size} px; supported "
            "resolutions are powers of two from 16 to 1024 px."
        )
    return size


def infer_generator_config(
    sd: Mapping[str, torch.Tensor], *, source: PathLike = "<state dict>"
) -> GeneratorConfig:
    """Infer ``size, style_dim, n_mlp`` and channel widths from a generator state dict.

    size: from the number of ``to_rgbs.N`` (``log2(size) - 2`` of them, 8 at 1024 px);
    style_dim: ``style.1.weight``'s input width; n_mlp: the number of ``style.N.weight``;
    widths: ``input.input`` and the first conv of every resolution.
    """
    p = Path(source)
    what = "generator"
    keys = set(sd)
    mlp = sorted(_count_indexed((k for k in keys if k.endswith(".weight")), "style."))
    if not mlp:
        _shape(sd, "style.1.weight", p, what)
    style_dim = _shape(sd, "style.1.weight", p, what)[1]
    n_rgb = _count_indexed(keys, "to_rgbs.")
    n_noise = {int(k.rsplit("_", 1)[1]) for k in keys if k.startswith("noises.noise_")}
    if n_rgb:
        n_blocks = max(n_rgb) + 1
    elif n_noise:
        n_blocks = (max(n_noise)) // 2
    else:
        n_blocks = (max(_count_indexed(keys, "convs."), default=-1) + 1) // 2
    size = _log2_size(n_blocks, p, what)
    channels = {4: _shape(sd, "input.input", p, what)[1]}
    for i in range(n_blocks):
        channels[8 << i] = _shape(sd, f"convs.{2 * i}.conv.weight", p, what)[1]
    mult = _match_multiplier(size, channels)
    return GeneratorConfig(
        size=size,
        style_dim=int(style_dim),
        n_mlp=len(mlp),
        channel_multiplier=mult,
        channels=None if mult is not None else channels,
    )


def infer_discriminator_config(
    sd: Mapping[str, torch.Tensor], *, source: PathLike = "<state dict>"
) -> DiscriminatorConfig:
    """Infer ``size`` and channel widths from a discriminator state dict.

    size: ``convs.0`` is the 1x1 from-RGB layer and ``convs.1..K`` are ``K = log2(size) - 2``
    down-sampling residual blocks; widths from ``convs.0.0.weight`` and each block's conv2.
    """
    p = Path(source)
    what = "discriminator"
    blocks = _count_indexed(sd.keys(), "convs.") - {0}
    size = _log2_size(max(blocks, default=0), p, what)
    channels = {size: _shape(sd, "convs.0.0.weight", p, what)[0]}
    for j in range(1, max(blocks) + 1):
        channels[size >> j] = _shape(sd, f"convs.{j}.conv2.1.weight", p, what)[0]
    channels = dict(sorted(channels.items()))
    mult = _match_multiplier(size, channels)
    return DiscriminatorConfig(
        size=size, channel_multiplier=mult, channels=None if mult is not None else channels
    )


# --------------------------------------------------------------------------------------------
# Strict loading
# --------------------------------------------------------------------------------------------


def _list(items: list[str], n: int = 10) -> str:
    return ", ".join(items[:n]) + (f", ... ({len(items)} in all)" if len(items) > n else "")


def load_state_dict_strict(
    module: nn.Module,
    state_dict: Mapping[str, Any],
    *,
    source: PathLike,
    what: str,
    check_values: bool = True,
) -> None:
    """Load ``state_dict`` into ``module`` with every key and shape matched, or raise ONE error.

    The :class:`CheckpointError` names the file, the part (``what``), the missing keys, the
    unexpected keys and the shape mismatches (lists truncated when long). NaN/inf weights are
    refused before anything is copied (unless ``check_values=False``: the caller already ran
    :func:`check_finite`), so a failed load leaves ``module`` unchanged.
    """
    expected = module.state_dict()
    if not isinstance(state_dict, Mapping):
        raise CheckpointError(
            f"{source}: {what} is a {type(state_dict).__name__}, not a state dict of tensors."
        )
    not_tensor = [k for k, v in state_dict.items() if not isinstance(v, torch.Tensor)]
    missing = [k for k in expected if k not in state_dict]
    unexpected = [str(k) for k in state_dict if k not in expected]
    shapes = [
        f"{k}: file {tuple(state_dict[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if isinstance(state_dict.get(k), torch.Tensor) and state_dict[k].shape != v.shape
    ]
    if missing or unexpected or shapes or not_tensor:
        lines = [f"{source}: {what} does not match the model ({type(module).__name__})."]
        if missing:
            lines.append(f"Missing keys ({len(missing)}): {_list(missing)}.")
        if unexpected:
            lines.append(f"Unexpected keys ({len(unexpected)}): {_list(unexpected)}.")
        if shapes:
            lines.append(f"Shape mismatches ({len(shapes)}): {_list(shapes, 6)}.")
        if not_tensor:
            lines.append(f"Not tensors: {_list(not_tensor)}.")
        lines.append(
            "The file has another architecture or resolution, or is damaged; give the file "
            "that matches this model."
        )
        raise CheckpointError(" ".join(lines))
    if check_values:
        check_finite(state_dict, source=source, what=what)
    try:
        module.load_state_dict(dict(state_dict), strict=True)
    except Exception as e:  # dtype that cannot be cast, etc.
        raise CheckpointError(f"{source}: {what} could not be loaded ({_short(e)}).") from None


# --------------------------------------------------------------------------------------------
# StyleGAN2 checkpoints
# --------------------------------------------------------------------------------------------


@dataclass
class StyleGAN2Checkpoint:
    """A StyleGAN2 checkpoint loaded strictly.

    ``g_ema`` (the averaged generator, used for inference), ``g`` (the training copy) and ``d``
    (the discriminator) are modules or None when the file lacks them. JoJoGAN's fine-tuning needs
    ``d`` (its loss uses the frozen discriminator's features): a ``g_ema``-only file is fine for
    inference but cannot fine-tune. ``latent_avg`` is the mean W code ``[style_dim]`` or None.
    """

    source: Path
    layout: str
    size: int
    config: GeneratorConfig
    g_ema: nn.Module | None = None
    g: nn.Module | None = None
    d: nn.Module | None = None
    latent_avg: torch.Tensor | None = None
    d_config: DiscriminatorConfig | None = None
    args: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def generator(self) -> nn.Module:
        """``g_ema`` when present, else ``g`` (a JoJoGAN style file holds only ``g``)."""
        gen = self.g_ema if self.g_ema is not None else self.g
        assert gen is not None
        return gen


def _generator_parts(p: Path, obj: Any, wanted: str) -> tuple[str, dict[str, Any]]:
    """Split a loaded object into ``{g_ema, g, d, latent_avg, args}`` or raise."""
    obj = _unflatten(obj)
    layout = detect_layout(obj)
    if layout in (LAYOUT_ROSINALITY, LAYOUT_ROSINALITY_TRAINING, LAYOUT_JOJOGAN_STYLE):
        parts = {k: obj[k] for k in (*_PARTS, "latent_avg") if k in obj}
        if "g_ema" not in parts and "g" not in parts:
            raise CheckpointError(_wrong_layout_message(p, LAYOUT_DISCRIMINATOR, obj, wanted))
        args = obj.get("args")
        if isinstance(args, argparse.Namespace):
            parts["args"] = vars(args)
        elif isinstance(args, Mapping):
            parts["args"] = dict(args)
        return layout, parts
    if layout == LAYOUT_GENERATOR:
        return layout, {"g_ema": obj}
    raise CheckpointError(_wrong_layout_message(p, layout, obj, wanted))


def _check_parts_are_state_dicts(p: Path, parts: Mapping[str, Any]) -> None:
    for name in _PARTS:
        sd = parts.get(name)
        if sd is None:
            continue
        bad = [str(k) for k, v in sd.items() if not isinstance(v, torch.Tensor)]
        if bad or not all(isinstance(k, str) for k in sd):
            raise CheckpointError(
                f"{p}: '{name}' is not a state dict of tensors (non-tensor entries: "
                f"{_list(bad)}). The file is not in rosinality's layout."
            )


def _size_error(p: Path, what: str, got: int, want: int) -> CheckpointError:
    example = " (e.g. stylegan2-ffhq-config-f.pt for faces)" if want == 1024 else ""
    return CheckpointError(
        f"{p}: this is a {got} px {what} where a {want} px one is expected. Give a {want} px "
        f"checkpoint{example}, or set the resolution to {got}."
    )


def load_stylegan2(
    path: PathLike,
    *,
    device: str | torch.device = "cpu",
    expect_size: int | None = None,
    parts: Iterable[str] = _PARTS,
) -> StyleGAN2Checkpoint:
    """Load a StyleGAN2 checkpoint in rosinality's layout strictly, inferring its config.

    Accepts ``{g_ema, g, d, latent_avg}`` (any subset, generator required), rosinality training
    checkpoints (``args``, optimiser states and ``ada_aug_p`` are read and ignored; ``args``
    kept as a dict), JoJoGAN style files ``{"g": ...}``, a bare generator state dict, and the
    same flattened as ``.safetensors`` (``g_ema.style.1.weight``, ...). ``parts`` selects which
    of ``g_ema, g, d`` are built (all present ones by default). A bare file name that is not a
    file here (``"stylegan2-ffhq-config-f.pt"``) is looked up in the download folders
    (:func:`jojogan.weights.resolve`).
    """
    p = Path(_loader_path(path))
    parts = (parts,) if isinstance(parts, str) else tuple(parts)
    if not set(parts) <= set(_PARTS):
        raise ValueError(f"load_stylegan2: parts must be among {_PARTS}, got {parts!r}")
    wanted = "a StyleGAN2 generator checkpoint"
    obj = load_file(p, map_location="cpu")
    layout, found = _generator_parts(p, obj, wanted)
    _check_parts_are_state_dicts(p, found)
    selected = [k for k in _PARTS if k in set(parts) and k in found]
    gen_names = [k for k in ("g_ema", "g") if k in found]
    gcfg = infer_generator_config(found[gen_names[0]], source=p)
    for other in gen_names[1:]:
        ocfg = infer_generator_config(found[other], source=p)
        if ocfg != gcfg:
            raise CheckpointError(
                f"{p}: '{gen_names[0]}' ({gcfg.describe()}) and '{other}' ({ocfg.describe()}) "
                "have different architectures; the file is inconsistent."
            )
    if expect_size is not None and gcfg.size != int(expect_size):
        raise _size_error(p, "generator", gcfg.size, int(expect_size))
    dcfg = None
    if "d" in found:
        dcfg = infer_discriminator_config(found["d"], source=p)
        if dcfg.size != gcfg.size:
            raise CheckpointError(
                f"{p}: its discriminator is {dcfg.size} px but its generator is {gcfg.size} px; "
                "the file is inconsistent."
            )
    latent_avg = found.get("latent_avg")
    if latent_avg is not None:
        if not isinstance(latent_avg, torch.Tensor) or latent_avg.shape[-1:] != (gcfg.style_dim,):
            shape = tuple(latent_avg.shape) if isinstance(latent_avg, torch.Tensor) else latent_avg
            raise CheckpointError(
                f"{p}: latent_avg has shape {shape}, expected [{gcfg.style_dim}] (the mean W of "
                "this generator)."
            )
        latent_avg = latent_avg.detach().to(device=device, dtype=torch.float32)
    ckpt = StyleGAN2Checkpoint(
        source=p,
        layout=layout,
        size=gcfg.size,
        config=gcfg,
        latent_avg=latent_avg,
        d_config=dcfg,
        args=found.get("args"),
    )
    for name in selected:
        if name == "d":
            assert dcfg is not None
            module = Discriminator(dcfg.size, **dcfg.kwargs())
        else:
            module = Generator(gcfg.size, **gcfg.kwargs())
        module = module.to(device)
        load_state_dict_strict(module, found[name], source=p, what=f"'{name}'", check_values=False)
        module.eval().requires_grad_(False)
        setattr(ckpt, name, module)
    return ckpt


def load_generator_weights(path: PathLike, generator: nn.Module, *, part: str | None = None) -> str:
    """Load a generator's weights from ``path`` strictly into an existing ``generator``.

    For JoJoGAN style files (``{"g": generator.state_dict()}``, the released styles) and any
    other layout holding a generator (``g_ema`` is preferred over ``g`` unless ``part`` says).
    The file's architecture (inferred from shapes) must equal the given generator's, else a
    :class:`CheckpointError` names both. Returns the layout name.
    """
    p = Path(path)
    obj = load_file(p, map_location="cpu")
    layout, found = _generator_parts(p, obj, "a StyleGAN2 generator")
    _check_parts_are_state_dicts(p, found)
    if part is None:
        part = "g_ema" if "g_ema" in found else "g"
    if part not in found:
        raise CheckpointError(
            f"{p}: has no '{part}' generator (it holds: {_keys_summary(found.keys())})."
        )
    sd = found[part]
    file_cfg = infer_generator_config(sd, source=p)
    model_cfg = infer_generator_config(generator.state_dict(), source="<model>")
    if file_cfg != model_cfg:
        raise CheckpointError(
            f"{p}: holds a {file_cfg.describe()}, but the model is a {model_cfg.describe()}. "
            "The style file was made for another base model; use the base model it was "
            "trained from."
        )
    # load_file refused NaN/inf already
    load_state_dict_strict(generator, sd, source=p, what=f"'{part}'", check_values=False)
    return layout


def save_stylegan2(
    path: PathLike,
    *,
    g_ema: nn.Module | Mapping[str, torch.Tensor] | None = None,
    g: nn.Module | Mapping[str, torch.Tensor] | None = None,
    d: nn.Module | Mapping[str, torch.Tensor] | None = None,
    latent_avg: torch.Tensor | None = None,
    metadata: Mapping[str, str] | None = None,
    inputs: Iterable[PathLike] = (),
) -> None:
    """Save StyleGAN2 parts as one ``.safetensors`` (keys ``g_ema.*``, ``g.*``, ``d.*``,
    ``latent_avg``) atomically; :func:`load_stylegan2` reads it back."""
    flat: dict[str, torch.Tensor] = {}
    for name, part in (("g_ema", g_ema), ("g", g), ("d", d)):
        if part is None:
            continue
        sd = part.state_dict() if isinstance(part, nn.Module) else part
        for k, v in sd.items():
            flat[f"{name}.{k}"] = v
    if not flat:
        raise ValueError("save_stylegan2: give at least one of g_ema, g, d")
    if latent_avg is not None:
        flat["latent_avg"] = latent_avg
    check_finite(flat, source=path, what="the weights to save")
    save_safetensors(flat, path, metadata, inputs=inputs)
