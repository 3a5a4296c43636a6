"""Command line: ``python -m jojogan demo`` -- the whole JoJoGAN pipeline on the toy-faces model.

    python -m jojogan demo                       # cartoon reference, 300 steps, jojogan_demo.png
    python -m jojogan demo --style sketch --steps 200 --out sketch.png
    python -m jojogan demo --toy-dir runs/toy    # a toy model trained with jojogan.toy.train

The demo renders a toy reference face in a non-photo style, inverts it, fine-tunes the toy
generator on its paired set (Eq. 1-2), stylizes unseen photo-style toy faces at three intensities
(feature interpolation, Sec. 4) and writes one PNG grid (rows: input photo, its inversion,
intensities 1/3, 2/3, 1, the ground truth render in the style) plus the toy-domain quality score
(`toy_style_quality`, also used by benchmarks/bench_toy_quality.py). No download: it needs the
toy model's weights, shipped in jojogan/toy/weights/ (or trained by `python -m jojogan.toy.train`).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from jojogan.toy import GENERATOR_FILE, ToyWeightsMissing, find_weights_dir

__all__ = [
    "ToyModelMissing",
    "d_style",
    "find_toy_dir",
    "load_toy_model",
    "main",
    "toy_style_quality",
]

DEFAULT_STYLES = ("cartoon", "sketch", "ink")

# The toy model is found by one function (jojogan.toy); these names are kept for the callers.
TOY_FILE = GENERATOR_FILE
ToyModelMissing = ToyWeightsMissing
find_toy_dir = find_weights_dir


def load_toy_model(
    toy_dir: str | os.PathLike | None = None, device: str | torch.device = "cpu"
) -> tuple[nn.Module, nn.Module, nn.Module | None, Any]:
    """(generator, discriminator, encoder or None, config) of the toy model (see find_toy_dir)."""
    from jojogan.toy.train import load_toy

    p = find_toy_dir(toy_dir)
    g, d, enc, _latent_avg, cfg = load_toy(p, device)
    if enc is not None and not hasattr(enc, "input_size"):
        enc.input_size = int(g.size)  # jojogan.invert resizes to the encoder's input size
    return g, d, enc, cfg


def invert_toy(
    images: Tensor, g: nn.Module, d: nn.Module, enc: nn.Module | None, steps: int = 150
) -> Tensor:
    """W+ codes for toy images: the toy encoder when there is one, else optimisation."""
    from jojogan.invert import invert

    if enc is not None:
        return invert(images, g, "encoder", encoder=enc)
    return invert(images, g, "optimize", discriminator=d, steps=steps)


def d_style(out: Tensor, target: Tensor) -> Tensor:
    """Distance to the ground truth in the style, per image [B]: (1 - structure similarity) +
    palette distance (jojogan.toy.score). Structure: are the edges where the truth has them
    (identity, gaze, line placement); palette: are the colours the style's, in the right amounts.
    Pixel L1 is not used (it rewards copying the reference: FACTS.md)."""
    from jojogan.toy.score import palette_distance, structure_similarity

    return (1.0 - structure_similarity(out, target)) + palette_distance(out, target)


def _gaze(images: Tensor, params: Any, style: str) -> np.ndarray:
    from jojogan.toy.render import FIELD_INDEX
    from jojogan.toy.score import fit_by_synthesis

    fit = fit_by_synthesis(images.cpu(), params, style)
    return fit.values[:, [FIELD_INDEX["gaze_x"], FIELD_INDEX["gaze_y"]]]


def toy_style_quality(
    g: nn.Module,
    d: nn.Module,
    enc: nn.Module | None,
    style: str,
    *,
    n_unseen: int = 16,
    settings: Any = None,
    seed: int = 0,
    intensities: Sequence[float] = (1.0,),
    regressor: nn.Module | None = None,
    measure_gaze: bool = True,
    callback: Any = None,
) -> dict[str, Any]:
    """One-shot fine-tune on render(p_ref, style); score stylize(render(p_u, photo)) against
    render(p_u, style) over ``n_unseen`` unseen faces, next to two baselines (the input unchanged
    and the reference itself). Returns metrics and the images (for the demo's grid).

    Identity: the parameter regressor's geometry error of the output against p_u and against
    p_ref (when a regressor is given). Gaze: analysis-by-synthesis (`fit_by_synthesis`) of the
    output in ``style``: error to p_u's gaze and to p_ref's gaze (the paper's known failure is
    the output looking where the reference looks).
    """
    from jojogan.finetune import FinetuneSettings, finetune
    from jojogan.stylize import stylize
    from jojogan.toy.render import FIELD_INDEX, FaceParams, render_torch, sample_params
    from jojogan.toy.score import param_errors

    settings = settings or FinetuneSettings(steps=300, seed=seed)
    dev = g.input.input.device
    p_ref = sample_params(10_000 + seed, 1)
    p_u = sample_params(20_000 + seed, n_unseen)
    ref = render_torch(p_ref, style, g.size, dev)
    photos = render_torch(p_u, "photo", g.size, dev)
    truth = render_torch(p_u, style, g.size, dev)
    t0 = time.perf_counter()
    ref_code = invert_toy(ref, g, d, enc)
    res = finetune(g, d, ref, ref_code, settings, callback=callback)
    t_ft = time.perf_counter() - t0
    codes = invert_toy(photos, g, d, enc)
    outs = {a: stylize(res.generator, codes, base=g, intensity=a) for a in intensities}
    out = outs[max(intensities)]
    recon = stylize(res.generator, codes, base=g, intensity=0.0)
    refs = ref.expand_as(truth)
    m: dict[str, Any] = {
        "style": style,
        "n_unseen": n_unseen,
        "finetune_seconds": t_ft,
        "steps": settings.steps,
        "final_loss": res.losses[-1],
        "d_stylized": float(d_style(out, truth).mean()),
        "d_input": float(d_style(photos, truth).mean()),
        "d_reference": float(d_style(refs, truth).mean()),
        "d_inversion": float(d_style(recon, truth).mean()),
        "l1_stylized": float((out - truth).abs().mean()),
        "l1_input": float((photos - truth).abs().mean()),
        "l1_reference": float((refs - truth).abs().mean()),
    }
    if regressor is not None:
        pred = regressor.predict(out)
        m["geometry_err_vs_input"] = param_errors(pred, p_u)["geometry"]
        m["geometry_err_vs_reference"] = param_errors(
            pred, FaceParams(np.repeat(p_ref.values, n_unseen, 0))
        )["geometry"]
    if measure_gaze:
        cols = [FIELD_INDEX["gaze_x"], FIELD_INDEX["gaze_y"]]
        gz = _gaze(out, p_u, style)
        gz_truth = _gaze(truth, p_u, style)
        m["gaze_err_vs_input"] = float(np.abs(gz - p_u.values[:, cols]).mean())
        m["gaze_err_vs_reference"] = float(np.abs(gz - p_ref.values[:, cols]).mean())
        m["gaze_err_floor"] = float(np.abs(gz_truth - p_u.values[:, cols]).mean())
    m["images"] = {
        "reference": ref,
        "photos": photos,
        "inversion": recon,
        "stylized": outs,
        "truth": truth,
    }
    m["result"] = res
    return m


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
    from PIL import Image

    from jojogan.checkpoints import atomic_writer

    with atomic_writer(path) as tmp:
        Image.fromarray(arr).save(tmp, format="PNG")


def _fmt(m: dict[str, Any]) -> str:
    lines = [
        "| style | d(stylized, truth) | d(input, truth) | d(reference, truth) "
        "| gaze err vs input | gaze err vs reference | gaze floor | fine-tune s |",
        "|---|---|---|---|---|---|---|---|",
        f"| {m['style']} | {m['d_stylized']:.3f} | {m['d_input']:.3f} | {m['d_reference']:.3f} | "
        f"{m.get('gaze_err_vs_input', float('nan')):.3f} | "
        f"{m.get('gaze_err_vs_reference', float('nan')):.3f} | "
        f"{m.get('gaze_err_floor', float('nan')):.3f} | {m['finetune_seconds']:.1f} |",
    ]
    return "\n".join(lines)


def run_demo(args: argparse.Namespace) -> int:
    from jojogan.finetune import FinetuneSettings
    from jojogan.toy.render import style_names

    if args.threads:
        torch.set_num_threads(args.threads)
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
        settings = FinetuneSettings(
            steps=args.steps,
            seed=args.seed,
            preset=args.preset,
            space=args.space,
            grayscale=args.preset == "C",  # the paper's set C goes with the grayscale loss
        )
        settings.validate()
    except ValueError as e:
        print(f"demo: {e}", file=sys.stderr)
        return 2
    from jojogan.devices import pick_device

    device = pick_device(args.device)
    try:
        g, d, enc, _cfg = load_toy_model(args.toy_dir, device)
    except ToyModelMissing as e:
        print(f"demo: {e}", file=sys.stderr)
        return 1
    print(f"toy model: {g.size} px, {g.n_latent} W+ layers, device {device}")
    t0 = time.perf_counter()

    def progress(step: int, loss: float, preview: Any) -> None:
        if step == 1 or step % 50 == 0 or step == settings.steps:
            print(f"  fine-tune step {step}/{settings.steps}  loss {loss:.4f}", flush=True)

    intens = (1 / 3, 2 / 3, 1.0)
    m = toy_style_quality(
        g,
        d,
        enc,
        args.style,
        n_unseen=args.n,
        settings=settings,
        seed=args.seed,
        intensities=intens,
        measure_gaze=not args.no_gaze,
        callback=progress,
    )
    im = m["images"]
    rows = [[im["reference"][0], None, None, None, None, None]]
    for i in range(args.n):
        rows.append(
            [im["photos"][i], im["inversion"][i]]
            + [im["stylized"][a][i] for a in intens]
            + [im["truth"][i]]
        )
    _save_png(_grid(rows), out_path)
    print(
        f"wrote {out_path}: top-left the {args.style} reference; rows: input photo, inversion, "
        "intensity 1/3, 2/3, 1, ground truth"
    )
    print(_fmt(m))
    print(f"total {time.perf_counter() - t0:.1f} s")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m jojogan", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    dm = sub.add_parser("demo", help="the whole pipeline on the toy-faces model, offline")
    dm.add_argument("--toy-dir", default=None, help="folder with toy_stylegan2.safetensors")
    dm.add_argument("--style", default="cartoon", help="reference style (toy renderer)")
    dm.add_argument("--steps", type=int, default=300)
    dm.add_argument("--preset", default="full", help="mixing preset: full, preserve_color, X, C")
    dm.add_argument("--space", default="w+", help="mixing space: w+ or s")
    dm.add_argument("--n", type=int, default=6, help="unseen faces in the grid (and the score)")
    dm.add_argument("--seed", type=int, default=0)
    dm.add_argument("--out", default="jojogan_demo.png")
    dm.add_argument("--device", default="auto")
    dm.add_argument("--threads", type=int, default=None)
    dm.add_argument("--no-gaze", action="store_true", help="skip the gaze measurement")
    args = ap.parse_args(argv)
    if args.cmd == "demo":
        if args.n < 1:
            print("demo: --n must be >= 1", file=sys.stderr)
            return 2
        return run_demo(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
