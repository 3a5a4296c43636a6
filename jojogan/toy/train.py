"""Train the toy-faces base model: a small StyleGAN2, its discriminator and an e4e-like encoder.

    python -m jojogan.toy.train --out runs/toy --steps 20000            # full recipe (GPU)
    python -m jojogan.toy.train --out runs/toy --steps 40 --resume      # continue a run

Phases (each optional, run in this order, resumable between checkpoints):
1. `--warm-steps`: supervised warm start of the generator. z's first P coordinates are the normal
   quantiles of a face's parameters (Phi(z_i) ~ U(0,1) is exactly the renderer's prior), so
   G(z) can be regressed onto render(params) with a multi-scale L1 (64/32/16 px). FACTS.md: this
   learns colours and layout but not eyes or mouths; it is a warm start, not a recipe.
2. `--steps`: adversarial StyleGAN2 training on `photo` renders only (Karras et al. 2020):
   non-saturating logistic loss, lazy R1 on reals every 16 steps (gamma 0.05 at 64 px), style
   mixing with p=0.9, an EMA generator, Adam(lr 2e-3, betas 0/0.99) with the lazy-regularisation
   correction. No path-length regularisation (small model, short run).
3. `--enc-steps`: a small e4e-like encoder (Tov et al. 2021) from photo renders to W+ =
   latent_avg + w0 + per-layer offsets; trained on generator samples whose codes are known
   (latent L2 + reconstruction L1) plus reconstruction of real renders (pixel L1 + discriminator
   feature L1), with an L2 penalty on the offsets (e4e's delta regulariser).

One GPU slot, from scratch (H100/H200, one command under 10 minutes; not yet run from scratch):

    python -m jojogan.toy.train --out runs/toy --cache-dir runs/toycache --device auto \
        --batch 32 --ema-kimg 10 --steps 1000000 --gan-time 330 --enc-steps 1000000 \
        --enc-time 120 --data-size 50000 --workers 14 --log-every 500 --ckpt-every 2000
    python -m jojogan.toy.score train --out runs/toy/param_regressor.safetensors \
        --steps 6000 --batch 128 --n-images 60000 --workers 14
    python -m jojogan.toy.train --out runs/toy --evaluate      # -> runs/toy/eval.json

(time caps, not step counts, end each phase; the model card records the steps reached).
Measured on one H100 when the shipped CPU run was continued there (weights/MODEL_CARD.md): the
64 px model is far too small to fill the GPU (kernel launches bound it): ~11 adversarial steps/s
at batch 32 for one process, ~8.5 each for two processes sharing the GPU, so batch 32-64 costs
about what batch 8 does; 50,000 renders took 60 s with 14 workers. Budget ~3,300 steps per
5 minutes. Not yet run anywhere: adding `--warm-steps 4000 --warm-mix 0.5 --warm-time 90` gives
the generator a supervised warm start in which half the batches mix W+ layers (coarse <
--mix-cut from face A, fine from face B) against a render of A's geometry in B's colours.

Mixing critic (`--mix-weight W --mix-critic REGRESSOR`, used for the shipped weights): in the
adversarial phase a frozen parameter regressor (`python -m jojogan.toy.score train`; use one
trained independently of the regressor that will measure the model) reads G(coarse < --mix-cut
from A, the rest from B); L1 of its geometry + pose to G(A)'s and of its colours to G(B)'s,
times W, joins the generator loss. Without it the plain CPU run decided colour in its coarse
layers (no W+ cut separated geometry from colour); with it (weight 8, 3,500 steps) the mix takes
B's colours and A's pose (weights/MODEL_CARD.md).

CPU (the shipped weights in jojogan/toy/weights/ started from this, on 2 shared cores, then
continued with the mixing critic; their MODEL_CARD.md has every command and the steps reached):

    python -m jojogan.toy.train --out runs/toy --channels 64,64,64,64,32 --threads 1 \
        --workers 2 --data-size 12000 --steps 1000000 --enc-steps 1000000 --gan-time 4320 \
        --enc-time 900 --ckpt-every 300 --log-every 50

Narrower channels than the defaults and ONE thread: on 2 cores shared with other jobs the default
widths at --threads 2 ran ~3.3 s per adversarial step, this ~0.67 s. FACTS.md: recognisable faces
after ~1,900 adversarial steps, clean features after ~4,300; use `--time-limit` and `--resume`.

Writes to `--out`: `toy_stylegan2.safetensors` (g_ema, d, latent_avg; config in metadata),
`toy_encoder.safetensors`, `train_state.safetensors` (everything needed to resume),
`model_card.json` + `MODEL_CARD.md` (recipe, steps, wall time, machine, losses) and `samples.png`
(truncation 1.0 and 0.7, and a coarse/fine mixing grid). Every file is written atomically.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import multiprocessing as mp
import os
import platform
import random
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from statistics import NormalDist

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from ..checkpoints import atomic_write_bytes, save_safetensors, save_stylegan2
from .model import (
    ToyConfig,
    ToyEncoder,
    _config_from_meta,
    _config_meta,
    _read_safetensors,
    _sub,
    build_models,
    load_toy,
)
from .render import (
    FIELD_GROUPS,
    FIELD_INDEX,
    FIELDS,
    HAIR_STYLES,
    FaceParams,
    render_batch,
    render_torch,
    sample_params,
)
from .score import frechet_distance, load_regressor, param_errors, structure_similarity

__all__ = [
    "ToyConfig",
    "ToyEncoder",
    "build_models",
    "evaluate_model",
    "load_toy",
    "main",
    "params_from_z",
    "train",
    "z_from_params",
]

N_PARAMS = len(FIELDS)


# ----------------------------------------------------------------------------------------------
# z <-> parameters (the warm start's correspondence)
# ----------------------------------------------------------------------------------------------


def z_from_params(params: np.ndarray, style_dim: int, rng: np.random.Generator) -> np.ndarray:
    """[N,P] params in [0,1] -> z [N,style_dim]: first P coordinates Phi^-1(params), rest N(0,1)."""
    if style_dim < N_PARAMS:
        raise ValueError(f"z_from_params: style_dim must be >= {N_PARAMS}, got {style_dim}")
    n = params.shape[0]
    z = rng.standard_normal((n, style_dim)).astype(np.float32)
    nd = NormalDist()
    inv = np.vectorize(lambda u: nd.inv_cdf(min(max(float(u), 1e-4), 1 - 1e-4)))
    z[:, :N_PARAMS] = inv(params).astype(np.float32)
    return z


def params_from_z(z: torch.Tensor) -> FaceParams:
    """Inverse of `z_from_params`: Phi(z[:, :P]) with the hair style snapped to its bin."""
    u = 0.5 * (1.0 + torch.erf(z[:, :N_PARAMS].detach().cpu().float() / math.sqrt(2.0)))
    v = u.numpy().astype(np.float32)
    k = len(HAIR_STYLES)
    j = FIELD_INDEX["hair_style"]
    v[:, j] = (np.minimum((v[:, j] * k).astype(np.int64), k - 1) + 0.5) / k
    return FaceParams.from_vector(v)


def mixed_params(vals: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[N,P] parameters of the mixing-aware targets: face a[i]'s every field except the colour
    group (FIELD_GROUPS["colour"]), which comes from face b[i]. Rendered, they are what
    "coarse W+ layers from a, fine from b" should draw (issue 5: geometry follows the coarse
    layers, colour the fine ones)."""
    out = vals[a].copy()
    cols = [FIELD_INDEX[f] for f in FIELD_GROUPS["colour"]]
    out[:, cols] = vals[b][:, cols]
    return out


