"""Command-line flags shared by ``python -m jojogan demo`` and benchmarks/bench_toy_quality.py:
the recipe flags (`add_recipe_arguments`, read back by `settings_from_args`) and
``--style-module`` (`add_style_module_argument`, `load_style_modules`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from torch import nn

from ..finetune import n_feature_layers
from ..mixing import MAX_LAYERS, parse_layers
from .recipes import DEFAULT_RECIPE, INVERSION_KEYS, RECIPES, ToyInversion, toy_settings
from .render import load_style_module


def add_recipe_arguments(ap: argparse.ArgumentParser) -> None:
    """The fine-tune recipe flags shared by the demo and benchmarks/bench_toy_quality.py."""
    ap.add_argument(
        "--recipe",
        default=DEFAULT_RECIPE,
        choices=sorted(RECIPES),
        help="refined (default: edges + the inputs' codes refined toward their photos), edges "
        "(paper + the reference's code matched to its edges), paper (the "
        "released code's recipe, as the Finetune node: every layer, taps 1,3,4,5, colour loss, "
        "300 steps, encoder codes), structure (paper + the structure and texture terms on "
        "random faces) or fine (finest layers, first D taps, luminance loss, 600 steps, refined "
        "inversion; an earlier default)",
    )
    ap.add_argument("--steps", type=int, default=None, help="fine-tune steps (recipe's)")
    ap.add_argument("--lr", type=float, default=None, help="learning rate (2e-3)")
    ap.add_argument("--preset", default=None, help="mixing preset: full, preserve_color, X, C")
    ap.add_argument("--space", default=None, help="mixing space: w+ or s")
    ap.add_argument("--taps", default=None, help="discriminator taps, e.g. 0 or 1,3,4 (recipe's)")
    ap.add_argument(
        "--train-layers",
        default=None,
        help="S layers to fine-tune: all, fine (two finest resolutions) or e.g. 8,9,10",
    )
    ap.add_argument(
        "--grayscale",
        choices=("on", "off"),
        default=None,
        help="luminance-only loss (recipe's; on with preset C)",
    )
    ap.add_argument(
        "--refine-steps",
        type=int,
        default=None,
        help="optimisation steps refining the encoder's codes (recipe's; 0 = encoder only)",
    )
    ap.add_argument(
        "--input-refine-steps",
        type=int,
        default=None,
        help="more such steps for the inputs' codes only (recipe's; 0 = off)",
    )
    ap.add_argument(
        "--reference-edge-steps",
        type=int,
        default=None,
        help="steps matching the reference's code to its edges (recipe's; 0 = off)",
    )
    ap.add_argument(
        "--structure-weight",
        type=float,
        default=None,
        help="weight of the structure term: random faces keep their edges (recipe's; 0 = off)",
    )
    ap.add_argument(
        "--gram-weight",
        type=float,
        default=None,
        help="weight of the texture term: random faces take the reference's Gram statistics",
    )
    ap.add_argument(
        "--random-faces", type=int, default=None, help="random faces per step for those terms (4)"
    )


def _layer_flag(text: str, n_layers: int, flag: str) -> tuple[int, ...]:
    """A layer-list flag (``1,3,4`` or ``0-3``), bounded by ``n_layers`` before it is expanded
    (`jojogan.mixing.parse_layers`); empty is an error."""
    out = parse_layers(text, n_layers, flag)
    if out is None:
        raise ValueError(f"{flag} is empty; give layer indices like 1,3,4 or 0-3")
    return out


def settings_from_args(
    g: nn.Module | None, args: argparse.Namespace, discriminator: nn.Module | None = None
) -> tuple[Any, ToyInversion]:
    """(FinetuneSettings, ToyInversion) from the recipe flags; ``g`` None checks the flags only
    (before the model is loaded: layer lists against any generator's depth). With the models,
    layer lists are checked against them (taps against ``discriminator`` when given). Raises
    ValueError with the bad value's message."""
    over: dict[str, Any] = {
        "steps": args.steps,
        "lr": args.lr,
        "preset": args.preset,
        "space": args.space,
        "seed": args.seed,
        "structure_weight": args.structure_weight,
        "gram_weight": args.gram_weight,
        "random_faces": args.random_faces,
    }
    if args.taps is not None:
        n = MAX_LAYERS if discriminator is None else n_feature_layers(discriminator)
        over["feature_layers"] = _layer_flag(args.taps, n, "--taps")
    if args.grayscale is not None:
        over["grayscale"] = args.grayscale == "on"
    elif args.preset == "C":
        over["grayscale"] = True  # the paper's set C goes with the grayscale loss
    if args.train_layers is not None:
        t = args.train_layers
        n = MAX_LAYERS if g is None else int(g.n_styles)
        over["train_layers"] = t if t in ("all", "fine") else _layer_flag(t, n, "--train-layers")
    for k in INVERSION_KEYS:
        if getattr(args, k) is not None:
            over[k] = getattr(args, k)
    st, inversion = toy_settings(g, args.recipe, **over)
    if g is not None and discriminator is not None:
        st.validate(g, discriminator)
    return st, inversion


def load_style_modules(paths: Sequence[str] | None, prog: str) -> bool:
    """Run each ``--style-module`` file (`jojogan.toy.render.load_style_module`): styles this
    package has never seen, for an independent check. False (and the reason on stderr) when one
    cannot be loaded."""
    for path in paths or ():
        try:
            names = load_style_module(path)
        except ValueError as e:
            print(f"{prog}: {e}", file=sys.stderr)
            return False
        print(f"{prog}: {path} registered {', '.join(names)}", file=sys.stderr)
    return True


def add_style_module_argument(ap: argparse.ArgumentParser) -> None:
    ap.add_argument(
        "--style-module",
        action="append",
        metavar="FILE.py",
        help="a Python file whose @jojogan.toy.render.register_style functions add styles "
        "(repeatable)",
    )
