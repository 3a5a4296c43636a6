"""Command line: ``python -m jojogan demo`` -- the whole JoJoGAN pipeline on the toy-faces model.

    python -m jojogan demo                       # ink reference, default recipe, jojogan_demo.png
    python -m jojogan demo --style sketch --steps 200 --out sketch.png
    python -m jojogan demo --recipe fine         # finest layers only, luminance loss
    python -m jojogan demo --full-score          # + the benchmark's other baselines and gaze
    python -m jojogan demo --toy-dir runs/toy    # a toy model trained with jojogan.toy.train

The demo renders a toy reference face in a non-photo style (DEFAULT_STYLE: the one the toy
benchmark scores best), inverts it, fine-tunes the toy generator on its paired set (Eq. 1-2),
stylizes unseen photo-style toy faces at three intensities (feature interpolation, Sec. 4) and
writes one labelled PNG grid (a header row; one row per unseen face; columns: the reference,
once, the input photo, the outputs at intensity 1/3, 2/3, 1, the ground truth render in the
style) plus the toy-domain quality score (`jojogan.toy.quality.toy_style_quality`, also used
by benchmarks/bench_toy_quality.py) and one line explaining it. Each phase prints a progress line
with the seconds elapsed. No download: it needs the toy model's weights, shipped in
jojogan/toy/weights/ (or trained by `python -m jojogan.toy.train`).
The recipe is `jojogan.toy.recipes.RECIPES[DEFAULT_RECIPE]` ("refined": the released code's
fine-tune, with the reference's code matched to its edges and the inputs' codes refined toward
their photos) unless flags say otherwise (`jojogan.toy.flags.add_recipe_arguments`).

This module only parses arguments: the demo's pipeline is `jojogan.toy.demo.run_demo`, the toy
model's one loader `jojogan.toy.model.load_toy`; ``python -m jojogan download`` is
`jojogan.weights.download_main`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .toy.demo import DEMO_FACES, run_demo
from .toy.flags import add_recipe_arguments, add_style_module_argument
from .toy.recipes import DEFAULT_STYLE
from .weights import download_main

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["download"]:  # the models command lives with the weights registry
        return download_main(argv[1:])
    ap = argparse.ArgumentParser(prog="python -m jojogan", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    dm = sub.add_parser("demo", help="the whole pipeline on the toy-faces model, offline")
    sub.add_parser(
        "download",
        help="get model files: download NAME... | --workflow FILE | --list (download --help)",
        add_help=False,
    )
    dm.add_argument("--toy-dir", default=None, help="folder with toy_stylegan2.safetensors")
    dm.add_argument(
        "--style", default=DEFAULT_STYLE, help=f"reference style (toy renderer; {DEFAULT_STYLE})"
    )
    add_recipe_arguments(dm)
    add_style_module_argument(dm)
    dm.add_argument(
        "--n",
        type=int,
        default=DEMO_FACES,
        help=f"unseen faces: rows of the grid, faces scored ({DEMO_FACES})",
    )
    dm.add_argument("--seed", type=int, default=0)
    dm.add_argument("--out", default="jojogan_demo.png")
    dm.add_argument("--device", default="auto")
    dm.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: every core but one, at least 1; OMP_NUM_THREADS if set)",
    )
    dm.add_argument(
        "--full-score",
        action="store_true",
        help="also the benchmark's other measures: the warped reference, the colour- and "
        "identity-copy baselines and the gaze errors (about 7 s more)",
    )
    dm.add_argument(
        "--no-gaze", action="store_true", help="with --full-score: skip the gaze measurement"
    )
    args = ap.parse_args(argv)
    if args.cmd == "demo":
        if args.n < 1:
            print("demo: --n must be >= 1", file=sys.stderr)
            return 2
        return run_demo(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
