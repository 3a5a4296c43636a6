"""The toy fine-tune recipes of `python -m jojogan demo` and benchmarks/bench_toy_quality.py:
the default ("refined"), "paper", "fine", flag overrides and clear errors; the demo's labelled
grid, progress lines, default style and score explanation."""

from __future__ import annotations

import argparse
import time

import pytest
import torch

from jojogan.toy.flags import add_recipe_arguments, settings_from_args
from jojogan.toy.quality import invert_toy
from jojogan.toy.recipes import DEFAULT_RECIPE, RECIPES, ToyInversion, _describe, toy_settings
from tests.tiny_models import tiny_d, tiny_g

pytestmark = pytest.mark.usefixtures("one_thread")


def _args(*argv: str) -> argparse.Namespace:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=0)
    add_recipe_arguments(ap)
    return ap.parse_args(list(argv))


def test_default_recipe_fine_tunes_as_the_released_code_and_the_finetune_node():
    """The demo and the benchmark fine-tune as a Finetune node does with its default widgets
    (FinetuneSettings' defaults, the released code's, 300 steps); the default recipe
    ("refined") differs from "paper" only in the inversions, the reference's and the inputs'
    (the toy workflow's Invert nodes do the same: tests/test_workflows.py)."""
    from jojogan.finetune import FinetuneSettings

    assert DEFAULT_RECIPE == "refined" and _args().recipe == DEFAULT_RECIPE
    st, inv = toy_settings(tiny_g(), seed=0)
    assert st == FinetuneSettings(steps=300, seed=0) and inv == ToyInversion(0, 200, 300)
    assert toy_settings(tiny_g(), "edges", seed=0) == (st, ToyInversion(0, 200))
    st_p, inv_p = toy_settings(tiny_g(), "paper", seed=0)
    assert st_p == st and inv_p == ToyInversion(0, 0)
    assert FinetuneSettings().steps == 300  # the node's default steps widget
    st, inv = settings_from_args(tiny_g(), _args("--preset", "C"))
    assert st == FinetuneSettings(steps=300, preset="C", grayscale=True)


def test_fine_recipe_trains_the_two_finest_resolutions_only():
    g = tiny_g()
    st, inv = toy_settings(g, "fine")
    n = g.n_styles
    assert st.train_layers == tuple(range(n - 6, n))
    assert st.feature_layers == (0,) and st.grayscale and st.steps == 600
    assert inv == ToyInversion(refine_steps=100, reference_edge_steps=0)
    assert (st.preset, st.space, st.lr) == ("full", "w+", 2e-3)
    assert toy_settings(g, "fine")[0] == settings_from_args(g, _args("--recipe", "fine"))[0]


def test_flags_override_single_fields():
    g = tiny_g()
    st, inv = settings_from_args(
        g,
        _args(
            "--steps", "50", "--taps", "0,1", "--train-layers", "all", "--grayscale", "off",
            "--refine-steps", "0", "--lr", "1e-3", "--seed", "4", "--recipe", "fine",
            "--reference-edge-steps", "7",
        ),
    )  # fmt: skip
    assert (st.steps, st.feature_layers, st.train_layers, st.grayscale) == (50, (0, 1), None, False)
    assert (inv, st.lr, st.seed) == (ToyInversion(0, 7), 1e-3, 4)
    st, _ = settings_from_args(g, _args("--train-layers", "3,5"))
    assert st.train_layers == (3, 5)
    assert RECIPES["fine"]["train"] == "fine"  # the table was not modified by the calls


