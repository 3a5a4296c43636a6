"""What the node layer needs from its host (ComfyUI), with plain-Python fallbacks.

Every ComfyUI module (``comfy.model_management``, ``comfy.utils``, ``folder_paths``) is imported
lazily and guarded, so the nodes import and run without ComfyUI (the tests call them directly).

- devices and memory: models live on the CPU between runs; a node moves the ones it uses to
  ComfyUI's device for its call (:func:`on_device`: ``model_management.free_memory`` first, as
  ComfyUI's own upscale-model node does) and back to the CPU afterwards, so our models never sit
  on the GPU while other nodes need it. Outside ComfyUI: CUDA, then MPS, then CPU
  (``JOJOGAN_DEVICE`` overrides);
- progress: ``comfy.utils.ProgressBar``, with a preview picture where there is one (the way
  KSampler shows latent previews); outside ComfyUI nothing (the core's callbacks still run);
- interruption: ``comfy.model_management.throw_exception_if_processing_interrupted()``;
- model folders: ``models/jojogan`` and ``models/facedetection`` registered with
  ``folder_paths.add_model_folder_path`` (so ``extra_model_paths.yaml`` entries named ``jojogan`` /
  ``facedetection`` are honoured) and created; outside ComfyUI the cache folder of
  :mod:`jojogan.weights`. Each loader lists the files of its kind plus the known files it can
  fetch; a missing one is the pack's message (the file, its source, the folder, the command);
- example inputs: the pack's own face photo, style references and clip are copied into ComfyUI's
  input folder (never over a file of the same name), so the bundled workflows run as they are;
- a model cache keyed by (path, mtime, size, ...) holding CPU copies, bounded by bytes
  (``$JOJOGAN_MODEL_CACHE_GB``, default 4 GiB or a quarter of the memory), least recently used
  out first, released when ComfyUI reports the CPU short of memory for a call (:func:`on_device`)
  and cleared by :func:`clear_cache`. ComfyUI's "Unload Models" / "Free memory" (``POST /free``)
  offer no hook to custom nodes (``model_management`` has no callback, and ``/free`` only sets
  flags the prompt worker reads), so those reach only ComfyUI's own models; the byte bound
  holds either way;
- toy styles from files: the Python files listed in ``JOJOGAN_TOY_STYLES`` are run once when the
  pack loads, so the Toy Render node offers styles the package has never seen.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import importlib
import logging
import math
import os
import shutil
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import nn

from jojogan import weights
from jojogan.devices import pick_device
from jojogan.faces import detect
from jojogan.images import image_grid
from jojogan.toy.render import load_style_module

FOLDER_MODELS = "jojogan"
FOLDER_DETECTION = "facedetection"
MODEL_EXTENSIONS = {".pt", ".pth", ".safetensors", ".ckpt", ".bin"}
TOY_STYLES_ENV = "JOJOGAN_TOY_STYLES"
# Opt-in: a loader whose file is missing downloads it (into the folder it would be read from)
# instead of failing with the download command. Set by whoever starts the server.
AUTO_DOWNLOAD_ENV = "JOJOGAN_AUTO_DOWNLOAD"
PACK_ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_INPUTS = PACK_ROOT / "example_workflows" / "inputs"
EXAMPLE_INPUT_EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".mp4", ".webm"}
PREVIEW_MAX_SIZE = 512  # px, the longest side of a progress preview
NAME_MAX = 255  # bytes in one file or folder name on common file systems

log = logging.getLogger("jojogan")


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


def storage_device() -> torch.device:
    """Where models wait between runs: the CPU inside ComfyUI (its device is for the node that
    runs); outside ComfyUI the compute device itself (nothing else shares it)."""
    return torch.device("cpu") if in_comfyui() else torch_device()


def _module_bytes(m: Any) -> int:
    """Bytes of a module's weights (a face detector: of its ``network``; dlib: 0)."""
    m = m if isinstance(m, nn.Module) else getattr(m, "network", None)
    if not isinstance(m, nn.Module):
        return 0
    mm = _comfy("comfy.model_management")
    if mm is not None and hasattr(mm, "module_size"):
        try:
            return int(mm.module_size(m))
        except Exception:
            pass
    return sum(t.numel() * t.element_size() for t in [*m.parameters(), *m.buffers()])


