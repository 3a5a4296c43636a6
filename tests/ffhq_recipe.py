"""The FFHQ alignment recipe as JoJoGAN's ``util.align_face`` runs it, written with PIL, numpy and
scipy (Pillow 10+ API): the parity reference for ``jojogan.faces.align`` (tests/test_faces.py,
benchmarks/bench_faces.py). Our own transcription from the recipe's description; see
docs/alignment.md.

- :func:`recipe_landmarks`: dlib's HOG detector at upsample 1 on the whole photo, the 68-point
  predictor on its *last* detection (the recipe loops over the detections and keeps the last).
- :func:`ffhq_align_pil`: oriented quad from the eye means and mouth corners; integer shrink
  (LANCZOS of the whole photo to ``rint(size / s)``, quad divided by ``s``); crop with a border;
  reflect pad + blur/median blend, stored as uint8; QUAD transform (BILINEAR) at
  ``transform_size``, then LANCZOS to the output size when it is smaller. ``util.align_face``
  sets ``transform_size = output_size`` (its default here); the FFHQ dataset script used 4096
  (``transform_size=4 * output_size``).
- :func:`recipe_branches`: which steps (shrink, crop, pad) the recipe runs for a photo.
"""

from __future__ import annotations

import numpy as np
from PIL import Image


def recipe_quad(lm68: np.ndarray) -> tuple[np.ndarray, float]:
    """The recipe's oriented square ``[4,2]`` (TL, BL, BR, TR) and its side from 68 landmarks."""
    lm = np.asarray(lm68, dtype=np.float64)
    eye_l, eye_r = lm[36:42].mean(0), lm[42:48].mean(0)
    eye_avg, eye_to_eye = (eye_l + eye_r) / 2, eye_r - eye_l
    mouth_avg = (lm[48] + lm[54]) / 2
    eye_to_mouth = mouth_avg - eye_avg
    x = eye_to_eye - np.array([-eye_to_mouth[1], eye_to_mouth[0]])
    x /= np.hypot(*x)
    x *= max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
    y = np.array([-x[1], x[0]])
    c = eye_avg + eye_to_mouth * 0.1
    return np.stack([c - x - y, c - x + y, c + x + y, c + x - y]), float(np.hypot(*x) * 2)


def recipe_landmarks(rgb: np.ndarray, predictor) -> np.ndarray:
    """68 landmarks as the recipe finds them (``[68,2]`` int): HOG at upsample 1 on the whole
    photo, the predictor on the last detection. ``rgb``: uint8 ``[H,W,3]``."""
    import dlib

    dets = dlib.get_frontal_face_detector()(rgb, 1)
    assert len(dets) > 0, "Face not detected"
    shape = predictor(rgb, dets[-1])
    return np.array([[p.x, p.y] for p in shape.parts()])


def recipe_branches(size_wh: tuple[int, int], lm68: np.ndarray, output_size: int) -> dict:
    """``{"shrink": s (0 when none), "crop": bool, "pad": bool}``: the steps the recipe runs."""
    quad, qsize = recipe_quad(lm68)
    w, h = size_wh
    shrink = int(np.floor(qsize / output_size * 0.5))
    out = {"shrink": shrink if shrink > 1 else 0}
    if shrink > 1:
        w, h = int(np.rint(w / shrink)), int(np.rint(h / shrink))
        quad, qsize = quad / shrink, qsize / shrink
    border = max(int(np.rint(qsize * 0.1)), 3)
    lo, hi = np.floor(quad.min(0)).astype(int), np.ceil(quad.max(0)).astype(int)
    crop = (max(lo[0] - border, 0), max(lo[1] - border, 0), min(hi[0] + border, w))
    crop += (min(hi[1] + border, h),)
    out["crop"] = bool(crop[2] - crop[0] < w or crop[3] - crop[1] < h)
    if out["crop"]:
        quad = quad - crop[:2]
        w, h = crop[2] - crop[0], crop[3] - crop[1]
    lo, hi = np.floor(quad.min(0)).astype(int), np.ceil(quad.max(0)).astype(int)
    pad = (-lo[0] + border, -lo[1] + border, hi[0] - w + border, hi[1] - h + border)
    out["pad"] = bool(max(max(p, 0) for p in pad) > border - 4)
    return out


