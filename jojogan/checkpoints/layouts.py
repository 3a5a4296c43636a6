"""Which layout a loaded checkpoint has, told from its keys (:func:`detect_layout`), and the
error that names what a file in the wrong layout really is."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

LAYOUT_ROSINALITY = "rosinality"
LAYOUT_ROSINALITY_TRAINING = "rosinality-training"
LAYOUT_JOJOGAN_STYLE = "jojogan-style"
LAYOUT_GENERATOR = "generator"
LAYOUT_DISCRIMINATOR = "discriminator"
LAYOUT_PSP_ENCODER = "psp-encoder"
LAYOUT_ARCFACE = "arcface"
LAYOUT_UNKNOWN = "unknown"

_PARTS = ("g_ema", "g", "d")
_TRAINING_KEYS = {"args", "g_optim", "d_optim", "ada_aug_p"}


def _unflatten(obj: Any) -> Any:
    """``{"g_ema.style.1.weight": t, "latent_avg": t}`` (as in .safetensors) -> nested dicts."""
    if not isinstance(obj, Mapping) or not obj:
        return obj
    if not all(isinstance(k, str) for k in obj):
        return obj
    tops = {k.split(".", 1)[0] for k in obj}
    if not tops <= {*_PARTS, "latent_avg"} or not tops & set(_PARTS):
        return obj
    if any("." not in k for k in obj if k != "latent_avg"):
        return obj
    nested: dict[str, Any] = {}
    for k, v in obj.items():
        if k == "latent_avg":
            nested[k] = v
        else:
            top, rest = k.split(".", 1)
            nested.setdefault(top, {})[rest] = v
    return nested


def _is_tensor_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and all(isinstance(v, torch.Tensor) for v in obj.values())


def _looks_generator(keys: set[str]) -> bool:
    return "style.1.weight" in keys or "input.input" in keys or "conv1.conv.weight" in keys


def _looks_discriminator(keys: set[str]) -> bool:
    return any(k.startswith(("final_linear.", "final_conv.")) for k in keys) or (
        "convs.0.0.weight" in keys
    )


def detect_layout(obj: Any) -> str:
    """Recognise a loaded checkpoint's layout from its keys (never from the file name).

    Returns one of ``"rosinality"`` (any subset of ``g_ema, g, d, latent_avg``),
    ``"rosinality-training"`` (the same plus ``args``/``g_optim``/``d_optim``/``ada_aug_p``),
    ``"jojogan-style"`` (exactly ``{"g": state_dict}``), ``"generator"`` / ``"discriminator"``
    (bare state dicts), ``"psp-encoder"`` (e4e / ReStyle / pSp: ``state_dict`` with ``encoder.``
    keys), ``"arcface"`` (IR-SE backbone: ``input_layer.``, ``body.``, ``output_layer.``),
    ``"unknown"``.
    """
    obj = _unflatten(obj)
    if not isinstance(obj, Mapping) or not obj:
        return LAYOUT_UNKNOWN
    keys = {k for k in obj if isinstance(k, str)}
    parts = keys & set(_PARTS)
    if parts and all(isinstance(obj[k], Mapping) for k in parts):
        if keys & _TRAINING_KEYS:
            return LAYOUT_ROSINALITY_TRAINING
        if keys == {"g"}:
            return LAYOUT_JOJOGAN_STYLE
        return LAYOUT_ROSINALITY
    if isinstance(obj.get("state_dict"), Mapping):
        sub = {k for k in obj["state_dict"] if isinstance(k, str)}
        if any(k.startswith(("encoder.", "decoder.")) for k in sub):
            return LAYOUT_PSP_ENCODER
        inner = detect_layout(obj["state_dict"])
        if inner in (LAYOUT_ARCFACE, LAYOUT_PSP_ENCODER):
            return inner
    if _is_tensor_dict(obj):
        if any(k.startswith(("encoder.", "decoder.")) for k in keys):
            return LAYOUT_PSP_ENCODER
        if _looks_generator(keys):
            return LAYOUT_GENERATOR
        if "input_layer.0.weight" in keys and any(k.startswith("body.") for k in keys):
            if any(k.startswith("output_layer.") for k in keys):
                return LAYOUT_ARCFACE
            return LAYOUT_PSP_ENCODER  # an encoder state dict saved without its prefix
        if _looks_discriminator(keys):
            return LAYOUT_DISCRIMINATOR
    return LAYOUT_UNKNOWN


def _keys_summary(keys: Iterable[str], n: int = 8) -> str:
    ks = sorted(str(k) for k in keys)
    return ", ".join(ks[:n]) + (f", ... ({len(ks)} in all)" if len(ks) > n else "")


def _wrong_layout_message(p: Path, layout: str, obj: Any, wanted: str) -> str:
    if layout == LAYOUT_PSP_ENCODER:
        return (
            f"{p}: this is an e4e/ReStyle/pSp encoder file (a state_dict with encoder./decoder. "
            f"keys and its opts), not {wanted}. Give it to the encoder input instead, and give a "
            "StyleGAN2 generator file (e.g. stylegan2-ffhq-config-f.pt) here."
        )
    if layout == LAYOUT_ARCFACE:
        return (
            f"{p}: this is an ArcFace IR-SE50 face-recognition model (model_ir_se50.pth: "
            f"input_layer/body/output_layer keys), not {wanted}. Use it for the identity loss, "
            "and give a StyleGAN2 generator file here."
        )
    if layout == LAYOUT_DISCRIMINATOR:
        return (
            f"{p}: this file holds only a StyleGAN2 discriminator (convs/final_conv/final_linear "
            f"keys), not {wanted}. Give a file with a generator (g_ema or g)."
        )
    top = _keys_summary(obj.keys()) if isinstance(obj, Mapping) else type(obj).__name__
    return (
        f"{p}: not a StyleGAN2 checkpoint in rosinality's layout (found: {top}). Expected "
        "{g_ema, g, d, latent_avg} (any of them), a JoJoGAN style file {g}, or a generator "
        "state dict (style.1.weight, input.input, conv1.*, convs.*, to_rgbs.*, noises.*). "
        "NVIDIA .pkl files must be converted first."
    )