@contextlib.contextmanager
def on_device(*modules: Any, work_bytes: int = 0) -> Iterator[torch.device]:
    """Run a node's call with ``modules`` on the compute device, then put them back.

    Inside ComfyUI: ``model_management.free_memory(size of the modules + work_bytes, device)``
    unloads ComfyUI's own models as far as needed (and when ComfyUI reports less free CPU memory
    than that, our least recently used cached models are dropped), the modules move to the
    device, and on exit
    (also on error or interrupt) back to the CPU. Outside ComfyUI the modules stay where they are
    (the compute device). A module may also be any object with a ``to(device)`` method (the
    RetinaFace detector); objects without one (dlib) stay where they are. Yields the device."""
    device = torch_device()
    mods = [m for m in modules if m is not None]
    mm = _comfy("comfy.model_management")
    inside = mm is not None
    if inside:
        need = sum(_module_bytes(m) for m in mods) + int(work_bytes)
        if device.type != "cpu" and hasattr(mm, "free_memory"):
            mm.free_memory(need, device)
        _release_cache_for(mm, need)
    for m in mods:
        _move(m, device)
    try:
        yield device
    finally:
        if inside:
            for m in mods:
                _move(m, torch.device("cpu"))


def _release_cache_for(mm: Any, need: int) -> None:
    """When ComfyUI reports less free memory on the CPU (where cached models wait) than a
    call needs, drop least recently used cached models until the gap is covered."""
    get_free = getattr(mm, "get_free_memory", None)
    if not callable(get_free) or not len(CACHE):
        return
    try:
        free = int(get_free(torch.device("cpu")))
    except Exception:
        return
    if free < need and CACHE.release(need - free):
        log.info(
            "JoJoGAN: released cached models (%d MiB free, %d MiB needed)", free >> 20, need >> 20
        )
        gc.collect()


def _move(m: Any, device: torch.device) -> None:
    to = getattr(m, "to", None)
    if callable(to):
        to(device)


# ------------------------------------------------------------------------ progress and interrupt


def preview_image(images: torch.Tensor) -> Any:
    """[B,3,H,W] in [-1,1] -> ComfyUI's preview tuple ``("JPEG", PIL image, max size)``: the
    images in a near-square grid (what ``latent_preview`` passes for KSampler)."""
    x = images.detach().float().clamp(-1, 1).cpu()
    grid = image_grid(x, cols=math.ceil(math.sqrt(x.shape[0])), pad=2, fill=-1.0)
    arr = grid.add(1).mul(127.5).round().byte().permute(1, 2, 0).numpy()
    return ("JPEG", Image.fromarray(arr), PREVIEW_MAX_SIZE)


class Progress:
    """ComfyUI's progress bar when available; ``update(step, preview)`` with an absolute step
    count and, optionally, a ``[B,3,H,W]`` picture in [-1,1] shown in the node."""

    def __init__(self, total: int) -> None:
        self.total = max(int(total), 1)
        self._bar = None
        utils = _comfy("comfy.utils")
        if utils is not None and hasattr(utils, "ProgressBar"):
            try:
                self._bar = utils.ProgressBar(self.total)
            except Exception:
                self._bar = None

    def update(self, step: int, preview: torch.Tensor | None = None) -> None:
        if self._bar is None:
            return
        value = min(int(step), self.total)
        if preview is None:
            self._bar.update_absolute(value, self.total)
        else:
            self._bar.update_absolute(value, self.total, preview_image(preview))


def check_interrupted() -> None:
    """Raise ComfyUI's InterruptProcessingException when the user pressed Cancel."""
    mm = _comfy("comfy.model_management")
    if mm is not None and hasattr(mm, "throw_exception_if_processing_interrupted"):
        mm.throw_exception_if_processing_interrupted()


# ---------------------------------------------------------------------------------- model folders

_registered = False


def register_model_folders() -> None:
    """Register ``models/jojogan`` and ``models/facedetection`` with ComfyUI and create them
    (idempotent)."""
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
        try:
            os.makedirs(path, exist_ok=True)
        except OSError as e:
            log.warning("JoJoGAN: cannot create the model folder %s (%s)", path, e)
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
    return [weights.cache_dir(folder)]


