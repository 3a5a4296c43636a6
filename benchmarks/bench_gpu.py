"""JoJoGAN speed on one GPU (issues 8, 30): the reference vs our fine-tune and stylize, one table.

Measured in one run on one machine, each configuration in its own subprocess (its own peak
memory; a failure such as the reference's out-of-memory at 4 references prints "failed: <why>"
in its row instead of ending the run):

* reference: rosinality's StyleGAN2 (`model.py`) with JoJoGAN's ops, run as the authors ship the
  loop (stylize.ipynb): Adam on every generator parameter (the mapping too; JoJoGAN's
  `get_latent` runs without grad, so its weights get no gradient), the discriminator not frozen
  (its weights receive gradients), the references' features recomputed every step, all
  references in one batch, random noise (train mode), cudnn.benchmark on, torch's default
  TF32 flags. Loaded from checkouts given with --reference/--jojogan (never vendored): JoJoGAN's
  pure-PyTorch CPU ops by default; with --reference-native JoJoGAN's `op/` CUDA kernels, which
  compile with nvcc + ninja at import (in the background while our rows run; on failure or
  timeout the pure-PyTorch ops are used and a note says so).
* ours: `jojogan.finetune.finetune` (the real pipeline function; frozen discriminator, features
  of the references once, one reference per chunk) for every precision ("float32", "tf32",
  "bf16") x channels_last (off, on) at 1 reference, then the fastest configuration at every
  other --refs count (peak memory against the number of references); on CUDA the fastest
  configuration again with cudnn.benchmark on (the library leaves it off; the reference's
  notebook turns it on); with --compile, each precision's faster layout with
  `FinetuneSettings(compile=True)` (`torch.compile` of the generator + discriminator forward;
  compile time apart), fastest first.
* stylize: one aligned face (random, at the generator's size) encoded with an e4e encoder of
  random weights (`jojogan.encoders.E4EEncoder`, via `jojogan.invert.invert`) and generated at
  full size with `jojogan.stylize.stylize`: latency per face; throughput at --batch faces per
  call, encode + generate (faces/s) and generate alone (images/s).
* with --reference-native, the reference once more at 1 reference on the pure-PyTorch ops
  ("plain ops"), so the speed-up is shown against both.

Columns. Step time: median of --steps steps after --warmup warm-up steps, read on the host clock
after `torch.cuda.synchronize()` at the end of each step (finetune's step callback). "300 steps"
is 300 x that median (extrapolated; the one-off set-up, the references' features and any
compilation excluded). Peak memory: `torch.cuda.max_memory_allocated()` (CUDA; weights,
optimizer state and activations) or the growth of the peak RSS over the process before the
models were built (CPU, glibc returning large blocks: RSS follows live tensors). FLOPs per step:
`torch.utils.flop_counter.FlopCounterMode` over one step (step 2 of a 2-step run for ours, so
the once-only reference features are out; its convolution-backward formula replaced by one that
counts grouped and depthwise convolutions right); bytes per step: a census of the same step with a
dispatch mode that adds, for every aten op except views, the bytes of its tensor inputs (read)
and of its outputs or, for in-place ops, the tensors it mutates (written), i.e. what eager
execution moves if no op reuses cached data. Ops inside compiled CUDA extensions (the native
reference) are invisible to both counts. % of floor = (FLOPs / peak FLOP/s, or bytes / peak
bandwidth) / measured step time; peaks from --peak-tflops (fp32 tf32 bf16, dense) and
--peak-gbs, H100 SXM datasheet by default (on CPU only when given); the measured copy and
matmul ceilings of the card are printed in the header for rescaling.

Targets (issue 30): 300 steps at 1024 px <= 5 s on one GPU; >= 6x faster than the released
loop; stylize one aligned face (encode + generate) <= 10 ms and >= 200 faces/s batched; peak
memory flat in the number of references (1, 4, 8, 16: each within 10% of 1 reference).

    python benchmarks/bench_gpu.py --reference PATH/stylegan2-pytorch --jojogan PATH/JoJoGAN \\
        --reference-native --compile                       # the GPU run (benchmarks/gpu_check.sh)
    python benchmarks/bench_gpu.py --quick                 # CPU smoke run, tiny sizes, seconds
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

from bench_pipeline import (  # noqa: E402
    _MALLOC_ENV,
    _device,
    _ffhq_models,
    _inputs,
    _rss_mb,
    _sync,
)

PRECISIONS = ("float32", "tf32", "bf16")
H100_TFLOPS = (67.0, 495.0, 989.0)  # H100 SXM dense: fp32 (no tensor cores), tf32, bf16
H100_GBS = 3350.0  # HBM3; a device-to-device copy measured about 3000 GB/s here
TARGET_300_S = 5.0
TARGET_SPEEDUP = 6.0
TARGET_STYLIZE_MS = 10.0
TARGET_FACES_PER_S = 200.0
FLAT_TOLERANCE = 1.10
_EXT_DIR = Path(tempfile.gettempdir()) / "jojogan_bench_torch_ext"

# ----------------------------------------------------------------------------- worker helpers


def _setup(cfg: dict):
    import torch

    torch.set_num_threads(cfg["threads"])
    torch.manual_seed(0)
    return torch, _device(cfg["device"])


def _mem_start(dev) -> float:
    import torch

    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    return _rss_mb()


def _mem_peak_mb(dev, rss0: float) -> float:
    import torch

    if dev.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return _rss_mb() - rss0


def _models(cfg: dict, dev):
    from jojogan.stylegan2 import Discriminator, Generator

    if cfg["channel_max"] >= 512:
        return _ffhq_models(cfg["size"], dev)
    g = Generator(cfg["size"], 512, 8, 2, channel_max=cfg["channel_max"])
    d = Discriminator(cfg["size"], 2, channel_max=cfg["channel_max"])
    return g.to(dev).eval(), d.to(dev).eval()


class _Census:
    """FLOPs (FlopCounterMode) and an eager byte census of the aten ops run inside it."""

    def __init__(self) -> None:
        import torch
        from torch.utils._python_dispatch import TorchDispatchMode
        from torch.utils._pytree import tree_flatten
        from torch.utils.flop_counter import FlopCounterMode

        free = {
            torch.ops.aten.empty.memory_format,
            torch.ops.aten.empty_strided.default,
            torch.ops.aten.new_empty.default,
            torch.ops.aten.new_empty_strided.default,
            torch.ops.aten._local_scalar_dense.default,
        }

        def nbytes(objs) -> int:
            seen, total = set(), 0
            for t in tree_flatten(objs)[0]:
                if isinstance(t, torch.Tensor) and id(t) not in seen:
                    seen.add(id(t))
                    total += t.numel() * t.element_size()
            return total

        census = self

        class Bytes(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                kwargs = kwargs or {}
                out = func(*args, **kwargs)
                if getattr(func, "is_view", False) or func in free:
                    return out
                written = nbytes(out)
                if written == 0:  # in-place ops returning nothing (_foreach_*_): mutated args
                    mutated = [
                        args[i] if i < len(args) else kwargs.get(a.name)
                        for i, a in enumerate(func._schema.arguments)
                        if a.alias_info is not None and a.alias_info.is_write
                    ]
                    written = nbytes(mutated)
                census.bytes += nbytes((args, kwargs)) + written
                return out

        def conv_backward(grad_out, x, w, _b, _s, _p, _d, transposed, _o, _g, mask, **_kw):
            # each gradient costs what the forward does; torch's own formula ignores groups in
            # the weight gradient (x groups too many FLOPs for grouped and depthwise convs)
            spatial = (x if transposed else grad_out)[2:]
            fwd = 2 * x[0] * math.prod(spatial) * math.prod(w)
            return fwd * (int(bool(mask[0])) + int(bool(mask[1])))

        self.bytes = 0
        self.flop_mode = FlopCounterMode(
            display=False, custom_mapping={torch.ops.aten.convolution_backward: conv_backward}
        )
        self.byte_mode = Bytes()

    def __enter__(self):
        self.flop_mode.__enter__()
        self.byte_mode.__enter__()
        return self

    def __exit__(self, *exc):
        self.byte_mode.__exit__(*exc)
        self.flop_mode.__exit__(*exc)

    def snapshot(self) -> tuple[int, int]:
        return self.flop_mode.get_total_flops(), self.bytes


# ----------------------------------------------------------------------------- workers


def _worker_ours(cfg: dict) -> dict:
    torch, dev = _setup(cfg)
    from jojogan.finetune import FinetuneSettings, finetune

    rss0 = _rss_mb()
    g, d = _models(cfg, dev)
    refs, codes = _inputs(g, cfg["refs"], dev)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = bool(cfg["cudnn_benchmark"])
    _mem_start(dev)
    stamps: list[float] = []

    def cb(step, loss, preview):
        _sync(dev)
        stamps.append(time.perf_counter())

    n = cfg["warmup"] + cfg["steps"]
    st = FinetuneSettings(
        steps=n,
        precision=cfg["precision"],
        channels_last=cfg["channels_last"],
        refs_per_chunk=1,
        compile=bool(cfg["compile"]),  # torch.compile of the G + D forward (finetune's option)
    )
    _sync(dev)
    t0 = time.perf_counter()
    res = finetune(g, d, refs, codes, st, callback=cb)
    steps = [b - a for a, b in zip([t0, *stamps[:-1]], stamps, strict=True)]
    timed = steps[cfg["warmup"] :] or steps[-1:]
    med = statistics.median(timed)
    out = {
        "step_s": med,
        "spread": [min(timed), max(timed)],
        "first_s": steps[0],
        "warmup_excess_s": sum(s - med for s in steps[: cfg["warmup"]]),
        "peak_mb": _mem_peak_mb(dev, rss0),
        "loss_finite": all(x == x for x in res.losses),
    }
    del res
    if cfg["census"]:
        census = _Census()
        snaps: list[tuple[int, int]] = []
        with census:
            finetune(
                g,
                d,
                refs,
                codes,
                FinetuneSettings(
                    steps=2,
                    precision=cfg["precision"],
                    channels_last=cfg["channels_last"],
                    refs_per_chunk=1,
                ),
                callback=lambda *a: snaps.append(census.snapshot()),
            )
        out["flops"] = snaps[1][0] - snaps[0][0]
        out["bytes"] = snaps[1][1] - snaps[0][1]
    return out


def _load_reference(cfg: dict):
    """rosinality's model.py with JoJoGAN's ops: native CUDA ones when asked and they build,
    else the pure-PyTorch CPU ones (tests/fixtures/stylegan2/make_fixtures.py)."""
    import importlib.util
    import types

    path = ROOT / "tests" / "fixtures" / "stylegan2" / "make_fixtures.py"
    spec = importlib.util.spec_from_file_location("make_fixtures", path)
    mf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mf)
    ros, jojo = Path(cfg["reference"]), Path(cfg["jojogan"] or cfg["reference"])
    note = "pure-PyTorch ops"
    if cfg.get("native"):
        try:
            op = types.ModuleType("op")
            op.__path__ = []
            sys.modules["op"] = op
            act = mf._load_file("op.fused_act", jojo / "op" / "fused_act.py")
            up = mf._load_file("op.upfirdn2d", jojo / "op" / "upfirdn2d.py")
            op.conv2d_gradfix = mf._load_file("op.conv2d_gradfix", ros / "op" / "conv2d_gradfix.py")
            op.upfirdn2d = up.upfirdn2d
            op.fused_leaky_relu = act.fused_leaky_relu
            op.FusedLeakyReLU = act.FusedLeakyReLU
            return mf, mf._load_file("reference_model", ros / "model.py"), "native CUDA ops"
        except Exception as e:  # any build failure falls back, with a note
            note = f"pure-PyTorch ops (native build failed: {type(e).__name__}: {str(e)[:60]})"
            for k in [k for k in sys.modules if k == "op" or k.startswith("op.")]:
                del sys.modules[k]
    ref = mf.load_reference(ros, jojo)
    # JoJoGAN's CPU fused_leaky_relu computes on CPU tensors only (elsewhere it calls a name it
    # never defines): the same formula for every device, so the fallback runs on CUDA.
    import torch.nn.functional as F

    def fused_leaky_relu(input, bias=None, negative_slope=0.2, scale=2**0.5):
        if bias is not None:
            input = input + bias.view(1, bias.shape[0], *[1] * (input.ndim - 2))
        return F.leaky_relu(input, negative_slope=0.2) * scale

    sys.modules["op.fused_act_cpu"].fused_leaky_relu = fused_leaky_relu
    ref.fused_leaky_relu = fused_leaky_relu
    return mf, ref, note


def _worker_native_prep(cfg: dict) -> dict:
    """Build JoJoGAN's CUDA ops once (cached in TORCH_EXTENSIONS_DIR) and run them once."""
    import torch

    t0 = time.perf_counter()
    _mf, ref, note = _load_reference({**cfg, "native": True})
    if note != "native CUDA ops":
        raise RuntimeError(note)
    x = torch.randn(1, 4, 8, 8, device="cuda")
    k = torch.ones(4, 4, device="cuda") / 16
    sys.modules["op"].upfirdn2d(x, k, pad=(2, 1))
    sys.modules["op"].fused_leaky_relu(x, torch.zeros(4, device="cuda"))
    torch.cuda.synchronize()
    return {"build_s": time.perf_counter() - t0}


