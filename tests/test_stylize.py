"""Stylize with inference-time intensity (Sec. 4 feature interpolation) and random samples; the
released notebook's "Generate results" cell reproduced against golden numbers."""

import copy
import importlib.util
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from jojogan import stylize as stylize_mod
from jojogan.images import OUTPUT_BUDGET_ENV
from jojogan.stylegan2 import Generator
from jojogan.stylize import interpolate, layer_intensities, sample, stylize


@pytest.fixture(scope="module")
def pair():
    torch.manual_seed(0)
    base = Generator(32, style_dim=32, n_mlp=2, channel_max=32).eval()
    tuned = Generator(32, style_dim=32, n_mlp=2, channel_max=32).eval()
    tuned.load_state_dict(base.state_dict())
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in tuned.named_parameters():
            if not name.startswith("style."):
                p.add_(0.3 * p.abs().mean() * torch.randn(p.shape, generator=g))
    return base, tuned


def _codes(g, n=3):
    gen = torch.Generator().manual_seed(2)
    z = torch.randn(n, g.style_dim, generator=gen)
    with torch.no_grad():
        return g.mapping(z)[:, None].expand(-1, g.n_latent, -1).contiguous()


def test_a0_is_base_and_a1_is_tuned_exactly(pair):
    base, tuned = pair
    codes = _codes(base)
    with torch.no_grad():
        want0, want1 = base.synthesis(codes), tuned.synthesis(codes)
    assert torch.equal(stylize(tuned, codes, base=base, intensity=0.0), want0)
    assert torch.equal(stylize(tuned, codes, base=base, intensity=1.0), want1)
    assert torch.equal(stylize(tuned, codes), want1)


def test_interpolation_is_monotone(pair):
    base, tuned = pair
    codes = _codes(base)
    a_grid = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    outs = [stylize(tuned, codes, base=base, intensity=a) for a in a_grid]
    to_base = [float((o - outs[0]).abs().mean()) for o in outs]
    to_tuned = [float((o - outs[-1]).abs().mean()) for o in outs]
    assert all(x < y for x, y in zip(to_base, to_base[1:], strict=False))
    assert all(x > y for x, y in zip(to_tuned, to_tuned[1:], strict=False))


def test_layer_range_applies_style_only_there(pair):
    base, tuned = pair
    codes = _codes(base)
    n = base.n_styles
    fine = stylize(tuned, codes, base=base, intensity=1.0, layers=(6, n - 1))
    full = stylize(tuned, codes, base=base, intensity=1.0)
    orig = stylize(tuned, codes, base=base, intensity=0.0)
    assert not torch.equal(fine, full) and not torch.equal(fine, orig)
    assert layer_intensities(n, 0.5, (2, 4)) == [0.0, 0.0, 0.5, 0.5, 0.5] + [0.0] * (n - 5)
    same = stylize(tuned, codes, base=base, intensity=[1.0] * n)
    assert torch.equal(same, full)


def test_s_codes_and_batches_give_the_same_images(pair):
    base, tuned = pair
    codes = _codes(base, n=5)
    whole = stylize(tuned, codes, base=base, intensity=0.5, batch_size=5)
    parts = stylize(tuned, codes, base=base, intensity=0.5, batch_size=2)
    torch.testing.assert_close(whole, parts, rtol=1e-4, atol=1e-5)
    with torch.no_grad():
        s = base.styles(codes)
        via_s = stylize(tuned, s, base=base, intensity=1.0)
        want = tuned.synthesis_from_styles(s)
    assert torch.equal(via_s, want)


def test_random_samples_are_seeded_and_truncated(pair):
    base, tuned = pair
    a = sample(tuned, 4, base=base, seed=3, truncation=0.7, batch_size=3)
    b = sample(tuned, 4, base=base, seed=3, truncation=0.7)
    c = sample(tuned, 4, base=base, seed=4, truncation=0.7)
    assert a.shape == (4, 3, 32, 32)
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(a, c)
    s0 = sample(tuned, 2, base=base, seed=3, truncation=0.0)
    torch.testing.assert_close(s0[0], s0[1])  # psi = 0: every sample is the mean


