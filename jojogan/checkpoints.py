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

import argparse
import codecs
import contextlib
import errno
import hashlib
import io
import json
import math
import os
import pickle
import pickletools
import re
import struct
import tempfile
import warnings
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

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

PathLike = str | os.PathLike


class CheckpointError(ValueError):
    """A model file that cannot be used; the message names the file, the problem and the fix."""


# --------------------------------------------------------------------------------------------
# Sniffing
# --------------------------------------------------------------------------------------------

_TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_HEAD_BYTES = 4096


def _read_head(path: Path, n: int = _HEAD_BYTES) -> bytes:
    with open(path, "rb") as f:
        return f.read(n)


def _check_readable(path: PathLike) -> Path:
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"{p}: file not found. Check the path, or download the file there.")
    if p.is_dir():
        raise CheckpointError(f"{p}: is a folder, not a model file. Give the path of the file.")
    return p


def _safetensors_header_len(head: bytes, size: int) -> int | None:
    """The header length if ``head`` starts like a safetensors file of ``size`` bytes."""
    if len(head) < 9:
        return None
    (n,) = struct.unpack("<Q", head[:8])
    if head[8:9] != b"{" or n < 2:
        return None
    if 8 + n > size and head[9:10] != b'"':  # a damaged one still starts with {"
        return None
    return n


def sniff(path: PathLike) -> str:
    """What a file really is, from its first bytes and size (the extension is not trusted).

    Returns one of ``"empty"``, ``"safetensors"``, ``"zip"`` (torch >= 1.6 format),
    ``"pickle"`` (legacy torch format or any Python pickle, e.g. NVIDIA ``.pkl``), ``"html"``
    (e.g. a Google Drive quota page saved under the model's name), ``"text"``, ``"unknown"``.
    """
    p = _check_readable(path)
    size = p.stat().st_size
    if size == 0:
        return "empty"
    head = _read_head(p)
    if _safetensors_header_len(head, size) is not None:
        return "safetensors"
    if head.startswith(b"PK"):  # b"PK\x03\x04" (b"PK\x05\x06" when empty), or damaged
        return "zip"
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return "pickle"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith((b"<!doctype html", b"<html", b"<head", b"<body", b"<!--", b"<?xml")) or (
        b"<html" in text[:1024]
    ):
        return "html"
    if all(b in b"\t\n\r" or 32 <= b < 127 or b >= 128 for b in head[:512]):
        try:  # incremental: a multi-byte character cut at the end is fine, binary data is not
            codecs.getincrementaldecoder("utf-8")().decode(head[:512], final=False)
            return "text"
        except UnicodeDecodeError:
            pass
    return "unknown"


# Magic numbers of common non-model files: named in errors instead of quoting a file's bytes.
_MAGICS = (
    (b"\x1f\x8b", "a gzip archive"),
    (b"BZh", "a bzip2 archive"),
    (b"\xfd7zXZ\x00", "an xz archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!", "a RAR archive"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"%PDF", "a PDF document"),
    (b"\x7fELF", "an executable (ELF)"),
    (b"MZ", "a Windows executable"),
    (b"\x89HDF", "an HDF5 file (e.g. Keras .h5)"),
    (b"\x93NUMPY", "a NumPy .npy array"),
    (b"GGUF", "a GGUF model (llama.cpp)"),
)


def _binary_kind(head: bytes) -> str:
    """What a binary file is, from its magic number, in words (never its bytes)."""
    for magic, what in _MAGICS:
        if head.startswith(magic):
            return what
    if head[257:262] == b"ustar":
        return "a tar archive"
    return "a binary file of unknown format"


def _html_kind(head: bytes) -> str:
    """The kind of a web page saved as a model, told from its title (never quoted): e.g.
    ``" (a 'quota exceeded' page)"``, or "" when the title says nothing known."""
    low = head.lower()
    i, j = low.find(b"<title>"), low.find(b"</title>")
    title = low[i + 7 : j] if 0 <= i < j else b""
    for words, what in (
        ((b"quota", b"too many users"), "a 'quota exceeded' page"),
        ((b"sign in", b"sign-in", b"login", b"log in"), "a sign-in page"),
        ((b"not found", b"404"), "a 'not found' page"),
        ((b"virus", b"can't scan", b"cannot scan"), "a 'cannot scan for viruses' page"),
    ):
        if any(w in title for w in words):
            return f" ({what})"
    return ""


def _describe_not_a_model(p: Path, kind: str) -> str:
    """The error text for a file whose first bytes show it holds no weights. It says what kind
    of file it is and never quotes its content (the file may be anything a name points to)."""
    if kind == "empty":
        return (
            f"{p}: the file is empty (0 bytes), probably an interrupted download or copy. "
            "Download it again."
        )
    head = _read_head(p)
    if kind == "html":
        return (
            f"{p}: this is an HTML page{_html_kind(head)}, probably a failed download (for "
            "example a Google Drive 'quota exceeded' or sign-in page), not model weights. Open "
            "the link in a browser, download the real file, and put it in place of this one."
        )
    if kind == "text":
        if head.startswith(b"version https://git-lfs"):
            return (
                f"{p}: this is a Git LFS pointer file, not the model itself. Fetch the real file "
                "(git lfs pull, or download it from the hosting page)."
            )
        return (
            f"{p}: this is a text file ({p.stat().st_size} bytes), not model weights, probably a "
            "failed download or an error message saved under the model's name. Download the "
            "file again."
        )
    return (
        f"{p}: unrecognised file format ({_binary_kind(head)}); expected a .safetensors file or "
        "a PyTorch .pt/.pth file. Check that this is the right file and that the download "
        "completed."
    )


# --------------------------------------------------------------------------------------------
# Pickle scanning (never executes anything)
# --------------------------------------------------------------------------------------------

_STRING_OPS = {
    "SHORT_BINUNICODE",
    "BINUNICODE",
    "BINUNICODE8",
    "UNICODE",
    "SHORT_BINSTRING",
    "BINSTRING",
    "STRING",
}
_NO_PUSH_OPS = {"PROTO", "FRAME", "MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT", "STOP", "MARK"}
# Globals a plain tensor checkpoint may name. Anything under torch.* is deferred to torch's own
# weights-only unpickler, which refuses every torch callable that is not a tensor rebuilder.
_ALLOWED_GLOBALS = {
    "collections.OrderedDict",
    "argparse.Namespace",
    "builtins.set",
    "builtins.frozenset",
    "builtins.bytearray",
    "builtins.slice",
    "builtins.complex",
    "_codecs.encode",
}
_MAX_PICKLE_BYTES = 1 << 28  # the object tree of a checkpoint, not its tensor data
_NVIDIA_MODULES = ("dnnlib", "torch_utils", "training", "legacy", "metrics")


def _is_allowed_global(name: str) -> bool:
    return name in _ALLOWED_GLOBALS or name.startswith("torch.")


def _is_tensor_global(name: str) -> bool:
    """Globals that only rebuild tensors/containers (used to word the refusal of plain pickles)."""
    if name in _ALLOWED_GLOBALS or name in ("torch.Size", "torch.device"):
        return True
    module, _, qual = name.rpartition(".")
    return (module == "torch._utils" and qual.startswith("_rebuild_")) or (
        module == "torch" and (qual.endswith("Storage") or qual in ("float32", "float16"))
    )


def _scan_one_pickle(f: io.BufferedIOBase) -> tuple[list[str], bool]:
    """Globals named by the next pickle in ``f``; and whether it is the legacy torch magic."""
    found: list[str] = []
    recent: list[Any] = []
    memo: dict[int, Any] = {}
    is_magic = False
    for op, arg, _pos in pickletools.genops(f):
        name = op.name
        if name in ("GLOBAL", "INST"):
            module, _, qual = str(arg).partition(" ")
            found.append(f"{module}.{qual}")
            recent.append(None)
        elif name == "STACK_GLOBAL":
            mod, qual = (recent[-2], recent[-1]) if len(recent) >= 2 else (None, None)
            if isinstance(mod, str) and isinstance(qual, str):
                found.append(f"{mod}.{qual}")
            else:
                found.append("<a global whose name is computed at load time>")
            recent.append(None)
        elif name in ("EXT1", "EXT2", "EXT4"):
            found.append(f"<copyreg extension code {arg}>")
            recent.append(None)
        elif name in _STRING_OPS:
            recent.append(arg)
        elif name == "MEMOIZE":
            memo[len(memo)] = recent[-1] if recent else None
        elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
            memo[int(arg)] = recent[-1] if recent else None
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            recent.append(memo.get(int(arg)))
        elif name in ("LONG1", "LONG4", "LONG", "INT") and arg == _TORCH_LEGACY_MAGIC:
            is_magic = True
            recent.append(None)
        elif name not in _NO_PUSH_OPS:
            recent.append(None)
        if len(recent) > 64:
            del recent[:32]
    return found, is_magic


