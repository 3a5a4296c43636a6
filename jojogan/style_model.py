"""Style-model files: a fine-tuned generator's synthesis weights plus what made it.

A style model is written as ``.safetensors`` (through the project's atomic writer, never over an
input, never with NaN/inf weights): every tensor of the generator's state dict except the mapping
network (``style.*``, never changed by fine-tuning and taken from the base model on load), in
the generator's own dtype (float32, float16 or bfloat16) unless another is asked for, and JSON
metadata under ``jojogan.style_model``:

    format, library version, base model identity (SHA-256 of the base generator's tensors, and
    its architecture), resolution, mixing space / preset / mixed layers / blend, steps, lr, seed,
    losses and their weights, number of references, final loss, skipped steps, dtype; and the
    recipe that made it: ``recipe`` ("released": `FinetuneSettings.released`, the notebook's
    loop; "default": the pack's own; "custom") with every setting under ``settings``
    (`FinetuneSettings.to_dict`; files written before these two keys load the same way).

Loading on another base model is refused with both identities. The released JoJoGAN ``.pt``
files (``{"g": generator.state_dict()}``, which also carry a fine-tuned mapping network) load
through the safe loader into the same in-memory :class:`StyleModel`.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import __version__, weights
from . import checkpoints as ck

__all__ = [
    "FORMAT",
    "StyleModel",
    "base_identity",
    "load_style_model",
    "save_style_model",
]

FORMAT = "jojogan-style-model/1"
META_KEY = "jojogan.style_model"
_MAPPING_PREFIX = "style."
_ID_CACHE: dict[int, tuple[tuple, str]] = {}


@dataclass
class StyleModel:
    """A fine-tuned generator ready for `jojogan.stylize`, and its metadata (a dict)."""

    generator: nn.Module
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def base_id(self) -> str | None:
        return self.info.get("base", {}).get("sha256")


def _version() -> str:
    return str(__version__)


def _arch(generator: nn.Module) -> str:
    return ck.infer_generator_config(generator.state_dict(), source="<model>").describe()


def base_identity(generator: nn.Module) -> str:
    """SHA-256 (hex) of every tensor of the base generator (names, dtypes, shapes, bytes), in
    float32 so a float16 copy of the same model has the same identity."""
    sd = generator.state_dict()
    key = (tuple((k, v.data_ptr(), v._version) for k, v in sd.items()),)
    hit = _ID_CACHE.get(id(generator))
    if hit is not None and hit[0] == key:
        return hit[1]
    value = ck.tensors_sha256({k: v.float() if v.is_floating_point() else v for k, v in sd.items()})
    _ID_CACHE[id(generator)] = (key, value)
    return value


_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def _weights_dtype(generator: nn.Module) -> torch.dtype:
    """The generator's floating dtype when it is one a style model stores, else float32."""
    for v in generator.state_dict().values():
        if v.is_floating_point():
            return v.dtype if v.dtype in _DTYPES else torch.float32
    return torch.float32


def _base_info(base: nn.Module) -> dict[str, Any]:
    return {"sha256": base_identity(base), "architecture": _arch(base), "size": int(base.size)}


def save_style_model(
    path: str | os.PathLike,
    tuned: nn.Module | Any,
    base: nn.Module,
    *,
    dtype: torch.dtype | None = None,
    metadata: Mapping[str, Any] | None = None,
    inputs: Iterable[str | os.PathLike] = (),
) -> dict[str, Any]:
    """Write ``tuned`` (a generator or a `FinetuneResult`) made from ``base`` to ``path``.

    dtype: the stored weights' dtype, float32, float16 or bfloat16; None keeps the generator's
    own (float32 when it is another). metadata: extra JSON-able fields. inputs: files that must
    not be overwritten (e.g. the base checkpoint). Refuses NaN/inf weights, and weights beyond
    the range of ``dtype`` (CheckpointError, nothing written). Returns the metadata written.
    """
    info: dict[str, Any] = {"format": FORMAT, "library_version": _version()}
    result = None
    if isinstance(tuned, nn.Module):
        gen = tuned
    else:
        result = tuned
        gen = result.generator
    if dtype is None:
        dtype = _weights_dtype(gen)
    if dtype not in _DTYPES:
        raise ValueError(
            f"save_style_model: dtype must be float32, float16 or bfloat16, got {dtype}"
        )
    if _arch(gen) != _arch(base):
        raise ValueError(
            f"save_style_model: the tuned generator is a {_arch(gen)} but the base is a "
            f"{_arch(base)}"
        )
    info["base"] = _base_info(base)
    info["resolution"] = int(gen.size)
    if result is not None:
        st = result.settings
        info.update(
            {
                "mixing": result.mask.describe(),
                "steps": st.steps,
                "steps_done": result.steps_done,
                "lr": st.lr,
                "betas": list(st.betas),
                "seed": st.seed,
                "losses": {
                    "discriminator_feature_l1": {
                        "weight": 1.0,
                        "taps": list(result.feature_layers),
                        "grayscale": st.grayscale,
                    },
                    "identity": {"weight": st.id_weight, "grayscale": True},
                    "structure": {"weight": st.structure_weight, "random_faces": st.random_faces},
                    "texture_gram": {
                        "weight": st.gram_weight,
                        "taps": list(result.gram_layers),
                    },
                },
                "trained_layers": list(st.trainable_layers(gen)),  # S layers fine-tuned
                "precision": st.precision,
                "n_references": result.n_references,
                "refs_per_chunk": st.refs_per_chunk,
                "noise_mode": st.noise_mode,
                "final_loss": next((x for x in reversed(result.losses) if x == x), None),
                "skipped_steps": result.skipped_steps,
                "seconds": round(result.seconds, 3),
                "recipe": st.recipe(),
                "settings": st.to_dict(),
            }
        )
    if metadata:
        info["extra"] = dict(metadata)
    weights = {
        k: v.detach() for k, v in gen.state_dict().items() if not k.startswith(_MAPPING_PREFIX)
    }
    ck.check_finite(weights, source=path, what="the style model to save")
    tensors = {k: v.to(dtype) if v.is_floating_point() else v for k, v in weights.items()}
    for k, v in tensors.items():
        if v.is_floating_point() and not bool(torch.isfinite(v).all()):
            name = str(dtype).replace("torch.", "")
            raise ck.CheckpointError(
                f"{path}: '{k}' has values beyond the range of {name} (largest "
                f"{torch.finfo(dtype).max:.4g}); save as float32. Nothing was written."
            )
    info["dtype"] = str(dtype).replace("torch.", "")
    try:
        text = json.dumps(info, sort_keys=True)
    except (TypeError, ValueError) as e:
        raise ValueError(f"save_style_model: metadata is not JSON-serialisable ({e})") from None
    ck.save_safetensors(tensors, path, {META_KEY: text}, inputs=inputs)
    return info


