"""Toy-domain training recipe (smoke runs at 16 px) and the ground-truth scoring tools."""

import json

import numpy as np
import pytest
import torch
from toy_standin import TINY_TOY

from jojogan.toy.render import FIELDS, render_torch, sample_params
from jojogan.toy.score import (
    ParamRegressor,
    frechet_distance,
    load_regressor,
    palette_distance,
    param_errors,
    save_regressor,
    ssim_luma,
    structure_similarity,
    train_regressor,
)
from jojogan.toy.train import (
    ToyConfig,
    ToyEncoder,
    load_toy,
    main,
    mixed_params,
    params_from_z,
    train,
    z_from_params,
)


def _tiny(**kw) -> ToyConfig:
    return ToyConfig(**{**TINY_TOY, "warm_steps": 2, "steps": 3, "data_size": 16, **kw})


# -- training recipe ----------------------------------------------------------------------------


def test_mixing_aware_targets_take_geometry_from_a_and_colour_from_b():
    from jojogan.toy.render import FIELD_GROUPS, FIELD_INDEX

    vals = sample_params(3, 6).values
    a, b = np.array([0, 1, 2]), np.array([5, 4, 3])
    mix = mixed_params(vals, a, b)
    colour = [FIELD_INDEX[f] for f in FIELD_GROUPS["colour"]]
    rest = [i for i in range(len(FIELDS)) if i not in colour]
    assert np.array_equal(mix[:, colour], vals[b][:, colour])
    assert np.array_equal(mix[:, rest], vals[a][:, rest])
    assert not np.array_equal(vals[a][:, colour], vals[b][:, colour])  # the test can fail


def test_mixing_aware_warm_start_runs_and_records_its_settings(tmp_path):
    torch.manual_seed(0)
    cfg = _tiny(warm_mix=1.0, mix_cut=2, steps=0, enc_steps=0)
    cache = tmp_path / "not" / "yet" / "there"  # created on demand
    card = train(cfg, tmp_path, device="cpu", log=None, cache_dir=cache)
    assert card["steps_done"]["warm"] == 2 and np.isfinite(card["final_losses"]["warm_l1"])
    assert sorted(p.name for p in cache.iterdir()) == [
        "photos_16px_16_seed0.npy",
        "photos_16px_16_seed0_params.npy",
    ]
    assert load_toy(tmp_path)[4].warm_mix == 1.0 and load_toy(tmp_path)[4].mix_cut == 2
    with pytest.raises(ValueError, match="mix_cut must be in 1..5"):
        train(_tiny(warm_mix=0.5, mix_cut=6), tmp_path / "bad", device="cpu", log=None)


def test_mixing_critic_loss_pulls_geometry_to_a_and_colour_to_b(tmp_path):
    from jojogan.toy.train import _mix_critic_loss, build_models

    torch.manual_seed(0)
    g, _, _ = build_models(_tiny())
    critic = ParamRegressor(32, 8)
    for p in critic.parameters():
        p.requires_grad_(False)
    za, zb = torch.randn(2, 4, g.style_dim)
    loss = _mix_critic_loss(g, critic, za, zb, 2)
    loss.backward()
    assert loss > 0 and all(p.grad is None for p in critic.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in g.parameters())
    # the same face on both sides: the mix is that face (up to the random noise maps)
    g.zero_grad()
    same = _mix_critic_loss(g, critic, za, za, 2)
    assert same < loss
    # settings are checked before any work and recorded in the weights
    with pytest.raises(ValueError, match="needs mix_critic"):
        train(_tiny(mix_weight=1.0), tmp_path / "bad", device="cpu", log=None)
    with pytest.raises(FileNotFoundError, match="no such file"):
        train(_tiny(mix_weight=1.0, mix_critic=str(tmp_path / "nope")), tmp_path / "bad", log=None)
    assert not (tmp_path / "bad").exists()  # nothing written
    path = tmp_path / "critic.safetensors"
    save_regressor(critic, path, {"steps": 0})
    cfg = _tiny(warm_steps=0, steps=2, enc_steps=0, mix_weight=0.5, mix_critic=str(path))
    card = train(cfg, tmp_path / "run", device="cpu", log=None)
    assert np.isfinite(card["final_losses"]["mix"])
    assert load_toy(tmp_path / "run")[4].mix_weight == 0.5