def ffhq_align_pil(
    img: Image.Image,
    lm68: np.ndarray,
    output_size: int = 1024,
    transform_size: int | None = None,
    blur: str = "scipy",
) -> Image.Image:
    """The recipe on an RGB PIL image with given 68 landmarks -> ``output_size`` RGB image.

    transform_size: None = ``output_size`` (``util.align_face``); 4x for the FFHQ dataset's.
    blur: ``"scipy"`` (the recipe's ``gaussian_filter``) or ``"pil"`` (fast, on uint8).
    """
    transform_size = transform_size or output_size
    quad, qsize = recipe_quad(lm68)

    shrink = int(np.floor(qsize / output_size * 0.5))
    if shrink > 1:
        rsize = (int(np.rint(img.size[0] / shrink)), int(np.rint(img.size[1] / shrink)))
        img = img.resize(rsize, Image.Resampling.LANCZOS)
        quad /= shrink
        qsize /= shrink

    border = max(int(np.rint(qsize * 0.1)), 3)
    lo, hi = np.floor(quad.min(0)).astype(int), np.ceil(quad.max(0)).astype(int)
    crop = (
        max(lo[0] - border, 0),
        max(lo[1] - border, 0),
        min(hi[0] + border, img.size[0]),
        min(hi[1] + border, img.size[1]),
    )
    if crop[2] - crop[0] < img.size[0] or crop[3] - crop[1] < img.size[1]:
        img = img.crop(crop)
        quad -= crop[0:2]

    lo, hi = np.floor(quad.min(0)).astype(int), np.ceil(quad.max(0)).astype(int)
    pad = (
        max(-lo[0] + border, 0),
        max(-lo[1] + border, 0),
        max(hi[0] - img.size[0] + border, 0),
        max(hi[1] - img.size[1] + border, 0),
    )
    if max(pad) > border - 4:
        pad = np.maximum(pad, int(np.rint(qsize * 0.3)))
        a = np.pad(np.float32(img), ((pad[1], pad[3]), (pad[0], pad[2]), (0, 0)), "reflect")
        h, w, _ = a.shape
        yy, xx = np.ogrid[:h, :w]
        xx, yy = xx[..., None].astype(np.float32), yy[..., None].astype(np.float32)
        mask = np.maximum(
            1.0 - np.minimum(xx / pad[0], (w - 1 - xx) / pad[2]),
            1.0 - np.minimum(yy / pad[1], (h - 1 - yy) / pad[3]),
        )
        sigma = qsize * 0.02
        if blur == "scipy":
            import scipy.ndimage

            blurred = scipy.ndimage.gaussian_filter(a, [sigma, sigma, 0])
        else:  # PIL's blur on uint8 (fast, quantised)
            from PIL import ImageFilter

            pil = Image.fromarray(np.uint8(np.clip(np.rint(a), 0, 255)))
            blurred = np.float32(pil.filter(ImageFilter.GaussianBlur(sigma)))
        a += (blurred - a) * np.clip(mask * 3.0 + 1.0, 0.0, 1.0)
        a += (np.median(a, axis=(0, 1)) - a) * np.clip(mask, 0.0, 1.0)
        img = Image.fromarray(np.uint8(np.clip(np.rint(a), 0, 255)), "RGB")
        quad += pad[:2]

    img = img.transform(
        (transform_size, transform_size),
        Image.Transform.QUAD,
        (quad + 0.5).flatten().tolist(),
        Image.Resampling.BILINEAR,
    )
    if output_size < transform_size:
        img = img.resize((output_size, output_size), Image.Resampling.LANCZOS)
    return img
