"""The toy model's one loader: `load_toy_model` (generator, discriminator, encoder, config) from
the folder `find_toy_dir` finds (jojogan.toy.find_weights_dir)."""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from . import GENERATOR_FILE, ToyWeightsMissing, find_weights_dir

# The toy model is found by one function (jojogan.toy); these names are kept for the callers.
TOY_FILE = GENERATOR_FILE
ToyModelMissing = ToyWeightsMissing
find_toy_dir = find_weights_dir


def load_toy_model(
    toy_dir: str | os.PathLike | None = None, device: str | torch.device = "cpu"
) -> tuple[nn.Module, nn.Module, nn.Module | None, Any]:
    """(generator, discriminator, encoder or None, config) of the toy model (see find_toy_dir)."""
    from jojogan.toy.train import load_toy

    p = find_toy_dir(toy_dir)
    g, d, enc, _latent_avg, cfg = load_toy(p, device)
    if enc is not None and not hasattr(enc, "input_size"):
        enc.input_size = int(g.size)  # jojogan.invert resizes to the encoder's input size
    return g, d, enc, cfg