def _scan_stream(data: bytes | io.IOBase) -> tuple[list[str], bool]:
    f = io.BytesIO(data) if isinstance(data, bytes | bytearray) else data
    found, is_magic = _scan_one_pickle(f)
    if is_magic:
        for _ in range(4):
            more, _m = _scan_one_pickle(f)
            found += more
    return list(dict.fromkeys(found)), is_magic


def scan_pickle_globals(data: bytes) -> list[str]:
    """Every global (``module.name``) a pickle stream would import, found without executing it.

    For a legacy torch file (a sequence of pickles: magic number, protocol, system info, the
    object, the storage keys) all five pickles are scanned. Raises :class:`ValueError` when the
    opcode stream is malformed (e.g. truncated).
    """
    return _scan_stream(data)[0]


def _nvidia_message(p: Path, names: list[str]) -> str:
    shown = ", ".join(names[:6]) + (", ..." if len(names) > 6 else "")
    return (
        f"{p}: this is an NVIDIA StyleGAN2-ADA/StyleGAN3 network pickle (.pkl). It embeds Python "
        f"code ({shown}) that would run when unpickled, so it is never loaded directly. "
        "Convert it first: jojogan.checkpoints.convert_nvidia_pkl(src, 'converted.safetensors') "
        "reads the weights of StyleGAN2-ADA networks without running that code and writes a "
        "rosinality-layout .safetensors file; load the converted file."
    )


def _refuse_globals(p: Path, refused: list[str], where: str) -> CheckpointError:
    if any(n.split(".", 1)[0] in _NVIDIA_MODULES for n in refused):
        return CheckpointError(_nvidia_message(p, refused))
    shown = ", ".join(refused[:8]) + (f", ... ({len(refused)} in all)" if len(refused) > 8 else "")
    return CheckpointError(
        f"{p}: refused to load: its {where} needs Python objects other than tensors ({shown}). "
        "Loading it would run code from the file, which is never done here. If you trust the "
        "file, re-save its tensors (a dict of state dicts) with torch.save or as .safetensors "
        "and load that."
    )


# --------------------------------------------------------------------------------------------
# Raw loading
# --------------------------------------------------------------------------------------------


def _short(exc: BaseException, n: int = 300) -> str:
    msg = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {msg[:n]}{'...' if len(msg) > n else ''}"


def _safe_globals_context() -> contextlib.AbstractContextManager:
    ctx = getattr(torch.serialization, "safe_globals", None)
    if ctx is not None:
        return ctx([argparse.Namespace])
    adder = getattr(torch.serialization, "add_safe_globals", None)  # torch 2.4
    if adder is not None:
        adder([argparse.Namespace])
    return contextlib.nullcontext()


