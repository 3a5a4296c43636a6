"""Face detection + FFHQ alignment speed: ours (dlib on a downscaled copy + kornia) against the
classic recipe (dlib HOG at upsample 1 on the full photo + PIL/scipy), at 0.5, 2 and 6 MP.

Also holds `ffhq_align_pil`, our own PIL version of the FFHQ dataset script's recipe (Pillow 10+
API), used by tests/test_faces.py as the parity reference.

    python benchmarks/bench_faces.py [--repeat 3] [--classic-repeat 1] [--size 1024]

Prints a markdown table of medians (seconds per image) and the ratio classic / ours.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def ffhq_align_pil(
    img: Image.Image,
    lm68: np.ndarray,
    output_size: int = 1024,
    transform_size: int | None = None,
    blur: str = "scipy",
) -> Image.Image:
    """The FFHQ recipe with PIL, written from its description: oriented quad from eye means and
    mouth corners; integer shrink (LANCZOS); crop with border; reflect pad + blur/median blend;
    QUAD transform (BILINEAR) at ``transform_size`` (default 4x output); LANCZOS to output."""
    transform_size = transform_size or 4 * output_size
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
    quad = np.stack([c - x - y, c - x + y, c + x + y, c + x - y])
    qsize = np.hypot(*x) * 2

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


def astronaut() -> Image.Image:
    import skimage

    return Image.open(Path(skimage.__file__).parent / "data" / "astronaut.png").convert("RGB")


def photo_of(megapixels: float) -> Image.Image:
    """Astronaut upscaled (LANCZOS) to ~megapixels, 4:3 with a mirrored margin, its top 10 %
    cut so that the crop leaves the photo (the recipe's pad + blur step runs, as it does for the
    many selfies where the hair touches the top edge)."""
    base = astronaut()
    h = int(round((megapixels * 1e6 * 3 / 4) ** 0.5))
    w = int(round(h * 4 / 3))
    face = base.resize((h, h), Image.Resampling.LANCZOS)
    face = face.crop((0, h // 10, h, h)).resize((h, h), Image.Resampling.LANCZOS)
    out = Image.new("RGB", (w, h))
    out.paste(face, ((w - h) // 2, 0))
    out.paste(face.transpose(Image.Transpose.FLIP_LEFT_RIGHT).crop((h - (w - h) // 2, 0, h, h)))
    return out


def closeup_of(megapixels: float) -> Image.Image:
    """A close-up: the astronaut's head region (233x175 px) upscaled to ~megapixels (4:3)."""
    h = int(round((megapixels * 1e6 * 3 / 4) ** 0.5))
    w = int(round(h * 4 / 3))
    return astronaut().crop((110, 0, 343, 175)).resize((w, h), Image.Resampling.LANCZOS)


def _median_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--classic-repeat", type=int, default=1)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--mp", type=float, nargs="*", default=[0.5, 2.0, 6.0])
    ap.add_argument("--closeup-mp", type=float, nargs="*", default=[6.0])
    args = ap.parse_args()

    import dlib
    import torch

    from jojogan.faces import DlibDetector, align_faces

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "1")))
    ours = DlibDetector()
    hog = dlib.get_frontal_face_detector()
    predictor = ours._predictor
    rows = []
    cases = [(f"{mp:g} MP", photo_of(mp)) for mp in args.mp]
    cases += [(f"{mp:g} MP close-up", closeup_of(mp)) for mp in args.closeup_mp]
    for label, img in cases:
        arr = np.array(img)
        t_img = torch.from_numpy(arr).permute(2, 0, 1).float() / 255

        def run_ours(t_img=t_img):
            return align_faces(t_img, args.size, detector=ours)

        def run_detect(arr=arr):
            return ours.detect(arr)

        def run_classic_detect(arr=arr):
            dets = hog(arr, 1)
            return predictor(arr, dets[0])

        def run_classic(arr=arr, img=img):
            shape = run_classic_detect(arr)
            lm = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)
            return ffhq_align_pil(img, lm, args.size)

        run_ours()  # warm-up
        t_det = _median_time(run_detect, args.repeat)
        t_ours = _median_time(run_ours, args.repeat)
        t_cdet = _median_time(run_classic_detect, args.classic_repeat)
        t_classic = _median_time(run_classic, args.classic_repeat)
        rows.append((label, img.size, t_det, t_ours, t_cdet, t_classic))
        print(f"done {label}", file=sys.stderr, flush=True)

    print(f"\nFace detection + FFHQ alignment to {args.size} px, seconds per image (median), "
          f"torch threads {torch.get_num_threads()}\n")  # fmt: skip
    print("| photo | ours: detect | ours: detect + align | classic: detect (HOG up=1) "
          "| classic: detect + align (PIL+scipy) | classic / ours |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for label, (w, h), t_det, t_ours, t_cdet, t_classic in rows:
        print(
            f"| {label} ({w}x{h}) | {t_det:.2f} | {t_ours:.2f} | {t_cdet:.2f} | {t_classic:.2f} "
            f"| {t_classic / t_ours:.1f}x |"
        )


if __name__ == "__main__":
    main()