def _hidden(name: str) -> bool:
    """Inside a hidden folder or a hidden file: e.g. a download still being verified in
    ``.jojogan-download/`` (`jojogan.weights.STAGING`)."""
    return any(part.startswith(".") for part in Path(name).parts)


def _present_files(folder: str) -> list[tuple[str, Path]]:
    """(name as the widget shows it, full path) of every model file in the folders; a link to a
    file outside them is left out (`resolve_model` would refuse it)."""
    found: dict[str, Path] = {}
    dirs = model_dirs(folder)
    fp = _comfy("folder_paths")
    if fp is not None:
        try:
            for name in fp.get_filename_list(folder):
                full = fp.get_full_path(folder, name)
                if full and not _hidden(name) and weights.inside(full, dirs):
                    found.setdefault(name, Path(full))
            return sorted(found.items())
        except Exception:
            return []
    for d in dirs:
        if d.is_dir():
            for p in d.rglob("*"):
                rel = p.relative_to(d).as_posix()
                if p.is_file() and p.suffix.lower() in MODEL_EXTENSIONS and not _hidden(rel):
                    if weights.inside(p, dirs):
                        found.setdefault(rel, p)
    return sorted(found.items())


def list_models(kind: str | None = None, folder: str = FOLDER_MODELS) -> list[str]:
    """The choices of a loader widget: the files in the model folders that are of ``kind``
    (`jojogan.weights.file_kind`: "stylegan2", "encoder", "arcface", "style"; files whose kind
    cannot be told are offered to every loader, which then says what is wrong with them), then
    the known files of that kind that are not there yet (choosing one says how to get it)."""
    present = []
    for name, path in _present_files(folder):
        if kind is None:
            present.append(name)
            continue
        try:
            k = weights.file_kind(path)
        except Exception:
            k = None
        if k is None or k == kind:
            present.append(name)
    have = {Path(n).name for n in present}
    fetchable = sorted(
        e.name
        for e in weights.REGISTRY.values()
        if (kind is None or e.kind == kind) and e.folder == folder and e.name not in have
    )
    return present + fetchable


def resolve_model(node: str, widget: str, name: str, folder: str = FOLDER_MODELS) -> Path:
    """The full path of ``name`` in the model folders, for the loader ``node``'s ``widget``.

    ``name`` is a name inside the folders, as the widget lists it (`jojogan.weights.find`):
    ``..``, absolute paths, control characters, names over 255 characters and links to files
    outside the folders are a ValueError naming node and widget (a folder that is itself a
    link, e.g. a ``models/`` on another disk, is fine). A missing file is a ValueError with the
    pack's message (the file, its source, the folder and the exact download command), or, when
    ``$JOJOGAN_AUTO_DOWNLOAD`` is 1 and the name is a known file's, it is downloaded first."""
    if isinstance(name, str) and not name.strip():
        raise ValueError(f"{node}: '{widget}' is empty; choose a model file")
    dirs = model_dirs(folder)
    try:
        found = weights.find(name, dirs)
    except weights.ModelNameError as e:
        raise ValueError(f"{node}: '{widget}': {e}") from None
    if found is not None:
        return found
    if os.environ.get(AUTO_DOWNLOAD_ENV) == "1" and name in weights.REGISTRY:
        log.info("JoJoGAN: %s is missing; downloading it into %s", name, dirs[0])
        try:
            return weights.download(name, dirs[0])
        except weights.WeightsError as e:
            raise ValueError(f"{node}: '{widget}': {e}") from None
    raise ValueError(f"{node}: '{widget}': " + weights.missing_file_message(name, dirs))


