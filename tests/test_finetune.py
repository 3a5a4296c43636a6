"""Fine-tuning (Eq. 2-3) on tiny models: accumulation, determinism, frozen parts, NaN handling,
cancellation, previews, identity and grayscale losses, bad settings; the released notebook's
recipe reproduced against golden numbers from its own modules."""

import copy
import dataclasses
import importlib.util
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from safetensors import safe_open
from torch import nn

from jojogan.finetune import (
    FinetuneCancelled,
    FinetuneDiverged,
    FinetuneSettings,
    default_feature_layers,
    finetune,
)
from jojogan.stylegan2 import Discriminator, Generator


def _models(dtype=torch.float32):
    torch.manual_seed(0)
    g = Generator(32, style_dim=32, n_mlp=2, channel_max=32).eval().to(dtype)
    d = Discriminator(32, channel_max=32).eval().to(dtype)
    return g, d


@pytest.fixture(scope="module")
def models():
    return _models()


def _refs(g, n=2, seed=1):
    gen = torch.Generator().manual_seed(seed)
    refs = (torch.rand(n, 3, g.size, g.size, generator=gen) * 2 - 1).to(g.input.input.dtype)
    codes = g.mean_latent(64)[:, None].expand(n, g.n_latent, -1).clone()
    codes = codes + 0.1 * torch.randn(codes.shape, generator=gen).to(codes)
    return refs, codes


