"""Command line: ``python -m jojogan demo`` -- the whole JoJoGAN pipeline on the toy-faces model.

    python -m jojogan demo                       # ink reference, default recipe, jojogan_demo.png
    python -m jojogan demo --style sketch --steps 200 --out sketch.png
    python -m jojogan demo --recipe fine         # finest layers only, luminance loss
    python -m jojogan demo --full-score          # + the benchmark's other baselines and gaze
    python -m jojogan demo --toy-dir runs/toy    # a toy model trained with jojogan.toy.train

The demo renders a toy reference face in a non-photo style (DEFAULT_STYLE: the one the toy
benchmark scores best), inverts it, fine-tunes the toy generator on its paired set (Eq. 1-2),
stylizes unseen photo-style toy faces at three intensities (feature interpolation, Sec. 4) and
writes one labelled PNG grid (a header row; one row per unseen face; columns: the reference,
once, the input photo, the outputs at intensity 1/3, 2/3, 1, the ground truth render in the
style) plus the toy-domain quality score (`toy_style_quality`, also used by
benchmarks/bench_toy_quality.py) and one line explaining it. Each phase prints a progress line
with the seconds elapsed. No download: it needs the toy model's weights, shipped in
jojogan/toy/weights/ (or trained by `python -m jojogan.toy.train`).
The recipe is `RECIPES[DEFAULT_RECIPE]` ("refined": the released code's fine-tune, with the
reference's code matched to its edges and the inputs' codes refined toward their photos) unless
flags say otherwise (`add_recipe_arguments`).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from jojogan.toy import GENERATOR_FILE, ToyWeightsMissing, find_weights_dir

__all__ = [
    "ToyInversion",
    "ToyModelMissing",
    "d_style",
    "find_toy_dir",
    "load_toy_model",
    "main",
    "reference_copy",
    "toy_settings",
    "toy_style_quality",
]

DEFAULT_STYLES = ("cartoon", "sketch", "ink")

# The demo's style: the one the toy benchmark scores best with the default recipe ("refined")
# on seed 0, the demo's reference: ink, d 0.483 against 1.179 for the input unchanged and 0.898
# for the reference itself, x1.86 over the better baseline, the highest of the 8 styles
# (docs/toy_domain.md, "Quality on the toy domain", the table; docs/toy_recipe_sweep.md, "The
# inputs' codes refined", row `refined`: x 1.06, 1.29, 1.86, 1.65, 0.61, 1.16, 1.55, 0.89 for
# cartoon, sketch, ink, big_eyes, popart, neon, watercolor, blueprint). On seed 1 ink scores x1.30,
# second to big_eyes' 1.35; over both seeds ink still leads (mean x1.58 against 1.50).
DEFAULT_STYLE = "ink"
# The demo's unseen faces (grid rows): 4 keeps `python -m jojogan demo` under a minute on two
# shared CPU cores (37-45 s on 1 thread, load 1.6-2.1). Most of its time is the inputs' 300
# refinement steps, which grow with n: 24 s for 4 faces, about 41 s for 6 on 1 thread.
DEMO_FACES = 4

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

# toy_style_quality's phases, in order (its ``progress`` callback announces each).
PHASE_REFERENCE = "reference inversion"
PHASE_FINETUNE = "fine-tune"
PHASE_INPUTS = "inputs' inversion"
PHASE_STYLIZE = "stylizing"
PHASE_SCORE = "scoring"
PHASES = (PHASE_REFERENCE, PHASE_FINETUNE, PHASE_INPUTS, PHASE_STYLIZE, PHASE_SCORE)
# (phase, step, total, loss): step 0 announces the phase (loss None), then each inversion step.
QualityProgress = Callable[[str, int, int, float | None], Any]
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


# The toy model is found by one function (jojogan.toy); these names are kept for the callers.
TOY_FILE = GENERATOR_FILE
ToyModelMissing = ToyWeightsMissing
find_toy_dir = find_weights_dir


def load_toy_model(
    toy_dir: str | os.PathLike | None = None, device: str | torch.device = "cpu"
) -> tuple[nn.Module, nn.Module, nn.Module | None, Any]:
    """(generator, discriminator, encoder or None, config) of the toy model (see find_toy_dir)."""
    from jojogan.toy.train import load_toy

    p = find_toy_dir(toy_dir)
    g, d, enc, _latent_avg, cfg = load_toy(p, device)
    if enc is not None and not hasattr(enc, "input_size"):
        enc.input_size = int(g.size)  # jojogan.invert resizes to the encoder's input size
    return g, d, enc, cfg


# invert_toy's progress: (step, total, loss) after each optimisation step, counted over all its
# optimisation stages (refinement or optimisation from the mean code, then the edge steps).
InvertProgress = Callable[[int, int, float], Any]


OPTIMIZE_STEPS = 150  # invert_toy without an encoder: optimisation steps from the mean code


def _invert_toy_steps(enc: nn.Module | None, steps: int, refine_steps: int, edge_steps: int) -> int:
    """How many optimisation steps `invert_toy` runs with these arguments."""
    return (steps if enc is None else refine_steps) + edge_steps


def invert_toy(
    images: Tensor,
    g: nn.Module,
    d: nn.Module,
    enc: nn.Module | None,
    steps: int = OPTIMIZE_STEPS,
    refine_steps: int = 0,
    edge_steps: int = 0,
    progress: InvertProgress | None = None,
) -> Tensor:
    """W+ codes for toy images: the toy encoder when there is one, else optimisation (``steps``
    from the mean code). ``refine_steps`` > 0: the encoder's codes are refined by that many
    optimisation steps (pixel + discriminator-feature loss, lr REFINE_LR; the toy encoder is
    weak).
    ``edge_steps`` > 0: then that many steps matching the images' edges only (objective
    "edges", lr EDGE_LR), for stylized images. ``progress(step, total, loss)``: after each
    optimisation step (`jojogan.invert.invert`'s callback), steps counted across the stages."""
    from jojogan.invert import invert

    total = _invert_toy_steps(enc, steps, refine_steps, edge_steps)

    def stage(offset: int) -> Any:
        if progress is None:
            return None
        return lambda step, loss: progress(offset + step, total, loss)

    done = 0
    if enc is None:
        w = invert(images, g, "optimize", discriminator=d, steps=steps, progress=stage(0))
        done = steps
    else:
        w = invert(images, g, "encoder", encoder=enc)
        if refine_steps > 0:
            w = invert(
                images,
                g,
                "optimize",
                discriminator=d,
                steps=refine_steps,
                lr=REFINE_LR,
                init=w,
                progress=stage(0),
            )
            done = refine_steps
    if edge_steps > 0:
        w = invert(
            images,
            g,
            "optimize",
            objective="edges",
            steps=edge_steps,
            lr=EDGE_LR,
            init=w,
            progress=stage(done),
        )
    return w


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
    from jojogan.finetune import FinetuneSettings

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


def d_style(out: Tensor, target: Tensor) -> Tensor:
    """Distance to the ground truth in the style, per image [B]: (1 - structure similarity) +
    palette distance (jojogan.toy.score). Structure: are the edges where the truth has them
    (identity, gaze, line placement); palette: are the colours the style's, in the right amounts.
    Pixel L1 is not used (it rewards copying the reference: FACTS.md)."""
    from jojogan.toy.score import palette_distance, structure_similarity

    return (1.0 - structure_similarity(out, target)) + palette_distance(out, target)


def reference_copy(
    p_u: Any, p_ref: Any, style: str, size: int, fields: Sequence[str], device: Any = "cpu"
) -> Tensor:
    """The truth render(p_u, style) redrawn with ``fields`` taken from the reference p_ref[0] and
    every other field from p_u: what a mapper that draws the style perfectly but copies those
    fields from the one reference would output. ``fields``: names from FIELD_NAMES or groups
    of FIELD_GROUPS ("geometry", "gaze", "pose", "colour"). The benchmark's two such answers:

    * colour copy (``("colour",)``): the best a mapper that copies the reference's colours can
      score (the paper's mask X). Where a style's colours are fixed (neon) it is the truth; where
      they follow the input's (popart's tones and background hue) it pays the palette distance,
      and it is no ceiling for a mapper that learns how the style maps colours (popart's tones
      to its palette) rather than copying them.
    * identity copy (``("geometry", "gaze")``): the paper's known failure (the reference's face
      and gaze on every output) with everything else right; what d gives a mapper that does not
      follow the input's identity at all.

    Raises ValueError for an unknown field or group, or an empty reference."""
    from jojogan.toy.render import FIELD_GROUPS, FIELD_INDEX, FaceParams, render_torch

    names: list[str] = []
    for f in fields:
        if f in FIELD_GROUPS:
            names.extend(FIELD_GROUPS[f])
        elif f in FIELD_INDEX:
            names.append(f)
        else:
            raise ValueError(
                f"reference_copy: unknown field or group {f!r}; groups: "
                f"{', '.join(FIELD_GROUPS)}; fields: {', '.join(FIELD_INDEX)}"
            )
    if len(p_ref) < 1:
        raise ValueError("reference_copy: p_ref holds no face")
    idx = [FIELD_INDEX[n] for n in names]
    vals = p_u.values.copy()
    vals[:, idx] = p_ref.values[0, idx]
    return render_torch(FaceParams(vals), style, size, device)


def _gaze(images: Tensor, params: Any, style: str) -> np.ndarray:
    from jojogan.toy.render import FIELD_INDEX
    from jojogan.toy.score import fit_by_synthesis

    fit = fit_by_synthesis(images.cpu(), params, style)
    return fit.values[:, [FIELD_INDEX["gaze_x"], FIELD_INDEX["gaze_y"]]]


SUPERVISED_SEED = 30_000  # the supervised bound's pairs: sample_params(SUPERVISED_SEED + seed, K)


def _supervised_bound(
    g: nn.Module,
    d: nn.Module,
    enc: nn.Module | None,
    style: str,
    settings: Any,
    k: int,
    seed: int,
    input_steps: int,
    code_cache: dict | None,
) -> nn.Module:
    """`toy_style_quality`'s supervised bound: the generator ``settings``' fine-tune makes
    without mixing (blend 0) from k true pairs, render(p_j, style) and the code of
    render(p_j, photo) (inverted as the inputs are; cached in ``code_cache`` with theirs)."""
    import dataclasses

    from jojogan.finetune import finetune
    from jojogan.toy.render import render_torch, sample_params

    dev = g.input.input.device
    p_pairs = sample_params(SUPERVISED_SEED + seed, k)
    key = ("supervised", k, seed, input_steps, str(dev))
    pair_codes = None if code_cache is None else code_cache.get(key)
    if pair_codes is None:
        photos = render_torch(p_pairs, "photo", g.size, dev)
        pair_codes = invert_toy(photos, g, d, enc, refine_steps=input_steps)
        if code_cache is not None:
            code_cache[key] = pair_codes
    targets = render_torch(p_pairs, style, g.size, dev)
    return finetune(g, d, targets, pair_codes, dataclasses.replace(settings, blend=0.0)).generator


def toy_style_quality(
    g: nn.Module,
    d: nn.Module,
    enc: nn.Module | None,
    style: str,
    *,
    n_unseen: int = 16,
    settings: Any = None,
    seed: int = 0,
    intensities: Sequence[float] = (1.0,),
    regressor: nn.Module | None = None,
    measure_gaze: bool = True,
    callback: Any = None,
    inversion: ToyInversion | None = None,
    code_cache: dict | None = None,
    supervised_pairs: int = 0,
    extra_baselines: bool = True,
    progress: QualityProgress | None = None,
) -> dict[str, Any]:
    """One-shot fine-tune on render(p_ref, style); score stylize(render(p_u, photo)) against
    render(p_u, style) over ``n_unseen`` unseen faces, next to two baselines (the input unchanged
    and the reference itself). Returns metrics and the images (for the demo's grid).

    Identity: the parameter regressor's geometry error of the output against p_u and against
    p_ref (when a regressor is given). Gaze: analysis-by-synthesis (`fit_by_synthesis`) of the
    output in ``style``: error to p_u's gaze and to p_ref's gaze (the paper's known failure is
    the output looking where the reference looks). ``geometry_err_floor``: the regressor's
    geometry error on the truth itself. ``d_colour_copy_bound`` and ``d_identity_copy``: d of
    `reference_copy` with the reference's colours (the best a mapper that copies colours can
    score) and with its geometry and gaze (the paper's known failure with all else right).
    ``d_warped_reference``: a third, non-learned baseline, the reference warped onto each input's
    layout (`jojogan.toy.score.warp_to_layouts`, flows from the base generator's drawing of the
    reference's code to each input photo).

    settings: None = the default toy recipe (`toy_settings(g)`); inversion: how the reference
    and the inputs are inverted (None: the default recipe's when ``settings`` is None, else the
    encoder alone). code_cache: a dict reused across calls to invert the (same) unseen photos once.
    extra_baselines: False skips the warped reference and the colour and identity copies (their
    keys are then absent; the demo shows only the input and reference baselines).
    progress: ``progress(phase, step, total, loss)``, each phase of PHASES announced with step 0
    (loss None; total its steps, 0 when it has none), then the inversions' optimisation steps
    (step 1..total); the fine-tune's steps go to ``callback`` as before.
    """
    from jojogan.finetune import finetune
    from jojogan.stylize import stylize
    from jojogan.toy.render import FIELD_INDEX, FaceParams, render_torch, sample_params
    from jojogan.toy.score import param_errors, warp_to_layouts

    if isinstance(supervised_pairs, bool) or not isinstance(supervised_pairs, int):
        raise ValueError(f"supervised_pairs must be a whole number, got {supervised_pairs!r}")
    if supervised_pairs < 0:
        raise ValueError(f"supervised_pairs must be >= 0 (0 = off), got {supervised_pairs}")
    if settings is None:
        settings, default_inv = toy_settings(g, seed=seed)
        inversion = default_inv if inversion is None else inversion
    inversion = inversion or ToyInversion()
    refine_steps = inversion.refine_steps
    dev = g.input.input.device
    p_ref = sample_params(10_000 + seed, 1)
    p_u = sample_params(20_000 + seed, n_unseen)
    ref = render_torch(p_ref, style, g.size, dev)
    photos = render_torch(p_u, "photo", g.size, dev)
    truth = render_torch(p_u, style, g.size, dev)

    def say(phase: str, total: int = 0) -> None:
        if progress is not None:
            progress(phase, 0, total, None)

    def steps_of(phase: str) -> InvertProgress | None:
        if progress is None:
            return None
        return lambda step, total, loss: progress(phase, step, total, loss)

    t0 = time.perf_counter()
    edge_steps = inversion.reference_edge_steps
    say(PHASE_REFERENCE, _invert_toy_steps(enc, OPTIMIZE_STEPS, refine_steps, edge_steps))
    ref_code = invert_toy(
        ref,
        g,
        d,
        enc,
        refine_steps=refine_steps,
        edge_steps=edge_steps,
        progress=steps_of(PHASE_REFERENCE),
    )
    say(PHASE_FINETUNE, settings.steps)
    res = finetune(g, d, ref, ref_code, settings, callback=callback)
    t_ft = time.perf_counter() - t0
    input_steps = refine_steps + inversion.input_refine_steps
    key = (n_unseen, seed, input_steps, str(dev))
    codes = None if code_cache is None else code_cache.get(key)
    say(
        PHASE_INPUTS,
        0 if codes is not None else _invert_toy_steps(enc, OPTIMIZE_STEPS, input_steps, 0),
    )
    if codes is None:
        codes = invert_toy(
            photos, g, d, enc, refine_steps=input_steps, progress=steps_of(PHASE_INPUTS)
        )
        if code_cache is not None:
            code_cache[key] = codes
    say(PHASE_STYLIZE)
    outs = {a: stylize(res.generator, codes, base=g, intensity=a) for a in intensities}
    sup_out = None
    if supervised_pairs:
        g_sup = _supervised_bound(
            g, d, enc, style, settings, supervised_pairs, seed, input_steps, code_cache
        )
        sup_out = stylize(g_sup, codes, base=g, intensity=1.0)
    out = outs[max(intensities)]
    recon = stylize(res.generator, codes, base=g, intensity=0.0)
    say(PHASE_SCORE)
    refs = ref.expand_as(truth)
    m: dict[str, Any] = {
        "style": style,
        "n_unseen": n_unseen,
        "finetune_seconds": t_ft,
        "steps": settings.steps,
        "refine_steps": refine_steps,
        "reference_edge_steps": inversion.reference_edge_steps,
        "input_refine_steps": inversion.input_refine_steps,
        "final_loss": res.losses[-1],
        "d_stylized": float(d_style(out, truth).mean()),
        "d_input": float(d_style(photos, truth).mean()),
        "d_reference": float(d_style(refs, truth).mean()),
        "d_inversion": float(d_style(recon, truth).mean()),
    }
    warped = None
    if extra_baselines:
        with torch.no_grad():
            ref_drawn = g.synthesis(ref_code, noise_mode="const")
        warped = warp_to_layouts(ref, ref_drawn, photos)
        bound = reference_copy(p_u, p_ref, style, g.size, ("colour",), dev)
        id_copy = reference_copy(p_u, p_ref, style, g.size, ("geometry", "gaze"), dev)
        m["d_colour_copy_bound"] = float(d_style(bound, truth).mean())
        m["d_identity_copy"] = float(d_style(id_copy, truth).mean())
        m["d_warped_reference"] = float(d_style(warped, truth).mean())
    m |= {
        "l1_stylized": float((out - truth).abs().mean()),
        "l1_input": float((photos - truth).abs().mean()),
        "l1_reference": float((refs - truth).abs().mean()),
    }
    if sup_out is not None:
        m["supervised_pairs"] = int(supervised_pairs)
        m["d_supervised"] = float(d_style(sup_out, truth).mean())
    if regressor is not None:
        pred = regressor.predict(out)
        m["geometry_err_vs_input"] = param_errors(pred, p_u)["geometry"]
        m["geometry_err_vs_reference"] = param_errors(
            pred, FaceParams(np.repeat(p_ref.values, n_unseen, 0))
        )["geometry"]
        m["geometry_err_floor"] = param_errors(regressor.predict(truth), p_u)["geometry"]
        if sup_out is not None:
            m["geometry_err_supervised"] = param_errors(regressor.predict(sup_out), p_u)["geometry"]
    if measure_gaze:
        cols = [FIELD_INDEX["gaze_x"], FIELD_INDEX["gaze_y"]]
        gz = _gaze(out, p_u, style)
        gz_truth = _gaze(truth, p_u, style)
        m["gaze_err_vs_input"] = float(np.abs(gz - p_u.values[:, cols]).mean())
        m["gaze_err_vs_reference"] = float(np.abs(gz - p_ref.values[:, cols]).mean())
        m["gaze_err_floor"] = float(np.abs(gz_truth - p_u.values[:, cols]).mean())
        if sup_out is not None:
            gz_sup = _gaze(sup_out, p_u, style)
            m["gaze_err_supervised"] = float(np.abs(gz_sup - p_u.values[:, cols]).mean())
    m["images"] = {
        "reference": ref,
        "photos": photos,
        "inversion": recon,
        "stylized": outs,
        "truth": truth,
    }
    if warped is not None:
        m["images"]["warped_reference"] = warped
    m["result"] = res
    return m


def _to_uint8(x: Tensor) -> np.ndarray:
    return (
        ((x.detach().float().clamp(-1, 1) + 1) * 127.5)
        .round()
        .byte()
        .permute(0, 2, 3, 1)
        .cpu()
        .numpy()
    )


def _grid(rows: list[list[Tensor]], scale: int = 2, pad: int = 2) -> np.ndarray:
    """rows of [3,H,W] tensors (None = blank) -> uint8 [H',W',3]."""
    h = w = max(t.shape[-1] for r in rows for t in r if t is not None) * scale
    ncol = max(len(r) for r in rows)
    out = np.full((len(rows) * (h + pad) + pad, ncol * (w + pad) + pad, 3), 255, np.uint8)
    for i, r in enumerate(rows):
        for j, t in enumerate(r):
            if t is None:
                continue
            a = _to_uint8(t[None])[0].repeat(scale, 0).repeat(scale, 1)
            y, x = pad + i * (h + pad), pad + j * (w + pad)
            out[y : y + a.shape[0], x : x + a.shape[1]] = a
    return out


def _save_png(arr: np.ndarray, path: Path) -> None:
    from PIL import Image

    from jojogan.checkpoints import atomic_writer

    with atomic_writer(path) as tmp:
        Image.fromarray(arr).save(tmp, format="PNG")


def _font(size: int) -> Any:
    from PIL import ImageFont

    return ImageFont.load_default(size=size)


@dataclass(frozen=True)
class GridGeometry:
    """Where `_labeled_grid` puts things: column lefts ``xs``, row tops ``ys`` (the header band
    is everything above ys[0]), the image size, the cell's side and the header font size."""

    xs: tuple[int, ...]
    ys: tuple[int, ...]
    width: int
    height: int
    cell: int
    font_size: int


def _grid_geometry(
    cols: int,
    rows: int,
    image_size: int,
    *,
    title: bool,
    scale: int,
    pad: int,
    breaks: Sequence[int],
) -> GridGeometry:
    cell = image_size * scale
    font_size = max(12, cell // 12)
    line = font_size + 8
    head_h = pad + (line + 4 if title else 0) + line + pad
    xs, x = [], pad
    for j in range(cols):
        x += 3 * pad if j in breaks else 0
        xs.append(x)
        x += cell + pad
    ys = tuple(head_h + i * (cell + pad) for i in range(rows))
    return GridGeometry(tuple(xs), ys, x, ys[-1] + cell + pad, cell, font_size)


def _labeled_grid(
    headers: Sequence[str],
    rows: list[list[Tensor]],
    *,
    aside: Tensor | None = None,
    title: str = "",
    scale: int = 3,
    pad: int = 6,
    breaks: Sequence[int] = (),
) -> np.ndarray:
    """A grid with a header band, uint8 [H,W,3]: ``rows`` of [3,h,w] tensors (one row per face),
    upscaled ``scale`` x (nearest: the toy's pixels stay sharp); ``aside`` (the reference) once in
    its own first column, vertically centred beside the rows; ``headers`` name the columns (the
    aside's first when there is one); ``title`` is a line above them; a wider gap, with a thin
    rule, goes before each column index in ``breaks`` (indices into ``headers``). Positions:
    `_grid_geometry`."""
    from PIL import Image, ImageDraw

    cols = len(headers)
    if not rows or len({len(r) for r in rows}) != 1 or len(rows[0]) + (aside is not None) != cols:
        raise ValueError("_labeled_grid: every row needs one image per header")
    size = max(t.shape[-1] for r in rows for t in r)
    geo = _grid_geometry(
        cols, len(rows), size, title=bool(title), scale=scale, pad=pad, breaks=breaks
    )
    im = Image.new("RGB", (geo.width, geo.height), (255, 255, 255))
    draw = ImageDraw.Draw(im)
    head_font, title_font = _font(geo.font_size), _font(geo.font_size + 1)
    head_y = geo.ys[0] - pad - (geo.font_size + 8)
    if title:
        draw.text((pad, pad), title, fill=(0, 0, 0), font=title_font)
    for j, text in enumerate(headers):
        tw = draw.textlength(text, font=head_font)
        x = geo.xs[j] + (geo.cell - tw) / 2
        draw.text((x, head_y), text, fill=(40, 40, 40), font=head_font)
    for j in breaks:  # a thin rule in each wide gap
        gx = geo.xs[j] - 2 * pad
        draw.line([(gx, head_y), (gx, geo.height - pad)], fill=(200, 200, 200), width=1)

    def paste(t: Tensor, x0: int, y0: int) -> None:
        a = _to_uint8(t[None])[0].repeat(scale, 0).repeat(scale, 1)
        im.paste(Image.fromarray(a), (x0, y0))

    first = 0 if aside is None else 1
    if aside is not None:
        body = geo.ys[-1] + geo.cell - geo.ys[0]
        paste(aside, geo.xs[0], geo.ys[0] + (body - geo.cell) // 2)
    for i, r in enumerate(rows):
        for j, t in enumerate(r):
            paste(t, geo.xs[first + j], geo.ys[i])
    return np.asarray(im).copy()


def _fraction(a: float) -> str:
    from fractions import Fraction

    f = Fraction(a).limit_denominator(12)
    return str(f.numerator) if f.denominator == 1 else f"{f.numerator}/{f.denominator}"


def _fmt(m: dict[str, Any]) -> str:
    """The demo's score table: d of the outputs and of the two baselines (the benchmark's
    other measures too when `toy_style_quality` made them)."""
    best = min(m["d_input"], m["d_reference"])
    cols = [
        ("style", m["style"]),
        ("faces", str(m["n_unseen"])),
        ("d(stylized, truth)", f"{m['d_stylized']:.3f}"),
        ("d(input unchanged, truth)", f"{m['d_input']:.3f}"),
        ("d(reference copy, truth)", f"{m['d_reference']:.3f}"),
        (
            "beats both",
            f"{'yes' if m['d_stylized'] < best else 'NO'} "
            f"(x{best / max(m['d_stylized'], 1e-9):.2f})",
        ),
    ]
    if "d_warped_reference" in m:
        cols += [
            ("d(warped reference, truth)", f"{m['d_warped_reference']:.3f}"),
            ("colour-copy bound", f"{max(m['d_colour_copy_bound'], 0.0):.3f}"),
            ("identity copy", f"{m['d_identity_copy']:.3f}"),
        ]
    if "gaze_err_vs_input" in m:
        cols += [
            ("gaze err vs input", f"{m['gaze_err_vs_input']:.3f}"),
            ("gaze err vs reference", f"{m['gaze_err_vs_reference']:.3f}"),
            ("gaze floor", f"{m['gaze_err_floor']:.3f}"),
        ]
    cols.append(("reference inversion + fine-tune s", f"{m['finetune_seconds']:.1f}"))
    return "\n".join(
        [
            "| " + " | ".join(h for h, _ in cols) + " |",
            "|" + "---|" * len(cols),
            "| " + " | ".join(v for _, v in cols) + " |",
        ]
    )


def _explain(m: dict[str, Any]) -> str:
    """One line saying what d is and how the outputs compare with the two baselines."""
    ds, di, dr = m["d_stylized"], m["d_input"], m["d_reference"]
    better = "input unchanged" if di <= dr else "reference copy"
    best = min(di, dr)
    verdict = (
        f"{best / max(ds, 1e-9):.2f}x closer to the truth than the better baseline ({better})"
        if ds < best
        else f"no closer to the truth than the {better} baseline"
    )
    return (
        f"d = how far an image is from the truth (the input's face drawn in {m['style']} by the "
        "toy renderer): (1 - edge-structure similarity) + palette distance, 0 = identical, lower "
        f"is better. The stylized outputs (intensity 1) score {ds:.3f}; leaving the input "
        f"unchanged scores {di:.3f} and copying the reference {dr:.3f}: the outputs are {verdict}."
    )


def add_recipe_arguments(ap: argparse.ArgumentParser) -> None:
    """The fine-tune recipe flags shared by the demo and benchmarks/bench_toy_quality.py."""
    ap.add_argument(
        "--recipe",
        default=DEFAULT_RECIPE,
        choices=sorted(RECIPES),
        help="refined (default: edges + the inputs' codes refined toward their photos), edges "
        "(paper + the reference's code matched to its edges), paper (the "
        "released code's recipe, as the Finetune node: every layer, taps 1,3,4,5, colour loss, "
        "300 steps, encoder codes), structure (paper + the structure and texture terms on "
        "random faces) or fine (finest layers, first D taps, luminance loss, 600 steps, refined "
        "inversion; an earlier default)",
    )
    ap.add_argument("--steps", type=int, default=None, help="fine-tune steps (recipe's)")
    ap.add_argument("--lr", type=float, default=None, help="learning rate (2e-3)")
    ap.add_argument("--preset", default=None, help="mixing preset: full, preserve_color, X, C")
    ap.add_argument("--space", default=None, help="mixing space: w+ or s")
    ap.add_argument("--taps", default=None, help="discriminator taps, e.g. 0 or 1,3,4 (recipe's)")
    ap.add_argument(
        "--train-layers",
        default=None,
        help="S layers to fine-tune: all, fine (two finest resolutions) or e.g. 8,9,10",
    )
    ap.add_argument(
        "--grayscale",
        choices=("on", "off"),
        default=None,
        help="luminance-only loss (recipe's; on with preset C)",
    )
    ap.add_argument(
        "--refine-steps",
        type=int,
        default=None,
        help="optimisation steps refining the encoder's codes (recipe's; 0 = encoder only)",
    )
    ap.add_argument(
        "--input-refine-steps",
        type=int,
        default=None,
        help="more such steps for the inputs' codes only (recipe's; 0 = off)",
    )
    ap.add_argument(
        "--reference-edge-steps",
        type=int,
        default=None,
        help="steps matching the reference's code to its edges (recipe's; 0 = off)",
    )
    ap.add_argument(
        "--structure-weight",
        type=float,
        default=None,
        help="weight of the structure term: random faces keep their edges (recipe's; 0 = off)",
    )
    ap.add_argument(
        "--gram-weight",
        type=float,
        default=None,
        help="weight of the texture term: random faces take the reference's Gram statistics",
    )
    ap.add_argument(
        "--random-faces", type=int, default=None, help="random faces per step for those terms (4)"
    )


def _layer_flag(text: str, n_layers: int, flag: str) -> tuple[int, ...]:
    """A layer-list flag (``1,3,4`` or ``0-3``), bounded by ``n_layers`` before it is expanded
    (`jojogan.mixing.parse_layers`); empty is an error."""
    from jojogan.mixing import parse_layers

    out = parse_layers(text, n_layers, flag)
    if out is None:
        raise ValueError(f"{flag} is empty; give layer indices like 1,3,4 or 0-3")
    return out


def settings_from_args(
    g: nn.Module | None, args: argparse.Namespace, discriminator: nn.Module | None = None
) -> tuple[Any, ToyInversion]:
    """(FinetuneSettings, ToyInversion) from the recipe flags; ``g`` None checks the flags only
    (before the model is loaded: layer lists against any generator's depth). With the models,
    layer lists are checked against them (taps against ``discriminator`` when given). Raises
    ValueError with the bad value's message."""
    from jojogan.finetune import n_feature_layers
    from jojogan.mixing import MAX_LAYERS

    over: dict[str, Any] = {
        "steps": args.steps,
        "lr": args.lr,
        "preset": args.preset,
        "space": args.space,
        "seed": args.seed,
        "structure_weight": args.structure_weight,
        "gram_weight": args.gram_weight,
        "random_faces": args.random_faces,
    }
    if args.taps is not None:
        n = MAX_LAYERS if discriminator is None else n_feature_layers(discriminator)
        over["feature_layers"] = _layer_flag(args.taps, n, "--taps")
    if args.grayscale is not None:
        over["grayscale"] = args.grayscale == "on"
    elif args.preset == "C":
        over["grayscale"] = True  # the paper's set C goes with the grayscale loss
    if args.train_layers is not None:
        t = args.train_layers
        n = MAX_LAYERS if g is None else int(g.n_styles)
        over["train_layers"] = t if t in ("all", "fine") else _layer_flag(t, n, "--train-layers")
    for k in INVERSION_KEYS:
        if getattr(args, k) is not None:
            over[k] = getattr(args, k)
    st, inversion = toy_settings(g, args.recipe, **over)
    if g is not None and discriminator is not None:
        st.validate(g, discriminator)
    return st, inversion


def load_style_modules(paths: Sequence[str] | None, prog: str) -> bool:
    """Run each ``--style-module`` file (`jojogan.toy.render.load_style_module`): styles this
    package has never seen, for an independent check. False (and the reason on stderr) when one
    cannot be loaded."""
    from jojogan.toy.render import load_style_module

    for path in paths or ():
        try:
            names = load_style_module(path)
        except ValueError as e:
            print(f"{prog}: {e}", file=sys.stderr)
            return False
        print(f"{prog}: {path} registered {', '.join(names)}", file=sys.stderr)
    return True


def add_style_module_argument(ap: argparse.ArgumentParser) -> None:
    ap.add_argument(
        "--style-module",
        action="append",
        metavar="FILE.py",
        help="a Python file whose @jojogan.toy.render.register_style functions add styles "
        "(repeatable)",
    )


def _inversion_text(enc: nn.Module | None, refine: int, edge: int, toward: str) -> str:
    """How `invert_toy` inverts with these step counts, in words."""
    parts = (
        ["the encoder"]
        if enc is not None
        else [f"{OPTIMIZE_STEPS} optimisation steps from the mean code"]
    )
    if enc is not None and refine:
        parts.append(f"{refine} steps refining toward {toward}")
    if edge:
        parts.append(f"{edge} steps matching its edges")
    return ", then ".join(parts)


_TORCH_THREADS = torch.get_num_threads()  # torch's default (the cores, or OMP_NUM_THREADS)


def demo_threads() -> int:
    """The demo's default torch thread count: OMP_NUM_THREADS when it is set, else every core
    but one (at least 1). A thread pool that counts on every core stalls when another job takes
    one: on this project's 2 shared cores, with a ComfyUI server busy beside it, the demo took
    233 s on 2 threads and 57 s on 1 (27 s and 35 s with the cores idle)."""
    if os.environ.get("OMP_NUM_THREADS"):
        return _TORCH_THREADS
    return max(1, _TORCH_THREADS - 1)


def run_demo(args: argparse.Namespace) -> int:
    from jojogan.toy.render import style_names

    t_start = time.perf_counter()

    def say(text: str) -> None:
        print(f"[{time.perf_counter() - t_start:5.1f} s] {text}", flush=True)

    torch.set_num_threads(args.threads or demo_threads())
    if not load_style_modules(args.style_module, "demo"):
        return 2
    styles = style_names(exclude=("photo",))
    if args.style not in styles:
        print(
            f"demo: unknown style {args.style!r}; choose one of {', '.join(styles)}",
            file=sys.stderr,
        )
        return 2
    out_path = Path(args.out)
    if not out_path.parent.is_dir():
        print(f"demo: the folder {out_path.parent} does not exist", file=sys.stderr)
        return 2
    try:
        settings_from_args(None, args)
    except ValueError as e:
        print(f"demo: {e}", file=sys.stderr)
        return 2
    from jojogan.devices import pick_device

    device = pick_device(args.device)
    say("loading the toy model")
    try:
        g, d, enc, _cfg = load_toy_model(args.toy_dir, device)
    except ToyModelMissing as e:
        print(f"demo: {e}", file=sys.stderr)
        return 1
    try:
        settings, inversion = settings_from_args(g, args, d)
    except ValueError as e:
        print(f"demo: {e}", file=sys.stderr)
        return 2
    say(
        f"toy model: {g.size} px, {g.n_latent} W+ layers, device {device}, "
        f"{torch.get_num_threads()} thread{'s' if torch.get_num_threads() > 1 else ''}"
    )
    print(f"recipe {args.recipe}: {_describe(settings, inversion)}")
    intens = (1 / 3, 2 / 3, 1.0)
    levels = ", ".join(_fraction(a) for a in intens)
    full = args.full_score
    starts = {
        PHASE_REFERENCE: f"inverting the {args.style} reference: "
        + _inversion_text(enc, inversion.refine_steps, inversion.reference_edge_steps, "it"),
        PHASE_FINETUNE: f"fine-tuning the generator on the reference: {settings.steps} steps",
        PHASE_INPUTS: f"inverting the {args.n} unseen input photos: "
        + _inversion_text(
            enc, inversion.refine_steps + inversion.input_refine_steps, 0, "each photo"
        ),
        PHASE_STYLIZE: f"stylizing the {args.n} inputs at intensity {levels}",
        PHASE_SCORE: "scoring the outputs against the truth"
        + (", with the benchmark's other baselines" if full else "")
        + (" and gaze" if full and not args.no_gaze else ""),
    }

    def steps_due(step: int, total: int) -> bool:
        return step == 1 or step % 50 == 0 or step == total

    def on_phase(phase: str, step: int, total: int, loss: float | None) -> None:
        if step == 0:
            say(starts[phase])
        elif steps_due(step, total):
            say(f"  {phase} step {step}/{total}  loss {loss:.4f}")

    def on_finetune(step: int, loss: float, preview: Any) -> None:
        if steps_due(step, settings.steps):
            say(f"  fine-tune step {step}/{settings.steps}  loss {loss:.4f}")

    m = toy_style_quality(
        g,
        d,
        enc,
        args.style,
        n_unseen=args.n,
        settings=settings,
        seed=args.seed,
        intensities=intens,
        inversion=inversion,
        measure_gaze=full and not args.no_gaze,
        extra_baselines=full,
        callback=on_finetune,
        progress=on_phase,
    )
    im = m["images"]
    headers = [f"reference ({args.style})", "input photo"]
    headers += [f"style {_fraction(a)}" for a in intens] + ["truth (renderer)"]
    rows = [
        [im["photos"][i], *(im["stylized"][a][i] for a in intens), im["truth"][i]]
        for i in range(args.n)
    ]
    title = (
        f"JoJoGAN on toy faces: one {args.style} reference, {args.n} unseen faces "
        f"(recipe {args.recipe}, seed {args.seed})"
    )
    grid = _labeled_grid(
        headers, rows, aside=im["reference"][0], title=title, breaks=(1, len(headers) - 1)
    )
    _save_png(grid, out_path)
    say(
        f"wrote {out_path} ({grid.shape[1]} x {grid.shape[0]} px): one row per unseen face; "
        f"columns: the {args.style} reference (once, left), the input photo, the stylized output "
        f"at intensity {levels}, and the truth (the input drawn in {args.style} by the toy "
        "renderer)"
    )
    print(_fmt(m))
    print(_explain(m))
    say("done")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["download"]:  # the models command lives with the weights registry
        from jojogan.weights import download_main

        return download_main(argv[1:])
    ap = argparse.ArgumentParser(prog="python -m jojogan", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    dm = sub.add_parser("demo", help="the whole pipeline on the toy-faces model, offline")
    sub.add_parser(
        "download",
        help="get model files: download NAME... | --workflow FILE | --list (download --help)",
        add_help=False,
    )
    dm.add_argument("--toy-dir", default=None, help="folder with toy_stylegan2.safetensors")
    dm.add_argument(
        "--style", default=DEFAULT_STYLE, help=f"reference style (toy renderer; {DEFAULT_STYLE})"
    )
    add_recipe_arguments(dm)
    add_style_module_argument(dm)
    dm.add_argument(
        "--n",
        type=int,
        default=DEMO_FACES,
        help=f"unseen faces: rows of the grid, faces scored ({DEMO_FACES})",
    )
    dm.add_argument("--seed", type=int, default=0)
    dm.add_argument("--out", default="jojogan_demo.png")
    dm.add_argument("--device", default="auto")
    dm.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: every core but one, at least 1; OMP_NUM_THREADS if set)",
    )
    dm.add_argument(
        "--full-score",
        action="store_true",
        help="also the benchmark's other measures: the warped reference, the colour- and "
        "identity-copy baselines and the gaze errors (about 7 s more)",
    )
    dm.add_argument(
        "--no-gaze", action="store_true", help="with --full-score: skip the gaze measurement"
    )
    args = ap.parse_args(argv)
    if args.cmd == "demo":
        if args.n < 1:
            print("demo: --n must be >= 1", file=sys.stderr)
            return 2
        return run_demo(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
