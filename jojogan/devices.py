"""The one device picker of the core (outside ComfyUI; inside it the nodes ask ComfyUI)."""

from __future__ import annotations

import os

import torch

__all__ = ["pick_device"]


def pick_device(name: str | torch.device | None = "auto") -> torch.device:
    """`name` as a torch.device; "auto" (or None) means $JOJOGAN_DEVICE if set, else CUDA, else
    MPS, else CPU."""
    if isinstance(name, torch.device):
        return name
    if name is None or name == "auto":
        env = os.environ.get("JOJOGAN_DEVICE")
        if env:
            return torch.device(env)
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        return torch.device(name)
    except RuntimeError as e:
        raise ValueError(
            f"device: {name!r} is not a device name (auto, cpu, cuda, mps, ...)"
        ) from e
