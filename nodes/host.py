"""What the node layer needs from its host (ComfyUI), with plain-Python fallbacks.

Every ComfyUI module (``comfy.model_management``, ``comfy.utils``, ``folder_paths``) is imported
lazily and guarded, so the nodes import and run without ComfyUI (the tests call them directly).

- devices: ``comfy.model_management.get_torch_device()``; outside ComfyUI CUDA, then MPS, then CPU
  (``JOJOGAN_DEVICE`` overrides both);
- progress: ``comfy.utils.ProgressBar``; outside ComfyUI nothing (the core's callbacks still run);
- interruption: ``comfy.model_management.throw_exception_if_processing_interrupted()``;
- model folders: ``models/jojogan`` and ``models/facedetection`` registered with
  ``folder_paths.add_model_folder_path`` (so ``extra_model_paths.yaml`` entries named ``jojogan`` /
  ``facedetection`` are honoured); outside ComfyUI the cache folder of :mod:`jojogan.weights`;
- a model cache keyed by (path, mtime, size, device, ...), cleared by :func:`clear_cache` and by
  ComfyUI's "unload models" (``comfy.model_management.unload_all_models`` is wrapped once);
- toy styles from files: the Python files listed in ``JOJOGAN_TOY_STYLES`` are run once when the
  pack loads, so the Toy Render node offers styles the package has never seen.
"""

from __future__ import annotations

import gc
import importlib
import os
import threading
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from jojogan.devices import pick_device

FOLDER_MODELS = "jojogan"
FOLDER_DETECTION = "facedetection"
MODEL_EXTENSIONS = {".pt", ".pth", ".safetensors", ".ckpt", ".bin"}
TOY_STYLES_ENV = "JOJOGAN_TOY_STYLES"


def _comfy(name: str) -> Any | None:
    """Import a ComfyUI module, or None outside ComfyUI (never raises)."""
    try:
        return importlib.import_module(name)
    except Exception:
        return None


def in_comfyui() -> bool:
    return _comfy("comfy.model_management") is not None


# ---------------------------------------------------------------------------------------- devices


def torch_device() -> torch.device:
    """The device to compute on: ComfyUI's choice inside ComfyUI (honours ``--cpu``)."""
    mm = _comfy("comfy.model_management")
    if mm is not None:
        try:
            return torch.device(mm.get_torch_device())
        except Exception:
            pass
    return pick_device("auto")


def offload_device() -> torch.device:
    """Where results go between nodes (ComfyUI's intermediate device; CPU outside ComfyUI)."""
    mm = _comfy("comfy.model_management")
    if mm is not None and hasattr(mm, "intermediate_device"):
        try:
            return torch.device(mm.intermediate_device())
        except Exception:
            pass
    return torch.device("cpu")


# ------------------------------------------------------------------------ progress and interrupt


class Progress:
    """ComfyUI's progress bar when available; ``update(step)`` with an absolute step count."""

    def __init__(self, total: int) -> None:
        self.total = max(int(total), 1)
        self._bar = None
        utils = _comfy("comfy.utils")
        if utils is not None and hasattr(utils, "ProgressBar"):
            try:
                self._bar = utils.ProgressBar(self.total)
            except Exception:
                self._bar = None

    def update(self, step: int, preview: Any = None) -> None:
        if self._bar is not None:
            self._bar.update_absolute(min(int(step), self.total), self.total)


def check_interrupted() -> None:
    """Raise ComfyUI's InterruptProcessingException when the user pressed Cancel."""
    mm = _comfy("comfy.model_management")
    if mm is not None and hasattr(mm, "throw_exception_if_processing_interrupted"):
        mm.throw_exception_if_processing_interrupted()


# ---------------------------------------------------------------------------------- model folders

_registered = False


def register_model_folders() -> None:
    """Register ``models/jojogan`` and ``models/facedetection`` with ComfyUI (idempotent)."""
    global _registered
    fp = _comfy("folder_paths")
    if fp is None or _registered:
        return
    for name in (FOLDER_MODELS, FOLDER_DETECTION):
        path = os.path.join(fp.models_dir, name)
        try:
            fp.add_model_folder_path(name, path, is_default=True)
        except TypeError:  # releases before is_default
            fp.add_model_folder_path(name, path)
        fmap = getattr(fp, "folder_names_and_paths", {})
        if name in fmap:
            exts = fmap[name][1]
            if isinstance(exts, set):
                exts.update(MODEL_EXTENSIONS)
            else:
                fmap[name] = (fmap[name][0], set(MODEL_EXTENSIONS))
    _registered = True


