"""JoJoGAN's paired training set by style mixing (Chong & Forsyth 2022, Sec. 3.2, Eq. 1).

For a reference with code s (the inversion of the style image y), every training step draws a
fresh z_i and builds

    s_i = M * s + (1 - M) * s(FC(z_i))                                   (Eq. 1)

where FC is the frozen mapping network and M a per-layer mask. M = 1 keeps the reference's code
on that layer, M = 0 replaces it by the random face's. The fine-tuned generator learns G(s_i) ~= y,
so whatever the mixed layers control (pose, colours, textures, ...) becomes "anything maps to the
reference's look" and is transferred; what the kept layers control is not varied.

Two spaces:

* ``"w+"``: one weight per W+ latent (``n_latent``: 18 at 1024 px, 10 at 64 px); this is what the
  released code does (`id_swap`).
* ``"s"``: one weight per modulation layer of S space (``n_styles``: 26 at 1024 px, 14 at 64 px),
  order conv1, to_rgb1, convs[0], convs[1], to_rgbs[0], ... (`Generator.styles`).

Presets (names accepted by :func:`build_mask`):

* ``"full"``: the released code's default, W+ layers 7..17 mixed (0..6 kept) at 1024 px.
* ``"preserve_color"``: the released code's colour-preserving choice, W+ layers [9,11,15,16,17].
* ``"X"`` (the paper's set X, "take the reference's colours"): every S layer driven by a mixed
  W+ latent of ``full``; in W+ it equals ``full``.
* ``"C"`` (the paper's set C, "keep the input's colours"): as ``X`` but the ToRGB layers are kept
  (StyleSpace, Wu et al. 2021: ToRGB styles carry colour), so the set never varies colour. Meant
  to be used with the grayscale loss (``FinetuneSettings.grayscale``). In W+, where a latent drives
  a conv and a ToRGB layer together, ``C`` equals ``preserve_color``. These two are our reading of
  the paper's C and X (its appendix lists the layers for 1024 px only as figures); they are stated
  here so that they can be checked and changed.

Scaling to smaller generators (the 64 px toy model has 10 W+ latents, 14 S layers): a preset's
W+ index i of the 18-layer model maps to ``floor(i * (n_latent - 1) / 17 + 0.5)`` (relative depth,
so "fine" stays fine); S presets are derived from the scaled W+ preset through each S layer's
latent, so they scale the same way. At 1024 px the rule is the identity.

The released code's training-time ``alpha`` ("style strength", 1 = full) blends the mixed layers
only partly: ``w_i = (1 - alpha) * w + alpha * w_rand`` on them. Here that is ``blend``: the mask
becomes ``M' = 1 - blend * (1 - M)`` (a soft mask), which gives the same codes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

__all__ = [
    "MAX_LAYERS",
    "MAX_LAYER_TEXT",
    "PRESETS",
    "SPACES",
    "MixingMask",
    "build_mask",
    "mix_codes",
    "parse_layers",
    "sample_random_codes",
    "style_layer_latents",
    "to_style_codes",
]

SPACES = ("w+", "s")
PRESETS = ("full", "preserve_color", "X", "C")
_REF_N_LATENT = 18  # the presets are defined on the 1024 px generator
_FULL_1024 = tuple(range(7, 18))
_PRESERVE_1024 = (9, 11, 15, 16, 17)


# More layers than any StyleGAN2 has (1024 px: 18 W+ latents, 26 S layers, 9 discriminator
# blocks): the bound of a layer list checked before the model is known.
MAX_LAYERS = 32
MAX_LAYER_TEXT = 1000  # characters of a layer list; "0,1,...,25" (every S layer at 1024 px) is 71
_QUOTE = 40  # characters of the user's text quoted in a message
_PART = re.compile(r"([0-9]+)(?:-([0-9]+))?")


def _quote(text: str) -> str:
    """At most _QUOTE characters of ``text``, repr-quoted, so a message never grows with it."""
    return repr(text[:_QUOTE]) + ("..." if len(text) > _QUOTE else "")


def parse_layers(text: str, n_layers: int, what: str) -> tuple[int, ...] | None:
    """A layer list ``"7-17"``, ``"9,11,15"`` or both (``"0-3, 9"``) -> sorted unique indices in
    0..n_layers-1; ``""`` (or only separators) -> None (the caller's default).

    Every index and range end is checked against ``n_layers`` before a range is expanded, so
    ``"0-99999999"`` fails at once; ``what`` starts the message (e.g. "JoJoGAN Invert:
    'blend_layers'"), which quotes at most 40 characters of ``text``. Raises ValueError.
    """
    if isinstance(n_layers, bool) or not isinstance(n_layers, int) or n_layers < 1:
        raise ValueError(f"{what}: the model has no layers to choose from (n_layers={n_layers!r})")
    if not isinstance(text, str):
        raise ValueError(
            f"{what} must be a text like '7-17' or '9,11,15', got {type(text).__name__}"
        )
    if len(text) > MAX_LAYER_TEXT:
        raise ValueError(
            f"{what} is {len(text)} characters long (at most {MAX_LAYER_TEXT}): {_quote(text)}; "
            f"list layer indices 0..{n_layers - 1} like '7-17' or '9,11,15'"
        )
    parts = [p for p in re.split(r"[,\s]+", text) if p]
    if not parts:
        return None
    out: set[int] = set()
    for part in parts:
        m = _PART.fullmatch(part)
        if m is None:
            raise ValueError(
                f"{what} must list layer indices like '7-17' or '9,11,15', got {_quote(text)} "
                f"(at {_quote(part)})"
            )
        a = int(m.group(1))
        b = a if m.group(2) is None else int(m.group(2))
        if max(a, b) >= n_layers:
            raise ValueError(f"{what}: {_quote(part)} is out of range 0..{n_layers - 1}")
        if b < a:
            raise ValueError(f"{what}: the range {_quote(part)} runs backwards; write it low-high")
        out.update(range(a, b + 1))
    return tuple(sorted(out))


def _n_latent(generator: nn.Module) -> int:
    return int(generator.n_latent)


def style_layer_latents(generator: nn.Module) -> list[tuple[int, bool]]:
    """For every S layer (order of `Generator.styles`): (index of its W+ latent, is_to_rgb)."""
    out = [(0, False), (1, True)]
    for k in range(len(generator.to_rgbs)):
        out += [(1 + 2 * k, False), (2 + 2 * k, False), (3 + 2 * k, True)]
    return out


def _scale_index(i: int, n_latent: int) -> int:
    return int(math.floor(i * (n_latent - 1) / (_REF_N_LATENT - 1) + 0.5))


def _preset_latents(name: str, n_latent: int) -> list[int]:
    base = _FULL_1024 if name in ("full", "X") else _PRESERVE_1024
    return sorted({_scale_index(i, n_latent) for i in base})


@dataclass(frozen=True)
class MixingMask:
    """A per-layer mask M (Eq. 1): ``weights`` [n] in [0,1], 1 keeps the reference's code.

    ``space`` is "w+" (n = n_latent) or "s" (n = n_styles); ``preset`` the preset name or
    "custom"; ``mixed`` the layer indices that are (partly) replaced by the random code.
    """

    space: str
    weights: tuple[float, ...]
    preset: str
    blend: float = 1.0

    @property
    def mixed(self) -> list[int]:
        return [i for i, m in enumerate(self.weights) if m < 1.0]

    def tensor(self, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32):
        return torch.tensor(self.weights, device=device, dtype=dtype)

    def describe(self) -> dict:
        return {
            "space": self.space,
            "preset": self.preset,
            "mixed": self.mixed,
            "blend": self.blend,
        }


def build_mask(
    generator: nn.Module,
    space: str = "w+",
    preset: str | None = "full",
    layers: Sequence[int] | None = None,
    blend: float = 1.0,
) -> MixingMask:
    """Build the mask M for ``generator`` from a preset name or a custom list of mixed layers.

    layers: indices of the layers to mix (0 .. n-1 in the chosen space); overrides ``preset``.
    blend: the released code's training-time alpha in [0,1] (1 = mixed layers fully random).
    Raises ValueError (naming the generator's depth) for an unknown preset or space, a layer out of
    range, an empty custom list, or a blend outside [0,1].
    """
    if space not in SPACES:
        raise ValueError(f"mixing: space must be one of {SPACES}, got {space!r}")
    if not isinstance(blend, int | float) or not (0.0 <= float(blend) <= 1.0):
        raise ValueError(f"mixing: blend (the training-time alpha) must be in [0,1], got {blend!r}")
    n_latent = _n_latent(generator)
    per_style = style_layer_latents(generator)
    n = n_latent if space == "w+" else len(per_style)
    if layers is not None:
        idx = [int(i) for i in layers]
        if not idx:
            raise ValueError("mixing: the custom layer list is empty; give at least one layer")
        bad = sorted({i for i in idx if i < 0 or i >= n})
        if bad:
            more = f" and {len(bad) - 8} more" if len(bad) > 8 else ""
            raise ValueError(
                f"mixing: layer indices {bad[:8]}{more} are out of range for this "
                f"{generator.size} px generator: {space} has {n} layers (0..{n - 1})"
            )
        mixed = sorted(set(idx))
        name = "custom"
    else:
        if preset not in PRESETS:
            raise ValueError(f"mixing: unknown preset {preset!r}; choose one of {PRESETS}")
        name = str(preset)
        lat = set(_preset_latents(name, n_latent))
        if space == "w+":
            if name == "C":
                lat = set(_preset_latents("preserve_color", n_latent))
            mixed = sorted(lat)
        else:
            mixed = [
                j
                for j, (li, rgb) in enumerate(per_style)
                if li in lat and not (name == "C" and rgb)
            ]
    b = float(blend)
    weights = tuple(1.0 - b if i in set(mixed) else 1.0 for i in range(n))
    return MixingMask(space=space, weights=weights, preset=name, blend=b)


def to_style_codes(generator: nn.Module, codes: Tensor | Sequence[Tensor]) -> list[Tensor]:
    """W+ [B,n_latent,D] -> S codes (list of [B,C_l]) through ``generator``'s affine layers;
    S codes pass through unchanged (as a list)."""
    if isinstance(codes, Tensor):
        return generator.styles(codes)
    return list(codes)


def sample_random_codes(
    generator: nn.Module, n: int, rng: torch.Generator, space: str
) -> Tensor | list[Tensor]:
    """s(FC(z)) for n fresh z ~ N(0,I) drawn from ``rng`` (a CPU generator, for determinism):
    W+ [n,n_latent,D] (one w repeated per layer) or S codes of it. No gradient."""
    ref = generator.input.input
    z = torch.randn(n, generator.style_dim, generator=rng).to(device=ref.device, dtype=ref.dtype)
    with torch.no_grad():
        w = generator.mapping(z)
        ws = w[:, None].expand(-1, generator.n_latent, -1)
        if space == "w+":
            return ws.contiguous()
        return generator.styles(ws)


def mix_codes(
    codes: Tensor | Sequence[Tensor],
    random_codes: Tensor | Sequence[Tensor],
    mask: MixingMask,
) -> Tensor | list[Tensor]:
    """Eq. 1: M * s + (1 - M) * s_rand, per layer. W+ tensors [B,L,D] or S lists of [B,C_l].

    Kept layers (M = 1) are returned bit-identical to ``codes``."""
    if mask.space == "w+":
        if not isinstance(codes, Tensor) or codes.ndim != 3:
            raise ValueError("mix_codes: a W+ mask needs W+ codes [B,n_latent,D]")
        if codes.shape[1] != len(mask.weights):
            raise ValueError(
                f"mix_codes: mask has {len(mask.weights)} layers, codes have {codes.shape[1]}"
            )
        out = codes.clone()
        for i, m in enumerate(mask.weights):
            if m < 1.0:
                out[:, i] = m * codes[:, i] + (1.0 - m) * random_codes[:, i]
        return out
    codes = list(codes)
    if len(codes) != len(mask.weights):
        raise ValueError(
            f"mix_codes: mask has {len(mask.weights)} S layers, codes have {len(codes)}"
        )
    return [
        s if m >= 1.0 else m * s + (1.0 - m) * r
        for s, r, m in zip(codes, random_codes, mask.weights, strict=True)
    ]
