"""Image input: every "Images" item of QUALITY.md (files and ComfyUI IMAGE tensors).

Each bad input is built in tmp_path; each test asserts a clear ImageInputError naming the file and
the problem, that nothing was written, and that the next good load still works.
"""

from __future__ import annotations

import struct
import time
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, features

from jojogan import images as jimages
from jojogan.images import (
    DEFAULT_MAX_PIXELS,
    ImageInputError,
    ImageInputWarning,
    check_image_size,
    check_output_budget,
    comfy_to_core,
    core_to_comfy,
    load_frames,
    load_image,
    validate_image_tensor,
)


def _good(tmp_path: Path) -> Path:
    p = tmp_path / "good.png"
    if not p.exists():
        a = np.zeros((48, 64, 3), np.uint8)
        a[..., 0] = np.arange(64, dtype=np.uint8)[None, :] * 4
        a[..., 1] = 200
        Image.fromarray(a).save(p)
    return p


def _assert_clear(tmp_path: Path, bad: Path, *words: str, **kw) -> ImageInputError:
    """The bad file gives one ImageInputError naming it and the problem; nothing is written;
    the next good load still works."""
    good = _good(tmp_path)
    before = sorted((q.name, q.stat().st_size, q.stat().st_mtime_ns) for q in tmp_path.iterdir())
    with pytest.raises(ImageInputError) as ei:
        load_image(bad, **kw)
    msg = str(ei.value)
    assert str(bad) in msg, msg
    for w in words:
        assert w.lower() in msg.lower(), (w, msg)
    assert isinstance(ei.value, ValueError)
    after = sorted((q.name, q.stat().st_size, q.stat().st_mtime_ns) for q in tmp_path.iterdir())
    assert after == before, "a bad load wrote or changed files"
    x = load_image(good)
    assert x.shape == (3, 48, 64) and x.dtype == torch.float32
    return ei.value


# ---------------------------------------------------------------------------------- bad files


def test_empty_file_is_refused(tmp_path):
    p = tmp_path / "empty.png"
    p.write_bytes(b"")
    _assert_clear(tmp_path, p, "empty", "0 bytes")


def test_random_bytes_named_jpg_are_refused(tmp_path):
    p = tmp_path / "noise.jpg"
    p.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    _assert_clear(tmp_path, p, "not a readable image")


def test_html_page_named_png_is_refused(tmp_path):
    p = tmp_path / "download.png"
    p.write_text("<!DOCTYPE html><html><body>Quota exceeded</body></html>")
    _assert_clear(tmp_path, p, "html")


def _photo_like(w=96, h=80) -> Image.Image:
    rng = np.random.default_rng(1)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