def load_style_model(
    path: str | os.PathLike, base: nn.Module, *, check_base: bool = True
) -> StyleModel:
    """Load a style model for ``base`` (a `Generator`): our ``.safetensors`` files, or a released
    JoJoGAN ``.pt`` (``{"g": state_dict}``). Returns a new generator (``base`` is not changed) on
    base's device and dtype.

    Raises CheckpointError naming the file when it is not a style model, when its weights do not
    match, or (``check_base``) when it was made on another base model (both identities named).
    A bare file name that is not a file here (``"arcane_jinx.pt"``) is looked up in the download
    folders (:func:`jojogan.weights.resolve`).
    """
    p = Path(weights._loader_path(path))
    kind = ck.sniff(ck._check_readable(p)) if p.exists() else None
    if kind is None:
        raise ck.CheckpointError(f"{p}: no such style-model file")
    if kind != "safetensors":
        return _import_released(p, base)
    meta = ck.read_safetensors_metadata(p)
    raw = meta.get(META_KEY)
    if raw is None:
        raise ck.CheckpointError(
            f"{p}: not a JoJoGAN style model (no '{META_KEY}' metadata). Give a file written by "
            "save_style_model, or a released JoJoGAN .pt style file."
        )
    try:
        info = json.loads(raw)
        if not isinstance(info, dict) or info.get("format") != FORMAT:
            got = str(info.get("format"))[:40] if isinstance(info, dict) else "?"
            raise ValueError(f"format {got!r}, expected {FORMAT!r}")
    except (ValueError, json.JSONDecodeError) as e:
        raise ck.CheckpointError(
            f"{p}: the style-model metadata is unreadable ({str(e)[:120]}). Save the style "
            "model again."
        ) from None
    b_info = info.get("base") if isinstance(info.get("base"), dict) else {}
    if check_base:
        here = _base_info(base)
        if b_info.get("sha256") != here["sha256"]:
            raise ck.CheckpointError(
                f"{p}: this style model was made on another base model: file's base "
                f"{str(b_info.get('sha256'))[:16]} ({str(b_info.get('architecture'))[:120]}), "
                "given base "
                f"{here['sha256'][:16]} ({here['architecture']}). Load the base generator it "
                "was trained from."
            )
    tensors = ck.load_file(p, map_location="cpu")
    ref = base.input.input
    sd = {k: v for k, v in base.state_dict().items() if k.startswith(_MAPPING_PREFIX)}
    for k, v in tensors.items():
        if k.startswith(_MAPPING_PREFIX):
            raise ck.CheckpointError(f"{p}: unexpected mapping-network tensor {k} in a style model")
        sd[k] = v.to(ref.dtype) if v.is_floating_point() else v
    gen = copy.deepcopy(base)
    ck.load_state_dict_strict(gen, sd, source=p, what="style model")
    gen.requires_grad_(False).eval()
    return StyleModel(gen.to(ref.device), info)


def _import_released(p: Path, base: nn.Module) -> StyleModel:
    """A released JoJoGAN ``{"g": state_dict}`` file -> StyleModel (its own mapping kept)."""
    gen = copy.deepcopy(base)
    layout = ck.load_generator_weights(p, gen)
    gen.requires_grad_(False).eval()
    info = {
        "format": "jojogan-released-pt",
        "source": p.name,
        "layout": layout,
        "resolution": int(gen.size),
        "base": {"sha256": None, "architecture": _arch(base), "size": int(base.size)},
        "note": "released JoJoGAN style file: fine-tuned with its mapping network (W+ mask "
        "'full' or 'preserve_color'); base identity unknown",
    }
    return StyleModel(gen, info)