def test_structure_recipe_is_paper_plus_the_random_face_terms():
    from jojogan.finetune import FinetuneSettings

    g = tiny_g()
    st, inv = settings_from_args(g, _args("--recipe", "structure"))
    want = FinetuneSettings(steps=300, seed=0, structure_weight=0.1, gram_weight=30.0)
    assert st == want and inv == ToyInversion()
    st, _ = settings_from_args(
        g, _args("--structure-weight", "0.5", "--gram-weight", "2", "--random-faces", "3")
    )
    assert (st.structure_weight, st.gram_weight, st.random_faces) == (0.5, 2.0, 3)


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (("--steps", "0"), "steps"),
        (("--taps", "a,b"), "--taps must list layer indices"),
        (("--taps", "0-99999999"), r"--taps: '0-99999999' is out of range 0\.\.31"),
        (("--train-layers", "0,99"), r"--train-layers: '99' is out of range 0\.\.\d+"),
        (("--train-layers", "5-2"), "runs backwards"),
        (("--train-layers", ""), "--train-layers is empty"),
        (("--refine-steps", "-1"), "refine_steps"),
        (("--reference-edge-steps", "-2"), "reference_edge_steps"),
        (("--input-refine-steps", "-3"), "input_refine_steps"),
        (("--lr", "-1"), "lr"),
        (("--gram-weight", "-1"), "gram_weight"),
        (("--random-faces", "0"), "random_faces"),
    ],
)
def test_bad_flags_are_clear_errors(argv, match):
    with pytest.raises(ValueError, match=match):
        settings_from_args(tiny_g(), _args(*argv))


def test_flags_are_checked_before_the_model_is_loaded():
    with pytest.raises(ValueError, match="steps"):
        settings_from_args(None, _args("--steps", "0"))
    with pytest.raises(ValueError, match="--taps is empty"):
        settings_from_args(None, _args("--taps", ","))
    settings_from_args(None, _args("--train-layers", "1,2"))  # resolved against the model later
    with pytest.raises(ValueError, match="unknown recipe"):
        toy_settings(None, "nope")
    # a layer list is bounded before it is expanded, also before the model is known
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match=r"--train-layers: '0-99999999' is out of range") as e:
        settings_from_args(None, _args("--train-layers", "0-99999999"))
    assert time.perf_counter() - t0 < 1.0 and len(str(e.value)) < 300


def test_taps_are_checked_against_the_discriminator_once_loaded():
    """The demo checks every flag against the loaded models before any inversion or training."""
    g, d = tiny_g(), tiny_d()  # 32 px: discriminator taps 0..3
    st, _ = settings_from_args(g, _args("--taps", "0-2"), d)
    assert st.feature_layers == (0, 1, 2)
    with pytest.raises(ValueError, match=r"--taps: '7' is out of range 0\.\.3"):
        settings_from_args(g, _args("--taps", "1,7"), d)


def test_invert_toy_refines_the_encoder_codes():
    """refine_steps > 0 starts from the encoder's codes and lowers the reconstruction error."""
    g, d = tiny_g(), tiny_d()

    class Enc(torch.nn.Module):
        input_size = 32

        def forward(self, x):
            w = g.mean_latent(256)
            return w[:, None].expand(x.shape[0], g.n_latent, -1).clone()

    with torch.no_grad():
        z = torch.randn(2, g.style_dim, generator=torch.Generator().manual_seed(3))
        target = g.synthesis(g.mapping(z)[:, None].expand(-1, g.n_latent, -1)).clamp(-1, 1)
    enc = Enc()
    w0 = invert_toy(target, g, d, enc)
    w1 = invert_toy(target, g, d, enc, refine_steps=40)

    def err(w):
        with torch.no_grad():
            return float((g.synthesis(w) - target).abs().mean())

    assert torch.equal(w0, enc(target)) and err(w1) < 0.9 * err(w0)


def test_edges_recipe_is_paper_plus_the_references_code_matched_to_its_edges():
    from jojogan.finetune import FinetuneSettings

    g = tiny_g()
    st, inv = settings_from_args(g, _args("--recipe", "edges"))
    assert st == FinetuneSettings(steps=300, seed=0)  # the fine-tune is the paper's
    assert inv == ToyInversion(refine_steps=0, reference_edge_steps=200)
    _, inv = settings_from_args(g, _args("--recipe", "edges", "--reference-edge-steps", "0"))
    assert inv == ToyInversion()
    assert "matched to its edges 200 steps" in _describe(st, ToyInversion(0, 200))
    _, inv = settings_from_args(g, _args("--input-refine-steps", "40"))
    assert inv == ToyInversion(refine_steps=0, reference_edge_steps=200, input_refine_steps=40)
    assert "the inputs' codes refined 40 more steps" in _describe(st, inv)


