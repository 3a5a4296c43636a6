"""jojogan.invert: optimisation recovers a generator's own sample, the mean code (Sec. 4) and its
cache, the virtual-inverter blend (Sec. 5.1) in W+ and S, encoder plumbing, determinism and
argument errors raised before any work."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from jojogan.invert import blend_codes, invert, mean_codes, resize_square
from jojogan.stylegan2 import Discriminator, Generator

CH = {4: 32, 8: 32, 16: 32, 32: 32}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def gen():
    torch.manual_seed(0)
    g = Generator(32, 64, 2, channels=CH).eval()
    with torch.no_grad():  # keep the random model's images inside [-1,1]
        for k, v in g.named_parameters():
            if "to_rgb" in k and k.endswith("conv.weight"):
                v.mul_(0.3)
    return g


@pytest.fixture(scope="module")
def sample(gen):
    z = torch.randn(1, 64, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        w = gen.mapping(z)[:, None].expand(-1, gen.n_latent, -1).clone()
        img = gen.synthesis(w)
    assert img.abs().max() <= 1
    return w, img


class FakeEncoder(nn.Module):
    """Stands in for e4e: records its input, returns codes that depend on the image."""

    kind = "e4e"

    def __init__(self, n_latent: int, dim: int = 64) -> None:
        super().__init__()
        self.proj = nn.Linear(3, dim)
        self.n_latent = n_latent
        self.seen: list[tuple] = []

    def forward(self, x):
        self.seen.append(tuple(x.shape))
        v = self.proj(x.mean((2, 3)))
        return v[:, None].expand(-1, self.n_latent, -1) + torch.arange(self.n_latent)[:, None]


def _img_l1(gen, w, target):
    with torch.no_grad():
        return float((gen.synthesis(w) - target).abs().mean())


def test_optimize_recovers_the_generators_own_sample(gen, sample):
    """Stated bound: image L1 <= 0.03 (in [-1,1]) within 100 Adam steps at lr 0.05, from a start
    at the mean code with L1 >= 0.1 (measured: 0.15 -> ~0.016)."""
    _, target = sample
    start = mean_codes(gen, n=2000).w[:, None].expand(1, gen.n_latent, -1)
    assert _img_l1(gen, start, target) >= 0.1
    w = invert(target, gen, "optimize", steps=100, lr=0.05, mean_samples=2000)
    assert w.shape == (1, gen.n_latent, 64) and not w.requires_grad
    assert _img_l1(gen, w, target) <= 0.03


def test_optimize_with_discriminator_features_also_converges(gen, sample):
    _, target = sample
    d = Discriminator(32, channels=CH).eval()
    w = invert(target, gen, "optimize", steps=100, lr=0.05, discriminator=d, mean_samples=2000)
    assert _img_l1(gen, w, target) <= 0.04
    assert all(p.requires_grad for p in d.parameters())  # restored


def test_optimize_from_init_starts_there_and_improves(gen, sample):
    """init= refines given codes (e.g. an encoder's): 0 steps' worth of change keeps the start's
    image, a few steps lower the error below the start's, and the mean code is not used."""
    w_true, target = sample
    init = w_true + 0.3 * torch.randn(w_true.shape, generator=torch.Generator().manual_seed(1))
    before = _img_l1(gen, init, target)
    w = invert(target, gen, "optimize", steps=30, lr=0.01, init=init, mean_samples=1)
    assert w.shape == init.shape and not w.requires_grad and not init.requires_grad
    assert _img_l1(gen, w, target) < 0.7 * before
    tiny = invert(target, gen, "optimize", steps=1, lr=1e-6, init=init, mean_samples=1)
    assert torch.allclose(tiny, init, atol=1e-4)  # started from init, not from the mean


def test_edges_objective_matches_contours_whatever_the_colours(gen, sample):
    """objective="edges": the target's edges are reached from another code even when the target
    is the sample in negative (same contours, other tones), which the pixel objective chases in
    colour instead; edge_map ignores contrast and the objective takes no discriminator."""
    from jojogan.invert import edge_map

    w_true, target = sample
    neg = -target
    init = w_true + 0.5 * torch.randn(w_true.shape, generator=torch.Generator().manual_seed(2))

    def edge_err(w):
        with torch.no_grad():
            return float((edge_map(gen.synthesis(w)) - edge_map(neg)).abs().mean())

    kw = {"steps": 40, "lr": 0.01, "init": init, "mean_samples": 1}
    w_e = invert(neg, gen, "optimize", objective="edges", **kw)
    w_p = invert(neg, gen, "optimize", **kw)
    assert edge_err(w_e) < 0.7 * edge_err(init) and edge_err(w_e) < edge_err(w_p)
    assert torch.allclose(edge_map(target), edge_map(neg), atol=1e-5)  # sign-free
    flat = float((edge_map(0.4 * target) - edge_map(target)).abs().mean())  # the maps' mean is ~1
    assert flat < 0.1
    d = Discriminator(32, channels=CH).eval()
    with pytest.raises(ValueError, match="objective='edges' matches edges only"):
        invert(neg, gen, "optimize", objective="edges", discriminator=d, **kw)


def test_optimize_is_deterministic_and_resizes_any_size(gen, sample):
    _, target = sample
    big = torch.nn.functional.interpolate(target, size=(40, 48), mode="bilinear")
    a = invert(big.clamp(-1, 1), gen, "optimize", steps=5, mean_samples=500, seed=3)
    b = invert(big.clamp(-1, 1), gen, "optimize", steps=5, mean_samples=500, seed=3)
    assert torch.equal(a, b)


def test_progress_reports_every_step_and_can_cancel(gen, sample):
    _, target = sample
    seen = []
    invert(target, gen, "optimize", steps=4, mean_samples=500, progress=lambda s, v: seen.append(s))
    assert seen == [1, 2, 3, 4]

    class Cancelled(Exception):
        pass

    def cancel(step, loss):
        if step == 2:
            raise Cancelled

    flags = [p.requires_grad for p in gen.parameters()]
    with pytest.raises(Cancelled):
        invert(target, gen, "optimize", steps=50, mean_samples=500, progress=cancel)
    assert [p.requires_grad for p in gen.parameters()] == flags
    assert all(p.grad is None for p in gen.parameters())


def test_preview_shows_the_reconstruction_every_n_steps_and_at_the_last(gen, sample):
    _, target = sample
    shown = []
    w = invert(
        target,
        gen,
        "optimize",
        steps=5,
        mean_samples=500,
        preview=lambda s, img: shown.append((s, img)),
        preview_every=2,
    )
    assert [s for s, _ in shown] == [2, 4, 5]
    assert all(img.shape == target.shape and not img.requires_grad for _, img in shown)
    # the picture is the generator's drawing of the codes that step started from: the final
    # codes draw something a little different from the last preview, and nothing changes w
    assert torch.equal(w, invert(target, gen, "optimize", steps=5, mean_samples=500))
    with torch.no_grad():
        last = gen.synthesis(w, noise_mode="const")
    assert 0 < float((last - shown[-1][1]).abs().mean()) < 0.5


def test_mean_code_is_mean_of_mapping_and_styles(gen):
    n = 3000
    mc = mean_codes(gen, n=n, seed=7, cache={})
    z = torch.randn(n, 64, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        w = gen.mapping(z)
        s = gen.styles(w[:, None].expand(-1, gen.n_latent, -1))
    assert torch.allclose(mc.w[0], w.mean(0), atol=1e-5)
    assert len(mc.styles) == gen.n_styles
    for a, b in zip(mc.styles, s, strict=True):
        assert torch.allclose(a[0], b.mean(0), atol=1e-5)
    out, styles = invert(None, gen, "mean", seed=7, mean_samples=n, return_styles=True)
    assert out.shape == (1, gen.n_latent, 64)
    assert torch.allclose(out[0, 3], mc.w[0]) and torch.allclose(styles[4], mc.styles[4])


def test_mean_cache_hits_and_is_never_stale(gen):
    g = copy.deepcopy(gen)
    cache: dict = {}
    first = mean_codes(g, n=500, cache=cache)
    assert mean_codes(g, n=500, cache=cache) is first  # cached
    assert mean_codes(g, n=500, seed=1, cache=cache) is not first
    tuned = copy.deepcopy(g)  # a fine-tuned copy: other storage
    with torch.no_grad():
        tuned.style[1].weight.add_(1.0)
    assert not torch.equal(mean_codes(tuned, n=500, cache=cache).w, first.w)
    before = mean_codes(g, n=500).w  # module-level cache
    with torch.no_grad():  # in-place update of the same generator (an optimizer step)
        g.style[1].weight.mul_(1.5)
    after = mean_codes(g, n=500).w
    assert not torch.equal(before, after)


def test_encoder_method_resizes_to_256_and_checks_layers(gen):
    enc = FakeEncoder(gen.n_latent)
    x = torch.rand(2, 3, 300, 400) * 2 - 1
    w, styles = invert(x, gen, "encoder", encoder=enc, return_styles=True)
    assert enc.seen == [(2, 3, 256, 256)]
    assert w.shape == (2, gen.n_latent, 64) and len(styles) == gen.n_styles
    with torch.no_grad():
        expected = enc(resize_square(x, 256))
    assert torch.equal(w, expected)
    with pytest.raises(ValueError, match="encoder gives codes"):
        invert(x, gen, "encoder", encoder=FakeEncoder(gen.n_latent + 2))


def test_blend_in_w_plus_mixes_per_layer(gen):
    enc = FakeEncoder(gen.n_latent)
    x = torch.rand(1, 3, 256, 256) * 2 - 1
    inv = invert(x, gen, "encoder", encoder=enc)
    mean = mean_codes(gen, n=1000).w
    mask = [1.0] * 4 + [0.0] * (gen.n_latent - 5) + [0.25]
    w = invert(x, gen, "blend", encoder=enc, mask=mask, mean_samples=1000)
    assert torch.equal(w[:, :4], inv[:, :4])
    assert torch.allclose(w[0, 5], mean[0])
    assert torch.allclose(w[0, -1], 0.25 * inv[0, -1] + 0.75 * mean[0])


def test_blend_in_s_space_returns_blended_styles(gen):
    enc = FakeEncoder(gen.n_latent)
    x = torch.rand(1, 3, 256, 256) * 2 - 1
    mask = torch.zeros(gen.n_styles)
    mask[0] = 1.0
    w, styles = invert(x, gen, "blend", encoder=enc, mask=mask, space="s", return_styles=True)
    with torch.no_grad():
        inv_styles = gen.styles(w)
    mc = mean_codes(gen)
    assert torch.equal(styles[0], inv_styles[0])
    assert torch.allclose(styles[1], mc.styles[1])
    assert torch.allclose(blend_codes(inv_styles, mc.styles, mask)[2], mc.styles[2].expand(1, -1))


def test_blend_without_encoder_optimises(gen, sample):
    _, target = sample
    w = invert(target, gen, "blend", mask=[1.0] * gen.n_latent, steps=3, mean_samples=500)
    assert torch.equal(w, invert(target, gen, "optimize", steps=3, mean_samples=500))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"method": "magic"}, "unknown method"),
        ({"method": "optimize", "steps": 0}, "steps"),
        ({"method": "optimize", "steps": -5}, "steps"),
        ({"method": "optimize", "lr": 0.0}, "lr"),
        ({"method": "optimize", "lr": -1e-3}, "lr"),
        ({"method": "optimize", "lr": float("nan")}, "lr"),
        ({"method": "encoder"}, "needs encoder"),
        ({"method": "blend", "mask": [1.0] * 3}, "one weight per W\\+ layers"),
        ({"method": "blend", "mask": [1.0] * 8, "space": "s", "return_styles": True}, "S-space"),
        ({"method": "blend", "mask": [2.0] * 8}, r"\[0,1\]"),
        ({"method": "blend"}, "needs mask"),
        ({"method": "blend", "mask": [1.0] * 8, "space": "x"}, "unknown space"),
        ({"method": "optimize", "mask": [1.0] * 8}, "mask is used by method='blend'"),
        ({"method": "optimize", "n_iters": 3}, "n_iters"),
        ({"method": "optimize", "seed": -1}, "seed"),
        ({"method": "optimize", "init": torch.zeros(1, 3, 64)}, "init must be W\\+ codes"),
        ({"method": "optimize", "init": torch.full((1, 8, 64), float("nan"))}, "init contains"),
        ({"method": "mean", "init": torch.zeros(1, 8, 64)}, "init is used by method='optimize'"),
        ({"method": "optimize", "objective": "lpips"}, "unknown objective"),
        ({"method": "mean", "objective": "edges"}, "applies to optimisation only"),
        ({"method": "optimize", "preview": print, "preview_every": 0}, "preview_every"),
        ({"method": "optimize", "preview": "x", "preview_every": 2}, "preview must be"),
    ],
)
def test_bad_arguments_fail_before_work(gen, sample, kwargs, match):
    _, target = sample
    calls = []
    with pytest.raises(ValueError, match=match):
        invert(target, gen, progress=lambda s, v: calls.append(s), **kwargs)
    assert calls == []


