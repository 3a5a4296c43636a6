"""``python -m jojogan demo``'s pipeline: `run_demo` loads the toy model, runs
`toy_style_quality` with progress lines, writes the labelled PNG grid (`_labeled_grid`) and prints
the score table and one line explaining it. The arguments are parsed in jojogan.__main__."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor, nn

from ..checkpoints import atomic_writer
from ..devices import pick_device
from . import ToyWeightsMissing
from .flags import load_style_modules, settings_from_args
from .model import load_toy
from .quality import (
    OPTIMIZE_STEPS,
    PHASE_FINETUNE,
    PHASE_INPUTS,
    PHASE_REFERENCE,
    PHASE_SCORE,
    PHASE_STYLIZE,
    toy_style_quality,
)
from .recipes import _describe
from .render import style_names

# The demo's unseen faces (grid rows): 4 keeps `python -m jojogan demo` under a minute on two
# shared CPU cores (37-45 s on 1 thread, load 1.6-2.1). Most of its time is the inputs' 300
# refinement steps, which grow with n: 24 s for 4 faces, about 41 s for 6 on 1 thread.
DEMO_FACES = 4


def _to_uint8(x: Tensor) -> np.ndarray:
    return (
        ((x.detach().float().clamp(-1, 1) + 1) * 127.5)
        .round()
        .byte()
        .permute(0, 2, 3, 1)
        .cpu()
        .numpy()
    )


def _grid(rows: list[list[Tensor]], scale: int = 2, pad: int = 2) -> np.ndarray:
    """rows of [3,H,W] tensors (None = blank) -> uint8 [H',W',3]."""
    h = w = max(t.shape[-1] for r in rows for t in r if t is not None) * scale
    ncol = max(len(r) for r in rows)
    out = np.full((len(rows) * (h + pad) + pad, ncol * (w + pad) + pad, 3), 255, np.uint8)
    for i, r in enumerate(rows):
        for j, t in enumerate(r):
            if t is None:
                continue
            a = _to_uint8(t[None])[0].repeat(scale, 0).repeat(scale, 1)
            y, x = pad + i * (h + pad), pad + j * (w + pad)
            out[y : y + a.shape[0], x : x + a.shape[1]] = a
    return out


def _save_png(arr: np.ndarray, path: Path) -> None:
    with atomic_writer(path) as tmp:
        Image.fromarray(arr).save(tmp, format="PNG")


def _font(size: int) -> Any:
    return ImageFont.load_default(size=size)


@dataclass(frozen=True)
class GridGeometry:
    """Where `_labeled_grid` puts things: column lefts ``xs``, row tops ``ys`` (the header band
    is everything above ys[0]), the image size, the cell's side and the header font size."""

    xs: tuple[int, ...]
    ys: tuple[int, ...]
    width: int
    height: int
    cell: int
    font_size: int


