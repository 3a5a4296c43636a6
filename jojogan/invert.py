"""GAN inversion for JoJoGAN step 1 (Sec. 3.1): one entry point, :func:`invert`, for every method.

- ``"encoder"``: e4e or ReStyle-pSp (:func:`jojogan.encoders.load_encoder`); images are
  center-cropped to a square and resized (antialiased) to 256 px.
- ``"optimize"``: W+ optimisation against the generator itself, from the mean code (or from given
  codes, e.g. an encoder's, to refine them), for domains without an encoder; Adam. Objective
  ``"pixel"``: pixel L1 + MSE, plus the L1 of the generator's own discriminator features when a
  discriminator is given (no downloaded perceptual network). Objective ``"edges"``: L1 between
  the luminance edge maps (:func:`edge_map`) only, for *stylized* references: a sketch, an ink
  drawing or a neon outline shares its contours with the face behind it but not its colours or
  textures, which a pixel loss (and an encoder trained on photos) would try to reproduce with a
  different face.
- ``"mean"``: the mean code s-bar = mean over 10,000 samples of s(FC(z)) (Sec. 4, for extreme
  references such as animal faces); computed once per generator and cached.
- ``"blend"``: the "virtual inverter" (Sec. 5.1): a per-layer mask mixes an inverted code with the
  mean code, ``m * inverted + (1 - m) * mean``, in W+ (one weight per W+ layer) or S (one weight
  per modulation layer) space; mask 1 keeps the inversion, 0 takes the mean.

Codes are W+ ``[B,n_latent,style_dim]``; S codes are lists of ``[B,C_l]`` (26 at 1024 px).
Everything is deterministic for a seed.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import kornia
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .arcface import to_grayscale
from .mixing import parse_layers

__all__ = [
    "METHODS",
    "OBJECTIVES",
    "MeanCodes",
    "SPACES",
    "blend_codes",
    "edge_map",
    "invert",
    "invert_with",
    "mean_codes",
    "optimises",
    "resize_square",
]

METHODS = ("encoder", "optimize", "mean", "blend")
OBJECTIVES = ("pixel", "edges")  # what method="optimize" matches (see the module docstring)
EDGE_SIZE = 256  # edge maps are taken at most at this size
SPACES = ("w+", "s")
MEAN_SAMPLES = 10_000  # Sec. 4: s-bar is the mean over 10,000 samples
_RANGE_TOL = 1e-3
FEATURE_LAYERS = (1, 3, 4, 5)  # JoJoGAN's discriminator-feature taps
_CHUNK = 1000

Progress = Callable[[int, float], Any]
Preview = Callable[[int, Tensor], Any]


@dataclass(frozen=True)
class MeanCodes:
    """Mean codes of a generator: ``w`` [1,style_dim] = mean of FC(z); ``styles`` = mean of
    s(FC(z)) per modulation layer, each [1,C_l]."""

    w: Tensor
    styles: tuple[Tensor, ...]


# generator -> (fingerprint, MeanCodes); weak so that dropping a generator frees its entry.
_MEAN_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _fingerprint(generator: nn.Module, n: int, seed: int) -> tuple:
    # Storage address + in-place version counter of every tensor: a fine-tuned copy (new storage)
    # or an in-place update (optimizer step bumps _version) never reuses a stale entry.
    tensors = list(generator.parameters()) + list(generator.buffers())
    return (n, seed) + tuple((t.data_ptr(), t._version, t.dtype, str(t.device)) for t in tensors)


@torch.no_grad()
def mean_codes(
    generator: nn.Module,
    *,
    n: int = MEAN_SAMPLES,
    seed: int = 0,
    cache: dict | None = None,
) -> MeanCodes:
    """s-bar of Sec. 4: the means of w = FC(z) and of s(w) over ``n`` z ~ N(0,I) drawn from a CPU
    ``torch.Generator`` seeded ``seed``. Cached per generator (in ``cache`` when given, else a
    module-level weak cache) and recomputed when any of its tensors changes."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"mean_codes: n must be an integer >= 1, got {n!r}")
    key = _fingerprint(generator, n, seed)
    store = _MEAN_CACHE if cache is None else cache
    hit = store.get(generator)
    if hit is not None and hit[0] == key:
        return hit[1]
    ref = next(generator.parameters())
    gen = torch.Generator().manual_seed(int(seed))
    sum_w = torch.zeros(generator.style_dim, dtype=torch.float64, device=ref.device)
    sum_s: list[Tensor] | None = None
    done = 0
    while done < n:
        k = min(_CHUNK, n - done)
        z = torch.randn(k, generator.style_dim, generator=gen).to(ref.device, ref.dtype)
        w = generator.mapping(z)
        styles = generator.styles(w[:, None].expand(-1, generator.n_latent, -1))
        sum_w += w.sum(0, dtype=torch.float64)
        sums = [s.sum(0, dtype=torch.float64) for s in styles]
        sum_s = sums if sum_s is None else [a + b for a, b in zip(sum_s, sums, strict=True)]
        done += k
    assert sum_s is not None
    result = MeanCodes(
        w=(sum_w / n).to(ref.dtype)[None],
        styles=tuple((s / n).to(ref.dtype)[None] for s in sum_s),
    )
    store[generator] = (key, result)
    return result


