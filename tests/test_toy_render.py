"""The toy-faces renderer: deterministic, shaped as documented, styles share the identity."""

import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch

from jojogan.images import OUTPUT_BUDGET_ENV
from jojogan.toy import render as render_mod
from jojogan.toy.render import (
    FIELD_GROUPS,
    FIELD_NAMES,
    FIELDS,
    STYLES,
    FaceParams,
    Scene,
    UnknownStyleError,
    load_style_module,
    register_style,
    render,
    render_batch,
    render_chunk_size,
    render_float,
    render_torch,
    sample_params,
    sample_photos,
    style_names,
)


def test_same_seed_gives_same_params_and_pixels():
    a, b = sample_params(7, 3), sample_params(7, 3)
    assert np.array_equal(a.to_vector(), b.to_vector())
    for style in STYLES:
        assert np.array_equal(render_batch(a, style, 32), render_batch(b, style, 32)), style


def test_different_seeds_give_different_faces():
    a, b = render_batch(sample_params(1, 4)), render_batch(sample_params(2, 4))
    assert np.abs(a.astype(int) - b.astype(int)).mean() > 10
    imgs = render_batch(sample_params(3, 4))
    assert all(np.abs(imgs[i].astype(int) - imgs[i + 1]).mean() > 5 for i in range(3))


def test_params_fields_are_named_and_in_unit_range():
    p = sample_params(np.random.default_rng(0), 50)
    v = p.to_vector()
    assert v.shape == (50, len(FIELDS)) and v.dtype == np.float32
    assert v.min() >= 0 and v.max() <= 1
    assert np.array_equal(p.field("gaze_x"), v[:, FIELD_NAMES.index("gaze_x")])
    assert set(np.unique(p.hair_style_index())) <= {0, 1, 2, 3}
    grouped = [f for g in FIELD_GROUPS.values() for f in g]
    assert sorted(grouped) == sorted(FIELD_NAMES)  # every field in exactly one group
    assert p[3].as_dict()["gaze_x"] == pytest.approx(float(v[3, FIELD_NAMES.index("gaze_x")]))
    assert p.replace(gaze_x=1.0).field("gaze_x").min() == 1.0


def test_render_shapes_dtypes_and_torch_range():
    p = sample_params(0, 2)
    one = render(p[0], "photo", 48)
    assert one.shape == (48, 48, 3) and one.dtype == np.uint8
    batch = render_batch(p, "sketch", 32)
    assert batch.shape == (2, 32, 32, 3) and batch.dtype == np.uint8
    assert render_float(p, "photo", 16).dtype == np.float32  # no float64 promotion
    t = render_torch(p, "cartoon", 32)
    assert t.shape == (2, 3, 32, 32) and t.dtype == torch.float32
    assert t.min() >= -1 and t.max() <= 1 and t.min() < -0.5 and t.max() > 0.5
    # a list of FaceParams renders like the concatenated batch
    assert np.array_equal(render_batch([p[0], p[1]], "ink", 16), render_batch(p, "ink", 16))


def test_scene_and_styles_stay_float32():
    # NumPy 2 promotes on float64 operands; a float64 field slows rendering several times.
    p = sample_params(0, 2)
    for name, st in STYLES.items():
        sc = Scene(p, 16, st.geometry)
        fields = [*sc.sdf.values(), *sc.colour.values(), sc.face_in, sc.noise, sc.strands]
        assert all(a.dtype == np.float32 for a in fields), name
        assert st.fn(sc).dtype == np.float32, name


def test_every_style_renders_a_nontrivial_distinct_image():
    assert len(STYLES) >= 6 and "photo" in STYLES
    p = sample_params(5, 2)
    imgs = {s: render_batch(p, s, 64).astype(np.float32) for s in STYLES}
    for s, img in imgs.items():
        assert img.std() > 20, s  # not blank
        assert STYLES[s].description
    names = list(imgs)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert np.abs(imgs[a] - imgs[b]).mean() > 10, (a, b)


def test_sketch_and_ink_are_grayscale_photo_is_colourful():
    p = sample_params(11, 4)
    chroma = {
        s: np.ptp(render_batch(p, s, 64).astype(int), axis=-1).mean() for s in ("photo", "sketch")
    }
    assert chroma["sketch"] == 0
    assert chroma["photo"] > 15
    ink = render_batch(p, "ink", 64).astype(int)
    assert np.ptp(ink, axis=-1).max() <= 8  # near-neutral black and white