def test_toy_quality_refines_the_inputs_codes_and_not_the_references(monkeypatch):
    """input_refine_steps reaches the inputs' inversion only (on top of refine_steps); the
    reference's takes refine_steps and its edge steps, and the metrics say which was used.
    (Wiring only: invert_toy and the warp are recorded / stubbed, the fine-tune is 2 steps.)"""
    import jojogan.toy.quality as cli
    import jojogan.toy.score as score
    from jojogan.finetune import FinetuneSettings

    g, d = tiny_g(), tiny_d()
    calls, real = [], cli.invert_toy

    def record(images, g_, d_, enc, steps=150, refine_steps=0, edge_steps=0, progress=None):
        calls.append((images.shape[0], refine_steps, edge_steps))
        return real(images, g_, d_, enc, steps=2)

    monkeypatch.setattr(cli, "invert_toy", record)
    monkeypatch.setattr(score, "warp_to_layouts", lambda ref, drawn, photos: photos)
    m = cli.toy_style_quality(
        g,
        d,
        None,
        "sketch",
        n_unseen=16,
        settings=FinetuneSettings(steps=2),
        inversion=ToyInversion(refine_steps=3, reference_edge_steps=5, input_refine_steps=7),
        measure_gaze=False,
    )
    assert calls == [(1, 3, 5), (16, 10, 0)]
    assert (m["refine_steps"], m["reference_edge_steps"], m["input_refine_steps"]) == (3, 5, 7)


def test_invert_toy_edge_steps_match_the_edges_of_a_restyled_image():
    """edge_steps > 0 starts from the given codes and moves G(w)'s edges toward the image's even
    when the image's colours are not the generator's (a negative: same contours, other tones),
    where refining by pixels would chase the colours."""
    from jojogan.invert import edge_map

    g, d = tiny_g(), tiny_d()
    with torch.no_grad():
        z = torch.randn(2, g.style_dim, generator=torch.Generator().manual_seed(3))
        target = -g.synthesis(g.mapping(z)[:, None].expand(-1, g.n_latent, -1)).clamp(-1, 1)
    w_start = g.mean_latent(256)[:, None].expand(2, g.n_latent, -1).clone()

    class Enc(torch.nn.Module):
        input_size = 32

        def forward(self, x):
            return w_start.clone()

    w0 = invert_toy(target, g, d, Enc())
    w1 = invert_toy(target, g, d, Enc(), edge_steps=60)

    def err(w):
        with torch.no_grad():
            return float((edge_map(g.synthesis(w)) - edge_map(target)).abs().mean())

    assert torch.equal(w0, w_start) and err(w1) < 0.8 * err(w0)


def test_colour_copy_keeps_the_inputs_geometry_and_takes_the_references_colours():
    """The benchmark's colour-copy bound: the truth when the reference is the input itself; on a
    fixed-palette style (neon) it is the truth for any reference; on popart (background colour
    from the input's background hue) its colours are off while its edges stay nearer the truth's
    than another face's do (posterising other tones moves some edges)."""
    from jojogan.toy.quality import reference_copy
    from jojogan.toy.render import render_torch, sample_params
    from jojogan.toy.score import palette_distance, structure_similarity

    p_u, p_ref = sample_params(20_000, 8), sample_params(10_000, 1)
    assert torch.equal(
        reference_copy(p_u[:1], p_u[:1], "popart", 64, ("colour",)),
        render_torch(p_u[:1], "popart", 64),
    )
    neon = reference_copy(p_u, p_ref, "neon", 64, ("colour",))
    assert (neon - render_torch(p_u, "neon", 64)).abs().max() < 0.2
    pop = reference_copy(p_u, p_ref, "popart", 64, ("colour",))
    truth = render_torch(p_u, "popart", 64)
    other = render_torch(sample_params(30_000, 8), "popart", 64)
    assert (
        structure_similarity(pop, truth).mean() > structure_similarity(other, truth).mean() + 0.15
    )
    assert palette_distance(pop, truth).mean() > 0.2