def _bytes(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


@pytest.mark.parametrize("terms", [{}, {"gram_weight": 3.0, "structure_weight": 0.5}])
def test_gradient_accumulation_equals_one_batch(monkeypatch, terms):
    g, d = _models(torch.float64)
    refs, codes = _refs(g, n=3)
    grads = []
    original = torch.optim.Adam.step

    def recording_step(self, *a, **k):
        grads.append(
            [
                p.grad.clone()
                for grp in self.param_groups
                for p in grp["params"]
                if p.grad is not None
            ]
        )
        return original(self, *a, **k)

    monkeypatch.setattr(torch.optim.Adam, "step", recording_step)
    for chunk in (3, 1, 2):
        st = FinetuneSettings(steps=1, refs_per_chunk=chunk, seed=3, **terms)
        finetune(g, d, refs, codes, st)
    assert len(grads) == 3 and len(grads[0]) > 10
    for other in grads[1:]:
        for a, b in zip(grads[0], other, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def test_same_seed_same_bytes_and_other_seed_differs(models):
    g, d = models
    refs, codes = _refs(g)
    st = FinetuneSettings(steps=3, seed=7, noise_mode="random")
    a = _bytes(finetune(g, d, refs, codes, st).generator)
    b = _bytes(finetune(g, d, refs, codes, st).generator)
    c = _bytes(finetune(g, d, refs, codes, FinetuneSettings(steps=3, seed=8)).generator)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_mapping_discriminator_and_base_untouched(models):
    g, d = models
    refs, codes = _refs(g)
    g0, d0 = _bytes(g), _bytes(d)
    d_flags = [p.requires_grad for p in d.parameters()]
    res = finetune(g, d, refs, codes, FinetuneSettings(steps=3))
    new = res.generator.state_dict()
    assert all(torch.equal(g0[k], v) for k, v in _bytes(g).items())
    assert all(torch.equal(d0[k], v) for k, v in _bytes(d).items())
    assert [p.requires_grad for p in d.parameters()] == d_flags
    assert all(p.grad is None for p in d.parameters())
    assert all(torch.equal(new[k], g0[k]) for k in g0 if k.startswith("style."))
    changed = [k for k in g0 if not torch.equal(new[k], g0[k])]
    assert any(k.startswith("convs.") for k in changed)
    assert not any(p.requires_grad for p in res.generator.parameters())


def test_train_layers_fine_tunes_only_those_layers(models):
    """train_layers=(finest S layers): every other synthesis weight keeps its bytes, the chosen
    ones change; 0 brings the constant input along."""
    g, d = models
    refs, codes = _refs(g)
    g0 = _bytes(g)
    n = g.n_styles
    fine = (n - 3, n - 2, n - 1)  # convs[-2], convs[-1], to_rgbs[-1]
    new = finetune(g, d, refs, codes, FinetuneSettings(steps=3, train_layers=fine)).generator
    new = new.state_dict()
    changed = {k for k in g0 if not torch.equal(new[k], g0[k])}
    nc = len(g.convs)
    allowed = (f"convs.{nc - 2}.", f"convs.{nc - 1}.", f"to_rgbs.{len(g.to_rgbs) - 1}.")
    assert changed and all(k.startswith(allowed) for k in changed)
    assert any(k.startswith(f"to_rgbs.{len(g.to_rgbs) - 1}.") for k in changed)
    res = finetune(g, d, refs, codes, FinetuneSettings(steps=2, train_layers=(0,)))
    changed = {k for k, v in res.generator.state_dict().items() if not torch.equal(v, g0[k])}
    assert "input.input" in changed and all(k.startswith(("input.", "conv1.")) for k in changed)


def test_loss_goes_down_and_s_space_works(models):
    g, d = models
    refs, codes = _refs(g, n=1)
    for space in ("w+", "s"):
        res = finetune(g, d, refs, codes, FinetuneSettings(steps=12, space=space, preset="X"))
        assert len(res.losses) == 12 and res.skipped_steps == 0
        assert sum(res.losses[-3:]) / 3 < res.losses[0]


class _NaNDisc(Discriminator):
    """Returns NaN features on chosen calls (call 0 = the reference's features)."""

    bad_calls: set = set()
    calls = 0

    def features(self, img, layers=(1, 3, 4, 5)):
        out = super().features(img, layers)
        n, self.calls = self.calls, self.calls + 1
        if n in self.bad_calls:
            out = [o * float("nan") for o in out]
        return out


def _nan_disc(d, bad):
    nd = _NaNDisc(32, channel_max=32).eval()
    nd.load_state_dict(d.state_dict())
    nd.bad_calls = set(bad)
    return nd


def test_nan_steps_are_skipped_and_counted(models):
    g, d = models
    refs, codes = _refs(g)
    res = finetune(g, _nan_disc(d, {2, 4}), refs, codes, FinetuneSettings(steps=5))
    assert res.skipped_steps == 2
    assert [x != x for x in res.losses] == [False, True, False, True, False]
    assert all(torch.isfinite(v).all() for v in res.generator.state_dict().values())


def test_repeated_nan_stops_with_diverged_at_step(models):
    g, d = models
    refs, codes = _refs(g)
    with pytest.raises(FinetuneDiverged, match="diverged at step 4"):
        finetune(
            g, _nan_disc(d, {2, 3, 4, 5}), refs, codes, FinetuneSettings(steps=8, max_bad_steps=3)
        )


def test_nan_gradient_is_skipped(models, monkeypatch):
    g, d = models
    refs, codes = _refs(g)
    calls = {"n": 0}
    original = torch.Tensor.backward

    def bad_backward(self, *a, **k):
        calls["n"] += 1
        out = original(self, *a, **k)
        if calls["n"] == 2:  # step 2: poison one gradient
            for p in res_holder["params"]:
                if p.grad is not None:
                    p.grad.fill_(float("inf"))
                    break
        return out

    res_holder = {"params": []}
    orig_adam = torch.optim.Adam.__init__

    def adam_init(self, params, *a, **k):
        params = list(params)
        res_holder["params"] = params
        orig_adam(self, params, *a, **k)

    monkeypatch.setattr(torch.optim.Adam, "__init__", adam_init)
    monkeypatch.setattr(torch.Tensor, "backward", bad_backward)
    res = finetune(g, d, refs, codes, FinetuneSettings(steps=3))
    assert res.skipped_steps == 1
    assert all(torch.isfinite(v).all() for v in res.generator.state_dict().values())


def test_cancel_returns_nothing_unless_asked(models):
    g, d = models
    refs, codes = _refs(g)
    seen = []

    def cb(step, loss, preview):
        seen.append(step)
        return step < 3

    with pytest.raises(FinetuneCancelled) as e:
        finetune(g, d, refs, codes, FinetuneSettings(steps=10), callback=cb)
    assert e.value.step == 3 and e.value.result is None and seen == [1, 2, 3]

    def cb_raise(step, loss, preview):
        if step == 2:
            raise FinetuneCancelled(step)

    with pytest.raises(FinetuneCancelled) as e:
        finetune(
            g, d, refs, codes, FinetuneSettings(steps=10, keep_partial=True), callback=cb_raise
        )
    assert e.value.result is not None and e.value.result.steps_done == 2
    assert e.value.result.cancelled


def test_foreign_exception_from_callback_propagates_and_restores_flags(models):
    g, d = models
    refs, codes = _refs(g)
    flags = [p.requires_grad for p in d.parameters()]

    def cb(step, loss, preview):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        finetune(g, d, refs, codes, FinetuneSettings(steps=3), callback=cb)
    assert [p.requires_grad for p in d.parameters()] == flags
    finetune(g, d, refs, codes, FinetuneSettings(steps=1))  # the next request works


def test_previews_every_n_steps(models):
    g, d = models
    refs, codes = _refs(g)
    got = {}
    finetune(
        g,
        d,
        refs,
        codes,
        FinetuneSettings(steps=4, preview_every=2),
        callback=lambda s, loss, p: got.__setitem__(s, p),
    )
    assert got[1] is None and got[3] is None
    assert got[2].shape == (2, 3, 32, 32) and got[4].shape == (2, 3, 32, 32)


def test_grayscale_loss_ignores_the_references_colours(models):
    g, d = models
    refs, codes = _refs(g)
    from jojogan.arcface import to_grayscale

    st = FinetuneSettings(steps=2, grayscale=True)
    a = _bytes(finetune(g, d, refs, codes, st).generator)
    b = _bytes(finetune(g, d, to_grayscale(refs).contiguous(), codes, st).generator)
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    c = _bytes(finetune(g, d, refs, codes, FinetuneSettings(steps=2)).generator)
    assert any(not torch.allclose(a[k], c[k]) for k in a)


class _StubArcFace(nn.Module):
    input_size = 112

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.conv = nn.Conv2d(3, 8, 5, stride=4)
        self.fc = nn.Linear(8 * 27 * 27, 16)

    def forward(self, x):
        e = self.fc(self.conv(x).flatten(1))
        return e / e.norm(dim=1, keepdim=True)


def test_identity_loss_is_used(models):
    g, d = models
    refs, codes = _refs(g)
    arc = _StubArcFace()
    a = finetune(g, d, refs, codes, FinetuneSettings(steps=3, id_weight=2e3), arcface=arc)
    b = finetune(g, d, refs, codes, FinetuneSettings(steps=3))
    assert a.losses[0] == pytest.approx(b.losses[0], abs=1e-3)  # G_new = G_orig at step 1
    assert a.losses[1] != pytest.approx(b.losses[1])
    assert all(p.grad is None for p in arc.parameters())


def _same(a, b):
    return all(
        torch.equal(x, y) for x, y in zip(_bytes(a).values(), _bytes(b).values(), strict=True)
    )


def test_structure_and_texture_terms(models, monkeypatch):
    """Off (weight 0) they draw and change nothing, whatever random_faces says; on, each changes
    the result; at step 1 (G_new = G_orig) the structure term is exactly 0 and the texture term
    adds the random faces' Gram distance to the loss; same seed, same bytes."""
    import jojogan.finetune as jft

    g, d = models
    refs, codes = _refs(g, n=1)
    paper = finetune(g, d, refs, codes, FinetuneSettings(steps=3, seed=5))
    off = finetune(g, d, refs, codes, FinetuneSettings(steps=3, seed=5, random_faces=9))
    assert _same(off.generator, paper.generator) and off.losses == paper.losses
    seen = []
    orig = jft._random_face_terms

    def recording(*a):
        out = orig(*a)
        seen.append(out.detach())
        return out

    monkeypatch.setattr(jft, "_random_face_terms", recording)
    s = finetune(g, d, refs, codes, FinetuneSettings(steps=3, seed=5, structure_weight=1.0))
    assert float(seen[0]) == 0.0 and float(seen[1]) > 0  # no change at step 1, then edges move
    assert s.losses[0] == paper.losses[0]
    seen.clear()
    t = finetune(g, d, refs, codes, FinetuneSettings(steps=3, seed=5, gram_weight=10.0))
    assert t.losses[0] == pytest.approx(paper.losses[0] + float(seen[0]), rel=1e-6)
    assert float(seen[0]) > 0 and t.gram_layers == (0, 1, 2) and paper.gram_layers == ()
    monkeypatch.undo()
    assert not _same(s.generator, paper.generator) and not _same(t.generator, paper.generator)
    again = finetune(g, d, refs, codes, FinetuneSettings(steps=3, seed=5, gram_weight=10.0))
    assert _same(again.generator, t.generator)


def test_nan_in_the_random_face_terms_is_skipped_then_diverges(models, monkeypatch):
    import jojogan.finetune as jft

    g, d = models
    refs, codes = _refs(g, n=1)
    orig = jft._random_face_terms
    calls = []

    def sometimes_nan(*a):
        calls.append(1)
        out = orig(*a)
        return out * float("nan") if len(calls) == 2 else out

    monkeypatch.setattr(jft, "_random_face_terms", sometimes_nan)
    res = finetune(g, d, refs, codes, FinetuneSettings(steps=4, structure_weight=1.0))
    assert res.skipped_steps == 1 and res.losses[1] != res.losses[1] and len(res.losses) == 4
    assert all(torch.isfinite(v).all() for v in res.generator.state_dict().values())
    monkeypatch.setattr(jft, "_random_face_terms", lambda *a: orig(*a) * float("nan"))
    with pytest.raises(FinetuneDiverged, match="diverged at step 3"):
        finetune(g, d, refs, codes, FinetuneSettings(steps=9, gram_weight=1.0, max_bad_steps=3))


def test_each_term_does_its_job_on_faces_it_never_saw(models):
    """Against the plain fine-tune, on 8 held-out random faces: the texture term brings their
    Gram statistics closer to the reference's, the structure term keeps their edges closer to the
    base generator's."""
    import jojogan.finetune as jft
    from jojogan.mixing import sample_random_codes

    g, d = models
    refs, codes = _refs(g, n=1)
    taps = jft._gram_taps(d)
    w = sample_random_codes(g, 8, torch.Generator().manual_seed(99), "w+")
    with torch.no_grad():
        target = [jft._gram(f) for f in d.features(refs, taps)]
        base_edges = jft._edges(g.synthesis(w))

    def measure(**kw):
        gen = finetune(g, d, refs, codes, FinetuneSettings(steps=30, lr=5e-3, **kw)).generator
        with torch.no_grad():
            img = gen.synthesis(w)
            feats = d.features(img, taps)
            gram = sum(
                float((jft._gram(f) - r).abs().mean()) for f, r in zip(feats, target, strict=True)
            )
            return gram, float((jft._edges(img) - base_edges).abs().mean())

    plain = measure()
    assert measure(gram_weight=1e3)[0] < 0.8 * plain[0]
    assert measure(structure_weight=1.0)[1] < 0.5 * plain[1]


def test_edges_ignore_contrast_and_see_shapes():
    import jojogan.finetune as jft

    x = torch.zeros(2, 3, 32, 32) - 0.5
    x[0, :, 8:24, 8:24] = 0.5  # a square
    x[1, :, :, 16:] = 0.5  # a vertical step
    e = jft._edges(x)
    contrast = float((jft._edges(0.3 * x) - e).abs().mean())  # a darker, flatter style
    shape = float((e[0] - e[1]).abs().mean())  # another outline
    assert contrast < 0.1 * shape
    big = torch.nn.functional.interpolate(x, size=512, mode="nearest")
    assert jft._edges(big).shape[-1] == jft.STRUCTURE_SIZE


def test_default_taps_fit_small_discriminators(models):
    _, d = models
    assert default_feature_layers(d) == (1, 3)
    assert default_feature_layers(Discriminator(128, channel_max=16)) == (1, 3, 4, 5)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"steps": 0}, "steps"),
        ({"steps": -5}, "steps"),
        ({"steps": 10**9}, "steps"),
        ({"steps": 2.5}, "steps"),
        ({"lr": 0.0}, "lr"),
        ({"lr": -1e-3}, "lr"),
        ({"lr": float("nan")}, "lr"),
        ({"blend": 1.2}, "blend"),
        ({"blend": -0.1}, "blend"),
        ({"preset": "unknown"}, "preset"),
        ({"layers": (0, 40)}, "out of range"),
        ({"layers": ()}, "empty"),
        ({"space": "z"}, "space"),
        ({"feature_layers": (1, 9)}, "feature_layers"),
        ({"refs_per_chunk": 0}, "refs_per_chunk"),
        ({"id_weight": -1.0}, "id_weight"),
        ({"structure_weight": float("inf")}, "structure_weight"),
        ({"gram_weight": -2.0}, "gram_weight"),
        ({"random_faces": 0}, "random_faces"),
        ({"random_faces": 2.0}, "random_faces"),
        ({"noise_mode": "loud"}, "noise_mode"),
        ({"train_layers": ()}, "train_layers"),
        ({"train_layers": (0, 99)}, "train_layers: \\[99\\] out of range"),
        ({"seed": None}, "needs rng='global'"),
        ({"seed": 1.5}, "seed"),
        ({"rng": "mine"}, "rng"),
        ({"reference_features": "never"}, "reference_features"),
        ({"preset_indices": "exact"}, "preset_indices"),
        ({"preset_indices": "literal", "space": "s"}, "preset_indices"),
        ({"preset_indices": "literal", "preset": "C"}, "preset_indices"),
        ({"preset_indices": "literal", "preset": "preserve_color"}, "exist only at 1024 px"),
    ],
)
def test_bad_settings_fail_before_any_work(models, kwargs, match):
    g, d = models
    refs, codes = _refs(g)
    called = []
    with pytest.raises(ValueError, match=match):
        finetune(
            g, d, refs, codes, FinetuneSettings(**kwargs), callback=lambda *a: called.append(a)
        )
    assert not called