def _released_recipe():
    path = Path(__file__).resolve().parent / "fixtures" / "released" / "recipe.py"
    spec = importlib.util.spec_from_file_location("released_recipe", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_released_inference_follows_the_notebook_draw_for_draw(one_thread):
    """The notebook's cell on JoJoGAN's modules (tests/fixtures/released/make_golden.py):
    generator(my_w, input_is_latent=True) after torch.manual_seed(s) == stylize(noise_mode=
    "random", rng="global", seed=None) after the same seed, or seed=s without touching the
    global RNG; generator([z], truncation=0.7, truncation_latent=mean_latent) == sample(...)
    likewise; its mean_latent(10000) after manual_seed(m) == our mean_latent(10000, seed=m)."""
    R = _released_recipe()
    g, _ = R.our_models()
    inputs = R.draw_inputs(g.style_dim, g.n_latent)
    gold = load_file(str(R.GOLDEN))
    mean = g.mean_latent(R.MEAN_N, seed=R.MEAN_SEED)
    torch.testing.assert_close(mean, gold["mean_latent"], rtol=0, atol=1e-6)

    torch.manual_seed(R.W_SEED)
    with torch.no_grad():
        g.synthesis(inputs["latents"], noise_mode="random")  # the notebook's draws
    after = torch.get_rng_state()
    torch.manual_seed(R.W_SEED)
    a = stylize(g, inputs["latents"], noise_mode="random", seed=None, rng="global", batch_size=1)
    assert torch.equal(torch.get_rng_state(), after)
    assert (a[:, :, ::4, ::4] - gold["infer.from_w"]).abs().mean() < 1e-3
    torch.manual_seed(99)
    before = torch.get_rng_state()
    b = stylize(g, inputs["latents"], noise_mode="random", seed=R.W_SEED, rng="global")
    assert torch.equal(torch.get_rng_state(), before)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)  # batches of 1 vs 8: rounding only

    kw = dict(truncation=R.TRUNCATION, mean_latent=mean, noise_mode="random", rng="global")
    torch.manual_seed(R.Z_SEED)
    c = sample(g, R.N_SAMPLE, seed=None, **kw)
    assert (c[:, :, ::4, ::4] - gold["infer.from_z"]).abs().mean() < 1e-3
    torch.manual_seed(99)
    d = sample(g, R.N_SAMPLE, seed=R.Z_SEED, batch_size=2, **kw)
    assert torch.equal(torch.get_rng_state(), before)
    torch.testing.assert_close(c, d, rtol=0, atol=1e-5)
    # the constant noise differs: the option is not the notebook's
    e = sample(g, R.N_SAMPLE, seed=R.Z_SEED, **{**kw, "noise_mode": "const"})
    assert (e[:, :, ::4, ::4] - gold["infer.from_z"]).abs().mean() > 1e-3


@pytest.mark.parametrize("rng", ["local", "global"])
def test_random_noise_is_seeded_and_independent_of_batch_size(pair, rng):
    base, tuned = (copy.deepcopy(m) for m in pair)
    for m in (base, tuned):  # the fixture's noise strengths are zero (their initial value)
        for name, p in m.named_parameters():
            if name.endswith("noise.weight"):
                p.data.fill_(0.5)
    codes = _codes(base, n=5)
    before = torch.get_rng_state()
    kw = dict(base=base, noise_mode="random", seed=4, rng=rng)
    a = stylize(tuned, codes, batch_size=8, **kw)
    b = stylize(tuned, codes, batch_size=2, **kw)
    c = stylize(tuned, codes, batch_size=2, intensity=0.5, **kw)
    d = stylize(tuned, codes, batch_size=5, intensity=0.5, **kw)
    assert torch.equal(torch.get_rng_state(), before)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)  # the same noise; rounding only
    torch.testing.assert_close(c, d, rtol=0, atol=1e-5)
    assert not torch.allclose(a, stylize(tuned, codes, **{**kw, "seed": 5}))
    assert not torch.allclose(a[0], a[1])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"intensity": 1.5}, r"\[0,1\]"),
        ({"intensity": -0.1}, r"\[0,1\]"),
        ({"intensity": [0.5, 0.5]}, "one value per synthesis layer"),
        ({"intensity": 0.5, "layers": (5, 2)}, "layer range"),
        ({"intensity": 0.5, "layers": (0, 99)}, "layer range"),
        ({"batch_size": 0}, "batch_size"),
        ({"noise_mode": "loud"}, "noise_mode"),
        ({"rng": "mine"}, "rng"),
        ({"seed": None}, "needs rng='global'"),
    ],
)
def test_bad_arguments(pair, kwargs, match):
    base, tuned = pair
    with pytest.raises(ValueError, match=match):
        stylize(tuned, _codes(base), base=base, **kwargs)


