"""Known pretrained files: where they come from, where they go, how they are checked and fetched.

The registry holds one :class:`WeightFile` per file (name, kind, folder, public sources, expected
size and layout, sha256 where a source states it). Every source records where it was confirmed
(:attr:`Source.note`). None of the files could be downloaded where this library was written, so
no registry sha256 is known and sizes are approximate (from parameter counts); a download from the
Hugging Face Hub is still checked against the sha256 the Hub publishes for it (an LFS file's ETag
*is* its sha256), and every download is checked for size and structure (the project's safe loader
must read it and find the expected layout) before it gets its final name.

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
import contextlib
import hashlib
import importlib.metadata
import inspect
import json
import os
import pickle
import re
import shlex
import shutil
import site
import stat
import sys
import sysconfig
import threading
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PureWindowsPath
from typing import Any

from .checkpoints.reading import CheckpointError
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

MB = 1 << 20
STAGING = ".jojogan-download"  # inside the target folder: partial and unverified files
HF_DEFAULT_ENDPOINT = "https://huggingface.co"
Progress = Callable[[int, "int | None"], object]


class WeightsError(RuntimeError):
    """A download or verification failed; the message names the file and what to do."""


class OfflineError(WeightsError):
    """The file is missing and cannot be fetched (no network, or ``HF_HUB_OFFLINE``)."""


class ModelNotFoundError(FileNotFoundError, CheckpointError):
    """A model file given by name is in none of the folders searched; the message says where to
    put it, where it can be found and the command that downloads it. (Also a
    :class:`~jojogan.checkpoints.CheckpointError`, so the loaders' callers catch it as before.)"""


# ------------------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class Source:
    """Where a file can be found. kind: "hf" (ref = "owner/repo:path/in/repo", fetched with
    huggingface_hub), "gdrive" (ref = a Google Drive file id; often a quota page), "url" (ref = a
    direct URL). note: where this source was confirmed (repository and file)."""

    kind: str
    ref: str
    note: str = ""

    @property
    def repo(self) -> str:
        return self.ref.partition(":")[0] if self.kind == "hf" else ""

    @property
    def path(self) -> str:
        return self.ref.partition(":")[2] if self.kind == "hf" else ""

    def url(self, endpoint: str | None = None) -> str:
        """A browser/plain-HTTP URL (Hub files: ``<endpoint>/<repo>/resolve/main/<path>``, with
        the public Hub unless ``endpoint`` is given)."""
        if self.kind == "hf":
            base = (endpoint or HF_DEFAULT_ENDPOINT).rstrip("/")
            return f"{base}/{self.repo}/resolve/main/{urllib.parse.quote(self.path)}"
        if self.kind == "gdrive":
            # drive.usercontent with confirm=t skips the "cannot scan for viruses" page of large
            # files; a quota page can still come back (refused with a clear message).
            return (
                "https://drive.usercontent.google.com/download?"
                f"id={self.ref}&export=download&confirm=t"
            )
        return self.ref

    def describe(self) -> str:
        if self.kind == "hf":
            return f"Hugging Face {self.repo} (file {self.path})"
        if self.kind == "gdrive":
            return f"Google Drive id {self.ref} (https://drive.google.com/file/d/{self.ref}/view)"
        return self.ref


@dataclass(frozen=True)
class WeightFile:
    """One known file. approx_size: bytes (estimated from parameter counts unless a source
    states it); min_size: smaller files are refused (truncated downloads). layout: the
    `jojogan.checkpoints.detect_layout` names accepted (None: any file the safe loader reads).
    sha256: None where no source states it (all of them so far). licence: one line the
    download command and the missing-file message show ("" where none is recorded)."""

    name: str
    kind: str
    description: str
    sources: tuple[Source, ...]
    folder: str = "jojogan"
    approx_size: int | None = None
    min_size: int = 1 * MB
    layout: tuple[str, ...] | None = None
    sha256: str | None = None
    licence: str = ""
    extra: dict = field(default_factory=dict, compare=False)


# NVIDIA's FFHQ StyleGAN2 weights (converted by rosinality) are under NVIDIA's licence; its text:
# NVlabs/stylegan2 LICENSE.txt.
NVIDIA_NC = (
    "NVIDIA's FFHQ weights, under the Nvidia Source Code License-NC: non-commercial use only "
    "(https://nvlabs.github.io/stylegan2/license.html)"
)

# Where each source was confirmed (read with the project's code-search tools; no network here).
_NB_NEW = "mchong6/JoJoGAN stylize.ipynb drive_ids (commit f58c629)"
_NB_OLD = "mchong6/JoJoGAN stylize.ipynb drive_ids (commit 030ba20)"
_E4E_README = "omertov/encoder4editing README.md, Pretrained Models"
_RESTYLE_README = "yuval-alaluf/restyle-encoder README.md, Pretrained Models"
_SPACE = (
    "the akhaliq/JoJoGAN Space's app.py: hf_hub_download(repo_id=..., filename=...), read in a "
    "copy of it in the code index (the copy's repository is not named there)"
)

_STYLE_IDS = {
    "arcane_caitlyn": "1gOsDTiTPcENiFOrhmkkxJcTURykW1dRc",
    "arcane_caitlyn_preserve_color": "1cUTyjU-q98P75a8THCaO545RTwpVV-aH",
    "arcane_jinx": "1quQ8vPjYpUiXM4k1_KIwP4EccOefPpG_",
    "arcane_jinx_preserve_color": "1jElwHxaYPod5Itdy18izJk49K1nl4ney",
    "arcane_multi": "15V9s09sgaw-zhKp116VHigf5FowAy43f",
    "arcane_multi_preserve_color": "1enJgrC08NpWpx2XGBmLt1laimjpGCyfl",
    "sketch_multi": "1GdaeHGBGjBAFsWipTL0y-ssUiAqk8AxD",
    "disney": "1zbE2upakFUAx8ximYnLofFwfT8MilqJA",
    "disney_preserve_color": "1Bnh02DjfvN_Wm8c4JdOiNV4q9J7Z_tsi",
    "jojo": "13cR2xjIBj8Ga5jMO7gtxzIJj2PDsBYK4",
    "jojo_preserve_color": "1ZRwYLRytCEKi__eT2Zxv1IlV6BGVQ_K2",
    "jojo_yasuho": "1grZT3Gz1DLzFoJchAmoj3LoM9ew9ROX_",
    "jojo_yasuho_preserve_color": "1SKBu1h0iRNyeKBnya_3BBmLr4pkPeg_L",
    "art": "1a0QDEHwXQ6hE_FcYEyNMuv5r5UnRQLKT",
    "supergirl": "1L0y9IYgzLNzB-33xTpXpecsKU-t9DpVC",
    "supergirl_preserve_color": "1VmKGuvThWHym7YuayXxjv0fSn32lfDpE",
}
_STYLE_NOTEBOOK = {"supergirl": _NB_OLD, "supergirl_preserve_color": _NB_OLD}
# Released styles mirrored on the Hub by the akhaliq/JoJoGAN Space (none found for the others).
_STYLE_HUB = {
    "jojo_preserve_color": "akhaliq/JoJoGAN-jojo",
    "jojo_yasuho_preserve_color": "akhaliq/JoJoGAN-jojo",
    "disney_preserve_color": "akhaliq/jojogan-disney",
    "arcane_jinx_preserve_color": "akhaliq/jojo-gan-jinx",
    "arcane_caitlyn_preserve_color": "akhaliq/jojogan-arcane",
    "arcane_multi_preserve_color": "akhaliq/jojogan-arcane",
    "art": "akhaliq/jojo-gan-art",
}


def _registry() -> dict[str, WeightFile]:
    files = [
        WeightFile(
            "stylegan2-ffhq-config-f.pt",
            "stylegan2",
            "FFHQ StyleGAN2 1024 px, rosinality layout (g_ema, g, d, latent_avg)",
            (
                Source(
                    "hf",
                    "akhaliq/jojogan-stylegan2-ffhq-config-f:stylegan2-ffhq-config-f.pt",
                    "gradio-app/gradio guides/4)integrating_other_frameworks/"
                    "Gradio_and_Wandb_Integration.md (the JoJoGAN demo's hf_hub_download)",
                ),
                Source("gdrive", "1Yr7KuD959btpmcKGAUsbAk5rPjX2MytK", _NB_NEW),
                Source(
                    "gdrive",
                    "1EM87UquaoQmk17Q8d5kYIAHqu0dkYqdT",
                    f"{_E4E_README} (FFHQ StyleGAN); {_RESTYLE_README}",
                ),
            ),
            approx_size=364 * MB,  # g_ema + g (30.4 M) and d (22.5 M) params, float32
            min_size=100 * MB,
            layout=("rosinality", "rosinality-training"),
            licence=NVIDIA_NC,
        ),
        WeightFile(
            "e4e_ffhq_encode.pt",
            "encoder",
            "e4e FFHQ encoder (Tov et al. 2021) into W+ of the FFHQ generator",
            (
                Source(
                    "hf",
                    "AIRI-Institute/HairFastGAN:pretrained_models/encoder4editing/"
                    "e4e_ffhq_encode.pt",
                    "AIRI-Institute/HairFastGAN README.md (weights: the Hub repo's "
                    "pretrained_models/) and models/Embedding.py (this path)",
                ),
                Source("gdrive", "1o6ijA3PkcewZvwJJ73dJ0fxhndn0nnh7", _NB_NEW),
                Source("gdrive", "1cUv_reLE6k3604or78EranS7XzuVMWeO", _E4E_README),
            ),
            approx_size=1100 * MB,
            min_size=200 * MB,
            layout=("psp-encoder",),
        ),
        WeightFile(
            "restyle_psp_ffhq_encode.pt",
            "encoder",
            "ReStyle over pSp, FFHQ (Alaluf et al. 2021), iterative W+ encoder",
            (
                Source("gdrive", "1nbxCIVw9H3YnQsoIPykNEFwWJnHVHlVd", _NB_NEW),
                Source("gdrive", "1sw6I2lRIB0MpuJkpc8F5BJiSZrc0hjfE", _RESTYLE_README),
            ),
            approx_size=None,
            min_size=100 * MB,
            layout=("psp-encoder",),
        ),
        WeightFile(
            "model_ir_se50.pth",
            "arcface",
            "ArcFace IR-SE50 (TreB1eN InsightFace_Pytorch) for the identity loss",
            (
                Source(
                    "hf",
                    "Sanoojan/REFace:Other_dependencies/arcface/model_ir_se50.pth",
                    "a third-party copy (the REFace project's Hub repo), seen only in REFace's "
                    "download script in the code index (its repository is not named there); "
                    "the arcface layout is checked on download",
                ),
                Source(
                    "gdrive",
                    "1KW7bjndL3QG3sxBbZxreGHigcCCpsDgn",
                    f"{_E4E_README} (IR-SE50 Model); {_RESTYLE_README}",
                ),
            ),
            approx_size=175 * MB,  # 43.8 M params
            min_size=50 * MB,
            layout=("arcface",),
        ),
        WeightFile(
            "detection_Resnet50_Final.pth",
            "detector",
            "RetinaFace-ResNet50 face detector (facexlib)",
            (
                # The official release first: a GitHub release has no quota, and the Hub copy is a
                # third party's (this file has no layout to check it against).
                Source(
                    "url",
                    "https://github.com/xinntao/facexlib/releases/download/v0.1.0/"
                    "detection_Resnet50_Final.pth",
                    "xinntao/facexlib facexlib/detection/__init__.py (init_detection_model)",
                ),
                Source(
                    "hf",
                    "camenduru/facexlib:detection_Resnet50_Final.pth",
                    "a third-party copy, used by adritoon/FaceA gfpgan_download.py",
                ),
            ),
            folder="facedetection",
            approx_size=105 * MB,
            min_size=50 * MB,
            layout=None,
        ),
    ]
    for style, gid in _STYLE_IDS.items():
        colour = " (colour-preserving)" if style.endswith("_preserve_color") else ""
        sources = [Source("gdrive", gid, _STYLE_NOTEBOOK.get(style, _NB_NEW))]
        if style in _STYLE_HUB:
            sources.insert(0, Source("hf", f"{_STYLE_HUB[style]}:{style}.pt", _SPACE))
        files.append(
            WeightFile(
                f"{style}.pt",
                "style",
                f"released JoJoGAN style '{style}'{colour}, {{'g': state_dict}} of the FFHQ "
                "generator",
                tuple(sources),
                approx_size=127 * MB,  # the 1024 px generator's 30.4 M params, float32
                min_size=60 * MB,
                layout=("jojogan-style",),
            )
        )
    return {f.name: f for f in files}


REGISTRY: dict[str, WeightFile] = _registry()


def _entry(name: str | os.PathLike) -> WeightFile | None:
    return REGISTRY.get(Path(name).name)


# -------------------------------------------------------------------------------------- folders


def cache_dir(folder: str = "jojogan") -> Path:
    """``$JOJOGAN_CACHE/<folder>`` or ``~/.cache/jojogan/<folder>`` (not created)."""
    env = os.environ.get("JOJOGAN_CACHE")
    root = Path(env).expanduser() if env else Path.home() / ".cache" / "jojogan"
    return root / folder


def _detect_comfyui_root(package_dir: str | os.PathLike | None = None) -> Path | None:
    """``<ROOT>`` when the ``jojogan`` package is ``<ROOT>/custom_nodes/<pack>/jojogan`` and
    ``<ROOT>/folder_paths.py`` exists (the path as imported first, then with links resolved)."""
    pkg = Path(package_dir) if package_dir is not None else Path(__file__).parent
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
    pkg = Path(__file__).resolve().parent
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
    pack = _quote(Path(__file__).resolve().parent.parent)
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
    from . import checkpoints as ck

    e = entry if isinstance(entry, WeightFile) else REGISTRY[entry]
    p = Path(path)
    kind = ck.sniff(p)
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
            obj = ck.load_file(p, map_location="cpu")
        except ck.CheckpointError as err:
            raise WeightsError(f"{p}: not a readable {e.name}: {err}") from None
        if e.layout is not None:
            layout = ck.detect_layout(obj)
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
    import torch

    from .checkpoints import reading as ck

    what = ck.sniff(p)
    if what == "safetensors":
        header = ck._read_safetensors_header(p)
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
    from . import checkpoints as ck

    kind = _KIND_OF_LAYOUT.get(ck.detect_layout(obj))
    if kind is not None:
        return kind
    sd = obj.get("state_dict", obj) if isinstance(obj, dict) else None
    if isinstance(sd, dict):
        keys = [k.removeprefix("module.") for k in sd if isinstance(k, str)]
        if any(k.startswith(_DETECTOR_HEADS) for k in keys):
            return "detector"
    return None


def _empty_tensor(*args: Any, **kwargs: Any) -> Any:
    import torch

    return torch.empty(0)


def _first(data: Any = None, *args: Any, **kwargs: Any) -> Any:
    return data


class _KindUnpickler(pickle.Unpickler):
    """Unpickles a checkpoint's object tree with every tensor an empty placeholder: storages are
    never loaded, and only containers, ``argparse.Namespace`` and torch's tensor rebuilders are
    resolved (anything else stops the unpickling)."""

    def find_class(self, module: str, name: str) -> Any:
        import argparse as _argparse
        import collections

        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("argparse", "Namespace"):
            return _argparse.Namespace
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
    from .checkpoints import reading as ck

    return all(ck._is_allowed_global(n) for n in names)


def _zip_object(p: Path) -> Any:
    from .checkpoints import reading as ck

    with zipfile.ZipFile(p) as zf:
        members = [i for i in zf.infolist() if i.filename.endswith("data.pkl")]
        if len(members) != 1 or members[0].file_size > ck._MAX_PICKLE_BYTES:
            return None
        data = ck._zip_member(p, zf, members[0])
    if not _safe_globals(ck.scan_pickle_globals(data)):
        return None  # it would run code: never unpickled
    import io

    return _KindUnpickler(io.BytesIO(data)).load()


def _legacy_object(p: Path) -> Any:
    from .checkpoints import reading as ck

    with open(p, "rb") as f:
        reader = ck._CappedReader(f, p.stat().st_size)  # no read asks for more than is there
        names, is_magic = ck._scan_stream(reader)  # reads the pickles only, not the tensor data
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