def _zip_member(p: Path, zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    """A member's bytes; CRC-checked unless it was stored without one (CRC 0: torch's
    ``compute_crc32=False`` save option), in which case it is read raw."""
    if info.CRC != 0 or info.file_size == 0 or info.compress_type != zipfile.ZIP_STORED:
        return zf.read(info)
    with open(p, "rb") as f:
        f.seek(info.header_offset)
        head = f.read(30)
        if len(head) < 30 or head[:4] != b"PK\x03\x04":
            raise zipfile.BadZipFile(f"bad local header for {info.filename}")
        name_len, extra_len = struct.unpack("<HH", head[26:30])
        f.seek(info.header_offset + 30 + name_len + extra_len)
        data = f.read(info.file_size)
    if len(data) != info.file_size:
        raise zipfile.BadZipFile(f"{info.filename} is cut short")
    return data


def _first_bad_member(zf: zipfile.ZipFile) -> str | None:
    """The first member whose stored CRC-32 does not match its data (None when all match)."""
    for info in zf.infolist():
        if info.CRC == 0 and info.file_size > 0:
            continue  # saved without checksums: nothing to verify
        try:
            with zf.open(info) as f:
                while f.read(1 << 24):
                    pass
        except zipfile.BadZipFile:
            return info.filename
    return None


def _check_zip(p: Path) -> None:
    """Refuse a corrupt zip (bad CRC, truncated) and a zip whose pickles need code."""
    try:
        with zipfile.ZipFile(p) as zf:
            _check_zip_sizes(p, zf)
            bad = _first_bad_member(zf)
            if bad is not None:
                raise CheckpointError(
                    f"{p}: the file is corrupt (checksum mismatch in '{bad}'): it was damaged "
                    "during download or on disk. Download it again."
                )
            pickles = [n for n in zf.namelist() if n.endswith(".pkl")]
            if not pickles:
                raise CheckpointError(
                    f"{p}: this is a zip archive but not a PyTorch checkpoint (no data.pkl "
                    "inside). Give the .pt/.pth/.safetensors model file itself."
                )
            refused: list[str] = []
            for name in pickles:
                if zf.getinfo(name).file_size > _MAX_PICKLE_BYTES:
                    raise CheckpointError(
                        f"{p}: the file is corrupt or not a checkpoint ({name} inside it claims "
                        f"{zf.getinfo(name).file_size} bytes). Download it again."
                    )
                try:
                    names = scan_pickle_globals(_zip_member(p, zf, zf.getinfo(name)))
                except Exception as e:
                    raise CheckpointError(
                        f"{p}: the file is corrupt ({name} inside it is not a valid pickle: "
                        f"{_short(e, 120)}). Download it again."
                    ) from None
                refused += [n for n in names if not _is_allowed_global(n)]
            if refused:
                raise _refuse_globals(p, list(dict.fromkeys(refused)), "pickled data")
            for name in pickles:
                if name.rpartition("/")[2] == "data.pkl":
                    _check_zip_storages(p, zf, name)
    except CheckpointError:
        raise
    except Exception as e:  # BadZipFile, NotImplementedError (bad method field), OSError, ...
        raise CheckpointError(
            f"{p}: the file is truncated or corrupt (a damaged zip archive: {_short(e, 120)}). "
            "The download was probably interrupted: download it again."
        ) from None


def _check_pickle(p: Path) -> None:
    """Refuse a legacy/plain pickle that needs code, and a plain pickle that is no torch file;
    and a legacy torch file whose storages claim more bytes than the file holds."""
    size = p.stat().st_size
    try:
        with open(p, "rb") as f:
            names, is_magic = _scan_stream(_CappedReader(f, size))
    except Exception as e:  # malformed opcodes: ValueError, struct.error, MemoryError
        raise CheckpointError(
            f"{p}: the file is truncated or corrupt (its pickle data is malformed: "
            f"{_short(e, 120)}). Download it again."
        ) from None
    refused = list(dict.fromkeys(n for n in names if not _is_allowed_global(n)))
    if refused:
        raise _refuse_globals(p, refused, "pickle")
    if not is_magic:
        code = [n for n in names if not _is_tensor_global(n)]
        if code:
            raise _refuse_globals(p, code, "pickle")
        raise CheckpointError(
            f"{p}: this is a plain Python pickle, not a PyTorch checkpoint, and plain pickles "
            "are not loaded here. Save the weights with torch.save or as .safetensors."
        )
    try:
        with open(p, "rb") as f:
            reader = _CappedReader(f, size)
            for _ in range(3):  # magic number, protocol version, system info
                _ClaimsUnpickler(reader).load()
            claims = _storage_claims(reader)
    except CheckpointError:
        raise
    except Exception as e:
        raise CheckpointError(
            f"{p}: the file is truncated or corrupt (its pickle data is malformed: "
            f"{_short(e, 120)}). Download it again."
        ) from None
    claimed = sum(_claim_bytes(c) for c in claims.values())
    if claimed > size:
        raise CheckpointError(
            f"{p}: refused: its tensors claim {claimed} bytes but the file has {size} (a "
            "truncated or corrupt file; nothing was allocated). Download it again."
        )


# --------------------------------------------------------------------------------------------
# Claimed sizes, checked against the file before anything is allocated
# --------------------------------------------------------------------------------------------

_MAX_UNPACK_RATIO = 4  # a torch zip stores its members; a re-zipped one may compress a little


class _CappedReader:
    """A file's ``read``/``readline`` that never ask for more than is left in it, so a pickle
    opcode claiming a huge length cannot make the reader allocate that length."""

    def __init__(self, f: Any, size: int) -> None:
        self._f, self._size = f, int(size)

    def _left(self) -> int:
        return max(self._size - self._f.tell(), 0)

    def read(self, n: int | None = -1) -> bytes:
        left = self._left()
        return self._f.read(left if n is None or n < 0 else min(n, left))

    def readline(self, n: int | None = -1) -> bytes:
        left = self._left()
        return self._f.readline(left if n is None or n < 0 else min(n, left))

    def tell(self) -> int:
        return self._f.tell()


class _Inert:
    """Stands in for every object a pickle builds while its storage claims are read."""

    _global = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass

    def __setitem__(self, key: Any, value: Any) -> None:
        pass

    def append(self, value: Any) -> None:
        pass

    def extend(self, values: Any) -> None:
        pass


class _ClaimsUnpickler(pickle.Unpickler):
    """Reads a torch pickle's storage records (type, element count, device) and runs nothing:
    every global becomes an inert class, every storage an inert object. Run only after
    :func:`scan_pickle_globals` found nothing but tensor globals."""

    def __init__(self, f: Any) -> None:
        super().__init__(f)
        self.claims: dict[str, tuple[str, int, str]] = {}
        self._classes: dict[str, type] = {}

    def find_class(self, module: str, name: str) -> Any:
        key = f"{module}.{name}"
        if key not in self._classes:
            self._classes[key] = type(name, (_Inert,), {"_global": key})
        return self._classes[key]

    def persistent_load(self, pid: Any) -> Any:
        # ("storage", storage type, key, location, element count[, view metadata])
        if isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage":
            numel = pid[4]
            if not isinstance(numel, int) or isinstance(numel, bool) or numel < 0:
                raise ValueError("a storage record with a bad size")
            stype = getattr(pid[1], "_global", "") or type(pid[1]).__name__
            self.claims[str(pid[2])] = (str(stype), numel, str(pid[3]))
        return _Inert()


def _storage_claims(f: Any) -> dict[str, tuple[str, int, str]]:
    """{storage key: (storage type, element count, location)} of the next pickle in ``f``."""
    u = _ClaimsUnpickler(f)
    u.load()
    return u.claims


_ITEMSIZE: dict[str, int] = {}


def _claim_bytes(claim: tuple[str, int, str]) -> int:
    """Bytes a storage record asks for: element count x the size of its type's elements
    (``torch.FloatStorage``: 4; ``UntypedStorage`` and names not known: 1, so that no real
    file is refused for a type this check does not know)."""
    stype, numel, _location = claim
    qual = stype.rpartition(".")[2]
    if qual not in _ITEMSIZE:
        size = 1
        if qual.endswith("Storage") and qual != "UntypedStorage":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # TypedStorage is deprecated
                dtype = getattr(getattr(torch, qual, None), "dtype", None)
            if isinstance(dtype, torch.dtype):
                size = dtype.itemsize
        _ITEMSIZE[qual] = size
    return numel * _ITEMSIZE[qual]


def _check_zip_sizes(p: Path, zf: zipfile.ZipFile) -> None:
    """Refuse an archive whose members claim far more unpacked bytes than the file has (a zip
    bomb: a few kB that would unpack, and be allocated, as gigabytes)."""
    size = p.stat().st_size
    claimed = sum(max(int(i.file_size), 0) for i in zf.infolist())
    if claimed > _MAX_UNPACK_RATIO * size + (1 << 20):
        raise CheckpointError(
            f"{p}: refused: its zip members claim {claimed} bytes unpacked from a file of "
            f"{size} bytes (a corrupt file or a zip bomb; nothing was allocated). Download it "
            "again."
        )


def _check_zip_storages(p: Path, zf: zipfile.ZipFile, pkl: str) -> None:
    """Every storage ``data.pkl`` names must be a member at least as large as it claims."""
    prefix = pkl.rpartition("/")[0]
    claims = _storage_claims(io.BytesIO(_zip_member(p, zf, zf.getinfo(pkl))))
    for key, claim in claims.items():
        if claim[2] == "meta":
            continue  # no data in the file; refused once loaded
        need = _claim_bytes(claim)
        try:
            have = zf.getinfo(f"{prefix}/data/{key}").file_size
        except KeyError:
            raise CheckpointError(
                f"{p}: the file is truncated or corrupt (the data of storage {key[:40]!r} is "
                "missing). Download it again."
            ) from None
        if need > have:
            raise CheckpointError(
                f"{p}: refused: storage {key[:40]!r} claims {need} bytes but holds {have} (a "
                "corrupt file; nothing was allocated). Download it again."
            )


def _tensors_in(obj: Any, prefix: str = "", depth: int = 0) -> Iterator[tuple[str, torch.Tensor]]:
    """(dotted key, tensor) of every tensor in a loaded object (dicts, lists, Namespaces)."""
    if depth > 64:
        return
    if isinstance(obj, torch.Tensor):
        yield prefix or "<tensor>", obj
        return
    if isinstance(obj, argparse.Namespace):
        obj = vars(obj)
    if isinstance(obj, Mapping):
        items: Iterable[tuple[Any, Any]] = obj.items()
    elif isinstance(obj, list | tuple):
        items = enumerate(obj)
    else:
        return
    for k, v in items:
        yield from _tensors_in(v, f"{prefix}.{k}" if prefix else str(k), depth + 1)


def _nonfinite(t: torch.Tensor) -> int:
    """How many NaN/inf values a tensor holds (0 for integer and bool tensors)."""
    if not (t.is_floating_point() or t.is_complex()) or t.numel() == 0:
        return 0
    try:
        ok = torch.isfinite(t)
    except (RuntimeError, NotImplementedError):  # e.g. float8 types without isfinite
        ok = torch.isfinite(t.float())
    return 0 if bool(ok.all()) else int((~ok).sum())


def _check_loaded(p: Path, obj: Any) -> None:
    """Refuse a loaded file holding a meta tensor (no data) or NaN/inf values, naming the first
    such tensor; ints and bools pass as they are."""
    for key, t in _tensors_in(obj):
        shown = key if len(key) <= 80 else key[:77] + "..."
        if t.device.type == "meta":
            raise CheckpointError(
                f"{p}: tensor '{shown}' holds no data (a 'meta' tensor, saved from a model that "
                "was never given weights). Save the real weights and load that file."
            )
        n = _nonfinite(t)
        if n:
            raise CheckpointError(
                f"{p}: NaN or infinite values in '{shown}' ({n} of {t.numel()} values). The "
                "model is broken (a diverged training run or a damaged file); use another copy."
            )


def _load_safetensors(p: Path, map_location: Any) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file as _st_load

    _read_safetensors_header(p)  # clear errors for truncation / bad header first
    device = map_location if map_location is not None else "cpu"
    if isinstance(device, torch.device):
        device = str(device)
    if not isinstance(device, str):
        raise TypeError(f"map_location for a .safetensors file must be a device, got {device!r}")
    try:
        tensors = _st_load(str(p), device=device)
    except Exception as e:  # safetensors raises its own error types
        raise CheckpointError(
            f"{p}: the .safetensors file is corrupt ({_short(e, 160)}). Download it again."
        ) from None
    meta = read_safetensors_metadata(p)
    expected = meta.get(_SHA_KEY)
    if expected is not None and tensors_sha256(tensors) != expected:
        raise CheckpointError(
            f"{p}: the file is corrupt: its tensors do not match the checksum stored in it "
            "(damaged on disk or in transfer). Download or copy it again."
        )
    _check_loaded(p, tensors)
    return tensors


def load_file(path: PathLike, *, map_location: Any = "cpu") -> Any:
    """Load a model file safely and return the raw object (a dict of tensors / nested dicts).

    ``.safetensors`` (detected from the bytes, not the name) returns ``dict[str, Tensor]``;
    torch zip and legacy files go through ``torch.load(weights_only=True)`` with only
    ``argparse.Namespace`` allowed besides tensors and containers. Sizes the file claims
    (safetensors offsets, zip members, pickled storages) are checked against the file before
    anything is allocated, and every loaded tensor must hold data and finite values. Anything
    else raises :class:`CheckpointError` naming the file and what it really is (never quoting
    its content).
    """
    p = _check_readable(path)
    try:
        kind = sniff(p)
    except OSError as e:
        raise CheckpointError(f"{p}: cannot read the file ({_short(e)}).") from None
    if isinstance(map_location, str | torch.device):
        try:
            torch.empty(0, device=map_location)
        except Exception as e:
            raise ValueError(f"map_location={map_location!r} is not usable ({_short(e)})") from None
    if kind == "safetensors":
        return _load_safetensors(p, map_location)
    if kind == "zip":
        _check_zip(p)
    elif kind == "pickle":
        _check_pickle(p)
    else:
        raise CheckpointError(_describe_not_a_model(p, kind))
    try:
        with _safe_globals_context():
            obj = torch.load(p, map_location=map_location, weights_only=True)
    except MemoryError:
        raise CheckpointError(
            f"{p}: not enough memory to load this file ({p.stat().st_size / 2**20:.0f} MiB), or "
            "the file is corrupt and claims an absurd size."
        ) from None
    except Exception as e:
        text = str(e)
        if "Weights only load failed" in text or "Unsupported global" in text:
            found = re.findall(r"GLOBAL ([\w.]+) was not an allowed global", text)
            detail = ", ".join(found) or text.split("WeightsUnpickler error:")[-1].strip()[:120]
            raise CheckpointError(
                f"{p}: refused to load: it needs Python objects other than tensors "
                f"({detail}). Loading it would run code from the file, which is never "
                "done here. If you trust the file, re-save its tensors with torch.save or as "
                ".safetensors and load that."
            ) from None
        raise CheckpointError(
            f"{p}: the file is truncated or corrupt and could not be read ({_short(e, 200)}). "
            "Download it again."
        ) from None
    _check_loaded(p, obj)
    return obj


# --------------------------------------------------------------------------------------------
# safetensors metadata and checksums
# --------------------------------------------------------------------------------------------

_SHA_KEY = "jojogan.tensors_sha256"


_ST_MAX_HEADER = 100_000_000  # the safetensors library's own limit
_ST_ITEMSIZE = {
    "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1,
    "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U64": 8, "U32": 4, "U16": 2, "U8": 1, "BOOL": 1,
    "C64": 8,
}  # fmt: skip


def _st_span(p: Path, name: str, info: Any, data_len: int) -> int:
    """Check one header entry against the file (offsets inside the data, dtype x shape equal
    to the span) and return its end offset."""
    shown = name if len(name) <= 80 else name[:77] + "..."
    try:
        if not isinstance(info["shape"], list) or not isinstance(info["data_offsets"], list):
            raise TypeError("shape and data_offsets must be lists")
        lo, hi = (int(x) for x in info["data_offsets"])
        shape = [int(d) for d in info["shape"]]
        dtype = str(info["dtype"])
    except (TypeError, KeyError, ValueError):
        raise CheckpointError(
            f"{p}: the .safetensors header is corrupt (bad entry for tensor '{shown}')."
        ) from None
    if hi > data_len:
        raise CheckpointError(
            f"{p}: the .safetensors file is truncated: it needs {hi} bytes of tensor data, "
            f"only {data_len} are there. Download it again."
        )
    if not 0 <= lo <= hi or any(d < 0 for d in shape):
        raise CheckpointError(
            f"{p}: the .safetensors header is corrupt (tensor '{shown}' has offsets {lo}..{hi} "
            f"and shape {shape}). Download it again."
        )
    if dtype in _ST_ITEMSIZE and math.prod(shape) * _ST_ITEMSIZE[dtype] != hi - lo:
        raise CheckpointError(
            f"{p}: the .safetensors header is corrupt (tensor '{shown}', {dtype} {shape}, "
            f"claims {math.prod(shape) * _ST_ITEMSIZE[dtype]} bytes in a span of {hi - lo}). "
            "Download it again."
        )
    return hi


def _read_safetensors_header(p: Path) -> dict[str, Any]:
    """The header of a .safetensors file, every entry checked against the file's size."""
    size = p.stat().st_size
    with open(p, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise CheckpointError(f"{p}: the .safetensors file is truncated (header missing).")
        (n,) = struct.unpack("<Q", head)
        if 8 + n > size:
            raise CheckpointError(
                f"{p}: the .safetensors file is truncated or corrupt (its header claims "
                f"{n} bytes, the file has {size}). Download it again."
            )
        if n > _ST_MAX_HEADER:
            raise CheckpointError(
                f"{p}: the .safetensors header is corrupt (it claims {n} bytes; at most "
                f"{_ST_MAX_HEADER} are allowed). Download it again."
            )
        raw = f.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
        if not isinstance(header, dict):
            raise ValueError("header is not a JSON object")
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise CheckpointError(
            f"{p}: the .safetensors header is corrupt ({_short(e, 120)}). Download it again."
        ) from None
    data_len = size - 8 - n
    for name, info in header.items():
        if name != "__metadata__":
            _st_span(p, str(name), info, data_len)
    return header


def read_safetensors_metadata(path: PathLike) -> dict[str, str]:
    """The ``__metadata__`` string dict of a ``.safetensors`` file ({} when it has none)."""
    p = _check_readable(path)
    kind = sniff(p)
    if kind != "safetensors":
        if kind in ("zip", "pickle"):
            raise CheckpointError(f"{p}: this is a PyTorch {kind} file, not .safetensors.")
        raise CheckpointError(_describe_not_a_model(p, kind))
    meta = _read_safetensors_header(p).get("__metadata__") or {}
    if not isinstance(meta, dict):
        raise CheckpointError(f"{p}: the .safetensors metadata is corrupt (not a JSON object).")
    return {str(k): str(v) for k, v in meta.items()}


def tensors_sha256(tensors: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over names, dtypes, shapes and bytes of ``tensors`` (order independent)."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


# --------------------------------------------------------------------------------------------
# Atomic writes
# --------------------------------------------------------------------------------------------

_UMASK: int | None = None


def _file_mode() -> int:
    global _UMASK
    if _UMASK is None:
        _UMASK = os.umask(0)
        os.umask(_UMASK)
    return 0o666 & ~_UMASK


def fsync_dir(d: Path) -> None:
    """fsync a folder so a rename inside it is durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:  # e.g. Windows: folders cannot be opened
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def check_not_overwriting(target: PathLike, sources: Iterable[PathLike] = ()) -> None:
    """Refuse to write ``target`` when it is (or resolves to) one of the input files."""
    t = Path(target)
    for s in sources:
        s = Path(s)
        same = False
        if t.exists() and s.exists():
            same = os.path.samefile(t, s)
        else:
            same = t.resolve() == s.resolve()
        if same:
            raise CheckpointError(
                f"{t}: refusing to overwrite an input file ({s}). Choose another output name."
            )


@contextlib.contextmanager
def atomic_writer(path: PathLike, *, inputs: Iterable[PathLike] = ()) -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder; on success it atomically replaces ``path``.

    The temp file is fsync'ed, renamed over the target with ``os.replace`` and the folder is
    fsync'ed, so the target is always either the old file or the complete new one. On any
    exception (KeyboardInterrupt included) the temp file is removed and the old file is left
    untouched. A full disk (ENOSPC, EDQUOT, EFBIG) becomes a :class:`CheckpointError` saying
    "not enough space in <dir>". ``inputs`` are files that must not be overwritten.
    """
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    try:
        check_not_overwriting(target, inputs)
        if not folder.is_dir():
            raise CheckpointError(
                f"{_shown(target)}: cannot save, the folder {folder} does not exist. Create it "
                "or choose another folder."
            )
        if target.is_dir():
            raise CheckpointError(
                f"{_shown(target)}: cannot save, a folder of that name exists. Choose another name."
            )
        # The temp name stays short, so a name that fits the file system also fits with it.
        prefix = f".{target.name[:64]}."
        fd, tmp_name = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=folder)
    except OSError as e:
        raise _write_error(target, e) from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, _file_mode())
        os.replace(tmp, target)
        fsync_dir(folder)
    except BaseException as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(e, OSError):
            raise _write_error(target, e) from e
        raise


def _shown(target: Path) -> str:
    """A path for a message: the folder and at most 40 characters of the file's name."""
    name = target.name
    return str(target) if len(name) <= 40 else f"{target.parent / name[:40]}..."


def _write_error(target: Path, e: OSError) -> CheckpointError:
    """A failed save as one clear error: where, what went wrong, and what to do."""
    folder, shown = target.parent, _shown(target)
    why = os.strerror(e.errno) if e.errno else type(e).__name__
    if e.errno in (errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", -1)):
        return CheckpointError(
            f"{shown}: not enough space in {folder} to save the file ({why}). Free some space "
            "or choose another folder; the previous file (if any) is intact."
        )
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return CheckpointError(
            f"{shown}: cannot write in {folder} ({why}). Choose a folder you can write to."
        )
    if e.errno == errno.ENAMETOOLONG:
        return CheckpointError(
            f"{shown}: the file name ({len(target.name)} characters) or its path is too long "
            f"for the file system of {folder.name or folder}. Choose a shorter name."
        )
    return CheckpointError(f"{shown}: saving failed ({_short(e)}); the previous file is intact.")


def atomic_write_bytes(path: PathLike, data: bytes, *, inputs: Iterable[PathLike] = ()) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_writer`)."""
    with atomic_writer(path, inputs=inputs) as tmp, open(tmp, "wb") as f:
        view = memoryview(data)
        # Chunked so an interrupt or a size limit strikes mid-file, as it would for a real save.
        for i in range(0, len(view), 1 << 24):
            f.write(view[i : i + (1 << 24)])
        f.flush()


def save_safetensors(
    tensors: Mapping[str, torch.Tensor],
    path: PathLike,
    metadata: Mapping[str, str] | None = None,
    *,
    inputs: Iterable[PathLike] = (),
) -> None:
    """Save ``tensors`` as ``.safetensors`` atomically, with string ``metadata``.

    A checksum of the tensors is stored under ``jojogan.tensors_sha256`` and checked by
    :func:`load_file`, so a file damaged later is reported instead of loaded.
    """
    from safetensors.torch import save as _st_save

    meta: dict[str, str] = {}
    for k, v in (metadata or {}).items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise TypeError(f"safetensors metadata must map str to str; got {k!r}: {v!r}")
        meta[k] = v
    out: dict[str, torch.Tensor] = {}
    for k, t in tensors.items():
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"save_safetensors: '{k}' is a {type(t).__name__}, not a tensor")
        out[k] = t.detach().to("cpu").contiguous().clone()
    meta[_SHA_KEY] = tensors_sha256(out)
    try:
        data = _st_save(out, metadata=meta)
    except Exception as e:
        raise CheckpointError(f"{path}: cannot serialise the tensors ({_short(e)}).") from None
    atomic_write_bytes(path, data, inputs=inputs)


# --------------------------------------------------------------------------------------------
# Layouts
# --------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------
# Config inference from shapes
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GeneratorConfig:
    """Constructor arguments of :class:`jojogan.stylegan2.Generator`, inferred from a file.

    ``channels`` maps resolution -> width and is set only when the widths do not follow
    rosinality's table for some ``channel_multiplier``.
    """

    size: int
    style_dim: int = 512
    n_mlp: int = 8
    channel_multiplier: int | None = 2
    channels: dict[int, int] | None = None

    def kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = {"style_dim": self.style_dim, "n_mlp": self.n_mlp}
        if self.channels is not None:
            kw["channels"] = dict(self.channels)
            kw["channel_max"] = max(self.channels.values())
        else:
            kw["channel_multiplier"] = self.channel_multiplier
        return kw

    def describe(self) -> str:
        width = (
            f"channel_multiplier {self.channel_multiplier}"
            if self.channels is None
            else f"channels {self.channels}"
        )
        return f"{self.size} px generator (style_dim {self.style_dim}, n_mlp {self.n_mlp}, {width})"


@dataclass(frozen=True)
class DiscriminatorConfig:
    """Constructor arguments of :class:`jojogan.stylegan2.Discriminator`, inferred from a file."""

    size: int
    channel_multiplier: int | None = 2
    channels: dict[int, int] | None = None

    def kwargs(self) -> dict[str, Any]:
        if self.channels is not None:
            return {"channels": dict(self.channels), "channel_max": max(self.channels.values())}
        return {"channel_multiplier": self.channel_multiplier}

    def describe(self) -> str:
        width = (
            f"channel_multiplier {self.channel_multiplier}"
            if self.channels is None
            else f"channels {self.channels}"
        )
        return f"{self.size} px discriminator ({width})"


def _shape(sd: Mapping[str, torch.Tensor], key: str, p: Path, what: str) -> tuple[int, ...]:
    t = sd.get(key)
    if not isinstance(t, torch.Tensor):
        raise CheckpointError(
            f"{p}: {what}: key '{key}' is missing, so the architecture cannot be inferred "
            f"(keys found: {_keys_summary(sd.keys())}). The file is not a complete StyleGAN2 "
            f"{what} in rosinality's layout."
        )
    return tuple(t.shape)


def _count_indexed(keys: Iterable[str], prefix: str) -> set[int]:
    out = set()
    for k in keys:
        if k.startswith(prefix):
            head = k[len(prefix) :].split(".", 1)[0]
            if head.isdigit():
                out.add(int(head))
    return out


def _match_multiplier(size: int, channels: dict[int, int]) -> int | None:
    """The channel multiplier whose table (rosinality's, as the project's modules build it)
    gives exactly these widths, or None."""
    from jojogan.stylegan2 import channel_table

    for m in (2, 1, 4, 8):
        if channel_table(size, m) == channels:
            return m
    return None


def _log2_size(n_blocks: int, p: Path, what: str) -> int:
    size = 2 ** (n_blocks + 2)
    if not 16 <= size <= 1024:
        raise CheckpointError(
            f"{p}: {what}: {n_blocks} resolution blocks found, i.e. {size} px; supported "
            "resolutions are powers of two from 16 to 1024 px."
        )
    return size


def infer_generator_config(
    sd: Mapping[str, torch.Tensor], *, source: PathLike = "<state dict>"
) -> GeneratorConfig:
    """Infer ``size, style_dim, n_mlp`` and channel widths from a generator state dict.

    size: from the number of ``to_rgbs.N`` (``log2(size) - 2`` of them, 8 at 1024 px);
    style_dim: ``style.1.weight``'s input width; n_mlp: the number of ``style.N.weight``;
    widths: ``input.input`` and the first conv of every resolution.
    """
    p = Path(source)
    what = "generator"
    keys = set(sd)
    mlp = sorted(_count_indexed((k for k in keys if k.endswith(".weight")), "style."))
    if not mlp:
        _shape(sd, "style.1.weight", p, what)
    style_dim = _shape(sd, "style.1.weight", p, what)[1]
    n_rgb = _count_indexed(keys, "to_rgbs.")
    n_noise = {int(k.rsplit("_", 1)[1]) for k in keys if k.startswith("noises.noise_")}
    if n_rgb:
        n_blocks = max(n_rgb) + 1
    elif n_noise:
        n_blocks = (max(n_noise)) // 2
    else:
        n_blocks = (max(_count_indexed(keys, "convs."), default=-1) + 1) // 2
    size = _log2_size(n_blocks, p, what)
    channels = {4: _shape(sd, "input.input", p, what)[1]}
    for i in range(n_blocks):
        channels[8 << i] = _shape(sd, f"convs.{2 * i}.conv.weight", p, what)[1]
    mult = _match_multiplier(size, channels)
    return GeneratorConfig(
        size=size,
        style_dim=int(style_dim),
        n_mlp=len(mlp),
        channel_multiplier=mult,
        channels=None if mult is not None else channels,
    )


def infer_discriminator_config(
    sd: Mapping[str, torch.Tensor], *, source: PathLike = "<state dict>"
) -> DiscriminatorConfig:
    """Infer ``size`` and channel widths from a discriminator state dict.

    size: ``convs.0`` is the 1x1 from-RGB layer and ``convs.1..K`` are ``K = log2(size) - 2``
    down-sampling residual blocks; widths from ``convs.0.0.weight`` and each block's conv2.
    """
    p = Path(source)
    what = "discriminator"
    blocks = _count_indexed(sd.keys(), "convs.") - {0}
    size = _log2_size(max(blocks, default=0), p, what)
    channels = {size: _shape(sd, "convs.0.0.weight", p, what)[0]}
    for j in range(1, max(blocks) + 1):
        channels[size >> j] = _shape(sd, f"convs.{j}.conv2.1.weight", p, what)[0]
    channels = dict(sorted(channels.items()))
    mult = _match_multiplier(size, channels)
    return DiscriminatorConfig(
        size=size, channel_multiplier=mult, channels=None if mult is not None else channels
    )


# --------------------------------------------------------------------------------------------
# Strict loading
# --------------------------------------------------------------------------------------------


def check_finite(
    state_dict: Mapping[str, torch.Tensor], *, source: PathLike, what: str = "weights"
) -> None:
    """Refuse NaN/inf in any floating tensor, naming the tensors and the counts."""
    bad = []
    for k, t in state_dict.items():
        if isinstance(t, torch.Tensor) and (t.is_floating_point() or t.is_complex()):
            if not bool(torch.isfinite(t).all()):
                n = int((~torch.isfinite(t)).sum())
                bad.append(f"{k} ({n} of {t.numel()} values)")
    if bad:
        shown = ", ".join(bad[:5]) + (f", ... ({len(bad)} tensors)" if len(bad) > 5 else "")
        raise CheckpointError(
            f"{source}: {what}: NaN or infinite values in {shown}. The model is broken "
            "(a diverged training run or a damaged file); use another copy."
        )


def _list(items: list[str], n: int = 10) -> str:
    return ", ".join(items[:n]) + (f", ... ({len(items)} in all)" if len(items) > n else "")


def load_state_dict_strict(
    module: nn.Module,
    state_dict: Mapping[str, Any],
    *,
    source: PathLike,
    what: str,
    check_values: bool = True,
) -> None:
    """Load ``state_dict`` into ``module`` with every key and shape matched, or raise ONE error.

    The :class:`CheckpointError` names the file, the part (``what``), the missing keys, the
    unexpected keys and the shape mismatches (lists truncated when long). NaN/inf weights are
    refused before anything is copied (unless ``check_values=False``: the caller already ran
    :func:`check_finite`), so a failed load leaves ``module`` unchanged.
    """
    expected = module.state_dict()
    if not isinstance(state_dict, Mapping):
        raise CheckpointError(
            f"{source}: {what} is a {type(state_dict).__name__}, not a state dict of tensors."
        )
    not_tensor = [k for k, v in state_dict.items() if not isinstance(v, torch.Tensor)]
    missing = [k for k in expected if k not in state_dict]
    unexpected = [str(k) for k in state_dict if k not in expected]
    shapes = [
        f"{k}: file {tuple(state_dict[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if isinstance(state_dict.get(k), torch.Tensor) and state_dict[k].shape != v.shape
    ]
    if missing or unexpected or shapes or not_tensor:
        lines = [f"{source}: {what} does not match the model ({type(module).__name__})."]
        if missing:
            lines.append(f"Missing keys ({len(missing)}): {_list(missing)}.")
        if unexpected:
            lines.append(f"Unexpected keys ({len(unexpected)}): {_list(unexpected)}.")
        if shapes:
            lines.append(f"Shape mismatches ({len(shapes)}): {_list(shapes, 6)}.")
        if not_tensor:
            lines.append(f"Not tensors: {_list(not_tensor)}.")
        lines.append(
            "The file has another architecture or resolution, or is damaged; give the file "
            "that matches this model."
        )
        raise CheckpointError(" ".join(lines))
    if check_values:
        check_finite(state_dict, source=source, what=what)
    try:
        module.load_state_dict(dict(state_dict), strict=True)
    except Exception as e:  # dtype that cannot be cast, etc.
        raise CheckpointError(f"{source}: {what} could not be loaded ({_short(e)}).") from None


# --------------------------------------------------------------------------------------------
# StyleGAN2 checkpoints
# --------------------------------------------------------------------------------------------


@dataclass
class StyleGAN2Checkpoint:
    """A StyleGAN2 checkpoint loaded strictly.

    ``g_ema`` (the averaged generator, used for inference), ``g`` (the training copy) and ``d``
    (the discriminator) are modules or None when the file lacks them. JoJoGAN's fine-tuning needs
    ``d`` (its loss uses the frozen discriminator's features): a ``g_ema``-only file is fine for
    inference but cannot fine-tune. ``latent_avg`` is the mean W code ``[style_dim]`` or None.
    """

    source: Path
    layout: str
    size: int
    config: GeneratorConfig
    g_ema: nn.Module | None = None
    g: nn.Module | None = None
    d: nn.Module | None = None
    latent_avg: torch.Tensor | None = None
    d_config: DiscriminatorConfig | None = None
    args: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def generator(self) -> nn.Module:
        """``g_ema`` when present, else ``g`` (a JoJoGAN style file holds only ``g``)."""
        gen = self.g_ema if self.g_ema is not None else self.g
        assert gen is not None
        return gen


def _generator_parts(p: Path, obj: Any, wanted: str) -> tuple[str, dict[str, Any]]:
    """Split a loaded object into ``{g_ema, g, d, latent_avg, args}`` or raise."""
    obj = _unflatten(obj)
    layout = detect_layout(obj)
    if layout in (LAYOUT_ROSINALITY, LAYOUT_ROSINALITY_TRAINING, LAYOUT_JOJOGAN_STYLE):
        parts = {k: obj[k] for k in (*_PARTS, "latent_avg") if k in obj}
        if "g_ema" not in parts and "g" not in parts:
            raise CheckpointError(_wrong_layout_message(p, LAYOUT_DISCRIMINATOR, obj, wanted))
        args = obj.get("args")
        if isinstance(args, argparse.Namespace):
            parts["args"] = vars(args)
        elif isinstance(args, Mapping):
            parts["args"] = dict(args)
        return layout, parts
    if layout == LAYOUT_GENERATOR:
        return layout, {"g_ema": obj}
    raise CheckpointError(_wrong_layout_message(p, layout, obj, wanted))


def _check_parts_are_state_dicts(p: Path, parts: Mapping[str, Any]) -> None:
    for name in _PARTS:
        sd = parts.get(name)
        if sd is None:
            continue
        bad = [str(k) for k, v in sd.items() if not isinstance(v, torch.Tensor)]
        if bad or not all(isinstance(k, str) for k in sd):
            raise CheckpointError(
                f"{p}: '{name}' is not a state dict of tensors (non-tensor entries: "
                f"{_list(bad)}). The file is not in rosinality's layout."
            )


def _size_error(p: Path, what: str, got: int, want: int) -> CheckpointError:
    example = " (e.g. stylegan2-ffhq-config-f.pt for faces)" if want == 1024 else ""
    return CheckpointError(
        f"{p}: this is a {got} px {what} where a {want} px one is expected. Give a {want} px "
        f"checkpoint{example}, or set the resolution to {got}."
    )


def _bare_name(path: PathLike) -> PathLike:
    """A bare file name that is no file here is looked up in the model folders by
    :func:`jojogan.weights.resolve` (imported lazily: weights imports this module)."""
    from jojogan import weights

    return weights._loader_path(path)


def load_stylegan2(
    path: PathLike,
    *,
    device: str | torch.device = "cpu",
    expect_size: int | None = None,
    parts: Iterable[str] = _PARTS,
) -> StyleGAN2Checkpoint:
    """Load a StyleGAN2 checkpoint in rosinality's layout strictly, inferring its config.

    Accepts ``{g_ema, g, d, latent_avg}`` (any subset, generator required), rosinality training
    checkpoints (``args``, optimiser states and ``ada_aug_p`` are read and ignored; ``args``
    kept as a dict), JoJoGAN style files ``{"g": ...}``, a bare generator state dict, and the
    same flattened as ``.safetensors`` (``g_ema.style.1.weight``, ...). ``parts`` selects which
    of ``g_ema, g, d`` are built (all present ones by default). A bare file name that is not a
    file here (``"stylegan2-ffhq-config-f.pt"``) is looked up in the download folders
    (:func:`jojogan.weights.resolve`).
    """
    from jojogan import stylegan2

    p = Path(_bare_name(path))
    parts = (parts,) if isinstance(parts, str) else tuple(parts)
    if not set(parts) <= set(_PARTS):
        raise ValueError(f"load_stylegan2: parts must be among {_PARTS}, got {parts!r}")
    wanted = "a StyleGAN2 generator checkpoint"
    obj = load_file(p, map_location="cpu")
    layout, found = _generator_parts(p, obj, wanted)
    _check_parts_are_state_dicts(p, found)
    selected = [k for k in _PARTS if k in set(parts) and k in found]
    gen_names = [k for k in ("g_ema", "g") if k in found]
    gcfg = infer_generator_config(found[gen_names[0]], source=p)
    for other in gen_names[1:]:
        ocfg = infer_generator_config(found[other], source=p)
        if ocfg != gcfg:
            raise CheckpointError(
                f"{p}: '{gen_names[0]}' ({gcfg.describe()}) and '{other}' ({ocfg.describe()}) "
                "have different architectures; the file is inconsistent."
            )
    if expect_size is not None and gcfg.size != int(expect_size):
        raise _size_error(p, "generator", gcfg.size, int(expect_size))
    dcfg = None
    if "d" in found:
        dcfg = infer_discriminator_config(found["d"], source=p)
        if dcfg.size != gcfg.size:
            raise CheckpointError(
                f"{p}: its discriminator is {dcfg.size} px but its generator is {gcfg.size} px; "
                "the file is inconsistent."
            )
    latent_avg = found.get("latent_avg")
    if latent_avg is not None:
        if not isinstance(latent_avg, torch.Tensor) or latent_avg.shape[-1:] != (gcfg.style_dim,):
            shape = tuple(latent_avg.shape) if isinstance(latent_avg, torch.Tensor) else latent_avg
            raise CheckpointError(
                f"{p}: latent_avg has shape {shape}, expected [{gcfg.style_dim}] (the mean W of "
                "this generator)."
            )
        latent_avg = latent_avg.detach().to(device=device, dtype=torch.float32)
    ckpt = StyleGAN2Checkpoint(
        source=p,
        layout=layout,
        size=gcfg.size,
        config=gcfg,
        latent_avg=latent_avg,
        d_config=dcfg,
        args=found.get("args"),
    )
    for name in selected:
        if name == "d":
            assert dcfg is not None
            module = stylegan2.Discriminator(dcfg.size, **dcfg.kwargs())
        else:
            module = stylegan2.Generator(gcfg.size, **gcfg.kwargs())
        module = module.to(device)
        load_state_dict_strict(module, found[name], source=p, what=f"'{name}'", check_values=False)
        module.eval().requires_grad_(False)
        setattr(ckpt, name, module)
    return ckpt


def load_generator_weights(path: PathLike, generator: nn.Module, *, part: str | None = None) -> str:
    """Load a generator's weights from ``path`` strictly into an existing ``generator``.

    For JoJoGAN style files (``{"g": generator.state_dict()}``, the released styles) and any
    other layout holding a generator (``g_ema`` is preferred over ``g`` unless ``part`` says).
    The file's architecture (inferred from shapes) must equal the given generator's, else a
    :class:`CheckpointError` names both. Returns the layout name.
    """
    p = Path(path)
    obj = load_file(p, map_location="cpu")
    layout, found = _generator_parts(p, obj, "a StyleGAN2 generator")
    _check_parts_are_state_dicts(p, found)
    if part is None:
        part = "g_ema" if "g_ema" in found else "g"
    if part not in found:
        raise CheckpointError(
            f"{p}: has no '{part}' generator (it holds: {_keys_summary(found.keys())})."
        )
    sd = found[part]
    file_cfg = infer_generator_config(sd, source=p)
    model_cfg = infer_generator_config(generator.state_dict(), source="<model>")
    if file_cfg != model_cfg:
        raise CheckpointError(
            f"{p}: holds a {file_cfg.describe()}, but the model is a {model_cfg.describe()}. "
            "The style file was made for another base model; use the base model it was "
            "trained from."
        )
    # load_file refused NaN/inf already
    load_state_dict_strict(generator, sd, source=p, what=f"'{part}'", check_values=False)
    return layout


def save_stylegan2(
    path: PathLike,
    *,
    g_ema: nn.Module | Mapping[str, torch.Tensor] | None = None,
    g: nn.Module | Mapping[str, torch.Tensor] | None = None,
    d: nn.Module | Mapping[str, torch.Tensor] | None = None,
    latent_avg: torch.Tensor | None = None,
    metadata: Mapping[str, str] | None = None,
    inputs: Iterable[PathLike] = (),
) -> None:
    """Save StyleGAN2 parts as one ``.safetensors`` (keys ``g_ema.*``, ``g.*``, ``d.*``,
    ``latent_avg``) atomically; :func:`load_stylegan2` reads it back."""
    flat: dict[str, torch.Tensor] = {}
    for name, part in (("g_ema", g_ema), ("g", g), ("d", d)):
        if part is None:
            continue
        sd = part.state_dict() if isinstance(part, nn.Module) else part
        for k, v in sd.items():
            flat[f"{name}.{k}"] = v
    if not flat:
        raise ValueError("save_stylegan2: give at least one of g_ema, g, d")
    if latent_avg is not None:
        flat["latent_avg"] = latent_avg
    check_finite(flat, source=path, what="the weights to save")
    save_safetensors(flat, path, metadata, inputs=inputs)


# --------------------------------------------------------------------------------------------
# NVIDIA StyleGAN2-ADA network pickles -> rosinality layout, without running their code
# --------------------------------------------------------------------------------------------


class _Stub:
    """Stands in for any class or function a pickle names: records its arguments, runs nothing."""

    _global = "?"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _Persistent:
    """NVIDIA's persistent object: class name and ``__dict__``; the embedded source is dropped."""

    def __init__(self, meta: Any) -> None:
        meta = dict(meta) if isinstance(meta, Mapping) else {}
        self.class_name = str(meta.get("class_name"))
        self.state = meta.get("state") if isinstance(meta.get("state"), Mapping) else {}


class _EasyDict(dict):
    pass


def _rebuild_tensor(storage, offset, size, stride, requires_grad=False, hooks=None, meta=None):
    if not isinstance(storage, torch.TypedStorage | torch.UntypedStorage):
        raise ValueError(f"a tensor whose storage is a {type(storage).__name__}")
    t = torch.empty((0,), dtype=getattr(storage, "dtype", torch.uint8))
    untyped = storage._untyped_storage if hasattr(storage, "_untyped_storage") else storage
    shape, strides = tuple(int(s) for s in size), tuple(int(s) for s in stride)
    return t.set_(untyped, int(offset), shape, strides)


def _rebuild_parameter(data, requires_grad=False, hooks=None, state=None):
    if not isinstance(data, torch.Tensor):
        raise ValueError(f"a parameter holding a {type(data).__name__}")
    return data


def _storage_from_bytes(b: bytes) -> Any:
    return torch.load(io.BytesIO(b), weights_only=True)


def _persistent_obj(meta: Any) -> _Persistent:
    return _Persistent(meta)


_NV_FUNCTIONS: dict[tuple[str, str], Any] = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _persistent_obj,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch.storage", "_load_from_bytes"): _storage_from_bytes,
    ("collections", "OrderedDict"): dict,
    ("dnnlib.util", "EasyDict"): _EasyDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "slice"): slice,
    ("_codecs", "encode"): lambda s, enc="latin1": str(s).encode(enc),
}


class _StubUnpickler(pickle.Unpickler):
    """Resolves only the tensor rebuilders above; every other global becomes a harmless stub."""

    def __init__(self, f: Any) -> None:
        super().__init__(f)
        self._stubs: dict[str, type] = {}

    def find_class(self, module: str, name: str) -> Any:
        known = _NV_FUNCTIONS.get((module, name))
        if known is not None:
            return known
        key = f"{module}.{name}"
        if key not in self._stubs:
            self._stubs[key] = type(name, (_Stub,), {"_global": key})
        return self._stubs[key]

    def persistent_load(self, pid: Any) -> Any:
        raise ValueError("persistent ids are not used by NVIDIA network pickles")


def _flatten_module(
    obj: Any, prefix: str, out: dict[str, torch.Tensor], seen: set[int] | None = None
) -> None:
    seen = set() if seen is None else seen
    state = obj.state if isinstance(obj, _Persistent | _Stub) else None
    if not isinstance(state, Mapping) or id(obj) in seen or prefix.count(".") > 32:
        return
    seen.add(id(obj))
    for group in ("_parameters", "_buffers"):
        for k, v in (state.get(group) or {}).items():
            if isinstance(v, torch.Tensor):
                out[prefix + k] = v
    for k, v in (state.get("_modules") or {}).items():
        _flatten_module(v, f"{prefix}{k}.", out, seen)


def _nv_filter_ok(t: torch.Tensor) -> bool:
    k = torch.tensor([1.0, 3.0, 3.0, 1.0])
    ref = torch.outer(k, k) / torch.outer(k, k).sum()
    return tuple(t.shape) == (4, 4) and torch.allclose(t.float(), ref)


class _Taker:
    """Consumes source keys one by one; what is left at the end is an error (no silent drops)."""

    def __init__(self, sd: Mapping[str, torch.Tensor], p: Path, what: str) -> None:
        self.sd, self.p, self.what, self.used = sd, p, what, set()

    def __call__(self, key: str) -> torch.Tensor:
        if key not in self.sd:
            raise CheckpointError(
                f"{self.p}: NVIDIA {self.what}: key '{key}' is missing (found: "
                f"{_keys_summary(self.sd.keys())}); not a StyleGAN2-ADA network in the layout "
                "this converter knows."
            )
        self.used.add(key)
        return self.sd[key].detach().float().clone()

    def filter(self, key: str) -> None:
        if key in self.sd:
            if not _nv_filter_ok(self(key)):
                raise CheckpointError(
                    f"{self.p}: NVIDIA {self.what}: '{key}' is not the [1,3,3,1] resampling "
                    "filter; networks with other filters are not supported."
                )

    def finish(self) -> None:
        left = sorted(set(self.sd) - self.used)
        if left:
            raise CheckpointError(
                f"{self.p}: NVIDIA {self.what}: keys with no rosinality counterpart: "
                f"{_list(left)}. The network has another architecture (StyleGAN3, conditional, "
                "'orig'/'resnet' generator, ...), which cannot be converted to StyleGAN2."
            )


def _default_kernels() -> dict[str, torch.Tensor]:
    from jojogan import stylegan2

    g = stylegan2.Generator(16, style_dim=1, n_mlp=1, channels={r: 1 for r in (4, 8, 16)})
    d = stylegan2.Discriminator(16, channels={r: 1 for r in (4, 8, 16)})
    gs, ds = g.state_dict(), d.state_dict()
    return {
        "up_blur": gs["convs.0.conv.blur.kernel"],
        "rgb_up": gs["to_rgbs.0.upsample.kernel"],
        "down_blur": ds["convs.1.conv2.0.kernel"],
        "skip_blur": ds["convs.1.skip.0.kernel"],
    }


def _convert_nv_generator(
    sd: Mapping[str, torch.Tensor], p: Path, kernels: Mapping[str, torch.Tensor]
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    take = _Taker(sd, p, "generator")
    out: dict[str, torch.Tensor] = {}
    n_mlp = len(_count_indexed((k for k in sd if k.endswith(".weight")), "mapping.fc"))
    for i in range(n_mlp):
        for wb in ("weight", "bias"):
            out[f"style.{i + 1}.{wb}"] = take(f"mapping.fc{i}.{wb}")
    latent_avg = take("mapping.w_avg")
    res_list = sorted(
        int(k.split(".")[1][1:])
        for k in sd
        if k.startswith("synthesis.b") and k.endswith("conv1.weight")
    )
    for res in res_list:
        b = f"synthesis.b{res}."
        if res == 4:
            out["input.input"] = take(b + "const")[None]
            layers = [("conv1", "conv1", 0)]
            rgb = "to_rgb1"
        else:
            i = int(math.log2(res)) - 3
            layers = [
                ("conv0", f"convs.{2 * i}", 2 * i + 1),
                ("conv1", f"convs.{2 * i + 1}", 2 * i + 2),
            ]
            rgb = f"to_rgbs.{i}"
            out[f"convs.{2 * i}.conv.blur.kernel"] = kernels["up_blur"].clone()
            out[f"{rgb}.upsample.kernel"] = kernels["rgb_up"].clone()
        take.filter(b + "resample_filter")
        for src, dst, noise_idx in layers:
            s = f"{b}{src}."
            out[f"{dst}.conv.weight"] = take(s + "weight")[None]
            out[f"{dst}.conv.modulation.weight"] = take(s + "affine.weight")
            out[f"{dst}.conv.modulation.bias"] = take(s + "affine.bias")
            out[f"{dst}.noise.weight"] = take(s + "noise_strength").reshape(1)
            out[f"{dst}.activate.bias"] = take(s + "bias")
            out[f"noises.noise_{noise_idx}"] = take(s + "noise_const")[None, None]
            take.filter(s + "resample_filter")
        s = f"{b}torgb."
        out[f"{rgb}.conv.weight"] = take(s + "weight")[None]
        out[f"{rgb}.conv.modulation.weight"] = take(s + "affine.weight")
        out[f"{rgb}.conv.modulation.bias"] = take(s + "affine.bias")
        out[f"{rgb}.bias"] = take(s + "bias").reshape(1, -1, 1, 1)
    take.finish()
    return out, latent_avg


def _convert_nv_discriminator(
    sd: Mapping[str, torch.Tensor], p: Path, kernels: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    take = _Taker(sd, p, "discriminator")
    out: dict[str, torch.Tensor] = {}
    res_list = sorted(
        (int(k.split(".")[0][1:]) for k in sd if k.endswith("conv0.weight")), reverse=True
    )
    if not res_list:
        take("b8.conv0.weight")  # raises the missing-key error
    top = res_list[0]
    out["convs.0.0.weight"] = take(f"b{top}.fromrgb.weight")
    out["convs.0.1.bias"] = take(f"b{top}.fromrgb.bias")
    take.filter(f"b{top}.fromrgb.resample_filter")
    for j, res in enumerate(res_list, start=1):
        b, c = f"b{res}.", f"convs.{j}."
        out[c + "conv1.0.weight"] = take(b + "conv0.weight")
        out[c + "conv1.1.bias"] = take(b + "conv0.bias")
        out[c + "conv2.0.kernel"] = kernels["down_blur"].clone()
        out[c + "conv2.1.weight"] = take(b + "conv1.weight")
        out[c + "conv2.2.bias"] = take(b + "conv1.bias")
        out[c + "skip.0.kernel"] = kernels["skip_blur"].clone()
        out[c + "skip.1.weight"] = take(b + "skip.weight")
        for f in ("", "conv0.", "conv1.", "skip."):
            take.filter(f"{b}{f}resample_filter")
    out["final_conv.0.weight"] = take("b4.conv.weight")
    out["final_conv.1.bias"] = take("b4.conv.bias")
    take.filter("b4.conv.resample_filter")
    out["final_linear.0.weight"] = take("b4.fc.weight")
    out["final_linear.0.bias"] = take("b4.fc.bias")
    out["final_linear.1.weight"] = take("b4.out.weight")
    out["final_linear.1.bias"] = take("b4.out.bias")
    take.finish()
    return out


def _check_nv_attrs(p: Path, obj: _Persistent, name: str) -> None:
    st = obj.state
    if obj.class_name not in ("Generator", "Discriminator"):
        raise CheckpointError(f"{p}: '{name}' is a {obj.class_name}, not a StyleGAN2 network.")
    if st.get("c_dim", 0):
        raise CheckpointError(
            f"{p}: '{name}' is class-conditional (c_dim {st.get('c_dim')}); JoJoGAN needs an "
            "unconditional StyleGAN2."
        )
    if name.startswith("G") and st.get("z_dim") != st.get("w_dim"):
        raise CheckpointError(
            f"{p}: '{name}' has z_dim {st.get('z_dim')} != w_dim {st.get('w_dim')}; "
            "rosinality's generator needs them equal."
        )
    if st.get("img_channels", 3) != 3:
        raise CheckpointError(f"{p}: '{name}' makes {st.get('img_channels')}-channel images.")


def read_nvidia_pkl(path: PathLike) -> dict[str, Any]:
    """Read an NVIDIA StyleGAN2-ADA network pickle *without running its code* and convert it
    to rosinality's layout: ``{"g_ema", "g", "d", "latent_avg"}`` (those present).

    Only tensor rebuilders are resolved; every class the pickle names (including the embedded
    source of NVIDIA's modules) becomes an inert stub, and the weights are read from the stubs'
    recorded state. Every NVIDIA key must map to a rosinality key (else :class:`CheckpointError`
    lists the unmatched ones). Semantics differences: NVIDIA's optional activation clamp
    (``conv_clamp``, used with fp16 layers) is not applied by rosinality's modules.
    """
    p = _check_readable(path)
    kind = sniff(p)
    if kind != "pickle":
        raise CheckpointError(f"{p}: not a pickle ({kind}); nothing to convert.")
    try:
        with open(p, "rb") as f:
            data = _StubUnpickler(f).load()
    except Exception as e:
        raise CheckpointError(
            f"{p}: could not read the NVIDIA pickle ({_short(e, 160)}); it is corrupt or not "
            "a StyleGAN2-ADA network pickle."
        ) from None
    if not isinstance(data, Mapping) or not any(
        isinstance(data.get(k), _Persistent) for k in ("G_ema", "G", "D")
    ):
        raise CheckpointError(
            f"{p}: not a StyleGAN2-ADA network pickle (expected G_ema/G/D networks saved by "
            "stylegan2-ada-pytorch; TensorFlow .pkl files need rosinality's convert_weight.py)."
        )
    kernels = _default_kernels()
    out: dict[str, Any] = {}
    for src, dst in (("G_ema", "g_ema"), ("G", "g"), ("D", "d")):
        obj = data.get(src)
        if not isinstance(obj, _Persistent):
            continue
        _check_nv_attrs(p, obj, src)
        sd: dict[str, torch.Tensor] = {}
        _flatten_module(obj, "", sd)
        if dst == "d":
            out[dst] = _convert_nv_discriminator(sd, p, kernels)
        else:
            out[dst], w_avg = _convert_nv_generator(sd, p, kernels)
            if dst == "g_ema" or "latent_avg" not in out:
                out["latent_avg"] = w_avg
    return out


def convert_nvidia_pkl(
    src: PathLike, dst: PathLike, *, metadata: Mapping[str, str] | None = None
) -> StyleGAN2Checkpoint:
    """Convert an NVIDIA StyleGAN2-ADA ``.pkl`` to a rosinality-layout ``.safetensors`` file
    (atomically; never over ``src``), then load it back strictly and return it."""
    parts = read_nvidia_pkl(src)
    meta = {"converted_from": Path(src).name, "converter": "jojogan.checkpoints"}
    meta.update(metadata or {})
    save_stylegan2(
        dst,
        g_ema=parts.get("g_ema"),
        g=parts.get("g"),
        d=parts.get("d"),
        latent_avg=parts.get("latent_avg"),
        metadata=meta,
        inputs=[src],
    )
    return load_stylegan2(dst)
