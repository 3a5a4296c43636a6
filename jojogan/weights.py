"""Known pretrained files: where they come from, where they go, how they are checked and fetched.

The registry holds one :class:`WeightFile` per file (name, kind, folder, public sources, expected
size and layout, sha256 where a source states it). Every source records where it was confirmed
(:attr:`Source.note`). None of the files could be downloaded where this library was written, so
no registry sha256 is known and sizes are approximate (from parameter counts); a download from the
Hugging Face Hub is still checked against the sha256 the Hub publishes for it (an LFS file's ETag
*is* its sha256), and every download is checked for size and structure (the project's safe loader
must read it and find the expected layout) before it gets its final name.

The registry and the model folders (:func:`resolve`, :func:`find`, :func:`check_model_name`,
:func:`missing_file_message`) live in :mod:`jojogan.checkpoints.registry` and
:mod:`jojogan.checkpoints.folders`, below the loaders that use them; they are re-exported here.

One command gets them, from any folder::

    python -m jojogan download stylegan2-ffhq-config-f.pt e4e_ffhq_encode.pt
    python -m jojogan download --workflow my_workflow.json     # every known file it names
    python -m jojogan download --list                          # what is known, what is present

Target folder: ``--dir``; else ``<ComfyUI>/models/<folder>`` when a ComfyUI root is known
(``--comfyui``, ``$COMFYUI_PATH``, or this package living in ``<ComfyUI>/custom_nodes/<pack>/``);
else :func:`cache_dir` (``$JOJOGAN_CACHE/<folder>`` or ``~/.cache/jojogan/<folder>``), where the
library's loaders look up bare names (:func:`resolve`). ``<folder>`` is ``jojogan``, or
``facedetection`` for the RetinaFace weights.

Hub sources go through ``huggingface_hub.hf_hub_download`` (``HF_ENDPOINT`` and ``HF_HUB_OFFLINE``
read at call time) into a staging folder ``<dest>/.jojogan-download/<name>/``, so a partial file
never has the final name; the verified file is moved into place with ``os.replace``. Google Drive
ids and plain URLs (the facexlib release) are fetched with urllib, resuming from a ``.part`` file
in the same staging folder; an HTML answer (a Drive quota or confirmation page) is refused with a
clear message. Offline, :class:`OfflineError` names the file, the folder, the sources and the
exact command to run.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import importlib.metadata
import inspect
import io
import json
import os
import pickle
import re
import shutil
import stat
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from .checkpoints import reading
from .checkpoints.folders import (
    ModelNameError,
    ModelNotFoundError,
    cache_dir,
    check_model_name,
    comfyui_root,
    default_dir,
    download_command,
    find,
    inside,
    missing_file_message,
    resolve,
)
from .checkpoints.folders import _loader_path as _loader_path  # the library's loaders use it
from .checkpoints.layouts import detect_layout
from .checkpoints.reading import CheckpointError
from .checkpoints.registry import HF_DEFAULT_ENDPOINT, MB, REGISTRY, Source, WeightFile, _entry
from .checkpoints.writing import fsync_dir

__all__ = [
    "REGISTRY",
    "STAGING",
    "ModelNameError",
    "ModelNotFoundError",
    "OfflineError",
    "Source",
    "WeightFile",
    "WeightsError",
    "cache_dir",
    "check_model_name",
    "comfyui_root",
    "default_dir",
    "download",
    "download_command",
    "download_main",
    "file_kind",
    "find",
    "inside",
    "missing_file_message",
    "resolve",
    "verify",
]

STAGING = ".jojogan-download"  # inside the target folder: partial and unverified files
Progress = Callable[[int, "int | None"], object]


class WeightsError(RuntimeError):
    """A download or verification failed; the message names the file and what to do."""


class OfflineError(WeightsError):
    """The file is missing and cannot be fetched (no network, or ``HF_HUB_OFFLINE``)."""


# ---------------------------------------------------------------------------------- verification


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(4 * MB), b""):
            h.update(block)
    return h.hexdigest()


def verify(
    path: str | os.PathLike,
    entry: WeightFile | str,
    *,
    structure: bool = True,
    digest: str | None = None,
) -> None:
    """Check a file against its registry entry: not an HTML/text page, at least ``min_size``
    bytes, the sha256 when known (``digest``: the file's sha256 when already computed), and
    (``structure``) readable by the safe loader with the expected layout. Raises
    :class:`WeightsError` naming the file and the problem."""
    e = entry if isinstance(entry, WeightFile) else REGISTRY[entry]
    p = Path(path)
    kind = reading.sniff(p)
    if kind in ("html", "text", "empty"):
        what = "an empty file" if kind == "empty" else "a web page"
        others = "; ".join(s.describe() for s in e.sources)
        raise WeightsError(
            f"{p}: the download of {e.name} gave {what} instead of the model (Google Drive "
            f"answers with a quota or confirmation page when a file is popular). Try another "
            f"source: {others}"
        )
    size = p.stat().st_size
    if size < e.min_size:
        raise WeightsError(
            f"{p}: {size} bytes is too small for {e.name} (at least {e.min_size // MB} MB "
            "expected): the download is truncated or not this file"
        )
    if e.sha256 is not None:
        got = digest or _sha256(p)
        if got != e.sha256:
            raise WeightsError(f"{p}: sha256 {got} differs from {e.name}'s {e.sha256}")
    if structure:
        try:
            obj = reading.load_file(p, map_location="cpu")
        except CheckpointError as err:
            raise WeightsError(f"{p}: not a readable {e.name}: {err}") from None
        if e.layout is not None:
            layout = detect_layout(obj)
            if layout not in e.layout:
                raise WeightsError(
                    f"{p}: expected the {e.description} (layout {' or '.join(e.layout)}), found "
                    f"layout '{layout}'"
                )


# ------------------------------------------------------------------------------------ file kinds

_KIND_OF_LAYOUT = {
    "rosinality": "stylegan2",
    "rosinality-training": "stylegan2",
    "generator": "stylegan2",
    "jojogan-style": "style",
    "psp-encoder": "encoder",
    "arcface": "arcface",
}
_KIND_CACHE: dict[tuple[str, int, int], str | None] = {}
_KIND_LOCK = threading.Lock()
_KIND_CACHE_MAX = 4096
_DETECTOR_HEADS = ("ClassHead.", "BboxHead.", "LandmarkHead.")


def file_kind(path: str | os.PathLike) -> str | None:
    """What a model file is, for the loaders' dropdowns: "stylegan2", "encoder", "arcface",
    "style", "detector", or None (unknown or unreadable).

    A registry name gets its entry's kind without opening the file. Otherwise only cheap
    reads: a .safetensors header (names and metadata), or the pickle of a torch file (the
    ``data.pkl`` member of a zip, the object pickle of a legacy file), scanned by the
    checkpoints module's safety check and unpickled with tensors replaced by empty ones, so no
    tensor data is read and nothing in the file runs. Cached on (real path, mtime, size)."""
    try:
        p = Path(path)
    except TypeError:
        return None
    entry = REGISTRY.get(p.name)
    if entry is not None:
        return entry.kind
    try:
        real = os.path.realpath(p)
        st = os.stat(real)
    except (OSError, ValueError):
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    key = (real, st.st_mtime_ns, st.st_size)
    with _KIND_LOCK:
        if key in _KIND_CACHE:
            return _KIND_CACHE[key]
    try:
        kind = _inspect_kind(Path(real))
    except Exception:
        kind = None
    with _KIND_LOCK:
        if len(_KIND_CACHE) >= _KIND_CACHE_MAX:
            _KIND_CACHE.clear()
        _KIND_CACHE[key] = kind
    return kind


def _inspect_kind(p: Path) -> str | None:
    what = reading.sniff(p)
    if what == "safetensors":
        header = reading._read_safetensors_header(p)
        meta = header.get("__metadata__") or {}
        if isinstance(meta, dict) and "jojogan.style_model" in meta:  # style_model.META_KEY
            return "style"
        empty = torch.empty(0)
        return _kind_of({k: empty for k in header if k != "__metadata__"})
    if what == "zip":
        obj = _zip_object(p)
    elif what == "pickle":
        obj = _legacy_object(p)
    else:
        return None
    return None if obj is None else _kind_of(obj)


def _kind_of(obj: Any) -> str | None:
    kind = _KIND_OF_LAYOUT.get(detect_layout(obj))
    if kind is not None:
        return kind
    sd = obj.get("state_dict", obj) if isinstance(obj, dict) else None
    if isinstance(sd, dict):
        keys = [k.removeprefix("module.") for k in sd if isinstance(k, str)]
        if any(k.startswith(_DETECTOR_HEADS) for k in keys):
            return "detector"
    return None


def _empty_tensor(*args: Any, **kwargs: Any) -> Any:
    return torch.empty(0)


def _first(data: Any = None, *args: Any, **kwargs: Any) -> Any:
    return data


class _KindUnpickler(pickle.Unpickler):
    """Unpickles a checkpoint's object tree with every tensor an empty placeholder: storages are
    never loaded, and only containers, ``argparse.Namespace`` and torch's tensor rebuilders are
    resolved (anything else stops the unpickling)."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("argparse", "Namespace"):
            return argparse.Namespace
        if module == "torch._utils" and name.startswith("_rebuild_parameter"):
            return _first
        if module == "torch._utils" and name.startswith("_rebuild_"):
            return _empty_tensor
        if module == "torch" and (name.endswith("Storage") or name == "Size"):
            return tuple if name == "Size" else name
        if module == "builtins" and name in ("set", "frozenset", "slice"):
            return {"set": set, "frozenset": frozenset, "slice": slice}[name]
        raise pickle.UnpicklingError(f"{module}.{name} is not read by file_kind")

    def persistent_load(self, pid: Any) -> Any:
        return None


def _safe_globals(names: list[str]) -> bool:
    return all(reading._is_allowed_global(n) for n in names)


def _zip_object(p: Path) -> Any:
    with zipfile.ZipFile(p) as zf:
        members = [i for i in zf.infolist() if i.filename.endswith("data.pkl")]
        if len(members) != 1 or members[0].file_size > reading._MAX_PICKLE_BYTES:
            return None
        data = reading._zip_member(p, zf, members[0])
    if not _safe_globals(reading.scan_pickle_globals(data)):
        return None  # it would run code: never unpickled
    return _KindUnpickler(io.BytesIO(data)).load()


def _legacy_object(p: Path) -> Any:
    with open(p, "rb") as f:
        reader = reading._CappedReader(f, p.stat().st_size)  # no read asks for more than is there
        names, is_magic = reading._scan_stream(reader)  # the pickles only, not the tensor data
        if not is_magic or not _safe_globals(names):
            return None
        f.seek(0)
        for _ in range(3):  # magic number, protocol version, system info
            _KindUnpickler(reader).load()
        return _KindUnpickler(reader).load()


# -------------------------------------------------------------------------------------- download


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().upper() in ("1", "ON", "YES", "TRUE")


def hf_offline() -> bool:
    """``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) as set now."""
    return _env_true("HF_HUB_OFFLINE") or _env_true("TRANSFORMERS_OFFLINE")


def hf_endpoint() -> str:
    """``HF_ENDPOINT`` as set now (the public Hub by default)."""
    return (os.environ.get("HF_ENDPOINT") or HF_DEFAULT_ENDPOINT).rstrip("/")


def _hf_cache_dir() -> Path:
    env = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if env:
        return Path(env).expanduser()
    home = os.environ.get("HF_HOME")
    base = Path(home).expanduser() if home else Path.home() / ".cache" / "huggingface"
    return base / "hub"


class _Unreachable(Exception):
    """The source could not be reached at all (no network, host down, offline mode)."""


class _HtmlAnswer(Exception):
    """The server sent a web page instead of the file."""


_NETWORK_ERRORS = (
    "ConnectError",
    "ConnectTimeout",
    "ConnectionError",
    "ConnectionRefusedError",
    "ConnectionResetError",
    "Timeout",
    "TimeoutException",
    "ReadTimeout",
    "TimeoutError",
    "NameResolutionError",
    "gaierror",
    "OfflineModeIsEnabled",
    "ProxyError",
)


def _chain(e: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    while e is not None and e not in out and len(out) < 8:
        out.append(e)
        e = e.__cause__ or e.__context__
    return out


def _short(e: BaseException, n: int = 200) -> str:
    text = " ".join(str(e).split())
    return text[:n] + ("..." if len(text) > n else "")


def _progress_bar(progress: Progress) -> type:
    """A tqdm stand-in for ``hf_hub_download(tqdm_class=...)`` that reports to ``progress``."""

    class _Bar:
        def __init__(self, *args: Any, total: Any = None, initial: Any = 0, **kwargs: Any):
            self.total = int(total) if total else None
            self.n = int(initial or 0)
            progress(self.n, self.total)

        def __enter__(self) -> _Bar:
            return self

        def __exit__(self, *exc: Any) -> bool:
            return False

        def update(self, n: Any = 1) -> None:
            self.n += int(n or 0)
            progress(self.n, self.total)

        def close(self) -> None:
            pass

        def set_description(self, *args: Any, **kwargs: Any) -> None:
            pass

    return _Bar


def _hf_fetch(
    src: Source, work: Path, progress: Progress | None, timeout: float, offline: bool
) -> tuple[Path, str | None, int | None]:
    """Download a Hub file into ``work`` with huggingface_hub; returns (the staged file, the
    sha256 the Hub publishes for it or None, its size or None)."""
    try:
        import huggingface_hub as hub
    except ImportError:
        raise WeightsError(
            f"{src.describe()}: the huggingface_hub package is not installed (pip install "
            "huggingface_hub)"
        ) from None
    if offline:
        cached = hub.try_to_load_from_cache(src.repo, src.path, cache_dir=str(_hf_cache_dir()))
        if not isinstance(cached, str):
            raise _Unreachable("not in the Hugging Face cache")
        work.mkdir(parents=True, exist_ok=True)
        staged = work / Path(src.path).name
        shutil.copyfile(cached, staged)  # the cache keeps its copy
        blob = Path(os.path.realpath(cached)).name
        return staged, blob if re.fullmatch(r"[0-9a-f]{64}", blob) else None, None
    endpoint = hf_endpoint()
    try:
        url = hub.hf_hub_url(src.repo, src.path, endpoint=endpoint)
        meta = hub.get_hf_file_metadata(url, timeout=timeout)
        if not meta.commit_hash:
            raise WeightsError(
                f"{endpoint} does not answer like the Hugging Face Hub (no X-Repo-Commit header: "
                "a proxy, a sign-in page or a wrong HF_ENDPOINT?)"
            )
        kwargs: dict[str, Any] = {
            "revision": meta.commit_hash,
            "local_dir": str(work),
            "endpoint": endpoint,
            "etag_timeout": timeout,
        }
        params = inspect.signature(hub.hf_hub_download).parameters
        if progress is not None and "tqdm_class" in params:
            kwargs["tqdm_class"] = _progress_bar(progress)
        if "library_name" in params:
            kwargs.update(library_name="comfyui-jojogan", library_version=_version())
        staged = Path(hub.hf_hub_download(src.repo, src.path, **kwargs))
    except WeightsError:
        raise
    except Exception as e:
        names = {type(x).__name__ for x in _chain(e)}
        if names & set(_NETWORK_ERRORS):
            raise _Unreachable(f"{endpoint}: {_short(e, 120)}") from None
        if "FileMetadataError" in names:
            raise WeightsError(
                f"{endpoint} does not answer like the Hugging Face Hub ({_short(e, 160)})"
            ) from None
        if names & {"RepositoryNotFoundError", "GatedRepoError"}:
            raise WeightsError(f"{src.describe()}: the repository is gone or private") from None
        if names & {"EntryNotFoundError", "RemoteEntryNotFoundError", "RevisionNotFoundError"}:
            raise WeightsError(f"{src.describe()}: no such file in the repository") from None
        if isinstance(e, OSError) and "Consistency check failed" in str(e):
            raise WeightsError(
                f"{src.describe()}: the transfer ended early ({_short(e, 160)}); run the command "
                "again to retry"
            ) from None
        raise WeightsError(f"{src.describe()}: {type(e).__name__}: {_short(e)}") from None
    etag = (meta.etag or "").strip('"').lower()
    sha = etag if re.fullmatch(r"[0-9a-f]{64}", etag) else None
    return staged, sha, meta.size


def _version() -> str:
    try:
        return importlib.metadata.version("comfyui-jojogan")
    except Exception:
        return "0"


def _html_problem(page: bytes) -> str:
    low = page.lower()
    if b"quota" in low or b"too many users" in low:
        return "Google Drive's download quota for this file is used up (Quota exceeded); try later"
    if b"virus" in low or b"confirm" in low:
        return "Google Drive asked to confirm the download of a large file"
    if b"accounts.google" in low or b"sign in" in low:
        return "the server asked to sign in"
    return "the server sent a web page"


def _fetch(
    url: str,
    part: Path,
    progress: Progress | None,
    timeout: float,
    chunk: int,
) -> None:
    """Append to ``part`` from ``url`` (Range resume when it exists). An HTML answer raises
    :class:`_HtmlAnswer` without touching ``part``."""
    have = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"User-Agent": f"comfyui-jojogan/{_version()}"})
    if have:
        req.add_header("Range", f"bytes={have}-")
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # nothing left to send: the .part is complete, or bogus
            m = re.fullmatch(r"bytes \*/(\d+)", (e.headers.get("Content-Range") or "").strip())
            if m is not None and int(m.group(1)) != have:
                part.unlink(missing_ok=True)
                raise WeightsError(
                    f"{part}: the partial download ({have} bytes) does not match the file on the "
                    f"server ({m.group(1)} bytes); it was removed, run again to start over"
                ) from None
            return
        raise
    with resp:
        if resp.headers.get_content_type() == "text/html":
            raise _HtmlAnswer(_html_problem(resp.read(64 * 1024)))
        status = getattr(resp, "status", 200)
        if have and status != 206:  # the server ignored Range: start again
            have = 0
        length = resp.headers.get("Content-Length")
        total = have + int(length) if length is not None and length.isdigit() else None
        done = have
        with open(part, "ab" if have else "wb") as f:
            if progress is not None:
                progress(done, total)
            while True:
                block = resp.read(chunk)
                if not block:
                    break
                f.write(block)
                done += len(block)
                if progress is not None:
                    progress(done, total)
            f.flush()
            os.fsync(f.fileno())
    if total is not None and done < total:
        raise WeightsError(
            f"{part}: connection closed at {done} of {total} bytes; run again to resume"
        )