def _worker_reference(cfg: dict) -> dict:
    torch, dev = _setup(cfg)
    import torch.nn.functional as F

    mf, ref, note = _load_reference(cfg)
    rss0 = _rss_mb()
    size, n = cfg["size"], cfg["refs"]
    if cfg["channel_max"] >= 512:
        g, d = ref.Generator(size, 512, 8, 2), ref.Discriminator(size, 2)
    else:
        from jojogan.stylegan2 import channel_table

        ch = channel_table(size, 2, cfg["channel_max"])
        g, d = mf.tiny_generator(ref, size, 512, 8, ch), mf.tiny_discriminator(ref, size, ch)
    g, d = g.to(dev), d.to(dev).eval()  # the notebook: generator in train mode, D eval
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True  # as the notebook sets it
    gen = torch.Generator().manual_seed(0)
    targets = (torch.rand(n, 3, size, size, generator=gen) * 2 - 1).to(dev)
    with torch.no_grad():
        w = g.style(torch.randn(n, 512, generator=gen).to(dev))
    latents = w[:, None].repeat(1, g.n_latent, 1)
    taps = (1, 3, 4, 5)

    def feats(img):  # JoJoGAN's Discriminator.forward: activations after convs 1, 3, 4, 5
        return mf.features(d, img, taps)

    opt = torch.optim.Adam(g.parameters(), lr=2e-3, betas=(0.0, 0.99))
    id_swap = list(range(7, g.n_latent))
    alpha = 0.0  # the notebook's default: alpha = 1 - 1.0

    def step():
        with torch.no_grad():  # JoJoGAN's Generator.get_latent is @torch.no_grad()
            mean_w = g.style(torch.randn([n, 512]).to(dev)).unsqueeze(1).repeat(1, g.n_latent, 1)
        in_latent = latents.clone()
        in_latent[:, id_swap] = alpha * latents[:, id_swap] + (1 - alpha) * mean_w[:, id_swap]
        img = g([in_latent], input_is_latent=True)[0]
        with torch.no_grad():
            real_feat = feats(targets)
        fake_feat = feats(img)
        loss = sum(F.l1_loss(a, b) for a, b in zip(fake_feat, real_feat, strict=True)) / len(
            fake_feat
        )
        opt.zero_grad()
        loss.backward()
        opt.step()

    _mem_start(dev)
    times = []
    for _ in range(cfg["warmup"] + cfg["steps"]):
        _sync(dev)
        t0 = time.perf_counter()
        step()
        _sync(dev)
        times.append(time.perf_counter() - t0)
    timed = times[cfg["warmup"] :]
    out = {
        "step_s": statistics.median(timed),
        "spread": [min(timed), max(timed)],
        "peak_mb": _mem_peak_mb(dev, rss0),
        "note": note,
        "tf32_convs": dev.type == "cuda" and torch.backends.cudnn.allow_tf32,
        "tf32_matmul": dev.type == "cuda" and torch.backends.cuda.matmul.allow_tf32,
    }
    if cfg["census"]:
        with _Census() as census:
            step()
        out["flops"], out["bytes"] = census.snapshot()
    return out


