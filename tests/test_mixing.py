"""Paired-set masks (Eq. 1): presets, custom layers, kept vs mixed layers, S vs W+; the one
bounded layer-list parser."""

import time

import pytest
import torch

from jojogan.mixing import (
    PRESETS,
    build_mask,
    mix_codes,
    parse_layers,
    sample_random_codes,
    style_layer_latents,
    to_style_codes,
)
from jojogan.stylegan2 import Generator


@pytest.fixture(scope="module")
def gen():
    torch.manual_seed(0)
    return Generator(32, style_dim=32, n_mlp=2, channel_max=32).eval()


@pytest.fixture(scope="module")
def gen1024_shape():
    class Fake:  # only depth matters for masks
        size, n_latent = 1024, 18
        to_rgbs = [None] * 8

    return Fake()


def _codes(gen, n=2, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, gen.n_latent, gen.style_dim, generator=g)


def test_presets_at_1024_are_the_released_layers(gen1024_shape):
    assert build_mask(gen1024_shape, "w+", "full").mixed == list(range(7, 18))
    assert build_mask(gen1024_shape, "w+", "preserve_color").mixed == [9, 11, 15, 16, 17]
    s_full = build_mask(gen1024_shape, "s", "X")
    assert len(s_full.weights) == 26
    lat = style_layer_latents(gen1024_shape)
    assert s_full.mixed == [j for j, (li, _) in enumerate(lat) if li >= 7]
    c = build_mask(gen1024_shape, "s", "C").mixed
    assert c and all(not lat[j][1] for j in c) and set(c) < set(s_full.mixed)


def test_presets_scale_to_a_small_generator_and_keep_order(gen):
    for space in ("w+", "s"):
        for p in PRESETS:
            m = build_mask(gen, space, p)
            n = gen.n_latent if space == "w+" else gen.n_styles
            assert len(m.weights) == n
            assert m.mixed and max(m.mixed) < n
    assert build_mask(gen, "w+", "full").mixed == list(range(3, gen.n_latent))


def test_kept_layers_identical_and_mixed_layers_vary_with_seed(gen):
    codes = _codes(gen)
    m = build_mask(gen, "w+", "full")
    r1 = sample_random_codes(gen, 2, torch.Generator().manual_seed(1), "w+")
    r2 = sample_random_codes(gen, 2, torch.Generator().manual_seed(2), "w+")
    a, b = mix_codes(codes, r1, m), mix_codes(codes, r2, m)
    for i in range(gen.n_latent):
        if i in m.mixed:
            assert not torch.equal(a[:, i], b[:, i])
            assert torch.equal(a[:, i], r1[:, i])
        else:
            assert torch.equal(a[:, i], codes[:, i]) and torch.equal(b[:, i], codes[:, i])
    # each reference gets its own random code (multi-shot: its own set)
    assert not torch.equal(r1[0], r1[1])


def test_same_seed_same_codes(gen):
    r1 = sample_random_codes(gen, 3, torch.Generator().manual_seed(5), "s")
    r2 = sample_random_codes(gen, 3, torch.Generator().manual_seed(5), "s")
    assert all(torch.equal(x, y) for x, y in zip(r1, r2, strict=True))


def test_s_space_mixing_kept_layers_identical(gen):
    codes = to_style_codes(gen, _codes(gen))
    m = build_mask(gen, "s", "C")
    rnd = sample_random_codes(gen, 2, torch.Generator().manual_seed(3), "s")
    out = mix_codes(codes, rnd, m)
    for j, (s, o) in enumerate(zip(codes, out, strict=True)):
        assert torch.equal(s, o) == (j not in m.mixed)


def test_w_plus_mask_equals_its_s_expansion(gen):
    """A W+ mask mixed before the affine layers = the same mask per S layer after them."""
    codes = _codes(gen)
    rnd_w = sample_random_codes(gen, 2, torch.Generator().manual_seed(4), "w+")
    mw = build_mask(gen, "w+", layers=[2, 5, 7], blend=0.6)
    lat = style_layer_latents(gen)
    s_layers = [j for j, (li, _) in enumerate(lat) if li in (2, 5, 7)]
    ms = build_mask(gen, "s", layers=s_layers, blend=0.6)
    with torch.no_grad():
        via_w = gen.styles(mix_codes(codes, rnd_w, mw))
        via_s = mix_codes(gen.styles(codes), gen.styles(rnd_w), ms)
    for x, y in zip(via_w, via_s, strict=True):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-5)


def test_blend_is_the_released_alpha(gen):
    codes = _codes(gen)
    rnd = sample_random_codes(gen, 2, torch.Generator().manual_seed(6), "w+")
    m = build_mask(gen, "w+", "full", blend=0.3)
    out = mix_codes(codes, rnd, m)
    i = m.mixed[0]
    # released: alpha_code = 1 - user_alpha; w = alpha_code * w_ref + (1 - alpha_code) * w_rand
    torch.testing.assert_close(out[:, i], 0.7 * codes[:, i] + 0.3 * rnd[:, i])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"preset": "nope"}, "unknown preset"),
        ({"layers": [0, 99]}, r"out of range .* 32 px"),
        ({"layers": [-1]}, "out of range"),
        ({"layers": []}, "empty"),
        ({"space": "z"}, "space"),
        ({"blend": 1.5}, r"\[0,1\]"),
    ],
)
def test_bad_masks_are_clear_errors(gen, kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_mask(gen, **kwargs)


# ----------------------------------------------------------------------------- layer lists


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("7-17", tuple(range(7, 18))),
        ("9,11,15,16,17", (9, 11, 15, 16, 17)),
        (" 0-2, 9 5,5 ", (0, 1, 2, 5, 9)),
        ("3-3", (3,)),
        ("", None),
        (" , ", None),
    ],
)
def test_layer_lists_parse_ranges_lists_and_both(text, want):
    assert parse_layers(text, 18, "layers") == want


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("0-99999999", r"^W: '0-99999999' is out of range 0\.\.17$"),
        ("18", r"'18' is out of range 0\.\.17"),
        ("9" * 5000, r"5000 characters long"),
        ("1-" + "9" * 900, r"out of range 0\.\.17"),
        ("seven", r"^W must list layer indices like '7-17'"),
        ("-1", "must list layer indices"),
        ("1--2", "must list layer indices"),
        ("\uff11\uff12", "must list layer indices"),  # full-width digits are not indices
        ("5-3", "runs backwards"),
        ("x" * 100_000, "100000 characters long"),
    ],
)
def test_bad_layer_lists_fail_at_once_with_short_messages(text, match):
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match=match) as e:
        parse_layers(text, 18, "W")
    assert time.perf_counter() - t0 < 0.1
    msg = str(e.value)
    assert len(msg) <= 300
    # at most 40 characters of the input are quoted
    assert max((len(q) for q in msg.split("'")[1::2]), default=0) <= 40


def test_layer_list_of_the_wrong_type_or_for_no_layers_is_refused():
    with pytest.raises(ValueError, match="must be a text"):
        parse_layers(None, 18, "W")
    with pytest.raises(ValueError, match="no layers"):
        parse_layers("1", 0, "W")
