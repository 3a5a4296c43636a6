"""JoJoGAN fine-tuning (Chong & Forsyth 2022, Sec. 3.3, Eq. 2-3).

The generator is fine-tuned so that G(s_i) ~= y for the style-mixed codes s_i of the paired set
(`jojogan.mixing`, Eq. 1), with the loss

    L = mean over taps t of L1(D_t(G(s_i)), D_t(y))                           (Eq. 2)
        [+ w_id * (1 - cos(F(G_orig(s_i)), F(G(s_i))))]                       (Eq. 3)
        [+ w_struct * L1(E(G(w_j)), E(G_orig(w_j)))]                          (structure)
        [+ w_gram * mean over t' of L1(Gram(D_t'(G(w_j))), Gram(D_t'(y)))]    (texture)

where D_t are activations of the pretrained, *frozen* discriminator (taps: the released code's
`convs` 1, 3, 4, 5) and F is ArcFace on grayscale crops (Appendix A.2, weight 2e3..5e3). Adam with
lr 2e-3 and betas (0, 0.99). Optional grayscale before the loss (colour preservation, Sec. 5).

The last two terms are ours, off by default (not in the paper or the released code). Eq. 2 only
sees the reference's own layout; on faces of other shapes the tuned generator tends to redraw the
reference's outline (the one-shot identity leak). They look at ``random_faces`` fully random faces
w_j per step: E is the luminance edge magnitude (Sobel, at most 256 px, each image divided by its
mean), so the tuned face keeps the contours the base generator draws for w_j; Gram is the channel
Gram matrix of the discriminator's three shallowest convs, so those faces carry the reference's
texture statistics wherever their contours are (Gatys et al. 2016). Measured on the toy domain in
docs/toy_recipe_sweep.md (toy recipe ``structure``).

The released code (`stylize.ipynb`, "Finetune StyleGAN") is reproduced exactly by
``FinetuneSettings.released()`` with ``seed=None``: every draw then comes from torch's global
generator in the notebook's order, so ``torch.manual_seed(s)`` followed by ``finetune`` gives the
notebook's per-step losses and weights after the same ``torch.manual_seed(s)`` (CPU, float32;
measured in tests/test_finetune.py against the reference modules). docs/finetune.md has the table.
Where we differ, it is a named option:

* ``reference_features="once"`` (default): the discriminator is frozen and the reference's
  features are computed once; the released code recomputes them every step under ``no_grad``
  (``"every_step"``) and lets its discriminator accumulate weight gradients it never uses. Same
  loss values;
* ``refs_per_chunk``: the references are processed in chunks with gradient accumulation, so
  memory does not grow with their number (the released code batches all of them); the gradient
  is that of the one-batch mean loss;
* ``noise_mode="const"`` (our default) uses the generator's stored noise, the noise the inversion
  used; the released code draws random noise (``"random"``). Different results, opt-in;
* ``preset_indices="scaled"`` (our default) maps a preset's 1024 px W+ indices to smaller
  generators by relative depth; the released code indexes literally (``"literal"``: full =
  ``range(7, n_latent)``, preserve_color = [9,11,15,16,17], which exists at 1024 px only);
* ``seed`` (an integer, our default) draws from our own `torch.Generator` (same seed, same
  device -> same bytes, the global RNG untouched); ``rng="global"`` draws from torch's global
  generators as the notebook does;
* a NaN/inf loss or gradient skips the step, and ``max_bad_steps`` failures in a row stop with
  "diverged at step k".

The mapping network is not trained, here or in the released code: the notebook hands every
generator parameter to Adam, but draws its random codes through ``generator.get_latent``, which
JoJoGAN's model.py decorates with ``@torch.no_grad()``; the mapping's gradient stays None and
Adam skips it (checked bit for bit in tests/fixtures/released/make_golden.py).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import ops
from .arcface import identity_loss, to_grayscale
from .devices import PRECISIONS, precision
from .invert import edge_map, resize_square
from .mixing import (
    PRESETS,
    SPACES,
    MixingMask,
    build_mask,
    mix_codes,
    parse_layers,
    sample_random_codes,
    style_layer_latents,
    to_style_codes,
)

__all__ = [
    "DEFAULT_FEATURE_LAYERS",
    "FinetuneCancelled",
    "FinetuneDiverged",
    "FinetuneResult",
    "FinetuneSettings",
    "default_feature_layers",
    "finetune",
    "global_rng",
    "mixed_samples",
    "n_feature_layers",
    "preview_codes",
    "settings_from_widgets",
]

DEFAULT_FEATURE_LAYERS = (1, 3, 4, 5)  # the released code's discriminator taps
GRAM_LAYERS = (0, 1, 2)  # the texture term's taps: the discriminator's shallowest convs
STRUCTURE_SIZE = 256  # the structure term's edges are taken at most at this size
MAX_STEPS = 100_000
NOISE_MODES = ("const", "random", "none")
RNGS = ("local", "global")
REFERENCE_FEATURES = ("once", "every_step")
PRESET_INDICES = ("scaled", "literal")
RELEASED_PRESERVE_COLOR = (9, 11, 15, 16, 17)  # the notebook's id_swap with preserve_color
RELEASED_FIRST_MIXED = 7  # the notebook's id_swap otherwise: range(7, n_latent)
# Fields that change how a run is computed or paid for, not the recipe (see `recipe`).
_NOT_RECIPE = (
    "steps",
    "seed",
    "rng",
    "refs_per_chunk",
    "reference_features",
    "max_bad_steps",
    "preview_every",
    "keep_partial",
    "precision",
    "channels_last",
    "compile",
)
Callback = Callable[[int, float, "Tensor | None"], Any]


class FinetuneCancelled(Exception):
    """Raised when the progress callback cancels (returns False or raises this). ``step`` is the
    last completed step; ``result`` holds the partial model only if ``keep_partial`` was set."""

    def __init__(self, step: int, result: FinetuneResult | None = None) -> None:
        super().__init__(f"fine-tuning cancelled after step {step}")
        self.step = step
        self.result = result


class FinetuneDiverged(RuntimeError):
    """The loss or the gradients were NaN/inf too many steps in a row; no model is returned."""


@dataclass
class FinetuneSettings:
    """Fine-tuning settings (travel with the style model's metadata).

    steps: Adam steps (1..100000; the paper uses 200-500). lr: learning rate (> 0, <= 1).
    space/preset/layers/blend: the paired set's mask (`jojogan.mixing.build_mask`); ``layers``
    (custom mixed layers) overrides ``preset``; ``blend`` is the released code's training-time
    alpha (1 = mixed layers fully random). feature_layers: discriminator taps (None: the released
    code's (1,3,4,5), truncated to the discriminator's depth). grayscale: compare luminance only
    (colour preservation). id_weight: identity-loss weight (0 = off; the paper uses 2e3..5e3;
    needs an ArcFace model). refs_per_chunk: references per forward/backward (memory), the
    gradient is accumulated over all references every step. noise_mode: "const", "random" or
    "none". seed: every random draw; None (with ``rng="global"``) draws from torch's global
    generators as they stand. rng: "local" (our own `torch.Generator(seed)` on the CPU: z, noise,
    every draw; the global RNG untouched) or "global" (torch's global generators in the released
    notebook's order: each step ``torch.randn([R, style_dim])`` on the CPU for z, then one noise
    map per synthesis layer on the generator's device; an integer seed seeds them inside
    `global_rng`, which restores them afterwards). reference_features: "once" (the reference's
    discriminator features computed once) or "every_step" (recomputed each step, as the released
    code does; same values). preset_indices: "scaled" (a preset's 1024 px W+ indices mapped to
    smaller generators by relative depth, `jojogan.mixing`) or "literal" (the released code's
    ``id_swap``: full = W+ ``range(7, n_latent)`` at any size, preserve_color = [9,11,15,16,17],
    which exists only at 1024 px and is refused below). max_bad_steps: NaN/inf steps in a row
    before giving up.
    preview_every: render a preview every N steps for the callback (0 = never).
    structure_weight / gram_weight: the structure (edges of random faces kept) and texture (Gram
    of shallow discriminator features matched to the reference) terms above, 0 = off (the paper);
    random_faces: the random faces per step they use (1..64).
    keep_partial: on cancel, attach the partial model to the exception.
    train_layers: the S layers (indices in the order of `Generator.styles`: conv1, to_rgb1,
    convs[0], convs[1], to_rgbs[0], ...; the constant input goes with 0) whose synthesis weights
    are fine-tuned; None = all of them (the paper, the released code). Training only the finest
    layers leaves the layout and colours that the coarse layers make to the input (the toy
    recipe of `python -m jojogan demo`).
    precision: "float32" (default, exact), "tf32" (CUDA) or "bf16" (autocast of the generator and
    discriminator; the loss, the reference features and Adam stay float32): `jojogan.devices`.
    channels_last: NHWC activations (`jojogan.ops.set_channels_last`); None = on for CPU, where
    it measured faster, off elsewhere. compile: run the generator + discriminator forward through
    `torch.compile` (fused elementwise kernels; the first step pays the compile time, reported by
    benchmarks/bench_gpu.py; float32 results equal eager ones to rounding).

    `FinetuneSettings.released()` gives the released notebook's recipe; the defaults here are
    the pack's own (constant noise, scaled presets, a seed of our own).
    """

    steps: int = 300
    lr: float = 2e-3
    betas: tuple[float, float] = (0.0, 0.99)
    space: str = "w+"
    preset: str | None = "full"
    layers: tuple[int, ...] | None = None
    blend: float = 1.0
    feature_layers: tuple[int, ...] | None = None
    train_layers: tuple[int, ...] | None = None
    grayscale: bool = False
    id_weight: float = 0.0
    structure_weight: float = 0.0
    gram_weight: float = 0.0
    random_faces: int = 4
    refs_per_chunk: int = 4
    noise_mode: str = "const"
    seed: int | None = 0
    rng: str = "local"
    reference_features: str = "once"
    preset_indices: str = "scaled"
    max_bad_steps: int = 10
    preview_every: int = 0
    keep_partial: bool = False
    precision: str = "float32"
    channels_last: bool | None = None
    compile: bool = False

    def validate(
        self, generator: nn.Module | None = None, discriminator: nn.Module | None = None
    ) -> None:
        """Raise ValueError naming the bad field; checks layer ranges against the models."""

        def bad(name: str, why: str) -> ValueError:
            return ValueError(f"FinetuneSettings.{name}: {why} (got {getattr(self, name)!r})")

        if isinstance(self.steps, bool) or not isinstance(self.steps, int):
            raise bad("steps", "must be an integer")
        if not 1 <= self.steps <= MAX_STEPS:
            raise bad("steps", f"must be between 1 and {MAX_STEPS} (the paper uses 200-500)")
        if not _finite_number(self.lr) or not 0 < self.lr <= 1:
            raise bad("lr", "must be a number > 0 and <= 1 (the paper uses 2e-3)")
        if len(self.betas) != 2 or not all(_finite_number(b) and 0 <= b < 1 for b in self.betas):
            raise bad("betas", "must be two numbers in [0,1)")
        if self.space not in SPACES:
            raise bad("space", f"must be one of {SPACES}")
        if self.layers is None and self.preset not in PRESETS:
            raise bad("preset", f"unknown preset; choose one of {PRESETS} or give layers")
        if self.layers is not None and len(tuple(self.layers)) == 0:
            raise bad("layers", "the custom layer list is empty")
        if not _finite_number(self.blend) or not 0 <= self.blend <= 1:
            raise bad("blend", "must be in [0,1] (1 = mixed layers fully random)")
        if not _finite_number(self.id_weight) or not 0 <= self.id_weight <= 1e5:
            raise bad("id_weight", "must be in [0, 1e5] (the paper uses 2e3..5e3)")
        for name in ("structure_weight", "gram_weight"):
            if not _finite_number(getattr(self, name)) or not 0 <= getattr(self, name) <= 1e5:
                raise bad(name, "must be in [0, 1e5] (0 = off)")
        rf = self.random_faces
        if isinstance(rf, bool) or not isinstance(rf, int) or not 1 <= rf <= 64:
            raise bad("random_faces", "must be an integer in 1..64")
        if not isinstance(self.refs_per_chunk, int) or self.refs_per_chunk < 1:
            raise bad("refs_per_chunk", "must be an integer >= 1")
        if self.noise_mode not in NOISE_MODES:
            raise bad("noise_mode", f"must be one of {NOISE_MODES}")
        if self.rng not in RNGS:
            raise bad("rng", f"must be one of {RNGS}")
        if self.seed is None:
            if self.rng != "global":
                raise bad(
                    "seed",
                    "None draws from torch's global generator and needs rng='global' "
                    "(FinetuneSettings.released() sets it); give an integer for our own stream",
                )
        elif not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise bad("seed", "must be an integer, or None with rng='global'")
        if self.reference_features not in REFERENCE_FEATURES:
            raise bad("reference_features", f"must be one of {REFERENCE_FEATURES}")
        if self.preset_indices not in PRESET_INDICES:
            raise bad("preset_indices", f"must be one of {PRESET_INDICES}")
        if self.preset_indices == "literal" and (
            self.space != "w+" or self.layers is not None or self.preset not in _LITERAL
        ):
            raise bad(
                "preset_indices",
                "'literal' is the released code's id_swap: it needs space='w+', layers=None and "
                f"preset 'full' or 'preserve_color' (space={self.space!r}, preset={self.preset!r},"
                f" layers={self.layers!r})",
            )
        if not isinstance(self.max_bad_steps, int) or self.max_bad_steps < 1:
            raise bad("max_bad_steps", "must be an integer >= 1")
        if not isinstance(self.preview_every, int) or self.preview_every < 0:
            raise bad("preview_every", "must be an integer >= 0")
        if self.precision not in PRECISIONS:
            raise bad("precision", f"must be one of {PRECISIONS}")
        if self.channels_last not in (None, True, False):
            raise bad("channels_last", "must be True, False or None (auto)")
        if self.compile not in (True, False):
            raise bad("compile", "must be True or False")
        if self.feature_layers is not None and len(tuple(self.feature_layers)) == 0:
            raise bad("feature_layers", "must name at least one discriminator layer")
        if self.train_layers is not None and len(tuple(self.train_layers)) == 0:
            raise bad("train_layers", "must name at least one synthesis layer (None = all)")
        if generator is not None:
            self.mask(generator)  # raises for layers out of range
            self.trainable_layers(generator)
        if discriminator is not None:
            self.taps(discriminator)

    @classmethod
    def released(
        cls,
        steps: int = 300,
        strength: float = 1.0,
        preserve_color: bool = False,
        *,
        seed: int | None = None,
        rng: str | None = None,
        **operational: Any,
    ) -> FinetuneSettings:
        """The released notebook's training cell (`stylize.ipynb`, "Finetune StyleGAN").

        ``num_iter = steps``; its slider ``alpha = strength`` (the loop's ``alpha = 1 - strength``
        keeps that share of the reference's code on the mixed layers: ``blend = strength``);
        ``id_swap = range(7, n_latent)``, or [9,11,15,16,17] with ``preserve_color`` (1024 px
        only: refused below, where those latents do not exist); Adam lr 2e-3, betas (0, 0.99),
        every synthesis parameter trained (the notebook's mapping gets no gradient, see the
        module docstring); loss the mean over the discriminator taps (1,3,4,5, as far as the
        discriminator has them) of the L1 between features; random noise; no other term.

        seed None (default): torch's global generators in the notebook's order (``rng`` becomes
        "global"), so ``torch.manual_seed(s)`` then `finetune` reproduces the notebook run after
        the same ``torch.manual_seed(s)`` (CPU, float32). An integer: our own stream (``rng``
        "local"), or with ``rng="global"`` the notebook's stream after ``torch.manual_seed(seed)``
        with the global RNG restored afterwards. ``operational``: fields that do not change the
        recipe (refs_per_chunk, reference_features, precision, preview_every, keep_partial,
        channels_last, compile, max_bad_steps).
        """
        bad = sorted(k for k in operational if k not in _NOT_RECIPE)
        if bad:
            raise TypeError(
                f"FinetuneSettings.released: {bad} would change the released recipe; build "
                "FinetuneSettings(...) or dataclasses.replace() the result instead"
            )
        st = cls(
            steps=steps,
            lr=2e-3,
            betas=(0.0, 0.99),
            space="w+",
            preset="preserve_color" if preserve_color else "full",
            layers=None,
            blend=strength,
            preset_indices="literal",
            feature_layers=None,
            train_layers=None,
            grayscale=False,
            id_weight=0.0,
            structure_weight=0.0,
            gram_weight=0.0,
            noise_mode="random",
            seed=seed,
            rng=rng if rng is not None else ("global" if seed is None else "local"),
            **operational,
        )
        st.validate()
        return st

    def recipe(self) -> str:
        """The recipe's name: "released" (what `released` makes, up to steps, strength,
        preserve_color and the fields that only change how it is computed, `_NOT_RECIPE`),
        "default" (likewise for the pack's own defaults) or "custom"."""
        mine = {k: v for k, v in self.to_dict().items() if k not in _NOT_RECIPE}
        if _finite_number(self.blend) and 0 <= self.blend <= 1:
            rel = FinetuneSettings.released(
                strength=self.blend, preserve_color=self.preset == "preserve_color"
            ).to_dict()
            if mine == {k: v for k, v in rel.items() if k not in _NOT_RECIPE}:
                return "released"
        default = FinetuneSettings().to_dict()
        if mine == {k: v for k, v in default.items() if k not in _NOT_RECIPE}:
            return "default"
        return "custom"

    def mask(self, generator: nn.Module) -> MixingMask:
        """The mask M for ``generator`` (ValueError if a layer is out of range)."""
        if self.preset_indices == "literal":
            return _literal_mask(generator, str(self.preset), float(self.blend))
        return build_mask(
            generator,
            self.space,
            self.preset,
            None if self.layers is None else tuple(self.layers),
            self.blend,
        )

    def trainable_layers(self, generator: nn.Module) -> tuple[int, ...]:
        """The S layers whose weights are fine-tuned (ValueError if one is out of range)."""
        n = int(generator.n_styles)
        if self.train_layers is None:
            return tuple(range(n))
        idx = {int(i) for i in self.train_layers}
        bad = sorted(i for i in idx if i < 0 or i >= n)
        if bad:
            raise ValueError(
                f"FinetuneSettings.train_layers: {bad} out of range for this {generator.size} px "
                f"generator (S layers 0..{n - 1})"
            )
        return tuple(sorted(idx))

    def taps(self, discriminator: nn.Module) -> tuple[int, ...]:
        """The discriminator taps for ``discriminator`` (ValueError if out of range)."""
        n = n_feature_layers(discriminator)
        if self.feature_layers is None:
            return default_feature_layers(discriminator)
        taps = tuple(int(i) for i in self.feature_layers)
        bad = [i for i in taps if i < 0 or i >= n]
        if bad:
            raise ValueError(
                f"FinetuneSettings.feature_layers: {bad} out of range for this "
                f"{discriminator.size} px discriminator (layers 0..{n - 1})"
            )
        return taps

    def to_dict(self) -> dict:
        """Every field, JSON-ready (tuples as lists)."""
        d = dataclasses.asdict(self)
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = list(v)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> FinetuneSettings:
        """Settings from `to_dict` output, also from older versions (missing fields take their
        defaults); an unknown field is a ValueError naming it."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"FinetuneSettings.from_dict: unknown fields {unknown}")
        kw = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        return cls(**kw)


_LITERAL = ("full", "preserve_color")


def _literal_mask(generator: nn.Module, preset: str, blend: float) -> MixingMask:
    """The released code's ``id_swap`` on ``generator``, unscaled (ValueError where it has no
    meaning: preserve_color below 1024 px, full with fewer than 8 W+ latents)."""
    n = int(generator.n_latent)
    if preset == "preserve_color":
        mixed = RELEASED_PRESERVE_COLOR
        if max(mixed) >= n:
            raise ValueError(
                f"FinetuneSettings: the released preserve_color layers {list(mixed)} exist only "
                f"at 1024 px (18 W+ latents); this {generator.size} px generator has {n}. Use "
                "preset_indices='scaled' (the same layers by relative depth) or give layers=..."
            )
    else:
        mixed = tuple(range(RELEASED_FIRST_MIXED, n))
        if not mixed:
            raise ValueError(
                f"FinetuneSettings: the released full mask mixes W+ layers 7..n_latent-1; this "
                f"{generator.size} px generator has {n} latents, so nothing would be mixed. Use "
                "preset_indices='scaled' or give layers=..."
            )
    b = float(blend)
    weights = tuple(1.0 - b if i in mixed else 1.0 for i in range(n))
    return MixingMask(space="w+", weights=weights, preset=preset, blend=b)


@contextlib.contextmanager
def global_rng(seed: int | None, device: torch.device | str = "cpu") -> Iterator[None]:
    """Seed torch's global CPU generator and ``device``'s with ``seed`` for the block, as
    ``torch.manual_seed(seed)`` would for them, and restore both states afterwards (the block's
    draws leave no trace, so other ComfyUI nodes see the global RNG as it was). seed None: the
    global generators as they stand, advanced by the block."""
    if seed is None:
        yield
        return
    dev = torch.device(device)
    cpu = torch.get_rng_state()
    acc = None
    if dev.type == "cuda":
        dev = torch.device("cuda", torch.cuda.current_device() if dev.index is None else dev.index)
        acc = torch.cuda.get_rng_state(dev)
    elif dev.type == "mps":
        acc = torch.mps.get_rng_state()
    try:
        torch.default_generator.manual_seed(int(seed))
        if dev.type == "cuda":
            with torch.cuda.device(dev):
                torch.cuda.manual_seed(int(seed))
        elif dev.type == "mps":
            torch.mps.manual_seed(int(seed))
        yield
    finally:
        torch.set_rng_state(cpu)
        if dev.type == "cuda":
            torch.cuda.set_rng_state(acc, dev)
        elif dev.type == "mps":
            torch.mps.set_rng_state(acc)


def n_feature_layers(discriminator: nn.Module) -> int:
    """How many taps ``discriminator`` has (its ``convs`` blocks): feature_layers are 0..n-1."""
    return len(discriminator.convs)


def default_feature_layers(discriminator: nn.Module) -> tuple[int, ...]:
    """The released taps (1,3,4,5), dropping those deeper than a small discriminator has."""
    n = n_feature_layers(discriminator)
    taps = tuple(i for i in DEFAULT_FEATURE_LAYERS if i < n)
    return taps or (n - 1,)


def _layer_parameter_ids(g: nn.Module, layers: Sequence[int]) -> set[int]:
    """ids of the synthesis parameters of S layers ``layers`` (the constant input with 0)."""
    per_layer = g._style_layers()
    ids = {id(p) for i in layers for p in per_layer[i][0].parameters()}
    if 0 in layers:
        ids |= {id(p) for p in g.input.parameters()}
    return ids


def _finite_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


@dataclass
class FinetuneResult:
    """The fine-tuned generator (eval mode, no grad) and how it was made."""

    generator: nn.Module
    settings: FinetuneSettings
    mask: MixingMask
    feature_layers: tuple[int, ...]
    losses: list[float] = field(default_factory=list)
    gram_layers: tuple[int, ...] = ()  # the texture term's taps (empty when it is off)
    skipped_steps: int = 0
    steps_done: int = 0
    n_references: int = 0
    seconds: float = 0.0
    cancelled: bool = False
    resume_state: dict | None = field(default=None, repr=False)


def _grayscale(x: Tensor) -> Tensor:
    return to_grayscale(x)


def _edges(images: Tensor) -> Tensor:
    """The structure term's edges: `jojogan.invert.edge_map` at most STRUCTURE_SIZE px."""
    return edge_map(images, STRUCTURE_SIZE)


def _gram_taps(d: nn.Module) -> tuple[int, ...]:
    return tuple(i for i in GRAM_LAYERS if i < len(d.convs))


def _gram(f: Tensor) -> Tensor:
    """Channel Gram matrices [B,C,C] of features [B,C,H,W], divided by C*H*W."""
    b, c, h, w = f.shape
    x = f.float().flatten(2)
    return x @ x.transpose(1, 2) / (c * h * w)


def _check_references(references: Tensor, size: int) -> Tensor:
    if not isinstance(references, Tensor) or references.ndim != 4 or references.shape[1] != 3:
        shape = tuple(references.shape) if isinstance(references, Tensor) else type(references)
        raise ValueError(f"finetune: references must be images [R,3,H,W] in [-1,1], got {shape}")
    if references.shape[0] == 0:
        raise ValueError("finetune: the reference list is empty; give at least one style image")
    if not torch.isfinite(references).all():
        raise ValueError("finetune: references contain NaN or infinite values")
    if references.abs().max() > 1.0 + 1e-3:
        raise ValueError(
            "finetune: references must be in [-1,1] (got values up to "
            f"{float(references.abs().max()):.3g}); convert images with x * 2 - 1"
        )
    if references.shape[-2:] != (size, size):
        references = resize_square(references, size)
    return references


def _check_codes(codes: Tensor | Sequence[Tensor], generator: nn.Module, n: int) -> None:
    if isinstance(codes, Tensor):
        want = (n, generator.n_latent, generator.style_dim)
        if tuple(codes.shape) != want:
            raise ValueError(
                f"finetune: W+ codes must have shape {list(want)} (one per reference), "
                f"got {list(codes.shape)}"
            )
        if not torch.isfinite(codes).all():
            raise ValueError("finetune: the codes contain NaN or infinite values")
        return
    codes = list(codes)
    if len(codes) != generator.n_styles:
        raise ValueError(
            f"finetune: S codes must be a list of {generator.n_styles} tensors, got {len(codes)}"
        )
    if any(c.shape[0] != n for c in codes):
        raise ValueError(f"finetune: S codes must have one row per reference ({n})")


def _slice(codes: Tensor | list[Tensor], a: int, b: int) -> Tensor | list[Tensor]:
    return codes[a:b] if isinstance(codes, Tensor) else [c[a:b] for c in codes]


def _render(g: nn.Module, codes: Tensor | list[Tensor], noise: list | None, mode: str) -> Tensor:
    if isinstance(codes, Tensor):
        return g.synthesis(codes, noise_mode=mode, noise=noise)
    return g.synthesis_from_styles(codes, noise_mode=mode, noise=noise)


def _forward(
    g: nn.Module,
    d: nn.Module,
    codes: Tensor | list[Tensor],
    noise: list | None,
    mode: str,
    grayscale: bool,
    taps: tuple[int, ...],
) -> tuple[Tensor, list[Tensor]]:
    """One chunk's forward: G(codes) and the discriminator features compared in Eq. 2."""
    img = _render(g, codes, noise, mode)
    return img, d.features(_grayscale(img) if grayscale else img, taps)


def _rng_state(device: torch.device) -> dict:
    """The global generators' state (CPU, and ``device``'s) for resuming a global-stream run."""
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    elif device.type == "mps":
        state["mps"] = torch.mps.get_rng_state()
    return state


def _set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)
    elif "mps" in state:
        torch.mps.set_rng_state(state["mps"])