def _cleanup(work: Path, *, everything: bool = True) -> None:
    """Remove a file's staging folder (``everything=False``: only when empty, so partial
    downloads stay for the next run) and the staging root once no other download uses it."""
    if everything:
        shutil.rmtree(work, ignore_errors=True)
    for d in (work, work.parent):
        try:
            d.rmdir()
        except OSError:
            pass


def download(
    name: str | WeightFile,
    dest_dir: str | os.PathLike | None = None,
    *,
    progress: Progress | None = None,
    urls: Sequence[str] | None = None,
    timeout: float = 30.0,
    chunk: int = 1 * MB,
    structure: bool = True,
    log: Callable[[str], object] | None = None,
) -> Path:
    """Download a registry file (a name, or a :class:`WeightFile`) into ``dest_dir`` (default:
    :func:`default_dir` of its folder) and return its path.

    Tries the entry's sources in order (``urls``: plain URLs instead). Hub sources go through
    ``huggingface_hub.hf_hub_download`` (``HF_ENDPOINT`` / ``HF_HUB_OFFLINE`` read now) into
    ``dest_dir/.jojogan-download/<name>/``; the file is checked against the Hub's size and
    sha256 (the LFS ETag), the registry's sha256 when known, and :func:`verify`, then moved to
    ``dest_dir/<name>`` with ``os.replace``. Drive ids and URLs are fetched with urllib into a
    ``.part`` file there (resumed with ``Range``); web pages are refused. A file that fails a
    check is deleted (never resumed) and the next source is tried. An existing file that
    verifies is returned as is. Raises :class:`OfflineError` when no source can be reached,
    :class:`WeightsError` when every reachable one failed. ``progress(done, total)`` gets bytes;
    ``log(text)`` gets one line per attempt."""
    entry = name if isinstance(name, WeightFile) else _entry(name)
    if entry is None:
        raise WeightsError(missing_file_message(os.fspath(name)))
    d = Path(dest_dir) if dest_dir is not None else default_dir(entry.folder)
    with _target_lock(d / entry.name):  # two threads asking for one file: one download
        return _download(entry, d, progress, urls, timeout, chunk, structure, log)


