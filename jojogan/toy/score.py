"""Ground-truth measures for the toy-faces domain (DESIGN.md section 5).

Pixel L1 to a ground-truth render misleads (FACTS.md: for a sketch reference, copying the reference
scored better than stylizing), so the quality benchmark uses measures that separate *what* is drawn
from *how*:

- `ParamRegressor`: a small CNN that reads the identity parameters (FIELDS) back from a render of
  any style; `param_errors` compares its reading with the truth per field group (geometry, gaze,
  pose, colour). Trained with `train_regressor` (CLI: `python -m jojogan.toy.score train`).
- `structure_similarity`: gradient-orientation agreement of luminance (style-tolerant: an outline
  and a shading edge at the same place agree); `ssim_luma`: SSIM on luminance.
- `palette_distance`: sliced Wasserstein distance between the two images' colour distributions
  (where the colours are, not where they are).
- `frechet_distance`: between two feature sets (e.g. regressor features of samples vs renders).

Images are torch float [B,3,H,W] in [-1,1] or uint8 numpy [B,H,W,3] (converted by `as_tensor`).
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import platform
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoints import (
    load_file,
    load_state_dict_strict,
    read_safetensors_metadata,
    save_safetensors,
)
from ..devices import pick_device
from ..invert import edge_map
from .render import (
    FIELD_GROUPS,
    FIELD_INDEX,
    FIELDS,
    HAIR_STYLES,
    STYLES,
    FaceParams,
    Scene,
    render_float,
    sample_params,
)
from .render import style_names as _style_names

__all__ = [
    "DEFAULT_REGRESSOR",
    "ParamRegressor",
    "as_tensor",
    "evaluate_regressor",
    "fit_by_synthesis",
    "frechet_distance",
    "load_regressor",
    "palette_distance",
    "param_errors",
    "save_regressor",
    "ssim_luma",
    "structure_similarity",
    "train_regressor",
    "warp_to_layouts",
]

DEFAULT_REGRESSOR = Path(__file__).resolve().parent / "weights" / "param_regressor.safetensors"


def as_tensor(images: torch.Tensor | np.ndarray) -> torch.Tensor:
    """uint8 [B,H,W,3] / [H,W,3] numpy or float [B,3,H,W] tensor -> float32 [B,3,H,W] in [-1,1]."""
    if isinstance(images, np.ndarray):
        if images.dtype != np.uint8 or images.shape[-1] != 3 or images.ndim not in (3, 4):
            raise ValueError(
                f"as_tensor: numpy images must be uint8 [B,H,W,3] or [H,W,3], got "
                f"{images.dtype} {images.shape}"
            )
        arr = images[None] if images.ndim == 3 else images
        t = torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 3, 1, 2).float()
        return t / 127.5 - 1.0
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
        shape = tuple(images.shape) if hasattr(images, "shape") else type(images).__name__
        raise ValueError(f"as_tensor: expected a [B,3,H,W] tensor in [-1,1], got {shape}")
    return images.float()


def _luma(x: torch.Tensor) -> torch.Tensor:
    """[B,3,H,W] in [-1,1] -> [B,1,H,W] in [0,1]."""
    w = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return ((x + 1.0) * 0.5 * w).sum(1, keepdim=True)


def _gauss(x: torch.Tensor, sigma: float) -> torch.Tensor:
    r = max(1, int(math.ceil(2.5 * sigma)))
    t = torch.arange(-r, r + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    x = F.conv2d(
        F.pad(x, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c
    )
    return F.conv2d(
        F.pad(x, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c
    )


def _pair(
    a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray
) -> tuple[torch.Tensor, torch.Tensor]:
    ta, tb = as_tensor(a), as_tensor(b)
    if ta.shape[2:] != tb.shape[2:]:
        tb = F.interpolate(
            tb, size=ta.shape[2:], mode="bilinear", align_corners=False, antialias=True
        )
    if tb.shape[0] != ta.shape[0]:
        if tb.shape[0] == 1:
            tb = tb.expand(ta.shape[0], -1, -1, -1)
        else:
            raise ValueError(f"score: batch sizes differ ({ta.shape[0]} vs {tb.shape[0]})")
    return ta, tb.to(ta.device)


@torch.no_grad()
def structure_similarity(
    a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray, sigma: float = 1.0
) -> torch.Tensor:
    """Gradient-orientation agreement of luminance, [B] in [-1, 1] (1 = same edges).

    Each pixel's luminance gradient (after a Gaussian blur of `sigma` px, so 1-px shifts are
    tolerated) is turned into a doubled-angle vector (gx^2 - gy^2, 2 gx gy); its sign-free
    orientation makes a dark outline and a shading step at the same place agree. The score is the
    cosine between the two images' vector fields, each pixel weighted by gradient energy.
    """
    ta, tb = _pair(a, b)

    def field(x: torch.Tensor) -> torch.Tensor:
        y = _gauss(_luma(x), sigma)
        gx = y[..., :, 2:] - y[..., :, :-2]
        gy = y[..., 2:, :] - y[..., :-2, :]
        gx, gy = gx[..., 1:-1, :], gy[..., :, 1:-1]
        return torch.cat([gx * gx - gy * gy, 2.0 * gx * gy], 1).flatten(1)

    fa, fb = field(ta), field(tb)
    den = fa.norm(dim=1) * fb.norm(dim=1) + 1e-12
    return (fa * fb).sum(1) / den


def warp_to_layouts(
    image: torch.Tensor,
    source: torch.Tensor,
    targets: torch.Tensor,
    *,
    grid: int = 8,
    smooth: float = 10.0,
    steps: int = 200,
    lr: float = 0.02,
) -> torch.Tensor:
    """The "warped reference" baseline: ``image`` [1,3,H,W] resampled onto the layout of each of
    ``targets`` [B,3,H,W], by smooth flows fitted from ``source`` [1,3,H,W] (a photo-like drawing
    of the face in ``image``, e.g. the base generator's G(w_ref)) to each target. No learning:
    it moves the reference's lines and colours onto the input's outline, and cannot draw the
    input's own features (eye size, brows, mouth) that a smooth flow does not carry.

    A flow is a ``grid`` x ``grid`` field of displacements (normalised coordinates, bicubically
    upsampled), fitted by ``steps`` Adam steps to match Gaussian-blurred Sobel edges
    (`jojogan.invert.edge_map`) and luminance, plus ``smooth`` x the squared differences of
    neighbouring displacements. No randomness (the same inputs and thread count give the same
    bytes); returns [B,3,H,W] in the range of ``image``."""
    if image.ndim != 4 or image.shape[0] != 1 or source.shape != image.shape:
        raise ValueError(
            f"warp_to_layouts: image and source must both be [1,3,H,W] of one size, got "
            f"{tuple(image.shape)} and {tuple(source.shape)}"
        )
    if targets.ndim != 4 or targets.shape[1:] != image.shape[1:]:
        raise ValueError(
            f"warp_to_layouts: targets must be [B,{image.shape[1]},{image.shape[2]},"
            f"{image.shape[3]}], got {tuple(targets.shape)}"
        )
    n, _, h, w = targets.shape

    def feats(x: torch.Tensor) -> torch.Tensor:
        return torch.cat([_gauss(edge_map(x, max_size=max(h, w)), 1.5), _gauss(_luma(x), 1.5)], 1)

    identity = torch.eye(2, 3, dtype=targets.dtype, device=targets.device)
    base = F.affine_grid(identity.expand(n, 2, 3), [n, 1, h, w], align_corners=True)

    def sample(x: torch.Tensor, disp: torch.Tensor) -> torch.Tensor:
        dense = F.interpolate(disp, size=(h, w), mode="bicubic", align_corners=True)
        return F.grid_sample(
            x.expand(n, -1, -1, -1),
            base + dense.permute(0, 2, 3, 1),
            mode="bilinear",
            padding_mode="border",
            align_corners=True,
        )

    with torch.no_grad():
        f_src, f_tgt = feats(source.detach()), feats(targets.detach())
    disp = torch.zeros(n, 2, grid, grid, dtype=targets.dtype, device=targets.device)
    disp.requires_grad_(True)
    opt = torch.optim.Adam([disp], lr=lr)
    with torch.enable_grad():
        for _ in range(steps):
            tv = (disp[..., 1:, :] - disp[..., :-1, :]).square().mean() + (
                disp[..., 1:] - disp[..., :-1]
            ).square().mean()
            loss = (sample(f_src, disp) - f_tgt).abs().mean() + smooth * tv
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    with torch.no_grad():
        return sample(image.detach(), disp.detach())


@torch.no_grad()
def ssim_luma(
    a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray, sigma: float = 1.5
) -> torch.Tensor:
    """SSIM (Wang et al. 2004) of luminance in [0,1] with a Gaussian window: [B], 1 = identical."""
    ta, tb = _pair(a, b)
    x, y = _luma(ta), _luma(tb)
    mx, my = _gauss(x, sigma), _gauss(y, sigma)
    vx = _gauss(x * x, sigma) - mx * mx
    vy = _gauss(y * y, sigma) - my * my
    cxy = _gauss(x * y, sigma) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return s.flatten(1).mean(1)


@torch.no_grad()
def palette_distance(
    a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray, n_proj: int = 32, seed: int = 0
) -> torch.Tensor:
    """Sliced Wasserstein-1 distance between the RGB pixel distributions of a and b: [B], >= 0.

    In units of the [-1,1] range (0 = same colours in the same amounts, wherever they are). Uses
    `n_proj` fixed random directions (seeded) plus the three channel axes.
    """
    ta, tb = _pair(a, b)
    g = torch.Generator().manual_seed(seed)
    d = torch.randn(n_proj, 3, generator=g)
    d = torch.cat([torch.eye(3), d / d.norm(dim=1, keepdim=True)], 0).to(ta)
    pa = torch.einsum("pc,bcn->bpn", d, ta.flatten(2)).sort(-1).values
    pb = torch.einsum("pc,bcn->bpn", d, tb.flatten(2)).sort(-1).values
    return (pa - pb).abs().mean((1, 2))


def frechet_distance(
    feats_a: np.ndarray | torch.Tensor, feats_b: np.ndarray | torch.Tensor
) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets [Na,D], [Nb,D] (as in FID).

    |mu_a - mu_b|^2 + tr(Ca + Cb - 2 (Ca^1/2 Cb Ca^1/2)^1/2), computed in float64 with symmetric
    eigendecompositions (no scipy needed).
    """
    fa = np.asarray(
        feats_a.detach().cpu() if isinstance(feats_a, torch.Tensor) else feats_a, np.float64
    )
    fb = np.asarray(
        feats_b.detach().cpu() if isinstance(feats_b, torch.Tensor) else feats_b, np.float64
    )
    if fa.ndim != 2 or fb.ndim != 2 or fa.shape[1] != fb.shape[1] or min(len(fa), len(fb)) < 2:
        raise ValueError(
            f"frechet_distance: need two [N,D] arrays with the same D and N >= 2, got "
            f"{fa.shape} and {fb.shape}"
        )
    mu = fa.mean(0) - fb.mean(0)
    ca = np.cov(fa, rowvar=False)
    cb = np.cov(fb, rowvar=False)

    def sqrtm(m: np.ndarray) -> np.ndarray:
        w, v = np.linalg.eigh((m + m.T) * 0.5)
        return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T

    sa = sqrtm(ca)
    cross = sqrtm(sa @ cb @ sa)
    return float(mu @ mu + np.trace(ca) + np.trace(cb) - 2.0 * np.trace(cross))


def param_errors(
    pred: FaceParams | np.ndarray,
    true: FaceParams | np.ndarray,
    groups: Sequence[str] = ("geometry", "gaze", "pose", "colour"),
) -> dict[str, float]:
    """Mean absolute error per field group (FIELD_GROUPS), in parameter units ([0,1] ranges).

    Also `hair_style_acc`: the fraction of faces whose discrete hair style is read correctly.
    Guessing 0.5 everywhere scores 0.25 per field; a uniform random guess ~0.33.
    """
    p = pred.values if isinstance(pred, FaceParams) else np.asarray(pred, np.float32)
    t = true.values if isinstance(true, FaceParams) else np.asarray(true, np.float32)
    if p.shape != t.shape or p.ndim != 2 or p.shape[1] != len(FIELDS):
        raise ValueError(
            f"param_errors: shapes must both be [N,{len(FIELDS)}], got {p.shape}, {t.shape}"
        )
    err = np.abs(p - t)
    out: dict[str, float] = {}
    for g in groups:
        if g not in FIELD_GROUPS:
            raise KeyError(f"param_errors: unknown group {g!r}; known: {list(FIELD_GROUPS)}")
        idx = [FIELD_INDEX[f] for f in FIELD_GROUPS[g]]
        out[g] = float(err[:, idx].mean())
    k = FIELD_INDEX["hair_style"]
    n = len(HAIR_STYLES)
    ps = np.minimum((np.clip(p[:, k], 0, 1) * n).astype(int), n - 1)
    ts = np.minimum((t[:, k] * n).astype(int), n - 1)
    out["hair_style_acc"] = float((ps == ts).mean())
    return out


def _masked_ncc(cands: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Normalised cross-correlation of [K,H,W] candidates with [H,W] target inside mask: [K]."""
    w = mask / mask.sum().clamp_min(1.0)
    t = target - (target * w).sum()
    c = cands - (cands * w).sum((1, 2), keepdim=True)
    num = (c * t * w).sum((1, 2))
    den = ((c * c * w).sum((1, 2)) * (t * t * w).sum()).sqrt() + 1e-8
    return num / den


def _orient(y: torch.Tensor) -> torch.Tensor:
    """[K,H,W] luminance -> [K,2,H,W] doubled-angle gradient field (zero at the border)."""
    gx = torch.zeros_like(y)
    gy = torch.zeros_like(y)
    gx[:, :, 1:-1] = y[:, :, 2:] - y[:, :, :-2]
    gy[:, 1:-1, :] = y[:, 2:, :] - y[:, :-2, :]
    return torch.stack([gx * gx - gy * gy, 2.0 * gx * gy], 1)


def _masked_cos(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Cosine between [K,2,H,W] and [1,2,H,W] fields inside mask: [K]."""
    a = (a * mask).flatten(1)
    b = (b * mask).flatten(1)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1) + 1e-12)


