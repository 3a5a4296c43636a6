"""Tiny seeded StyleGAN2 models shared by the checkpoint tests."""

from __future__ import annotations

import torch

from jojogan.stylegan2 import Discriminator, Generator

SIZE, STYLE_DIM = 32, 16
TINY = {"style_dim": STYLE_DIM, "n_mlp": 2, "channel_max": 16}


def tiny_g(seed: int = 0, size: int = SIZE) -> Generator:
    torch.manual_seed(seed)
    return Generator(size, **TINY)


def tiny_d(seed: int = 1, size: int = SIZE) -> Discriminator:
    torch.manual_seed(seed)
    return Discriminator(size, channel_max=16)