def test_intensity_below_one_needs_base(pair):
    _, tuned = pair
    with pytest.raises(ValueError, match="base"):
        stylize(tuned, _codes(tuned), intensity=0.5)
    with pytest.raises(ValueError, match="W\\+ codes"):
        stylize(tuned, torch.zeros(2, 3, 32))


def test_interpolate_is_stylize_at_each_intensity_input_major_in_one_output(pair):
    base, tuned = pair
    codes = _codes(base, n=3)
    alphas = [0.0, 0.4, 1.0]
    want = torch.stack(
        [stylize(tuned, codes, base=base, intensity=a, batch_size=2) for a in alphas], dim=1
    ).flatten(0, 1)
    got = interpolate(tuned, codes, alphas, base=base, batch_size=2)
    assert got.shape == (9, 3, 32, 32) and got.is_contiguous() and torch.equal(got, want)
    with torch.no_grad():
        s = base.styles(codes)  # S codes: the same styles feed both generators
    via_s = stylize(tuned, s, base=base, intensity=0.4, batch_size=2)
    assert torch.equal(interpolate(tuned, s, [0.4], base=base, batch_size=2), via_s)
    with pytest.raises(ValueError, match="intensities is empty"):
        interpolate(tuned, codes, [], base=base)
    with pytest.raises(ValueError, match=r"\[0,1\]"):  # every intensity checked up front
        interpolate(tuned, codes, [0.5, 2.0], base=base)


def test_batches_shrink_to_the_working_memory_bound_with_the_same_images(pair, monkeypatch):
    base, tuned = pair
    codes = _codes(base, n=5)
    want = stylize(tuned, codes, base=base, intensity=0.5, batch_size=2)
    seen = []
    real = stylize_mod._blended

    def spy(g0, g1, s0, s1, a, mode, noise):
        seen.append(s0[0].shape[0])
        return real(g0, g1, s0, s1, a, mode, noise)

    monkeypatch.setattr(stylize_mod, "_blended", spy)
    monkeypatch.setattr(stylize_mod, "STYLIZE_WORK_BYTES", 2 * stylize_mod._work_per_image(tuned))
    got = stylize(tuned, codes, base=base, intensity=0.5, batch_size=256)
    assert seen == [2, 2, 1] and torch.equal(got, want)


def test_outputs_over_the_budget_are_refused_before_any_work(pair, monkeypatch):
    base, tuned = pair
    codes = _codes(base, n=3)
    monkeypatch.setenv(OUTPUT_BUDGET_ENV, "0.00001")  # ~10 KiB: under one 32 px image
    monkeypatch.setattr(stylize_mod, "_render", None)  # reaching it would fail otherwise
    before = torch.get_rng_state()
    calls = [
        (lambda: stylize(tuned, codes, noise_mode="random", seed=None, rng="global"), "3 images"),
        (lambda: sample(tuned, 7, seed=1, rng="global"), "count 7"),
        (lambda: interpolate(tuned, codes, [0.0, 1.0], base=base), "3 images"),
    ]
    for call, words in calls:
        with pytest.raises(ValueError) as ei:
            call()
        msg = str(ei.value)
        assert words in msg and "at 32 px" in msg and OUTPUT_BUDGET_ENV in msg, msg
        assert len(msg) <= 300
    assert torch.equal(torch.get_rng_state(), before)  # no noise or z was drawn


def test_float16_overflow_is_named_with_what_to_do(pair):
    _, tuned = pair
    half = copy.deepcopy(tuned).half()
    codes = _codes(tuned, n=2).half()
    ok = stylize(half, codes)  # a float16 model that stays in range works
    assert ok.dtype == torch.float32 and bool(torch.isfinite(ok).all())
    with torch.no_grad():
        for m in half.to_rgbs:
            m.conv.weight.mul_(3e4)  # past float16's 65504
    with pytest.raises(ValueError, match="float16 generation overflowed") as ei:
        stylize(half, codes)
    assert "float32" in str(ei.value) and "bf16" in str(ei.value)