def test_smoke_run_writes_loadable_weights_card_and_finite_losses(tmp_path):
    torch.manual_seed(0)
    card = train(_tiny(), tmp_path, device="cpu", log=None)
    for name in ("toy_stylegan2.safetensors", "toy_encoder.safetensors", "samples.png"):
        assert (tmp_path / name).is_file(), name
    assert card["complete"] and card["steps_done"] == {"warm": 2, "gan": 3, "enc": 2}
    assert all(np.isfinite(v) for v in card["final_losses"].values())
    assert {"d", "g", "r1", "warm_l1", "enc_latent"} <= set(card["final_losses"])
    on_disk = json.loads((tmp_path / "model_card.json").read_text())
    assert on_disk["machine"] and on_disk["total_wall_s"] >= 0
    assert "Toy-faces base model" in (tmp_path / "MODEL_CARD.md").read_text()

    g, d, enc, latent_avg, cfg = load_toy(tmp_path)
    assert cfg.size == 16 and latent_avg.shape == (32,)
    ws = latent_avg.expand(2, g.n_latent, -1)
    img = g.synthesis(ws)
    assert img.shape == (2, 3, 16, 16) and torch.isfinite(img).all()
    assert d(img).shape == (2, 1)
    codes = enc(render_torch(sample_params(0, 2), "photo", 16))
    assert codes.shape == (2, g.n_latent, 32) and torch.isfinite(codes).all()
    # the shipped generator loads with the project's strict StyleGAN2 loader too
    from jojogan.checkpoints import load_stylegan2

    ck = load_stylegan2(tmp_path / "toy_stylegan2.safetensors")
    assert ck.g_ema is not None and ck.d is not None and ck.size == 16


def test_one_toy_loader_finds_the_folder_for_every_caller(tmp_path, monkeypatch):
    """The one toy loader (the demo's, the benchmarks', the node's): $JOJOGAN_TOY_DIR when no
    folder is given, the same weights as the folder named, read-only."""
    torch.manual_seed(0)
    train(_tiny(enc_steps=0), tmp_path, device="cpu", log=None)
    monkeypatch.setenv("JOJOGAN_TOY_DIR", str(tmp_path))
    g, d, enc, latent_avg, cfg = load_toy()
    g2, d2, enc2, _avg2, cfg2 = load_toy(tmp_path)
    assert cfg == cfg2 and cfg.size == 16 and latent_avg.shape == (32,)
    for a, b in ((g, g2), (d, d2), (enc, enc2)):
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
        assert not a.training and not any(p.requires_grad for p in a.parameters())
    monkeypatch.setenv("JOJOGAN_TOY_DIR", str(tmp_path / "elsewhere"))
    with pytest.raises(FileNotFoundError, match="toy weights not found in .*elsewhere"):
        load_toy()

    # the ground-truth evaluation runs on it (with a throwaway regressor)
    from jojogan.toy.train import evaluate_model

    reg, _ = train_regressor(1, batch=4, n_images=8, size=32, width=8, log=None)
    save_regressor(reg, tmp_path / "param_regressor.safetensors")
    res = evaluate_model(tmp_path, n=8)
    assert (tmp_path / "eval.json").is_file()
    flat = [res["fid_samples"], res["fid_renders"], res["encoder"]["l1"]]
    flat += [v for v in res["mixing"].values()]
    assert all(np.isfinite(v) for v in flat)


def test_resume_continues_where_it_stopped(tmp_path):
    train(_tiny(warm_steps=0, steps=2, enc_steps=0), tmp_path, device="cpu", log=None)
    card = train(_tiny(warm_steps=0, steps=4, enc_steps=1), tmp_path, resume=True, log=None)
    assert card["steps_done"] == {"warm": 0, "gan": 4, "enc": 1}
    with pytest.raises(ValueError, match="cannot resume, channels differs"):
        train(_tiny(channels=(16, 8, 8)), tmp_path, resume=True, log=None)


def test_bad_settings_fail_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="multiple of 4"):
        train(_tiny(batch=6), tmp_path / "a", log=None)
    with pytest.raises(ValueError, match="steps must be >= 0"):
        train(_tiny(steps=-1), tmp_path / "b", log=None)
    with pytest.raises(ValueError, match="needs 3 widths"):
        _tiny(channels=(8, 8)).channel_map()
    assert main(["--out", str(tmp_path / "c"), "--size", "16", "--channels", "8,8"]) == 2
    assert not (tmp_path / "c" / "toy_stylegan2.safetensors").exists()
    with pytest.raises(FileNotFoundError, match="toy weights not found in .*jojogan.toy.train"):
        load_toy(tmp_path / "nothing")


def test_z_to_params_round_trip_matches_the_renderer_prior():
    p = sample_params(0, 64)
    z = z_from_params(p.to_vector(), 64, np.random.default_rng(0))
    assert z.shape == (64, 64) and np.abs(z).max() < 4.5
    back = params_from_z(torch.from_numpy(z))
    assert np.abs(back.to_vector() - p.to_vector()).max() < 1e-3


def test_encoder_starts_from_w0_alone_and_checks_input():
    enc = ToyEncoder(16, n_latent=6, style_dim=8, width=4)
    ws, deltas = enc(torch.zeros(2, 3, 16, 16), return_deltas=True)
    assert ws.shape == (2, 6, 8) and torch.all(deltas == 0)
    with pytest.raises(ValueError, match=r"expected images \[B,3,16,16\]"):
        enc(torch.zeros(2, 3, 32, 32))


# -- scoring ------------------------------------------------------------------------------------


def test_structure_similarity_prefers_same_identity_across_styles():
    p, q = sample_params(0, 6), sample_params(1, 6)
    photo = render_torch(p, "photo", 64)
    for style in ("sketch", "cartoon", "ink"):
        same = structure_similarity(photo, render_torch(p, style, 64))
        other = structure_similarity(photo, render_torch(q, style, 64))
        assert same.mean() > other.mean() + 0.15, style
    assert torch.allclose(structure_similarity(photo, photo), torch.ones(6), atol=1e-5)
    assert torch.allclose(ssim_luma(photo, photo), torch.ones(6), atol=1e-5)


