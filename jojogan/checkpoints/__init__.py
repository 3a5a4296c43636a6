"""Model files: the one safe loader and the one atomic writer of the project.

One concern per module; imports run one way, down this list (``legacy`` -> ``stylegan2`` ->
``folders``/``layouts``/``writing`` -> ``reading``/``registry``):

- ``legacy``: NVIDIA StyleGAN2-ADA ``.pkl`` -> rosinality layout, without running their code
  (:func:`convert_nvidia_pkl`; cf. NVlabs stylegan3's ``legacy.py``).
- ``stylegan2``: the StyleGAN2 loader (:func:`load_stylegan2`, :func:`load_generator_weights`,
  :func:`save_stylegan2`): configs inferred from shapes, strict loading naming every mismatch.
- ``folders``: where model files live and how a bare name becomes a file
  (:func:`jojogan.weights.resolve` re-exports it), with the missing-file message.
- ``layouts``: :func:`detect_layout` from the keys, and what a file in the wrong layout is.
- ``writing``: :func:`atomic_writer` (temp file in the target folder, fsync, ``os.replace``,
  fsync of the folder), so a failed save never leaves a partial file nor damages the old one.
- ``reading``: :func:`sniff` (the first bytes, never the extension), :func:`load_file`
  (safetensors, or ``torch.load(weights_only=True)`` after the pickle opcodes were scanned
  without running anything; claimed sizes checked before anything is allocated; NaN/inf and
  meta tensors refused), safetensors headers and checksums. Errors are one
  :class:`CheckpointError` naming the file, what it really is, and what to do.
- ``registry``: the known pretrained files (:data:`jojogan.weights.REGISTRY`).

Downloading and verifying files is :mod:`jojogan.weights`, which stands above this package.
"""

from __future__ import annotations

from .layouts import (
    LAYOUT_ARCFACE,
    LAYOUT_DISCRIMINATOR,
    LAYOUT_GENERATOR,
    LAYOUT_JOJOGAN_STYLE,
    LAYOUT_PSP_ENCODER,
    LAYOUT_ROSINALITY,
    LAYOUT_ROSINALITY_TRAINING,
    LAYOUT_UNKNOWN,
    detect_layout,
)
from .legacy import (
    convert_nvidia_pkl,
    read_nvidia_pkl,
)
from .reading import (
    CheckpointError,
    check_finite,
    load_file,
    read_safetensors_metadata,
    scan_pickle_globals,
    sniff,
    tensors_sha256,
)
from .reading import _check_readable as _check_readable  # used by jojogan/style_model.py
from .stylegan2 import (
    DiscriminatorConfig,
    GeneratorConfig,
    StyleGAN2Checkpoint,
    infer_discriminator_config,
    infer_generator_config,
    load_generator_weights,
    load_state_dict_strict,
    load_stylegan2,
    save_stylegan2,
)
from .writing import (
    atomic_write_bytes,
    atomic_writer,
    check_not_overwriting,
    save_safetensors,
)

__all__ = [
    "LAYOUT_ARCFACE",
    "LAYOUT_DISCRIMINATOR",
    "LAYOUT_GENERATOR",
    "LAYOUT_JOJOGAN_STYLE",
    "LAYOUT_PSP_ENCODER",
    "LAYOUT_ROSINALITY",
    "LAYOUT_ROSINALITY_TRAINING",
    "LAYOUT_UNKNOWN",
    "CheckpointError",
    "DiscriminatorConfig",
    "GeneratorConfig",
    "StyleGAN2Checkpoint",
    "atomic_write_bytes",
    "atomic_writer",
    "check_finite",
    "check_not_overwriting",
    "convert_nvidia_pkl",
    "detect_layout",
    "infer_discriminator_config",
    "infer_generator_config",
    "load_file",
    "load_generator_weights",
    "load_state_dict_strict",
    "load_stylegan2",
    "read_nvidia_pkl",
    "read_safetensors_metadata",
    "save_safetensors",
    "save_stylegan2",
    "scan_pickle_globals",
    "sniff",
    "tensors_sha256",
]