def finetune(
    generator: nn.Module,
    discriminator: nn.Module,
    references: Tensor,
    codes: Tensor | Sequence[Tensor],
    settings: FinetuneSettings | None = None,
    *,
    arcface: nn.Module | None = None,
    callback: Callback | None = None,
    preview_codes: Tensor | Sequence[Tensor] | None = None,
    resume: FinetuneResult | None = None,
) -> FinetuneResult:
    """Fine-tune a copy of ``generator`` on the paired set of the references (Eq. 1-3).

    generator: the base StyleGAN2 (left unchanged). discriminator: its pretrained discriminator
    (weights not changed; temporarily frozen). references: style images [R,3,H,W] in [-1,1]
    (resized to the generator's size when needed). codes: their inversions, W+ [R,n_latent,D] or
    S codes (list of [R,C_l]) when ``settings.space == "s"``. Each reference gets its own mixed
    codes every step (multi-shot, Sec. 4). arcface: an ArcFace model, needed when
    ``settings.id_weight > 0``. callback(step, loss, preview): called after every step (preview
    [B,3,H,W] every ``preview_every`` steps, else None); returning False or raising
    FinetuneCancelled cancels. Any other exception from it propagates, no model is returned.

    resume: a partial result (``FinetuneCancelled.result`` with ``keep_partial``) to continue
    from, with the same settings (``steps`` may be larger) and inputs: the model, the optimiser
    and the random stream continue, so the final bytes equal an uninterrupted run's.

    Returns a FinetuneResult; raises FinetuneDiverged after ``max_bad_steps`` NaN/inf steps in a
    row, ValueError for bad settings or inputs (before any work).
    """
    settings = settings or FinetuneSettings()
    if not isinstance(settings, FinetuneSettings):
        raise TypeError("finetune: settings must be a FinetuneSettings")
    settings.validate(generator, discriminator)
    if discriminator.size != generator.size:
        raise ValueError(
            f"finetune: the discriminator is for {discriminator.size} px, the generator for "
            f"{generator.size} px; use the pair from the same checkpoint"
        )
    references = _check_references(references, generator.size)
    n_ref = references.shape[0]
    if settings.space == "w+" and not isinstance(codes, Tensor):
        raise ValueError("finetune: space='w+' needs W+ codes [R,n_latent,D]")
    if settings.space == "s" and isinstance(codes, Tensor):
        codes = generator.styles(codes.to(generator.input.input))
    _check_codes(codes, generator, n_ref)
    if settings.id_weight > 0 and arcface is None:
        raise ValueError(
            "finetune: id_weight > 0 needs an ArcFace model (arcface=load_arcface(...)); "
            "download model_ir_se50.pth or set id_weight=0"
        )
    mask = settings.mask(generator)
    taps = settings.taps(discriminator)

    ref = generator.input.input
    device, dtype = ref.device, ref.dtype
    references = references.to(device=device, dtype=dtype)
    codes = (
        codes.detach().to(device=device, dtype=dtype)
        if isinstance(codes, Tensor)
        else [c.detach().to(device=device, dtype=dtype) for c in codes]
    )
    if preview_codes is None:
        preview_codes = codes

    if resume is not None:
        _check_resume(resume, settings, n_ref)
    g_new = copy.deepcopy(generator if resume is None else resume.generator)
    g_new.eval()
    chosen = None
    if settings.train_layers is not None:
        chosen = _layer_parameter_ids(g_new, settings.trainable_layers(g_new))
    trainable = []
    for name, p in g_new.named_parameters():
        keep = not name.startswith("style.") and (chosen is None or id(p) in chosen)
        p.requires_grad_(keep)
        if keep:
            trainable.append(p)
    opt = torch.optim.Adam(trainable, lr=settings.lr, betas=tuple(map(float, settings.betas)))
    if resume is not None:
        opt.load_state_dict(resume.resume_state["optimizer"])

    d_flags = [p.requires_grad for p in discriminator.parameters()]
    d_training = discriminator.training
    discriminator.requires_grad_(False).eval()
    a_flags = None
    if arcface is not None:
        a_flags = [p.requires_grad for p in arcface.parameters()]
        arcface.requires_grad_(False).eval()
    base_flags = [p.requires_grad for p in generator.parameters()]
    generator.requires_grad_(False)

    result = FinetuneResult(g_new, settings, mask, taps, n_references=n_ref)
    if settings.gram_weight > 0:
        result.gram_layers = _gram_taps(discriminator)
    if resume is not None:
        result.losses = list(resume.losses)
        result.skipped_steps = resume.skipped_steps
        result.steps_done = resume.steps_done
        result.resume_state = resume.resume_state
    t0 = time.perf_counter()
    nhwc = settings.channels_last
    if nhwc is None:
        nhwc = device.type == "cpu"
    # an integer seed with rng="global": the notebook's stream, the caller's RNG state restored
    seeded = (
        global_rng(settings.seed, device) if settings.rng == "global" else contextlib.nullcontext()
    )
    try:
        with ops.channels_last(nhwc), seeded:
            _run(
                generator,
                g_new,
                discriminator,
                arcface,
                references,
                codes,
                preview_codes,
                mask,
                taps,
                settings,
                opt,
                trainable,
                callback,
                result,
            )
    except torch.OutOfMemoryError:
        extra = (
            f", random_faces (now {settings.random_faces})"
            if settings.structure_weight > 0 or settings.gram_weight > 0
            else ""
        )
        raise RuntimeError(
            f"finetune: out of memory. Lower refs_per_chunk (now {settings.refs_per_chunk})"
            f"{extra}, use a smaller generator or run on a larger device."
        ) from None
    finally:
        for p, f in zip(discriminator.parameters(), d_flags, strict=True):
            p.requires_grad_(f)
        discriminator.train(d_training)
        if arcface is not None and a_flags is not None:
            for p, f in zip(arcface.parameters(), a_flags, strict=True):
                p.requires_grad_(f)
        for p, f in zip(generator.parameters(), base_flags, strict=True):
            p.requires_grad_(f)
    result.seconds = time.perf_counter() - t0
    return result


