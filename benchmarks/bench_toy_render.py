"""Toy-faces renderer speed: images per second per style at 64 and 128 px, on one CPU thread.

    python benchmarks/bench_toy_render.py [--n 64] [--repeat 3] [--sizes 64,128]

Renders the same n identities in every style (batched, 2x supersampling) and prints a markdown
table of medians over `repeat` runs, with each style's speed relative to `photo` at that size.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one thread, as documented

import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

from jojogan.toy.render import STYLES, render_batch, sample_params  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=64, help="faces per timed batch")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--sizes", default="64,128")
    a = ap.parse_args(argv)
    sizes = [int(s) for s in a.sizes.split(",")]
    p = sample_params(0, a.n)
    rates: dict[tuple[str, int], float] = {}
    for size in sizes:
        for style in STYLES:
            render_batch(p[:2], style, size)  # warm caches
            times = []
            for _ in range(a.repeat):
                t0 = time.perf_counter()
                render_batch(p, style, size)
                times.append(time.perf_counter() - t0)
            rates[(style, size)] = a.n / statistics.median(times)
    head = " | ".join(f"{s} px img/s | vs photo" for s in sizes)
    print(f"| style | {head} |")
    print("|---|" + "---|---|" * len(sizes))
    for style in STYLES:
        cells = []
        for size in sizes:
            r = rates[(style, size)]
            cells.append(f"{r:.0f} | {r / rates[('photo', size)]:.2f}x")
        print(f"| {style} | " + " | ".join(cells) + " |")
    print(f"\nmedian of {a.repeat} runs of {a.n} faces, 1 thread, numpy float32, 2x supersampling")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
