"""Face detection + FFHQ alignment speed: ours (dlib on a downscaled copy + kornia) against the
classic recipe (``util.align_face``: dlib HOG at upsample 1 on the full photo + PIL/scipy, our
transcription in tests/ffhq_recipe.py), at 0.5, 2 and 6 MP and a 6 MP close-up.

Columns: ours (detect; align alone, given the detection; detect + align), ours with the recipe's
own detection settings (HOG at upsample 1 on the whole photo: the same box, so the same landmarks
as the recipe on the same pixels), and the classic recipe.

    python benchmarks/bench_faces.py [--repeat 3] [--classic-repeat 1] [--size 1024]

Prints a markdown table of medians (seconds per image) and the ratio classic / ours.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def _ffhq_recipe():
    """tests/ffhq_recipe.py (the FFHQ alignment recipe, transcribed), loaded from its file."""
    spec = importlib.util.spec_from_file_location("ffhq_recipe", ROOT / "tests" / "ffhq_recipe.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ffhq_align_pil = _ffhq_recipe().ffhq_align_pil


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

    from jojogan.faces import DlibDetector, align_detections, align_faces

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "1")))
    ours = DlibDetector()
    recipe_det = DlibDetector(upsample=1, detect_max_side=1 << 30)
    hog = dlib.get_frontal_face_detector()
    predictor = ours._predictor
    rows = []
    cases = [(f"{mp:g} MP", photo_of(mp)) for mp in args.mp]
    cases += [(f"{mp:g} MP close-up", closeup_of(mp)) for mp in args.closeup_mp]
    for label, img in cases:
        arr = np.array(img)
        t_img = torch.from_numpy(arr).permute(2, 0, 1).float() / 255
        dets = ours.detect(arr)[:1]

        def run_ours(t_img=t_img):
            return align_faces(t_img, args.size, detector=ours)

        def run_align(t_img=t_img, dets=dets):
            return align_detections(t_img, dets, args.size)

        def run_detect(arr=arr):
            return ours.detect(arr)

        def run_recipe_det(t_img=t_img):
            return align_faces(t_img, args.size, detector=recipe_det)

        def run_classic_detect(arr=arr):
            dets = hog(arr, 1)
            return predictor(arr, dets[-1])

        def run_classic(arr=arr, img=img):
            shape = run_classic_detect(arr)
            lm = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)
            return ffhq_align_pil(img, lm, args.size)

        run_ours()  # warm-up
        t_det = _median_time(run_detect, args.repeat)
        t_align = _median_time(run_align, args.repeat)
        t_ours = _median_time(run_ours, args.repeat)
        t_rdet = _median_time(run_recipe_det, args.classic_repeat)
        t_cdet = _median_time(run_classic_detect, args.classic_repeat)
        t_classic = _median_time(run_classic, args.classic_repeat)
        rows.append((label, img.size, t_det, t_align, t_ours, t_rdet, t_cdet, t_classic))
        print(f"done {label}", file=sys.stderr, flush=True)

    print(f"\nFace detection + FFHQ alignment to {args.size} px, seconds per image (median), "
          f"torch threads {torch.get_num_threads()}\n")  # fmt: skip
    print("| photo | ours: detect | ours: align | ours: detect + align "
          "| ours, recipe's detection: detect + align | classic: detect (HOG up=1) "
          "| classic: detect + align (PIL+scipy) | classic / ours |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for label, (w, h), t_det, t_align, t_ours, t_rdet, t_cdet, t_classic in rows:
        print(
            f"| {label} ({w}x{h}) | {t_det:.2f} | {t_align:.3f} | {t_ours:.2f} | {t_rdet:.2f} "
            f"| {t_cdet:.2f} | {t_classic:.2f} | {t_classic / t_ours:.1f}x |"
        )


if __name__ == "__main__":
    main()
