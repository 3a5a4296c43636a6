"""The one device picker of the core (outside ComfyUI; inside it the nodes ask ComfyUI)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch

__all__ = ["PRECISIONS", "pick_device", "precision"]

# float32: exact float32 (TF32 off on CUDA); tf32: CUDA convolutions and matmuls in TF32
# (float32 elsewhere); bf16: torch.autocast to bfloat16 (CUDA, or a CPU with AVX512-BF16/AMX).
PRECISIONS = ("float32", "tf32", "bf16")


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


@contextlib.contextmanager
def precision(device: torch.device | str, mode: str = "float32") -> Iterator[None]:
    """Run the block's convolutions and matmuls on `device` in `mode` (one of PRECISIONS).

    "float32" turns TF32 off for the block (exact float32 on every device); "tf32" turns it on
    for CUDA (10-bit mantissa products, float32 sums; no effect elsewhere); "bf16" autocasts
    convolutions and matmuls to bfloat16 (8-bit mantissa) while losses and reductions that
    autocast keeps in float32 stay there. The previous TF32 flags are restored on exit. Errors
    of the reduced modes against float32 are measured in tests/test_speed.py."""
    if mode not in PRECISIONS:
        raise ValueError(f"precision: mode must be one of {PRECISIONS}, got {mode!r}")
    dev = torch.device(device)
    flags = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    tf32 = mode == "tf32" and dev.type == "cuda"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    try:
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=mode == "bf16"):
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = flags