def resize_square(images: Tensor, size: int) -> Tensor:
    """Center-crop [B,3,H,W] to a square and resize it to ``size`` (bilinear, antialiased);
    a no-op when already ``size`` x ``size``. (JoJoGAN's Resize + CenterCrop, in that spirit.)"""
    h, w = images.shape[-2:]
    if h != w:
        s = min(h, w)
        top, left = (h - s) // 2, (w - s) // 2
        images = images[:, :, top : top + s, left : left + s]
    if images.shape[-1] != size:
        images = F.interpolate(
            images, size=(size, size), mode="bilinear", align_corners=False, antialias=True
        )
    return images


def edge_map(images: Tensor, max_size: int = EDGE_SIZE) -> Tensor:
    """Luminance edge magnitude [B,1,h,w] of images [B,3,H,W] in [-1,1] (Sobel, after an
    antialiased resize to at most ``max_size`` px), each image divided by its mean so that a
    global change of contrast (a darker or paler style) costs nothing. Differentiable."""
    if images.shape[-1] > max_size:
        images = resize_square(images, max_size)
    e = kornia.filters.sobel(to_grayscale(images)[:, :1])
    return e / (e.mean((1, 2, 3), keepdim=True) + 1e-3)


def blend_codes(inverted: Tensor | Sequence[Tensor], mean: Tensor | Sequence[Tensor], mask: Tensor):
    """Virtual inverter (Sec. 5.1): per layer ``m * inverted + (1 - m) * mean``.

    W+: ``inverted`` [B,L,D], ``mean`` [1,L,D] or [1,D], ``mask`` [L]. S: lists of [B,C_l] and
    [1,C_l] with ``mask`` [n_styles]."""
    if isinstance(inverted, Tensor):
        m = mask.to(inverted)[None, :, None]
        mean_t = mean if isinstance(mean, Tensor) else torch.as_tensor(mean)
        if mean_t.ndim == 2:
            mean_t = mean_t[:, None]
        return m * inverted + (1 - m) * mean_t.to(inverted)
    return [
        float(m) * s + (1 - float(m)) * sm.to(s)
        for s, sm, m in zip(inverted, mean, mask.tolist(), strict=True)
    ]


# --------------------------------------------------------------------------------- validation


def _check_images(images: Any) -> None:
    if not isinstance(images, Tensor):
        raise ValueError(f"invert: images must be a torch.Tensor, got {type(images).__name__}")
    if images.ndim != 4 or images.shape[1] != 3 or images.shape[0] < 1:
        raise ValueError(
            f"invert: images must have shape [B,3,H,W] (B >= 1), got {tuple(images.shape)}; "
            "ComfyUI IMAGE tensors [B,H,W,3] in [0,1] must be converted first"
        )
    if min(images.shape[-2:]) < 16:
        raise ValueError(f"invert: images are too small ({images.shape[-2]}x{images.shape[-1]})")
    if not images.is_floating_point():
        raise ValueError(f"invert: images must be floating point in [-1,1], got {images.dtype}")
    if not bool(torch.isfinite(images).all()):
        raise ValueError("invert: images contain NaN or infinite values")
    lo, hi = float(images.min()), float(images.max())
    if lo < -1 - _RANGE_TOL or hi > 1 + _RANGE_TOL:
        raise ValueError(
            f"invert: images must be in [-1,1], got values in [{lo:.3g}, {hi:.3g}]; "
            "map [0,1] images with x * 2 - 1"
        )


