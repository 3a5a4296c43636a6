"""The toy model: its networks (`ToyConfig`, `ToyEncoder`, `build_models`) and the one toy
loader, `load_toy`, which reads what jojogan.toy.train writes from the folder
`jojogan.toy.find_weights_dir` finds."""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path

import torch
from torch import nn

from ..checkpoints import load_file, read_safetensors_metadata
from ..stylegan2 import Discriminator, Generator
from . import ENCODER_FILE, GENERATOR_FILE, find_weights_dir

# ----------------------------------------------------------------------------------------------
# Configuration and models
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass
class ToyConfig:
    """Model sizes and training recipe (stored in the model card and the weights' metadata)."""

    size: int = 64
    style_dim: int = 128
    n_mlp: int = 4
    channels: tuple[int, ...] = (128, 128, 128, 64, 32)  # per resolution 4, 8, ..., size
    d_channels: tuple[int, ...] | None = None  # default: same as channels
    enc_width: int = 32
    batch: int = 8
    lr: float = 2e-3
    r1_gamma: float = 0.05
    r1_every: int = 16
    mixing: float = 0.9
    ema_kimg: float = 2.5  # EMA half-life in thousands of images
    warm_steps: int = 0
    warm_mix: float = 0.0  # share of warm-start batches with mixing-aware targets
    mix_cut: int = 4  # W+ layers < mix_cut are "coarse" (geometry), the rest "fine" (colour)
    # mixing critic (adversarial phase): a frozen parameter regressor reads G(mix) of coarse A +
    # fine B; its geometry and pose should be G(A)'s, its colours G(B)'s (weight 0 = off)
    mix_weight: float = 0.0
    mix_critic: str = ""
    steps: int = 4000
    enc_steps: int = 2000
    enc_lr: float = 1e-3
    data_size: int = 20000
    seed: int = 0

    def channel_map(self, which: str = "g") -> dict[int, int]:
        chans = self.channels if which == "g" or self.d_channels is None else self.d_channels
        n = int(math.log2(self.size)) - 1
        if len(chans) != n:
            raise ValueError(
                f"ToyConfig: {'d_' if which == 'd' else ''}channels needs {n} widths (one per "
                f"resolution 4..{self.size}), got {len(chans)}: {chans}"
            )
        return {2 ** (i + 2): int(c) for i, c in enumerate(chans)}


class ToyEncoder(nn.Module):
    """Small e4e-like encoder: photo images [B,3,S,S] in [-1,1] -> W+ codes [B,n_latent,style_dim].

    A conv pyramid gives 4x4 (coarse), 8x8 (middle) and 16x16 (fine) maps; w0 comes from the
    coarse map and every further layer i adds an offset read from its group's map (e4e, Tov et al.
    2021, Sec. 3.2). W+ = latent_avg + w0 + [0, d_1, ..., d_{n-1}].
    """

    def __init__(self, size: int, n_latent: int, style_dim: int, width: int = 32) -> None:
        super().__init__()
        self.size, self.n_latent, self.style_dim = size, n_latent, style_dim
        self.input_size = size  # jojogan.invert resizes its inputs to this
        n_down = int(math.log2(size)) - 2  # to 4x4
        chans = [min(width * 2**i, width * 4) for i in range(n_down + 1)]
        self.stem = nn.Sequential(nn.Conv2d(3, chans[0], 3, padding=1), nn.LeakyReLU(0.2))
        self.down = nn.ModuleList()
        for i in range(n_down):
            self.down.append(
                nn.Sequential(
                    nn.Conv2d(chans[i], chans[i + 1], 3, stride=2, padding=1),
                    nn.LeakyReLU(0.2),
                    nn.Conv2d(chans[i + 1], chans[i + 1], 3, padding=1),
                    nn.GroupNorm(min(8, chans[i + 1]), chans[i + 1]),
                    nn.LeakyReLU(0.2),
                )
            )
        self.feat_ch = chans
        self.groups = self.layer_groups(n_latent)
        self.w0 = self._head(chans[-1], style_dim)
        self.heads = nn.ModuleDict()
        for g, layers in enumerate(self.groups):
            if layers:  # group g reads the map g levels above the 4x4 one
                ch = chans[max(len(chans) - 1 - g, 0)]
                self.heads[str(g)] = self._head(ch, style_dim * len(layers))
        self.register_buffer("latent_avg", torch.zeros(style_dim))
        for h in self.heads.values():  # start from w0 alone
            nn.init.zeros_(h[-1].weight)
            nn.init.zeros_(h[-1].bias)

    @staticmethod
    def _head(ch: int, out: int, squeeze: int = 48) -> nn.Sequential:
        """Map [B,ch,H,W] -> [B,out]: 1x1 conv to `squeeze` channels, 4x4 pool, linear."""
        return nn.Sequential(
            nn.Conv2d(ch, squeeze, 1),
            nn.LeakyReLU(0.2),
            nn.AdaptiveAvgPool2d(4),
            nn.Flatten(),
            nn.Linear(squeeze * 16, out),
        )

    @staticmethod
    def layer_groups(n_latent: int) -> list[list[int]]:
        """W+ layers 1.. split into coarse (<4), middle (4-5) and fine (6..) groups."""
        coarse = [i for i in range(1, n_latent) if i < 4]
        middle = [i for i in range(1, n_latent) if 4 <= i < 6]
        fine = [i for i in range(1, n_latent) if i >= 6]
        return [coarse, middle, fine]

    def forward(self, x: torch.Tensor, return_deltas: bool = False):
        if x.ndim != 4 or x.shape[1] != 3 or x.shape[2] != self.size or x.shape[3] != self.size:
            raise ValueError(
                f"ToyEncoder: expected images [B,3,{self.size},{self.size}] in [-1,1], "
                f"got {tuple(x.shape)}"
            )
        h = self.stem(x)
        maps = [h]
        for blk in self.down:
            h = blk(h)
            maps.append(h)
        b = x.shape[0]
        w0 = self.w0(maps[-1])
        deltas = torch.zeros(b, self.n_latent, self.style_dim, device=x.device, dtype=x.dtype)
        for g, layers in enumerate(self.groups):
            if not layers:
                continue
            head = self.heads[str(g)]
            m = maps[max(len(maps) - 1 - g, 0)]
            deltas[:, layers] = head(m).view(b, len(layers), self.style_dim)
        ws = self.latent_avg + w0[:, None] + deltas
        return (ws, deltas) if return_deltas else ws


