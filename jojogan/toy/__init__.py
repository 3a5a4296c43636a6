"""Toy-faces domain: a procedural face renderer with ground truth, scoring tools and the recipe
that trains the small base model (DESIGN.md section 5).

The trained base model ships in ``jojogan/toy/weights/`` (``SHIPPED_DIR``): load it with
`load_base_model`. Importing this package loads no weights and imports no torch model code.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn

__all__ = [
    "ENCODER_FILE",
    "GENERATOR_FILE",
    "SHIPPED_DIR",
    "ToyWeightsMissing",
    "find_weights_dir",
    "load_base_model",
]

SHIPPED_DIR = Path(__file__).resolve().parent / "weights"
"""Folder of the shipped weights: toy_stylegan2.safetensors, toy_encoder.safetensors, model card."""

GENERATOR_FILE = "toy_stylegan2.safetensors"
ENCODER_FILE = "toy_encoder.safetensors"


class ToyWeightsMissing(FileNotFoundError):
    """The toy model's weight files are not in the folder they were looked for in."""


def find_weights_dir(weights_dir: str | os.PathLike | None = None) -> Path:
    """The folder holding the toy model: ``weights_dir``, else $JOJOGAN_TOY_DIR, else
    `SHIPPED_DIR`. Raises `ToyWeightsMissing` (saying how to get one) when it has no generator."""
    if weights_dir is None:
        weights_dir = os.environ.get("JOJOGAN_TOY_DIR") or SHIPPED_DIR
    folder = Path(weights_dir)
    if not (folder / GENERATOR_FILE).is_file():
        raise ToyWeightsMissing(
            f"toy weights not found in {folder} (missing: {GENERATOR_FILE}). Train them with "
            f"`python -m jojogan.toy.train --out {folder}` (the recipe is in that module's "
            "docstring), or point weights_dir= / --toy-dir / $JOJOGAN_TOY_DIR at a folder that "
            "has them."
        )
    return folder


def load_base_model(
    device: str | torch.device = "cpu",
    weights_dir: str | os.PathLike | None = None,
) -> tuple[nn.Module, nn.Module, nn.Module, torch.Tensor, dict[str, Any]]:
    """Load the trained toy-faces base model (read-only, eval mode, no gradients).

    Returns ``(generator, discriminator, encoder, latent_avg, card)``:
    - generator: jojogan.stylegan2.Generator (the EMA weights); ``generator(...)`` /
      ``generator.synthesis(ws)`` give images [B,3,S,S] in [-1,1], S = ``generator.size`` (64);
      W+ codes are [B, generator.n_latent, generator.style_dim].
    - discriminator: jojogan.stylegan2.Discriminator trained beside it (JoJoGAN's Eq. 2 loss
      uses its features).
    - encoder: jojogan.toy.train.ToyEncoder, photo images [B,3,S,S] in [-1,1] -> W+ codes
      (``encoder.input_size == S``).
    - latent_avg: [style_dim], the mean of mapping(z) (truncation centre).
    - card: the model card (model_card.json: recipe, steps, wall time, machine), or {} if absent.

    weights_dir: default $JOJOGAN_TOY_DIR, else `SHIPPED_DIR` (`find_weights_dir`). Files are
    read with the project's safe loader (jojogan.checkpoints, safetensors only, strict keys).
    Raises `ToyWeightsMissing` with what to do when the files are absent.
    """
    import torch  # inside: the renderer and the names above load without torch

    folder = find_weights_dir(weights_dir)
    missing = [n for n in (GENERATOR_FILE, ENCODER_FILE) if not (folder / n).is_file()]
    if missing:
        raise ToyWeightsMissing(
            f"toy weights not found in {folder} (missing: {', '.join(missing)}). Train them with "
            f"`python -m jojogan.toy.train --out {folder}` (the recipe is in that module's "
            "docstring; the GPU command takes ~8 minutes), or pass weights_dir= a folder that "
            "has them."
        )
    from .model import load_toy  # inside: toy.model imports this package's names (cycle)

    g, d, enc, latent_avg, _cfg = load_toy(folder, device=device)
    if enc is None:  # pragma: no cover - checked above
        raise ToyWeightsMissing(f"toy encoder not found in {folder / ENCODER_FILE}")
    for m in (g, d, enc):
        m.eval()
        m.requires_grad_(False)
    card: dict[str, Any] = {}
    card_path = folder / "model_card.json"
    if card_path.is_file():
        try:
            card = json.loads(card_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ValueError(f"{card_path}: unreadable model card ({e}); reinstall it") from e
    return g, d, enc, latent_avg.to(torch.device(device)), card
