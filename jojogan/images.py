"""Image input: the one image-file loader of the project and the ComfyUI IMAGE validator.

`load_image` turns a file into an RGB tensor ``[3,H,W]`` float32 in [0,1], applying the image rules
of QUALITY.md: a format allowlist, a pixel limit checked from the header before decoding, EXIF
orientation, every Pillow mode mapped to correct RGB (transparency composited on a background,
16-bit and float data scaled, not saturated), truncated files caught at load. Every problem is one
:class:`ImageInputError` (a ``ValueError``) that names the file and the problem.

`validate_image_tensor`, `comfy_to_core` and `core_to_comfy` check and convert ComfyUI ``IMAGE``
tensors (``[B,H,W,3]`` float in [0,1]) and core tensors (``[B,3,H,W]`` float in [-1,1]).
Pure torch/PIL/numpy; never imports ComfyUI.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

__all__ = [
    "ALLOWED_FORMATS",
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_MIN_SIDE",
    "DEFAULT_MAX_ASPECT",
    "ImageInputError",
    "ImageInputWarning",
    "check_image_size",
    "load_image",
    "load_frames",
    "pil_to_tensor",
    "validate_image_tensor",
    "comfy_to_core",
    "core_to_comfy",
    "image_grid",
    "OUTPUT_BUDGET_ENV",
    "DEFAULT_OUTPUT_BUDGET_BYTES",
    "output_budget_bytes",
    "check_output_budget",
]

#: Pillow format names we decode. Anything else (FITS, EPS, PSD, ICO, ...) is "unsupported format".
#: MPO is the multi-picture JPEG that many phone cameras write.
ALLOWED_FORMATS: tuple[str, ...] = ("JPEG", "MPO", "PNG", "WEBP", "BMP", "TIFF", "GIF")
# Pillow openers to try (its JPEG opener also returns MPO files).
_OPENERS = ("JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF")
#: Pixel limit (width * height), checked from the header before any decoding.
DEFAULT_MAX_PIXELS = 64_000_000
#: Shorter side below this is "too small" (a face crop needs some pixels).
DEFAULT_MIN_SIDE = 32
#: Longer side / shorter side above this is "unsupported aspect ratio".
DEFAULT_MAX_ASPECT = 20.0

#: Environment variable: the largest batch output, in GiB, that a node or library call may build.
OUTPUT_BUDGET_ENV = "JOJOGAN_MAX_OUTPUT_GB"
#: Default output budget (4 GiB: 256 float32 images at 1024 px are 3 GiB). The budget is also
#: capped at half the memory the machine has free when the check runs.
DEFAULT_OUTPUT_BUDGET_BYTES = 4 << 30

_HTML_PREFIXES = (b"<!doctype", b"<html", b"<head", b"<body", b"<?xml", b"{", b"<!--")
_MAGIC_NAMES = (
    (b"SIMPLE  =", "FITS"),
    (b"%!PS", "EPS/PostScript"),
    (b"\xc5\xd0\xd3\xc6", "EPS"),
    (b"8BPS", "PSD (Photoshop)"),
    (b"%PDF", "PDF"),
    (b"\x00\x00\x01\x00", "ICO"),
    (b"icns", "ICNS"),
    (b"DDS ", "DDS"),
    (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"),
    (b"\xff\x4f\xff\x51", "JPEG 2000"),
)


class ImageInputError(ValueError):
    """A bad image file or tensor. ``str(err)`` names the file (or argument) and the problem."""

    def __init__(self, name: str, problem: str):
        self.name = name
        self.problem = problem
        super().__init__(f"{name}: {problem}")


class ImageInputWarning(UserWarning):
    """Something about an input image was adjusted (e.g. only the first frame of an animation)."""


# --------------------------------------------------------------------------------------------
# files


def _sniff(path: Path, name: str) -> None:
    """Reject empty files, text/HTML pages and known non-allowed formats from the first bytes."""
    size = path.stat().st_size
    if size == 0:
        raise ImageInputError(name, "the file is empty (0 bytes); re-save or re-download it")
    with open(path, "rb") as f:
        head = f.read(64)
    low = head.lstrip().lower()
    if any(low.startswith(p) for p in _HTML_PREFIXES):
        raise ImageInputError(
            name,
            "this is a text/HTML page, not an image (a failed download or an error page saved "
            "under an image name); download the image again",
        )
    for magic, fmt in _MAGIC_NAMES:
        if head.startswith(magic):
            raise ImageInputError(name, _unsupported(fmt))


def _unsupported(fmt: str) -> str:
    return (
        f"unsupported format {fmt}; supported formats: {', '.join(ALLOWED_FORMATS)} "
        "(convert the image to PNG or JPEG)"
    )


def _open(path: Path, name: str, max_pixels: int) -> Image.Image:
    """Open lazily (header only), checking format, pixel count and shape before decoding."""
    try:
        with warnings.catch_warnings():
            # our own max_pixels check follows; Pillow's hard limit (2x its warning) still applies
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path, formats=_OPENERS)
    except Image.DecompressionBombError as e:
        raise ImageInputError(
            name,
            f"too many pixels ({e}); our limit is max_pixels={max_pixels:,}; "
            "downscale the image first",
        ) from None
    except UnidentifiedImageError:
        fmt = _identify_any(path)
        if fmt is not None:
            raise ImageInputError(name, _unsupported(fmt)) from None
        raise ImageInputError(
            name, "not a readable image (unknown or corrupt data); re-save it as PNG or JPEG"
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise ImageInputError(name, f"cannot read the image header ({e})") from None
    return img


def _identify_any(path: Path) -> str | None:
    """Name the format of a file that Pillow knows but we do not allow (header only)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as other:
                return other.format
    except Exception:
        return None


