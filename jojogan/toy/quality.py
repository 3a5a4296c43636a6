"""The toy domain's quality score: `toy_style_quality` runs JoJoGAN one-shot on a toy reference
(`invert_toy`, the fine-tune, stylizing unseen faces) and scores the outputs with `d_style`
against the renderer's ground truth, beside baselines (`reference_copy`). Used by the demo and
benchmarks/bench_toy_quality.py (docs/toy_domain.md, "Quality on the toy domain")."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

# finetune and score as modules: a test stubs ft.finetune and score.warp_to_layouts
from .. import finetune as ft
from ..invert import invert
from ..stylize import stylize
from . import score
from .recipes import EDGE_LR, REFINE_LR, ToyInversion, toy_settings
from .render import FIELD_GROUPS, FIELD_INDEX, FaceParams, render_torch, sample_params

# toy_style_quality's phases, in order (its ``progress`` callback announces each).
PHASE_REFERENCE = "reference inversion"
PHASE_FINETUNE = "fine-tune"
PHASE_INPUTS = "inputs' inversion"
PHASE_STYLIZE = "stylizing"
PHASE_SCORE = "scoring"
PHASES = (PHASE_REFERENCE, PHASE_FINETUNE, PHASE_INPUTS, PHASE_STYLIZE, PHASE_SCORE)
# (phase, step, total, loss): step 0 announces the phase (loss None), then each inversion step.
QualityProgress = Callable[[str, int, int, float | None], Any]

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


def d_style(out: Tensor, target: Tensor) -> Tensor:
    """Distance to the ground truth in the style, per image [B]: (1 - structure similarity) +
    palette distance (jojogan.toy.score). Structure: are the edges where the truth has them
    (identity, gaze, line placement); palette: are the colours the style's, in the right amounts.
    Pixel L1 is not used (it rewards copying the reference: FACTS.md)."""
    return (1.0 - score.structure_similarity(out, target)) + score.palette_distance(out, target)


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
    fit = score.fit_by_synthesis(images.cpu(), params, style)
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
    return ft.finetune(
        g, d, targets, pair_codes, dataclasses.replace(settings, blend=0.0)
    ).generator


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
    res = ft.finetune(g, d, ref, ref_code, settings, callback=callback)
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
        warped = score.warp_to_layouts(ref, ref_drawn, photos)
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
        m["geometry_err_vs_input"] = score.param_errors(pred, p_u)["geometry"]
        m["geometry_err_vs_reference"] = score.param_errors(
            pred, FaceParams(np.repeat(p_ref.values, n_unseen, 0))
        )["geometry"]
        m["geometry_err_floor"] = score.param_errors(regressor.predict(truth), p_u)["geometry"]
        if sup_out is not None:
            sup_err = score.param_errors(regressor.predict(sup_out), p_u)
            m["geometry_err_supervised"] = sup_err["geometry"]
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
