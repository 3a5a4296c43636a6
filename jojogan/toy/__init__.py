"""Toy-faces domain: a procedural face renderer with ground truth, scoring tools and the recipe
that trains the small base model (DESIGN.md section 5).

The trained base model ships in ``jojogan/toy/weights/`` (``SHIPPED_DIR``): load it with the one
toy loader, `jojogan.toy.model.load_toy`. Importing this package loads no weights and imports
no torch.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = [
    "ENCODER_FILE",
    "GENERATOR_FILE",
    "SHIPPED_DIR",
    "ToyWeightsMissing",
    "find_weights_dir",
    "model_card",
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


def model_card(weights_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """The toy model's card (model_card.json, written by `jojogan.toy.train`: recipe, config,
    steps reached, wall time, machine) from the folder `find_weights_dir` finds; {} if it has
    none. Raises ValueError when the card is there but unreadable."""
    path = find_weights_dir(weights_dir) / "model_card.json"
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: unreadable model card ({e}); reinstall it") from e
