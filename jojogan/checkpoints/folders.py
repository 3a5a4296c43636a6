"""Where model files live and how a name becomes a file: the model folders (cache, ComfyUI),
the model-name rule, :func:`resolve` for bare names, and the missing-file message with the
command that downloads the file."""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import re
import shlex
import site
import sys
import sysconfig
import urllib.parse
import urllib.request
from collections.abc import Iterable, Sequence
from pathlib import Path, PureWindowsPath
from typing import Any

from .reading import CheckpointError
from .registry import MB, REGISTRY, WeightFile, _entry


class ModelNotFoundError(FileNotFoundError, CheckpointError):
    """A model file given by name is in none of the folders searched; the message says where to
    put it, where it can be found and the command that downloads it. (Also a
    :class:`~jojogan.checkpoints.CheckpointError`, so the loaders' callers catch it as before.)"""


# -------------------------------------------------------------------------------------- folders


def cache_dir(folder: str = "jojogan") -> Path:
    """``$JOJOGAN_CACHE/<folder>`` or ``~/.cache/jojogan/<folder>`` (not created)."""
    env = os.environ.get("JOJOGAN_CACHE")
    root = Path(env).expanduser() if env else Path.home() / ".cache" / "jojogan"
    return root / folder


def _detect_comfyui_root(package_dir: str | os.PathLike | None = None) -> Path | None:
    """``<ROOT>`` when the ``jojogan`` package is ``<ROOT>/custom_nodes/<pack>/jojogan`` and
    ``<ROOT>/folder_paths.py`` exists (the path as imported first, then with links resolved)."""
    pkg = Path(package_dir) if package_dir is not None else Path(__file__).parents[1]
    candidates = [Path(os.path.abspath(pkg))]
    try:
        candidates.append(pkg.resolve())
    except OSError:
        pass
    for cand in dict.fromkeys(candidates):
        nodes_dir = cand.parent.parent
        if nodes_dir.name == "custom_nodes" and (nodes_dir.parent / "folder_paths.py").is_file():
            return nodes_dir.parent
    return None


def comfyui_root(explicit: str | os.PathLike | None = None) -> Path | None:
    """The ComfyUI folder downloads go to: ``explicit`` (``--comfyui``), else ``$COMFYUI_PATH``,
    else the one this package is installed in as a custom node; None when there is none."""
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get("COMFYUI_PATH")
    if env:
        return Path(env).expanduser()
    return _detect_comfyui_root()


_comfyui_root = comfyui_root  # for functions whose parameter has that name


def default_dir(folder: str = "jojogan", root: str | os.PathLike | None = None) -> Path:
    """Where the command puts a file of ``folder`` without ``--dir``: ``<root>/models/<folder>``
    when a ComfyUI root is given or known (:func:`comfyui_root`), else :func:`cache_dir`."""
    r = Path(root) if root is not None else comfyui_root()
    return r / "models" / folder if r is not None else cache_dir(folder)


def _search_dirs(folder: str) -> list[Path]:
    dirs = [cache_dir(folder)]
    root = comfyui_root()
    if root is not None:
        dirs.append(root / "models" / folder)
    return list(dict.fromkeys(dirs))


MAX_NAME_CHARS = 255  # a model name, subfolders included


class ModelNameError(CheckpointError):
    """A model name that is not a name inside its folder (empty, too long, a control character,
    an absolute path, a ``..`` part, or a link to a file outside the model folders)."""


def _shown(name: str) -> str:
    """A name for a message: at most 40 of its characters, quoted."""
    return repr(name if len(name) <= 40 else name[:40] + "...")


def check_model_name(name: object) -> str:
    """``name`` when it can only mean a file inside a model folder: text of at most
    :data:`MAX_NAME_CHARS` characters, no control character (NUL, newline), not absolute (``/``,
    ``\\``, a drive letter) and no ``..`` part; else :class:`ModelNameError`."""
    if not isinstance(name, str):
        raise ModelNameError(f"a model name must be text, got {type(name).__name__}")
    if not name.strip():
        raise ModelNameError("the model name is empty; choose a model file")
    if len(name) > MAX_NAME_CHARS:
        raise ModelNameError(
            f"the model name {_shown(name)} is too long ({len(name)} characters, at most "
            f"{MAX_NAME_CHARS}); choose a file from the list"
        )
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise ModelNameError(
            f"the model name {_shown(name)} contains a control character (NUL, newline, ...); "
            "choose a file from the list"
        )
    if name.startswith(("/", "\\")) or os.path.isabs(name) or PureWindowsPath(name).drive:
        raise ModelNameError(
            f"{_shown(name)} is an absolute path; give a name inside the model folder, as the "
            "list shows"
        )
    if ".." in re.split(r"[\\/]", name):
        raise ModelNameError(
            f"{_shown(name)} contains '..'; give a name inside the model folder, as the list shows"
        )
    return name


