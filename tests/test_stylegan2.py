"""jojogan.stylegan2 computes the reference StyleGAN2 (rosinality) function and keeps its layout.

Golden tensors in tests/fixtures/stylegan2/ come from the reference implementation run on weights
drawn by tests/fixtures/stylegan2/seeded.py (see make_fixtures.py). Error metric throughout:
relative error = max|ours - reference| / max|reference|, required <= 1e-5 in float32, on both the
plain and the fast op paths.
"""

import importlib.util
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from jojogan.ops import fast_ops
from jojogan.stylegan2 import Discriminator, Generator

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "stylegan2"
_spec = importlib.util.spec_from_file_location("stylegan2_seeded", FIXTURES / "seeded.py")
seeded = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(seeded)

TOL = 1e-5
PATHS = pytest.mark.parametrize("fast", [False, True], ids=["plain", "fast"])


def rel_err(ours: torch.Tensor, ref: torch.Tensor) -> float:
    assert ours.shape == ref.shape, (ours.shape, ref.shape)
    return ((ours.double() - ref.double()).abs().max() / ref.double().abs().max()).item()


def build(name: str, dtype=torch.float32):
    cfg = seeded.CONFIGS[name]
    kw = {"channels": cfg["channels"]} if cfg["channels"] else {}
    g = Generator(cfg["size"], cfg["style_dim"], cfg["n_mlp"], **kw)
    d = Discriminator(cfg["size"], **kw)
    g.load_state_dict(seeded.seeded_state_dict(g, cfg["seed"]), strict=True)
    d.load_state_dict(seeded.seeded_state_dict(d, cfg["seed"] + 1), strict=True)
    inputs = seeded.draw_inputs(cfg["size"], cfg["style_dim"], g.n_latent, cfg["seed"])
    return cfg, g.to(dtype), d.to(dtype), {k: v.to(dtype) for k, v in inputs.items()}


def jojo_loss(d, img, target_feats, layers):
    feats = d.features(img, layers)
    return sum(F.l1_loss(a, b) for a, b in zip(feats, target_feats, strict=True)) / len(feats)


def loss_grads(g, d, ws, target, layers):
    d.requires_grad_(False)
    with torch.no_grad():
        target_feats = d.features(target, layers)
    params = dict(g.named_parameters())
    loss = jojo_loss(d, g.synthesis(ws, noise_mode="const"), target_feats, layers)
    grads = torch.autograd.grad(loss, [params[k] for k in seeded.GRAD_KEYS])
    return loss.detach().reshape(1), dict(zip(seeded.GRAD_KEYS, grads, strict=True))


def parity_errors(name: str) -> dict[str, float]:
    """Relative errors of every recorded quantity against the reference fixture."""
    fx = load_file(str(FIXTURES / f"{name}.safetensors"))
    cfg, g, d, inputs = build(name)
    big = cfg["size"] >= 1024
    assert torch.equal(inputs["ws"], fx["ws"]) and torch.equal(inputs["z"], fx["z"])
    errs: dict[str, float] = {}
    ws, layers = inputs["ws"], cfg["layers"]
    with torch.no_grad():
        errs["mapping"] = rel_err(g.mapping(inputs["z"]), fx["w"])
        styles = g.styles(ws)
        assert len(styles) == g.n_styles == sum(k.startswith("style_") for k in fx)
        errs["styles"] = max(rel_err(s, fx[f"style_{i}"]) for i, s in enumerate(styles))
        img = g.synthesis(ws, noise_mode="const")
        img_none = g.synthesis(ws, noise_mode="none")
        if big:
            for label, t in (("img", img), ("img_none", img_none)):
                for part, v in seeded.crop_image(t).items():
                    errs[f"{label}_{part}"] = rel_err(v, fx[f"{label}_{part}"])
        else:
            errs["img"] = rel_err(img, fx["img"])
            errs["img_none"] = rel_err(img_none, fx["img_none"])
        errs["logits"] = rel_err(d(img), fx["logits_img"])
        if "d_in" in inputs:
            errs["logits_batch4"] = rel_err(d(inputs["d_in"]), fx["logits_d_in"])
        for i, f in zip(layers, d.features(img, layers), strict=True):
            if big:
                errs[f"feature_{i}"] = rel_err(seeded.crop_feature(f), fx[f"feat_{i}_sub"])
                errs[f"feature_{i}_abs_sum"] = rel_err(
                    f.double().abs().sum().reshape(1), fx[f"feat_{i}_sum"]
                )
            else:
                errs[f"feature_{i}"] = rel_err(f, fx[f"feat_{i}"])
    loss, grads = loss_grads(g, d, ws, inputs["target"], layers)
    errs["loss"] = rel_err(loss, fx["loss"])
    for k, gr in grads.items():
        errs[f"grad {k}"] = rel_err(seeded.crop_param(gr) if big else gr, fx[f"grad.{k}"])
    return errs