def test_reference_copy_takes_exactly_the_named_fields_from_the_reference():
    """reference_copy renders p_u with the named fields (or groups) replaced by p_ref[0]'s and
    nothing else: the identity copy (geometry and gaze) keeps the inputs' colours and pose; a
    single field (popart's background hue) changes only that; unknown names and an empty
    reference are clear errors."""
    from jojogan.toy.quality import reference_copy
    from jojogan.toy.render import (
        FIELD_GROUPS,
        FIELD_INDEX,
        FaceParams,
        render_torch,
        sample_params,
    )

    p_u, p_ref = sample_params(20_000, 4), sample_params(10_000, 1)
    ident = [FIELD_INDEX[f] for f in FIELD_GROUPS["geometry"] + FIELD_GROUPS["gaze"]]
    want = p_u.values.copy()
    want[:, ident] = p_ref.values[0, ident]
    assert torch.equal(
        reference_copy(p_u, p_ref, "sketch", 64, ("geometry", "gaze")),
        render_torch(FaceParams(want), "sketch", 64),
    )
    bg = FIELD_INDEX["bg_hue"]
    want = p_u.values.copy()
    want[:, bg] = p_ref.values[0, bg]
    got = reference_copy(p_u, p_ref, "popart", 64, ("bg_hue",))
    assert torch.equal(got, render_torch(FaceParams(want), "popart", 64))
    assert not torch.equal(got, render_torch(p_u, "popart", 64))
    with pytest.raises(ValueError, match="unknown field or group 'eyes'"):
        reference_copy(p_u, p_ref, "sketch", 64, ("eyes",))
    with pytest.raises(ValueError, match="no face"):
        reference_copy(p_u, FaceParams(p_ref.values[:0]), "sketch", 64, ("gaze",))


def test_warped_reference_follows_the_flow_from_source_to_target():
    """The benchmark's warped-reference baseline: a target equal to the source leaves the image
    as it is (up to the few hundredths Adam's normalised steps move on rounding noise); a
    target whose face sits 4 px lower moves the image's drawing 4 px lower (much closer to the
    truth than before); repeatable; bad shapes are clear errors."""
    from jojogan.toy.render import render_torch, sample_params
    from jojogan.toy.score import structure_similarity, warp_to_layouts

    p = sample_params(20_000, 1)
    photo, ink = render_torch(p, "photo", 64), render_torch(p, "ink", 64)
    same = warp_to_layouts(ink, photo, photo.expand(2, -1, -1, -1))
    assert same.shape == (2, 3, 64, 64) and (same - ink).abs().mean() < 0.02
    assert structure_similarity(same, ink.expand_as(same)).min() > 0.99

    def down(x):
        return torch.cat([x[..., :1, :].expand(-1, -1, 4, -1), x[..., :-4, :]], 2)

    moved = warp_to_layouts(ink, photo, down(photo))
    assert torch.equal(moved, warp_to_layouts(ink, photo, down(photo)))
    err_before = (ink - down(ink)).abs()[..., 8:-8, 8:-8].mean()
    err_after = (moved - down(ink)).abs()[..., 8:-8, 8:-8].mean()
    assert err_after < 0.5 * err_before, (err_after, err_before)
    with pytest.raises(ValueError, match="image and source"):
        warp_to_layouts(ink.expand(2, -1, -1, -1), photo, photo)
    with pytest.raises(ValueError, match="targets"):
        warp_to_layouts(ink, photo, photo[:, :, :32])