@torch.no_grad()
def fit_by_synthesis(
    images: torch.Tensor | np.ndarray,
    params: FaceParams,
    style: str,
    fields: Sequence[str] = ("gaze_x", "gaze_y"),
    grid: int = 7,
    rounds: int = 2,
    region: str = "eyes",
    objective: str = "luma",
) -> FaceParams:
    """Read `fields` from images by analysis-by-synthesis (no learned model).

    For face i, every other field is taken from `params[i]` (the known identity); `fields` are
    searched on a grid (refined `rounds` times around the best point) for the render in `style`
    whose blurred luminance correlates best (normalised cross-correlation, so a somewhat different
    palette or line weight still matches) with the image inside `region` ("eyes": around the eye
    whites; "face": the face; "all"). objective "structure" compares gradient orientations instead
    (as `structure_similarity`), more tolerant of a different palette (e.g. geometry of a photo
    read with cartoon renders). Suited to gaze, which a regressor at 64 px reads poorly:
    `fit_by_synthesis(stylized, p_u, S)` says where the output looks, in the renderer's units.
    With more than two fields the search is coordinate descent from 0.5 (grid * len(fields) *
    rounds renders per face); with one or two, a joint grid (grid**len(fields) * rounds).
    Fit with the style the image is *meant* to be in (an input: photo; a stylization: S).
    Returns `params` with the fitted fields replaced.
    """
    x = as_tensor(images)
    if len(x) != len(params):
        raise ValueError(f"fit_by_synthesis: {len(x)} images but {len(params)} parameter rows")
    for f in fields:
        if f not in FIELD_INDEX:
            raise KeyError(f"fit_by_synthesis: unknown field {f!r}")
    if region not in ("eyes", "face", "all"):
        raise ValueError(f"fit_by_synthesis: region must be eyes, face or all, got {region!r}")
    if style not in STYLES:
        raise KeyError(f"fit_by_synthesis: unknown style {style!r}")
    if objective not in ("luma", "structure"):
        raise ValueError(
            f"fit_by_synthesis: objective must be luma or structure, got {objective!r}"
        )
    size = int(x.shape[-1])
    target = _gauss(_luma(x), 1.0)[:, 0]  # [N,H,W]
    out = params.to_vector()
    cols = [FIELD_INDEX[f] for f in fields]
    for i in range(len(params)):
        p_i = params[i]
        if region == "all":
            mask = torch.ones(size, size)
        else:
            sc = Scene(p_i, size, STYLES[style].geometry, ss=1)
            d = sc.sdf["sclera"] if region == "eyes" else sc.sdf["face"]
            margin = 0.0 if region == "eyes" else 0.05
            mask = torch.from_numpy(np.ascontiguousarray(d[0] < margin))
        mask = mask.float()

        def score(cand: np.ndarray, t: torch.Tensor = target[i], m: torch.Tensor = mask):
            r = torch.from_numpy(render_float(FaceParams(cand), style, size)).permute(0, 3, 1, 2)
            r = _gauss(_luma(r * 2.0 - 1.0), 1.0)[:, 0]
            if objective == "structure":
                return -_masked_cos(_orient(r), _orient(t[None]), m)
            return -_masked_ncc(r, t, m)

        # joint grid for up to two fields; coordinate descent (fields start at 0.5) beyond
        groups = [list(range(len(cols)))] if len(cols) <= 2 else [[k] for k in range(len(cols))]
        cur = out[i].copy()
        if len(cols) > 2:
            cur[cols] = 0.5
        lo = np.zeros(len(cols), np.float32)
        hi = np.ones(len(cols), np.float32)
        for _ in range(rounds):
            for ks in groups:
                axes = [np.linspace(lo[k], hi[k], grid, dtype=np.float32) for k in ks]
                mesh = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, len(ks))
                cand = np.repeat(cur[None], len(mesh), 0)
                cand[:, [cols[k] for k in ks]] = mesh
                cur = cand[int(score(cand).argmin())]
            step = (hi - lo) / (grid - 1)
            lo = np.clip(cur[cols] - step, 0.0, 1.0)
            hi = np.clip(cur[cols] + step, 0.0, 1.0)
        best = cur[cols]
        out[i, cols] = best
    return FaceParams(out)