def output_model_path(
    node: str,
    widget: str,
    prefix: str,
    folder: str = FOLDER_MODELS,
    suffix: str = ".safetensors",
) -> Path:
    """Where a saving node writes: ``<first model folder>/<prefix>_00001<suffix>``, the first
    counter not taken, its subfolders created. ``prefix`` follows the loaders' rules
    (`jojogan.weights.check_model_name`; ``\\`` counts as ``/``) and the file must land inside
    the folder (a subfolder that is a link leading out of it is refused); an unusable folder
    (read-only, a name too long) is a ValueError naming node and widget, saying what to do."""
    text = prefix.strip().replace("\\", "/") if isinstance(prefix, str) else prefix
    try:
        weights.check_model_name(text)
    except weights.ModelNameError as e:
        raise ValueError(
            f"{node}: '{widget}' must be a relative name like 'styles/my_style': {e}"
        ) from None
    root = model_dirs(folder)[0]
    first = root / f"{text}_{1:05d}{suffix}"
    if max(len(part.encode()) for part in Path(f"{text}_{1:05d}{suffix}").parts) > NAME_MAX:
        raise ValueError(
            f"{node}: '{widget}': {text[:40]!r}... is too long for a file name ({NAME_MAX} bytes "
            f"per folder or file, counter and {suffix} included); choose a shorter name"
        )
    if not weights.inside(first.parent, [root]):
        raise ValueError(
            f"{node}: '{widget}': {text[:40]!r} leads out of {root} (a subfolder there is a "
            "link to elsewhere); choose another name"
        )
    try:
        first.parent.mkdir(parents=True, exist_ok=True)
        for i in range(1, 100_000):
            cand = root / f"{text}_{i:05d}{suffix}"
            if not os.path.lexists(cand):
                return cand
    except OSError as e:
        why = os.strerror(e.errno) if e.errno else type(e).__name__
        if e.errno == errno.ENAMETOOLONG:
            what = "choose a shorter name"
        else:
            what = "choose a folder you can write to, or free some space"
        raise ValueError(
            f"{node}: '{widget}': cannot create {text[:40]!r} in {root} ({why}); {what}"
        ) from None
    raise ValueError(
        f"{node}: '{widget}': {text[:40]!r} has 99999 files already in {root}; choose another name"
    )


# --------------------------------------------------------------------------------- example inputs


def install_example_inputs(source: Path = EXAMPLE_INPUTS) -> list[str]:
    """Copy the pack's example inputs into ComfyUI's input folder, so LoadImage/LoadVideo offer
    them to the bundled workflows. A file that exists under the same name is left alone (never
    overwritten). Returns the names copied; outside ComfyUI nothing happens."""
    fp = _comfy("folder_paths")
    if fp is None or not source.is_dir():
        return []
    try:
        target = Path(fp.get_input_directory())
    except Exception:
        return []
    copied = []
    for src in sorted(source.iterdir()):
        if src.suffix.lower() not in EXAMPLE_INPUT_EXTENSIONS or not src.is_file():
            continue
        dst = target / src.name
        if dst.exists():
            continue
        try:
            target.mkdir(parents=True, exist_ok=True)
            tmp = target / f".{src.name}.jojogan-tmp"
            shutil.copyfile(src, tmp)
            os.replace(tmp, dst)
            copied.append(src.name)
        except OSError as e:
            log.warning("JoJoGAN: could not copy the example input %s to %s (%s)", src, target, e)
    if copied:
        log.info("JoJoGAN: example inputs copied to %s: %s", target, ", ".join(copied))
    return copied


# ------------------------------------------------------------------------------------ model cache


CACHE_BUDGET_ENV = "JOJOGAN_MODEL_CACHE_GB"
DEFAULT_CACHE_BYTES = 4 << 30  # or a quarter of the machine's memory, whichever is less
_warned_budget: list[str] = []


def _total_memory() -> int | None:
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):  # Windows, or not reported
        return None