def _run(
    g_base: nn.Module,
    g_new: nn.Module,
    d: nn.Module,
    arcface: nn.Module | None,
    references: Tensor,
    codes: Tensor | list[Tensor],
    preview_codes: Tensor | Sequence[Tensor],
    mask: MixingMask,
    taps: tuple[int, ...],
    st: FinetuneSettings,
    opt: torch.optim.Optimizer,
    trainable: list[nn.Parameter],
    callback: Callback | None,
    result: FinetuneResult,
) -> None:
    n_ref = references.shape[0]
    chunk = st.refs_per_chunk
    bounds = [(a, min(a + chunk, n_ref)) for a in range(0, n_ref, chunk)]
    gram_taps = _gram_taps(d)
    ref_grams: list[Tensor] = []

    def reference_features() -> list[list[Tensor]]:
        """Eq. 2's targets D_t(y) per chunk (no gradient; deterministic, so computing them
        once or every step gives the same values)."""
        with torch.no_grad():
            out = []
            for a, b in bounds:
                y = _grayscale(references[a:b]) if st.grayscale else references[a:b]
                out.append([f.detach() for f in d.features(y, taps)])
        return out

    ref_feats = reference_features()
    if st.gram_weight > 0:  # the texture term's target: the references' mean Gram
        with torch.no_grad():
            for a, b in bounds:
                y = _grayscale(references[a:b]) if st.grayscale else references[a:b]
                grams = [_gram(f).sum(0) / n_ref for f in d.features(y, gram_taps)]
                if ref_grams:
                    grams = [x + g for x, g in zip(ref_grams, grams, strict=True)]
                ref_grams = grams
    device = references.device
    # None: the global generators, in the released notebook's order (z on the CPU, noise on
    # the device); else our own stream
    rng = None if st.rng == "global" else torch.Generator().manual_seed(int(st.seed))
    start = result.steps_done + 1
    if result.resume_state is None and start > 1:
        raise ValueError("finetune: cannot resume without the partial result's state")
    if start > 1:
        if rng is None:
            _set_rng_state(result.resume_state["rng"], device)
        else:
            rng.set_state(result.resume_state["rng"])
        result.resume_state = None
    mode = st.noise_mode
    forward = torch.compile(_forward, dynamic=False) if st.compile else _forward
    bad_in_a_row = 0
    for step in range(start, st.steps + 1):
        opt.zero_grad(set_to_none=True)
        # the released loop: z = randn([R, D]) (CPU), w = mapping(z) without gradient, Eq. 1,
        # then the forward's noise maps, layer by layer
        rand = sample_random_codes(g_base, n_ref, rng, mask.space)
        mixed = mix_codes(codes, rand, mask)
        noise = g_new.random_noise(n_ref, references, rng) if mode == "random" else None
        if st.reference_features == "every_step" and step > start:
            ref_feats = reference_features()
        # The step's loss and its finiteness stay on the device until one read at the end:
        # a host read per chunk and per parameter (~80) stalled the GPU's queue each time.
        # float64 accumulation, as the Python floats summed here before.
        total_t = torch.zeros((), dtype=torch.float64, device=device)
        for (a, b), rf in zip(bounds, ref_feats, strict=True):
            part = _slice(mixed, a, b)
            nz = None if noise is None else [n[a:b] for n in noise]
            with precision(references.device, st.precision):
                img, feats = forward(g_new, d, part, nz, mode, st.grayscale, taps)
            loss = sum(F.l1_loss(f.float(), r) for f, r in zip(feats, rf, strict=True)) / len(taps)
            if st.id_weight > 0:
                with torch.no_grad():
                    orig = _render(g_base, part, nz, mode)
                loss = loss + st.id_weight * identity_loss(arcface, orig, img, grayscale=True)
            ((b - a) / n_ref * loss).backward()
            total_t = total_t + loss.detach().double() * ((b - a) / n_ref)
            del img, feats, loss  # free this chunk's tensors before the next
        if st.structure_weight > 0 or st.gram_weight > 0:
            reg = _random_face_terms(g_base, g_new, d, st, rng, references, gram_taps, ref_grams)
            reg.backward()
            total_t = total_t + reg.detach().double()
            del reg
        finite = [torch.isfinite(p.grad).all() for p in trainable if p.grad is not None]
        ok_t = torch.isfinite(total_t)
        if finite:
            ok_t = ok_t & torch.stack(finite).all()
        ok = bool(ok_t)  # the step's one wait for the device
        total = float(total_t)
        if not ok:
            opt.zero_grad(set_to_none=True)
            result.skipped_steps += 1
            bad_in_a_row += 1
            result.losses.append(float("nan"))
            if bad_in_a_row >= st.max_bad_steps:
                raise FinetuneDiverged(
                    f"fine-tuning diverged at step {step}: the loss or its gradient was NaN/inf "
                    f"{bad_in_a_row} steps in a row ({result.skipped_steps} skipped in all). "
                    "No model was returned; lower lr or check the inputs."
                )
            total = float("nan")
        else:
            bad_in_a_row = 0
            opt.step()
            result.losses.append(total)
        result.steps_done = step
        if callback is not None:
            preview = None
            if st.preview_every and (step % st.preview_every == 0 or step == st.steps):
                with torch.no_grad():
                    preview = _render(
                        g_new,
                        list(preview_codes)
                        if not isinstance(preview_codes, Tensor)
                        else preview_codes,
                        None,
                        "const",
                    )
            try:
                answer = callback(step, total, preview)
            except FinetuneCancelled:
                answer = False
            if answer is False:
                _finish(g_new, step, cancelled=True)
                result.cancelled = True
                if st.keep_partial:
                    result.resume_state = {
                        "optimizer": copy.deepcopy(opt.state_dict()),
                        "rng": _rng_state(device) if rng is None else rng.get_state(),
                    }
                raise FinetuneCancelled(step, result if st.keep_partial else None)
    _finish(g_new, st.steps, cancelled=False)