# ----------------------------------------------------------------------------------------------
# Parameter regressor
# ----------------------------------------------------------------------------------------------


class ParamRegressor(nn.Module):
    """Small CNN: images [B,3,H,W] in [-1,1] (any style, resized to `size`) -> params [B,P].

    Outputs are in [0,1], columns in FIELDS order. Five stages (a stride-2 conv, then a conv;
    widths w, 2w, 4w, 4w, 4w) down to a 2x2 map at 64 px, then a 256-d feature (`features`, used
    for Fréchet distances) and a linear head with a sigmoid.
    """

    def __init__(self, size: int = 64, width: int = 32, feat_dim: int = 256) -> None:
        super().__init__()
        if size < 32 or size & (size - 1):
            raise ValueError(f"ParamRegressor: size must be a power of two >= 32, got {size}")
        self.size = size
        chans = [3, width, width * 2, width * 4, width * 4, width * 4]
        layers: list[nn.Module] = []
        for cin, cout in zip(chans[:-1], chans[1:], strict=True):
            layers += [
                nn.Conv2d(cin, cout, 3, stride=2, padding=1),
                nn.LeakyReLU(0.2),
                nn.Conv2d(cout, cout, 3, padding=1),
                nn.GroupNorm(8, cout),
                nn.LeakyReLU(0.2),
            ]
        self.body = nn.Sequential(*layers)
        side = size // 32
        self.fc = nn.Sequential(
            nn.Flatten(), nn.Linear(chans[-1] * side * side, feat_dim), nn.LeakyReLU(0.2)
        )
        self.head = nn.Linear(feat_dim, len(FIELDS))

    def _prep(self, x: torch.Tensor) -> torch.Tensor:
        x = as_tensor(x).to(next(self.parameters()).device)
        if x.shape[-1] != self.size or x.shape[-2] != self.size:
            x = F.interpolate(
                x, size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=True
            )
        return x

    def features(self, x: torch.Tensor | np.ndarray) -> torch.Tensor:
        """[B,feat_dim] features of the penultimate layer."""
        return self.fc(self.body(self._prep(x)))

    def forward(self, x: torch.Tensor | np.ndarray) -> torch.Tensor:
        """[B,P] predicted parameters in [0,1], columns in FIELDS order."""
        return torch.sigmoid(self.head(self.features(x)))

    @torch.no_grad()
    def predict(self, x: torch.Tensor | np.ndarray, batch: int = 128) -> FaceParams:
        """FaceParams read from images (eval mode, batched)."""
        was = self.training
        self.eval()
        t = as_tensor(x)
        out = [self(t[i : i + batch]).cpu().numpy() for i in range(0, len(t), batch)]
        self.train(was)
        return FaceParams.from_vector(np.concatenate(out, 0))