_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def _target_lock(target: Path) -> threading.Lock:
    key = os.path.normcase(os.path.abspath(target))
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(key, threading.Lock())


def _download(
    entry: WeightFile,
    d: Path,
    progress: Progress | None,
    urls: Sequence[str] | None,
    timeout: float,
    chunk: int,
    structure: bool,
    log: Callable[[str], object] | None,
) -> Path:
    target = d / entry.name
    say = log or (lambda text: None)
    if target.is_file():
        try:
            verify(target, entry, structure=structure)
        except WeightsError as e:
            raise WeightsError(
                f"{e}. It is already at {target}: delete it and run again to download a fresh copy."
            ) from None
        return target
    offline = hf_offline()
    sources = [Source("url", u) for u in urls] if urls is not None else list(entry.sources)
    created = not d.exists()
    try:
        d.mkdir(parents=True, exist_ok=True)
        work = d / STAGING / entry.name
        work.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise WeightsError(f"cannot create the folder {d} for {entry.name}: {_short(e)}") from None
    errors: list[str] = []
    unreachable: list[str] = []
    skipped = 0  # sources not tried offline
    for src in sources:
        if offline and src.kind != "hf":
            skipped += 1
            continue
        say(f"{entry.name}: trying {src.describe()}")
        expected_sha: str | None = None
        expected_size: int | None = None
        try:
            if src.kind == "hf":
                staged, expected_sha, expected_size = _hf_fetch(
                    src, work, progress, timeout, offline
                )
            else:
                staged = work / (entry.name + ".part")
                _fetch(src.url(), staged, progress, timeout, chunk)
        except _Unreachable as e:
            unreachable.append(f"{src.describe()}: {e}")
            continue
        except _HtmlAnswer as e:
            errors.append(
                f"{src.describe()} answered with a web page instead of the file: {e}. Open "
                f"{_browser_url(src)} in a browser, download {entry.name} there and put it in {d}"
            )
            continue
        except urllib.error.HTTPError as e:
            errors.append(f"{src.describe()}: HTTP {e.code} {e.reason}")
            continue
        except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
            unreachable.append(f"{src.describe()}: {_short(getattr(e, 'reason', e), 120)}")
            continue
        except WeightsError as e:
            errors.append(str(e))
            continue
        except OSError as e:
            errors.append(f"{src.describe()}: cannot write in {work}: {_short(e)}")
            continue
        try:
            size = staged.stat().st_size
            if expected_size is not None and size != expected_size:
                raise WeightsError(
                    f"{staged}: {size} bytes where {src.describe()} has {expected_size}: "
                    "the transfer is incomplete"
                )
            digest = _sha256(staged) if (expected_sha or entry.sha256) else None
            if expected_sha is not None and digest != expected_sha:
                raise WeightsError(
                    f"{staged}: sha256 {digest} differs from the {expected_sha} that "
                    f"{src.describe()} publishes: the transfer was corrupted"
                )
            verify(staged, entry, structure=structure, digest=digest)
            os.replace(staged, target)
            fsync_dir(d)
        except WeightsError as e:
            errors.append(str(e))
            shutil.rmtree(work, ignore_errors=True)  # a bad file is never resumed
            work.mkdir(parents=True, exist_ok=True)
            continue
        except OSError as e:  # gone under us (another process finished it first), disk errors
            if target.is_file():
                verify(target, entry, structure=structure)
                return target
            errors.append(f"{staged}: {_short(e)}")
            continue
        _cleanup(work)
        say(f"{entry.name}: verified, saved as {target}")
        return target
    _cleanup(work, everything=False)
    if created:  # leave no empty folder behind a failed first download
        try:
            d.rmdir()
        except OSError:
            pass
    if not errors:
        why = "HF_HUB_OFFLINE is set" if offline else "no network?"
        if skipped:
            unreachable.append(f"{skipped} other source(s) not tried offline")
        raise OfflineError(
            f"cannot download {entry.name} ({why}): {' | '.join(unreachable)}. "
            + missing_file_message(entry, [d])
        )
    detail = " | ".join(errors + unreachable)
    raise WeightsError(
        f"could not get a valid {entry.name}: {detail}. " + missing_file_message(entry, [d])
    )