def _random_face_terms(
    g_base: nn.Module,
    g_new: nn.Module,
    d: nn.Module,
    st: FinetuneSettings,
    rng: torch.Generator | None,
    like: Tensor,
    gram_taps: tuple[int, ...],
    ref_grams: list[Tensor],
) -> Tensor:
    """The structure and texture terms on ``st.random_faces`` fully random faces (one draw)."""
    w = sample_random_codes(g_base, st.random_faces, rng, "w+")
    mode = st.noise_mode
    noise = g_new.random_noise(st.random_faces, like, rng) if mode == "random" else None
    with precision(like.device, st.precision):
        img = _render(g_new, w, noise, mode)
        loss = img.new_zeros((), dtype=torch.float32)
        if st.structure_weight > 0:
            with torch.no_grad():
                target = _edges(_render(g_base, w, noise, mode).float())
            loss = loss + st.structure_weight * F.l1_loss(_edges(img.float()), target)
        if st.gram_weight > 0:
            feats = d.features(_grayscale(img) if st.grayscale else img, gram_taps)
            terms = [
                F.l1_loss(_gram(f), r.expand(f.shape[0], -1, -1))
                for f, r in zip(feats, ref_grams, strict=True)
            ]
            loss = loss + st.gram_weight * sum(terms) / len(terms)
    return loss


