"""Seconds per JoJoGAN fine-tune step on this machine: plain vs fast op path (and the reference).

Paths: "plain" (reference-semantics ops), "fast" (the fast ops), "fast-nhwc" (plus channels-last
activations, the library's CPU default), "fast-nhwc-bf16" (plus bf16 autocast, reduced precision),
"reference" (rosinality + JoJoGAN's CPU ops, D frozen, target features once), "reference-released"
(as JoJoGAN's notebook runs it: D not frozen, target features recomputed every step).

One step (Chong & Forsyth 2022, Sec. 3.3): G.synthesis(ws, noise "const") at batch 1, frozen
discriminator features at convs (1, 3, 4, 5) (those that exist below 128 px), mean L1 against
precomputed target features, backward, Adam(lr 2e-3, betas (0, 0.99)) on the synthesis weights.
Full FFHQ config f widths (channel multiplier 2, style_dim 512) at every size. Each configuration
runs in its own subprocess (so peak RSS is its own); the table prints medians after a warm-up.

    python benchmarks/bench_stylegan2.py --sizes 64 256 1024 --steps 3
    python benchmarks/bench_stylegan2.py --reference PATH/stylegan2-pytorch --jojogan PATH/JoJoGAN
    python benchmarks/bench_stylegan2.py --sizes 1024 --steps 2 --reference ... --jojogan ... \
        --modes fast fast-nhwc fast-nhwc-bf16 reference reference-released

--reference/--jojogan: checkouts of rosinality's stylegan2-pytorch and JoJoGAN (for its CPU
ops); with them the reference implementation is timed side by side (never vendored here).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _worker(size: int, mode: str, steps: int, warmup: int, threads: int, ref_paths) -> dict:
    import torch
    import torch.nn.functional as F

    from jojogan.devices import precision
    from jojogan.ops import channels_last, set_fast_ops
    from jojogan.stylegan2 import Discriminator, Generator

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    if mode.startswith("reference"):
        path = ROOT / "tests" / "fixtures" / "stylegan2" / "make_fixtures.py"
        spec = importlib.util.spec_from_file_location("make_fixtures", path)
        mf = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mf)
        ref = mf.load_reference(Path(ref_paths[0]), Path(ref_paths[1] or ref_paths[0]))
        g, d = ref.Generator(size, 512, 8), ref.Discriminator(size)

        def synth(ws):
            return g([ws], input_is_latent=True, randomize_noise=False)[0]

        def feats(img, layers):  # JoJoGAN's Discriminator.forward taps
            return mf.features(d, img, layers)
    else:
        set_fast_ops(mode.startswith("fast"))
        g, d = Generator(size), Discriminator(size)

        def synth(ws):
            return g.synthesis(ws, noise_mode="const")

        def feats(img, layers):
            return d.features(img, layers)

    layers = tuple(i for i in (1, 3, 4, 5) if i < len(d.convs))
    # "reference-released": as JoJoGAN's released loop runs it, D's weights still require grad
    # and the target's features are recomputed (without grad) every step.
    released = mode == "reference-released"
    d.requires_grad_(released)
    ws = torch.randn(1, g.n_latent, 512)
    target_img = torch.rand(1, 3, size, size) * 2 - 1
    with torch.no_grad():
        target = feats(target_img, layers)
    params = [p for n, p in g.named_parameters() if not n.startswith("style.")]
    for n, p in g.named_parameters():
        p.requires_grad_(not n.startswith("style."))
    opt = torch.optim.Adam(params, lr=2e-3, betas=(0.0, 0.99))
    nhwc = "nhwc" in mode  # jojogan.ops.channels_last: NHWC activations
    mixed = "bf16" if mode.endswith("bf16") else "float32"  # jojogan.devices.precision
    wall, cpu = [], []
    for i in range(warmup + steps):
        t0, c0 = time.perf_counter(), time.process_time()
        if released:
            with torch.no_grad():
                target = feats(target_img, layers)
        with channels_last(nhwc):
            with precision("cpu", mixed):
                out = feats(synth(ws), layers)
            loss = sum(F.l1_loss(a.float(), b) for a, b in zip(out, target, strict=True))
            loss = loss / len(out)
            opt.zero_grad(set_to_none=True)
            loss.backward()
        opt.step()
        if i >= warmup:
            wall.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    rss_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    return {
        "wall": statistics.median(wall),
        "cpu": statistics.median(cpu),
        "rss_gb": rss_gb,
        "layers": list(layers),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 256])
    ap.add_argument("--steps", type=int, default=3, help="timed steps per configuration")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1, help="torch threads per run")
    ap.add_argument("--reference", type=str, default=None, help="rosinality checkout to time too")
    ap.add_argument("--jojogan", type=str, default=None, help="JoJoGAN checkout (CPU ops)")
    ap.add_argument(
        "--modes",
        nargs="+",
        default=None,
        choices=["plain", "fast", "fast-nhwc", "fast-nhwc-bf16", "reference", "reference-released"],
        help="default: plain fast (+ reference with --reference)",
    )
    ap.add_argument("--worker", nargs=2, metavar=("SIZE", "MODE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    ref_paths = (args.reference, args.jojogan)
    if args.worker:
        res = _worker(
            int(args.worker[0]), args.worker[1], args.steps, args.warmup, args.threads, ref_paths
        )
        print(json.dumps(res))
        return

    modes = args.modes or ["plain", "fast"] + (["reference"] if args.reference else [])
    if any(m.startswith("reference") for m in modes) and not args.reference:
        sys.exit("--modes reference* needs --reference PATH (a rosinality checkout)")
    rows = []
    for size in args.sizes:
        res = {}
        for mode in modes:
            cmd = [
                sys.executable,
                __file__,
                "--worker",
                str(size),
                mode,
                "--steps",
                str(args.steps),
            ]
            cmd += ["--warmup", str(args.warmup), "--threads", str(args.threads)]
            if args.reference:
                cmd += ["--reference", args.reference]
            if args.jojogan:
                cmd += ["--jojogan", args.jojogan]
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                sys.exit(f"{size} px {mode} failed:\n{done.stderr[-2000:]}")
            res[mode] = json.loads(done.stdout.strip().splitlines()[-1])
            print(f"# {size} px {mode}: {res[mode]}", file=sys.stderr)
        rows.append((size, res))

    # Ratios use CPU-seconds: on a shared machine wall time also counts other jobs' load.
    head = "| size | path | CPU-s/step | wall s/step | peak RSS GB | plain/this (CPU-s) |"
    refs = [m for m in ("reference", "reference-released") if m in modes]
    for m in refs:
        head += f" {m}/this (CPU-s) |"
    print(f"\nJoJoGAN fine-tune step, batch 1, {args.threads} thread(s), median of {args.steps}:\n")
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for size, res in rows:
        for mode in modes:
            r = res[mode]
            line = f"| {size} | {mode} | {r['cpu']:.2f} | {r['wall']:.2f} | {r['rss_gb']:.2f} |"
            line += f" {res['plain']['cpu'] / r['cpu']:.2f} |" if "plain" in res else " - |"
            for m in refs:
                line += f" {res[m]['cpu'] / r['cpu']:.2f} |"
            print(line)


if __name__ == "__main__":
    main()
