"""An example of styles added from outside the package, for the toy-quality benchmark and demo.

    python benchmarks/bench_toy_quality.py --style-module benchmarks/example_styles.py \
        --styles blueprint --n 16
    python -m jojogan demo --style-module benchmarks/example_styles.py --style blueprint

A style is a function of the renderer's `Scene` (the same identity parameters as every other
style) returning [N, S, S, 3] float32 in [0, 1], registered under a new name. Nothing in the
package or its training has seen `blueprint`; write your own file the same way for an
independent check.
"""

from __future__ import annotations

import numpy as np

from jojogan.toy.render import Scene, over, paint_parts, register_style


@register_style("blueprint", "white technical line drawing on a blue, gridded sheet")
def _blueprint(sc: Scene) -> np.ndarray:
    paper = np.float32([0.10, 0.25, 0.55])
    ink = np.float32([0.92, 0.95, 1.0])
    img = np.broadcast_to(paper, (sc.n, sc.s, sc.s, 3)).copy()
    # a faint grid every 8 output pixels
    u = (sc.X + 1.0) * (sc.s / 2.0) / (8.0 * sc.ss)
    v = (sc.Y + 1.0) * (sc.s / 2.0) / (8.0 * sc.ss)
    grid = np.maximum(np.abs(u - np.round(u)), np.abs(v - np.round(v)))
    img = over(img, ink, np.clip((grid - 0.45) * 8.0, 0.0, 1.0) * 0.25)
    lines = {k: 1.2 for k in ("hair_back", "shoulders", "neck", "ears", "face", "hair_front")}
    lines.update({"sclera": 1.0, "iris": 1.0, "brows": 1.0, "nose": 1.0, "mouth": 1.0})
    return paint_parts(sc, img, {}, lines, ink)