def _check_shape(img: Image.Image, name: str, max_pixels: int, min_side: int, max_aspect: float):
    w, h = img.size
    check_image_size(w, h, name, max_pixels=max_pixels, min_side=min_side, max_aspect=max_aspect)


def check_image_size(
    width: int,
    height: int,
    name: str = "image",
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    min_side: int = DEFAULT_MIN_SIDE,
    max_aspect: float = DEFAULT_MAX_ASPECT,
) -> None:
    """The image size rules of `load_image`, from the size alone (nothing decoded or copied):
    an :class:`ImageInputError` when ``width`` x ``height`` has no pixels, more than
    ``max_pixels``, an aspect ratio over ``max_aspect`` or a shorter side under ``min_side``."""
    w, h = int(width), int(height)
    if w <= 0 or h <= 0:
        raise ImageInputError(name, f"the image has no pixels ({w}x{h})")
    if w * h > max_pixels:
        raise ImageInputError(
            name,
            f"too many pixels: {w}x{h} = {w * h:,} is over the limit max_pixels={max_pixels:,}; "
            "downscale the image first",
        )
    if max(w, h) / min(w, h) > max_aspect:
        raise ImageInputError(
            name,
            f"unsupported aspect ratio {w}x{h} (more than {max_aspect:g}:1); crop the image "
            "around the face",
        )
    if min(w, h) < min_side:
        raise ImageInputError(
            name, f"the image is too small ({w}x{h}); the shorter side must be >= {min_side} px"
        )


