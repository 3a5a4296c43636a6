"""FFHQ face alignment on tensors (kornia warps and blurs), batched over the faces of a photo.

The recipe is the one the FFHQ dataset was made with (Karras et al., "A Style-Based Generator
Architecture for GANs", CVPR 2019, dataset script ``recreate_aligned_images``), as JoJoGAN's
``util.align_face`` runs it (the crop its generator and encoders expect):

1. from the eye centres and the mouth corners build an oriented square ``quad`` (centre
   ``c = eye_avg + 0.1 * eye_to_mouth``; half-side vector
   ``x = normalize(eye_to_eye - rot90(eye_to_mouth)) * max(2.0 |eye_to_eye|, 1.8 |eye_to_mouth|)``;
   ``y = rot90(x)``; corners ``c - x - y, c - x + y, c + x + y, c + x - y``);
2. when the quad is at least 4x the output, shrink the photo by an integer factor ``s`` first
   (PIL LANCZOS to ``rint(W/s) x rint(H/s)``, the quad divided by ``s``);
3. crop around the quad with a border of 10 % of its size;
4. where the quad comes within 4 px of the photo's edge or leaves it, reflect-pad, blend the
   padding towards a blurred copy and its median colour (so a face at the border gets a
   plausible, not black, surround);
5. sample the quad (an affine map: the quad is a rotated square) bilinearly at the output size,
   truncated to 8 bits as PIL's QUAD transform does (``util.align_face`` sets its
   ``transform_size`` to the output size).

Given the same landmarks the result is within 1e-4 mean abs of ``util.align_face`` on every
branch; docs/alignment.md has the figures and what each step contributes.

Coordinates are pixel-index coordinates (pixel centres at integers, x right, y down). Aligned
pixel ``(j, i)`` (column, row) comes from photo point ``q0 + (q3-q0) (j+0.5)/S + (q1-q0) (i+0.5)/S``
with ``q = quad``; :attr:`AlignedFace.matrix` is that map as a 3x3 matrix. After a shrink by ``s``
the quad sampled is the landmarks' quad moved by ``(s-1)/2`` photo px right and down (the recipe
divides the quad by ``s`` where the resize maps pixel centres): ``quad`` and ``matrix`` are the
quad actually sampled, so paste-back puts the face back where it came from.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from kornia.filters import gaussian_blur2d
from kornia.geometry.transform import warp_affine
from PIL import Image

from ..images import DEFAULT_MAX_PIXELS, ImageInputError, check_image_size, pil_to_tensor
from .detect import Detection, FaceDetector, get_detector, to_uint8_hwc

__all__ = [
    "AlignedFace",
    "FaceNote",
    "NoFaceError",
    "align_faces",
    "align_detections",
    "ffhq_quad",
    "quad_to_matrix",
    "as_image_tensor",
    "DEFAULT_MIN_FACE",
    "MAX_ALIGN_SIZE",
]

#: Faces whose detector box is smaller than this (shorter side, px) are skipped with a FaceNote.
DEFAULT_MIN_FACE = 48


class NoFaceError(ValueError):
    """No usable face in an image: ``"no face found in <name>"`` plus the reason."""


class FaceNote(UserWarning):
    """Information about the faces of a photo (several faces, skipped small faces, video gaps).

    The one note mechanism of :mod:`jojogan.faces`: issued with :func:`warnings.warn`, so callers
    collect them with ``warnings.catch_warnings(record=True)`` (the ComfyUI nodes show them).
    """


@dataclass
class AlignedFace:
    """One FFHQ-aligned face and everything paste-back needs.

    image: ``[3,size,size]`` float32 in [-1,1] (on the photo tensor's device).
    matrix: ``[3,3]`` float64, aligned pixel ``(x, y, 1)`` -> photo pixel (index coordinates).
    quad: ``[4,2]`` photo coordinates of the crop's corners (top-left, bottom-left,
    bottom-right, top-right, as in the FFHQ script): the quad actually sampled (after a shrink
    by ``s``, :func:`ffhq_quad` of the landmarks moved by ``(s-1)/2`` px).
    box: the detector's (x0, y0, x1, y1).
    landmarks5 ``[5,2]`` / landmarks68 ``[68,2]`` or None: photo coordinates.
    source_size: the photo's (H, W). index: position in the returned list; name: the photo's.
    """

    image: torch.Tensor
    matrix: torch.Tensor
    quad: np.ndarray
    box: tuple[float, float, float, float]
    score: float
    landmarks5: np.ndarray
    landmarks68: np.ndarray | None
    source_size: tuple[int, int]
    size: int
    index: int = 0
    name: str = "image"
    backend: str = ""

    @property
    def inverse_matrix(self) -> torch.Tensor:
        """``[3,3]`` float64: photo pixel -> aligned pixel."""
        return torch.linalg.inv(self.matrix)

    @property
    def center(self) -> np.ndarray:
        """The crop centre in photo coordinates (the quad's centre)."""
        return self.quad.mean(0)


# ---------------------------------------------------------------------------------- geometry


def ffhq_quad(landmarks5: np.ndarray) -> np.ndarray:
    """FFHQ's oriented crop square from 5 landmarks -> ``[4,2]`` quad (TL, BL, BR, TR).

    Uses the eye centres (points 0, 1) and the mouth corners (3, 4), as the FFHQ script does with
    the 68-point means of 36-41 / 42-47 and points 48 / 54.
    """
    lm = np.asarray(landmarks5, dtype=np.float64)
    eye_left, eye_right = lm[0], lm[1]
    mouth_avg = (lm[3] + lm[4]) * 0.5
    eye_avg = (eye_left + eye_right) * 0.5
    eye_to_eye = eye_right - eye_left
    eye_to_mouth = mouth_avg - eye_avg
    rot_e2m = np.array([-eye_to_mouth[1], eye_to_mouth[0]])  # rot90, as flipud(v) * [-1, 1]
    x = eye_to_eye - rot_e2m
    norm = float(np.hypot(*x))
    if not np.isfinite(norm) or norm < 1e-6:
        raise ValueError(f"degenerate face landmarks (eyes and mouth coincide): {lm.tolist()}")
    x = x / norm * max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
    y = np.array([-x[1], x[0]])
    c = eye_avg + eye_to_mouth * 0.1
    return np.stack([c - x - y, c - x + y, c + x + y, c + x - y])


def quad_to_matrix(quad: np.ndarray, size: int) -> torch.Tensor:
    """``[3,3]`` float64 map from a ``size``-px aligned crop's pixels to the quad's photo pixels."""
    q = np.asarray(quad, dtype=np.float64)
    ex, ey = (q[3] - q[0]) / size, (q[1] - q[0]) / size
    t = q[0] + 0.5 * (ex + ey)
    return torch.tensor(
        [[ex[0], ey[0], t[0]], [ex[1], ey[1], t[1]], [0.0, 0.0, 1.0]], dtype=torch.float64
    )


# ------------------------------------------------------------------------------------ inputs


def as_image_tensor(image: Image.Image | torch.Tensor, name: str = "image") -> torch.Tensor:
    """A PIL image (any mode, via the project's loader rules) or a ``[3,H,W]`` float tensor in
    [0,1] -> ``[3,H,W]`` float32 in [0,1]. EXIF orientation is *not* applied here (``load_image``
    does that for files; ComfyUI's LoadImage does it for its images). The size rules of
    `jojogan.images.check_image_size` (too small, too many pixels, aspect ratio) are checked
    from the size alone, before anything is converted or copied."""
    if isinstance(image, Image.Image):
        check_image_size(*image.size, name)
        return pil_to_tensor(image, name)
    if not isinstance(image, torch.Tensor):
        raise ImageInputError(name, f"expected a PIL image or a tensor, got {type(image).__name__}")
    if image.dim() != 3 or image.shape[0] != 3:
        raise ImageInputError(
            name, f"expected an image tensor [3,H,W] in [0,1], got shape {tuple(image.shape)}"
        )
    if image.is_meta:
        raise ImageInputError(name, "a meta tensor (a shape without data); pass real values")
    check_image_size(image.shape[2], image.shape[1], name)
    if not image.is_floating_point():
        raise ImageInputError(name, f"expected a float image in [0,1], got {image.dtype}")
    x = image.detach().to(torch.float32)
    if not bool(torch.isfinite(x).all()):
        raise ImageInputError(name, "the image contains NaN or infinite values")
    lo, hi = float(x.min()), float(x.max())
    if lo < -1e-3 or hi > 1.0 + 1e-3:
        raise ImageInputError(name, f"values must be in [0,1], found {lo:.4g}..{hi:.4g}")
    return x.clamp(0.0, 1.0)


#: Largest aligned crop side (the Align Faces node's limit); the sampled side (size times
#: supersample) squared must also stay within `jojogan.images.DEFAULT_MAX_PIXELS`.
MAX_ALIGN_SIZE = 4096


def _check_size(size: object, supersample: object = None) -> None:
    """Refuse an output size or supersampling factor before any detection or allocation."""
    if (
        isinstance(size, bool)
        or not isinstance(size, int | np.integer)
        or not (8 <= size <= MAX_ALIGN_SIZE)
    ):
        raise ValueError(f"size must be an integer in 8..{MAX_ALIGN_SIZE}, got {size!r:.40}")
    ok = isinstance(supersample, int) and not isinstance(supersample, bool)
    if supersample is not None and not (ok and 1 <= supersample <= 8):
        raise ValueError(f"supersample must be None or an integer 1..8, got {supersample!r:.40}")
    side = int(size) * int(supersample or 1)
    if side * side > DEFAULT_MAX_PIXELS:
        raise ValueError(
            f"size {int(size)} x supersample {supersample} samples {side}x{side} px, over the "
            f"{DEFAULT_MAX_PIXELS:,} pixel limit; lower supersample or size"
        )


def _image_name(image, name: str | None) -> str:
    if name:
        return name
    fn = getattr(image, "filename", None)
    return str(fn) if fn else "image"


# ------------------------------------------------------------------------------ the recipe
#
# Each step reproduces what JoJoGAN's ``util.align_face`` does with PIL, numpy and scipy (see
# docs/alignment.md for the measured effect of each): PIL's LANCZOS coefficients for the shrink,
# its uint8 rounding after the shrink and the padding, its QUAD transform sampled bilinearly at
# the output size and truncated to uint8. Only what the crop needs is computed.

_LSB = 1.0 / 255.0


def _round8(x: torch.Tensor) -> torch.Tensor:
    """Round [0,1] values to the nearest of 256 levels, ties to even, as ``np.rint`` before
    ``np.uint8`` does (the padding step)."""
    return x.mul(255.0).round_().clamp_(0.0, 255.0).mul_(_LSB)


def _lanczos_taps(in_size: int, out_size: int, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    """PIL's LANCZOS coefficients for 8-bit images (``Resample.c``: ``precompute_coeffs``, then
    ``normalize_coeffs_8bpc``'s 22-bit fixed point) for output pixels ``lo..hi-1`` of a
    whole-axis resize ``in_size -> out_size``: first input index ``[n]`` and weights
    ``[n, taps]`` (exact multiples of 2**-22; zero past each pixel's last tap)."""
    scale = in_size / out_size
    fscale = max(scale, 1.0)
    support = 3.0 * fscale
    taps = int(math.ceil(support)) * 2 + 1
    center = (np.arange(lo, hi) + 0.5) * scale
    first = np.maximum(np.trunc(center - support + 0.5), 0).astype(np.int64)
    last = np.minimum(np.trunc(center + support + 0.5), in_size).astype(np.int64)
    k = np.arange(taps)
    x = (first[:, None] + k[None, :] - center[:, None] + 0.5) / fscale
    w = np.where((x >= -3.0) & (x < 3.0), np.sinc(x) * np.sinc(x / 3.0), 0.0)
    w = np.where(k[None, :] < (last - first)[:, None], w, 0.0)
    total = w.sum(1, keepdims=True)
    w = np.divide(w, total, out=np.zeros_like(w), where=total != 0) * float(1 << 22)
    return first, np.trunc(w + np.where(w < 0, -0.5, 0.5)) / float(1 << 22)


def _band_blocks(first: np.ndarray, w: np.ndarray, length: int, offset: int, device, dtype):
    """The taps as dense ``[block, span]`` matrices over blocks of 16 outputs: ``(start, span,
    matrix)`` with ``start`` relative to input index ``offset`` (``length`` inputs there)."""
    n, taps = w.shape
    blocks = []
    for b0 in range(0, n, 16):
        b1 = min(b0 + 16, n)
        a = int(first[b0])
        span = min(int(first[b1 - 1]) + taps, offset + length) - a
        cols = first[b0:b1, None] - a + np.arange(taps)[None, :]
        m = np.zeros((b1 - b0, span + taps))
        np.put_along_axis(m, cols, np.where(cols < span, w[b0:b1], 0.0), axis=1)
        blocks.append((a - offset, span, torch.from_numpy(m[:, :span]).to(device, dtype)))
    return blocks


def _to_levels(y: torch.Tensor) -> torch.Tensor:
    """PIL's ``clip8``: round half up (its fixed point adds a half) and clip, as float32."""
    return y.add_(0.5).floor_().clamp_(0.0, 255.0).to(torch.float32)


def _shrink_region(
    photo: torch.Tensor, out_hw: tuple[int, int], rows: tuple[int, int], cols: tuple[int, int]
) -> torch.Tensor:
    """Pixels ``rows x cols`` of ``photo`` [3,H,W] in [0,1] resized as a whole to ``out_hw`` with
    PIL's LANCZOS on its 8-bit levels (horizontal pass, then vertical, each rounded to 8 bits),
    reading only the input the region needs: ``PIL.Image.resize`` of the uint8 photo, cropped.

    Banded taps as dense matmuls over blocks of 16 outputs, in float64: integer levels times
    weights on a 2**-22 grid sum exactly, so the result is PIL's to the bit (float32 on MPS,
    which has no float64: within a level)."""
    _, H, W = photo.shape
    y_first, wy = _lanczos_taps(H, out_hw[0], *rows)
    x_first, wx = _lanczos_taps(W, out_hw[1], *cols)
    y0, y1 = int(y_first.min()), min(int(y_first.max()) + wy.shape[1], H)
    x0, x1 = int(x_first.min()), min(int(x_first.max()) + wx.shape[1], W)
    dtype = torch.float32 if photo.device.type == "mps" else torch.float64
    # horizontal pass over chunks of 128 rows (each converted to levels once)
    bx = _band_blocks(x_first, wx, x1 - x0, x0, photo.device, dtype)
    t = []
    for r in range(y0, y1, 128):
        chunk = photo[:, r : min(r + 128, y1), x0:x1].to(dtype).mul_(255.0).round_()
        t.append(_to_levels(torch.cat([chunk[..., a : a + n] @ m.T for a, n, m in bx], -1)))
    t = torch.cat(t, 1)
    # vertical pass
    by = _band_blocks(y_first, wy, y1 - y0, y0, photo.device, dtype)
    out = [_to_levels(m @ t[:, a : a + n].to(dtype)) for a, n, m in by]
    return torch.cat(out, 1).mul_(_LSB)


def _reflect_pad(x: torch.Tensor, left: int, right: int, top: int, bottom: int) -> torch.Tensor:
    """numpy-style 'reflect' padding of [B,C,H,W] by any amount (repeated when pad >= size)."""
    while left > 0 or right > 0 or top > 0 or bottom > 0:
        h, w = x.shape[-2:]
        if w < 2 and (left or right):
            x, left, right = F.pad(x, (left, right, 0, 0), mode="replicate"), 0, 0
        if h < 2 and (top or bottom):
            x, top, bottom = F.pad(x, (0, 0, top, bottom), mode="replicate"), 0, 0
        h, w = x.shape[-2:]
        lx, rx, ty, by = min(left, w - 1), min(right, w - 1), min(top, h - 1), min(bottom, h - 1)
        if lx or rx or ty or by:
            x = F.pad(x, (lx, rx, ty, by), mode="reflect")
        left, right, top, bottom = left - lx, right - rx, top - ty, bottom - by
    return x


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of [B,C,H,W]; large sigmas run on a downsampled copy (the result is smooth;
    within 1e-4 mean abs of scipy's exact filter where the recipe uses it)."""
    if sigma <= 0.3:
        return x
    h, w = x.shape[-2:]
    f = max(1, int(sigma // 3))
    small = x
    if f > 1:
        small = F.interpolate(
            x, size=(max(1, math.ceil(h / f)), max(1, math.ceil(w / f))), mode="area"
        )
    s = sigma / f
    k = 2 * int(4.0 * s + 0.5) + 1  # scipy's truncate=4.0
    out = gaussian_blur2d(small, (k, k), (s, s), border_type="replicate")
    if f > 1:
        out = F.interpolate(out, size=(h, w), mode="bilinear", align_corners=False)
    return out


def _align_quad(
    photo: torch.Tensor, quad: np.ndarray, size: int, supersample: int | None
) -> tuple[torch.Tensor, np.ndarray]:
    """One quad of ``photo`` [3,H,W] in [0,1] -> (``[3,size,size]`` in [0,1], the quad actually
    sampled in photo pixels). FFHQ steps 2-5 as ``util.align_face`` runs them."""
    _, H, W = photo.shape
    quad = np.asarray(quad, dtype=np.float64)
    qsize = float(np.hypot(*(quad[3] - quad[0])))

    # 2. shrink: PIL resizes the whole photo to rint(W/s) x rint(H/s) and divides the quad by s
    # (so the sampled quad sits (s-1)/2 photo px right of and below the landmarks' quad)
    shrink = int(np.floor(qsize / size * 0.5))
    if shrink > 1:
        Ws, Hs = int(np.rint(W / shrink)), int(np.rint(H / shrink))
        q, qs = quad / shrink, qsize / shrink
    else:
        shrink, Ws, Hs, q, qs = 1, W, H, quad.copy(), qsize
    sampled = q.copy()

    # 3. crop with a border (in shrunk pixels); only the crop is ever resized
    border = max(int(np.rint(qs * 0.1)), 3)
    c0 = max(int(np.floor(q[:, 0].min())) - border, 0)
    c1 = max(int(np.floor(q[:, 1].min())) - border, 0)
    c2 = min(int(np.ceil(q[:, 0].max())) + border, Ws)
    c3 = min(int(np.ceil(q[:, 1].max())) + border, Hs)
    if c2 <= c0 or c3 <= c1:  # the quad lies outside the photo entirely
        c0, c1, c2, c3 = 0, 0, Ws, Hs
    if shrink > 1:
        region = _shrink_region(photo, (Hs, Ws), (c1, c3), (c0, c2))[None]
    else:
        region = photo[None, :, c1:c3, c0:c2]
    q = q - np.array([c0, c1], dtype=np.float64)
    ch, cw = region.shape[-2:]

    # 4. pad: reflect, blend towards a blurred copy and the median colour, store as uint8
    pad = [
        max(-int(np.floor(q[:, 0].min())) + border, 0),
        max(-int(np.floor(q[:, 1].min())) + border, 0),
        max(int(np.ceil(q[:, 0].max())) - cw + border, 0),
        max(int(np.ceil(q[:, 1].max())) - ch + border, 0),
    ]
    if max(pad) > border - 4:
        p = max(int(np.rint(qs * 0.3)), 1)
        pl, pt, pr, pb = (max(v, p) for v in pad)
        region = _reflect_pad(region, pl, pr, pt, pb)
        h, w = region.shape[-2:]
        xs = torch.arange(w, dtype=torch.float32, device=region.device)
        ys = torch.arange(h, dtype=torch.float32, device=region.device)
        mx = 1.0 - torch.minimum(xs / pl, (w - 1 - xs) / pr)
        my = 1.0 - torch.minimum(ys / pt, (h - 1 - ys) / pb)
        mask = torch.maximum(mx[None, :], my[:, None])[None, None]
        region = torch.lerp(region, _blur(region, qs * 0.02), (mask * 3.0 + 1.0).clamp_(0.0, 1.0))
        # the median colour, from at most ~1M pixels per channel (a strided sample)
        k = max(1, int(math.sqrt(h * w / 1e6)))
        median = region[..., ::k, ::k].flatten(2).median(dim=2).values[:, :, None, None]
        region = _round8(region.lerp_(median.expand_as(region), mask.clamp_(0.0, 1.0)))
        q = q + np.array([pl, pt], dtype=np.float64)

    # 5. sample the quad: bilinear at the output size, truncated to uint8 (PIL's QUAD transform);
    # supersample m > 1: at m * size, then an antialiased resize (smoother, not the recipe)
    m = int(supersample) if supersample else 1
    T = size * m
    src_to_dst = torch.linalg.inv(quad_to_matrix(q, T))[:2].to(torch.float32)[None]
    out = warp_affine(
        region, src_to_dst.to(region.device), (T, T), mode="bilinear", padding_mode="zeros"
    )
    if m > 1:
        out = F.interpolate(
            out, size=(size, size), mode="bicubic", antialias=True, align_corners=False
        ).clamp_(0.0, 1.0)
    else:
        out = out.mul_(255.0).add_(1e-3).floor_().clamp_(0.0, 255.0).mul_(_LSB)

    if shrink > 1:  # shrunk pixel u is photo pixel (u + 0.5) * (W / Ws) - 0.5
        sampled = (sampled + 0.5) * np.array([W / Ws, H / Hs]) - 0.5
    return out[0], sampled


def align_detections(
    photo: torch.Tensor,
    detections: list[Detection],
    size: int = 1024,
    *,
    name: str = "image",
    supersample: int | None = None,
) -> list[AlignedFace]:
    """Align given detections of ``photo`` ([3,H,W] in [0,1]); see :func:`align_faces`."""
    _check_size(size, supersample)
    out = []
    _, H, W = photo.shape
    for i, d in enumerate(detections):
        crop, quad = _align_quad(photo, ffhq_quad(d.landmarks5), size, supersample)
        out.append(
            AlignedFace(
                image=crop * 2.0 - 1.0,
                matrix=quad_to_matrix(quad, size),
                quad=quad,
                box=d.box,
                score=d.score,
                landmarks5=np.asarray(d.landmarks5, dtype=np.float64),
                landmarks68=d.landmarks68,
                source_size=(H, W),
                size=size,
                index=i,
                name=name,
                backend=d.backend,
            )
        )
    return out


def select_faces(
    detections: list[Detection],
    which: str,
    name: str,
    min_face: float = DEFAULT_MIN_FACE,
    backend: str = "",
) -> list[Detection]:
    """Apply ``min_face`` and ``which`` to detections (notes as :class:`FaceNote` warnings).

    ``"largest"``: the detection with the largest box. ``"all"``: every detection, ordered left
    to right by box centre (ties: top to bottom), a stable order for a given photo.
    """
    if which not in ("largest", "all"):
        raise ValueError(f"which must be 'largest' or 'all', got {which!r}")
    if not detections:
        raise NoFaceError(
            f"no face found in {name} (detector: {backend or 'unknown'}); use a photo with a "
            "clear, roughly frontal face at least ~80 px wide"
        )
    small = [d for d in detections if d.size < min_face]
    kept = [d for d in detections if d.size >= min_face]
    if small:
        sizes = ", ".join(f"{d.size:.0f} px" for d in small)
        if not kept:
            raise NoFaceError(
                f"no face found in {name}: {len(small)} face(s) smaller than the minimum face "
                f"size {min_face:g} px (found {sizes}); use a larger photo or lower min_face"
            )
        warnings.warn(
            f"{name}: skipped {len(small)} face(s) smaller than the minimum face size "
            f"{min_face:g} px ({sizes})",
            FaceNote,
            stacklevel=3,
        )
    if which == "largest":
        if len(kept) > 1:
            warnings.warn(
                f"{name}: {len(kept)} faces found; using the largest (which='all' for every face)",
                FaceNote,
                stacklevel=3,
            )
        return [max(kept, key=lambda d: d.area)]
    return sorted(kept, key=lambda d: ((d.box[0] + d.box[2]) / 2, (d.box[1] + d.box[3]) / 2))


def align_faces(
    image: Image.Image | torch.Tensor,
    size: int = 1024,
    detector: str | FaceDetector = "auto",
    which: str = "largest",
    *,
    min_face: float = DEFAULT_MIN_FACE,
    name: str | None = None,
    models_dir: str | os.PathLike | None = None,
    supersample: int | None = None,
) -> list[AlignedFace]:
    """Detect faces in a photo and FFHQ-align them (the crop JoJoGAN's generator expects).

    image: a PIL image (any mode; transparency composited on white) or a ``[3,H,W]`` float
    tensor in [0,1] (the crops are computed on its device). size: output side in px.
    detector: ``"auto"``, ``"dlib"``, ``"retinaface"`` or a built backend (see
    :mod:`jojogan.faces.detect`). which: ``"largest"`` (one face) or ``"all"`` (left to right).
    min_face: faces smaller than this (px, shorter box side) are skipped with a :class:`FaceNote`.
    supersample: None or 1: the recipe (bilinear at the output size, as ``util.align_face``);
    m > 1: sample at ``m * size``, then an antialiased resize (less aliasing when the face is
    larger than the output, as the FFHQ dataset script's 4096 px transform; not the recipe).

    Returns a list of :class:`AlignedFace` (``.image`` is ``[3,size,size]`` in [-1,1]).
    Raises :class:`NoFaceError` ("no face found in <name>") when no usable face is found, and
    a ValueError, before any detection, for a size outside 8..`MAX_ALIGN_SIZE` or a photo that
    breaks the image size rules (`jojogan.images.check_image_size`: 1x1, 100000 px a side).
    """
    _check_size(size, supersample)
    label = _image_name(image, name)
    photo = as_image_tensor(image, label)
    det = get_detector(detector, models_dir)
    dets = det.detect(to_uint8_hwc(photo))
    chosen = select_faces(dets, which, label, min_face, getattr(det, "name", ""))
    return align_detections(photo, chosen, size, name=label, supersample=supersample)