def _browser_url(src: Source) -> str:
    if src.kind == "gdrive":
        return f"https://drive.google.com/file/d/{src.ref}/view"
    return src.url()


# ------------------------------------------------------------------------------------------ CLI


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one clear line, exit status 1 (not 2)
        raise _UsageError(message)


def _workflow_names(path: Path) -> tuple[list[str], list[str]]:
    """(known registry names, other models[].name entries) named by a UI or API workflow."""
    try:
        if path.stat().st_size > 64 * MB:
            raise WeightsError(f"{path}: too large for a workflow ({path.stat().st_size} bytes)")
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise WeightsError(f"{path}: no such workflow file") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise WeightsError(f"{path}: not a workflow (not JSON: {_short(e, 100)})") from None
    except OSError as e:
        raise WeightsError(f"{path}: cannot read the workflow ({_short(e, 100)})") from None
    known: dict[str, None] = {}
    other: dict[str, None] = {}
    stack: list[tuple[Any, int]] = [(data, 0)]
    while stack:
        obj, depth = stack.pop()
        if depth > 64:
            continue
        if isinstance(obj, dict):
            models = obj.get("models")
            if isinstance(models, list):
                for m in models:
                    if isinstance(m, dict) and isinstance(m.get("name"), str):
                        n = m["name"]
                        (known if n in REGISTRY else other)[n] = None
            stack.extend((v, depth + 1) for v in obj.values())
        elif isinstance(obj, list):
            stack.extend((v, depth + 1) for v in obj)
        elif isinstance(obj, str) and obj in REGISTRY:
            known[obj] = None
    if not isinstance(data, dict):
        raise WeightsError(f"{path}: not a ComfyUI workflow (the JSON is not an object)")
    return sorted(known), sorted(other)