def test_nan_codes_and_nan_weights_are_errors_not_nan_images(pair):
    base, tuned = pair
    codes = _codes(base, n=2)
    codes[1, 3, 5] = float("nan")
    with pytest.raises(ValueError, match="latent codes contain NaN"):
        stylize(tuned, codes)
    with pytest.raises(ValueError, match="latent codes contain NaN"):
        interpolate(tuned, codes, [1.0])
    broken = copy.deepcopy(tuned)
    with torch.no_grad():
        broken.to_rgbs[0].conv.weight[0, 0, 0, 0] = float("inf")
    with pytest.raises(ValueError, match="NaN or infinite values.*reload or retrain"):
        stylize(broken, _codes(base, n=2))
    with pytest.raises(ValueError, match=r"n \(the count\) must be an integer >= 1"):
        sample(tuned, 0)


# -- python -m jojogan demo ------------------------------------------------------------------


def test_demo_without_toy_weights_is_a_clear_error(tmp_path, capsys):
    from jojogan.__main__ import main

    out = tmp_path / "demo.png"
    rc = main(["demo", "--toy-dir", str(tmp_path / "nothing"), "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 1 and "toy weights not found" in err and "jojogan.toy.train" in err
    assert not out.exists() and list(tmp_path.iterdir()) == []
    assert main(["demo", "--steps", "0", "--out", str(out)]) == 2
    assert "steps" in capsys.readouterr().err
    assert main(["demo", "--style", "nope", "--out", str(out)]) == 2
    missing = tmp_path / "no_styles.py"
    assert main(["demo", "--style-module", str(missing), "--out", str(out)]) == 2
    assert "no such file" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_demo_and_benchmark_take_styles_from_a_file(style_registry, tmp_path, capsys):
    """--style-module registers styles the package has not seen: the style is accepted (the
    run then stops only because this toy folder is empty), an unknown one is refused; so is a
    negative --supervised-bound."""
    import subprocess
    import sys

    from jojogan.__main__ import main

    root = Path(__file__).resolve().parents[1]
    example = root / "benchmarks" / "example_styles.py"
    out = tmp_path / "demo.png"
    empty = ["--toy-dir", str(tmp_path / "nothing"), "--out", str(out)]
    rc = main(["demo", "--style-module", str(example), "--style", "blueprint", *empty])
    assert rc == 1 and "toy weights not found" in capsys.readouterr().err
    bench = [sys.executable, str(root / "benchmarks" / "bench_toy_quality.py")]
    run = subprocess.run(
        [*bench, "--style-module", str(example), "--styles", "blueprint", *empty[:2]],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 1 and "registered blueprint" in run.stderr, run.stderr
    run = subprocess.run(
        [*bench, "--styles", "blueprint", *empty[:2]], capture_output=True, text=True
    )
    assert run.returncode == 2 and "unknown styles ['blueprint']" in run.stderr, run.stderr
    run = subprocess.run(
        [*bench, "--supervised-bound", "-1", *empty[:2]], capture_output=True, text=True
    )
    assert run.returncode == 2 and "--supervised-bound must be >= 0" in run.stderr, run.stderr


@pytest.mark.slow
def test_demo_runs_end_to_end_on_a_briefly_trained_toy_model(tmp_path, capsys):
    """Plumbing only: a toy model trained for a few steps (real recipe, useless weights)."""
    from jojogan.__main__ import main
    from jojogan.toy.train import ToyConfig, train

    cfg = ToyConfig(
        size=32,
        style_dim=32,
        n_mlp=2,
        channels=(32, 32, 16, 16),
        batch=4,
        steps=2,
        enc_steps=2,
        data_size=16,
    )
    train(cfg, tmp_path / "toy", device="cpu", log=None)
    out = tmp_path / "demo.png"
    rc = main(
        [
            "demo",
            "--toy-dir",
            str(tmp_path / "toy"),
            "--steps",
            "3",
            "--n",
            "2",
            "--no-gaze",
            "--out",
            str(out),
            "--threads",
            "1",
        ]
    )
    text = capsys.readouterr().out
    assert rc == 0 and out.stat().st_size > 0
    assert "d(stylized, truth)" in text
