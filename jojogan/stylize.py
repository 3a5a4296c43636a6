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
from .images import check_output_budget

__all__ = ["STYLIZE_WORK_BYTES", "interpolate", "layer_intensities", "sample", "stylize"]

Codes = Tensor | Sequence[Tensor]
NOISE_MODES = ("const", "random", "none")
RNGS = ("local", "global")

#: Working memory (bytes) one forward pass may use: a ``batch_size`` whose estimated activations
#: (`_work_per_image`) exceed it runs in smaller batches. A fixed number, not the free memory, so
#: the same call always batches (and rounds) the same way; 8 images at 1024 px fit it.
STYLIZE_WORK_BYTES = 8 << 30
# Measured on the CPU (1024 and 256 px, float32): a forward pass holds about 5.5 (one generator)
# to 6.7 (feature interpolation, two) activations of the widest layer [C,H,W] per image.
_WORK_ACTIVATIONS = 7


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


def _count(codes: Codes) -> int:
    return int(codes.shape[0] if isinstance(codes, Tensor) else codes[0].shape[0])


def _batches(codes: Codes, batch_size: int):
    n = _count(codes)
    for i in range(0, n, batch_size):
        if isinstance(codes, Tensor):
            yield codes[i : i + batch_size]
        else:
            yield [c[i : i + batch_size] for c in codes]


def _work_per_image(g: nn.Module) -> int:
    """Estimated bytes one image's forward pass holds: `_WORK_ACTIVATIONS` activations of the
    generator's widest layer (channels x side^2, float32)."""
    widest = max(int(c) * int(r) * int(r) for r, c in g.channels.items() if int(r) <= g.size)
    return _WORK_ACTIVATIONS * widest * 4