def model_dirs(folder: str = FOLDER_MODELS) -> list[Path]:
    """The folders searched for model files (ComfyUI's, else the jojogan cache folder)."""
    fp = _comfy("folder_paths")
    if fp is not None:
        register_model_folders()
        try:
            return [Path(p) for p in fp.get_folder_paths(folder)]
        except Exception:
            pass
    from jojogan import weights

    return [weights.cache_dir(folder)]


def list_models(folder: str = FOLDER_MODELS) -> list[str]:
    """File names for a loader widget (``folder_paths.get_filename_list`` inside ComfyUI)."""
    fp = _comfy("folder_paths")
    if fp is not None:
        register_model_folders()
        try:
            return sorted(fp.get_filename_list(folder))
        except Exception:
            return []
    names: set[str] = set()
    for d in model_dirs(folder):
        if d.is_dir():
            for p in d.rglob("*"):
                if p.is_file() and p.suffix.lower() in MODEL_EXTENSIONS:
                    names.add(p.relative_to(d).as_posix())
    return sorted(names)


def resolve_model(node: str, widget: str, name: str, folder: str = FOLDER_MODELS) -> Path:
    """The full path of ``name`` in the model folders, or a ValueError that says where to put it
    and where it can be found (from the weights registry)."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{node}: '{widget}' is empty; choose a model file")
    p = Path(name)
    if p.is_absolute() and p.is_file():
        return p
    fp = _comfy("folder_paths")
    if fp is not None:
        register_model_folders()
        try:
            full = fp.get_full_path(folder, name)
        except Exception:
            full = None
        if full and os.path.isfile(full):
            return Path(full)
    for d in model_dirs(folder):
        cand = d / name
        if cand.is_file():
            return cand
    from jojogan import weights

    raise ValueError(
        f"{node}: '{widget}': " + weights.missing_file_message(name, model_dirs(folder))
    )


# ------------------------------------------------------------------------------------ model cache


class ModelCache:
    """Loaded models, once per process, keyed by the file's path, mtime and size (and options)."""

    def __init__(self) -> None:
        self._items: dict[tuple, Any] = {}
        self._lock = threading.Lock()

    @staticmethod
    def file_key(path: str | os.PathLike) -> tuple:
        st = os.stat(path)
        return (os.path.realpath(path), st.st_mtime_ns, st.st_size)

    def get(self, key: tuple, load: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._items:
                return self._items[key]
        value = load()
        with self._lock:
            self._items[key] = value
        return value

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> int:
        with self._lock:
            n = len(self._items)
            self._items.clear()
        return n


CACHE = ModelCache()


def clear_cache() -> int:
    """Drop every cached model (and free accelerator memory); returns how many were dropped."""
    n = CACHE.clear()
    try:
        from jojogan.faces import detect

        detect._CACHE.clear()
    except Exception:
        pass
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return n


_hooked = False


def hook_unload() -> bool:
    """Make ComfyUI's ``unload_all_models`` (the "Unload models" button, ``/free``) also clear
    our cache. Returns whether a hook is in place."""
    global _hooked
    if _hooked:
        return True
    mm = _comfy("comfy.model_management")
    if mm is None or not hasattr(mm, "unload_all_models"):
        return False
    original = mm.unload_all_models

    def unload_all_models(*args: Any, **kwargs: Any) -> Any:
        clear_cache()
        return original(*args, **kwargs)

    unload_all_models.__wrapped__ = original  # type: ignore[attr-defined]
    mm.unload_all_models = unload_all_models
    _hooked = True
    return True


def load_toy_style_modules(env: Mapping[str, str] | None = None) -> list[str]:
    """Run the style files listed in ``$JOJOGAN_TOY_STYLES`` (paths separated by ``os.pathsep``;
    `jojogan.toy.render.load_style_module`) and return the styles they added, for the Toy
    Render node. The list comes from whoever starts the server: no workflow can name a file to
    run. A file that cannot be loaded is a warning naming it (nothing of it registered); the
    others still load and the pack still loads."""
    from jojogan.toy.render import load_style_module

    env = os.environ if env is None else env
    names: list[str] = []
    for path in filter(None, (p.strip() for p in env.get(TOY_STYLES_ENV, "").split(os.pathsep))):
        try:
            names += load_style_module(path)
        except ValueError as e:
            warnings.warn(f"JoJoGAN nodes: {TOY_STYLES_ENV}: {e}", stacklevel=2)
    return names
