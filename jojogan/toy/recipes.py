"""The toy domain's fine-tune recipes: `RECIPES` (the released code's, and the variants the toy
benchmark compares), how each inverts its images (`ToyInversion`) and `toy_settings`, which turns
a recipe name and overrides into the `jojogan.finetune.FinetuneSettings` it stands for.
Used by the demo (``python -m jojogan demo``), benchmarks/bench_toy_quality.py and the toy
workflows (docs/toy_recipe_sweep.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from ..finetune import FinetuneSettings

DEFAULT_STYLES = ("cartoon", "sketch", "ink")

# The demo's style: the one the toy benchmark scores best with the default recipe ("refined")
# on seed 0, the demo's reference: ink, d 0.483 against 1.179 for the input unchanged and 0.898
# for the reference itself, x1.86 over the better baseline, the highest of the 8 styles
# (docs/toy_domain.md, "Quality on the toy domain", the table; docs/toy_recipe_sweep.md, "The
# inputs' codes refined", row `refined`: x 1.06, 1.29, 1.86, 1.65, 0.61, 1.16, 1.55, 0.89 for
# cartoon, sketch, ink, big_eyes, popart, neon, watercolor, blueprint). On seed 1 ink scores x1.30,
# second to big_eyes' 1.35; over both seeds ink still leads (mean x1.58 against 1.50).
DEFAULT_STYLE = "ink"

# Fine-tune recipes for the toy model (benchmarks/bench_toy_quality.py, the demo).
#   "paper": the released code's recipe, which is also what the Finetune node does by
#     default (every synthesis layer, taps 1,3,4,5, colour loss, 300 steps, encoder codes as they
#     are). The outputs take the style (lines, hatching, glow, ink fills) and, at intensity 1,
#     much of the reference's hair and colours; lower intensities keep more of the input.
#   "fine": only the synthesis layers of the two finest resolutions are trained (32 and 64 px on
#     the toy model), the loss is the L1 of the discriminator's first (full-resolution) features
#     on luminance, 600 steps; inputs and reference inverted by the encoder, then refined by 100
#     optimisation steps. An earlier default (chosen by d on cartoon/sketch/ink with an
#     earlier model, on which "paper" collapsed to the reference); it scores about the same as
#     "paper" on the 23,222-step model, but its outputs stay photo-like: the refined reference
#     code already draws a pale reference-like face, so the fine-tune has little to learn
#     (docs/toy_recipe_sweep.md).
RECIPES: dict[str, dict[str, Any]] = {
    "fine": {
        "steps": 600,
        "feature_layers": (0,),
        "grayscale": True,
        "train": "fine",
        "refine_steps": 100,
    },
    "paper": {
        "steps": 300,
        "feature_layers": None,
        "grayscale": False,
        "train": "all",
        "refine_steps": 0,
    },
}
#   "structure": paper + the structure and texture terms on random faces (docs/toy_recipe_sweep.md)
RECIPES["structure"] = {**RECIPES["paper"], "structure_weight": 0.1, "gram_weight": 30.0}
#   "edges": paper + the reference's encoder code refined to match the reference's
#     edges (jojogan.invert objective "edges"): the toy encoder, trained on photos, misreads a
#     stylized reference's face; its edges are the style-independent part
#     (docs/toy_recipe_sweep.md). The default before "refined": it passes 6 of 8 styles on both
#     benchmark seeds (paper: 4 and 3); the fine-tune itself is the paper's, so the toy demo
#     workflow does the same with an Invert node (method optimize, the encoder connected,
#     objective edges, EDGE_STEPS steps at EDGE_LR).
#   "refined" (default): edges + each input's encoder code refined INPUT_REFINE_STEPS steps
#     (pixel + discriminator features, lr REFINE_LR), the reference's left as in edges. The toy
#     encoder reads a photo's features badly (geometry error 0.22 against a floor of 0.14 and a
#     constant guess's 0.25); refined codes bring every style's output nearer the input's
#     identity, d better on 13 of 16 benchmark style runs and x0.01 lower on the other 3
#     (docs/toy_recipe_sweep.md). The toy workflow's input Invert node does the same (method
#     optimize, the encoder and discriminator connected, objective pixel).
EDGE_STEPS = 200
EDGE_LR = 0.01
INPUT_REFINE_STEPS = 300
REFINE_LR = 0.01
RECIPES["edges"] = {**RECIPES["paper"], "reference_edge_steps": EDGE_STEPS}
RECIPES["refined"] = {**RECIPES["edges"], "input_refine_steps": INPUT_REFINE_STEPS}
DEFAULT_RECIPE = "refined"

INVERSION_KEYS = ("refine_steps", "reference_edge_steps", "input_refine_steps")


@dataclass(frozen=True)
class ToyInversion:
    """How a toy recipe inverts its images (with the toy encoder): ``refine_steps`` optimisation
    steps (pixel + discriminator features, lr REFINE_LR) after the encoder, for the reference
    and the inputs alike; ``reference_edge_steps`` further steps matching the reference's edges
    only (`jojogan.invert.invert(..., objective="edges")`, lr EDGE_LR); ``input_refine_steps``
    more pixel + feature steps for the inputs only (they are refined refine_steps +
    input_refine_steps steps in one run); 0 = none."""

    refine_steps: int = 0
    reference_edge_steps: int = 0
    input_refine_steps: int = 0

    def __post_init__(self) -> None:
        for k in INVERSION_KEYS:
            v = getattr(self, k)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"{k} must be an integer >= 0, got {v!r}")


def toy_settings(
    g: nn.Module | None,
    recipe: str | None = None,
    **overrides: Any,
) -> tuple[Any, ToyInversion]:
    """(FinetuneSettings, ToyInversion) of a toy recipe (RECIPES: "refined", the default (None);
    "edges"; "paper", the released code's; "structure" or "fine") for generator ``g``; keyword
    ``overrides`` replace fields (steps, lr, preset, space, feature_layers, grayscale,
    train_layers, seed, refine_steps, reference_edge_steps, input_refine_steps, ...).
    ``train_layers`` may be "all", "fine" (the two finest resolutions: the last 6 S layers) or a
    tuple of S-layer indices. ``g`` None checks the values only (layer lists unresolved).
    Raises ValueError for an unknown recipe or bad values."""
    recipe = DEFAULT_RECIPE if recipe is None else recipe
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; choose one of {', '.join(RECIPES)}")
    r = dict(RECIPES[recipe])
    train = overrides.pop("train_layers", r.pop("train"))
    r.pop("train", None)
    inv = {k: r.pop(k, 0) for k in INVERSION_KEYS}
    inv.update({k: v for k in INVERSION_KEYS if (v := overrides.pop(k, None)) is not None})
    r.update({k: v for k, v in overrides.items() if v is not None})
    if train == "all" or train is None or g is None:
        r["train_layers"] = None
    elif train == "fine":
        n = int(g.n_styles)
        r["train_layers"] = tuple(range(max(0, n - 6), n))
    else:
        r["train_layers"] = tuple(int(i) for i in train)
    inversion = ToyInversion(**inv)
    st = FinetuneSettings(**r)
    st.validate(g)
    if g is None and train not in ("all", "fine", None):
        FinetuneSettings(**{**r, "train_layers": tuple(train)}).validate()
    return st, inversion


def _describe(st: Any, inv: ToyInversion) -> str:
    taps = "default" if st.feature_layers is None else ",".join(map(str, st.feature_layers))
    train = "all" if st.train_layers is None else ",".join(map(str, st.train_layers))
    return (
        f"{st.steps} steps, lr {st.lr:g}, preset {st.preset} ({st.space}), D taps {taps}, "
        f"{'luminance' if st.grayscale else 'colour'} loss, trained S layers {train}, "
        f"encoder codes refined {inv.refine_steps} steps"
        + (
            f", the reference's code matched to its edges {inv.reference_edge_steps} steps"
            if inv.reference_edge_steps
            else ""
        )
        + (
            f", the inputs' codes refined {inv.input_refine_steps} more steps"
            if inv.input_refine_steps
            else ""
        )
        + (
            f", structure w {st.structure_weight:g} + texture (Gram) w {st.gram_weight:g} on "
            f"{st.random_faces} random faces"
            if st.structure_weight or st.gram_weight
            else ""
        )
    )