@pytest.mark.parametrize("fmt,ext", [("JPEG", "jpg"), ("PNG", "png")])
def test_truncated_file_fails_at_load(tmp_path, fmt, ext):
    full = tmp_path / f"full.{ext}"
    _photo_like().save(full, format=fmt)
    data = full.read_bytes()
    full.unlink()
    p = tmp_path / f"cut.{ext}"
    p.write_bytes(data[: len(data) // 2])
    _assert_clear(tmp_path, p, "truncated")


def _png_1bit(path: Path, w: int, h: int) -> None:
    """Write a 1-bit grayscale PNG of w x h zeros, streaming (no full image in memory)."""
    row = b"\x00" * (1 + (w + 7) // 8)
    comp = zlib.compressobj(9)
    chunks = [comp.compress(row) for _ in range(h)]
    idat = b"".join(chunks) + comp.flush()

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", w, h, 1, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


def test_decompression_bomb_fails_fast_without_decoding(tmp_path):
    p = tmp_path / "bomb.png"
    _png_1bit(p, 20000, 10000)  # 200 megapixels, ~24 KB on disk
    assert p.stat().st_size < 100_000
    t0 = time.perf_counter()
    _assert_clear(tmp_path, p, "pixels", "max_pixels")
    assert time.perf_counter() - t0 < 1.0


def test_image_over_our_pixel_limit_is_refused_before_decoding(tmp_path):
    p = tmp_path / "big.png"
    _photo_like(120, 100).save(p)
    e = _assert_clear(
        tmp_path, p, "too many pixels", "120x100", "max_pixels=10,000", max_pixels=10_000
    )
    assert "12,000" in str(e)


@pytest.mark.parametrize(
    "fmt,head",
    [
        ("FITS", b"SIMPLE  =                    T" + b" " * 50),
        ("EPS", b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 64 64\n"),
        ("PSD", b"8BPS\x00\x01\x00\x00\x00\x00\x00\x00\x00\x03\x00\x00\x00@\x00\x00\x00@\x00\x08"),
    ],
)
def test_formats_outside_the_allowlist_renamed_png_are_unsupported(tmp_path, fmt, head):
    p = tmp_path / f"renamed_{fmt}.png"
    p.write_bytes(head + b"\x00" * 3000)
    _assert_clear(tmp_path, p, "unsupported format", fmt)


@pytest.mark.parametrize("fmt", ["TGA", "PCX", "PPM"])
def test_pillow_formats_we_do_not_allow_are_unsupported(tmp_path, fmt):
    p = tmp_path / "other.png"
    _photo_like().save(p, format=fmt)
    _assert_clear(tmp_path, p, "unsupported format", fmt)


@pytest.mark.parametrize(
    "size,word",
    [((1, 1), "too small"), ((16, 16), "too small"), ((60000, 2), "aspect ratio")],
)
def test_tiny_and_extreme_aspect_images_are_refused(tmp_path, size, word):
    p = tmp_path / f"shape_{size[0]}x{size[1]}.png"
    Image.new("RGB", size, (10, 20, 30)).save(p)
    _assert_clear(tmp_path, p, word, f"{size[0]}x{size[1]}")


def test_float_tiff_with_nan_is_refused(tmp_path):
    p = tmp_path / "nan.tif"
    a = np.full((40, 40), 0.5, np.float32)
    a[3, 3] = np.nan
    Image.fromarray(a, mode="F").save(p)
    _assert_clear(tmp_path, p, "nan")


def test_missing_file_and_folder_are_refused(tmp_path):
    _assert_clear(tmp_path, tmp_path / "nope.jpg", "no such file")
    d = tmp_path / "dir.png"
    d.mkdir()
    _assert_clear(tmp_path, d, "not a file")


# --------------------------------------------------------------------------------- good modes


def _load_saved(tmp_path: Path, img: Image.Image, name: str, **save) -> torch.Tensor:
    p = tmp_path / name
    img.save(p, **save)
    x = load_image(p)
    assert x.dtype == torch.float32 and x.shape[0] == 3 and x.min() >= 0 and x.max() <= 1
    return x


def test_rgba_transparency_is_composited_on_white_not_black(tmp_path):
    a = np.zeros((40, 40, 4), np.uint8)
    a[..., 0] = 255  # red
    a[:20, :, 3] = 0  # top half fully transparent
    a[20:, :, 3] = 128  # bottom half half-transparent
    x = _load_saved(tmp_path, Image.fromarray(a, "RGBA"), "rgba.png")
    assert torch.allclose(x[:, :20], torch.ones(3, 20, 40))  # background white
    r, g = x[0, 30, 5].item(), x[1, 30, 5].item()
    assert r == pytest.approx(1.0) and g == pytest.approx(1 - 128 / 255, abs=1e-3)


def test_la_and_palette_transparency_composite_on_background(tmp_path):
    a = np.zeros((40, 40, 2), np.uint8)
    a[..., 0] = 50
    a[:, :20, 1] = 255
    x = _load_saved(tmp_path, Image.fromarray(a, "LA"), "la.png")
    assert x[:, 5, 5].tolist() == pytest.approx([50 / 255] * 3, abs=1e-4)
    assert x[:, 5, 30].tolist() == pytest.approx([1.0] * 3)

    p = Image.new("P", (40, 40), 1)
    p.putpalette([0, 0, 0, 0, 0, 255] + [0] * 762)
    p.paste(0, (0, 0, 20, 40))  # index 0 (black) is the transparent one
    x = _load_saved(tmp_path, p, "p.png", transparency=0)
    assert x[:, 5, 5].tolist() == pytest.approx([1.0] * 3)  # transparent -> white, not black
    assert x[:, 5, 30].tolist() == pytest.approx([0.0, 0.0, 1.0])
    x = _load_saved(tmp_path, p, "p.gif", transparency=0)
    assert x[:, 5, 5].tolist() == pytest.approx([1.0] * 3)


def test_cmyk_jpeg_has_correct_colours(tmp_path):
    img = Image.new("RGB", (48, 48), (220, 30, 40)).convert("CMYK")
    x = _load_saved(tmp_path, img, "cmyk.jpg", quality=95)
    assert torch.allclose(x[:, 24, 24], torch.tensor([220, 30, 40]) / 255.0, atol=0.03)


def test_sixteen_bit_grayscale_is_scaled_not_saturated(tmp_path):
    a = np.full((40, 40), 40000, np.uint16)
    a[:, :20] = 1000
    x = _load_saved(tmp_path, Image.fromarray(a), "g16.png")
    assert x[0, 5, 30].item() == pytest.approx(40000 / 65535, abs=1e-4)
    assert x[0, 5, 5].item() == pytest.approx(1000 / 65535, abs=1e-4)
    assert torch.equal(x[0], x[1]) and torch.equal(x[1], x[2])


@pytest.mark.parametrize("scale", [1.0, 255.0])
def test_float_tiff_is_scaled(tmp_path, scale):
    a = np.full((40, 40), 0.25 * scale, np.float32)
    a[:, :10] = 0.75 * scale
    x = _load_saved(tmp_path, Image.fromarray(a, mode="F"), f"f{int(scale)}.tif")
    assert x[:, 5, 30].tolist() == pytest.approx([0.25] * 3, abs=1e-5)
    assert x[:, 5, 5].tolist() == pytest.approx([0.75] * 3, abs=1e-5)


def test_one_bit_and_grayscale_become_rgb(tmp_path):
    b = Image.new("1", (40, 40), 0)
    b.paste(1, (0, 0, 20, 40))
    x = _load_saved(tmp_path, b, "bw.png")
    assert x[:, 5, 5].tolist() == [1.0, 1.0, 1.0] and x[:, 5, 30].tolist() == [0.0, 0.0, 0.0]
    g = Image.new("L", (40, 40), 100)
    x = _load_saved(tmp_path, g, "gray.jpg", quality=100)
    assert x[:, 5, 5].tolist() == pytest.approx([100 / 255] * 3, abs=2 / 255)


# How a camera stores the pixels for each EXIF orientation (the inverse of what a viewer applies).
_STORED_AS = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


@pytest.mark.parametrize("orientation", [1, 2, 3, 4, 5, 6, 7, 8, 0, 9, 255])
def test_exif_orientation_is_applied(tmp_path, orientation):
    base = _photo_like(64, 40)  # asymmetric content and shape
    stored = base.transpose(_STORED_AS[orientation]) if orientation in _STORED_AS else base
    exif = stored.getexif()
    exif[0x0112] = orientation
    x = _load_saved(tmp_path, stored, f"o{orientation}.png", exif=exif)
    want = torch.from_numpy(np.asarray(base, np.float32) / 255).permute(2, 0, 1)
    assert x.shape == want.shape and torch.equal(x, want)


def test_animated_gif_and_webp_give_first_frame_with_warning(tmp_path):
    frames = [Image.new("RGB", (40, 40), c) for c in [(255, 0, 0), (0, 255, 0), (0, 0, 255)]]
    kinds = ["gif"] + (["webp"] if features.check("webp") else [])
    for ext in kinds:
        p = tmp_path / f"anim.{ext}"
        extra = {"lossless": True} if ext == "webp" else {}
        frames[0].save(p, save_all=True, append_images=frames[1:], duration=50, **extra)
        with pytest.warns(ImageInputWarning, match="first frame"):
            x = load_image(p)
        assert x[:, 20, 20].tolist() == pytest.approx([1.0, 0.0, 0.0], abs=0.02)
        all_frames = load_frames(p)
        assert all_frames.shape == (3, 3, 40, 40)
        assert all_frames[2, :, 20, 20].tolist() == pytest.approx([0.0, 0.0, 1.0], abs=0.02)
    assert kinds == ["gif", "webp"], "Pillow without WebP: the WebP half was not exercised"


def test_phone_mpo_jpeg_is_one_picture_not_an_animation(tmp_path):
    p = tmp_path / "phone.jpg"
    main, preview = Image.new("RGB", (64, 48), (0, 200, 0)), Image.new("RGB", (32, 24))
    main.save(p, format="MPO", save_all=True, append_images=[preview], quality=95)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        x = load_image(p)
    assert x.shape == (3, 48, 64) and x[1, 10, 10] > 0.7
    assert load_frames(p).shape == (1, 3, 48, 64)


def test_still_image_loads_without_warnings(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        x = load_image(_good(tmp_path))
    assert x[0, 0, 1].item() == pytest.approx(4 / 255)


# ------------------------------------------------------------------------------ IMAGE tensors


@pytest.mark.parametrize(
    "bad,words",
    [
        (np.zeros((1, 8, 8, 3), np.float32), ["torch.Tensor"]),
        (torch.zeros(8, 8, 3), ["rank 4", "batch dimension"]),
        (torch.zeros(1, 1, 8, 8, 3), ["rank 4"]),
        (torch.zeros(1, 3, 8, 8), ["channel-first"]),
        (torch.zeros(1, 8, 8, 2), ["3 colour channels"]),
        (torch.zeros(1, 8, 8, 3, dtype=torch.uint8), ["dtype", "divide by 255"]),
        (torch.zeros(1, 8, 8, 3, dtype=torch.int64), ["dtype"]),
        (torch.full((1, 8, 8, 3), 200.0), ["[0,255]"]),
        (torch.full((1, 8, 8, 3), -0.8), ["[-1,1]"]),
        (torch.zeros(0, 8, 8, 3), ["empty"]),
        (torch.zeros(2, 0, 8, 3), ["zero height"]),
        (torch.tensor([float("nan")]).expand(1, 4, 4, 3).clone(), ["nan"]),
        (torch.tensor([float("inf")]).expand(1, 4, 4, 3).clone(), ["infinite"]),
    ],
)
def test_bad_image_tensors_get_clear_errors(bad, words):
    with pytest.raises(ImageInputError) as ei:
        validate_image_tensor(bad, "reference")
    msg = str(ei.value)
    assert msg.startswith("reference:")
    for w in words:
        assert w.lower() in msg.lower(), (w, msg)
    good = torch.rand(2, 8, 8, 3)
    assert torch.equal(validate_image_tensor(good, "reference"), good)


def test_image_tensor_normalisations():
    rgba = torch.rand(1, 5, 6, 4)
    assert torch.equal(validate_image_tensor(rgba), rgba[..., :3])  # alpha dropped
    gray = torch.rand(2, 5, 6, 1)
    out = validate_image_tensor(gray)
    assert out.shape == (2, 5, 6, 3) and torch.equal(out[..., 2], gray[..., 0])
    half = torch.rand(1, 5, 6, 3).half()
    assert validate_image_tensor(half).dtype == torch.float32
    over = torch.full((1, 2, 2, 3), 1.0005)
    assert validate_image_tensor(over).max() == 1.0  # tiny overshoot clamped


def test_comfy_core_round_trip():
    x = torch.rand(3, 7, 9, 3)
    core = comfy_to_core(x)
    assert core.shape == (3, 3, 7, 9) and core.min() >= -1 and core.max() <= 1
    assert torch.allclose(core_to_comfy(core), x, atol=1e-6)
    assert core_to_comfy(torch.full((1, 3, 2, 2), 1.3)).max() == 1.0
    with pytest.raises(ImageInputError, match="core image"):
        core_to_comfy(torch.zeros(1, 2, 2, 3))
    with pytest.raises(ImageInputError, match="NaN"):
        core_to_comfy(torch.full((1, 3, 2, 2), float("nan")))


@pytest.mark.parametrize(
    "make,words",
    [
        (lambda: torch.empty(1, 8, 8, 3, device="meta"), ["meta tensor", "real values"]),
        (lambda: torch.rand(1, 8, 8, 3).to_sparse(), ["dense", "to_dense"]),
    ],
)
def test_image_tensors_without_plain_data_are_refused(make, words):
    for fn in (validate_image_tensor, comfy_to_core):
        with pytest.raises(ImageInputError) as ei:
            fn(make(), "reference")
        msg = str(ei.value)
        assert msg.startswith("reference:") and len(msg) <= 300
        for w in words:
            assert w in msg, (w, msg)
    with pytest.raises(ImageInputError, match="meta tensor"):
        core_to_comfy(torch.empty(1, 3, 8, 8, device="meta"), "images")


def test_image_tensors_that_require_grad_are_detached():
    x = torch.rand(2, 5, 6, 3, requires_grad=True)
    out = validate_image_tensor(x)
    assert not out.requires_grad and out.grad_fn is None and torch.equal(out, x.detach())
    core = comfy_to_core(x)
    assert not core.requires_grad
    y = torch.rand(2, 3, 5, 6, requires_grad=True) * 2 - 1  # a non-leaf with a graph
    back = core_to_comfy(y)
    assert not back.requires_grad and back.grad_fn is None


def test_core_to_comfy_converts_in_chunks_with_the_same_values(monkeypatch):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(7, 3, 5, 6, generator=gen) * 1.3  # overshoots [-1,1]: clamped
    monkeypatch.setattr(jimages, "_CONVERT_CHUNK_BYTES", 3 * 5 * 6 * 4 * 2)  # 2 images a chunk
    for dtype in (torch.float32, torch.float64, torch.bfloat16):
        xd = x.to(dtype).float()  # the formula, on the whole batch at once
        want = ((xd.clamp(-1.0, 1.0) + 1.0) * 0.5).permute(0, 2, 3, 1).contiguous()
        got = core_to_comfy(x.to(dtype))
        assert got.dtype == torch.float32 and got.is_contiguous() and torch.equal(got, want)
    bad = x.clone()
    bad[5, 1, 2, 3] = float("nan")  # in the last chunk
    with pytest.raises(ImageInputError, match="NaN"):
        core_to_comfy(bad)


@pytest.mark.parametrize(
    "w,h,words",
    [
        (1, 1, ["too small", "1x1"]),
        (100_000, 100, ["aspect ratio"]),
        (100_000, 100_000, ["too many pixels", f"{DEFAULT_MAX_PIXELS:,}"]),
        (0, 5, ["no pixels"]),
    ],
)
def test_check_image_size_applies_the_loader_rules_from_the_size_alone(w, h, words):
    start = time.perf_counter()
    with pytest.raises(ImageInputError) as ei:
        check_image_size(w, h, "photo.png")
    assert time.perf_counter() - start < 0.1
    msg = str(ei.value)
    assert msg.startswith("photo.png:") and len(msg) <= 300
    for word in words:
        assert word in msg, (word, msg)
    check_image_size(640, 480, "photo.png")  # a normal photo passes


def test_check_output_budget_names_count_and_size_and_honours_the_env(monkeypatch):
    monkeypatch.setenv(jimages.OUTPUT_BUDGET_ENV, "0.01")  # 10 MiB
    assert check_output_budget(4, 64, 64, what="Toy Render") == 4 * 64 * 64 * 3 * 4
    with pytest.raises(ValueError) as ei:
        check_output_budget(64, 1024, 1024, what="Toy Render: 'count' 64")
    msg = str(ei.value)
    assert "64 images of 1024x1024" in msg and "0.75 GiB" in msg and len(msg) <= 300
    assert jimages.OUTPUT_BUDGET_ENV in msg
    monkeypatch.setenv(jimages.OUTPUT_BUDGET_ENV, "lots")
    with pytest.raises(ValueError, match="positive number of GiB"):
        check_output_budget(1, 8, 8, what="x")


def test_image_grid_lays_images_out_row_by_row_with_gaps():
    from jojogan.images import image_grid

    imgs = torch.arange(5, dtype=torch.float32).view(5, 1, 1, 1).expand(5, 3, 2, 3)
    g = image_grid(imgs, cols=3, pad=1, fill=-1.0)
    assert g.shape == (3, 2 * 3 + 1, 3 * 4 + 1)
    for k in range(5):
        r, c = divmod(k, 3)
        cell = g[:, 1 + 3 * r : 3 + 3 * r, 1 + 4 * c : 4 + 4 * c]
        assert torch.equal(cell, torch.full_like(cell, float(k)))
    assert float(g[:, 4:6, 9:12].max()) == -1.0  # the missing sixth cell is background
    assert float(g[:, 0].max()) == -1.0 and float(g[:, :, 4].max()) == -1.0
    with pytest.raises(ValueError, match="image_grid"):
        image_grid(torch.zeros(0, 3, 2, 2), cols=1)