def _worker_stylize(cfg: dict) -> dict:
    torch, dev = _setup(cfg)
    from jojogan import ops
    from jojogan.devices import precision
    from jojogan.encoders import E4EEncoder
    from jojogan.invert import invert
    from jojogan.stylize import stylize

    rss0 = _rss_mb()
    g, _d = _models(cfg, dev)
    del _d
    enc = E4EEncoder(n_styles=g.n_latent).to(dev).eval()
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = bool(cfg["cudnn_benchmark"])
    gen = torch.Generator().manual_seed(0)
    face = (torch.rand(1, 3, g.size, g.size, generator=gen) * 2 - 1).to(dev)
    p, cl = cfg["precision"], cfg["channels_last"]
    _mem_start(dev)

    def encode(x):
        with ops.channels_last(bool(cl)), precision(dev, p):  # the encoder under the same mode
            return invert(x, g, "encoder", encoder=enc)

    enc_t, gen_t = [], []
    w = None
    for i in range(cfg["warmup"] + cfg["steps"]):
        _sync(dev)
        t0 = time.perf_counter()
        w = encode(face)
        _sync(dev)
        t1 = time.perf_counter()
        img = stylize(g, w, precision=p, channels_last=cl)
        _sync(dev)
        t2 = time.perf_counter()
        if i >= cfg["warmup"]:
            enc_t.append(t1 - t0)
            gen_t.append(t2 - t1)
    total = [a + b for a, b in zip(enc_t, gen_t, strict=True)]
    batch = cfg["batch"]
    faces = (torch.rand(batch, 3, g.size, g.size, generator=gen) * 2 - 1).to(dev)
    bt, gt = [], []  # encode + generate, generate alone; `batch` faces per call
    for i in range(max(1, cfg["warmup"] // 2) + cfg["steps"]):
        _sync(dev)
        t0 = time.perf_counter()
        codes = encode(faces)
        imgs = stylize(g, codes, batch_size=batch, precision=p, channels_last=cl)
        _sync(dev)
        t1 = time.perf_counter()
        imgs = stylize(g, codes, batch_size=batch, precision=p, channels_last=cl)
        _sync(dev)
        if i >= max(1, cfg["warmup"] // 2):
            bt.append(t1 - t0)
            gt.append(time.perf_counter() - t1)
    return {
        "latency_s": statistics.median(total),
        "encode_s": statistics.median(enc_t),
        "generate_s": statistics.median(gen_t),
        "batch_s": statistics.median(bt),
        "faces_per_s": batch / statistics.median(bt),
        "images_per_s": batch / statistics.median(gt),
        "peak_mb": _mem_peak_mb(dev, rss0),
        "finite": bool(torch.isfinite(img).all()) and bool(torch.isfinite(imgs).all()),
    }


def _worker_profile(cfg: dict) -> dict:
    """torch.profiler over a few fine-tune steps and a one-face stylize, in the given
    configuration: the kernels that take the device's time, and device-busy vs wall time
    (a step whose kernels fill a small part of its wall time is bound by launches)."""
    torch, dev = _setup(cfg)
    from torch.profiler import ProfilerActivity, profile

    from jojogan import ops
    from jojogan.devices import precision
    from jojogan.encoders import E4EEncoder
    from jojogan.finetune import FinetuneSettings, finetune
    from jojogan.invert import invert
    from jojogan.stylize import stylize

    g, d = _models(cfg, dev)
    refs, codes = _inputs(g, 1, dev)
    p, cl = cfg["precision"], cfg["channels_last"]
    st = FinetuneSettings(steps=3, precision=p, channels_last=cl, refs_per_chunk=1)
    enc = E4EEncoder(n_styles=g.n_latent).to(dev).eval()
    face = refs[:1]

    def one_face():
        with ops.channels_last(bool(cl)), precision(dev, p):
            w = invert(face, g, "encoder", encoder=enc)
        return stylize(g, w, precision=p, channels_last=cl)

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == "cuda" else [])
    text, out = [], {}
    for name, fn in (
        ("fine-tune, 3 steps", lambda: finetune(g, d, refs, codes, st)),
        ("stylize one face", one_face),
    ):
        fn()  # warm-up outside the trace
        _sync(dev)
        t0 = time.perf_counter()
        with profile(activities=acts) as prof:
            fn()
            _sync(dev)
        wall = time.perf_counter() - t0
        ka = prof.key_averages()
        key = "self_device_time_total" if dev.type == "cuda" else "self_cpu_time_total"
        busy = sum(getattr(e, key, 0.0) for e in ka) / 1e6
        n_kernels = sum(e.count for e in ka if getattr(e, "self_device_time_total", 0) > 0)
        out[name] = {"wall_s": wall, "device_busy_s": busy, "kernels": n_kernels}
        text.append(
            f"## {name}: wall {wall * 1e3:.1f} ms (profiled), device busy {busy * 1e3:.1f} ms, "
            f"{n_kernels} kernel launches\n"
        )
        text.append(ka.table(sort_by=key, row_limit=25, max_name_column_width=60))
    if cfg.get("profile_out"):
        Path(cfg["profile_out"]).write_text("\n".join(text))
    return out


def _worker_env(cfg: dict) -> dict:
    torch, dev = _setup(cfg)
    out = {"torch": torch.__version__, "device": str(dev), "threads": cfg["threads"]}
    if dev.type != "cuda":
        import platform

        out["name"] = platform.processor() or platform.machine()
        return out
    p = torch.cuda.get_device_properties(dev)
    out.update(
        name=torch.cuda.get_device_name(dev),
        sms=p.multi_processor_count,
        mem_gb=p.total_memory / 2**30,
        cuda=torch.version.cuda,
        cudnn=torch.backends.cudnn.version(),
    )

    def timed(fn, reps):
        fn()
        torch.cuda.synchronize()
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        ts = []
        for _ in range(reps):
            a.record()
            fn()
            b.record()
            torch.cuda.synchronize()
            ts.append(a.elapsed_time(b) / 1e3)
        return statistics.median(ts)

    bufs = [torch.randn(2**28, device=dev), torch.empty(2**28, device=dev)]  # 1 GiB each
    out["copy_gbs"] = 2 * 2**28 * 4 / timed(lambda: bufs[1].copy_(bufs[0]), 10) / 1e9
    bufs.clear()
    n = 8192
    for name, dtype, tf32 in (
        ("fp32", torch.float32, False),
        ("tf32", torch.float32, True),
        ("bf16", torch.bfloat16, False),
    ):
        torch.backends.cuda.matmul.allow_tf32 = tf32
        x, y = (
            torch.randn(n, n, device=dev, dtype=dtype),
            torch.randn(n, n, device=dev, dtype=dtype),
        )
        out[f"matmul_{name}_tflops"] = 2 * n**3 / timed(lambda x=x, y=y: x @ y, 5) / 1e12
    torch.backends.cuda.matmul.allow_tf32 = False
    return out


WORKERS = {
    "ours": _worker_ours,
    "reference": _worker_reference,
    "stylize": _worker_stylize,
    "env": _worker_env,
    "native_prep": _worker_native_prep,
    "profile": _worker_profile,
}

# ----------------------------------------------------------------------------- orchestration


def _child_env() -> dict:
    env = {**os.environ, **_MALLOC_ENV, "PYTHONUNBUFFERED": "1"}
    env.setdefault("TORCH_EXTENSIONS_DIR", str(_EXT_DIR))
    return env


def _cmd(kind: str, cfg: dict) -> list[str]:
    return [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        json.dumps({**cfg, "kind": kind}),
    ]


def _why(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    for ln in reversed(lines):  # the exception line, not a trailing warning
        if "Error" in ln or "Exception" in ln or ln.startswith("RuntimeError"):
            return ln[:160]
    return (lines[-1] if lines else "no output")[:160]


def _run(kind: str, cfg: dict, timeout: float) -> dict:
    t0 = time.perf_counter()
    try:
        r = subprocess.run(
            _cmd(kind, cfg), capture_output=True, text=True, timeout=timeout, env=_child_env()
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s", "wall_s": timeout}
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        sys.stderr.write(r.stderr[-3000:])
        return {"error": _why(r.stderr or r.stdout), "wall_s": wall}
    try:
        return {**json.loads(r.stdout.strip().splitlines()[-1]), "wall_s": wall}
    except (ValueError, IndexError):
        return {"error": f"no result: {_why(r.stdout + r.stderr)}", "wall_s": wall}


class _Budget:
    def __init__(self, seconds: float, min_row: float) -> None:
        self.t0, self.seconds, self.min_row = time.perf_counter(), seconds, min_row

    def left(self) -> float:
        return self.seconds - (time.perf_counter() - self.t0)


def _fmt_mb(mb: float | None) -> str:
    if mb is None:
        return "-"
    return f"{mb / 1024:.2f} GB" if mb >= 1024 else f"{mb:.0f} MB"


def _floors(r: dict, peak_tflops: float | None, peak_gbs: float | None) -> tuple[str, str]:
    if "flops" not in r or "step_s" not in r:
        return "-", "-"
    f = _si(r["flops"], "FLOP")
    b = _si(r["bytes"], "B")
    if peak_tflops:
        f += f", {100 * r['flops'] / (peak_tflops * 1e12) / r['step_s']:.3g}%"
    if peak_gbs:
        b += f", {100 * r['bytes'] / (peak_gbs * 1e9) / r['step_s']:.3g}%"
    return f, b


def _si(x: float, unit: str) -> str:
    for scale, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:.3g} {prefix}{unit}"
    return f"{x:.3g} {unit}"


def _yes(ok: bool) -> str:
    return "yes" if ok else "**no**"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--reference", default=None, help="rosinality stylegan2-pytorch checkout")
    ap.add_argument("--jojogan", default=None, help="JoJoGAN checkout (its op/ folder)")
    ap.add_argument(
        "--reference-native",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="JoJoGAN's CUDA ops (built with nvcc + ninja)",
    )
    ap.add_argument("--native-timeout", type=float, default=300.0, help="s for their build")
    ap.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="add torch.compile rows",
    )
    ap.add_argument("--sizes", type=int, nargs="+", default=[1024])
    ap.add_argument("--refs", type=int, nargs="+", default=[1, 4, 8, 16])
    ap.add_argument("--precisions", nargs="+", default=list(PRECISIONS), choices=PRECISIONS)
    ap.add_argument("--channels-last", nargs="+", default=["off", "on"], choices=["off", "on"])
    ap.add_argument("--steps", type=int, default=10, help="timed steps per configuration")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--ref-steps", type=int, default=5, help="timed steps, reference rows")
    ap.add_argument("--ref-warmup", type=int, default=2, help="warm-up steps, reference rows")
    ap.add_argument("--batch", type=int, default=32, help="stylize throughput batch")
    ap.add_argument("--channel-max", type=int, default=512, help="< 512: narrow test models")
    ap.add_argument("--device", default="auto", help="auto, cpu or cuda")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    ap.add_argument("--cudnn-benchmark", action="store_true", help="for our rows too")
    ap.add_argument("--no-stylize", action="store_true")
    ap.add_argument("--budget-s", type=float, default=450.0, help="skip rows after this")
    ap.add_argument(
        "--peak-tflops", type=float, nargs=3, default=None, metavar=("FP32", "TF32", "BF16")
    )
    ap.add_argument("--peak-gbs", type=float, default=None)
    ap.add_argument(
        "--quick",
        action="store_true",
        help="CPU smoke run: cpu, 32 px, channel_max 16, 1 and 4 refs, 2 steps after 1 warm-up",
    )
    ap.add_argument("--table", default=None, help="also write the header + table here")
    ap.add_argument(
        "--profile", default=None, help="write a torch.profiler table of the fastest set-up here"
    )
    ap.add_argument("--json", default=None, help="also write every row's raw result here")
    a = ap.parse_args()
    if a.worker:
        cfg = json.loads(a.worker)
        print(json.dumps(WORKERS[cfg["kind"]](cfg)))
        return
    if a.quick:  # smoke-run defaults; arguments given explicitly still win
        ap.set_defaults(device="cpu", sizes=[32], steps=2, warmup=1, ref_steps=2, ref_warmup=1)
        ap.set_defaults(channel_max=16, batch=2, refs=[1, 4])
        a = ap.parse_args()
    if a.reference_native and not a.reference:
        sys.exit("--reference-native needs --reference PATH (and --jojogan PATH)")

    budget = _Budget(a.budget_s, 5.0)
    common = {
        "device": a.device,
        "threads": a.threads,
        "steps": a.steps,
        "warmup": a.warmup,
        "channel_max": a.channel_max,
        "cudnn_benchmark": a.cudnn_benchmark,
    }
    env = _run("env", common, 120)
    if "error" in env:
        sys.exit(f"cannot start a worker: {env['error']}")
    cuda = env["device"].startswith("cuda")
    budget.min_row = 20.0 if cuda else 5.0  # a worker's start (import, CUDA context, models)
    peaks = a.peak_tflops or (H100_TFLOPS if cuda else None)
    peak_gbs = a.peak_gbs or (H100_GBS if cuda else None)
    notes: list[str] = []
    rows: list[dict] = []  # {"section", "size", "refs", "label", "cfg", "r"}

    native = None
    if a.reference and a.reference_native:
        if cuda:
            # files, not pipes: nvcc's warnings would fill a pipe nobody reads until later
            native_out = tempfile.TemporaryFile("w+")
            native_err = tempfile.TemporaryFile("w+")
            native = subprocess.Popen(
                _cmd("native_prep", {**common, "reference": a.reference, "jojogan": a.jojogan}),
                stdout=native_out,
                stderr=native_err,
                text=True,
                env=_child_env(),
                start_new_session=True,
            )
            native_t0 = time.perf_counter()
        else:
            notes.append("--reference-native ignored: no CUDA device")

    def go(section, size, refs, label, kind, cfg, cap=None) -> dict:
        left = budget.left()
        if left < budget.min_row:
            r = {"skipped": "time budget (--budget-s) spent"}
        else:
            r = _run(kind, cfg, min(left, cap) if cap else left)
        print(f"# {section} {size} px x{refs} {label}: {json.dumps(r)}", file=sys.stderr)
        row = {"section": section, "size": size, "refs": refs, "label": label, "cfg": cfg, "r": r}
        rows.append(row)
        return r

    native_ok: bool | None = None

    def wait_native() -> None:
        nonlocal native_ok, native
        if native is None or native_ok is not None:
            return
        left = max(
            1.0, min(budget.left() - 60, a.native_timeout - (time.perf_counter() - native_t0))
        )
        try:
            native.wait(timeout=left)
            native_out.seek(0)
            native_err.seek(0)
            out, err = native_out.read(), native_err.read()
            if native.returncode == 0:
                native_ok = True
                info = json.loads(out.strip().splitlines()[-1])
                notes.append(
                    f"reference: JoJoGAN's CUDA ops built in {info['build_s']:.0f} s "
                    "(in the background, while our rows ran)"
                )
            else:
                native_ok = False
                sys.stderr.write(err[-3000:])
                notes.append(
                    f"reference: native CUDA ops failed to build ({_why(err)}); "
                    "the pure-PyTorch ops were used"
                )
        except subprocess.TimeoutExpired:
            os.killpg(native.pid, signal.SIGKILL)
            native.wait()
            native_ok = False
            notes.append(
                f"reference: native CUDA ops not built within {left:.0f} s; "
                "the pure-PyTorch ops were used"
            )

    cls = [x == "on" for x in a.channels_last]
    for size in a.sizes:
        base = {**common, "size": size, "census": True, "compile": False}

        def fastest_ours(size: int = size, n: int = 1) -> dict | None:
            done = [
                w
                for w in rows
                if w["section"] == "ours"
                and w["size"] == size
                and w["refs"] == n
                and not w["cfg"]["compile"]
                and "step_s" in w["r"]
            ]
            return min(done, key=lambda w: w["r"]["step_s"])["cfg"] if done else None

        # 1. ours, one reference, every precision x layout
        best_cl: dict[str, bool] = {}
        for p in a.precisions:
            times = {}
            for cl in cls:
                cfg = {**base, "refs": 1, "precision": p, "channels_last": cl}
                r = go("ours", size, 1, _label(p, cl), "ours", cfg)
                if "step_s" in r:
                    times[cl] = r["step_s"]
            best_cl[p] = min(times, key=times.get) if times else cls[0]
        # the fastest configuration at 1 reference (before any has run: the first asked for)
        p0 = a.precisions[0]
        fast = fastest_ours() or {
            **base,
            "refs": 1,
            "precision": p0,
            "channels_last": best_cl[p0],
        }
        # 2. stylize
        if not a.no_stylize:
            for p in a.precisions:
                cfg = {**base, "precision": p, "channels_last": best_cl[p], "batch": a.batch}
                go("stylize", size, 1, _label(p, best_cl[p]), "stylize", cfg)
        # 3. the reference (after the rows above, while JoJoGAN's CUDA ops build)
        if a.reference:
            wait_native()
            for n in a.refs:
                cfg = {
                    **base,
                    "census": base["census"] and n == 1,
                    "steps": a.ref_steps,
                    "warmup": a.ref_warmup,
                    "refs": n,
                    "reference": a.reference,
                    "jojogan": a.jojogan,
                    "native": bool(native_ok),
                }
                go("reference", size, n, "as released", "reference", cfg)
        # 4. ours, more references: the fastest configuration (peak memory against the count)
        if fast:
            for n in [n for n in a.refs if n != 1]:
                go(
                    "ours",
                    size,
                    n,
                    _label(fast["precision"], fast["channels_last"]),
                    "ours",
                    {**fast, "refs": n},
                )
        # 5. the fastest eager configuration with cuDNN's autotuner (the reference sets it)
        if fast and cuda and not a.cudnn_benchmark:
            cfg = {**fast, "cudnn_benchmark": True, "census": False}
            label = _label(cfg["precision"], cfg["channels_last"], "cudnn.benchmark")
            go("ours", size, 1, label, "ours", cfg)
        # 6. where the fastest set-up spends its time (torch.profiler)
        if a.profile and fast:
            r = go(
                "profile",
                size,
                1,
                _label(fast["precision"], fast["channels_last"]),
                "profile",
                {**fast, "profile_out": a.profile},
                cap=120,
            )
            if "error" not in r and "skipped" not in r:
                for k, v in r.items():
                    if isinstance(v, dict):
                        notes.append(
                            f"profile ({_label(fast['precision'], fast['channels_last'])}), {k}: "
                            f"wall {v['wall_s'] * 1e3:.1f} ms, device busy "
                            f"{v['device_busy_s'] * 1e3:.1f} ms, {v['kernels']} kernel launches"
                        )
        # 7. torch.compile of each precision's faster layout, the fastest precision first
        if a.compile and fast:
            order = sorted(
                a.precisions, key=lambda p: (p != fast["precision"], a.precisions.index(p))
            )
            for p in order:
                cfg = {
                    **base,
                    "refs": 1,
                    "precision": p,
                    "channels_last": best_cl[p],
                    "compile": True,
                    "census": False,
                }
                label = _label(p, best_cl[p], "torch.compile")
                r = go("ours", size, 1, label, "ours", cfg)
                if "error" in r:
                    notes.append(f"torch.compile row failed: {r['error']}")
                    break
        # 8. the released loop on the pure-PyTorch ops too ("plain ops"), when the native
        #    ops were the reference above
        if a.reference and native_ok:
            cfg = {
                **base,
                "census": False,
                "steps": a.ref_steps,
                "warmup": a.ref_warmup,
                "refs": 1,
                "reference": a.reference,
                "jojogan": a.jojogan,
                "native": False,
            }
            go("reference", size, 1, "as released, plain ops", "reference", cfg)
    if native is not None and native_ok is None:
        os.killpg(native.pid, signal.SIGKILL)
        native.wait()

    text = _render(a, env, rows, notes, peaks, peak_gbs, cuda)
    print(text)
    if a.table:
        Path(a.table).write_text(text + "\n")
    if a.json:
        Path(a.json).write_text(json.dumps({"env": env, "rows": rows, "notes": notes}, indent=1))


def _label(p: str, cl: bool, *extra: str) -> str:
    return ", ".join([p, "channels_last" if cl else "NCHW", *extra])


def _render(a, env, rows, notes, peaks, peak_gbs, cuda) -> str:
    out = []
    dev = env.get("name", env["device"])
    out.append(f"### JoJoGAN speed: {dev} ({env['device']})\n")
    line = f"torch {env['torch']}"
    if cuda:
        line += (
            f", CUDA {env['cuda']}, cuDNN {env['cudnn']}; {env['sms']} SMs, "
            f"{env['mem_gb']:.0f} GiB; measured ceilings: copy {env['copy_gbs']:.0f} GB/s "
            f"(read + write), matmul 8192^3 fp32 {env['matmul_fp32_tflops']:.0f} / tf32 "
            f"{env['matmul_tf32_tflops']:.0f} / bf16 {env['matmul_bf16_tflops']:.0f} TFLOP/s"
        )
    else:
        line += f", {env['threads']} thread(s)"
    out.append(line + "  ")
    out.append(f"command: `python {' '.join(_shown_argv())}`  ")
    out.append(
        f"step time: median of {a.steps} steps after {a.warmup} warm-up (reference: "
        f"{a.ref_steps} after {a.ref_warmup}); 300 steps = 300 x "
        "median (extrapolated, set-up excluded); floors: "
        + (
            f"peaks fp32 {peaks[0]:g} / tf32 {peaks[1]:g} / bf16 {peaks[2]:g} TFLOP/s, "
            f"{peak_gbs:g} GB/s"
            if peaks
            else "no peak given (CPU)"
        )
        + "; models: "
        + (
            "FFHQ config-f widths, random weights"
            if a.channel_max >= 512
            else f"narrow test models (channel_max {a.channel_max})"
        )
        + "\n"
    )
    out.append(
        "| what | configuration | refs | time | 300 steps / throughput | vs reference | "
        "peak memory | FLOPs / step, % of floor | bytes / step (eager census), % of floor | "
        "targets |"
    )
    out.append("|---|---|---|---|---|---|---|---|---|---|")
    ref_step = {  # the released loop as run first (native ops when they built)
        (w["size"], w["refs"]): w["r"]["step_s"]
        for w in rows
        if w["section"] == "reference" and w["label"] == "as released" and "step_s" in w["r"]
    }
    plain_step = {
        (w["size"], w["refs"]): w["r"]["step_s"]
        for w in rows
        if w["section"] == "reference" and w["label"] != "as released" and "step_s" in w["r"]
    }
    peak_1 = {
        (w["size"], w["label"]): w["r"].get("peak_mb")
        for w in rows
        if w["section"] in ("ours", "reference") and w["refs"] == 1 and "peak_mb" in w["r"]
    }
    census_by_prec = {
        (w["size"], w["cfg"]["precision"], w["cfg"]["refs"]): w["r"]
        for w in rows
        if w["section"] == "ours" and "flops" in w["r"]
    }
    pidx = {p: i for i, p in enumerate(PRECISIONS)}
    order = {"reference": 0, "ours": 1, "stylize": 2}  # printed grouped, run in another order
    shown = [w for w in rows if w["section"] in order]
    for w in sorted(shown, key=lambda w: (w["size"], order[w["section"]], w["refs"])):
        r, size, n = w["r"], w["size"], w["refs"]
        what = {
            "ours": f"fine-tune {size} px (ours)",
            "reference": f"fine-tune {size} px (reference)",
            "stylize": f"stylize {size} px (encode + generate)",
        }[w["section"]]
        conf = w["label"]
        if w["section"] == "reference":
            conf = f"as released, {r.get('note', 'pure-PyTorch ops')}"
            if r.get("tf32_convs"):
                conf += ", TF32 convs (torch default)"
        head = f"| {what} | {conf} | {n} |"
        if "skipped" in r:
            out.append(f"{head} skipped: {r['skipped']} | | | | | | |")
            continue
        if "error" in r:
            out.append(f"{head} failed: {r['error']} | | | | | | |")
            continue
        mem = _fmt_mb(r.get("peak_mb"))
        if w["section"] == "stylize":
            ms = 1e3 * r["latency_s"]
            t = (
                f"{ms:.1f} ms / face (encode {1e3 * r['encode_s']:.1f} + generate "
                f"{1e3 * r['generate_s']:.1f})"
            )
            fps = r.get("faces_per_s", 0.0)
            thr = (
                f"{fps:.1f} faces/s encode + generate, {r['images_per_s']:.1f} images/s "
                f"generate alone (batch {a.batch})"
            )
            tgt = f"<= {TARGET_STYLIZE_MS:g} ms: " + (
                _yes(ms <= TARGET_STYLIZE_MS) if cuda else "n/a (CPU)"
            )
            tgt += f"; >= {TARGET_FACES_PER_S:g} faces/s: " + (
                _yes(fps >= TARGET_FACES_PER_S) if cuda else "n/a (CPU)"
            )
            if not r.get("finite", True):
                tgt += "; non-finite output"
            out.append(f"{head} {t} | {thr} | | {mem} | | | {tgt} |")
            continue
        step = r["step_s"]
        t = f"{step:.4f} s / step ({r['spread'][0]:.4f}-{r['spread'][1]:.4f})"
        total = f"{300 * step:.1f} s (300 x median)"
        vs, tgts = "", []
        if w["section"] == "ours":
            prec = w["cfg"]["precision"]
            ref = ref_step.get((size, n))
            if ref:
                vs = f"x{ref / step:.2f} faster"
            if plain_step.get((size, n)):
                vs += f"{'; ' if vs else ''}x{plain_step[(size, n)] / step:.2f} vs plain ops"
            if w["cfg"].get("compile"):
                total += f"; compile + warm-up {r['warmup_excess_s']:.0f} s"
            full = size == 1024 and a.channel_max >= 512  # the targets are for 1024 px FFHQ
            tgts.append(
                f"300 steps <= {TARGET_300_S:g} s: "
                + (
                    _yes(300 * step <= TARGET_300_S)
                    if full and cuda
                    else "n/a (not 1024 px on CUDA)"
                )
            )
            if ref:
                tgts.append(
                    f">= {TARGET_SPEEDUP:g}x: "
                    + (_yes(ref / step >= TARGET_SPEEDUP) if full else "n/a (not 1024 px)")
                )
            if not r.get("loss_finite", True):
                tgts.append("non-finite loss")
            census = r if "flops" in r else census_by_prec.get((size, prec, w["cfg"]["refs"]), {})
        else:
            prec = "tf32" if r.get("tf32_convs") else "float32"
            census = r
        if n != 1 and peak_1.get((size, w["label"])) and r.get("peak_mb"):
            ratio = r["peak_mb"] / peak_1[(size, w["label"])]
            flat = f"memory {n} refs / 1 ref: {ratio:.2f}"
            if w["section"] == "ours":
                flat += f" (flat <= {FLAT_TOLERANCE:g}: {_yes(ratio <= FLAT_TOLERANCE)})"
            tgts.append(flat)
        merged = {**census, "step_s": step}
        fl, by = _floors(merged, peaks[pidx[prec]] if peaks else None, peak_gbs)
        if "flops" in census and "flops" not in r:
            fl += " (eager count)"
        if w["cfg"].get("compile") and "flops" in census:
            by = "- (eager census does not apply)"
        out.append(f"{head} {t} | {total} | {vs} | {mem} | {fl} | {by} | {'; '.join(tgts)} |")
    if notes:
        out.append("")
        out.extend(f"- {x}" for x in notes)
    return "\n".join(out)


def _shown_argv() -> list[str]:
    argv = list(sys.argv)
    try:
        argv[0] = str(Path(argv[0]).resolve().relative_to(Path.cwd()))
    except ValueError:
        argv[0] = "benchmarks/bench_gpu.py"
    return argv


if __name__ == "__main__":
    main()