def test_supervised_bound_fine_tunes_on_true_pairs_without_mixing(monkeypatch):
    """supervised_pairs=K: a second fine-tune with the one-shot's settings but blend 0, on K
    style renders each paired with the inversion of its own photo (inverted as the inputs are),
    and d of its outputs on the same inputs. (Wiring: the inversion and the warp are cut short,
    the fine-tunes are 2 steps.)"""
    import dataclasses

    import jojogan.finetune as ft
    import jojogan.toy.quality as cli
    import jojogan.toy.score as score
    from jojogan.finetune import FinetuneSettings
    from jojogan.toy.render import render_torch, sample_params

    g, d = tiny_g(), tiny_d()
    inverted, tuned, real_inv, real_ft = [], [], cli.invert_toy, ft.finetune

    def record_inv(images, g_, d_, enc, steps=150, refine_steps=0, edge_steps=0, progress=None):
        inverted.append((images.clone(), refine_steps))
        return real_inv(images, g_, d_, enc, steps=2)

    def record_ft(g_, d_, refs, codes, settings, **kw):
        tuned.append((refs.clone(), codes.clone(), settings))
        return real_ft(g_, d_, refs, codes, settings, **kw)

    monkeypatch.setattr(cli, "invert_toy", record_inv)
    monkeypatch.setattr(ft, "finetune", record_ft)
    monkeypatch.setattr(score, "warp_to_layouts", lambda ref, drawn, photos: photos)
    one_shot = FinetuneSettings(steps=2, blend=0.7, seed=4)
    cache: dict = {}
    kw = dict(n_unseen=16, settings=one_shot, seed=1, measure_gaze=False, code_cache=cache)
    inv = ToyInversion(input_refine_steps=5)
    m = cli.toy_style_quality(g, d, None, "sketch", inversion=inv, supervised_pairs=3, **kw)

    p_pairs = sample_params(cli.SUPERVISED_SEED + 1, 3)
    assert len(tuned) == 2 and tuned[0][2] is one_shot
    refs, codes, st = tuned[1]
    assert torch.equal(refs, render_torch(p_pairs, "sketch", g.size))
    assert st.blend == 0.0 and dataclasses.replace(st, blend=0.7) == one_shot
    pair_photos, pair_steps = inverted[-1]
    assert torch.equal(pair_photos, render_torch(p_pairs, "photo", g.size)) and pair_steps == 5
    assert codes.shape[0] == 3 and m["supervised_pairs"] == 3
    assert m["d_supervised"] > 0 and m["d_supervised"] != m["d_stylized"]
    # the pairs' codes are inverted once per run, like the inputs'
    cli.toy_style_quality(g, d, None, "ink", inversion=inv, supervised_pairs=3, **kw)
    assert len(inverted) == 4  # 2 references + the inputs once + the pairs once
    m0 = cli.toy_style_quality(g, d, None, "ink", inversion=inv, **kw)
    assert "d_supervised" not in m0


@pytest.mark.parametrize("k", [-1, True, 2.0])
def test_supervised_bound_rejects_bad_pair_counts_before_any_work(k, monkeypatch):
    import jojogan.toy.quality as cli

    monkeypatch.setattr(cli, "invert_toy", lambda *a, **k: pytest.fail("worked first"))
    with pytest.raises(ValueError, match="supervised_pairs"):
        cli.toy_style_quality(tiny_g(), tiny_d(), None, "sketch", supervised_pairs=k)


# -- the demo: labelled grid, progress, default style, the score explained -----------------------

FAST = ("--steps", "2", "--reference-edge-steps", "2", "--input-refine-steps", "2", "--n", "2")


def test_invert_toy_reports_its_steps_across_its_stages():
    """progress(step, total, loss) runs through the refinement and then the edge steps."""
    g, d = tiny_g(), tiny_d()

    class Enc(torch.nn.Module):
        input_size = 32

        def forward(self, x):
            return g.mean_latent(64)[:, None].expand(x.shape[0], g.n_latent, -1).clone()

    seen = []
    images = torch.zeros(1, 3, 32, 32)
    invert_toy(
        images, g, d, Enc(), refine_steps=3, edge_steps=2, progress=lambda *a: seen.append(a)
    )
    assert [(s, t) for s, t, _ in seen] == [(1, 5), (2, 5), (3, 5), (4, 5), (5, 5)]
    assert all(isinstance(loss, float) for *_, loss in seen)
    seen.clear()
    invert_toy(images, g, d, None, steps=2, progress=lambda *a: seen.append(a))
    assert [(s, t) for s, t, _ in seen] == [(1, 2), (2, 2)]