def test_popart_uses_a_fixed_palette_not_the_identity_colours():
    from jojogan.toy.render import _POP, _POP_BG

    palette = np.concatenate([_POP, _POP_BG, np.ones((1, 3), np.float32)]) * 255

    def near_palette(img):
        d = np.abs(img.reshape(-1, 1, 3).astype(np.float32) - palette[None]).max(-1)
        return (d.min(1) < 24).mean()

    p = sample_params(3, 8)
    assert near_palette(render_batch(p, "popart", 64)) > 0.8
    assert near_palette(render_batch(p, "photo", 64)) < 0.2


def _face_mask(params, style, size=64):
    st = STYLES[style]
    sc = Scene(params, size, st.geometry, ss=1)
    return sc.cov("face") > 0.5, sc


def test_styles_share_the_identity_geometry():
    # Same params -> same face outline in every style except big_eyes' exaggerated jaw;
    # eye centres move with the params the same way in all styles.
    p = sample_params(9, 3)
    base, _ = _face_mask(p, "photo")
    for style in STYLES:
        mask, _ = _face_mask(p, style)
        iou = (mask & base).sum() / (mask | base).sum()
        assert iou > 0.8, (style, iou)
    # changing the pose shifts every style's rendering the same way
    left, right = p.replace(pose_x=0.0), p.replace(pose_x=1.0)
    for style in STYLES:
        ml, _ = _face_mask(left, style)
        mr, _ = _face_mask(right, style)
        cols = np.arange(64)
        cx_l = (ml * cols).sum((1, 2)) / ml.sum((1, 2))
        cx_r = (mr * cols).sum((1, 2)) / mr.sum((1, 2))
        assert np.all(cx_r - cx_l > 3), style


def test_gaze_moves_the_iris_by_pixels_at_64px():
    p = sample_params(4, 2)
    _, left = _face_mask(p.replace(gaze_x=0.0), "photo")
    _, right = _face_mask(p.replace(gaze_x=1.0), "photo")
    cols = np.arange(64)

    def iris_x(sc):
        m = sc.cov("iris")
        return (m * cols).sum((1, 2)) / m.sum((1, 2))

    assert np.all(iris_x(right) - iris_x(left) > 2.5)


def test_style_names_can_hold_out_styles_and_new_styles_register():
    held = style_names(exclude=["ink", "popart"])
    assert "ink" not in held and "photo" in held
    with pytest.raises(ValueError, match="unknown style 'nope'; known styles: photo"):
        style_names(exclude=["nope"])
    with pytest.raises(ValueError, match="already registered"):
        register_style("photo", "dup")(lambda sc: sc.background())
    name = "test_only_flat"
    register_style(name, "flat grey test style")(lambda sc: sc.background() * 0 + 0.5)
    try:
        img = render_batch(sample_params(0), name, 16)
        assert np.all(img == 128)
    finally:
        del STYLES[name]


EXAMPLE_STYLES = Path(__file__).resolve().parents[1] / "benchmarks" / "example_styles.py"


def test_a_style_file_adds_styles_the_package_has_not_seen(style_registry):
    assert "blueprint" not in STYLES
    assert load_style_module(EXAMPLE_STYLES) == ["blueprint"]
    assert load_style_module(str(EXAMPLE_STYLES)) == ["blueprint"]  # runs once per process
    p = sample_params(3, 4)
    a, b = render_batch(p, "blueprint", 32), render_batch(p, "blueprint", 32)
    assert np.array_equal(a, b) and a.shape == (4, 32, 32, 3)
    assert np.abs(a.astype(int) - render_batch(p, "photo", 32).astype(int)).mean() > 20
    assert np.abs(a[0].astype(int) - a[1].astype(int)).mean() > 1  # the identity shows


@pytest.mark.parametrize(
    ("text", "suffix", "match"),
    [
        (None, ".py", "no such file"),
        ("x = 1\n", ".txt", "must be a Python file"),
        ("x = 1\n", ".py", "registered no style"),
        ("raise RuntimeError('boom')\n", ".py", "failed while it ran: RuntimeError: boom"),
        (
            "from jojogan.toy.render import register_style\n"
            "register_style('photo', 'dup')(lambda sc: sc.background())\n",
            ".py",
            "already registered",
        ),
        (
            "from jojogan.toy.render import register_style\n"
            "register_style('half_done', 'x')(lambda sc: sc.background())\n"
            "1 / 0\n",
            ".py",
            "ZeroDivisionError",
        ),
    ],
)
def test_bad_style_files_are_clear_errors_and_register_nothing(
    style_registry, tmp_path, text, suffix, match
):
    f = tmp_path / f"styles{suffix}"
    if text is not None:
        f.write_text(text)
    before = list(STYLES)
    with pytest.raises(ValueError, match=match) as e:
        load_style_module(f)
    assert str(f) in str(e.value)
    assert list(STYLES) == before


