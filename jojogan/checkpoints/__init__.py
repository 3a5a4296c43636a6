"""Safe loading and atomic saving of model files: the one loader and the one writer of the project.

Reading a file goes through three steps, each of which fails with one :class:`CheckpointError`
that names the file, says what it really is or what is wrong, and what to do:

1. :func:`sniff` looks at the first bytes (never the extension): safetensors, torch zip, pickle
   (legacy torch or NVIDIA ``.pkl``), HTML (a failed download), text, empty.
2. :func:`load_file` loads the raw object: ``.safetensors`` through safetensors; torch files
   through ``torch.load(weights_only=True)`` allowing only ``argparse.Namespace``. Pickle opcodes
   are scanned first (without executing anything) so that a file that needs code is refused with
   the list of globals it wanted. No pickle is ever unpickled with code allowed.
3. :func:`detect_layout` recognises the layout from the keys (rosinality ``{g_ema, g, d,
   latent_avg}``, rosinality training checkpoints, JoJoGAN style files ``{"g": state_dict}``, bare
   generator/discriminator state dicts, e4e/ReStyle/pSp encoder files, ArcFace IR-SE50), and
   :func:`load_stylegan2` infers the configuration from tensor shapes, builds the modules and
   loads them strictly through :func:`load_state_dict_strict`.

NVIDIA StyleGAN2-ADA ``.pkl`` files embed code and are refused by :func:`load_file`;
:func:`convert_nvidia_pkl` reads their weights with an unpickler that resolves only tensor
rebuilders (every other name becomes an inert stub, the embedded source is never run) and writes
a rosinality-layout ``.safetensors`` through a key table that fails on any unmatched key.

Writing goes through :func:`atomic_writer` (temp file in the target folder, fsync, ``os.replace``,
fsync of the folder), so an interrupted or failed save never leaves a partial file and never
damages the previous one.
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
