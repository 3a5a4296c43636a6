"""Known pretrained files: where they come from, how to check them, and a resumable download.

The registry holds one small :class:`WeightFile` per file (name, kind, folder, public sources,
approximate size, expected layout, sha256 when known). None of these files could be downloaded
where this library was written, so **no sha256 is known yet** (``sha256=None``) and sizes are
approximate (from parameter counts); verification checks the size floor and the structure (the
project's safe loader must read the file and find the expected layout) instead.

:func:`download` fetches a file with progress, resumes an interrupted download (HTTP ``Range`` on
``<name>.part`` in the target folder), refuses HTML pages (Google Drive quota/confirmation pages),
verifies, and moves the file into place atomically. Offline, it raises :class:`OfflineError`
naming the file, the folder to put it in and where it can be found.

Folders: inside ComfyUI the node layer passes ``models/jojogan`` / ``models/facedetection``;
outside it :func:`cache_dir` is ``$JOJOGAN_CACHE/<folder>`` or ``~/.cache/jojogan/<folder>``.

    python -m jojogan.weights list
    python -m jojogan.weights download stylegan2-ffhq-config-f.pt [--dir DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .checkpoints import fsync_dir

__all__ = [
    "REGISTRY",
    "OfflineError",
    "Source",
    "WeightFile",
    "WeightsError",
    "cache_dir",
    "download",
    "find",
    "missing_file_message",
    "verify",
]

MB = 1 << 20
Progress = Callable[[int, "int | None"], object]


class WeightsError(RuntimeError):
    """A download or verification failed; the message names the file and what to do."""


class OfflineError(WeightsError):
    """The file is missing and cannot be fetched (no network)."""


@dataclass(frozen=True)
class Source:
    """Where a file can be found. kind: "hf" (ref = "owner/repo:path/in/repo"), "gdrive"
    (ref = file id; often answers with a quota page), "url" (ref = a direct URL)."""

    kind: str
    ref: str
    note: str = ""

    def url(self) -> str:
        if self.kind == "hf":
            repo, _, path = self.ref.partition(":")
            return f"https://huggingface.co/{repo}/resolve/main/{path}"
        if self.kind == "gdrive":
            return f"https://drive.google.com/uc?export=download&id={self.ref}"
        return self.ref

    def describe(self) -> str:
        if self.kind == "hf":
            repo, _, path = self.ref.partition(":")
            text = f"Hugging Face {repo} (file {path})"
        elif self.kind == "gdrive":
            text = f"Google Drive id {self.ref}"
        else:
            text = self.ref
        return f"{text} [{self.note}]" if self.note else text


@dataclass(frozen=True)
class WeightFile:
    """One known file. approx_size: bytes (estimated from parameter counts unless stated);
    min_size: smaller files are refused (truncated downloads). layout: the
    `jojogan.checkpoints.detect_layout` names accepted (None: any file the safe loader reads).
    sha256: None where unknown (all of them so far)."""

    name: str
    kind: str
    description: str
    sources: tuple[Source, ...]
    folder: str = "jojogan"
    approx_size: int | None = None
    min_size: int = 1 * MB
    layout: tuple[str, ...] | None = None
    sha256: str | None = None
    extra: dict = field(default_factory=dict, compare=False)


_JOJO = "JoJoGAN repository (stylize.ipynb drive_ids)"

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
                    "mirror used by the JoJoGAN Space; file name not confirmed here",
                ),
                Source("gdrive", "1Yr7KuD959btpmcKGAUsbAk5rPjX2MytK", _JOJO),
                Source("gdrive", "1EM87UquaoQmk17Q8d5kYIAHqu0dkYqdT", "e4e README"),
            ),
            approx_size=364 * MB,  # g_ema + g (30.4 M) and d (22.5 M) params, float32
            min_size=100 * MB,
            layout=("rosinality", "rosinality-training"),
        ),
        WeightFile(
            "e4e_ffhq_encode.pt",
            "encoder",
            "e4e FFHQ encoder (Tov et al. 2021) into W+ of the FFHQ generator",
            (
                Source("hf", "akhaliq/JoJoGAN_e4e_ffhq_encode:e4e_ffhq_encode.pt", "JoJoGAN Space"),
                Source(
                    "hf",
                    "AIRI-Institute/HairFastGAN:pretrained_models/encoder4editing/e4e_ffhq_encode.pt",
                ),
                Source("gdrive", "1o6ijA3PkcewZvwJJ73dJ0fxhndn0nnh7", _JOJO),
                Source("gdrive", "1cUv_reLE6k3604or78EranS7XzuVMWeO", "e4e README"),
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
                Source("gdrive", "1nbxCIVw9H3YnQsoIPykNEFwWJnHVHlVd", _JOJO),
                Source("gdrive", "1sw6I2lRIB0MpuJkpc8F5BJiSZrc0hjfE", "ReStyle README"),
            ),
            approx_size=None,
            min_size=100 * MB,
            layout=("psp-encoder",),
        ),
        WeightFile(
            "model_ir_se50.pth",
            "arcface",
            "ArcFace IR-SE50 (TreB1eN InsightFace_Pytorch) for the identity loss",
            (Source("gdrive", "1KW7bjndL3QG3sxBbZxreGHigcCCpsDgn", "pSp/e4e README"),),
            approx_size=175 * MB,  # 43.8 M params
            min_size=50 * MB,
            layout=("arcface",),
        ),
        WeightFile(
            "detection_Resnet50_Final.pth",
            "detector",
            "RetinaFace-ResNet50 face detector (facexlib)",
            (
                Source(
                    "url",
                    "https://github.com/xinntao/facexlib/releases/download/v0.1.0/"
                    "detection_Resnet50_Final.pth",
                    "facexlib release v0.1.0",
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
        files.append(
            WeightFile(
                f"{style}.pt",
                "style",
                f"released JoJoGAN style '{style}'{colour}, {{'g': state_dict}} of the FFHQ "
                "generator",
                (Source("gdrive", gid, _JOJO),),
                approx_size=127 * MB,  # FACTS.md: ~127 MB each
                min_size=60 * MB,
                layout=("jojogan-style",),
            )
        )
    return {f.name: f for f in files}


REGISTRY: dict[str, WeightFile] = _registry()


# ------------------------------------------------------------------------------------- folders


def cache_dir(folder: str = "jojogan") -> Path:
    """``$JOJOGAN_CACHE/<folder>`` or ``~/.cache/jojogan/<folder>`` (not created)."""
    env = os.environ.get("JOJOGAN_CACHE")
    root = Path(env) if env else Path.home() / ".cache" / "jojogan"
    return root / folder


def _entry(name: str) -> WeightFile | None:
    return REGISTRY.get(Path(name).name)


def find(name: str, dirs: Iterable[str | os.PathLike] | None = None) -> Path | None:
    """The first existing ``dir/name`` in ``dirs`` (default: the cache folder), or None."""
    entry = _entry(name)
    folder = entry.folder if entry else "jojogan"
    for d in dirs if dirs is not None else [cache_dir(folder)]:
        p = Path(d) / name
        if p.is_file():
            return p
    return None


def missing_file_message(
    name: str | WeightFile, dirs: Sequence[str | os.PathLike] | None = None
) -> str:
    """Which file, where to put it, and where it can be found."""
    entry = name if isinstance(name, WeightFile) else _entry(name)
    name = entry.name if entry is not None else str(name)
    folder = entry.folder if entry else "jojogan"
    where = [str(d) for d in (dirs if dirs else [cache_dir(folder)])]
    msg = f"model file '{name}' not found. Put it in {' or '.join(where)}"
    msg += f" (in ComfyUI: models/{folder}/)."
    if entry is None:
        known = ", ".join(sorted(REGISTRY))
        return msg + f" It is not a file this pack knows; known files: {known}."
    sources = "; ".join(s.describe() for s in entry.sources)
    size = f", about {entry.approx_size // MB} MB" if entry.approx_size else ""
    return (
        msg + f" It is the {entry.description}{size}. Sources: {sources}. Or run "
        f"`python -m jojogan.weights download {entry.name}` on a machine with internet access."
    )


# ---------------------------------------------------------------------------------- verification


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(4 * MB), b""):
            h.update(block)
    return h.hexdigest()


def verify(path: str | os.PathLike, entry: WeightFile | str, *, structure: bool = True) -> None:
    """Check a file against its registry entry: not an HTML/text page, at least ``min_size``
    bytes, the sha256 when known, and (``structure``) readable by the safe loader with the
    expected layout. Raises :class:`WeightsError` naming the file and the problem."""
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
        got = _sha256(p)
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


# -------------------------------------------------------------------------------------- download


def _fetch(url: str, part: Path, progress: Progress | None, timeout: float, chunk: int) -> None:
    """Append to ``part`` from ``url`` (Range resume when it exists)."""
    have = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"User-Agent": "jojogan-weights/1"})
    if have:
        req.add_header("Range", f"bytes={have}-")
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # the .part is already complete
            return
        raise
    with resp:
        status = getattr(resp, "status", 200)
        if have and status != 206:  # the server ignored Range: start again
            have = 0
        length = resp.headers.get("Content-Length")
        total = have + int(length) if length is not None and length.isdigit() else None
        mode = "ab" if have else "wb"
        done = have
        with open(part, mode) as f:
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


def download(
    name: str | WeightFile,
    dest_dir: str | os.PathLike | None = None,
    *,
    urls: Sequence[str] | None = None,
    progress: Progress | None = None,
    timeout: float = 30.0,
    chunk: int = 1 * MB,
    structure: bool = True,
) -> Path:
    """Download a registry file (a name, or a :class:`WeightFile`) into ``dest_dir`` (default:
    its cache folder) and return its path. Tries ``urls`` (default: the entry's sources, in
    order); resumes from ``<name>.part``; verifies (:func:`verify`) before an atomic
    ``os.replace``. An existing, verified file is returned as is. Raises :class:`OfflineError`
    when no source is reachable, :class:`WeightsError` when every reachable source gave a bad
    file."""
    entry = name if isinstance(name, WeightFile) else _entry(name)
    if entry is None:
        raise WeightsError(missing_file_message(str(name)))
    d = Path(dest_dir) if dest_dir is not None else cache_dir(entry.folder)
    target = d / entry.name
    if target.is_file():
        verify(target, entry, structure=structure)
        return target
    d.mkdir(parents=True, exist_ok=True)
    part = d / (entry.name + ".part")
    candidates = list(urls) if urls is not None else [s.url() for s in entry.sources]
    errors: list[str] = []
    offline = True
    for url in candidates:
        try:
            _fetch(url, part, progress, timeout, chunk)
        except (urllib.error.URLError, OSError, TimeoutError) as e:
            if isinstance(e, urllib.error.HTTPError):
                offline = False
                errors.append(f"{url}: HTTP {e.code}")
            else:
                reason = getattr(e, "reason", e)
                errors.append(f"{url}: {reason}")
            continue
        except WeightsError as e:
            offline = False
            errors.append(str(e))
            continue
        offline = False
        try:
            verify(part, entry, structure=structure)
        except WeightsError as e:
            errors.append(str(e))
            part.unlink(missing_ok=True)  # a bad file is never resumed
            continue
        os.replace(part, target)
        fsync_dir(d)
        return target
    detail = " | ".join(errors)
    if offline:
        raise OfflineError(
            f"cannot download {entry.name} (no network?): {detail}. "
            + missing_file_message(entry, [d])
        )
    raise WeightsError(f"could not get a valid {entry.name}: {detail}")


# ------------------------------------------------------------------------------------------ CLI


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m jojogan.weights", description=__doc__.split("\n")[0]
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="list the known files and their sources")
    dl = sub.add_parser("download", help="download (resume, verify) one or more files")
    dl.add_argument("names", nargs="+")
    dl.add_argument("--dir", default=None, help="target folder (default: the cache folder)")
    args = ap.parse_args(argv)
    if args.cmd == "list":
        for e in REGISTRY.values():
            size = f"~{e.approx_size // MB} MB" if e.approx_size else "size unknown"
            print(f"{e.name}  [{e.kind}, models/{e.folder}, {size}, sha256 unknown]")
            for s in e.sources:
                print(f"    {s.describe()}")
        return 0
    for name in args.names:

        def show(done: int, total: int | None, name: str = name) -> None:
            t = f"/{total // MB}" if total else ""
            print(f"\r{name}: {done // MB}{t} MB", end="", file=sys.stderr, flush=True)

        try:
            path = download(name, args.dir, progress=show)
        except WeightsError as e:
            print(f"\nerror: {e}", file=sys.stderr)
            return 1
        print(f"\n{path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