def test_bad_inputs_are_clear_errors(models):
    g, d = models
    refs, codes = _refs(g)
    with pytest.raises(ValueError, match="empty"):
        finetune(g, d, refs[:0], codes[:0], FinetuneSettings(steps=1))
    with pytest.raises(ValueError, match="ArcFace"):
        finetune(g, d, refs, codes, FinetuneSettings(steps=1, id_weight=2e3))
    with pytest.raises(ValueError, match="one per reference"):
        finetune(g, d, refs, codes[:1], FinetuneSettings(steps=1))
    with pytest.raises(ValueError, match=r"\[-1,1\]"):
        finetune(g, d, refs * 5, codes, FinetuneSettings(steps=1))
    with pytest.raises(ValueError, match="NaN"):
        finetune(g, d, refs * float("nan"), codes, FinetuneSettings(steps=1))
    with pytest.raises(ValueError, match="discriminator is for 64 px"):
        finetune(g, Discriminator(64, channel_max=16), refs, codes, FinetuneSettings(steps=1))


def test_resume_from_a_cancelled_run_gives_the_same_bytes(models):
    g, d = models
    refs, codes = _refs(g)
    st = FinetuneSettings(steps=5, seed=11, noise_mode="random", keep_partial=True)
    full = _bytes(finetune(g, d, refs, codes, st).generator)
    with pytest.raises(FinetuneCancelled) as e:
        finetune(g, d, refs, codes, st, callback=lambda s, loss, p: s < 2)
    partial = e.value.result
    assert partial.steps_done == 2
    res = finetune(g, d, refs, codes, st, resume=partial)
    assert res.steps_done == 5 and len(res.losses) == 5
    assert all(torch.equal(full[k], v) for k, v in _bytes(res.generator).items())
    with pytest.raises(ValueError, match="same settings"):
        finetune(g, d, refs, codes, FinetuneSettings(steps=5, seed=12), resume=partial)