def test_bad_inputs_give_clear_errors():
    p = sample_params(0)
    with pytest.raises(ValueError, match="unknown style 'nope'"):
        render(p, "nope")
    with pytest.raises(ValueError, match="size"):
        render(p, "photo", 4)
    with pytest.raises(ValueError, match="one face"):
        render(sample_params(0, 2))
    with pytest.raises(ValueError, match=r"\[N, \d+\]"):
        FaceParams(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="within"):
        FaceParams(np.full((1, len(FIELDS)), 2.0, np.float32))
    with pytest.raises(KeyError, match="unknown field"):
        p.field("nose_colour")
    with pytest.raises(TypeError, match="params must be"):
        render_batch("face")


def test_sample_photos_returns_params_and_matching_images():
    p, imgs = sample_photos(3, 2, 32)
    assert len(p) == 2 and imgs.shape == (2, 32, 32, 3)
    assert np.array_equal(imgs, render_batch(p, "photo", 32))


def test_an_unknown_style_is_a_value_error_listing_the_known_styles():
    for bad in ("no_such_style", "x" * 5000, None, ["photo"]):
        with pytest.raises(UnknownStyleError) as ei:
            render_float(sample_params(0), bad, 16)
        msg = str(ei.value)
        assert isinstance(ei.value, ValueError) and len(msg) <= 300, msg
        assert "known styles: " + ", ".join(STYLES) in msg
        assert "x" * 41 not in msg  # user input quoted to 40 characters at most
    with pytest.raises(KeyError):  # still what a registry lookup raised before
        render_batch(sample_params(0), "nope", 16)


def test_chunks_never_change_the_pixels():
    p = sample_params(7, 9)
    for style in ("photo", "sketch", "watercolor"):
        whole = render_float(p, style, 24, chunk=32)
        for chunk in (1, 4):
            assert np.array_equal(render_float(p, style, 24, chunk=chunk), whole)
        assert np.array_equal(
            render_batch(p, style, 24, chunk=2), (whole * 255.0 + 0.5).astype(np.uint8)
        )
        want = torch.from_numpy(whole).permute(0, 3, 1, 2).contiguous() * 2.0 - 1.0
        assert torch.equal(render_torch(p, style, 24, chunk=3), want)
    with pytest.raises(ValueError, match="chunk must be an integer >= 1"):
        render_float(p, "photo", 24, chunk=0)


def test_the_chunk_follows_the_working_memory_bound():
    assert render_chunk_size(64) == 32  # the toy size: unchanged
    assert render_chunk_size(1024) == 1  # ~0.8 GB a face: one at a time
    assert 1 < render_chunk_size(256) < 32
    assert render_chunk_size(1024, chunk=5) == 5


def test_peak_memory_is_the_output_plus_one_chunk_not_count_times_a_face(monkeypatch):
    """Toy Render count=256 at 1024 px once took ~0.7 GB a face, all at once; now the output is
    allocated once and the faces render one chunk at a time (here one face a chunk)."""
    size, count = 96, 24
    per_face = render_mod._WORK_BYTES_PER_PX * (2 * size) ** 2
    monkeypatch.setattr(render_mod, "RENDER_WORK_BYTES", per_face)
    assert render_chunk_size(size) == 1
    p = sample_params(1, count)
    render_float(p[:1], "photo", size)  # the cached noise texture, outside the measurement
    tracemalloc.start()
    try:
        out = render_float(p, "photo", size)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < out.nbytes + 1.5 * per_face, (peak, out.nbytes, per_face)
    assert peak < count * per_face / 4  # what rendering every face at once needed


def test_an_output_over_the_budget_is_refused_before_rendering(monkeypatch):
    monkeypatch.setenv(OUTPUT_BUDGET_ENV, "0.5")
    monkeypatch.setattr(render_mod, "Scene", None)  # rendering anything would fail differently
    p = sample_params(0, 64)
    for fn in (render_float, render_torch, render_batch):
        start = time.perf_counter()
        with pytest.raises(ValueError) as ei:
            fn(p if fn is not render_batch else sample_params(0, 256), "photo", 1024)
        assert time.perf_counter() - start < 0.5
        msg = str(ei.value)
        assert "faces at size 1024" in msg and "images of 1024x1024" in msg, msg
        assert OUTPUT_BUDGET_ENV in msg and len(msg) <= 300
