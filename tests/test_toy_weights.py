"""The shipped toy-faces base model (jojogan/toy/weights/): lazy, strict, sane samples."""

import subprocess
import sys

import pytest
import torch

import jojogan.toy as toy
from jojogan.toy.model import load_toy

HAVE_WEIGHTS = all((toy.SHIPPED_DIR / n).is_file() for n in (toy.GENERATOR_FILE, toy.ENCODER_FILE))
needs_weights = pytest.mark.skipif(
    not HAVE_WEIGHTS,
    reason=f"toy weights not shipped in {toy.SHIPPED_DIR} (train with python -m jojogan.toy.train)",
)


def test_importing_jojogan_loads_no_toy_weights():
    code = (
        "import sys, jojogan, jojogan.toy\n"
        "assert 'jojogan.toy.train' not in sys.modules, 'train module imported'\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_missing_weights_is_a_clear_error(tmp_path):
    with pytest.raises(toy.ToyWeightsMissing, match="toy weights not found in .*jojogan.toy.train"):
        load_toy(tmp_path)
    # also a FileNotFoundError, for callers that catch that
    with pytest.raises(FileNotFoundError):
        load_toy(tmp_path / "nope")
    assert toy.model_card(toy.SHIPPED_DIR) == toy.model_card()  # the shipped folder by default
    (tmp_path / toy.GENERATOR_FILE).write_bytes(b"")
    assert toy.model_card(tmp_path) == {}
    (tmp_path / "model_card.json").write_text("{not json")
    with pytest.raises(ValueError, match="unreadable model card"):
        toy.model_card(tmp_path)


@needs_weights
def test_shipped_weights_load_strictly_and_sample_diverse_faces():
    torch.manual_seed(0)
    g, d, enc, latent_avg, _cfg = load_toy()
    card = toy.model_card()
    assert card.get("steps_done", {}).get("gan", 0) > 0, "model card lacks the steps reached"
    assert latent_avg.shape == (g.style_dim,) and torch.isfinite(latent_avg).all()
    for m in (g, d, enc):
        assert not m.training and not any(p.requires_grad for p in m.parameters())
    with torch.no_grad():
        z = torch.randn(16, g.style_dim, generator=torch.Generator().manual_seed(0))
        w = g.mapping(z)
        img = g.synthesis(w[:, None].expand(-1, g.n_latent, -1))
        assert img.shape == (16, 3, g.size, g.size)
        assert torch.isfinite(img).all()
        # no tanh in StyleGAN2: a few pixels overshoot [-1,1] (callers clamp), most do not
        assert img.abs().max() < 4.0
        assert (img.abs() > 1.1).float().mean() < 0.05
        assert img.std() > 0.2  # not a flat image
        # diverse: mean pairwise L1 between different samples well above zero (no collapse)
        flat = img.flatten(1)
        pair = (flat[:, None] - flat[None]).abs().mean(-1)
        off = pair[~torch.eye(16, dtype=torch.bool)]
        assert off.min() > 0.02 and off.mean() > 0.1
        # the discriminator scores them; the encoder maps them back into W+
        assert d(img).shape == (16, 1) and torch.isfinite(d(img)).all()
        codes = enc(img)
        assert codes.shape == (16, g.n_latent, g.style_dim) and torch.isfinite(codes).all()
        assert enc.input_size == g.size


@needs_weights
def test_shipped_encoder_reconstructs_photo_renders_better_than_the_mean_face():
    from jojogan.toy.render import render_torch, sample_params

    g, _d, enc, latent_avg, _cfg = load_toy()
    with torch.no_grad():
        real = render_torch(sample_params(777, 16), "photo", g.size, "cpu")
        rec = g.synthesis(enc(real))
        mean = g.synthesis(latent_avg.expand(1, g.n_latent, -1))
        err_rec = (rec - real).abs().mean()
        err_mean = (mean - real).abs().mean()
    assert torch.isfinite(rec).all()
    assert err_rec < 0.8 * err_mean, (float(err_rec), float(err_mean))


def test_shipped_parameter_regressor_reads_renders_better_than_guessing():
    """The measuring tool of the toy benchmarks (jojogan.toy.score). Guessing 0.5 everywhere
    scores 0.25 per field; measured on these 64 faces: geometry 0.148, pose 0.077, colour 0.077
    (photo), hair style always right."""
    from jojogan.toy.score import DEFAULT_REGRESSOR, evaluate_regressor, load_regressor

    assert DEFAULT_REGRESSOR.is_file()
    err = evaluate_regressor(load_regressor(), styles=["photo"], n=64, seed=2024)["photo"]
    assert err["geometry"] < 0.17 and err["pose"] < 0.1 and err["colour"] < 0.1
    assert err["hair_style_acc"] > 0.9


@needs_weights
def test_shipped_model_mixes_geometry_from_coarse_layers_and_colour_from_fine():
    """Issue 5's mixing check on the shipped model: W+ layers < mix_cut from face A, the rest from
    B. Read by the shipped parameter regressor (the training used another, independent one as
    its mixing critic): the mix's geometry and pose are nearer A's, its colours nearer B's."""
    from jojogan.toy.score import load_regressor, param_errors

    g, _d, _enc, _avg, cfg = load_toy()
    assert cfg.mix_cut == int(toy.model_card()["config"].get("mix_cut", 4))
    cut = cfg.mix_cut
    reg = load_regressor()
    gen = torch.Generator().manual_seed(4321)
    with torch.no_grad():
        za, zb = torch.randn(2, 128, g.style_dim, generator=gen)
        wa = g.mapping(za)[:, None].expand(-1, g.n_latent, -1)
        wb = g.mapping(zb)[:, None].expand(-1, g.n_latent, -1)
        mix = torch.cat([wa[:, :cut], wb[:, cut:]], 1)
        qa, qb, qm = (reg.predict(g.synthesis(w, noise_mode="const")) for w in (wa, wb, mix))
    ea, eb = param_errors(qm, qa), param_errors(qm, qb)
    assert eb["colour"] < 0.6 * ea["colour"], f"colour follows A: {ea['colour']} vs {eb['colour']}"
    assert ea["geometry"] < eb["geometry"] and ea["pose"] < eb["pose"], (ea, eb)