def build_models(cfg: ToyConfig) -> tuple[nn.Module, nn.Module, ToyEncoder]:
    """(Generator, Discriminator, ToyEncoder) of the toy configuration (jojogan.stylegan2)."""
    gch = cfg.channel_map("g")
    dch = cfg.channel_map("d")
    g = Generator(cfg.size, cfg.style_dim, cfg.n_mlp, channels=gch, channel_max=max(gch.values()))
    d = Discriminator(cfg.size, channels=dch, channel_max=max(dch.values()))
    e = ToyEncoder(cfg.size, g.n_latent, cfg.style_dim, cfg.enc_width)
    return g, d, e


# ----------------------------------------------------------------------------------------------
# Reading the toy model's files
# ----------------------------------------------------------------------------------------------


def _sub(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    n = len(prefix) + 1
    return {k[n:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}


def _config_meta(cfg: ToyConfig) -> dict[str, str]:
    return {"jojogan.toy_config": json.dumps(dataclasses.asdict(cfg))}


def _config_from_meta(meta: dict[str, str], source: Path) -> ToyConfig:
    raw = meta.get("jojogan.toy_config")
    if raw is None:
        raise ValueError(f"{source}: not a toy-model file (no jojogan.toy_config in its metadata)")
    d = json.loads(raw)
    known = {f.name for f in dataclasses.fields(ToyConfig)}
    d = {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items() if k in known}
    return ToyConfig(**d)


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    return load_file(path), read_safetensors_metadata(path)


def load_toy(
    toy_dir: str | os.PathLike | None = None, device: str | torch.device = "cpu"
) -> tuple[nn.Module, nn.Module, ToyEncoder | None, torch.Tensor, ToyConfig]:
    """The one toy loader: (g_ema, d, encoder or None, latent_avg [style_dim], config) as
    `jojogan.toy.train` writes them, from the folder `find_weights_dir` finds (``toy_dir``, else
    $JOJOGAN_TOY_DIR, else the shipped weights), read-only (eval mode, no gradients) on
    ``device``. Files are read by the safe reader (jojogan.checkpoints), keys strict. Raises
    `ToyWeightsMissing` (a FileNotFoundError saying how to get one) when the folder has no
    generator."""
    folder = find_weights_dir(toy_dir)
    gp = folder / GENERATOR_FILE
    tensors, meta = _read_safetensors(gp)
    cfg = _config_from_meta(meta, gp)
    g, d, e = build_models(cfg)
    g.load_state_dict(_sub(tensors, "g_ema"), strict=True)
    d.load_state_dict(_sub(tensors, "d"), strict=True)
    latent_avg = tensors["latent_avg"]
    ep = folder / ENCODER_FILE
    enc: ToyEncoder | None = None
    if ep.is_file():
        et, _ = _read_safetensors(ep)
        e.load_state_dict(et, strict=True)
        enc = e.to(device).eval().requires_grad_(False)
    g, d = (m.to(device).eval().requires_grad_(False) for m in (g, d))
    return g, d, enc, latent_avg.to(device), cfg
