"""JoJoGAN pipeline speed and memory: the library's fine-tune vs the plain (released-code) path.

Rows (each configuration in its own subprocess, so peak memory is its own):

1. Toy one-shot fine-tune: `jojogan.finetune.finetune` for 300 steps (default) at 64 px on the
   toy model (the trained one from jojogan/toy/weights or --toy-dir when present, else a
   toy-sized random model of `ToyConfig()`: same speed), one reference. Wall seconds in all.
2. Seconds per step at 256 px (and 1024 px with --big), FFHQ config-f widths, random weights,
   one reference, median of --steps steps after one warm-up step:
   - "pipeline": finetune() (discriminator frozen, reference features computed once, mapping
     not trained, the fast ops path);
   - "pipeline, plain ops": the same with `jojogan.ops.set_fast_ops(False)`;
   - "plain path": the released notebook's loop on our modules: Adam on every generator
     parameter (mapping included), discriminator weights receiving gradients (not frozen), the
     reference's features recomputed every step, plain ops.
3. Peak memory at 1, 4 and 8 references (--mem-size px, one fine-tune step): finetune() with
   one reference per chunk (gradient accumulation) vs all references in one batch (what the
   released code does). CPU: growth of the peak RSS over the set-up (run with glibc's
   MALLOC_MMAP_THRESHOLD_=65536 so RSS follows live tensors); CUDA: peak allocated.

    python benchmarks/bench_pipeline.py                 # toy 300 steps, 256 px, memory at 256
    python benchmarks/bench_pipeline.py --big           # adds 1024 px (minutes per step on CPU)
    python benchmarks/bench_pipeline.py --toy-steps 300 --steps 3 --mem-size 128 --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# glibc keeps freed heap pages mapped, so the peak RSS of a CPU run grows with the number of
# allocations, not with live memory; returning large blocks to the OS makes RSS track tensors.
_MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536"}


def _device(name: str):
    from jojogan.devices import pick_device

    return pick_device(name)


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _ffhq_models(size: int, dev):
    from jojogan.stylegan2 import Discriminator, Generator

    g = Generator(size, 512, 8, 2).to(dev).eval()
    d = Discriminator(size, 2).to(dev).eval()
    return g, d


def _toy_models(toy_dir: str | None, dev):
    from jojogan.toy import ToyWeightsMissing
    from jojogan.toy.model import ToyConfig, build_models, load_toy

    try:
        g, d, _enc, _avg, _cfg = load_toy(toy_dir, dev)
        return g, d, "trained toy model"
    except ToyWeightsMissing:
        g, d, _ = build_models(ToyConfig())
        return g.to(dev).eval(), d.to(dev).eval(), "toy-sized random model (no trained one)"


def _inputs(g, n: int, dev):
    import torch

    gen = torch.Generator().manual_seed(0)
    refs = (torch.rand(n, 3, g.size, g.size, generator=gen) * 2 - 1).to(dev)
    with torch.no_grad():
        w = g.mapping(torch.randn(n, g.style_dim, generator=gen).to(dev))
    return refs, w[:, None].expand(-1, g.n_latent, -1).contiguous()


def _sync(dev) -> None:
    import torch

    if dev.type == "cuda":
        torch.cuda.synchronize()


def _worker(cfg: dict) -> dict:
    import torch

    from jojogan.finetune import FinetuneSettings, finetune
    from jojogan.ops import set_fast_ops

    torch.set_num_threads(cfg["threads"])
    torch.manual_seed(0)
    dev = _device(cfg["device"])
    kind = cfg["kind"]
    out: dict = {"device": str(dev)}
    if kind == "toy":
        g, d, what = _toy_models(cfg.get("toy_dir"), dev)
        out["model"] = what
    else:
        g, d = _ffhq_models(cfg["size"], dev)
    n_ref = cfg.get("refs", 1)
    refs, codes = _inputs(g, n_ref, dev)
    set_fast_ops(cfg.get("fast", True))
    base_rss = _rss_mb()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base_cuda = torch.cuda.memory_allocated()
    stamps: list[float] = []

    def cb(step, loss, preview):
        _sync(dev)
        stamps.append(time.perf_counter())

    if cfg["path"] == "pipeline":
        st = FinetuneSettings(steps=cfg["steps"], refs_per_chunk=cfg.get("chunk", 1))
        _sync(dev)
        t0 = time.perf_counter()
        finetune(g, d, refs, codes, st, callback=cb)
        _sync(dev)
        total = time.perf_counter() - t0
    else:  # the released notebook's loop on our modules
        import torch.nn.functional as F

        from jojogan.finetune import default_feature_layers
        from jojogan.mixing import build_mask

        taps = default_feature_layers(d)
        mixed = build_mask(g, "w+", "full").mixed
        opt = torch.optim.Adam(g.parameters(), lr=2e-3, betas=(0.0, 0.99))
        _sync(dev)
        t0 = time.perf_counter()
        for _ in range(cfg["steps"]):
            z = torch.randn(n_ref, g.style_dim, device=dev)
            w_rand = g.mapping(z)[:, None].expand(-1, g.n_latent, -1)
            ws = codes.clone()
            ws[:, mixed] = w_rand[:, mixed]
            img = g.synthesis(ws, noise_mode="random")
            with torch.no_grad():
                real = d.features(refs, taps)
            fake = d.features(img, taps)
            loss = sum(F.l1_loss(a, b) for a, b in zip(fake, real, strict=True)) / len(taps)
            opt.zero_grad()
            loss.backward()
            opt.step()
            cb(0, 0.0, None)
        total = time.perf_counter() - t0
    steps = [b - a for a, b in zip([t0, *stamps[:-1]], stamps, strict=True)]
    out["total_s"] = total
    out["step_s"] = statistics.median(steps[1:]) if len(steps) > 1 else steps[0]
    out["peak_rss_growth_mb"] = _rss_mb() - base_rss
    out["peak_rss_mb"] = _rss_mb()
    if dev.type == "cuda":
        out["peak_cuda_mb"] = (torch.cuda.max_memory_allocated() - base_cuda) / 2**20
    return out


def _run(cfg: dict, env: dict | None = None) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(cfg)]
    r = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})})
    if r.returncode != 0:
        return {"error": (r.stderr or r.stdout).strip().splitlines()[-1:]}
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--toy-steps", type=int, default=300)
    ap.add_argument("--toy-plain-steps", type=int, default=30, help="plain path, toy (per step)")
    ap.add_argument("--toy-dir", default=None)
    ap.add_argument("--steps", type=int, default=3, help="timed steps per size (after 1 warm-up)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[256])
    ap.add_argument("--big", action="store_true", help="add 1024 px")
    ap.add_argument("--mem-size", type=int, default=256)
    ap.add_argument("--mem-refs", type=int, nargs="+", default=[1, 4, 8])
    ap.add_argument("--skip", nargs="*", default=[], choices=["toy", "speed", "memory"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="auto")
    a = ap.parse_args()
    if a.worker:
        print(json.dumps(_worker(json.loads(a.worker))))
        return
    common = {"threads": a.threads, "device": a.device}
    rows = []
    if "toy" not in a.skip:
        t = _run(
            {
                **common,
                "kind": "toy",
                "path": "pipeline",
                "steps": a.toy_steps,
                "toy_dir": a.toy_dir,
            }
        )
        p = _run(
            {
                **common,
                "kind": "toy",
                "path": "plain",
                "steps": a.toy_plain_steps,
                "fast": False,
                "toy_dir": a.toy_dir,
            }
        )
        print(f"toy model: {t.get('model', t)}; device {t.get('device')}", file=sys.stderr)
        rows.append(("toy 64 px, 1 reference", f"pipeline, {a.toy_steps} steps", t))
        rows.append(("toy 64 px, 1 reference", f"plain path ({a.toy_plain_steps} steps)", p))
    sizes = list(a.sizes) + ([1024] if a.big and 1024 not in a.sizes else [])
    if "speed" not in a.skip:
        for s in sizes:
            n = a.steps + 1
            for label, cfg in (
                ("pipeline", {"path": "pipeline", "fast": True}),
                ("pipeline, plain ops", {"path": "pipeline", "fast": False}),
                ("plain path", {"path": "plain", "fast": False}),
            ):
                r = _run({**common, "kind": "ffhq", "size": s, "steps": n, **cfg})
                rows.append((f"{s} px, 1 reference", label, r))
    mem = []
    if "memory" not in a.skip:
        for n in a.mem_refs:
            for label, chunk in (("chunks of 1 (accumulated)", 1), ("one batch", n)):
                r = _run(
                    {
                        **common,
                        "kind": "ffhq",
                        "size": a.mem_size,
                        "steps": 1,
                        "path": "pipeline",
                        "refs": n,
                        "chunk": chunk,
                    },
                    _MALLOC_ENV,
                )
                mem.append((n, label, r))

    print("| configuration | path | wall s (all steps) | s / step | vs plain path |")
    print("|---|---|---|---|---|")
    plain = {c: r.get("step_s") for c, lab, r in rows if lab.startswith("plain path")}
    for conf, label, r in rows:
        if "error" in r:
            print(f"| {conf} | {label} | error: {r['error']} | | |")
            continue
        base = plain.get(conf)
        ratio = (
            f"x{base / r['step_s']:.2f} faster" if base and not label.startswith("plain") else ""
        )
        print(f"| {conf} | {label} | {r['total_s']:.1f} | {r['step_s']:.3f} | {ratio} |")
    if mem:
        key = (
            "peak_cuda_mb" if any("peak_cuda_mb" in r for _, _, r in mem) else "peak_rss_growth_mb"
        )
        print()
        print(
            f"| references ({a.mem_size} px, 1 step) | batching | peak memory growth MB "
            f"({'CUDA allocated' if key == 'peak_cuda_mb' else 'RSS'}) | s / step |"
        )
        print("|---|---|---|---|")
        for n, label, r in mem:
            if "error" in r:
                print(f"| {n} | {label} | error: {r['error']} | |")
            else:
                print(f"| {n} | {label} | {r[key]:.0f} | {r['total_s']:.1f} |")


if __name__ == "__main__":
    main()
