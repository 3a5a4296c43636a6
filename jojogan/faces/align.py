"""FFHQ face alignment on tensors (kornia warps and blurs), batched over the faces of a photo.

The recipe is the one the FFHQ dataset was made with (Karras et al., "A Style-Based Generator
Architecture for GANs", CVPR 2019, dataset script ``recreate_aligned_images``), which JoJoGAN's
generator expects:

1. from the eye centres and the mouth corners build an oriented square ``quad`` (centre
   ``c = eye_avg + 0.1 * eye_to_mouth``; half-side vector
   ``x = normalize(eye_to_eye - rot90(eye_to_mouth)) * max(2.0 |eye_to_eye|, 1.8 |eye_to_mouth|)``;
   ``y = rot90(x)``; corners ``c - x - y, c - x + y, c + x + y, c + x - y``);
2. when the quad is much bigger than the output, shrink the photo by an integer factor first;
3. crop around the quad with a border of 10 % of its size;
4. where the quad leaves the photo, reflect-pad, blend the padding towards a blurred copy and its
   median colour (so a face at the border gets a plausible, not black, surround);
5. sample the quad (an affine map: the quad is a rotated square) and resize to ``size``.

Coordinates are pixel-index coordinates (pixel centres at integers, x right, y down). Aligned
pixel ``(j, i)`` (column, row) comes from photo point ``q0 + (q3-q0) (j+0.5)/S + (q1-q0) (i+0.5)/S``
with ``q = quad``; :attr:`AlignedFace.matrix` is that map as a 3x3 matrix.
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

from ..images import ImageInputError, pil_to_tensor
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
    bottom-right, top-right, as in the FFHQ script). box: the detector's (x0, y0, x1, y1).
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
    does that for files; ComfyUI's LoadImage does it for its images)."""
    if isinstance(image, Image.Image):
        return pil_to_tensor(image, name)
    if not isinstance(image, torch.Tensor):
        raise ImageInputError(name, f"expected a PIL image or a tensor, got {type(image).__name__}")
    if image.dim() != 3 or image.shape[0] != 3:
        raise ImageInputError(
            name, f"expected an image tensor [3,H,W] in [0,1], got shape {tuple(image.shape)}"
        )
    if not image.is_floating_point():
        raise ImageInputError(name, f"expected a float image in [0,1], got {image.dtype}")
    x = image.detach().to(torch.float32)
    if not bool(torch.isfinite(x).all()):
        raise ImageInputError(name, "the image contains NaN or infinite values")
    lo, hi = float(x.min()), float(x.max())
    if lo < -1e-3 or hi > 1.0 + 1e-3:
        raise ImageInputError(name, f"values must be in [0,1], found {lo:.4g}..{hi:.4g}")
    return x.clamp(0.0, 1.0)


def _image_name(image, name: str | None) -> str:
    if name:
        return name
    fn = getattr(image, "filename", None)
    return str(fn) if fn else "image"


# ------------------------------------------------------------------------------ the recipe


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
    """Gaussian blur of [B,C,H,W]; large sigmas run on a downsampled copy (the result is smooth)."""
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
) -> torch.Tensor:
    """One quad of ``photo`` [3,H,W] in [0,1] -> ``[3,size,size]`` in [0,1] (FFHQ steps 2-5)."""
    _, H, W = photo.shape
    quad = np.asarray(quad, dtype=np.float64)
    qsize = float(np.hypot(*(quad[3] - quad[0])))
    img = photo[None]

    # 2. shrink by an integer factor (exact index mapping u = (p + 0.5) / s - 0.5)
    shrink = int(np.floor(qsize / size * 0.5))
    if shrink > 1:
        Hs, Ws = H // shrink, W // shrink
        q = (quad + 0.5) / shrink - 0.5
        qs = qsize / shrink
    else:
        shrink, Hs, Ws, q, qs = 1, H, W, quad.copy(), qsize

    # 3. crop with a border (in shrunk coordinates), decoded from the photo at full resolution
    border = max(int(np.rint(qs * 0.1)), 3)
    c0 = max(int(np.floor(q[:, 0].min())) - border, 0)
    c1 = max(int(np.floor(q[:, 1].min())) - border, 0)
    c2 = min(int(np.ceil(q[:, 0].max())) + border, Ws)
    c3 = min(int(np.ceil(q[:, 1].max())) + border, Hs)
    if c2 <= c0 or c3 <= c1:  # the quad lies outside the photo entirely
        c0, c1, c2, c3 = 0, 0, Ws, Hs
    region = img[:, :, c1 * shrink : c3 * shrink, c0 * shrink : c2 * shrink]
    if shrink > 1:
        region = F.interpolate(
            region, size=(c3 - c1, c2 - c0), mode="bicubic", antialias=True, align_corners=False
        ).clamp(0.0, 1.0)
    q = q - np.array([c0, c1], dtype=np.float64)
    ch, cw = region.shape[-2:]

    # 4. pad: reflect, blend towards a blurred copy and the median colour
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
        region.lerp_(median.expand_as(region), mask.clamp_(0.0, 1.0))
        q = q + np.array([pl, pt], dtype=np.float64)

    # 5. sample the quad at T = m * size (supersampled), then antialiased resize to size
    m = supersample if supersample else int(np.clip(np.ceil(qs / size), 1, 4))
    T = size * m
    dst_to_src = quad_to_matrix(q, T)
    src_to_dst = torch.linalg.inv(dst_to_src)[:2].to(torch.float32)[None].to(region.device)
    out = warp_affine(region, src_to_dst, (T, T), mode="bilinear", padding_mode="zeros")
    if m > 1:
        out = F.interpolate(
            out, size=(size, size), mode="bicubic", antialias=True, align_corners=False
        )
    return out[0].clamp(0.0, 1.0)


def align_detections(
    photo: torch.Tensor,
    detections: list[Detection],
    size: int = 1024,
    *,
    name: str = "image",
    supersample: int | None = None,
) -> list[AlignedFace]:
    """Align given detections of ``photo`` ([3,H,W] in [0,1]); see :func:`align_faces`."""
    out = []
    _, H, W = photo.shape
    for i, d in enumerate(detections):
        quad = ffhq_quad(d.landmarks5)
        crop = _align_quad(photo, quad, size, supersample)
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
    supersample: sampling factor before the final antialiased resize (None: ceil(quad/size),
    1..4, as the FFHQ script's 4x transform_size does).

    Returns a list of :class:`AlignedFace` (``.image`` is ``[3,size,size]`` in [-1,1]).
    Raises :class:`NoFaceError` ("no face found in <name>") when no usable face is found.
    """
    if not isinstance(size, int) or size < 8:
        raise ValueError(f"size must be an integer >= 8, got {size!r}")
    label = _image_name(image, name)
    photo = as_image_tensor(image, label)
    det = get_detector(detector, models_dir)
    dets = det.detect(to_uint8_hwc(photo))
    chosen = select_faces(dets, which, label, min_face, getattr(det, "name", ""))
    return align_detections(photo, chosen, size, name=label, supersample=supersample)