def _render_job(args: tuple[np.ndarray, str, int]) -> np.ndarray:
    vals, style, size = args
    return (render_float(FaceParams(vals), style, size) * 255.0 + 0.5).astype(np.uint8)


def _render_set(
    rng: np.random.Generator, n: int, styles: Sequence[str], size: int, workers: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """n faces, each in a random style from `styles`: (uint8 [n,size,size,3], params [n,P]).

    workers > 1 renders in that many processes (spawned); the result does not depend on it.
    """
    p = sample_params(rng, n)
    which = rng.integers(0, len(styles), n)
    imgs = np.empty((n, size, size, 3), np.uint8)
    jobs, where = [], []
    for k, st in enumerate(styles):
        idx = np.nonzero(which == k)[0]
        for i in range(0, len(idx), 256):
            jobs.append((p.values[idx[i : i + 256]], st, size))
            where.append(idx[i : i + 256])
    if workers > 1:
        with mp.get_context("spawn").Pool(workers) as pool:
            results = pool.map(_render_job, jobs)
    else:
        results = [_render_job(j) for j in jobs]
    for idx, res in zip(where, results, strict=True):
        imgs[idx] = res
    return imgs, p.values


def train_regressor(
    steps: int = 3000,
    *,
    batch: int = 64,
    n_images: int = 16384,
    styles: Sequence[str] | None = None,
    size: int = 64,
    width: int = 32,
    lr: float = 2e-3,
    seed: int = 0,
    device: str | torch.device | None = None,
    log: Callable[[str], None] | None = print,
    time_limit_s: float | None = None,
    workers: int = 0,
) -> tuple[ParamRegressor, dict]:
    """Train a ParamRegressor on `n_images` renders in random `styles` (default: all registered).

    A fixed set is rendered once (rendering costs more than a step); each step draws a batch from
    it with a random 0-2 px shift and mild noise, so the regressor tolerates generator outputs.
    Returns (model in eval mode, recipe dict with the settings, steps done and wall time).
    """
    if steps < 1 or batch < 1 or n_images < batch:
        raise ValueError(
            "train_regressor: need steps >= 1 and n_images >= batch >= 1, got "
            f"steps={steps}, n_images={n_images}, batch={batch}"
        )
    styles = list(styles) if styles is not None else _style_names()
    dev = torch.device(device) if device is not None else _default_device()
    t0 = time.time()
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    imgs, vals = _render_set(rng, n_images, styles, size, workers)
    t_render = time.time() - t0
    if log:
        log(f"rendered {n_images} images at {size} px in {t_render:.0f} s")
    data = torch.from_numpy(imgs).to(dev)
    target = torch.from_numpy(vals).to(dev)
    model = ParamRegressor(size, width).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    done = 0
    for step in range(steps):
        idx = torch.randint(0, n_images, (batch,), generator=gen).to(dev)
        x = data[idx].permute(0, 3, 1, 2).float() / 127.5 - 1.0
        dx, dy = (int(v) for v in torch.randint(-2, 3, (2,), generator=gen))
        x = torch.roll(x, (dy, dx), (2, 3))
        x = x + 0.03 * torch.randn_like(x)  # seeded by torch.manual_seed(seed)
        loss = F.smooth_l1_loss(model(x), target[idx], beta=0.05)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        done = step + 1
        if log and (step % 200 == 0 or done == steps):
            log(f"step {done}/{steps} loss {loss.item():.4f} ({time.time() - t0:.0f} s)")
        if time_limit_s is not None and time.time() - t0 > time_limit_s:
            break
    model.eval()
    recipe = {
        "steps": done,
        "batch": batch,
        "n_images": n_images,
        "styles": styles,
        "size": size,
        "width": width,
        "lr": lr,
        "seed": seed,
        "wall_s": round(time.time() - t0, 1),
        "render_s": round(t_render, 1),
        "machine": f"{platform.machine()} {platform.processor() or ''} torch {torch.__version__} "
        f"threads {torch.get_num_threads()} device {dev}".strip(),
    }
    return model, recipe


def _default_device() -> torch.device:
    return pick_device("auto")


def save_regressor(
    model: ParamRegressor, path: str | os.PathLike, recipe: dict | None = None
) -> None:
    """Save weights + config as .safetensors atomically (metadata: size, width, recipe JSON)."""
    meta = {
        "size": str(model.size),
        "width": str(model.body[0].out_channels),
        "fields": ",".join(f for f, _ in FIELDS),
    }
    if recipe is not None:
        meta["recipe"] = json.dumps(recipe)
    sd = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    save_safetensors(sd, path, meta)


def load_regressor(
    path: str | os.PathLike | None = None, device: str | torch.device = "cpu"
) -> ParamRegressor:
    """Load a ParamRegressor; default path: jojogan/toy/weights/param_regressor.safetensors."""
    p = Path(path) if path is not None else DEFAULT_REGRESSOR
    if not p.is_file():
        raise FileNotFoundError(
            f"{p}: no parameter-regressor weights there. Train them with "
            f"`python -m jojogan.toy.score train --out {p}` (about 10 CPU-minutes)."
        )
    meta = read_safetensors_metadata(p)
    if meta.get("fields") != ",".join(f for f, _ in FIELDS):
        raise ValueError(
            f"{p}: this regressor was trained for other parameter fields than this renderer's; "
            "retrain it with `python -m jojogan.toy.score train`."
        )
    model = ParamRegressor(int(meta.get("size", 64)), int(meta.get("width", 32)))
    load_state_dict_strict(model, load_file(p), source=p, what="parameter regressor")
    return model.to(device).eval()


@torch.no_grad()
def evaluate_regressor(
    model: ParamRegressor,
    styles: Sequence[str] | None = None,
    n: int = 256,
    seed: int = 12345,
    size: int = 64,
) -> dict[str, dict[str, float]]:
    """param_errors of `model` on n fresh faces per style (held-out seed): {style: {group: err}}."""
    styles = list(styles) if styles is not None else _style_names()
    p = sample_params(seed, n)
    out = {}
    for st in styles:
        pred = model.predict(_to_t(render_float(p, st, size)))
        out[st] = param_errors(pred, p)
    return out


def _to_t(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img).permute(0, 3, 1, 2) * 2.0 - 1.0


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m jojogan.toy.score", description=__doc__.split("\n")[0]
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    tr = sub.add_parser("train", help="train the parameter regressor and save it")
    tr.add_argument("--out", default=str(DEFAULT_REGRESSOR))
    tr.add_argument("--steps", type=int, default=3000)
    tr.add_argument("--batch", type=int, default=64)
    tr.add_argument("--n-images", type=int, default=16384)
    tr.add_argument("--size", type=int, default=64)
    tr.add_argument("--width", type=int, default=32)
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--exclude-styles", default="", help="comma-separated styles to hold out")
    tr.add_argument("--time-limit", type=float, default=None, help="stop after this many seconds")
    tr.add_argument("--threads", type=int, default=None)
    tr.add_argument("--workers", type=int, default=0, help="processes that render the data")
    tr.add_argument("--device", default=None, help="default: CUDA when present, else CPU")
    ev = sub.add_parser("eval", help="per-style parameter errors of a trained regressor")
    ev.add_argument("--weights", default=str(DEFAULT_REGRESSOR))
    ev.add_argument("--n", type=int, default=256)
    args = ap.parse_args(argv)
    if args.cmd == "train":
        if args.threads:
            torch.set_num_threads(args.threads)
        exclude = [s for s in args.exclude_styles.split(",") if s]
        model, recipe = train_regressor(
            args.steps,
            batch=args.batch,
            n_images=args.n_images,
            styles=_style_names(exclude),
            size=args.size,
            width=args.width,
            seed=args.seed,
            time_limit_s=args.time_limit,
            workers=args.workers,
            device=args.device,
        )
        recipe["eval"] = evaluate_regressor(model, n=128, size=args.size)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        save_regressor(model, args.out, recipe)
        print(json.dumps(recipe, indent=1))
        return 0
    model = load_regressor(args.weights)
    print(json.dumps(evaluate_regressor(model, n=args.n, size=model.size), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