def test_s_blend_needs_return_styles_and_encoder_n_iters_needs_restyle(gen, sample):
    _, target = sample
    enc = FakeEncoder(gen.n_latent)
    with pytest.raises(ValueError, match="return_styles=True"):
        invert(target, gen, "blend", encoder=enc, mask=[1.0] * gen.n_styles, space="s")
    with pytest.raises(ValueError, match="ReStyle"):
        invert(target, gen, "encoder", encoder=enc, n_iters=2)
    assert enc.seen == []


@pytest.mark.parametrize(
    "images, match",
    [
        (torch.zeros(1, 32, 32, 3), r"\[B,3,H,W\]"),
        (torch.full((1, 3, 32, 32), 3.0), r"\[-1,1\]"),
        (torch.full((1, 3, 32, 32), float("nan")), "NaN"),
        (torch.zeros(1, 3, 8, 8), "too small"),
        (None, "torch.Tensor"),
    ],
)
def test_bad_images_get_clear_errors(gen, images, match):
    with pytest.raises(ValueError, match=match):
        invert(images, gen, "optimize", steps=1)


def test_discriminator_of_another_size_is_refused(gen, sample):
    _, target = sample
    d = Discriminator(16, channels={4: 8, 8: 8, 16: 8})
    with pytest.raises(ValueError, match="16 px"):
        invert(target, gen, "optimize", steps=1, discriminator=d)