def test_out_of_memory_names_the_knobs(models, monkeypatch):
    import jojogan.finetune as jft

    g, d = models
    refs, codes = _refs(g, n=1)

    def oom(*a):
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(jft, "_run", oom)
    with pytest.raises(RuntimeError, match=r"refs_per_chunk \(now 4\), use") as e:
        finetune(g, d, refs, codes, FinetuneSettings(steps=1))
    assert "random_faces" not in str(e.value)
    with pytest.raises(RuntimeError, match=r"random_faces \(now 2\)"):
        finetune(g, d, refs, codes, FinetuneSettings(steps=1, gram_weight=1.0, random_faces=2))


# -- the released recipe (stylize.ipynb, "Finetune StyleGAN"), issue 27 ------------------------
# Golden numbers: tests/fixtures/released/make_golden.py runs the notebook's cell on JoJoGAN's own
# model.py (fetched, never committed) with the weights and inputs of recipe.py.


def _released_recipe():
    spec = importlib.util.spec_from_file_location("released_recipe", RELEASED / "recipe.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


RELEASED = Path(__file__).resolve().parent / "fixtures" / "released"
R = _released_recipe()


@pytest.fixture(scope="module")
def released_case(one_thread):
    """(our seeded G, D, the inputs, the golden tensors, the reference's recorded facts)."""
    g, d = R.our_models()
    inputs = R.draw_inputs(g.style_dim, g.n_latent)
    with safe_open(str(R.GOLDEN), "pt") as f:
        golden = {k: f.get_tensor(k) for k in f.keys()}
        meta = f.metadata()
    sums = json.loads(meta["input_sums"])
    for k, v in inputs.items():  # torch's local random streams must not have changed
        assert float(v.double().sum()) == pytest.approx(sums[k], rel=1e-12, abs=1e-9), k
    return g, d, inputs, golden, json.loads(meta["facts"])


def _tuned_images(gen, inputs):
    """The tuned generator's images (stored noise, every 4th pixel, as the golden file) from the
    W+ codes and from z through its mapping."""
    with torch.no_grad():
        from_w = gen.synthesis(inputs["latents"])
        w = gen.mapping(inputs["z_eval"])[:, None].expand(-1, gen.n_latent, -1)
        from_z = gen.synthesis(w.contiguous())
    return from_w[:, :, ::4, ::4], from_z[:, :, ::4, ::4]


def _rel(losses, want):
    got = torch.tensor(losses, dtype=torch.float64)
    return float(((got - want).abs() / want.abs()).max())


def _notebook_cell_on_our_modules(generator, discriminator, targets, latents, alpha, num_iter):
    """The notebook's training loop, line for line, on our modules: `get_latent` is JoJoGAN's
    `@torch.no_grad()` mapping, `generator(..., input_is_latent=True)` our synthesis with random
    noise, `discriminator(x)` our features at (1,3,4,5) as far as they exist. The
    discriminator's weights keep requires_grad, as in the notebook."""
    alpha = 1 - alpha
    g_optim = torch.optim.Adam(generator.parameters(), lr=2e-3, betas=(0.0, 0.99))
    id_swap = list(range(7, generator.n_latent))
    taps = default_feature_layers(discriminator)
    losses = []
    for _ in range(num_iter):
        with torch.no_grad():
            mean_w = generator.mapping(torch.randn([latents.size(0), generator.style_dim]))
        mean_w = mean_w.unsqueeze(1).repeat(1, generator.n_latent, 1)
        in_latent = latents.clone()
        in_latent[:, id_swap] = alpha * latents[:, id_swap] + (1 - alpha) * mean_w[:, id_swap]
        img = generator.synthesis(in_latent, noise_mode="random")
        with torch.no_grad():
            real_feat = discriminator.features(targets, taps)
        fake_feat = discriminator.features(img, taps)
        loss = sum(F.l1_loss(a, b) for a, b in zip(fake_feat, real_feat, strict=True)) / len(
            fake_feat
        )
        g_optim.zero_grad()
        loss.backward()
        g_optim.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("strength", R.STRENGTHS)
def test_released_reproduces_the_notebook_loop_after_the_same_manual_seed(released_case, strength):
    """torch.manual_seed(s) + finetune(released()) == the notebook's cell after
    torch.manual_seed(s) on JoJoGAN's modules: losses within 1e-4 relative, the tuned
    generator's images from W+ and from z within 1e-3 mean abs (measured: ~2e-7 for both);
    the global stream is left where the notebook's loop leaves it; the mapping does not move
    (in the notebook either)."""
    g, d, inputs, golden, facts = released_case
    key = f"s{strength:g}"
    torch.manual_seed(R.TRAIN_SEED)
    res = finetune(
        g, d, inputs["targets"], inputs["latents"], FinetuneSettings.released(R.STEPS, strength)
    )
    after_ours = torch.get_rng_state()
    assert len(res.losses) == R.STEPS and _rel(res.losses, golden[f"{key}.losses"]) < 1e-4
    from_w, from_z = _tuned_images(res.generator, inputs)
    assert (from_w - golden[f"{key}.from_w"]).abs().mean() < 1e-3
    assert (from_z - golden[f"{key}.from_z"]).abs().mean() < 1e-3
    assert facts[key]["mapping_moved"] is False
    g0 = g.state_dict()
    new = res.generator.state_dict()
    assert all(torch.equal(new[k], g0[k]) for k in g0 if k.startswith("style."))
    assert sum(not torch.equal(new[k], g0[k]) for k in g0) == facts[key]["synthesis_tensors_moved"]

    # the same cell on our modules: the same numbers, and the same draws from the global RNG
    gc, dc = copy.deepcopy(g), copy.deepcopy(d).requires_grad_(True)
    torch.manual_seed(R.TRAIN_SEED)
    losses = _notebook_cell_on_our_modules(
        gc, dc, inputs["targets"], inputs["latents"], strength, R.STEPS
    )
    assert torch.equal(torch.get_rng_state(), after_ours)
    assert _rel(losses, golden[f"{key}.losses"]) < 1e-4
    cw, cz = _tuned_images(gc, inputs)
    assert (cw - golden[f"{key}.from_w"]).abs().mean() < 1e-3
    assert (cz - golden[f"{key}.from_z"]).abs().mean() < 1e-3


def test_released_with_an_integer_seed_leaves_the_global_rng_alone(released_case):
    """seed=s, rng="global": the notebook's stream after torch.manual_seed(s), the caller's
    global state restored; seed=s alone: our own stream, reproducible, global state untouched
    (and on the CPU the same draws)."""
    g, d, inputs, golden, _ = released_case
    refs, codes = inputs["targets"], inputs["latents"]
    torch.manual_seed(123)
    before = torch.get_rng_state()
    st = FinetuneSettings.released(R.STEPS, seed=R.TRAIN_SEED, rng="global")
    res = finetune(g, d, refs, codes, st)
    assert torch.equal(torch.get_rng_state(), before)
    assert _rel(res.losses, golden["s1.losses"]) < 1e-4
    own = FinetuneSettings.released(R.STEPS, seed=R.TRAIN_SEED)
    assert own.rng == "local"
    a = finetune(g, d, refs, codes, own)
    b = finetune(g, d, refs, codes, own)
    assert torch.equal(torch.get_rng_state(), before)
    assert a.losses == b.losses and _bytes(a.generator).keys() == _bytes(b.generator).keys()
    assert all(torch.equal(v, b.generator.state_dict()[k]) for k, v in _bytes(a.generator).items())
    # on the CPU our stream is the same Mersenne Twister drawn in the same order: the same run
    # (on CUDA the notebook draws its noise from the device's generator, rng="local" does not)
    assert a.losses == res.losses


def test_named_options_are_equal_where_claimed_and_differ_where_claimed(released_case):
    """reference_features "every_step" (the notebook's recomputation) = "once": the same losses
    bit for bit; refs_per_chunk=1 (gradient accumulation) = one batch: the same run to float32
    rounding; noise_mode="const" (ours) is a different run."""
    g, d, inputs, golden, _ = released_case
    refs, codes = inputs["targets"], inputs["latents"]

    def run(**kw):
        torch.manual_seed(R.TRAIN_SEED)
        return finetune(g, d, refs, codes, FinetuneSettings.released(R.STEPS, **kw))

    once = run()
    every = run(reference_features="every_step")
    assert every.losses == once.losses
    assert all(
        torch.equal(v, every.generator.state_dict()[k])
        for k, v in once.generator.state_dict().items()
    )
    chunked = run(refs_per_chunk=1)
    assert _rel(chunked.losses, golden["s1.losses"]) < 1e-4
    cw, _ = _tuned_images(chunked.generator, inputs)
    assert (cw - golden["s1.from_w"]).abs().mean() < 1e-3
    torch.manual_seed(R.TRAIN_SEED)
    const = finetune(
        g,
        d,
        refs,
        codes,
        dataclasses.replace(FinetuneSettings.released(R.STEPS), noise_mode="const"),
    )
    assert _rel(const.losses, golden["s1.losses"]) > 1e-2
    kw, _ = _tuned_images(const.generator, inputs)
    assert (kw - golden["s1.from_w"]).abs().mean() > 1e-2


def test_released_gradient_is_the_same_for_any_chunk_size(monkeypatch):
    """Our own stream makes each chunk size see the same draws: the accumulated gradient equals
    the one-batch gradient (float64, to rounding)."""
    g, d = _models(torch.float64)
    refs, codes = _refs(g, n=3)
    grads = []
    original = torch.optim.Adam.step

    def recording_step(self, *a, **k):
        grads.append([p.grad.clone() for grp in self.param_groups for p in grp["params"]])
        return original(self, *a, **k)

    monkeypatch.setattr(torch.optim.Adam, "step", recording_step)
    for chunk in (3, 1, 2):
        finetune(g, d, refs, codes, FinetuneSettings.released(1, seed=4, refs_per_chunk=chunk))
    for other in grads[1:]:
        for a, b in zip(grads[0], other, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def test_released_settings_are_the_notebooks_cell():
    st = FinetuneSettings.released()
    assert (st.steps, st.lr, st.betas, st.blend, st.noise_mode) == (
        300,
        2e-3,
        (0.0, 0.99),
        1.0,
        "random",
    )
    assert (st.seed, st.rng, st.preset, st.preset_indices) == (None, "global", "full", "literal")
    assert st.feature_layers is None and st.train_layers is None and st.space == "w+"
    assert st.id_weight == st.structure_weight == st.gram_weight == 0 and not st.grayscale
    assert FinetuneSettings.released(strength=0.3).blend == 0.3
    assert FinetuneSettings.released(preserve_color=True).preset == "preserve_color"
    ffhq = SimpleNamespace(n_latent=18, size=1024)  # the notebook's id_swap, at 1024 px
    assert st.mask(ffhq).mixed == list(range(7, 18))
    pc = FinetuneSettings.released(preserve_color=True, seed=1)
    assert pc.mask(ffhq).mixed == [9, 11, 15, 16, 17]
    assert st.mask(SimpleNamespace(n_latent=10, size=64)).mixed == [7, 8, 9]
    with pytest.raises(ValueError, match="exist only at 1024 px.*64 px generator has 10"):
        pc.mask(SimpleNamespace(n_latent=10, size=64))
    with pytest.raises(ValueError, match="nothing would be mixed"):
        st.mask(SimpleNamespace(n_latent=6, size=16))
    with pytest.raises(TypeError, match="lr"):
        FinetuneSettings.released(lr=1e-3)
    with pytest.raises(ValueError, match="blend"):
        FinetuneSettings.released(strength=1.5)
    # the pack's own defaults are unchanged
    d = FinetuneSettings()
    assert (d.noise_mode, d.seed, d.rng, d.preset_indices) == ("const", 0, "local", "scaled")
    assert d.reference_features == "once"


def test_recipe_names_and_settings_round_trip():
    assert FinetuneSettings.released().recipe() == "released"
    assert FinetuneSettings.released(500, 0.5, True, seed=3, refs_per_chunk=1).recipe() == (
        "released"
    )
    assert FinetuneSettings().recipe() == "default"
    assert FinetuneSettings(steps=50, seed=9, refs_per_chunk=2).recipe() == "default"
    assert dataclasses.replace(FinetuneSettings.released(), lr=1e-3).recipe() == "custom"
    st = FinetuneSettings.released(200, 0.7, seed=5)
    assert FinetuneSettings.from_dict(json.loads(json.dumps(st.to_dict()))) == st
    old = FinetuneSettings(steps=7, layers=(3, 4)).to_dict()  # written before these fields
    for k in ("rng", "reference_features", "preset_indices"):
        old.pop(k)
    assert FinetuneSettings.from_dict(old) == FinetuneSettings(steps=7, layers=(3, 4))
    with pytest.raises(ValueError, match="unknown fields \\['colour'\\]"):
        FinetuneSettings.from_dict({"colour": 1})


def test_resume_continues_the_global_stream(models):
    g, d = models
    refs, codes = _refs(g)
    st = dataclasses.replace(FinetuneSettings.released(4, seed=21, rng="global"), keep_partial=True)
    torch.manual_seed(5)
    before = torch.get_rng_state()
    full = finetune(g, d, refs, codes, st)
    with pytest.raises(FinetuneCancelled) as e:
        finetune(g, d, refs, codes, st, callback=lambda s, loss, p: s < 2)
    res = finetune(g, d, refs, codes, st, resume=e.value.result)
    assert res.losses == full.losses
    assert all(
        torch.equal(v, res.generator.state_dict()[k]) for k, v in _bytes(full.generator).items()
    )
    assert torch.equal(torch.get_rng_state(), before)


def test_settings_from_widgets_maps_the_finetune_node_once(models):
    """The Finetune node's widget values -> FinetuneSettings: the released recipe without a
    paired set (exactly FinetuneSettings.released), the paired set's mask with one; layer text
    parsed against the models; unknown names and misplaced widgets refused by name."""
    from jojogan.finetune import settings_from_widgets

    g, d = models
    st = settings_from_widgets(g, d, steps=7, seed=3, strength=0.5)
    assert st == FinetuneSettings.released(7, 0.5, False, seed=3, rng="global")
    st = settings_from_widgets(g, d, steps=7, feature_layers="0,2-3", lr=1e-3)
    assert st.feature_layers == (0, 2, 3) and st.lr == 1e-3
    mixing = {"space": "w+", "preset": "full", "layers": None, "blend": 1.0}
    st = settings_from_widgets(g, d, mixing=mixing, steps=5)
    assert st.steps == 5 and st.rng != "global"
    with pytest.raises(ValueError, match="'strength'"):
        settings_from_widgets(g, d, mixing=mixing, strength=0.5)
    with pytest.raises(ValueError, match="not Finetune widgets"):
        settings_from_widgets(g, d, no_such_widget=1)
    with pytest.raises(ValueError, match="'feature_layers'"):
        settings_from_widgets(g, d, feature_layers="0-99999999")


def test_mixing_from_widgets_owns_the_custom_layers_rule(models):
    """Build Mixed Dataset's widgets -> the paired set's settings: a preset, or 'custom' with a
    layer list parsed against the generator in the chosen space; 'layers' with another preset,
    'custom' without one, a bad space or blend are refused by widget name."""
    from jojogan.finetune import mixing_from_widgets
    from jojogan.mixing import style_layer_latents

    g, _ = models
    st = mixing_from_widgets(g, preset="preserve_color", blend=0.5, seed=4)
    got = (st.space, st.preset, st.layers, st.blend, st.seed)
    assert got == ("w+", "preserve_color", None, 0.5, 4)
    for space in ("w+", "s"):  # what passes here, the node's settings.mask(g) builds
        for preset in ("full", "preserve_color", "X", "C"):
            mixing_from_widgets(g, space=space, preset=preset).mask(g)
    st = mixing_from_widgets(g, preset="custom", layers="3-5, 1")
    assert (st.preset, st.layers) == (None, (1, 3, 4, 5))
    assert st.mask(g) == FinetuneSettings(preset=None, layers=(1, 3, 4, 5)).mask(g)
    n_s = len(style_layer_latents(g))
    assert n_s > g.n_latent
    st = mixing_from_widgets(g, space="s", preset="custom", layers=f"{n_s - 1}")
    assert st.layers == (n_s - 1,)
    w_range = rf"'layers': '{n_s - 1}' is out of range 0..{g.n_latent - 1}"
    with pytest.raises(ValueError, match=w_range):
        mixing_from_widgets(g, preset="custom", layers=f"{n_s - 1}")
    with pytest.raises(ValueError, match=r"preset 'custom' needs 'layers'"):
        mixing_from_widgets(g, preset="custom", layers=" , ")
    with pytest.raises(ValueError, match=r"used by preset 'custom' only.*preset is 'full'"):
        mixing_from_widgets(g, preset="full", layers="3")
    with pytest.raises(ValueError, match=r"'space' must be one of"):
        mixing_from_widgets(g, space="z")
    with pytest.raises(ValueError, match=r"^'preset': unknown preset"):
        mixing_from_widgets(g, preset="fancy")
    with pytest.raises(ValueError, match=r"^'blend': must be in \[0,1\]"):
        mixing_from_widgets(g, blend=1.5)
