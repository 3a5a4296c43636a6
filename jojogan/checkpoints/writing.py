"""Atomic writes: a temp file in the target folder, fsync, ``os.replace``, fsync of the folder;
a failed save is one clear :class:`CheckpointError` and leaves the previous file intact."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import torch
from safetensors.torch import save as _st_save

from .reading import _SHA_KEY, CheckpointError, PathLike, _short, tensors_sha256

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