def _fmt_size(n: int | None, approx: bool = True) -> str:
    if not n:
        return "size unknown"
    return f"{'~' if approx else ''}{n / MB:.0f} MB"


def _stderr_progress(name: str) -> Progress:
    tty = sys.stderr.isatty()
    last = [-1]

    def show(done: int, total: int | None) -> None:
        if tty:
            pct = f" ({100 * done // total}%)" if total else ""
            tot = f" of {total / MB:.1f}" if total else ""
            print(f"\r{name}: {done / MB:.1f}{tot} MB{pct}   ", end="", file=sys.stderr, flush=True)
            return
        step = 100 * done // total // 10 if total else done // (100 * MB)
        if step != last[0]:
            last[0] = step
            tot = f" of {total / MB:.1f} MB" if total else " MB"
            print(f"{name}: {done / MB:.1f}{tot}", file=sys.stderr, flush=True)

    return show


def _err(text: str) -> None:
    print("error: " + " ".join(str(text).split()), file=sys.stderr)


def download_main(argv: Sequence[str] | None = None) -> int:
    """``python -m jojogan download NAME... | --workflow FILE | --list [--dir DIR]
    [--comfyui PATH]``: progress on stderr, the saved paths on stdout; exit status 0 when every
    file is there and verified, 1 otherwise (errors are one line)."""
    ap = _Parser(
        prog="python -m jojogan download",
        description="Download JoJoGAN model files (resumed, verified) into ComfyUI's models "
        "folder or the jojogan cache folder.",
        epilog="Target: --dir, else <ComfyUI>/models/<jojogan|facedetection> when a ComfyUI "
        "folder is known (--comfyui, $COMFYUI_PATH, or this pack installed in its "
        "custom_nodes), else $JOJOGAN_CACHE or ~/.cache/jojogan. Hugging Face sources honour "
        "HF_ENDPOINT and HF_HUB_OFFLINE.",
    )
    ap.add_argument("names", nargs="*", metavar="NAME", help="known file names (see --list)")
    ap.add_argument(
        "--workflow",
        action="append",
        default=[],
        metavar="FILE",
        help="a ComfyUI workflow (UI or API JSON): download every known file it names",
    )
    ap.add_argument("--list", action="store_true", help="list the known files and where they are")
    ap.add_argument("--dir", default=None, help="put the files in this folder")
    ap.add_argument("--comfyui", default=None, metavar="PATH", help="the ComfyUI folder")
    try:
        args = ap.parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as e:  # --help
        return int(e.code or 0)
    except _UsageError as e:
        _err(f"{e} (see python -m jojogan download --help)")
        return 1
    try:
        root = comfyui_root(args.comfyui)
        if args.comfyui and root is not None:
            if not ((root / "folder_paths.py").is_file() or (root / "models").is_dir()):
                raise WeightsError(
                    f"--comfyui {root}: not a ComfyUI folder (no folder_paths.py or models/)"
                )
        elif root is not None and os.environ.get("COMFYUI_PATH") and not root.is_dir():
            raise WeightsError(f"COMFYUI_PATH={root}: no such folder")

        def target_dir(e: WeightFile) -> Path:
            return Path(args.dir).expanduser() if args.dir else default_dir(e.folder, root)

        if args.list:
            if args.names or args.workflow:
                raise _UsageError("--list takes no names or workflows")
            try:
                _print_list(target_dir)
            except BrokenPipeError:  # piped into head: stop quietly
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
        names = list(dict.fromkeys(Path(n).name for n in args.names))
        for wf in args.workflow:
            known, other = _workflow_names(Path(wf).expanduser())
            for n in other:
                print(f"{wf}: '{n}' is not a file this pack knows; skipped", file=sys.stderr)
            if not known:
                print(f"{wf}: names no file this pack knows", file=sys.stderr)
            names += [n for n in known if n not in names]
        if not names:
            if args.workflow:
                return 0
            raise _UsageError("give file names, --workflow FILE or --list")
        unknown = [n for n in names if n not in REGISTRY]
        if unknown:
            raise WeightsError(
                f"unknown model file {', '.join(repr(n) for n in unknown)}; known files: "
                f"{', '.join(sorted(REGISTRY))}"
            )
    except _UsageError as e:
        _err(f"{e} (see python -m jojogan download --help)")
        return 1
    except WeightsError as e:
        _err(str(e))
        return 1
    failed = 0
    tty = sys.stderr.isatty()

    def say(text: str) -> None:
        print(("\n" if tty else "") + text, file=sys.stderr)

    for n in names:
        e = REGISTRY[n]
        d = target_dir(e)
        try:
            if (d / n).is_file():
                print(f"{n}: already in {d}, checking it", file=sys.stderr)
            else:
                print(f"{n}: downloading into {d}", file=sys.stderr)
            if e.licence:
                print(f"{n}: licence: {e.licence}", file=sys.stderr)
            path = download(
                e,
                d,
                progress=_stderr_progress(n),
                log=say,
            )
        except WeightsError as err:
            if tty:
                print(file=sys.stderr)
            _err(str(err))
            failed += 1
            continue
        if tty:
            print(file=sys.stderr)
        print(path)
    return 1 if failed else 0


def _print_list(target_dir: Callable[[WeightFile], Path]) -> None:
    for e in REGISTRY.values():
        d = target_dir(e)
        present = "present" if (d / e.name).is_file() else "missing"
        sha = e.sha256 or "sha256 not published"
        print(
            f"{e.name}  [{e.kind}, models/{e.folder}, {_fmt_size(e.approx_size)}, {sha}] "
            f"{present} in {d}"
        )
        if e.licence:
            print(f"    licence: {e.licence}")
        for s in e.sources:
            note = f"  (confirmed: {s.note})" if s.note else ""
            print(f"    {s.describe()}{note}")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m jojogan.weights list | download NAME... [--dir DIR]`` (the older spelling of
    ``python -m jojogan download``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["list"]:
        return download_main(["--list", *argv[1:]])
    if argv[:1] == ["download"]:
        return download_main(argv[1:])
    return download_main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