def assert_parity(name: str, fast: bool) -> None:
    with fast_ops(fast):
        errs = parity_errors(name)
    bad = {k: v for k, v in errs.items() if not v <= TOL}
    assert not bad, f"relative errors above {TOL}: {bad}"


@PATHS
@pytest.mark.parametrize("name", ["small64", "small128"])
def test_matches_reference_on_tiny_models(name, fast):
    assert_parity(name, fast)


@pytest.mark.slow
@PATHS
def test_matches_reference_at_1024_ffhq_config_f(fast):
    assert_parity("full1024", fast)


@pytest.mark.parametrize("batch", [1, 2])
def test_fast_and_plain_paths_agree_in_float64_through_the_whole_loss(batch):
    cfg, g, d, inputs = build("small64", torch.float64)
    ws, target = inputs["ws"][:batch], inputs["target"][:batch]
    results = []
    for fast in (False, True):
        with fast_ops(fast):
            img = g.synthesis(ws)
            logits = d(img)
            loss, grads = loss_grads(g, d, ws, target, cfg["layers"])
        assert img.is_contiguous()
        results.append((img.detach(), logits.detach(), loss, grads))
    (img0, log0, loss0, g0), (img1, log1, loss1, g1) = results
    assert rel_err(img1, img0) < 1e-12 and rel_err(log1, log0) < 1e-12
    assert rel_err(loss1, loss0) < 1e-12
    for k in g0:
        assert rel_err(g1[k], g0[k]) < 1e-10, k


# --- layout --------------------------------------------------------------------------------------


def _reference_keys():
    return json.loads((FIXTURES / "keys_1024.json").read_text())


def test_state_dict_keys_and_shapes_are_rosinality_s_at_1024():
    ref = _reference_keys()
    with torch.device("meta"):
        g, d = Generator(1024), Discriminator(1024)
    assert [[k, list(v.shape)] for k, v in g.state_dict().items()] == ref["generator"]
    assert [[k, list(v.shape)] for k, v in d.state_dict().items()] == ref["discriminator"]
    assert len(ref["generator"]) == 171


def test_a_rosinality_layout_state_dict_loads_strictly():
    ref = _reference_keys()
    for cls, part in ((Generator, "generator"), (Discriminator, "discriminator")):
        state = {k: torch.full(shape, 0.5) for k, shape in ref[part]}
        model = cls(1024)
        model.load_state_dict(state, strict=True)
        key = "noises.noise_3" if part == "generator" else "final_linear.1.bias"
        assert torch.all(model.state_dict()[key] == 0.5)
        del state[next(iter(state))]
        with pytest.raises(RuntimeError, match="Missing key"):
            model.load_state_dict(state, strict=True)


def test_attributes_at_each_resolution():
    for size, n_latent, n_styles in ((16, 6, 8), (256, 14, 20), (512, 16, 23), (1024, 18, 26)):
        with torch.device("meta"):
            g = Generator(size)
        assert (g.size, g.n_latent, g.n_styles, g.log_size) == (
            size,
            n_latent,
            n_styles,
            g.log_size,
        )
        assert g.num_layers == len(list(g.noises.named_buffers())) == 2 * g.log_size - 3
        assert g.style_dim == 512
    with torch.device("meta"):
        d = Discriminator(1024)
    assert len(d.convs) == 9 and d.stddev_group == 4 and d.stddev_feat == 1


def test_styles_at_1024_are_26_vectors_in_execution_order():
    with torch.device("meta"):
        g = Generator(1024)
    styles = g.styles(torch.zeros(1, 18, 512, device="meta"))
    widths = [s.shape[1] for s in styles]
    assert len(styles) == 26
    assert widths[:5] == [512, 512, 512, 512, 512]  # conv1, to_rgb1, convs[0], convs[1], to_rgbs[0]
    assert widths[-3:] == [64, 32, 32]  # convs[14] (in 64), convs[15] (in 32), to_rgbs[7] (in 32)


def test_channels_override_and_channel_max():
    g = Generator(32, 16, 1, channels={4: 8, 8: 8, 16: 4, 32: 4})
    assert g.convs[-1].conv.weight.shape == (1, 4, 4, 3, 3)
    g = Generator(64, 16, 1, channel_multiplier=1, channel_max=24)
    assert g.channels == {4: 24, 8: 24, 16: 24, 32: 24, 64: 24}
    with pytest.raises(ValueError, match="channels"):
        Generator(32, 16, 1, channels={3: 8})


# --- behaviour -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny():
    _, g, d, inputs = build("small64")
    return g, d, inputs


