"""Stylize with a fine-tuned generator, with the style's intensity chosen at inference time.

JoJoGAN step 4 (Chong & Forsyth 2022): the stylized image is G_new(s(T(u))) for an input u
inverted to its code. Intensity by feature interpolation (Sec. 4): every synthesis layer l is run
in both generators on the same input and the features are blended,

    f_l = (1 - a_l) * f_l^orig + a_l * f_l^new,

and f_l feeds the next layer of both. a = 0 everywhere is the base generator, a = 1 the
fine-tuned one (both exactly: those cases run one generator alone); a per-layer range applies
the style to some layers only (e.g. a on the fine layers, 0 elsewhere). No retraining.

Layers are the n_styles synthesis layers of S space (order conv1, to_rgb1, convs[0], convs[1],
to_rgbs[0], ...; 26 at 1024 px). The constant input belongs to layer 0; a ToRGB layer's feature is
its running RGB skip image.

The released notebook (`stylize.ipynb`, "Generate results") renders with random noise:
``generator(my_w, input_is_latent=True)`` and ``generator([z], truncation=0.7,
truncation_latent=mean_latent)`` after ``torch.manual_seed(seed)``. ``noise_mode="random",
rng="global"`` follows it draw for draw (z on the generator's device, then one noise map per
layer for the whole batch); ``seed=None`` takes the global generators as they stand, an integer
seeds them for the call only (`jojogan.finetune.global_rng`: the global RNG is left as it was).
``rng="local"`` (default) draws from our own `torch.Generator(seed)` on the CPU. Either way the
noise is drawn once for the whole call, so ``batch_size`` never changes the images.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from . import ops
from .devices import PRECISIONS
from .devices import precision as _precision
from .finetune import global_rng

__all__ = ["layer_intensities", "sample", "stylize"]

Codes = Tensor | Sequence[Tensor]
NOISE_MODES = ("const", "random", "none")
RNGS = ("local", "global")


def layer_intensities(
    n_layers: int,
    intensity: float | Sequence[float] = 1.0,
    layers: tuple[int, int] | Sequence[int] | None = None,
) -> list[float]:
    """Per-layer weights a_l (length ``n_layers``) from a scalar or a list, and an optional
    inclusive range ``layers=(i, j)`` (or an explicit list of layer indices) outside which a = 0
    (the base generator's features). Raises ValueError for values outside [0,1] or bad layers."""
    if isinstance(intensity, int | float) and not isinstance(intensity, bool):
        a = [float(intensity)] * n_layers
    else:
        a = [float(x) for x in intensity]
        if len(a) != n_layers:
            raise ValueError(
                f"stylize: intensity list needs one value per synthesis layer ({n_layers}), "
                f"got {len(a)}"
            )
    if any(not math.isfinite(x) or x < 0 or x > 1 for x in a):
        raise ValueError(f"stylize: intensity must be in [0,1], got {intensity!r}")
    if layers is not None:
        idx = list(layers)
        if isinstance(layers, tuple) and len(idx) == 2:
            i, j = int(idx[0]), int(idx[1])
            if not (0 <= i <= j < n_layers):
                raise ValueError(
                    f"stylize: layer range {layers} must satisfy 0 <= i <= j < {n_layers}"
                )
            chosen = set(range(i, j + 1))
        else:
            chosen = {int(k) for k in idx}
            if not chosen or any(k < 0 or k >= n_layers for k in chosen):
                raise ValueError(f"stylize: layers {idx} out of range 0..{n_layers - 1}")
        a = [x if k in chosen else 0.0 for k, x in enumerate(a)]
    return a


def _styles(g: nn.Module, codes: Codes) -> list[Tensor]:
    if isinstance(codes, Tensor):
        return g.styles(codes)
    return list(codes)


def _noises(g: nn.Module, mode: str) -> list[Tensor | None]:
    """The stored noise ("const") or none; random noise comes from `Generator.random_noise`."""
    if mode == "const":
        return [getattr(g.noises, f"noise_{i}") for i in range(g.num_layers)]
    return [None] * g.num_layers


def _check_rng(who: str, noise_mode: str, seed: int | None, rng: str) -> None:
    if noise_mode not in NOISE_MODES:
        raise ValueError(f"{who}: noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
    if rng not in RNGS:
        raise ValueError(f"{who}: rng must be one of {RNGS}, got {rng!r}")
    if seed is None and rng != "global":
        raise ValueError(
            f"{who}: seed=None draws from torch's global generator and needs rng='global'; "
            "give an integer seed for our own stream"
        )
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ValueError(f"{who}: seed must be an integer or None, got {seed!r}")


def _lerp(a: float, f0, f1) -> Tensor:
    if a <= 0.0:
        return f0()
    if a >= 1.0:
        return f1()
    return (1.0 - a) * f0() + a * f1()


def _blended(
    g0: nn.Module,
    g1: nn.Module,
    s0: list[Tensor],
    s1: list[Tensor],
    a: list[float],
    noise_mode: str,
    noise: list[Tensor] | None,
) -> Tensor:
    """Feature-interpolated synthesis (Sec. 4) for one batch; random ``noise`` is shared."""
    b = s0[0].shape[0]
    n0 = noise if noise is not None else _noises(g0, noise_mode)
    n1 = noise if noise is not None else _noises(g1, noise_mode)
    x = _lerp(a[0], lambda: g0.input(b), lambda: g1.input(b))
    x = _lerp(
        a[0],
        lambda: g0.conv1(x, noise=n0[0], s=s0[0]),
        lambda: g1.conv1(x, noise=n1[0], s=s1[0]),
    )
    skip = _lerp(a[1], lambda: g0.to_rgb1(x, s=s0[1]), lambda: g1.to_rgb1(x, s=s1[1]))
    for k in range(len(g0.to_rgbs)):
        for j in (0, 1):
            li, ni, c = 2 + 3 * k + j, 1 + 2 * k + j, 2 * k + j
            x = _lerp(
                a[li],
                lambda c=c, li=li, ni=ni, x=x: g0.convs[c](x, noise=n0[ni], s=s0[li]),
                lambda c=c, li=li, ni=ni, x=x: g1.convs[c](x, noise=n1[ni], s=s1[li]),
            )
        li = 4 + 3 * k
        skip = _lerp(
            a[li],
            lambda k=k, li=li, x=x, skip=skip: g0.to_rgbs[k](x, skip=skip, s=s0[li]),
            lambda k=k, li=li, x=x, skip=skip: g1.to_rgbs[k](x, skip=skip, s=s1[li]),
        )
    return skip.contiguous()


def _batches(codes: Codes, batch_size: int):
    n = codes.shape[0] if isinstance(codes, Tensor) else codes[0].shape[0]
    for i in range(0, n, batch_size):
        if isinstance(codes, Tensor):
            yield codes[i : i + batch_size]
        else:
            yield [c[i : i + batch_size] for c in codes]


@torch.no_grad()
def stylize(
    tuned: nn.Module,
    codes: Codes,
    *,
    base: nn.Module | None = None,
    intensity: float | Sequence[float] = 1.0,
    layers: tuple[int, int] | Sequence[int] | None = None,
    batch_size: int = 8,
    noise_mode: str = "const",
    seed: int | None = 0,
    rng: str = "local",
    precision: str = "float32",
    channels_last: bool | None = None,
) -> Tensor:
    """Stylized images [B,3,H,W] (about [-1,1]) for inverted codes (W+ [B,n_latent,D] or S codes,
    a list of [B,C_l]); ``intensity``/``layers`` as in :func:`layer_intensities` (needs ``base``
    unless the intensity is 1 on every layer). Runs in batches of ``batch_size``.

    noise_mode: "const" (the stored noise, repeatable), "random" or "none". Random noise is
    drawn once for all B images (batch_size does not change them): rng "local" from
    `torch.Generator(seed)`; rng "global" from torch's global generator on the device, as
    ``generator(codes, input_is_latent=True)`` (the released notebook) draws it, seeded with
    ``seed`` for this call only (None: the global stream as it stands).

    precision: "float32" (exact), "tf32" or "bf16" (`jojogan.devices.precision`); the images
    come back in float32 either way. channels_last: NHWC activations for one-image batches
    (None: on for CPU)."""
    if batch_size < 1:
        raise ValueError(f"stylize: batch_size must be >= 1, got {batch_size}")
    if precision not in PRECISIONS:
        raise ValueError(f"stylize: precision must be one of {PRECISIONS}, got {precision!r}")
    _check_rng("stylize", noise_mode, seed, rng)
    noise = None
    if noise_mode == "random":
        like = codes if isinstance(codes, Tensor) else codes[0]
        with global_rng(seed if rng == "global" else None, like.device):
            gen = None if rng == "global" else torch.Generator().manual_seed(int(seed))
            noise = tuned.random_noise(like.shape[0], like, gen)
    args = (intensity, layers, batch_size, noise_mode, noise)
    return _render(tuned, codes, base, *args, precision, channels_last)


def _render(
    tuned: nn.Module,
    codes: Codes,
    base: nn.Module | None,
    intensity: float | Sequence[float],
    layers: tuple[int, int] | Sequence[int] | None,
    batch_size: int,
    noise_mode: str,
    noise: list[Tensor] | None,
    precision: str = "float32",
    channels_last: bool | None = None,
) -> Tensor:
    dev = tuned.input.input.device
    nhwc = dev.type == "cpu" if channels_last is None else bool(channels_last)
    with ops.channels_last(nhwc), _precision(dev, precision):
        out = _stylize(tuned, codes, base, intensity, layers, batch_size, noise_mode, noise)
    return out.float().contiguous()


def _stylize(
    tuned: nn.Module,
    codes: Codes,
    base: nn.Module | None,
    intensity: float | Sequence[float],
    layers: tuple[int, int] | Sequence[int] | None,
    batch_size: int,
    noise_mode: str,
    noise: list[Tensor] | None,
) -> Tensor:
    n_layers = int(tuned.n_styles)
    a = layer_intensities(n_layers, intensity, layers)
    if isinstance(codes, Tensor):
        if codes.ndim != 3 or codes.shape[1:] != (tuned.n_latent, tuned.style_dim):
            raise ValueError(
                f"stylize: W+ codes must be [B,{tuned.n_latent},{tuned.style_dim}], got "
                f"{list(codes.shape)}"
            )
    elif len(codes) != n_layers:
        raise ValueError(f"stylize: S codes must be a list of {n_layers} tensors")
    if any(x < 1.0 for x in a):
        if base is None:
            raise ValueError("stylize: intensity below 1 needs the base generator (base=...)")
        if base.n_styles != n_layers or base.size != tuned.size:
            raise ValueError("stylize: base and tuned generators have different architectures")
    out = []
    start = 0
    for part in _batches(codes, batch_size):
        b = part.shape[0] if isinstance(part, Tensor) else part[0].shape[0]
        nz = None if noise is None else [x[start : start + b] for x in noise]
        start += b
        if all(x >= 1.0 for x in a):
            out.append(tuned.synthesis_from_styles(_styles(tuned, part), noise_mode, nz))
        elif all(x <= 0.0 for x in a):
            out.append(base.synthesis_from_styles(_styles(base, part), noise_mode, nz))
        else:
            out.append(
                _blended(base, tuned, _styles(base, part), _styles(tuned, part), a, noise_mode, nz)
            )
    return torch.cat(out)


@torch.no_grad()
def sample(
    tuned: nn.Module,
    n: int,
    *,
    base: nn.Module | None = None,
    seed: int | None = 0,
    rng: str = "local",
    truncation: float = 0.7,
    mean_latent: Tensor | None = None,
    noise_mode: str = "const",
    intensity: float | Sequence[float] = 1.0,
    layers: tuple[int, int] | Sequence[int] | None = None,
    batch_size: int = 8,
) -> Tensor:
    """Random stylized samples [n,3,H,W] from z ~ N(0,I) through the tuned generator's mapping
    with truncation psi toward ``mean_latent`` (default: the base's, or the tuned one's, mean of
    4096 w; the released notebook uses ``original_generator.mean_latent(10000)``, drawn from its
    global stream: ``base.mean_latent(10000, seed=s)`` is that after ``torch.manual_seed(s)`` on
    the CPU).

    rng "local": z (then random noise) from `torch.Generator(seed)` on the CPU. rng "global": the
    released notebook's draws, ``z = torch.randn(n, D, device=device)`` then one noise map per
    layer (``noise_mode="random"``), from torch's global generators seeded with ``seed`` for
    this call only (None: as they stand); with ``noise_mode="random"`` that is
    ``generator([z], truncation=..., truncation_latent=mean_latent)``."""
    if n < 1:
        raise ValueError(f"sample: n must be >= 1, got {n}")
    if not 0.0 <= truncation <= 1.0:
        raise ValueError(f"sample: truncation must be in [0,1], got {truncation}")
    _check_rng("sample", noise_mode, seed, rng)
    ref = tuned.input.input
    if truncation != 1.0 and mean_latent is None:
        mean_latent = (base if base is not None else tuned).mean_latent(4096, seed=0)
    with global_rng(seed if rng == "global" else None, ref.device):
        gen = None if rng == "global" else torch.Generator().manual_seed(int(seed))
        if gen is None:
            z = torch.randn(n, tuned.style_dim, device=ref.device).to(ref)
        else:
            z = torch.randn(n, tuned.style_dim, generator=gen).to(ref)
        w = tuned.mapping(z, truncation, mean_latent)
        ws = w[:, None].expand(-1, tuned.n_latent, -1).contiguous()
        noise = tuned.random_noise(n, ws, gen) if noise_mode == "random" else None
    return _render(tuned, ws, base, intensity, layers, batch_size, noise_mode, noise)