def render_photos(vals: np.ndarray, size: int, workers: int = 0) -> np.ndarray:
    """uint8 [N,size,size,3] `photo` renders of the [N,P] parameters (in parallel if asked)."""
    chunks = [(vals[i : i + 256], size) for i in range(0, len(vals), 256)]
    if workers > 1:
        with mp.get_context("spawn").Pool(workers) as pool:
            return np.concatenate(pool.map(_render_chunk, chunks), 0)
    return np.concatenate([_render_chunk(c) for c in chunks], 0)


# ----------------------------------------------------------------------------------------------
# Data: photo renders, rendered once (in parallel) and cached
# ----------------------------------------------------------------------------------------------


def _render_chunk(args: tuple[np.ndarray, int]) -> np.ndarray:
    vals, size = args
    return render_batch(FaceParams(vals), "photo", size)


def make_dataset(
    n: int, size: int, seed: int, cache_dir: Path | None, workers: int = 0, log=print
) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 [n,size,size,3] photo renders, float32 [n,P] params); cached as .npy in cache_dir."""
    name = f"photos_{size}px_{n}_seed{seed}"
    if cache_dir is not None:
        fi, fp = cache_dir / f"{name}.npy", cache_dir / f"{name}_params.npy"
        if fi.is_file() and fp.is_file():
            imgs = np.load(fi, allow_pickle=False)
            vals = np.load(fp, allow_pickle=False)
            if imgs.shape == (n, size, size, 3) and vals.shape == (n, N_PARAMS):
                return imgs, vals
    t0 = time.time()
    vals = sample_params(np.random.default_rng(seed), n).values
    imgs = render_photos(vals, size, workers)
    if log:
        log(
            f"rendered {n} photo faces at {size} px in {time.time() - t0:.0f} s ({workers} workers)"
        )
    if cache_dir is not None:
        cache_dir.mkdir(parents=True, exist_ok=True)
        for arr, path in ((imgs, fi), (vals, fp)):
            tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp.npy")  # runs may share a cache
            np.save(tmp, arr, allow_pickle=False)
            os.replace(tmp, path)
    return imgs, vals


# ----------------------------------------------------------------------------------------------
# Saving and loading
# ----------------------------------------------------------------------------------------------


def _save_tensors(tensors: dict[str, torch.Tensor], path: Path, meta: dict[str, str]) -> None:
    save_safetensors(tensors, path, meta)


def _opt_tensors(opt: torch.optim.Optimizer, prefix: str) -> dict[str, torch.Tensor]:
    out = {}
    for i, st in opt.state_dict()["state"].items():
        for k, v in st.items():
            t = v if isinstance(v, torch.Tensor) else torch.tensor(float(v))
            out[f"{prefix}.{i}.{k}"] = t
    return out


def _load_opt(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], prefix: str) -> None:
    sd = opt.state_dict()
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, t in tensors.items():
        if key.startswith(prefix + "."):
            _, i, k = key.split(".", 2)
            state.setdefault(int(i), {})[k] = t
    sd["state"] = state
    opt.load_state_dict(sd)


# ----------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------


def _requires_grad(m: nn.Module, flag: bool) -> None:
    for p in m.parameters():
        p.requires_grad_(flag)


@torch.no_grad()
def _accumulate(ema: nn.Module, model: nn.Module, decay: float) -> None:
    for pe, pm in zip(ema.parameters(), model.parameters(), strict=True):
        pe.lerp_(pm.detach(), 1.0 - decay)
    for be, bm in zip(ema.buffers(), model.buffers(), strict=True):
        be.copy_(bm)


def _mixed_ws(g: nn.Module, z1: torch.Tensor, z2: torch.Tensor | None) -> torch.Tensor:
    """W+ from one z, or from two with a random crossover layer (style mixing)."""
    w1 = g.mapping(z1)[:, None].expand(-1, g.n_latent, -1)
    if z2 is None:
        return w1
    w2 = g.mapping(z2)[:, None].expand(-1, g.n_latent, -1)
    cut = random.randint(1, g.n_latent - 1)
    return torch.cat([w1[:, :cut], w2[:, cut:]], 1)


def _mix_critic_loss(
    g: nn.Module, critic: nn.Module, z_a: torch.Tensor, z_b: torch.Tensor, cut: int
) -> torch.Tensor:
    """Mixing-aware loss: the critic's (a frozen ParamRegressor) reading of G(W+ layers < cut
    from z_a, the rest from z_b) should have G(z_a)'s geometry and pose and G(z_b)'s colours.
    Targets are detached; the gradient reaches the generator through the mixed image only."""

    geo = [FIELD_INDEX[f] for f in FIELD_GROUPS["geometry"] + FIELD_GROUPS["pose"]]
    col = [FIELD_INDEX[f] for f in FIELD_GROUPS["colour"]]
    wa = g.mapping(z_a)[:, None].expand(-1, g.n_latent, -1)
    wb = g.mapping(z_b)[:, None].expand(-1, g.n_latent, -1)
    with torch.no_grad():
        pa = critic(g.synthesis(wa, noise_mode="random"))
        pb = critic(g.synthesis(wb, noise_mode="random"))
    pm = critic(g.synthesis(torch.cat([wa[:, :cut], wb[:, cut:]], 1), noise_mode="random"))
    return (pm[:, geo] - pa[:, geo]).abs().mean() + (pm[:, col] - pb[:, col]).abs().mean()


def _multiscale_l1(a: torch.Tensor, b: torch.Tensor, levels: int = 3) -> torch.Tensor:
    loss = (a - b).abs().mean()
    for _ in range(levels - 1):
        a, b = F.avg_pool2d(a, 2), F.avg_pool2d(b, 2)
        loss = loss + (a - b).abs().mean()
    return loss / levels


def _machine(device: torch.device) -> str:
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = f"{platform.machine()} CPU, {torch.get_num_threads()} threads"
    return f"{name}; torch {torch.__version__}; {platform.system()}"


def _grid(images: torch.Tensor, nrow: int) -> np.ndarray:
    """[N,3,H,W] in [-1,1] -> uint8 [rows*H, nrow*W, 3]."""
    x = ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().byte()
    n, _, h, w = x.shape
    rows = math.ceil(n / nrow)
    out = torch.zeros(rows * h, nrow * w, 3, dtype=torch.uint8)
    for i in range(n):
        r, c = divmod(i, nrow)
        out[r * h : (r + 1) * h, c * w : (c + 1) * w] = x[i].permute(1, 2, 0)
    return out.numpy()


@torch.no_grad()
def sample_sheet(g: nn.Module, latent_avg: torch.Tensor, seed: int = 0, n: int = 8) -> np.ndarray:
    """uint8 image: rows = truncation 1.0, truncation 0.7, then a mixing grid (coarse layers 0-3
    from the row's face A, fine layers from the column's face B, first row/col the sources)."""
    dev = latent_avg.device
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(n, g.style_dim, generator=gen).to(dev)
    w = g.mapping(z)
    rows = [w, latent_avg + 0.7 * (w - latent_avg)]
    imgs = [g.synthesis(r[:, None].expand(-1, g.n_latent, -1)) for r in rows]
    k = min(4, n - 1)
    wa, wb = w[:k], w[k : 2 * k]
    mix = [torch.full_like(imgs[0][:1], -1.0)]
    mix += list(g.synthesis(wb[:, None].expand(-1, g.n_latent, -1)).split(1))
    for i in range(len(wa)):
        a = wa[i : i + 1, None].expand(-1, g.n_latent, -1)
        mix.append(g.synthesis(a))
        for j in range(len(wb)):
            ws = a.clone()
            ws[:, 4:] = wb[j]
            mix.append(g.synthesis(ws))
    top = _grid(torch.cat(imgs), n)
    bottom = _grid(torch.cat(mix), len(wb) + 1)
    h = g.size
    sheet = np.full((top.shape[0] + h // 4 + bottom.shape[0], top.shape[1], 3), 255, np.uint8)
    sheet[: top.shape[0]] = top
    sheet[top.shape[0] + h // 4 :, : bottom.shape[1]] = bottom
    return sheet


def _save_png(arr: np.ndarray, path: Path) -> None:
    tmp = path.with_name("." + path.name + ".tmp.png")
    Image.fromarray(arr).save(tmp)
    os.replace(tmp, path)


def train(
    cfg: ToyConfig,
    out: str | os.PathLike,
    *,
    device: str | torch.device | None = None,
    resume: bool = False,
    ckpt_every: int = 1000,
    log_every: int = 100,
    workers: int = 0,
    time_limit_s: float | None = None,
    phase_time_s: dict[str, float] | None = None,
    cache_dir: str | os.PathLike | None = None,
    log: Callable[[str], None] | None = print,
) -> dict:
    """Run the three phases (see the module docstring); returns the model card dict.

    time_limit_s caps the whole call; phase_time_s {"warm"|"gan"|"enc": seconds} caps a phase in
    this call (e.g. leave the encoder its share of a fixed GPU slot). Either way the state is
    saved and the outputs written, and `complete` in the card says whether all steps were done.
    cache_dir: where the rendered data set is cached (default: `out`).
    """
    for name in ("warm_steps", "steps", "enc_steps"):
        if getattr(cfg, name) < 0:
            raise ValueError(f"train: {name} must be >= 0, got {getattr(cfg, name)}")
    if cfg.batch < 4 or cfg.batch % 4:
        raise ValueError(
            f"train: batch must be a multiple of 4 (minibatch stddev), got {cfg.batch}"
        )
    if cfg.lr <= 0 or cfg.enc_lr <= 0:
        raise ValueError("train: learning rates must be > 0")
    if cfg.style_dim < N_PARAMS and cfg.warm_steps:
        raise ValueError(f"train: the warm start needs style_dim >= {N_PARAMS}")
    if not 0.0 <= cfg.warm_mix <= 1.0:
        raise ValueError(f"train: warm_mix must be in [0,1], got {cfg.warm_mix}")
    n_latent = 2 * int(math.log2(cfg.size)) - 2
    if cfg.mix_weight < 0:
        raise ValueError(f"train: mix_weight must be >= 0, got {cfg.mix_weight}")
    if cfg.mix_weight > 0 and not cfg.mix_critic:
        raise ValueError("train: mix_weight > 0 needs mix_critic (a parameter regressor file)")
    if cfg.mix_weight > 0 and not Path(cfg.mix_critic).is_file():
        raise FileNotFoundError(
            f"train: mix_critic {cfg.mix_critic}: no such file (train one with "
            "`python -m jojogan.toy.score train --out FILE`)"
        )
    if (cfg.warm_mix > 0 or cfg.mix_weight > 0) and not 0 < cfg.mix_cut < n_latent:
        raise ValueError(f"train: mix_cut must be in 1..{n_latent - 1}, got {cfg.mix_cut}")
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    dev = (
        torch.device(device)
        if device
        else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    )
    say = log or (lambda s: None)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    t_start = time.time()
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)

    g, d, enc = build_models(cfg)
    g_ema, _, _ = build_models(cfg)
    g_ema.load_state_dict(g.state_dict())
    g, d, enc, g_ema = g.to(dev), d.to(dev), enc.to(dev), g_ema.to(dev)
    g_ema.eval()
    _requires_grad(g_ema, False)
    c = cfg.r1_every / (cfg.r1_every + 1)
    opt_g = torch.optim.Adam(g.parameters(), lr=cfg.lr, betas=(0.0, 0.99))
    opt_d = torch.optim.Adam(d.parameters(), lr=cfg.lr * c, betas=(0.0, 0.99**c))
    opt_w = torch.optim.Adam(g.parameters(), lr=cfg.lr * 0.5, betas=(0.9, 0.99))
    opt_e = torch.optim.Adam(enc.parameters(), lr=cfg.enc_lr, betas=(0.9, 0.999))
    done = {"warm": 0, "gan": 0, "enc": 0}
    wall = {"warm": 0.0, "gan": 0.0, "enc": 0.0, "data": 0.0}
    losses: dict[str, float] = {}
    state_path = out_dir / "train_state.safetensors"

    if resume and state_path.is_file():
        tensors, meta = _read_safetensors(state_path)
        old = _config_from_meta(meta, state_path)
        for f in ("size", "style_dim", "n_mlp", "channels", "d_channels", "enc_width"):
            if getattr(old, f) != getattr(cfg, f):
                raise ValueError(
                    f"{state_path}: cannot resume, {f} differs ({getattr(old, f)} in the file, "
                    f"{getattr(cfg, f)} asked)"
                )
        g.load_state_dict(_sub(tensors, "g"), strict=True)
        g_ema.load_state_dict(_sub(tensors, "g_ema"), strict=True)
        d.load_state_dict(_sub(tensors, "d"), strict=True)
        enc.load_state_dict(_sub(tensors, "enc"), strict=True)
        for opt, name in ((opt_g, "opt_g"), (opt_d, "opt_d"), (opt_w, "opt_w"), (opt_e, "opt_e")):
            _load_opt(opt, tensors, name)  # torch moves states to the params' device
        progress = json.loads(meta["jojogan.progress"])
        done, wall, losses = progress["done"], progress["wall"], progress.get("losses", {})
        say(f"resumed from {state_path}: {done}")

    def save_state() -> None:
        tensors: dict[str, torch.Tensor] = {}
        for name, m in (("g", g), ("g_ema", g_ema), ("d", d), ("enc", enc)):
            tensors.update({f"{name}.{k}": v for k, v in m.state_dict().items()})
        for opt, name in ((opt_g, "opt_g"), (opt_d, "opt_d"), (opt_w, "opt_w"), (opt_e, "opt_e")):
            tensors.update(_opt_tensors(opt, name))
        meta = _config_meta(cfg)
        meta["jojogan.progress"] = json.dumps({"done": done, "wall": wall, "losses": losses})
        _save_tensors(tensors, state_path, meta)

    stopped: dict[str, str] = {}

    def stop_reason(phase: str, t_phase: float) -> str:
        target = {"warm": cfg.warm_steps, "gan": cfg.steps, "enc": cfg.enc_steps}[phase]
        if done[phase] >= target:
            return "steps"
        if time_limit_s is not None and time.time() - t_start > time_limit_s:
            return "time limit"
        return "phase time cap"

    def out_of_time(phase: str, t_phase: float) -> bool:
        if time_limit_s is not None and time.time() - t_start > time_limit_s:
            return True
        cap = (phase_time_s or {}).get(phase)
        return cap is not None and time.time() - t_phase > cap

    t0 = time.time()
    imgs_np, vals_np = make_dataset(
        cfg.data_size, cfg.size, cfg.seed, Path(cache_dir or out_dir), workers, say
    )
    wall["data"] += time.time() - t0
    data = torch.from_numpy(imgs_np).to(dev)  # uint8 [N,H,W,3]
    n_data = data.shape[0]
    gen = torch.Generator().manual_seed(cfg.seed + done["warm"] + done["gan"] + done["enc"])

    def real_batch(idx: torch.Tensor | None = None) -> torch.Tensor:
        if idx is None:
            idx = torch.randint(0, n_data, (cfg.batch,), generator=gen)
        return data[idx.to(dev)].permute(0, 3, 1, 2).float() / 127.5 - 1.0

    def check(value: torch.Tensor, what: str, step: int) -> float:
        v = float(value.detach())
        if not math.isfinite(v):
            raise FloatingPointError(
                f"train: {what} diverged at step {step} (loss {v}); "
                "lower --lr or resume from the last checkpoint"
            )
        return v

    # -- phase 1: supervised warm start -----------------------------------------------------
    if done["warm"] < cfg.warm_steps:
        z_all = torch.from_numpy(
            z_from_params(vals_np, cfg.style_dim, np.random.default_rng(cfg.seed + 1))
        ).to(dev)
        if cfg.warm_mix > 0:  # pairs (a, b) and renders of a's geometry in b's colours
            rng = np.random.default_rng(cfg.seed + 2)
            n_mix = max(cfg.batch, n_data // 2)
            pa, pb = rng.integers(0, n_data, n_mix), rng.integers(0, n_data, n_mix)
            t0 = time.time()
            mix_imgs = torch.from_numpy(
                render_photos(mixed_params(vals_np, pa, pb), cfg.size, workers)
            ).to(dev)
            pa, pb = torch.from_numpy(pa).to(dev), torch.from_numpy(pb).to(dev)
            wall["data"] += time.time() - t0
            say(f"rendered {n_mix} mixing-aware targets (cut {cfg.mix_cut})")
        g.train()
        t0 = time.time()
        t_phase = time.time()
        while done["warm"] < cfg.warm_steps and not out_of_time("warm", t_phase):
            if cfg.warm_mix > 0 and random.random() < cfg.warm_mix:
                j = torch.randint(0, len(mix_imgs), (cfg.batch,), generator=gen).to(dev)
                wa = g.mapping(z_all[pa[j]])[:, None].expand(-1, g.n_latent, -1)
                wb = g.mapping(z_all[pb[j]])[:, None].expand(-1, g.n_latent, -1)
                ws = torch.cat([wa[:, : cfg.mix_cut], wb[:, cfg.mix_cut :]], 1)
                target = mix_imgs[j].permute(0, 3, 1, 2).float() / 127.5 - 1.0
            else:
                idx = torch.randint(0, n_data, (cfg.batch,), generator=gen)
                ws = g.mapping(z_all[idx.to(dev)])[:, None].expand(-1, g.n_latent, -1)
                target = real_batch(idx)
            fake = g.synthesis(ws, noise_mode="random")
            loss = _multiscale_l1(fake, target)
            opt_w.zero_grad(set_to_none=True)
            loss.backward()
            opt_w.step()
            _accumulate(g_ema, g, 0.0)  # the warm start is deterministic: copy
            done["warm"] += 1
            losses["warm_l1"] = check(loss, "warm-start L1", done["warm"])
            if log_every and done["warm"] % log_every == 0:
                say(f"warm {done['warm']}/{cfg.warm_steps} L1 {losses['warm_l1']:.4f}")
            if done["warm"] % ckpt_every == 0:
                wall["warm"] += time.time() - t0
                t0 = time.time()
                save_state()
        wall["warm"] += time.time() - t0
        stopped["warm"] = stop_reason("warm", t_phase)

    def latents() -> tuple[torch.Tensor, torch.Tensor | None]:
        z1 = torch.randn(cfg.batch, cfg.style_dim, generator=gen).to(dev)
        z2 = torch.randn(cfg.batch, cfg.style_dim, generator=gen).to(dev)
        return z1, (z2 if random.random() < cfg.mixing else None)

    # -- phase 2: adversarial ---------------------------------------------------------------
    critic = None
    if cfg.mix_weight > 0 and done["gan"] < cfg.steps:
        critic = load_regressor(cfg.mix_critic, dev)
        _requires_grad(critic, False)
    if done["gan"] < cfg.steps:
        decay = 0.5 ** (cfg.batch / max(cfg.ema_kimg * 1000.0, 1e-8))
        g.train()
        d.train()
        t0 = time.time()
        t_phase = time.time()
        gan_at_start = done["gan"]
        while done["gan"] < cfg.steps and not out_of_time("gan", t_phase):
            step = done["gan"]

            # D step: softplus(D(fake)) + softplus(-D(real))
            _requires_grad(g, False)
            _requires_grad(d, True)
            real = real_batch()
            with torch.no_grad():
                fake = g.synthesis(_mixed_ws(g, *latents()), noise_mode="random")
            d_loss = F.softplus(d(fake)).mean() + F.softplus(-d(real)).mean()
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
            losses["d"] = check(d_loss, "discriminator loss", step)

            # lazy R1 on reals
            if step % cfg.r1_every == 0:
                real = real_batch().requires_grad_(True)
                out = d(real)
                (grad,) = torch.autograd.grad(out.sum(), real, create_graph=True)
                r1 = grad.pow(2).flatten(1).sum(1).mean()
                opt_d.zero_grad(set_to_none=True)
                (cfg.r1_gamma / 2 * r1 * cfg.r1_every).backward()
                opt_d.step()
                losses["r1"] = check(r1, "R1 penalty", step)

            # G step: softplus(-D(G(z)))
            _requires_grad(g, True)
            _requires_grad(d, False)
            fake = g.synthesis(_mixed_ws(g, *latents()), noise_mode="random")
            g_loss = F.softplus(-d(fake)).mean()
            if critic is not None:
                half = max(cfg.batch // 2, 1)
                zs = torch.randn(2, half, cfg.style_dim, generator=gen).to(dev)
                mix = _mix_critic_loss(g, critic, zs[0], zs[1], cfg.mix_cut)
                losses["mix"] = check(mix, "mixing-critic loss", step)
                g_loss = g_loss + cfg.mix_weight * mix
            opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            opt_g.step()
            losses["g"] = check(g_loss, "generator loss", step)
            _accumulate(g_ema, g, decay)
            done["gan"] += 1
            if log_every and done["gan"] % log_every == 0:
                # this call's rate: the cumulative one hides a change of machine on resume
                rate = (done["gan"] - gan_at_start) / max(time.time() - t_phase, 1e-6)
                say(
                    f"gan {done['gan']}/{cfg.steps} d {losses['d']:.3f} g {losses['g']:.3f} "
                    f"r1 {losses.get('r1', 0):.3f}"
                    + (f" mix {losses['mix']:.3f}" if "mix" in losses else "")
                    + f" ({rate:.1f} steps/s)"
                )
            if done["gan"] % ckpt_every == 0:
                wall["gan"] += time.time() - t0
                t0 = time.time()
                save_state()
        wall["gan"] += time.time() - t0
        stopped["gan"] = stop_reason("gan", t_phase)
        if done["enc"]:
            say("the generator changed after the encoder was trained: retraining the encoder")
            done["enc"] = 0
    _requires_grad(d, False)

    # -- phase 3: encoder -------------------------------------------------------------------
    latent_avg = g_ema.mean_latent(4096, seed=cfg.seed).detach()[0]
    enc.latent_avg.copy_(latent_avg)
    if done["enc"] < cfg.enc_steps:
        enc.train()
        t0 = time.time()
        t_phase = time.time()
        while done["enc"] < cfg.enc_steps and not out_of_time("enc", t_phase):
            b = cfg.batch
            with torch.no_grad():
                z1 = torch.randn(b, cfg.style_dim, generator=gen).to(dev)
                z2 = torch.randn(b, cfg.style_dim, generator=gen).to(dev)
                ws_true = _mixed_ws(g_ema, z1, z2 if random.random() < 0.5 else None)
                fake = g_ema.synthesis(ws_true)
            ws_fake, deltas = enc(fake, return_deltas=True)
            lat = (ws_fake - ws_true).pow(2).mean()
            real = real_batch()
            ws_real, deltas_r = enc(real, return_deltas=True)
            rec = g_ema.synthesis(torch.cat([ws_fake, ws_real]))
            target = torch.cat([fake, real])
            pix = (rec - target).abs().mean()
            fr = d.features(rec, (1, 2))
            ft = d.features(target, (1, 2))
            feat = sum((a - t).abs().mean() for a, t in zip(fr, ft, strict=True))
            reg = deltas.pow(2).mean() + deltas_r.pow(2).mean()
            loss = lat + pix + 0.1 * feat + 1e-3 * reg
            opt_e.zero_grad(set_to_none=True)
            loss.backward()
            opt_e.step()
            done["enc"] += 1
            losses.update(
                enc_latent=check(lat, "encoder latent loss", done["enc"]),
                enc_l1=float(pix.detach()),
                enc_feat=float(feat.detach()),
            )
            if log_every and done["enc"] % log_every == 0:
                say(f"enc {done['enc']}/{cfg.enc_steps} latent {lat:.4f} L1 {pix:.4f}")
            if done["enc"] % ckpt_every == 0:
                wall["enc"] += time.time() - t0
                t0 = time.time()
                save_state()
        wall["enc"] += time.time() - t0
        stopped["enc"] = stop_reason("enc", t_phase)
    enc.eval()

    # -- outputs ----------------------------------------------------------------------------
    save_state()
    meta = _config_meta(cfg)
    save_stylegan2(
        out_dir / "toy_stylegan2.safetensors",
        g_ema=g_ema,
        d=d,
        latent_avg=latent_avg,
        metadata=meta,
    )
    _save_tensors(
        {k: v.detach() for k, v in enc.state_dict().items()},
        out_dir / "toy_encoder.safetensors",
        meta,
    )
    _save_png(sample_sheet(g_ema, latent_avg, cfg.seed), out_dir / "samples.png")
    card = {
        "model": "jojogan toy-faces StyleGAN2 + discriminator + e4e-like encoder",
        "config": dataclasses.asdict(cfg),
        "steps_done": done,
        "wall_s": {k: round(v, 1) for k, v in wall.items()},
        "total_wall_s": round(sum(wall.values()), 1),
        "machine": _machine(dev),
        "final_losses": {k: round(v, 5) for k, v in losses.items()},
        "files": ["toy_stylegan2.safetensors", "toy_encoder.safetensors", "samples.png"],
        "command": "python -m jojogan.toy.train " + " ".join(sys.argv[1:]),
        "stopped_by": stopped,
        "complete": done["warm"] >= cfg.warm_steps
        and done["gan"] >= cfg.steps
        and done["enc"] >= cfg.enc_steps,
    }
    atomic_write_bytes(out_dir / "model_card.json", json.dumps(card, indent=1).encode())
    atomic_write_bytes(out_dir / "MODEL_CARD.md", _card_md(card).encode())
    say(f"wrote {out_dir} ({card['total_wall_s']} s, {done})")
    return card


@torch.no_grad()
def evaluate_model(
    out_dir: str | os.PathLike,
    regressor: str | os.PathLike | None = None,
    n: int = 1024,
    seed: int = 1234,
    mix_cut: int | None = None,
    device: str | torch.device | None = None,
) -> dict:
    """Measure a trained toy model with the renderer's ground truth (issue 5's checks).

    - fid_samples: Fréchet distance between regressor features of n generator samples and of n
      photo renders, next to fid_renders (two independent render sets: the floor); the same on
      the predicted parameter vectors (fpd_*).
    - encoder: held-out photo renders -> encoder -> generator: mean L1 in [-1,1], structure
      similarity, and parameter errors of the reconstruction next to the regressor's own error
      on the renders themselves (the bound).
    - mixing: W+ layers < mix_cut (default: the model's ToyConfig.mix_cut) from face A, the rest
      from B: geometry and colour parameter
      errors of the mix against A and against B (geometry should follow A, colour B).
    Uses `regressor` (default: OUT/param_regressor.safetensors, else the shipped one). Writes
    OUT/eval.json and returns the dict.
    """
    out = Path(out_dir)
    dev = torch.device(device) if device else torch.device("cpu")
    g, _, enc, latent_avg, cfg = load_toy(out, dev)
    mix_cut = cfg.mix_cut if mix_cut is None else mix_cut
    reg_path = Path(regressor) if regressor else out / "param_regressor.safetensors"
    reg = load_regressor(reg_path if reg_path.is_file() else None, dev)
    gen = torch.Generator().manual_seed(seed)

    def synth(ws: torch.Tensor) -> torch.Tensor:
        return torch.cat([g.synthesis(ws[i : i + 64]) for i in range(0, len(ws), 64)])

    def feats(x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        f = torch.cat([reg.features(x[i : i + 128]) for i in range(0, len(x), 128)])
        return f.cpu().numpy(), reg.predict(x).values

    def w_plus(z: torch.Tensor) -> torch.Tensor:
        return g.mapping(z)[:, None].expand(-1, g.n_latent, -1)

    p_a, p_b = sample_params(seed, n), sample_params(seed + 1, n)
    real_a = render_torch(p_a, "photo", cfg.size, dev)
    real_b = render_torch(p_b, "photo", cfg.size, dev)
    fake = synth(w_plus(torch.randn(n, cfg.style_dim, generator=gen).to(dev)))
    (fa, pa), (fb, pb), (ff, pf) = feats(real_a), feats(real_b), feats(fake)
    res: dict = {
        "n": n,
        "regressor": str(reg_path if reg_path.is_file() else "shipped default"),
        "fid_samples": frechet_distance(ff, fa),
        "fid_renders": frechet_distance(fb, fa),
        "fpd_samples": frechet_distance(pf, pa),
        "fpd_renders": frechet_distance(pb, pa),
        "regressor_error_on_renders": param_errors(pa, p_a),
    }
    if enc is not None:
        ws = torch.cat([enc(real_a[i : i + 64]) for i in range(0, n, 64)])
        rec = synth(ws)
        res["encoder"] = {
            "l1": float((rec - real_a).abs().mean()),
            "structure": float(structure_similarity(rec, real_a).mean()),
            "param_errors": param_errors(reg.predict(rec), p_a),
        }
    za = torch.randn(n, cfg.style_dim, generator=gen).to(dev)
    zb = torch.randn(n, cfg.style_dim, generator=gen).to(dev)
    wa, wb = w_plus(za), w_plus(zb)
    mixed = torch.cat([wa[:, :mix_cut], wb[:, mix_cut:]], 1)
    img_a, img_b, img_m = synth(wa), synth(wb), synth(mixed)
    qa, qb, qm = reg.predict(img_a), reg.predict(img_b), reg.predict(img_m)
    ea, eb = param_errors(qm, qa), param_errors(qm, qb)
    res["mixing"] = {
        "cut": mix_cut,
        "geometry_vs_A": ea["geometry"],
        "geometry_vs_B": eb["geometry"],
        "colour_vs_A": ea["colour"],
        "colour_vs_B": eb["colour"],
        "pose_vs_A": ea["pose"],
        "pose_vs_B": eb["pose"],
    }
    atomic_write_bytes(out / "eval.json", json.dumps(res, indent=1).encode())
    return res


def _card_md(card: dict) -> str:
    cfg = card["config"]
    steps = card["steps_done"]
    lines = [
        "# Toy-faces base model",
        "",
        "A small StyleGAN2 (jojogan.stylegan2, rosinality layout), its discriminator and an",
        "e4e-like encoder, trained on `photo` renders of jojogan.toy.render only.",
        "",
        f"- Command: `{card['command']}`",
        f"- Machine: {card['machine']}",
        f"- Steps: warm start {steps['warm']}, adversarial {steps['gan']}, encoder {steps['enc']}"
        + ("" if card["complete"] else f" (INCOMPLETE: stopped by {card['stopped_by']})"),
        f"- Wall time: {card['total_wall_s']} s ({card['wall_s']})",
        f"- Final losses: {card['final_losses']}",
        f"- Generator: {cfg['size']} px, style_dim {cfg['style_dim']}, n_mlp {cfg['n_mlp']}, "
        f"channels {cfg['channels']}",
        f"- Recipe: batch {cfg['batch']}, lr {cfg['lr']}, R1 gamma {cfg['r1_gamma']} every "
        f"{cfg['r1_every']}, mixing {cfg['mixing']}, EMA half-life {cfg['ema_kimg']} kimg, "
        f"data {cfg['data_size']} renders, seed {cfg['seed']}",
        "",
        "![samples](samples.png)",
        "",
        "samples.png: row 1 truncation 1.0, row 2 truncation 0.7; below, a mixing grid (row",
        "sources give W+ layers 0-3, column sources layers 4+).",
        "",
    ]
    return "\n".join(lines)


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None


def main(argv: Sequence[str] | None = None) -> int:
    d = ToyConfig()
    ap = argparse.ArgumentParser(
        prog="python -m jojogan.toy.train",
        description="Train the toy-faces StyleGAN2, discriminator and encoder (see module doc).",
    )
    ap.add_argument("--out", required=True, help="output folder (created)")
    ap.add_argument(
        "--evaluate",
        action="store_true",
        help="do not train: measure the model in OUT (see evaluate_model), write OUT/eval.json",
    )
    ap.add_argument("--regressor", default=None, help="parameter regressor for --evaluate")
    ap.add_argument("--eval-n", type=int, default=1024, help="faces per set (>= 1024 for FD)")
    ap.add_argument("--size", type=int, default=d.size)
    ap.add_argument("--style-dim", type=int, default=d.style_dim)
    ap.add_argument("--n-mlp", type=int, default=d.n_mlp)
    ap.add_argument("--channels", type=_ints, default=d.channels, help="widths at 4,8,..,size px")
    ap.add_argument("--d-channels", type=_ints, default=None)
    ap.add_argument("--enc-width", type=int, default=d.enc_width)
    ap.add_argument("--batch", type=int, default=d.batch)
    ap.add_argument("--lr", type=float, default=d.lr)
    ap.add_argument("--r1-gamma", type=float, default=d.r1_gamma)
    ap.add_argument("--mixing", type=float, default=d.mixing)
    ap.add_argument("--ema-kimg", type=float, default=d.ema_kimg)
    ap.add_argument("--warm-steps", type=int, default=d.warm_steps)
    ap.add_argument(
        "--warm-mix",
        type=float,
        default=d.warm_mix,
        help="share of warm-start batches whose target is A's geometry in B's colours",
    )
    ap.add_argument("--mix-cut", type=int, default=d.mix_cut, help="first 'fine' W+ layer")
    ap.add_argument(
        "--mix-weight",
        type=float,
        default=d.mix_weight,
        help="weight of the mixing critic in the adversarial phase (0 = off)",
    )
    ap.add_argument(
        "--mix-critic",
        default=d.mix_critic,
        help="parameter regressor (.safetensors) that reads geometry and colours for --mix-weight",
    )
    ap.add_argument("--steps", type=int, default=d.steps, help="adversarial steps")
    ap.add_argument("--enc-steps", type=int, default=d.enc_steps)
    ap.add_argument("--data-size", type=int, default=d.data_size)
    ap.add_argument("--seed", type=int, default=d.seed)
    ap.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, ...")
    ap.add_argument("--resume", action="store_true", help="continue from OUT/train_state")
    ap.add_argument("--ckpt-every", type=int, default=1000)
    ap.add_argument("--log-every", type=int, default=100)
    ap.add_argument("--workers", type=int, default=0, help="processes that render the data")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--time-limit", type=float, default=None, help="stop and save after N s")
    for ph, what in (("warm", "warm start"), ("gan", "adversarial phase"), ("enc", "encoder")):
        ap.add_argument(f"--{ph}-time", type=float, default=None, help=f"cap the {what} (s)")
    ap.add_argument("--cache-dir", default=None, help="where to cache renders (default: --out)")
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    if a.evaluate:
        try:
            dev = None if a.device == "auto" else a.device
            if dev is None and torch.cuda.is_available():
                dev = "cuda"
            res = evaluate_model(a.out, a.regressor, n=a.eval_n, device=dev)
        except (ValueError, FileNotFoundError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        print(json.dumps(res, indent=1))
        return 0
    cfg = ToyConfig(
        size=a.size,
        style_dim=a.style_dim,
        n_mlp=a.n_mlp,
        channels=a.channels,
        d_channels=a.d_channels,
        enc_width=a.enc_width,
        batch=a.batch,
        lr=a.lr,
        r1_gamma=a.r1_gamma,
        mixing=a.mixing,
        ema_kimg=a.ema_kimg,
        warm_steps=a.warm_steps,
        warm_mix=a.warm_mix,
        mix_cut=a.mix_cut,
        mix_weight=a.mix_weight,
        mix_critic=a.mix_critic,
        steps=a.steps,
        enc_steps=a.enc_steps,
        data_size=a.data_size,
        seed=a.seed,
    )
    try:
        cfg.channel_map("g")
        cfg.channel_map("d")
        train(
            cfg,
            a.out,
            device=None if a.device == "auto" else a.device,
            resume=a.resume,
            ckpt_every=max(1, a.ckpt_every),
            log_every=a.log_every,
            workers=a.workers,
            time_limit_s=a.time_limit,
            phase_time_s={
                k: v
                for k, v in (("warm", a.warm_time), ("gan", a.gan_time), ("enc", a.enc_time))
                if v is not None
            },
            cache_dir=a.cache_dir,
        )
    except (ValueError, FloatingPointError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