def cache_budget_bytes() -> int:
    """The model cache's budget in bytes: ``$JOJOGAN_MODEL_CACHE_GB`` (GiB; 0 turns the cache
    off), else 4 GiB or a quarter of the machine's memory, whichever is less."""
    raw = os.environ.get(CACHE_BUDGET_ENV, "").strip()
    if raw:
        try:
            gb = float(raw)
        except ValueError:
            gb = float("nan")
        if 0 <= gb < 1e6:
            return int(gb * (1 << 30))
        if raw not in _warned_budget:
            _warned_budget.append(raw)
            log.warning(
                "JoJoGAN: %s=%r is not a number of GiB >= 0; the default budget is used",
                CACHE_BUDGET_ENV,
                raw[:40],
            )
    total = _total_memory()
    return min(DEFAULT_CACHE_BYTES, total // 4) if total else DEFAULT_CACHE_BYTES


def value_bytes(value: Any) -> int:
    """Bytes of the tensors a cached value holds: modules (parameters and buffers), tensors, and
    the containers and plain objects (sockets) around them; each storage counted once."""
    storages: set[tuple[str, int]] = set()
    seen: set[int] = set()
    total = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        obj, depth = stack.pop()
        if id(obj) in seen or depth > 8 or obj is None or isinstance(obj, str | bytes | int):
            continue
        seen.add(id(obj))
        if isinstance(obj, torch.Tensor):
            if obj.device.type != "meta":
                st = obj.untyped_storage()
                key = (str(st.device), st.data_ptr())
                if key not in storages:
                    storages.add(key)
                    total += st.nbytes()
        elif isinstance(obj, nn.Module):
            stack += [(t, depth + 1) for t in (*obj.parameters(), *obj.buffers())]
        elif isinstance(obj, list | tuple | set | frozenset):
            stack += [(v, depth + 1) for v in obj]
        elif isinstance(obj, dict):
            stack += [(v, depth + 1) for v in obj.values()]
        elif hasattr(obj, "__dict__") and not isinstance(obj, type):
            stack += [(v, depth + 1) for v in vars(obj).values()]
    return total


class ModelCache:
    """Loaded models, once per process, keyed by the file's path, mtime and size (and options).

    Bounded by bytes: the tensors of the values held (:func:`value_bytes`) stay within the
    budget (``max_bytes``, else :func:`cache_budget_bytes`, read at each insertion); the least
    recently used go first. A value larger than the budget is returned but not kept. Dropping
    an entry frees its memory once no node output holds the model any more."""

    def __init__(self, max_bytes: int | None = None) -> None:
        self._items: OrderedDict[tuple, tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.max_bytes = max_bytes

    @staticmethod
    def file_key(path: str | os.PathLike) -> tuple:
        st = os.stat(path)
        return (os.path.realpath(path), st.st_mtime_ns, st.st_size)

    def budget(self) -> int:
        return cache_budget_bytes() if self.max_bytes is None else max(int(self.max_bytes), 0)

    def get(self, key: tuple, load: Callable[[], Any]) -> Any:
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
                return hit[0]
        value = load()
        size = value_bytes(value)
        with self._lock:
            budget = self.budget()
            old = self._items.pop(key, None)  # another thread loaded it meanwhile
            if old is not None:
                self._bytes -= old[1]
            if size <= budget:
                self._items[key] = (value, size)
                self._bytes += size
            self._shrink(budget)
        return value

    def _shrink(self, limit: int) -> int:
        freed = 0
        while self._items and self._bytes > limit:
            _key, (_value, size) = self._items.popitem(last=False)
            self._bytes -= size
            freed += size
        return freed

    def release(self, nbytes: int | None = None) -> int:
        """Drop the least recently used entries until ``nbytes`` are dropped (all of them when
        None); returns the bytes dropped."""
        with self._lock:
            limit = 0 if nbytes is None else max(self._bytes - int(nbytes), 0)
            return self._shrink(limit)

    @property
    def nbytes(self) -> int:
        """Bytes of the tensors held now."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> int:
        with self._lock:
            n = len(self._items)
            self._items.clear()
            self._bytes = 0
        return n


CACHE = ModelCache()


def clear_cache() -> int:
    """Drop every cached model (and free accelerator memory); returns how many were dropped."""
    n = CACHE.clear()
    detect._CACHE.clear()  # the face detectors built by jojogan.faces.get_detector
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return n


def load_toy_style_modules(env: Mapping[str, str] | None = None) -> list[str]:
    """Run the style files listed in ``$JOJOGAN_TOY_STYLES`` (paths separated by ``os.pathsep``;
    `jojogan.toy.render.load_style_module`) and return the styles they added, for the Toy
    Render node. The list comes from whoever starts the server: no workflow can name a file to
    run. A file that cannot be loaded is a warning naming it (nothing of it registered); the
    others still load and the pack still loads."""
    env = os.environ if env is None else env
    names: list[str] = []
    for path in filter(None, (p.strip() for p in env.get(TOY_STYLES_ENV, "").split(os.pathsep))):
        try:
            names += load_style_module(path)
        except ValueError as e:
            warnings.warn(f"JoJoGAN nodes: {TOY_STYLES_ENV}: {e}", stacklevel=2)
    return names