def _to_rgb_array(img: Image.Image, name: str, background: tuple[int, int, int]) -> np.ndarray:
    """Decoded PIL image of any mode -> float32 HxWx3 in [0,1] with correct colours."""
    mode = img.mode
    bg = np.asarray(background, dtype=np.float32) / 255.0
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        mode = img.mode
    elif mode == "PA":
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "RGBa", "La"):
        if mode in ("RGBa", "La"):  # premultiplied alpha
            img = img.convert("RGBA" if mode == "RGBa" else "LA")
        a = np.asarray(img, dtype=np.float32) / 255.0
        color, alpha = a[..., :-1], a[..., -1:]
        if color.shape[-1] == 1:
            color = np.repeat(color, 3, axis=-1)
        # composite on the background: a transparent pixel shows the background, not black
        return color * alpha + bg * (1.0 - alpha)
    if mode == "RGB":
        return np.asarray(img, dtype=np.float32) / 255.0
    if mode in ("L", "1"):
        a = np.asarray(img.convert("L"), dtype=np.float32) / 255.0
        return np.repeat(a[..., None], 3, axis=-1)
    if mode.startswith("I;16"):
        a = np.asarray(img).astype(np.float32) / 65535.0
        return np.repeat(a[..., None], 3, axis=-1)
    if mode == "I":
        a = np.asarray(img).astype(np.float64)
        lo, hi = float(a.min()), float(a.max())
        if lo >= 0 and hi <= 65535:
            a = a / 65535.0 if hi > 255 else a / 255.0
        else:
            a = (a - lo) / max(hi - lo, 1.0)
        return np.repeat(a.astype(np.float32)[..., None], 3, axis=-1)
    if mode == "F":
        a = np.asarray(img, dtype=np.float32)
        if not np.isfinite(a).all():
            raise ImageInputError(name, "the float image contains NaN or infinite values")
        lo, hi = float(a.min()), float(a.max())
        if lo >= 0.0 and hi <= 1.0:
            pass  # already [0,1]
        elif lo >= 0.0 and hi <= 255.0:
            a = a / 255.0
        elif lo >= 0.0 and hi <= 65535.0:
            a = a / 65535.0
        else:
            a = (a - lo) / max(hi - lo, 1e-12)
        return np.repeat(a[..., None], 3, axis=-1)
    # CMYK (Pillow undoes Adobe's inverted CMYK in its JPEG decoder), YCbCr, LAB, HSV, ...
    try:
        return np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    except (ValueError, OSError) as e:
        raise ImageInputError(name, f"unsupported image mode {mode!r} ({e})") from None


def pil_to_tensor(
    img: Image.Image, name: str = "image", background: tuple[int, int, int] = (255, 255, 255)
) -> torch.Tensor:
    """An in-memory PIL image of any mode -> RGB ``[3,H,W]`` float32 in [0,1], with the same
    mode rules as :func:`load_image` (transparency on ``background``, 16-bit/float scaled).
    EXIF orientation is not applied (files get it in :func:`load_image`)."""
    a = np.clip(_to_rgb_array(img, name, background), 0.0, 1.0)
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))


def _decode(img: Image.Image, name: str, background: tuple[int, int, int]) -> torch.Tensor:
    """Load (decode) the current frame, apply EXIF orientation, return [3,H,W] in [0,1]."""
    try:
        img.load()  # Pillow opens lazily; a truncated file must fail here, not later
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, MemoryError) as e:
        raise ImageInputError(
            name, f"the image data is truncated or corrupt ({e}); re-save or re-download it"
        ) from None
    try:
        oriented = ImageOps.exif_transpose(img)
    except Exception as e:  # a broken EXIF block must not lose the picture
        warnings.warn(
            f"{name}: ignoring unreadable EXIF orientation ({e})", ImageInputWarning, stacklevel=3
        )
        oriented = img
    if oriented is None:  # in_place semantics in some Pillow versions
        oriented = img
    a = _to_rgb_array(oriented, name, background)
    a = np.clip(a, 0.0, 1.0)
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))


def _n_frames(img: Image.Image) -> int:
    """Frames that are part of the picture: an MPO (phone JPEG) keeps a preview/depth image after
    the main one, which is not an animation."""
    if img.format == "MPO":
        return 1
    return int(getattr(img, "n_frames", 1))


def _prepare(
    path: str | os.PathLike,
    name: str | None,
    max_pixels: int,
    min_side: int,
    max_aspect: float,
) -> tuple[Path, str, Image.Image]:
    p = Path(path)
    label = name or str(p)
    if not p.exists():
        raise ImageInputError(label, "no such file")
    if not p.is_file():
        raise ImageInputError(label, "not a file (a folder or a device)")
    _sniff(p, label)
    _truncated_guard()
    img = _open(p, label, max_pixels)
    try:
        if img.format not in ALLOWED_FORMATS:  # pragma: no cover - Image.open(formats=) enforces
            raise ImageInputError(label, _unsupported(str(img.format)))
        _check_shape(img, label, max_pixels, min_side, max_aspect)
    except BaseException:
        img.close()
        raise
    return p, label, img