def test_toy_quality_announces_every_phase_and_can_skip_the_benchmarks_baselines(monkeypatch):
    """progress announces the phases in order (step 0) and numbers the inversions' steps;
    extra_baselines=False leaves out the warped reference and the copies (not computed)."""
    import jojogan.toy.quality as cli
    import jojogan.toy.score as score
    from jojogan.finetune import FinetuneSettings

    g, d = tiny_g(), tiny_d()

    class Enc(torch.nn.Module):
        input_size = 32

        def forward(self, x):
            return g.mean_latent(64)[:, None].expand(x.shape[0], g.n_latent, -1).clone()

    monkeypatch.setattr(score, "warp_to_layouts", lambda *a: pytest.fail("warped"))
    monkeypatch.setattr(cli, "reference_copy", lambda *a: pytest.fail("copied"))
    seen = []
    m = cli.toy_style_quality(
        g,
        d,
        Enc(),
        "ink",
        n_unseen=2,
        settings=FinetuneSettings(steps=2),
        inversion=ToyInversion(refine_steps=1, reference_edge_steps=2, input_refine_steps=3),
        measure_gaze=False,
        extra_baselines=False,
        progress=lambda *a: seen.append(a),
    )
    starts = [(p, t) for p, s, t, loss in seen if s == 0]
    assert starts == [
        (cli.PHASE_REFERENCE, 3),
        (cli.PHASE_FINETUNE, 2),
        (cli.PHASE_INPUTS, 4),
        (cli.PHASE_STYLIZE, 0),
        (cli.PHASE_SCORE, 0),
    ]
    assert [p for p, _ in starts] == list(cli.PHASES)
    ref_steps = [s for p, s, _, _ in seen if p == cli.PHASE_REFERENCE and s]
    assert ref_steps == [1, 2, 3]  # 1 refining, then 2 matching edges
    assert [s for p, s, _, _ in seen if p == cli.PHASE_INPUTS and s] == [1, 2, 3, 4]
    assert "d_warped_reference" not in m and "d_colour_copy_bound" not in m
    assert "warped_reference" not in m["images"] and m["d_stylized"] > 0


def _run_demo(tmp_path, capsys, monkeypatch, *argv):
    """The demo on the shipped toy model with 2-step inversions and fine-tune; returns (stdout,
    the PNG as an array, the headers and rows _labeled_grid was given)."""
    import numpy as np
    from PIL import Image

    import jojogan.__main__ as cli
    import jojogan.toy.demo as demo

    drawn = {}
    real = demo._labeled_grid

    def spy(headers, rows, **kw):
        drawn.update(headers=list(headers), rows=rows, kw=kw)
        return real(headers, rows, **kw)

    monkeypatch.setattr(demo, "_labeled_grid", spy)
    out = tmp_path / "demo.png"
    assert cli.main(["demo", *FAST, "--out", str(out), *argv]) == 0
    return capsys.readouterr().out, np.asarray(Image.open(out).convert("RGB")), drawn


def test_demo_default_style_is_the_best_scoring_one():
    """The demo's default style is the one the toy benchmark scores best with the default recipe
    (ink, x1.86 on seed 0: docs/toy_domain.md's table), and --style defaults to it."""
    import jojogan.toy.demo as demo
    import jojogan.toy.recipes as recipes

    assert recipes.DEFAULT_STYLE == "ink" and demo.DEMO_FACES == 4
    assert recipes.DEFAULT_RECIPE == "refined" and RECIPES["refined"]["steps"] == 300


def test_demo_leaves_a_core_to_the_rest_of_the_machine(monkeypatch):
    import jojogan.toy.demo as cli

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    for cores, want in ((1, 1), (2, 1), (8, 7)):
        monkeypatch.setattr(cli, "_TORCH_THREADS", cores)
        assert cli.demo_threads() == want
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    monkeypatch.setattr(cli, "_TORCH_THREADS", 2)
    assert cli.demo_threads() == 2