def test_synthesis_from_styles_of_styles_equals_synthesis(tiny):
    g, _, inputs = tiny
    ws = inputs["ws"]
    with torch.no_grad():
        assert torch.equal(g.synthesis_from_styles(g.styles(ws)), g.synthesis(ws))
        assert torch.equal(g(ws), g.synthesis(ws))
        # editing one style changes the image
        styles = g.styles(ws)
        styles[5] = styles[5] * 1.5
        assert not torch.equal(g.synthesis_from_styles(styles), g.synthesis(ws))


def test_noise_modes(tiny):
    g, _, inputs = tiny
    ws = inputs["ws"]
    with torch.no_grad():
        const = g.synthesis(ws, noise_mode="const")
        assert torch.equal(const, g.synthesis(ws, noise_mode="const"))
        none = g.synthesis(ws, noise_mode="none")
        zeros = [torch.zeros_like(b) for _, b in g.noises.named_buffers()]
        assert torch.equal(none, g.synthesis(ws, noise=zeros))
        assert not torch.equal(none, const)
        torch.manual_seed(3)
        r1 = g.synthesis(ws, noise_mode="random")
        r2 = g.synthesis(ws, noise_mode="random")
        torch.manual_seed(3)
        assert torch.equal(r1, g.synthesis(ws, noise_mode="random"))
        assert not torch.equal(r1, r2) and not torch.equal(r1, const)
    with pytest.raises(ValueError, match="noise_mode"):
        g.synthesis(ws, noise_mode="fixed")
    with pytest.raises(ValueError, match="noise must be a list"):
        g.synthesis(ws, noise=zeros[:-1])


def test_mean_latent_is_deterministic_and_leaves_the_global_rng_alone(tiny):
    g, _, _ = tiny
    state = torch.get_rng_state()
    a = g.mean_latent(256, seed=7)
    assert torch.equal(torch.get_rng_state(), state)
    assert a.shape == (1, g.style_dim) and not a.requires_grad
    assert torch.equal(a, g.mean_latent(256, seed=7))
    assert not torch.equal(a, g.mean_latent(256, seed=8))


def test_truncation(tiny):
    g, _, inputs = tiny
    z = inputs["z"]
    with torch.no_grad():
        mean = g.mean_latent(64)
        w = g.mapping(z)
        torch.testing.assert_close(g.mapping(z, 0.5, mean), mean + 0.5 * (w - mean))
        assert torch.equal(g.mapping(z, 1.0), w)
    with pytest.raises(ValueError, match="truncation_latent"):
        g.mapping(z, 0.5)


def test_features_stop_at_the_deepest_tap_and_keep_the_given_order(tiny):
    _, d, inputs = tiny
    img = inputs["d_in"][:2]
    with torch.no_grad():
        everything = d.features(img, (0, 1, 2, 3, 4))
        assert [f.shape[-1] for f in everything] == [64, 32, 16, 8, 4]
        picked = d.features(img, (3, 1))
        assert torch.equal(picked[0], everything[3]) and torch.equal(picked[1], everything[1])
        calls = []
        hook = d.convs[4].register_forward_hook(lambda *a: calls.append(1))
        d.features(img, (1, 2))
        hook.remove()
        assert calls == []


def test_bad_shapes_and_arguments_get_clear_errors(tiny):
    g, d, inputs = tiny
    ws = inputs["ws"]
    with pytest.raises(ValueError, match=r"\[B,10,32\]"):
        g.synthesis(ws[:, :-1])
    with pytest.raises(ValueError, match=r"\[B,10,32\]"):
        g.styles(torch.zeros(1, 10, 31))
    with pytest.raises(ValueError, match="expected 14 style tensors"):
        g.synthesis_from_styles(g.styles(ws)[:-1])
    styles = g.styles(ws)
    styles[3] = styles[3][:, :-1]
    with pytest.raises(ValueError, match="style 3 must have shape"):
        g.synthesis_from_styles(styles)
    with pytest.raises(ValueError, match=r"z of shape \[B,32\]"):
        g.mapping(torch.zeros(2, 33))
    with pytest.raises(ValueError, match=r"images \[B,3,64,64\]"):
        d(torch.zeros(1, 3, 32, 32))
    with pytest.raises(ValueError, match="indices 0..4"):
        d.features(torch.zeros(1, 3, 64, 64), (1, 3, 4, 5))
    with pytest.raises(ValueError, match="multiple of 4"):
        d(torch.zeros(5, 3, 64, 64))
    for size in (8, 100, 2048, 64.0):
        with pytest.raises(ValueError, match="power of two from 16 to 1024"):
            Generator(size)
    with pytest.raises(ValueError, match="power of two"):
        Discriminator(12)