def _check_int(name: str, value: Any, lo: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise ValueError(f"invert: {name} must be an integer >= {lo}, got {value!r}")
    return value


def _check_mask(mask: Any, length: int, space: str) -> Tensor:
    what = "W+ layers (n_latent)" if space == "w+" else "S-space layers (n_styles)"
    try:
        m = torch.as_tensor(mask, dtype=torch.float32).detach().cpu()
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"invert: mask must be a sequence of {length} numbers in [0,1]") from None
    if m.ndim != 1 or m.numel() != length:
        raise ValueError(
            f"invert: mask must have one weight per {what}: {length} for this generator in "
            f"space={space!r}, got shape {tuple(m.shape)}"
        )
    if not bool(torch.isfinite(m).all()) or float(m.min()) < 0 or float(m.max()) > 1:
        raise ValueError("invert: mask weights must be finite and in [0,1]")
    return m


# --------------------------------------------------------------------------------- methods


def _encode(images: Tensor, generator: nn.Module, encoder: nn.Module, n_iters: int | None):
    size = getattr(encoder, "input_size", 256)
    x = resize_square(images, size)
    with torch.no_grad():
        w = encoder(x) if n_iters is None else encoder(x, n_iters=n_iters)
    if w.shape[1:] != (generator.n_latent, generator.style_dim):
        raise ValueError(
            f"invert: the encoder gives codes [B,{w.shape[1]},{w.shape[2]}] but the generator "
            f"({generator.size} px) needs [B,{generator.n_latent},{generator.style_dim}]; use an "
            "encoder trained for this generator"
        )
    return w


def _feature_layers(discriminator: nn.Module) -> tuple[int, ...]:
    """JoJoGAN's discriminator taps (convs 1, 3, 4, 5), limited to the blocks a small
    discriminator has."""
    n = len(discriminator.convs) if hasattr(discriminator, "convs") else 6
    return tuple(i for i in FEATURE_LAYERS if i < n) or (n - 1,)