def _check_resume(resume: FinetuneResult, settings: FinetuneSettings, n_ref: int) -> None:
    if not isinstance(resume, FinetuneResult) or resume.resume_state is None:
        raise ValueError(
            "finetune: resume must be the partial result of a cancelled run with keep_partial=True"
        )
    a, b = resume.settings.to_dict(), settings.to_dict()
    a.pop("steps")
    b.pop("steps")
    diff = sorted(k for k in a if a[k] != b[k] and k not in ("keep_partial", "preview_every"))
    if diff:
        raise ValueError(f"finetune: resume needs the same settings; these differ: {diff}")
    if resume.n_references != n_ref:
        raise ValueError("finetune: resume needs the same references")
    if resume.steps_done >= settings.steps:
        raise ValueError(
            f"finetune: the partial run already did {resume.steps_done} steps; ask for more"
        )


def _finish(g_new: nn.Module, step: int, cancelled: bool) -> None:
    g_new.requires_grad_(False).eval()
    for name, t in g_new.state_dict().items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise FinetuneDiverged(
                f"fine-tuning diverged at step {step}: weight {name} holds NaN/inf; no model was "
                "returned. Lower lr."
            )


# ---------------------------------------------------------------------- the Finetune node's rule

# Fields a paired set's recipe sets (the released notebook's, or Build Mixed Dataset's mask):
# not widgets of their own.
_RECIPE_FIELDS = frozenset(
    {"steps", "seed", "rng", "space", "preset", "layers", "blend", "betas", "preset_indices"}
)
# Widgets that list layers as text, and how many layers each model has for them.
_LAYER_TEXT = {
    "feature_layers": lambda g, d: n_feature_layers(d),
    "train_layers": lambda g, d: int(g.n_styles),
}