def _batch_for(g: nn.Module, batch_size: int) -> int:
    """``batch_size``, lowered to what `STYLIZE_WORK_BYTES` holds (at least one image)."""
    return max(1, min(int(batch_size), STYLIZE_WORK_BYTES // _work_per_image(g)))


def _check_codes(who: str, codes: Codes, g: nn.Module) -> int:
    """Refuse empty or non-finite codes and an output over the budget, before any work."""
    tensors = [codes] if isinstance(codes, Tensor) else list(codes)
    if not tensors or not all(isinstance(t, Tensor) for t in tensors):
        raise ValueError(f"{who}: codes must be a W+ tensor [B,n_latent,D] or a list of S codes")
    n = _count(codes)
    if n < 1:
        raise ValueError(f"{who}: no codes to render (an empty batch); give at least one")
    if any(t.is_floating_point() and not bool(torch.isfinite(t).all()) for t in tensors):
        raise ValueError(
            f"{who}: the latent codes contain NaN or infinite values; invert the images again "
            "(or check the model that made them)"
        )
    size = int(g.size)
    check_output_budget(n, size, size, what=f"{who}: {n} images at {size} px")
    return n


def _overflow_check(who: str, images: Tensor) -> None:
    """A chunk with inf/NaN: float16 overflowed (say so), or the model/codes are broken."""
    if bool(torch.isfinite(images).all()):
        return
    if images.dtype == torch.float16:
        raise ValueError(
            f"{who}: the float16 generation overflowed (inf/NaN in the images); run the model "
            "in float32 (model.float()), or precision='bf16', which has float32's range"
        )
    raise ValueError(
        f"{who}: the generated images contain NaN or infinite values ({images.dtype}); the "
        "model's weights are likely broken: reload or retrain the style model"
    )


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
    unless the intensity is 1 on every layer). Runs in batches of ``batch_size`` (lowered where
    one batch's activations would pass `STYLIZE_WORK_BYTES`), each written into one
    preallocated output: memory peaks near the output's size plus one batch. An output over
    `jojogan.images.check_output_budget` is refused before anything is allocated.

    noise_mode: "const" (the stored noise, repeatable), "random" or "none". Random noise is
    drawn once for all B images (batch_size does not change them): rng "local" from
    `torch.Generator(seed)`; rng "global" from torch's global generator on the device, as
    ``generator(codes, input_is_latent=True)`` (the released notebook) draws it, seeded with
    ``seed`` for this call only (None: the global stream as it stands).

    precision: "float32" (exact), "tf32" or "bf16" (`jojogan.devices.precision`); the images
    come back in float32 either way. A float16 model whose images overflow (inf/NaN) is a
    ValueError that says so. channels_last: NHWC activations for one-image batches (None: on
    for CPU)."""
    _check_args("stylize", batch_size, precision, noise_mode, seed, rng)
    _check_codes("stylize", codes, tuned)
    noise = _draw_noise(tuned, codes, noise_mode, seed, rng)
    out = _empty_output(tuned, _count(codes))
    args = (intensity, layers, batch_size, noise_mode, noise)
    _render(tuned, codes, base, *args, precision, channels_last, into=out)
    return out


@torch.no_grad()
def interpolate(
    tuned: nn.Module,
    codes: Codes,
    intensities: Sequence[float],
    *,
    base: nn.Module | None = None,
    layers: tuple[int, int] | Sequence[int] | None = None,
    batch_size: int = 8,
    noise_mode: str = "const",
    seed: int | None = 0,
    rng: str = "local",
    precision: str = "float32",
    channels_last: bool | None = None,
) -> Tensor:
    """An intensity sweep: [B*K,3,H,W] for K ``intensities``, input-major (input 1 at every
    intensity, then input 2, ...), the same images as ``stylize(..., intensity=a)`` for each a
    stacked on dim 1, written batch by batch into one preallocated output (no per-intensity
    copies). Random noise is drawn once and shared by every intensity. Other arguments as
    :func:`stylize`; an output of B*K images over the budget is refused before any work."""
    alphas = [intensities] if isinstance(intensities, int | float) else list(intensities)
    if not alphas:
        raise ValueError("interpolate: intensities is empty; give at least one (count >= 1)")
    _check_args("interpolate", batch_size, precision, noise_mode, seed, rng)
    n = _check_codes("interpolate", codes, tuned)
    size = int(tuned.size)
    check_output_budget(
        n * len(alphas), size, size, what=f"interpolate: {len(alphas)} x {n} images at {size} px"
    )
    for a in alphas:  # every intensity checked before the first is rendered
        layer_intensities(int(tuned.n_styles), a, layers)
    noise = _draw_noise(tuned, codes, noise_mode, seed, rng)
    out = _empty_output(tuned, n * len(alphas)).view(n, len(alphas), 3, size, size)
    for k, a in enumerate(alphas):
        args = (a, layers, batch_size, noise_mode, noise)
        _render(tuned, codes, base, *args, precision, channels_last, into=out[:, k])
    return out.view(n * len(alphas), 3, size, size)


def _check_args(
    who: str, batch_size: int, precision: str, noise_mode: str, seed: int | None, rng: str
) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"{who}: batch_size must be an integer >= 1, got {batch_size!r:.40}")
    if precision not in PRECISIONS:
        raise ValueError(f"{who}: precision must be one of {PRECISIONS}, got {precision!r:.40}")
    _check_rng(who, noise_mode, seed, rng)


def _draw_noise(
    g: nn.Module, codes: Codes, noise_mode: str, seed: int | None, rng: str
) -> list[Tensor] | None:
    """Random noise for every image at once (None unless noise_mode is "random")."""
    if noise_mode != "random":
        return None
    like = codes if isinstance(codes, Tensor) else codes[0]
    with global_rng(seed if rng == "global" else None, like.device):
        gen = None if rng == "global" else torch.Generator().manual_seed(int(seed))
        return g.random_noise(like.shape[0], like, gen)


def _empty_output(g: nn.Module, n: int) -> Tensor:
    """The whole output, allocated once (float32 on the generator's device)."""
    size = int(g.size)
    return torch.empty((n, 3, size, size), dtype=torch.float32, device=g.input.input.device)


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
    *,
    into: Tensor,
) -> None:
    dev = tuned.input.input.device
    nhwc = dev.type == "cpu" if channels_last is None else bool(channels_last)
    with ops.channels_last(nhwc), _precision(dev, precision):
        _stylize(tuned, codes, base, intensity, layers, batch_size, noise_mode, noise, into)


def _stylize(
    tuned: nn.Module,
    codes: Codes,
    base: nn.Module | None,
    intensity: float | Sequence[float],
    layers: tuple[int, int] | Sequence[int] | None,
    batch_size: int,
    noise_mode: str,
    noise: list[Tensor] | None,
    into: Tensor,
) -> None:
    """Render every code, batch by batch, into ``into`` [B,3,H,W] (float32, any strides)."""
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
    start = 0
    for part in _batches(codes, _batch_for(tuned, batch_size)):
        b = part.shape[0] if isinstance(part, Tensor) else part[0].shape[0]
        nz = None if noise is None else [x[start : start + b] for x in noise]
        if all(x >= 1.0 for x in a):
            img = tuned.synthesis_from_styles(_styles(tuned, part), noise_mode, nz)
        elif all(x <= 0.0 for x in a):
            img = base.synthesis_from_styles(_styles(base, part), noise_mode, nz)
        else:
            img = _blended(
                base, tuned, _styles(base, part), _styles(tuned, part), a, noise_mode, nz
            )
        _overflow_check("stylize", img)
        into[start : start + b].copy_(img)
        del img
        start += b


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
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"sample: n (the count) must be an integer >= 1, got {n!r:.40}")
    if not 0.0 <= truncation <= 1.0:
        raise ValueError(f"sample: truncation must be in [0,1], got {truncation}")
    _check_args("sample", batch_size, "float32", noise_mode, seed, rng)
    size = int(tuned.size)
    check_output_budget(n, size, size, what=f"sample: count {n} at {size} px")
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
    out = _empty_output(tuned, n)
    _render(tuned, ws, base, intensity, layers, batch_size, noise_mode, noise, into=out)
    return out
