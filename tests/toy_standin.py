"""The toy model the workflow tests run on: the shipped one, else a tiny stand-in trained here."""

from __future__ import annotations

from pathlib import Path

import torch

from jojogan.toy import GENERATOR_FILE, SHIPPED_DIR

# A 16 px model with tiny widths: the real recipe for a few steps (useless weights, real files).
TINY_TOY = dict(
    size=16,
    style_dim=32,
    n_mlp=2,
    channels=(16, 16, 8),
    enc_width=8,
    batch=4,
    warm_steps=0,
    steps=2,
    enc_steps=2,
    data_size=8,
    seed=0,
)


def toy_model_dir(tmp: Path) -> tuple[Path, str]:
    """(folder, label): the shipped toy model when present, else a tiny one trained in ``tmp``;
    the label says which (a TINY STAND-IN is never presented as the real model)."""
    if (SHIPPED_DIR / GENERATOR_FILE).is_file():
        return SHIPPED_DIR, "shipped toy model"
    from jojogan.toy.train import ToyConfig, train

    out = Path(tmp) / "toy16"
    torch.manual_seed(0)
    train(ToyConfig(**TINY_TOY), out, device="cpu", log=None)
    return out, "TINY STAND-IN toy model (16 px, 2 steps): the shipped toy weights are absent"
