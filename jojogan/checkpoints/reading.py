"""The safe reader: what a file really is (:func:`sniff`), pickles scanned without running
them, claimed sizes checked against the file, NaN/inf and meta tensors refused (:func:`load_file`),
safetensors headers and checksums."""

from __future__ import annotations

import argparse
import codecs
import contextlib
import hashlib
import io
import json
import math
import os
import pickle
import pickletools
import re
import struct
import warnings
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file as _st_load

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
# Finite values
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