def load_image(
    path: str | os.PathLike,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    min_side: int = DEFAULT_MIN_SIDE,
    max_aspect: float = DEFAULT_MAX_ASPECT,
    background: tuple[int, int, int] = (255, 255, 255),
    name: str | None = None,
) -> torch.Tensor:
    """Load an image file as RGB ``[3,H,W]`` float32 in [0,1] (EXIF orientation applied).

    Checks, in order: the file exists and is not empty or a text/HTML page; the format is in
    :data:`ALLOWED_FORMATS`; width*height <= ``max_pixels`` (read from the header, before any
    decoding: a 200-megapixel PNG fails in milliseconds); aspect ratio <= ``max_aspect``; shorter
    side >= ``min_side``; the data decodes completely (truncated files fail here). Transparent
    images are composited on ``background`` (white by default); 16-bit and float images are
    scaled to [0,1]; CMYK, palette, 1-bit and grayscale become RGB. An animated GIF/WebP gives its
    first frame and an :class:`ImageInputWarning` (use :func:`load_frames` for every frame).

    Raises :class:`ImageInputError` (a ``ValueError``) naming the file and the problem.
    """
    _, label, img = _prepare(path, name, max_pixels, min_side, max_aspect)
    with img:
        n = _n_frames(img)
        if n > 1:
            warnings.warn(
                f"{label}: {n} frames (animated or multi-page); using the first frame only "
                "(load_frames gives every frame)",
                ImageInputWarning,
                stacklevel=2,
            )
            img.seek(0)
        return _decode(img, label, background)


def load_frames(
    path: str | os.PathLike,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_frames: int = 1000,
    min_side: int = DEFAULT_MIN_SIDE,
    max_aspect: float = DEFAULT_MAX_ASPECT,
    background: tuple[int, int, int] = (255, 255, 255),
    name: str | None = None,
) -> torch.Tensor:
    """Load every frame of an image file as ``[N,3,H,W]`` float32 in [0,1] (N=1 for stills).

    Same checks as :func:`load_image`; ``max_pixels`` bounds the *total* pixels of all frames.
    """
    _, label, img = _prepare(path, name, max_pixels, min_side, max_aspect)
    with img:
        n = _n_frames(img)
        w, h = img.size
        if n > max_frames:
            raise ImageInputError(label, f"{n} frames is over the limit max_frames={max_frames}")
        if n * w * h > max_pixels:
            raise ImageInputError(
                label,
                f"{n} frames of {w}x{h} = {n * w * h:,} pixels is over the limit "
                f"max_pixels={max_pixels:,}",
            )
        frames = []
        for i in range(n):
            try:
                img.seek(i)
            except EOFError as e:
                raise ImageInputError(label, f"frame {i} is missing or corrupt ({e})") from None
            f = _decode(img, label, background)
            if frames and f.shape != frames[0].shape:
                raise ImageInputError(label, f"frame {i} has a different size from frame 0")
            frames.append(f)
        return torch.stack(frames)


# Make sure a global LOAD_TRUNCATED_IMAGES set by another package cannot hide truncation from us.
def _truncated_guard() -> None:
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        warnings.warn(
            "PIL.ImageFile.LOAD_TRUNCATED_IMAGES is True (set by another package): truncated "
            "images may load partially",
            ImageInputWarning,
            stacklevel=3,
        )


# --------------------------------------------------------------------------------------------
# tensors (ComfyUI IMAGE and core images)

_RANGE_TOL = 1e-3
# core_to_comfy converts this many bytes of images at a time (its only temporaries)
_CONVERT_CHUNK_BYTES = 64 << 20


def _plain_tensor(t: torch.Tensor, name: str) -> torch.Tensor:
    """Refuse tensors without ordinary data (meta: a shape only; sparse, nested or quantized
    layouts) and detach one that requires grad (an IMAGE is data, not part of a graph)."""
    if t.is_meta:
        raise ImageInputError(
            name, "a meta tensor (a shape without data) was given; pass a tensor with real values"
        )
    if t.layout != torch.strided or t.is_nested:
        raise ImageInputError(
            name, f"expected a dense tensor, got layout {t.layout}; convert it with .to_dense()"
        )
    if t.is_quantized:
        raise ImageInputError(name, f"expected a float IMAGE, got quantized dtype {t.dtype}")
    return t.detach() if t.requires_grad else t