def test_demo_grid_has_a_header_row_and_one_row_per_face(tmp_path, capsys, monkeypatch):
    """The PNG: a header band with text over every column (reference, input, one per intensity,
    the truth), then n rows of k columns of 3x-upscaled toy images where the geometry puts them;
    the reference once, in its own column; the printed description names rows and columns as
    drawn."""
    import numpy as np

    import jojogan.toy.demo as cli

    text, png, drawn = _run_demo(tmp_path, capsys, monkeypatch)
    headers = drawn["headers"]
    assert headers == [
        "reference (ink)",
        "input photo",
        "style 1/3",
        "style 2/3",
        "style 1",
        "truth (renderer)",
    ]
    rows, kw = drawn["rows"], drawn["kw"]
    assert len(rows) == 2 and all(len(r) == len(headers) - 1 for r in rows)
    geo = cli._grid_geometry(len(headers), 2, 64, title=True, scale=3, pad=6, breaks=kw["breaks"])
    assert png.shape == (geo.height, geo.width, 3) and geo.cell == 192
    band = png[: geo.ys[0]]
    for x in geo.xs:  # every column has its header drawn (dark text pixels)
        assert (band[:, x : x + geo.cell] < 128).any(axis=2).sum() > 50
    assert (png[geo.ys[0] - 4 : geo.ys[0]] > 128).all()  # no text runs into the images
    for i, row in enumerate(rows):
        for j, t in enumerate(row):
            want = cli._to_uint8(t[None])[0].repeat(3, 0).repeat(3, 1)
            x, y = geo.xs[j + 1], geo.ys[i]
            assert np.array_equal(png[y : y + 192, x : x + 192], want), (i, j)
    ref = cli._to_uint8(kw["aside"][None])[0].repeat(3, 0).repeat(3, 1)
    column = png[geo.ys[0] :, geo.xs[0] : geo.xs[0] + 192]
    hits = [y for y in range(column.shape[0] - 191) if np.array_equal(column[y : y + 192], ref)]
    assert len(hits) == 1  # once, not per row
    line = next(ln for ln in text.splitlines() if "wrote " in ln)
    assert "one row per unseen face" in line and "columns: the ink reference" in line
    assert line.index("input photo") < line.index("intensity 1/3, 2/3, 1") < line.index("truth")


def test_demo_prints_every_phase_with_elapsed_seconds(tmp_path, capsys, monkeypatch):
    import re

    text, _, _ = _run_demo(tmp_path, capsys, monkeypatch)
    lines = text.splitlines()
    want = [
        "loading the toy model",
        "inverting the ink reference: the encoder, then 2 steps matching its edges",
        "reference inversion step 2/2",
        "fine-tuning the generator on the reference: 2 steps",
        "fine-tune step 2/2",
        "inverting the 2 unseen input photos: the encoder, then 2 steps refining toward each",
        "inputs' inversion step 2/2",
        "stylizing the 2 inputs at intensity 1/3, 2/3, 1",
        "scoring the outputs against the truth",
        "wrote ",
        "done",
    ]
    at = []
    for w in want:
        hit = [i for i, ln in enumerate(lines) if w in ln]
        assert hit, f"no progress line {w!r} in:\n{text}"
        assert re.match(r"\[ *\d+\.\d s\] ", lines[hit[0]]), lines[hit[0]]
        at.append(hit[0])
    assert at == sorted(at)


def test_demo_explains_the_score_after_the_table(tmp_path, capsys, monkeypatch):
    """One line after the table says what d is, that lower is better, and how the outputs
    compare with the input unchanged and the reference copy (the table's figures)."""
    text, _, _ = _run_demo(tmp_path, capsys, monkeypatch)
    lines = text.splitlines()
    head = next(i for i, ln in enumerate(lines) if ln.startswith("| style |"))
    cells = [c.strip() for c in lines[head + 2].strip("|").split("|")]
    d_out, d_in, d_ref = cells[2:5]
    expl = lines[head + 3]
    assert expl.startswith("d = how far an image is from the truth")
    assert "lower is better" in expl and "structure similarity" in expl
    assert f"score {d_out}" in expl
    assert f"leaving the input unchanged scores {d_in}" in expl
    assert f"copying the reference {d_ref}" in expl
    assert "closer to the truth than the better baseline" in expl or "no closer" in expl


def test_demo_full_score_adds_the_benchmarks_baselines(tmp_path, capsys, monkeypatch):
    text, _, _ = _run_demo(tmp_path, capsys, monkeypatch, "--full-score", "--no-gaze")
    table = next(ln for ln in text.splitlines() if ln.startswith("| style |"))
    assert "warped reference" in table and "identity copy" in table and "gaze" not in table
    plain, _, _ = _run_demo(tmp_path, capsys, monkeypatch)
    assert "warped reference" not in next(
        ln for ln in plain.splitlines() if ln.startswith("| style |")
    )
