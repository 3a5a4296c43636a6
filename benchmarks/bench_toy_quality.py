"""Toy-domain quality with ground truth: one-shot JoJoGAN per style against two baselines.

For each non-photo style S: fine-tune the toy generator on one reference render(p_ref, S), then
for >= 16 unseen identities p_u stylize the photo render(p_u, photo) (inverted with the toy
encoder, or by optimisation) and compare with the ground truth render(p_u, S):

    d = (1 - structure similarity) + palette distance          (jojogan.toy.quality.d_style)

next to the baselines "input unchanged" (d(render(p_u, photo), truth)) and "the reference"
(d(render(p_ref, S), truth)). The mapper should beat both clearly. Identity and gaze must follow
the input: gaze is read by analysis-by-synthesis in S (`jojogan.toy.score.fit_by_synthesis`) and
compared with p_u's gaze and with the reference's (the paper's known failure: gaze copied from
the reference); geometry (face shape, features) by the parameter regressor when its weights are
there (`jojogan.toy.score.load_regressor`), against p_u and against p_ref (floor: the regressor
on the truth). The "colour-copy bound" column scores the truth redrawn with the reference's
colour parameters (`jojogan.toy.quality.reference_copy`): the best a mapper that copies the
reference's colours can score. It is the truth where a style's colours are fixed (neon,
blueprint), and no ceiling where they follow the input's: popart maps each input's tones to its
palette, which one reference shows; only its background (one of four colours picked by the
input's background hue) cannot be learnt from one image, and the truth with just the
reference's background hue scores x1.77 and x3.10 on seeds 0 and 1 (32 faces). The "identity
copy" column scores the truth redrawn with the reference's geometry and gaze, the rest the
input's: the paper's known failure with everything else right, what d alone gives a mapper that
does not follow the input's identity (hence the geometry and gaze columns). The "warped
reference" column is a third, non-learned baseline: the reference moved onto each input's outline
by a smooth flow fitted from the base generator's drawing of the reference's code to the input
photo (`jojogan.toy.score.warp_to_layouts`); it carries the reference's lines and colours to the
input's layout but none of the input's own features. With --supervised-bound K, a last column
gives a **supervised bound**: the same fine-tune given K true pairs (each face's style render
paired with the code of its own photo, no mixing), which no user has: how well a fine-tune of
this generator draws the style and each input's identity from K examples (more pairs raise it,
more steps do not: docs/toy_recipe_sweep.md, "The bound's budget"). The one-shot geometry and
gaze errors are read against it as well as against the truth's floor.

    python benchmarks/bench_toy_quality.py                         # cartoon, sketch, ink
    python benchmarks/bench_toy_quality.py --styles neon watercolor --n 32
    python benchmarks/bench_toy_quality.py --recipe fine            # finest layers, luminance
    python benchmarks/bench_toy_quality.py --grid docs/toy_quality.png   # and show the outputs
    python benchmarks/bench_toy_quality.py --supervised-bound 8     # + the 8-pair bound
    python benchmarks/bench_toy_quality.py --style-module my_styles.py --styles my_style
        # styles this package has never seen: my_styles.py decorates functions with
        # @jojogan.toy.render.register_style (see benchmarks/example_styles.py)

Recipes (`jojogan.toy.recipes.RECIPES`): "refined" (default) is "edges" with each input's encoder
code refined by 300 optimisation steps on pixels and discriminator features; "edges" is "paper"
with the reference's encoder code then matched to the reference's edges (200 steps;
`jojogan.invert` objective "edges"); "paper" is the released code's, and the Finetune node's
defaults (every layer, taps 1,3,4,5, colour loss, 300 steps, encoder codes as they are);
"structure" adds two terms on random faces; "fine" trains only the synthesis layers of the two
finest resolutions, with the L1 of the discriminator's first features on luminance, 600 steps,
from encoder codes refined by 100 optimisation steps (an earlier default: about the same
scores, photo-like outputs; see docs/toy_recipe_sweep.md). Flags such as --steps, --taps,
--train-layers, --grayscale, --refine-steps, --reference-edge-steps, --input-refine-steps
override single fields.

Needs the trained toy model (jojogan/toy/weights, --toy-dir or $JOJOGAN_TOY_DIR); without it,
it stops with a clear message (no stand-in model: the numbers would mean nothing).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    from jojogan.toy.flags import add_recipe_arguments, add_style_module_argument

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--styles", nargs="+", default=["cartoon", "sketch", "ink"])
    ap.add_argument("--n", type=int, default=16, help="unseen faces per style (>= 16)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--toy-dir", default=None)
    ap.add_argument("--regressor", default=None, help="param regressor .safetensors")
    ap.add_argument("--no-gaze", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="auto")
    ap.add_argument(
        "--grid",
        default=None,
        help="also write a PNG: per style, the reference then 8 inputs, their truth in the style "
        "and the stylized outputs",
    )
    ap.add_argument(
        "--supervised-bound",
        type=int,
        default=0,
        metavar="K",
        help="also fine-tune on K true pairs per style (no mixing) and report that supervised "
        "bound's d, geometry and gaze errors (0 = off; at K = 8 about 80 s more per style on "
        "one CPU thread, gaze included)",
    )
    add_recipe_arguments(ap)
    add_style_module_argument(ap)
    a = ap.parse_args()
    if a.supervised_bound < 0:
        print("bench_toy_quality: --supervised-bound must be >= 0", file=sys.stderr)
        return 2

    import torch

    from jojogan.devices import pick_device
    from jojogan.toy import ToyWeightsMissing
    from jojogan.toy.demo import _grid, _save_png
    from jojogan.toy.flags import load_style_modules, settings_from_args
    from jojogan.toy.model import load_toy
    from jojogan.toy.quality import toy_style_quality
    from jojogan.toy.recipes import _describe
    from jojogan.toy.render import style_names

    torch.set_num_threads(a.threads)
    if not load_style_modules(a.style_module, "bench_toy_quality"):
        return 2
    bad = [s for s in a.styles if s not in style_names(exclude=("photo",))]
    if bad:
        print(
            f"unknown styles {bad}; choose from {style_names(exclude=('photo',))}", file=sys.stderr
        )
        return 2
    dev = pick_device(a.device)
    try:
        g, d, enc, _avg, _cfg = load_toy(a.toy_dir, dev)
    except ToyWeightsMissing as e:
        print(f"bench_toy_quality: {e}", file=sys.stderr)
        return 1
    reg = None
    from jojogan.toy.score import DEFAULT_REGRESSOR, load_regressor

    cands = [a.regressor] if a.regressor else []
    if a.toy_dir:
        cands.append(str(Path(a.toy_dir) / "param_regressor.safetensors"))
    cands.append(str(DEFAULT_REGRESSOR))
    for c in cands:
        if c and Path(c).is_file():
            reg = load_regressor(c, dev)
            print(f"regressor: {c}", file=sys.stderr)
            break
    if reg is None:
        print("no parameter regressor found: geometry columns are n/a", file=sys.stderr)
    try:
        st, inversion = settings_from_args(g, a)
    except ValueError as e:
        print(f"bench_toy_quality: {e}", file=sys.stderr)
        return 2
    recipe = f"recipe {a.recipe}: {_describe(st, inversion)}"
    print(
        f"toy model: {g.size} px on {dev}; encoder: {'yes' if enc is not None else 'no'}; "
        f"{a.n} unseen faces; {recipe}",
        file=sys.stderr,
    )

    rows = []
    cache: dict = {}  # the unseen photos are the same for every style: invert them once
    t0 = time.perf_counter()
    for style in a.styles:
        m = toy_style_quality(
            g,
            d,
            enc,
            style,
            n_unseen=a.n,
            settings=st,
            seed=a.seed,
            regressor=reg,
            measure_gaze=not a.no_gaze,
            inversion=inversion,
            code_cache=cache,
            supervised_pairs=a.supervised_bound,
        )
        rows.append(m)
        print(f"  {style}: {m['finetune_seconds']:.1f} s fine-tune", file=sys.stderr)

    def f(m, k):
        v = m.get(k)
        return "n/a" if v is None else f"{v:.3f}"

    sup = a.supervised_bound > 0
    sup_head = f" supervised bound ({a.supervised_bound} pairs): d / geometry / gaze err |"
    print(
        "| style | d(stylized) | d(input) | d(reference) | beats both | warped reference | "
        "colour-copy bound | identity copy | geometry err vs input / vs reference (floor) | "
        "gaze err vs input / vs reference (floor) | fine-tune s |" + (sup_head if sup else "")
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|" + ("---|" if sup else ""))
    for m in rows:
        best_base = min(m["d_input"], m["d_reference"])
        beats = "yes" if m["d_stylized"] < best_base else "NO"
        bound = max(m["d_colour_copy_bound"], 0.0)  # float rounding can give -0.000
        margin = "= truth" if bound < 1e-3 else f"x{best_base / bound:.2f}"
        warp, idc = m["d_warped_reference"], m["d_identity_copy"]
        print(
            f"| {m['style']} | {m['d_stylized']:.3f} | {m['d_input']:.3f} | "
            f"{m['d_reference']:.3f} | {beats} (x{best_base / max(m['d_stylized'], 1e-9):.2f}) | "
            f"{warp:.3f} (x{best_base / max(warp, 1e-9):.2f}) | {bound:.3f} ({margin}) | "
            f"{idc:.3f} (x{best_base / max(idc, 1e-9):.2f}) | "
            f"{f(m, 'geometry_err_vs_input')} / {f(m, 'geometry_err_vs_reference')} "
            f"({f(m, 'geometry_err_floor')}) | "
            f"{f(m, 'gaze_err_vs_input')} / {f(m, 'gaze_err_vs_reference')} "
            f"({f(m, 'gaze_err_floor')}) | {m['finetune_seconds']:.1f} |"
            + (
                f" {m['d_supervised']:.3f} (x{best_base / max(m['d_supervised'], 1e-9):.2f}) / "
                f"{f(m, 'geometry_err_supervised')} / {f(m, 'gaze_err_supervised')} |"
                if sup
                else ""
            )
        )
    if a.grid:
        grid_rows = []
        for m in rows:
            im, ref = m["images"], m["images"]["reference"][0]
            out = im["stylized"][max(im["stylized"])]
            for r in (im["photos"], im["truth"], out):
                grid_rows.append([ref, *list(r[:8])])
        _save_png(_grid(grid_rows), Path(a.grid))
        print(f"grid: {a.grid}", file=sys.stderr)
    print(
        f"\nd = (1 - structure similarity) + palette distance, lower is better; {a.n} unseen "
        f"faces per style, seed {a.seed}; {recipe}; total {time.perf_counter() - t0:.0f} s. "
        "colour-copy bound: d of the truth redrawn in the reference's colours (the best a "
        "mapper that takes the reference's colours can do; x = its margin over the baselines). "
        "identity copy: d of the truth redrawn with the reference's geometry and gaze (the "
        "paper's known failure with all else right; x likewise). "
        "warped reference: a non-learned baseline, the reference moved onto each input's "
        "outline by a smooth flow (jojogan.toy.score.warp_to_layouts); x as for the mapper"
        + (
            f". supervised bound: the same fine-tune on {a.supervised_bound} true pairs without "
            "mixing (pairs no user has); its errors against the input"
            if sup
            else ""
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