def test_restyle_encoder_through_invert_uses_n_iters():
    from jojogan.encoders import ReStyleEncoder

    torch.manual_seed(1)
    dec = Generator(16, 512, 1, channels={4: 16, 8: 16, 16: 16}).eval()
    enc = ReStyleEncoder(dec, torch.zeros(512)).eval()
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    w = invert(x, dec, "encoder", encoder=enc, n_iters=2)
    with torch.no_grad():
        expected = enc(resize_square(x, 256), n_iters=2)
        one = enc(resize_square(x, 256), n_iters=1)
    assert torch.equal(w, expected) and not torch.equal(w, one)


def test_invert_with_decides_the_inversion_the_invert_node_runs(gen):
    """invert_with (the Invert node's one call): encoder codes; optimize refines them (starts
    from them: step 1 is no worse); blend_layers text becomes the blend mask; objective and
    blend_layers are refused where they would not apply."""
    from jojogan.invert import invert_with, optimises

    enc = FakeEncoder(gen.n_latent)
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    w_enc = invert_with("encoder", x, gen, encoder=enc)
    assert torch.equal(w_enc, invert(x, gen, "encoder", encoder=enc))
    assert optimises("optimize", enc) and optimises("blend", None)
    assert not optimises("blend", enc) and not optimises("encoder", enc)
    w_opt = invert_with("optimize", x, gen, encoder=enc, steps=2, lr=0.01)
    assert torch.equal(w_opt, invert(x, gen, "optimize", steps=2, lr=0.01, init=w_enc))
    w_blend = invert_with("blend", x, gen, encoder=enc, blend_layers="0-3")
    mean = mean_codes(gen).w
    assert torch.equal(w_blend[:, :4], w_enc[:, :4])
    assert torch.allclose(w_blend[0, 4:], mean[0].expand(gen.n_latent - 4, -1))
    with pytest.raises(ValueError, match="blend_layers"):
        invert_with("encoder", x, gen, encoder=enc, blend_layers="0-3")
    with pytest.raises(ValueError, match="blend_layers"):
        invert_with("blend", x, gen, encoder=enc, blend_layers=f"0-{gen.n_latent}")
    with pytest.raises(ValueError, match="objective"):
        invert_with("encoder", x, gen, encoder=enc, objective="edges")