def _grid_geometry(
    cols: int,
    rows: int,
    image_size: int,
    *,
    title: bool,
    scale: int,
    pad: int,
    breaks: Sequence[int],
) -> GridGeometry:
    cell = image_size * scale
    font_size = max(12, cell // 12)
    line = font_size + 8
    head_h = pad + (line + 4 if title else 0) + line + pad
    xs, x = [], pad
    for j in range(cols):
        x += 3 * pad if j in breaks else 0
        xs.append(x)
        x += cell + pad
    ys = tuple(head_h + i * (cell + pad) for i in range(rows))
    return GridGeometry(tuple(xs), ys, x, ys[-1] + cell + pad, cell, font_size)


def _labeled_grid(
    headers: Sequence[str],
    rows: list[list[Tensor]],
    *,
    aside: Tensor | None = None,
    title: str = "",
    scale: int = 3,
    pad: int = 6,
    breaks: Sequence[int] = (),
) -> np.ndarray:
    """A grid with a header band, uint8 [H,W,3]: ``rows`` of [3,h,w] tensors (one row per face),
    upscaled ``scale`` x (nearest: the toy's pixels stay sharp); ``aside`` (the reference) once in
    its own first column, vertically centred beside the rows; ``headers`` name the columns (the
    aside's first when there is one); ``title`` is a line above them; a wider gap, with a thin
    rule, goes before each column index in ``breaks`` (indices into ``headers``). Positions:
    `_grid_geometry`."""
    cols = len(headers)
    if not rows or len({len(r) for r in rows}) != 1 or len(rows[0]) + (aside is not None) != cols:
        raise ValueError("_labeled_grid: every row needs one image per header")
    size = max(t.shape[-1] for r in rows for t in r)
    geo = _grid_geometry(
        cols, len(rows), size, title=bool(title), scale=scale, pad=pad, breaks=breaks
    )
    im = Image.new("RGB", (geo.width, geo.height), (255, 255, 255))
    draw = ImageDraw.Draw(im)
    head_font, title_font = _font(geo.font_size), _font(geo.font_size + 1)
    head_y = geo.ys[0] - pad - (geo.font_size + 8)
    if title:
        draw.text((pad, pad), title, fill=(0, 0, 0), font=title_font)
    for j, text in enumerate(headers):
        tw = draw.textlength(text, font=head_font)
        x = geo.xs[j] + (geo.cell - tw) / 2
        draw.text((x, head_y), text, fill=(40, 40, 40), font=head_font)
    for j in breaks:  # a thin rule in each wide gap
        gx = geo.xs[j] - 2 * pad
        draw.line([(gx, head_y), (gx, geo.height - pad)], fill=(200, 200, 200), width=1)

    def paste(t: Tensor, x0: int, y0: int) -> None:
        a = _to_uint8(t[None])[0].repeat(scale, 0).repeat(scale, 1)
        im.paste(Image.fromarray(a), (x0, y0))

    first = 0 if aside is None else 1
    if aside is not None:
        body = geo.ys[-1] + geo.cell - geo.ys[0]
        paste(aside, geo.xs[0], geo.ys[0] + (body - geo.cell) // 2)
    for i, r in enumerate(rows):
        for j, t in enumerate(r):
            paste(t, geo.xs[first + j], geo.ys[i])
    return np.asarray(im).copy()


def _fraction(a: float) -> str:
    f = Fraction(a).limit_denominator(12)
    return str(f.numerator) if f.denominator == 1 else f"{f.numerator}/{f.denominator}"


def _fmt(m: dict[str, Any]) -> str:
    """The demo's score table: d of the outputs and of the two baselines (the benchmark's
    other measures too when `toy_style_quality` made them)."""
    best = min(m["d_input"], m["d_reference"])
    cols = [
        ("style", m["style"]),
        ("faces", str(m["n_unseen"])),
        ("d(stylized, truth)", f"{m['d_stylized']:.3f}"),
        ("d(input unchanged, truth)", f"{m['d_input']:.3f}"),
        ("d(reference copy, truth)", f"{m['d_reference']:.3f}"),
        (
            "beats both",
            f"{'yes' if m['d_stylized'] < best else 'NO'} "
            f"(x{best / max(m['d_stylized'], 1e-9):.2f})",
        ),
    ]
    if "d_warped_reference" in m:
        cols += [
            ("d(warped reference, truth)", f"{m['d_warped_reference']:.3f}"),
            ("colour-copy bound", f"{max(m['d_colour_copy_bound'], 0.0):.3f}"),
            ("identity copy", f"{m['d_identity_copy']:.3f}"),
        ]
    if "gaze_err_vs_input" in m:
        cols += [
            ("gaze err vs input", f"{m['gaze_err_vs_input']:.3f}"),
            ("gaze err vs reference", f"{m['gaze_err_vs_reference']:.3f}"),
            ("gaze floor", f"{m['gaze_err_floor']:.3f}"),
        ]
    cols.append(("reference inversion + fine-tune s", f"{m['finetune_seconds']:.1f}"))
    return "\n".join(
        [
            "| " + " | ".join(h for h, _ in cols) + " |",
            "|" + "---|" * len(cols),
            "| " + " | ".join(v for _, v in cols) + " |",
        ]
    )


def _explain(m: dict[str, Any]) -> str:
    """One line saying what d is and how the outputs compare with the two baselines."""
    ds, di, dr = m["d_stylized"], m["d_input"], m["d_reference"]
    better = "input unchanged" if di <= dr else "reference copy"
    best = min(di, dr)
    verdict = (
        f"{best / max(ds, 1e-9):.2f}x closer to the truth than the better baseline ({better})"
        if ds < best
        else f"no closer to the truth than the {better} baseline"
    )
    return (
        f"d = how far an image is from the truth (the input's face drawn in {m['style']} by the "
        "toy renderer): (1 - edge-structure similarity) + palette distance, 0 = identical, lower "
        f"is better. The stylized outputs (intensity 1) score {ds:.3f}; leaving the input "
        f"unchanged scores {di:.3f} and copying the reference {dr:.3f}: the outputs are {verdict}."
    )


def _inversion_text(enc: nn.Module | None, refine: int, edge: int, toward: str) -> str:
    """How `invert_toy` inverts with these step counts, in words."""
    parts = (
        ["the encoder"]
        if enc is not None
        else [f"{OPTIMIZE_STEPS} optimisation steps from the mean code"]
    )
    if enc is not None and refine:
        parts.append(f"{refine} steps refining toward {toward}")
    if edge:
        parts.append(f"{edge} steps matching its edges")
    return ", then ".join(parts)


_TORCH_THREADS = torch.get_num_threads()  # torch's default (the cores, or OMP_NUM_THREADS)


def demo_threads() -> int:
    """The demo's default torch thread count: OMP_NUM_THREADS when it is set, else every core
    but one (at least 1). A thread pool that counts on every core stalls when another job takes
    one: on this project's 2 shared cores, with a ComfyUI server busy beside it, the demo took
    233 s on 2 threads and 57 s on 1 (27 s and 35 s with the cores idle)."""
    if os.environ.get("OMP_NUM_THREADS"):
        return _TORCH_THREADS
    return max(1, _TORCH_THREADS - 1)


def run_demo(args: argparse.Namespace) -> int:
    t_start = time.perf_counter()

    def say(text: str) -> None:
        print(f"[{time.perf_counter() - t_start:5.1f} s] {text}", flush=True)

    torch.set_num_threads(args.threads or demo_threads())
    if not load_style_modules(args.style_module, "demo"):
        return 2
    styles = style_names(exclude=("photo",))
    if args.style not in styles:
        print(
            f"demo: unknown style {args.style!r}; choose one of {', '.join(styles)}",
            file=sys.stderr,
        )
        return 2
    out_path = Path(args.out)
    if not out_path.parent.is_dir():
        print(f"demo: the folder {out_path.parent} does not exist", file=sys.stderr)
        return 2
    try:
        settings_from_args(None, args)
    except ValueError as e:
        print(f"demo: {e}", file=sys.stderr)
        return 2
    device = pick_device(args.device)
    say("loading the toy model")
    try:
        g, d, enc, _avg, _cfg = load_toy(args.toy_dir, device)
    except ToyWeightsMissing as e:
        print(f"demo: {e}", file=sys.stderr)
        return 1
    try:
        settings, inversion = settings_from_args(g, args, d)
    except ValueError as e:
        print(f"demo: {e}", file=sys.stderr)
        return 2
    say(
        f"toy model: {g.size} px, {g.n_latent} W+ layers, device {device}, "
        f"{torch.get_num_threads()} thread{'s' if torch.get_num_threads() > 1 else ''}"
    )
    print(f"recipe {args.recipe}: {_describe(settings, inversion)}")
    intens = (1 / 3, 2 / 3, 1.0)
    levels = ", ".join(_fraction(a) for a in intens)
    full = args.full_score
    starts = {
        PHASE_REFERENCE: f"inverting the {args.style} reference: "
        + _inversion_text(enc, inversion.refine_steps, inversion.reference_edge_steps, "it"),
        PHASE_FINETUNE: f"fine-tuning the generator on the reference: {settings.steps} steps",
        PHASE_INPUTS: f"inverting the {args.n} unseen input photos: "
        + _inversion_text(
            enc, inversion.refine_steps + inversion.input_refine_steps, 0, "each photo"
        ),
        PHASE_STYLIZE: f"stylizing the {args.n} inputs at intensity {levels}",
        PHASE_SCORE: "scoring the outputs against the truth"
        + (", with the benchmark's other baselines" if full else "")
        + (" and gaze" if full and not args.no_gaze else ""),
    }

    def steps_due(step: int, total: int) -> bool:
        return step == 1 or step % 50 == 0 or step == total

    def on_phase(phase: str, step: int, total: int, loss: float | None) -> None:
        if step == 0:
            say(starts[phase])
        elif steps_due(step, total):
            say(f"  {phase} step {step}/{total}  loss {loss:.4f}")

    def on_finetune(step: int, loss: float, preview: Any) -> None:
        if steps_due(step, settings.steps):
            say(f"  fine-tune step {step}/{settings.steps}  loss {loss:.4f}")

    m = toy_style_quality(
        g,
        d,
        enc,
        args.style,
        n_unseen=args.n,
        settings=settings,
        seed=args.seed,
        intensities=intens,
        inversion=inversion,
        measure_gaze=full and not args.no_gaze,
        extra_baselines=full,
        callback=on_finetune,
        progress=on_phase,
    )
    im = m["images"]
    headers = [f"reference ({args.style})", "input photo"]
    headers += [f"style {_fraction(a)}" for a in intens] + ["truth (renderer)"]
    rows = [
        [im["photos"][i], *(im["stylized"][a][i] for a in intens), im["truth"][i]]
        for i in range(args.n)
    ]
    title = (
        f"JoJoGAN on toy faces: one {args.style} reference, {args.n} unseen faces "
        f"(recipe {args.recipe}, seed {args.seed})"
    )
    grid = _labeled_grid(
        headers, rows, aside=im["reference"][0], title=title, breaks=(1, len(headers) - 1)
    )
    _save_png(grid, out_path)
    say(
        f"wrote {out_path} ({grid.shape[1]} x {grid.shape[0]} px): one row per unseen face; "
        f"columns: the {args.style} reference (once, left), the input photo, the stylized output "
        f"at intensity {levels}, and the truth (the input drawn in {args.style} by the toy "
        "renderer)"
    )
    print(_fmt(m))
    print(_explain(m))
    say("done")
    return 0