def validate_image_tensor(t: object, name: str = "image") -> torch.Tensor:
    """Check a ComfyUI ``IMAGE`` and return it as ``[B,H,W,3]`` float32 in [0,1].

    Accepted and normalised: float16/bfloat16/float64 (cast to float32); 4 channels (RGBA: the
    alpha channel is dropped, as ComfyUI carries alpha in a separate MASK); 1 channel (gray,
    repeated to 3); values within 1e-3 outside [0,1] (clamped). Refused with an
    :class:`ImageInputError` naming ``name``: not a tensor, rank other than 4 (``[H,W,3]`` gets a
    hint to add the batch dimension), channel-first layout, other channel counts, integer/bool
    dtypes, an empty batch or zero-size image, NaN/inf, values clearly outside [0,1] (the message
    says whether it looks like [-1,1] or [0,255]), meta tensors (no data) and sparse/nested
    layouts. A tensor that requires grad is detached (the result is never part of a graph).
    """
    if not isinstance(t, torch.Tensor):
        raise ImageInputError(name, f"expected a torch.Tensor IMAGE, got {type(t).__name__}")
    t = _plain_tensor(t, name)
    shape = tuple(t.shape)
    if t.dim() != 4:
        hint = ""
        if t.dim() == 3 and shape[-1] in (1, 3, 4):
            hint = " (a single image [H,W,C]: add a batch dimension with t[None])"
        raise ImageInputError(
            name, f"expected an IMAGE of shape [B,H,W,3] (rank 4), got shape {shape}{hint}"
        )
    if shape[0] == 0:
        raise ImageInputError(name, "the IMAGE batch is empty (0 images)")
    if shape[1] == 0 or shape[2] == 0:
        raise ImageInputError(name, f"the IMAGE has zero height or width: {shape}")
    c = shape[-1]
    if c not in (1, 3, 4):
        hint = ""
        if shape[1] in (1, 3, 4):
            hint = " (this looks channel-first [B,C,H,W]; ComfyUI IMAGE is channel-last)"
        raise ImageInputError(
            name, f"expected 3 colour channels in the last dimension, got shape {shape}{hint}"
        )
    if not t.is_floating_point():
        hint = " (uint8 data: divide by 255)" if t.dtype == torch.uint8 else ""
        raise ImageInputError(name, f"expected a float IMAGE in [0,1], got dtype {t.dtype}{hint}")
    x = t.to(torch.float32)
    if not bool(torch.isfinite(x).all()):
        n_bad = int((~torch.isfinite(x)).sum())
        raise ImageInputError(name, f"the IMAGE contains {n_bad} NaN or infinite values")
    lo, hi = float(x.min()), float(x.max())
    if lo < -_RANGE_TOL or hi > 1.0 + _RANGE_TOL:
        if hi > 1.5:
            hint = "; it looks like [0,255] data: divide by 255"
        elif lo < -0.1:
            hint = "; it looks like [-1,1] data: use (x + 1) / 2"
        else:
            hint = ""
        raise ImageInputError(
            name, f"values must be in [0,1], found min {lo:.4g} and max {hi:.4g}{hint}"
        )
    if c == 4:
        x = x[..., :3]
    elif c == 1:
        x = x.expand(*shape[:3], 3)
    return x.clamp(0.0, 1.0).contiguous()