def _widget_names(msg: str) -> str:
    """A FinetuneSettings message as the nodes' widgets are named ('steps', not
    FinetuneSettings.steps)."""
    return re.sub(r"FinetuneSettings\.(\w+)", r"'\1'", msg)


def settings_from_widgets(
    generator: nn.Module,
    discriminator: nn.Module,
    *,
    mixing: dict | None = None,
    arcface: nn.Module | None = None,
    steps: int = 300,
    seed: int = 0,
    strength: float = 1.0,
    preserve_color: bool = False,
    **fields: Any,
) -> FinetuneSettings:
    """The settings of a Finetune run from widget values named as the fields they set.

    The recipe first: with ``mixing`` None, the released notebook's
    (`FinetuneSettings.released(steps, strength, preserve_color)`, the notebook's draws after
    ``torch.manual_seed(seed)``, the global RNG restored); with a paired set's ``mixing``
    (space, preset, layers, blend: Build Mixed Dataset's), the pack's settings with that mask
    and our own seeded stream, where ``strength`` and ``preserve_color`` do not apply. Every
    other field named in ``fields`` then replaces the recipe's (left at the recipe's values, the
    released recipe stays exact); ``feature_layers`` and ``train_layers`` may be text ("1,3-5",
    `jojogan.mixing.parse_layers`; "" = the default). Checked against ``generator`` and
    ``discriminator``; ``id_weight`` > 0 needs ``arcface``. A bad value is a ValueError naming
    the widget ('strength' for the released recipe's blend).
    """
    unknown = sorted(set(fields) - {f.name for f in dataclasses.fields(FinetuneSettings)})
    recipe = sorted(set(fields) & _RECIPE_FIELDS)
    if unknown or recipe:
        raise ValueError(
            f"settings_from_widgets: {unknown or recipe} are not Finetune widgets "
            "(the paired set's recipe sets space, preset, layers and blend)"
        )
    for name, count in _LAYER_TEXT.items():
        if isinstance(fields.get(name), str):
            fields[name] = parse_layers(fields[name], count(generator, discriminator), f"'{name}'")
    if mixing is None:
        base = FinetuneSettings.released(steps, strength, preserve_color, seed=seed, rng="global")
    else:
        if strength != 1.0 or preserve_color:
            raise ValueError(
                "'strength' and 'preserve_color' apply to 'references' + 'latent'; with a "
                "'dataset', set its preset and blend on Build Mixed Dataset"
            )
        base = FinetuneSettings(steps=steps, seed=seed, **mixing)
    try:
        settings = dataclasses.replace(base, **fields)
        settings.validate(generator, discriminator)
    except ValueError as e:
        # the core names its fields; the widgets are named alike (blend is 'strength' here)
        msg = str(e)
        if mixing is None:
            msg = msg.replace("FinetuneSettings.blend", "'strength'")
        raise ValueError(_widget_names(msg)) from None
    if settings.id_weight > 0 and arcface is None:
        raise ValueError(
            "'id_weight' > 0 needs the 'arcface' input (an ArcFace IR-SE50 model, "
            "model_ir_se50.pth), or set id_weight to 0"
        )
    return settings