def test_palette_distance_sees_colours_not_layout():
    p = sample_params(2, 4)
    photo = render_torch(p, "photo", 64)
    flipped = photo.flip(-1)  # same colours, other places
    assert palette_distance(photo, flipped).max() < 1e-5
    assert (palette_distance(photo, render_torch(p, "sketch", 64)) > 0.05).all()


def test_frechet_distance_zero_for_same_set_and_grows_with_shift():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((500, 4))
    b = rng.standard_normal((500, 4))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    near = frechet_distance(a, b)
    far = frechet_distance(a, b + 1.0)
    assert near < 0.2 and far == pytest.approx(4.0, abs=0.5)
    with pytest.raises(ValueError, match="same D"):
        frechet_distance(a, b[:, :3])


def test_param_errors_per_group():
    p = sample_params(0, 10)
    errs = param_errors(p, p)
    assert errs["geometry"] == 0 and errs["gaze"] == 0 and errs["hair_style_acc"] == 1
    shifted = p.to_vector()
    shifted[:, 9] = np.clip(shifted[:, 9] + 0.5, 0, 1)  # gaze_x
    errs = param_errors(shifted, p)
    assert errs["gaze"] > 0.05 and errs["geometry"] == 0


def test_regressor_trains_saves_and_loads(tmp_path):
    torch.manual_seed(0)
    model, recipe = train_regressor(4, batch=8, n_images=16, size=32, width=8, log=None)
    out = model(render_torch(sample_params(0, 2), "sketch", 64))  # resized to 32 inside
    assert out.shape == (2, len(FIELDS)) and ((out >= 0) & (out <= 1)).all()
    assert model.features(torch.zeros(3, 3, 32, 32)).shape == (3, 256)
    assert recipe["steps"] == 4 and len(recipe["styles"]) >= 6
    path = tmp_path / "reg.safetensors"
    save_regressor(model, path, recipe)
    again = load_regressor(path)
    x = render_torch(sample_params(1, 2), "photo", 32)
    assert torch.allclose(again(x), model(x), atol=1e-6)
    with pytest.raises(FileNotFoundError, match="python -m jojogan.toy.score train"):
        load_regressor(tmp_path / "missing.safetensors")
    assert isinstance(again, ParamRegressor)
    # through the project's one safe loader: other files and damaged weights are clear errors
    from safetensors.torch import load_file, save_file

    from jojogan.checkpoints import CheckpointError, read_safetensors_metadata

    text = tmp_path / "text.safetensors"
    text.write_text("not weights")
    with pytest.raises(CheckpointError, match="text.safetensors"):
        load_regressor(text)
    sd = load_file(str(path))
    sd.pop(sorted(sd)[0])
    short = tmp_path / "short.safetensors"
    save_file(sd, str(short), metadata=read_safetensors_metadata(path))
    with pytest.raises(CheckpointError, match="checksum"):  # the file says what it held
        load_regressor(short)
    meta = {k: v for k, v in read_safetensors_metadata(path).items() if "sha256" not in k}
    save_file(sd, str(short), metadata=meta)
    with pytest.raises(CheckpointError, match="Missing keys"):
        load_regressor(short)


def test_phase_time_caps_stop_a_phase_and_still_write_outputs(tmp_path):
    cfg = _tiny(warm_steps=0, steps=10**6, enc_steps=1)
    card = train(cfg, tmp_path, phase_time_s={"gan": 0.5}, cache_dir=tmp_path / ".", log=None)
    assert 0 < card["steps_done"]["gan"] < 10**6 and card["steps_done"]["enc"] == 1
    assert not card["complete"]
    assert "INCOMPLETE" in (tmp_path / "MODEL_CARD.md").read_text()
    assert (tmp_path / "toy_stylegan2.safetensors").is_file()


def test_fit_by_synthesis_reads_gaze_of_a_same_style_render():
    from jojogan.toy.score import fit_by_synthesis

    p = sample_params(3, 2)
    q = p.replace(gaze_x=np.float32([0.15, 0.8]), gaze_y=np.float32([0.7, 0.3]))
    img = render_torch(q, "cartoon", 64)
    img = img + 0.05 * torch.randn(img.shape, generator=torch.Generator().manual_seed(0))
    fit = fit_by_synthesis(img, p, "cartoon", grid=5, rounds=2)
    assert np.abs(fit.field("gaze_x") - q.field("gaze_x")).max() < 0.08
    assert np.abs(fit.field("gaze_y") - q.field("gaze_y")).max() < 0.12
    # the other fields are the given identity's
    others = [i for i, (f, _) in enumerate(FIELDS) if f not in ("gaze_x", "gaze_y")]
    assert np.array_equal(fit.to_vector()[:, others], p.to_vector()[:, others])
    with pytest.raises(ValueError, match="2 images but 1"):
        fit_by_synthesis(img, p[0], "cartoon")