def inside(path: str | os.PathLike, folders: Iterable[str | os.PathLike]) -> bool:
    """Whether ``path``, links resolved, lies in one of ``folders`` (links resolved too, so a
    model folder that is itself a link to another disk is fine)."""
    try:
        real = os.path.realpath(path)
        for d in folders:
            root = os.path.realpath(d)
            with contextlib.suppress(ValueError):  # another drive (Windows)
                if os.path.commonpath([real, root]) == root:
                    return True
    except (OSError, ValueError):
        return False
    return False


def find(name: str, dirs: Iterable[str | os.PathLike] | None = None) -> Path | None:
    """The file ``dir/name`` of the first of ``dirs`` (default: the cache folder) that has it,
    or None. ``name`` must pass :func:`check_model_name`, and the file, links resolved, must lie
    in one of ``dirs``: a link to a file elsewhere is :class:`ModelNameError` (a link to another
    file of the folders is fine). Every loader that takes a name from a user resolves it here."""
    check_model_name(name)
    if dirs is None:
        entry = _entry(name)
        dirs = [cache_dir(entry.folder if entry else "jojogan")]
    roots = [Path(d) for d in dirs]
    for d in roots:
        cand = d / name
        if not os.path.isfile(cand):  # False for missing, dangling, too long, unreadable
            continue
        if not inside(cand, roots):
            raise ModelNameError(
                f"{_shown(name)} in {d} links to a file outside the model folders, which is not "
                "loaded; move or copy the file into the folder (in ComfyUI, or add its folder to "
                "extra_model_paths.yaml)"
            )
        return cand
    return None


def _is_bare(name: str) -> bool:
    return bool(name) and name not in (".", "..") and os.path.basename(name) == name


def resolve(name: str | os.PathLike, folder: str | None = None) -> Path:
    """The file a loader should open for ``name``: an existing path as given; otherwise a bare
    file name (no folder part) looked up with :func:`find` in :func:`cache_dir` (and
    ``<ComfyUI>/models/<folder>`` when a ComfyUI root is known). ``folder`` defaults to the
    registry entry's (``jojogan`` for unknown names). Missing: :class:`ModelNotFoundError` (a
    FileNotFoundError) whose text is :func:`missing_file_message`."""
    text = os.fspath(name)
    p = Path(text)
    if p.exists():
        return p
    entry = _entry(text)
    folder = folder or (entry.folder if entry is not None else "jojogan")
    if _is_bare(text):
        dirs = _search_dirs(folder)
        found = find(text, dirs)
        if found is not None:
            return found
        raise ModelNotFoundError(missing_file_message(text, dirs))
    raise ModelNotFoundError(missing_file_message(text, [p.parent]))


def _loader_path(path: Any, folder: str | None = None) -> Any:
    """For the library's loaders: a bare name that is not a file here is :func:`resolve`\\ d;
    anything else is returned unchanged (the loader reports its own errors)."""
    try:
        text = os.fspath(path)
    except TypeError:
        return path
    if isinstance(text, str) and _is_bare(text) and not os.path.exists(text):
        return resolve(text, folder)
    return path


# ------------------------------------------------------------------------------------- messages


def _pip_installed() -> bool:
    """Whether ``python -m jojogan`` works from any folder: the package lives in site-packages,
    or an (editable) install of this distribution points at this checkout."""
    pkg = Path(__file__).resolve().parents[1]
    places: set[Path] = set()
    for getter in (site.getsitepackages, site.getusersitepackages):
        try:
            got = getter()
        except Exception:
            continue
        for s in [got] if isinstance(got, str) else got:
            places.add(Path(s))
    for key in ("purelib", "platlib"):
        try:
            places.add(Path(sysconfig.get_paths()[key]))
        except Exception:
            pass
    for s in places:
        try:
            if pkg.parent == s.resolve():
                return True
        except OSError:
            pass
    try:
        dist = importlib.metadata.distribution("comfyui-jojogan")
        info = json.loads(dist.read_text("direct_url.json") or "{}")
        url = str(info.get("url", ""))
        if url.startswith("file:"):
            where = Path(urllib.request.url2pathname(urllib.parse.urlparse(url).path))
            return where.resolve() == pkg.parent
        return True  # installed from an index or an archive: importable from site-packages
    except Exception:
        return False