def _optimize(
    images: Tensor,
    generator: nn.Module,
    *,
    steps: int,
    lr: float,
    seed: int,
    discriminator: nn.Module | None,
    progress: Progress | None,
    mean_cache: dict | None,
    mean_samples: int,
    init: Tensor | None = None,
    objective: str = "pixel",
    preview: Preview | None = None,
    preview_every: int = 0,
) -> Tensor:
    ref = next(generator.parameters())
    target = resize_square(images, generator.size).to(ref.device, ref.dtype)
    target_edges = edge_map(target) if objective == "edges" else None
    if init is not None:
        w = init.detach().to(ref.device, ref.dtype).clone().requires_grad_(True)
    else:
        start = mean_codes(generator, n=mean_samples, seed=seed, cache=mean_cache).w
        w = start[:, None].expand(target.shape[0], generator.n_latent, -1).clone()
        w.requires_grad_(True)
    modules = [m for m in (generator, discriminator) if m is not None]
    flags = [[p.requires_grad for p in m.parameters()] for m in modules]
    try:
        for m in modules:
            m.requires_grad_(False)
        target_feats = None
        layers: tuple[int, ...] = ()
        if discriminator is not None:
            layers = _feature_layers(discriminator)
            with torch.no_grad():
                target_feats = discriminator.features(target, layers=layers)
        opt = torch.optim.Adam([w], lr=lr)
        for step in range(1, steps + 1):
            img = generator.synthesis(w, noise_mode="const")
            if target_edges is not None:
                loss = (edge_map(img) - target_edges).abs().mean()
            else:
                diff = img - target
                loss = diff.abs().mean() + diff.square().mean()
            if target_feats is not None:
                feats = discriminator.features(img, layers=layers)
                loss = loss + sum(
                    (a - b).abs().mean() for a, b in zip(feats, target_feats, strict=True)
                )
            if not torch.isfinite(loss):
                raise RuntimeError(
                    f"invert: optimisation diverged at step {step} (loss {float(loss)}); "
                    f"lower lr (now {lr})"
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if progress is not None:
                progress(step, loss.item())
            if preview is not None and (step % preview_every == 0 or step == steps):
                preview(step, img.detach())
    finally:
        for m, fl in zip(modules, flags, strict=True):
            for p, f in zip(m.parameters(), fl, strict=True):
                p.requires_grad_(f)
    return w.detach()


def invert(
    images: Tensor | None,
    generator: nn.Module,
    method: str = "encoder",
    *,
    encoder: nn.Module | None = None,
    n_iters: int | None = None,
    steps: int = 300,
    lr: float = 0.05,
    seed: int = 0,
    discriminator: nn.Module | None = None,
    mask: Sequence[float] | Tensor | None = None,
    space: str = "w+",
    return_styles: bool = False,
    progress: Progress | None = None,
    mean_cache: dict | None = None,
    mean_samples: int = MEAN_SAMPLES,
    init: Tensor | None = None,
    objective: str = "pixel",
    preview: Preview | None = None,
    preview_every: int = 0,
) -> Tensor | tuple[Tensor, list[Tensor]]:
    """Invert aligned faces into ``generator``'s latent space (JoJoGAN step 1).

    images: [B,3,H,W] in [-1,1], any size (cropped to square, resized with antialiasing to the
        encoder's 256 px or the generator's size); may be None for ``method="mean"`` (B = 1).
    method: "encoder" (needs ``encoder``; ``n_iters`` for ReStyle, default 5), "optimize"
        (``steps`` Adam steps at ``lr`` from the mean W, or from ``init`` (W+ codes
        [B,n_latent,style_dim], e.g. an encoder's, to refine them), matching ``objective``;
        ``progress(step, loss)`` after each step and may raise to cancel; ``preview(step,
        image)`` every ``preview_every`` steps and at the last, with the [B,3,H,W]
        reconstruction that step started from), "mean" (s-bar of
        Sec. 4 from ``mean_samples`` z drawn with ``seed``),
        "blend" (Sec. 5.1: invert with ``encoder``, or by optimisation when none is given, then
        mix with the mean code through ``mask``, one weight in [0,1] per W+ layer
        (``space="w+"``) or per S layer (``space="s"``); 1 keeps the inversion).
    objective: what optimisation matches: "pixel" (L1 + MSE, plus the L1 of
        ``discriminator.features`` when given) or "edges" (L1 of :func:`edge_map`, no
        discriminator; for stylized references, best from an encoder's codes via ``init``:
        the toy benchmark's default refines the reference's code so, docs/toy_recipe_sweep.md).
    Returns W+ [B,n_latent,style_dim] (detached, on the generator's device), or
    ``(w, styles)`` with S codes (a list of [B,C_l]) when ``return_styles``. For a blend in S
    space the blended result exists only in S: ``return_styles=True`` is required and ``w`` is
    the inverted code before blending.
    """
    # --- validate everything before any work
    if method not in METHODS:
        raise ValueError(f"invert: unknown method {method!r}; choose one of {METHODS}")
    if space not in SPACES:
        raise ValueError(f"invert: unknown space {space!r}; choose 'w+' or 's'")
    for attr in ("n_latent", "style_dim", "size", "synthesis", "styles", "mapping"):
        if not hasattr(generator, attr):
            raise ValueError(
                f"invert: generator must be a jojogan.stylegan2.Generator (missing {attr!r}), "
                f"got {type(generator).__name__}"
            )
    if images is not None or method != "mean":
        _check_images(images)
    seed = _check_int("seed", seed, lo=0)
    mean_samples = _check_int("mean_samples", mean_samples)
    uses_encoder = method == "encoder" or (method == "blend" and encoder is not None)
    uses_optim = method == "optimize" or (method == "blend" and encoder is None)
    if method == "encoder" and encoder is None:
        raise ValueError("invert: method='encoder' needs encoder= (see jojogan.encoders)")
    if encoder is not None and not uses_encoder:
        raise ValueError(f"invert: encoder is not used by method={method!r}")
    if n_iters is not None:
        if not (uses_encoder and getattr(encoder, "kind", None) == "restyle"):
            raise ValueError("invert: n_iters applies to a ReStyle encoder only")
        n_iters = _check_int("n_iters", n_iters)
    if uses_optim:
        steps = _check_int("steps", steps)
        if (
            isinstance(lr, bool)
            or not isinstance(lr, int | float)
            or not (math.isfinite(lr) and lr > 0)
        ):
            raise ValueError(f"invert: lr must be a finite number > 0, got {lr!r}")
        if discriminator is not None:
            if not hasattr(discriminator, "features"):
                raise ValueError("invert: discriminator must have a features(img) method")
            if getattr(discriminator, "size", generator.size) != generator.size:
                raise ValueError(
                    f"invert: discriminator is for {discriminator.size} px, generator for "
                    f"{generator.size} px"
                )
    elif discriminator is not None:
        raise ValueError(f"invert: discriminator is used by method='optimize' only, not {method!r}")
    if objective not in OBJECTIVES:
        raise ValueError(f"invert: unknown objective {objective!r}; choose one of {OBJECTIVES}")
    if objective != "pixel":
        if not uses_optim:
            raise ValueError(
                f"invert: objective={objective!r} applies to optimisation only, not to "
                f"method={method!r}"
            )
        if discriminator is not None:
            raise ValueError(
                "invert: objective='edges' matches edges only; a discriminator's features "
                "would pull the code toward the reference's colours and textures (leave it out)"
            )
    if init is not None:
        if method != "optimize":
            raise ValueError(f"invert: init is used by method='optimize' only, not {method!r}")
        want = (images.shape[0], generator.n_latent, generator.style_dim)
        if not isinstance(init, Tensor) or tuple(init.shape) != want:
            got = tuple(init.shape) if isinstance(init, Tensor) else type(init).__name__
            raise ValueError(
                f"invert: init must be W+ codes of shape {list(want)} (one per image), got {got}"
            )
        if not bool(torch.isfinite(init).all()):
            raise ValueError("invert: init contains NaN or infinite values")
    if progress is not None and not callable(progress):
        raise ValueError("invert: progress must be a callable(step, loss)")
    if preview is not None:
        if not callable(preview):
            raise ValueError("invert: preview must be a callable(step, image)")
        preview_every = _check_int("preview_every", preview_every)
    n_s = len(generator._style_layers()) if hasattr(generator, "_style_layers") else None
    n_s = getattr(generator, "n_styles", n_s)
    m = None
    if method == "blend":
        if mask is None:
            raise ValueError("invert: method='blend' needs mask= (one weight per layer)")
        m = _check_mask(mask, generator.n_latent if space == "w+" else n_s, space)
        if space == "s" and not return_styles:
            raise ValueError(
                "invert: a blend in S space exists only as S codes; pass return_styles=True"
            )
    elif mask is not None:
        raise ValueError(f"invert: mask is used by method='blend' only, not {method!r}")

    # --- work
    ref = next(generator.parameters())
    if images is not None:
        images = images.to(ref.device)
    batch = 1 if images is None else images.shape[0]
    styles: list[Tensor] | None = None
    if method == "mean":
        mc = mean_codes(generator, n=mean_samples, seed=seed, cache=mean_cache)
        w = mc.w[:, None].expand(batch, generator.n_latent, -1).clone()
        styles = [s.expand(batch, -1).clone() for s in mc.styles]
    else:
        if uses_encoder:
            w = _encode(images, generator, encoder, n_iters).to(ref.device, ref.dtype)
        else:
            w = _optimize(
                images,
                generator,
                steps=steps,
                lr=float(lr),
                seed=seed,
                discriminator=discriminator,
                progress=progress,
                mean_cache=mean_cache,
                mean_samples=mean_samples,
                init=init,
                objective=objective,
                preview=preview,
                preview_every=preview_every,
            )
        if method == "blend":
            mc = mean_codes(generator, n=mean_samples, seed=seed, cache=mean_cache)
            if space == "w+":
                w = blend_codes(w, mc.w, m)
            else:
                with torch.no_grad():
                    styles = blend_codes(generator.styles(w), mc.styles, m)
    w = w.detach()
    if not return_styles:
        return w
    if styles is None:
        with torch.no_grad():
            styles = generator.styles(w)
    return w, [s.detach() for s in styles]


def optimises(method: str, encoder: nn.Module | None) -> bool:
    """Whether :func:`invert_with` runs optimisation: method "optimize" always (from the
    encoder's codes when an encoder is given), "blend" when no encoder is given."""
    return method == "optimize" or (method == "blend" and encoder is None)


def invert_with(
    method: str,
    images: Tensor | None,
    generator: nn.Module,
    *,
    encoder: nn.Module | None = None,
    discriminator: nn.Module | None = None,
    blend_layers: str = "",
    objective: str = "pixel",
    n_iters: int = 0,
    steps: int = 300,
    lr: float = 0.05,
    seed: int = 0,
    progress: Progress | None = None,
    preview: Preview | None = None,
    preview_every: int = 0,
    mean_cache: dict | None = None,
) -> Tensor:
    """The inversion ``method`` names, with the models at hand (the Invert node's rule).

    "encoder": ``encoder``'s codes. "optimize": :func:`invert`'s optimisation, from the
    encoder's codes when an encoder is given (refining them). "mean": the mean code (Sec. 4);
    images, encoder and discriminator are not used. "blend" (Sec. 5.1): the encoder's codes, or
    optimisation's without an encoder, kept in the W+ layers ``blend_layers`` lists (text, e.g.
    "0-6"; `jojogan.mixing.parse_layers`), the mean code elsewhere. ``n_iters`` > 0: ReStyle's
    refinement iterations (0 = its default). The discriminator is used where optimisation runs
    (:func:`optimises`); an ``objective`` other than "pixel" or ``blend_layers`` where they would
    not apply is refused, not ignored. images: [B,3,H,W] in [-1,1]. Returns W+
    [B,n_latent,style_dim].
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {str(method)[:40]!r}; choose one of {METHODS}")
    if images is None and method != "mean":
        raise ValueError(f"method '{method}' needs the 'images' input (aligned faces)")
    if method == "encoder" and encoder is None:
        raise ValueError("method 'encoder' needs the 'encoder' input (an e4e or ReStyle encoder)")
    optimise = optimises(method, encoder)
    if objective != "pixel" and not optimise:
        raise ValueError(
            f"objective {str(objective)[:40]!r} applies to optimisation; choose method 'optimize' "
            "(connect an encoder to start from its codes)"
        )
    keep = parse_layers(blend_layers, int(generator.n_latent), "'blend_layers'")
    if method == "blend" and keep is None:
        raise ValueError(
            "method 'blend' needs 'blend_layers', the W+ layers that keep the inversion (e.g. "
            "'0-6'); the others take the mean code"
        )
    if method != "blend" and keep is not None:
        raise ValueError(
            "'blend_layers' applies to method 'blend' only; clear it or choose method 'blend' "
            f"(method is '{method}')"
        )
    kwargs: dict[str, Any] = {"seed": int(seed), "mean_cache": mean_cache}
    if method == "mean":
        return invert(images, generator, "mean", **kwargs)
    if encoder is not None and n_iters > 0:
        kwargs["n_iters"] = int(n_iters)
    if optimise:
        kwargs.update(
            steps=int(steps),
            lr=float(lr),
            discriminator=discriminator,
            progress=progress,
            objective=objective,
        )
        if preview is not None and int(preview_every) > 0:
            kwargs.update(preview=preview, preview_every=int(preview_every))
    if keep is not None:
        kwargs["mask"] = [1.0 if k in keep else 0.0 for k in range(generator.n_latent)]
    if method == "optimize" and encoder is not None:
        its = {"n_iters": kwargs.pop("n_iters")} if "n_iters" in kwargs else {}
        init = invert(images, generator, "encoder", encoder=encoder, **its)
        return invert(images, generator, "optimize", init=init, **kwargs)
    return invert(images, generator, method, encoder=encoder, **kwargs)
