"""Inversion speed on this machine: e4e at the 1024 px config (18 styles), ReStyle per iteration,
W+ optimisation per 100 steps (a tiny generator and the 256 px config-f generator), the mean code
(10,000 samples) and ArcFace. Random weights (as slow as real ones), batch 1.

    python benchmarks/bench_invert.py [--repeat 3] [--threads 1] [--restyle-size 256]
        [--opt256-steps 3]

Prints a markdown table of medians. The 256 px optimisation is timed over a few steps and scaled
to 100 (said in the row); ReStyle's per-iteration time is (t(3 iters) - t(1 iter)) / 2, i.e. one
encoder pass on [image, reconstruction] plus one decoder pass and the 256 px pool.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]

from jojogan.arcface import ArcFace  # noqa: E402
from jojogan.encoders import E4EEncoder, ReStyleEncoder  # noqa: E402
from jojogan.invert import _MEAN_CACHE, invert, mean_codes  # noqa: E402
from jojogan.stylegan2 import Discriminator, Generator  # noqa: E402


def median_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bench_encoders(rows: list, repeat: int, restyle_size: int) -> None:
    face = torch.rand(1, 3, 256, 256) * 2 - 1
    e4e = E4EEncoder(18, torch.zeros(18, 512)).eval()
    e4e(face)  # warm-up
    t = median_time(lambda: e4e(face), repeat)
    rows.append(("e4e encoder, 1024 config (18 styles)", "s / image", t))

    rs = ReStyleEncoder(Generator(restyle_size).eval(), torch.zeros(512)).eval()
    rs(face, n_iters=1)
    t1 = median_time(lambda: rs(face, n_iters=1), repeat)
    t3 = median_time(lambda: rs(face, n_iters=3), repeat)
    per = (t3 - t1) / 2
    rows.append((f"ReStyle-pSp, first iteration (decoder {restyle_size} px)", "s / image", t1))
    rows.append(
        (f"ReStyle-pSp, each further iteration (decoder {restyle_size} px)", "s / iter", per)
    )
    rows.append(
        ("ReStyle-pSp, 5 iterations (upstream default), estimated", "s / image", t1 + 4 * per)
    )

    arc = ArcFace().eval()
    t = median_time(lambda: arc.embed(face), repeat)
    rows.append(("ArcFace IR-SE50 embed (256 px face -> crop -> 112)", "s / image", t))


def bench_mean(rows: list, repeat: int) -> None:
    g = Generator(1024).eval()

    def fresh() -> None:
        _MEAN_CACHE.clear()
        mean_codes(g)

    t = median_time(fresh, repeat)
    rows.append(("mean code s-bar, 10,000 samples, 1024 config (W + 26 S layers)", "s", t))
    t = median_time(lambda: mean_codes(g), repeat)
    rows.append(("mean code, cached call", "s", t))


def bench_optimize(rows: list, repeat: int, steps256: int) -> None:
    ch = {4: 32, 8: 32, 16: 32, 32: 32}
    tiny = Generator(32, 64, 2, channels=ch).eval()
    dtiny = Discriminator(32, channels=ch).eval()
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    mean_codes(tiny)
    t = median_time(lambda: invert(x, tiny, "optimize", steps=100), repeat)
    rows.append(("optimise W+, tiny 32 px generator (ch 32), pixel loss", "s / 100 steps", t))
    t = median_time(lambda: invert(x, tiny, "optimize", steps=100, discriminator=dtiny), repeat)
    rows.append(("optimise W+, tiny 32 px generator, + D features", "s / 100 steps", t))

    g = Generator(256).eval()
    d = Discriminator(256).eval()
    x = torch.rand(1, 3, 256, 256) * 2 - 1
    mean_codes(g)
    t = median_time(lambda: invert(x, g, "optimize", steps=steps256, discriminator=d), 1)
    rows.append(
        (
            f"optimise W+, 256 px config-f + D features ({steps256} steps, scaled)",
            "s / 100 steps",
            t * 100 / steps256,
        )
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--restyle-size", type=int, default=256, help="ReStyle decoder size")
    p.add_argument("--opt256-steps", type=int, default=3)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rows: list[tuple[str, str, float]] = []
    with torch.no_grad():
        bench_encoders(rows, args.repeat, args.restyle_size)
        bench_mean(rows, args.repeat)
    bench_optimize(rows, args.repeat, args.opt256_steps)
    print(f"\nInversion on CPU, {args.threads} thread(s), torch {torch.__version__}, batch 1, ")
    print(f"medians of {args.repeat} runs\n")
    print("| what | unit | time |")
    print("|---|---|---|")
    for name, unit, value in rows:
        print(f"| {name} | {unit} | {value:.3g} |")


if __name__ == "__main__":
    main()