def _quote(arg: str | os.PathLike) -> str:
    """An argument that survives being pasted into a shell: bare when it is a plain token,
    else double-quoted (and single-quoted where POSIX shells would expand inside quotes)."""
    s = os.fspath(arg)
    if re.fullmatch(r"[\w./:@%+=,-]+", s):
        return s
    if os.name == "nt" or not re.search(r'["$`\\!]', s):
        return f'"{s}"'
    return shlex.quote(s)


def download_command(
    names: str | Sequence[str],
    comfyui_root: str | os.PathLike | None = None,
    *,
    dest_dir: str | os.PathLike | None = None,
) -> str:
    """The exact command that downloads ``names`` (pasteable into a shell).

    ``python -m jojogan download NAME...`` when the package is pip-installed; otherwise (a
    ComfyUI ``custom_nodes`` checkout) ``cd "<pack root>" && "<python>" -m jojogan download
    NAME...`` with this interpreter. ``--comfyui`` is added when ``comfyui_root`` is not the one
    the command finds by itself, ``--dir`` when ``dest_dir`` is not where it would put them."""
    names = [names] if isinstance(names, str) else list(names)
    args = ["download", *names]
    auto = _comfyui_root()
    root = Path(comfyui_root) if comfyui_root is not None else auto
    if comfyui_root is not None and (auto is None or not _same(root, auto)):
        args += ["--comfyui", os.fspath(root)]
    if dest_dir is not None:
        entry = _entry(names[0]) if names else None
        folder = entry.folder if entry is not None else "jojogan"
        if not _same(Path(dest_dir), default_dir(folder, root)):
            args += ["--dir", os.fspath(dest_dir)]
    tail = " ".join(_quote(a) for a in args)
    if _pip_installed():
        return f"python -m jojogan {tail}"
    pack = _quote(Path(__file__).resolve().parents[2])
    cd = "cd /d" if os.name == "nt" else "cd"
    return f"{cd} {pack} && {_quote(sys.executable)} -m jojogan {tail}"


def _same(a: Path, b: Path) -> bool:
    try:
        return os.path.normcase(os.path.abspath(a)) == os.path.normcase(os.path.abspath(b)) or (
            a.resolve() == b.resolve()
        )
    except OSError:
        return False


def missing_file_message(
    name: str | os.PathLike | WeightFile, dirs: Sequence[str | os.PathLike] | None = None
) -> str:
    """Which file is missing where, then the exact command that downloads it into the first of
    ``dirs`` (default: the cache folder), then where else it can be found."""
    entry = name if isinstance(name, WeightFile) else _entry(name)
    shown = entry.name if isinstance(name, WeightFile) else os.fspath(name)
    shown = shown if len(shown) <= 60 else shown[:40] + "..."
    folder = entry.folder if entry else "jojogan"
    where = [os.fspath(d) for d in dirs] if dirs else [os.fspath(cache_dir(folder))]
    msg = f"model file '{shown}' not found in {' or '.join(where)}"
    if not any(Path(d).parts[-2:] == ("models", folder) for d in where):
        msg += f" (in ComfyUI: models/{folder}/)"
    if entry is None:
        known = ", ".join(sorted(REGISTRY))
        return msg + f". It is not a file this pack knows; known files: {known}."
    sources = "; ".join(s.describe() for s in entry.sources)
    size = f", about {entry.approx_size // MB} MB" if entry.approx_size else ""
    command = download_command([entry.name], dest_dir=where[0])
    licence = f" Licence: {entry.licence}." if entry.licence else ""
    return (
        f"{msg}. It is the {entry.description}{size}.{licence} To download it there, run in a "
        f"terminal (on a machine with internet access): {command} -- or put the file there "
        f"yourself; sources: {sources}."
    )