def mixing_from_widgets(
    generator: nn.Module,
    *,
    space: str = "w+",
    preset: str = "full",
    layers: str = "",
    blend: float = 1.0,
    seed: int = 0,
) -> FinetuneSettings:
    """The paired set's settings from Build Mixed Dataset's widgets: ``preset`` one of `PRESETS`
    or "custom", which takes ``layers`` as text ("7-17", `jojogan.mixing.parse_layers`, checked
    against ``generator``'s layers in ``space``). 'layers' belongs to "custom" alone: a list
    with another preset is refused, not ignored, and "custom" without one is refused. Every
    value is checked here (the presets fit any generator depth), so ``settings.mask(generator)``
    then succeeds. A bad value is a ValueError naming the widget."""
    if space not in SPACES:
        raise ValueError(f"'space' must be one of {SPACES}, got {space!r}")
    n_layers = int(generator.n_latent) if space == "w+" else len(style_layer_latents(generator))
    custom = parse_layers(layers, n_layers, "'layers'")
    if preset == "custom" and custom is None:
        raise ValueError("preset 'custom' needs 'layers' (e.g. '7-17')")
    if preset != "custom" and custom is not None:
        raise ValueError(
            f"'layers' is used by preset 'custom' only; choose preset 'custom' to mix these "
            f"layers, or clear 'layers' (preset is '{preset}')"
        )
    settings = FinetuneSettings(
        space=space,
        preset=None if preset == "custom" else preset,
        layers=custom,
        blend=float(blend),
        seed=int(seed),
    )
    try:
        settings.validate()
    except ValueError as e:
        raise ValueError(_widget_names(str(e))) from None
    return settings