def image_grid(images: torch.Tensor, cols: int, pad: int = 4, fill: float = 1.0) -> torch.Tensor:
    """Images ``[N,3,H,W]`` in row-major order -> one picture ``[3,H',W']`` with ``cols`` columns
    (the last row filled with ``fill`` where N is not a multiple), ``pad`` pixels of ``fill``
    around and between the cells. Same range and dtype as the input."""
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[0] < 1:
        raise ValueError(f"image_grid: expected images [N,C,H,W] with N >= 1, got {images!r:.80}")
    if cols < 1 or pad < 0:
        raise ValueError(f"image_grid: cols must be >= 1 and pad >= 0, got {cols}, {pad}")
    n, c, h, w = images.shape
    cols = min(cols, n)
    rows = -(-n // cols)
    out = images.new_full((c, rows * (h + pad) + pad, cols * (w + pad) + pad), fill)
    for k in range(n):
        r, q = divmod(k, cols)
        y, x = pad + r * (h + pad), pad + q * (w + pad)
        out[:, y : y + h, x : x + w] = images[k]
    return out


def _available_bytes() -> int | None:
    """Memory the OS reports as available (Linux /proc/meminfo; None elsewhere). Read by hand:
    psutil is not a dependency of the library."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def output_budget_bytes() -> int:
    """The batch-output budget in bytes: $JOJOGAN_MAX_OUTPUT_GB (GiB) or 4 GiB, and never more
    than half the memory available now."""
    raw = os.environ.get(OUTPUT_BUDGET_ENV, "").strip()
    budget = DEFAULT_OUTPUT_BUDGET_BYTES
    if raw:
        try:
            gb = float(raw)
        except ValueError:
            gb = float("nan")
        if not (gb > 0 and gb < 1e6):
            raise ValueError(f"{OUTPUT_BUDGET_ENV}={raw[:40]!r} must be a positive number of GiB")
        budget = int(gb * (1 << 30))
    avail = _available_bytes()
    if avail is not None:
        budget = min(budget, avail // 2)
    return budget


def check_output_budget(
    count: int,
    height: int,
    width: int,
    *,
    what: str,
    channels: int = 3,
    bytes_per_value: int = 4,
    budget_bytes: int | None = None,
) -> int:
    """Refuse, before anything is allocated, a batch output of ``count`` images of
    ``height`` x ``width`` (float32 by default) larger than the output budget.

    ``what`` starts the message (e.g. "Toy Render: count 256 at size 1024"). Returns the
    output's size in bytes. Raises ValueError naming count, size, the bytes needed and the budget.
    """
    need = int(count) * int(height) * int(width) * int(channels) * int(bytes_per_value)
    budget = output_budget_bytes() if budget_bytes is None else int(budget_bytes)
    if need > budget:
        gib = 1 << 30
        raise ValueError(
            f"{what}: the output ({count} images of {height}x{width}) needs "
            f"{need / gib:.2f} GiB, over the {budget / gib:.2f} GiB output budget; ask for fewer "
            f"or smaller images, or raise {OUTPUT_BUDGET_ENV} if the machine has the memory"
        )
    return need


def comfy_to_core(images: torch.Tensor, name: str = "image") -> torch.Tensor:
    """ComfyUI ``IMAGE`` ``[B,H,W,3]`` in [0,1] -> core ``[B,3,H,W]`` float32 in [-1,1]."""
    x = validate_image_tensor(images, name)
    return (x.permute(0, 3, 1, 2) * 2.0 - 1.0).contiguous()


def core_to_comfy(images: torch.Tensor, name: str = "image") -> torch.Tensor:
    """Core ``[B,3,H,W]`` in [-1,1] -> ComfyUI ``IMAGE`` ``[B,H,W,3]`` float32 in [0,1].

    Values are clamped (a generator's output slightly overshoots [-1,1]); NaN is refused. The
    result is allocated once and converted in place, image by image: memory peaks at the input
    plus the output.
    """
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ImageInputError(name, f"expected a core image [B,3,H,W], got {shape}")
    x = _plain_tensor(images, name)
    if not x.is_floating_point():
        raise ImageInputError(name, f"expected a float image in [-1,1], got {x.dtype}")
    b, _, h, w = x.shape
    out = torch.empty((b, h, w, 3), dtype=torch.float32, device=x.device)
    step = max(1, _CONVERT_CHUNK_BYTES // (3 * h * w * 4))
    for i in range(0, b, step):
        src = x[i : i + step]
        if not bool(torch.isfinite(src).all()):
            raise ImageInputError(name, "the image contains NaN or infinite values")
        part = out[i : i + step]
        part.copy_(src.permute(0, 2, 3, 1))
        part.clamp_(-1.0, 1.0).add_(1.0).mul_(0.5)
    return out