def mixed_samples(
    generator: nn.Module, w: Tensor, space: str, mask: MixingMask, n: int, seed: int
) -> Tensor | list[Tensor]:
    """``n`` codes of the paired set (Eq. 1): the first of the W+ codes ``w``
    [B,n_latent,style_dim] mixed through ``mask`` with ``n`` fresh random faces' codes (drawn
    from ``seed``), in ``space`` (W+ [n,n_latent,D], or S: a list of [n,C_l])."""
    rng = torch.Generator().manual_seed(seed)
    codes = to_style_codes(generator, w[:1]) if space == "s" else w[:1]
    if isinstance(codes, Tensor):
        base = codes.expand(n, -1, -1)
    else:
        base = [c.expand(n, -1) for c in codes]
    return mix_codes(base, sample_random_codes(generator, n, rng, space), mask)


def preview_codes(
    generator: nn.Module,
    codes: Tensor | Sequence[Tensor],
    w: Tensor,
    settings: FinetuneSettings,
    n_random: int = 3,
) -> Tensor | list[Tensor]:
    """What a fine-tune shows while it trains (`finetune`'s ``preview_codes``): the first of the
    references' ``codes`` (W+ [R,n_latent,D] or S, in the settings' space) and ``n_random``
    random faces mixed with the first of their W+ codes ``w`` (Eq. 1, seed 1)."""
    with torch.no_grad():
        mixed = mixed_samples(generator, w, settings.space, settings.mask(generator), n_random, 1)
        first = codes[:1] if isinstance(codes, Tensor) else [c[:1] for c in codes]
        if settings.space == "s":
            first = to_style_codes(generator, first)
        if isinstance(mixed, Tensor):
            return torch.cat([first, mixed])
        return [torch.cat([a, b]) for a, b in zip(first, mixed, strict=True)]
