"""Procedural toy faces with known ground truth (DESIGN.md section 5).

A face is a vector of *identity* parameters (`FaceParams`, every field in [0, 1]); a *style* is a
function that paints the same identity in its own colours, lines and (slightly) geometry. The base
model only ever sees the `photo` style; the other styles play the role of JoJoGAN references, and
because the identity is known, `stylize(render(p, "photo"))` can be compared with `render(p, S)`.

Rendering is vectorised numpy in float32 over a batch: every part of the face is a signed distance
field (negative inside, in image units where the image spans [-1, 1]), turned into anti-aliased
coverage analytically and supersampled 2x. Deterministic: the same parameters give the same pixels.

Adding a style::

    @register_style("my_style", "one line that says what it looks like")
    def _my_style(scene: Scene) -> np.ndarray:  # [N, S, S, 3] float32 in [0, 1]
        img = scene.background(...)
        ...
        return img

`Scene` holds the distance fields, colours and coordinates that a style needs; see the styles
below for the helpers (`cov`, `line`, `over`, `paint_parts`).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import importlib.util
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = [
    "FIELDS",
    "FIELD_GROUPS",
    "HAIR_STYLES",
    "RENDER_WORK_BYTES",
    "STYLES",
    "FaceParams",
    "GeometryOptions",
    "Scene",
    "Style",
    "UnknownStyleError",
    "load_style_module",
    "register_style",
    "render",
    "render_batch",
    "render_chunk_size",
    "render_torch",
    "sample_params",
    "sample_photos",
    "style_grid",
    "style_names",
]

# ----------------------------------------------------------------------------------------------
# Parameters
# ----------------------------------------------------------------------------------------------

#: (name, meaning) of every identity parameter, in vector order. Every value lies in [0, 1].
FIELDS: tuple[tuple[str, str], ...] = (
    ("face_w", "face half-width"),
    ("face_h", "face half-height"),
    ("jaw", "chin pointiness (0 round, 1 pointed)"),
    ("skin_tone", "skin lightness (0 dark, 1 light)"),
    ("skin_warm", "skin warmth (0 cool/pink, 1 warm/yellow)"),
    ("eye_y", "eye height on the face (0 high, 1 low)"),
    ("eye_sep", "distance between the eyes"),
    ("eye_size", "eye size"),
    ("iris_col", "iris colour along brown-hazel-green-blue-grey"),
    ("gaze_x", "gaze direction, horizontal (0 left, 1 right, image side)"),
    ("gaze_y", "gaze direction, vertical (0 up, 1 down)"),
    ("brow_y", "brow height above the eye"),
    ("brow_tilt", "brow tilt (0 sad, 1 angry)"),
    ("brow_thick", "brow thickness"),
    ("nose_len", "nose length"),
    ("nose_w", "nose width"),
    ("mouth_w", "mouth width"),
    ("mouth_curve", "mouth curvature (0 frown, 1 smile)"),
    ("mouth_y", "mouth distance below the nose"),
    ("hair_style", "discrete hair style, index = floor(value * len(HAIR_STYLES))"),
    ("hair_len", "hair length / volume"),
    ("hair_col", "hair colour along black-brown-auburn-blonde-grey"),
    ("pose_x", "horizontal head shift"),
    ("pose_y", "vertical head shift"),
    ("roll", "head roll (in-plane rotation)"),
    ("yaw", "head turn (features shift sideways)"),
    ("bg_hue", "background hue"),
    ("bg_lum", "background lightness"),
    ("bg_grad", "background vertical gradient (0 darker at top, 1 darker at bottom)"),
    ("cloth_hue", "shirt hue"),
)
FIELD_NAMES: tuple[str, ...] = tuple(name for name, _ in FIELDS)
FIELD_INDEX: dict[str, int] = {name: i for i, name in enumerate(FIELD_NAMES)}

#: Groups for scoring: geometry survives every style; colours do not (a sketch is grayscale).
FIELD_GROUPS: dict[str, tuple[str, ...]] = {
    "geometry": (
        "face_w",
        "face_h",
        "jaw",
        "eye_y",
        "eye_sep",
        "eye_size",
        "brow_y",
        "brow_tilt",
        "brow_thick",
        "nose_len",
        "nose_w",
        "mouth_w",
        "mouth_curve",
        "mouth_y",
        "hair_style",
        "hair_len",
    ),
    "gaze": ("gaze_x", "gaze_y"),
    "pose": ("pose_x", "pose_y", "roll", "yaw"),
    "colour": (
        "skin_tone",
        "skin_warm",
        "iris_col",
        "hair_col",
        "bg_hue",
        "bg_lum",
        "bg_grad",
        "cloth_hue",
    ),
}

HAIR_STYLES: tuple[str, ...] = ("short", "bob", "long", "puff")


@dataclasses.dataclass(frozen=True)
class FaceParams:
    """A batch of N faces: `values` is float32 [N, len(FIELDS)], every entry in [0, 1].

    Named access: `p.field("gaze_x") -> [N]`, `p["gaze_x"]` likewise; `p[i]` / `p[a:b]` slice the
    batch; `p.to_vector()` is the [N, P] array that scoring compares.
    """

    values: np.ndarray

    def __post_init__(self) -> None:
        v = np.asarray(self.values, dtype=np.float32)
        if v.ndim == 1:
            v = v[None]
        if v.ndim != 2 or v.shape[1] != len(FIELDS):
            raise ValueError(
                f"FaceParams: values must be [N, {len(FIELDS)}] (one column per FIELDS entry), "
                f"got shape {tuple(np.shape(self.values))}"
            )
        if not np.all(np.isfinite(v)) or v.min(initial=0.0) < 0.0 or v.max(initial=0.0) > 1.0:
            raise ValueError("FaceParams: every value must be finite and within [0, 1]")
        object.__setattr__(self, "values", np.ascontiguousarray(v))

    def __len__(self) -> int:
        return int(self.values.shape[0])

    def __getitem__(self, key: int | slice | str | np.ndarray) -> FaceParams | np.ndarray:
        if isinstance(key, str):
            return self.field(key)
        if isinstance(key, (int, np.integer)):
            return FaceParams(self.values[int(key)][None])
        return FaceParams(self.values[key])

    def field(self, name: str) -> np.ndarray:
        """[N] float32 values of one field (see FIELDS)."""
        if name not in FIELD_INDEX:
            raise KeyError(f"FaceParams: unknown field {name!r}; known: {', '.join(FIELD_NAMES)}")
        return self.values[:, FIELD_INDEX[name]]

    def to_vector(self) -> np.ndarray:
        """[N, P] float32 copy, columns in FIELDS order, values in [0, 1]."""
        return self.values.copy()

    @classmethod
    def from_vector(cls, values: np.ndarray) -> FaceParams:
        """Inverse of `to_vector` (values are clipped to [0, 1], e.g. regressor outputs)."""
        return cls(np.clip(np.asarray(values, dtype=np.float32), 0.0, 1.0))

    @classmethod
    def concat(cls, items: Iterable[FaceParams]) -> FaceParams:
        return cls(np.concatenate([p.values for p in items], axis=0))

    def replace(self, **fields: float | np.ndarray) -> FaceParams:
        """A copy with some fields set, e.g. `p.replace(gaze_x=1.0)`."""
        v = self.values.copy()
        for name, value in fields.items():
            if name not in FIELD_INDEX:
                raise KeyError(f"FaceParams.replace: unknown field {name!r}")
            v[:, FIELD_INDEX[name]] = value
        return FaceParams(v)

    def hair_style_index(self) -> np.ndarray:
        """[N] int: index into HAIR_STYLES."""
        k = len(HAIR_STYLES)
        return np.minimum((self.field("hair_style") * k).astype(np.int64), k - 1)

    def as_dict(self, i: int = 0) -> dict[str, float]:
        return {name: float(self.values[i, j]) for j, name in enumerate(FIELD_NAMES)}


def sample_params(seed: int | np.random.Generator, n: int = 1) -> FaceParams:
    """N random identities. The same `seed` (int) always gives the same faces.

    Fields are uniform in [0, 1] except `hair_style`, which takes the centre of one of the
    len(HAIR_STYLES) bins, and pose fields, which are drawn narrower (faces mostly centred).
    """
    if n < 1:
        raise ValueError(f"sample_params: n must be >= 1, got {n}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    v = rng.random((n, len(FIELDS)), dtype=np.float32)
    k = len(HAIR_STYLES)
    v[:, FIELD_INDEX["hair_style"]] = (rng.integers(0, k, n).astype(np.float32) + 0.5) / k
    return FaceParams(v)


# ----------------------------------------------------------------------------------------------
# Colour tables (float32 RGB in [0, 1])
# ----------------------------------------------------------------------------------------------

_SKIN = np.array(
    [[0.33, 0.20, 0.13], [0.55, 0.36, 0.24], [0.78, 0.56, 0.42], [0.96, 0.80, 0.68]],
    dtype=np.float32,
)
_IRIS = np.array(
    [
        [0.36, 0.20, 0.09],
        [0.52, 0.40, 0.16],
        [0.22, 0.50, 0.28],
        [0.22, 0.44, 0.78],
        [0.50, 0.54, 0.60],
    ],
    dtype=np.float32,
)
_HAIR = np.array(
    [
        [0.07, 0.06, 0.06],
        [0.26, 0.15, 0.08],
        [0.58, 0.22, 0.08],
        [0.88, 0.72, 0.40],
        [0.78, 0.78, 0.76],
    ],
    dtype=np.float32,
)


def _palette(t: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Piecewise-linear lookup: t [N] in [0,1] -> [N, 3]."""
    x = np.clip(t, 0.0, 1.0) * (len(table) - 1)
    i = np.minimum(x.astype(np.int64), len(table) - 2)
    f = (x - i)[:, None]
    return (table[i] * (1.0 - f) + table[i + 1] * f).astype(np.float32)


def _hsv(h: np.ndarray, s: float | np.ndarray, v: float | np.ndarray) -> np.ndarray:
    """Vectorised HSV -> RGB: h [N] in [0,1] -> [N, 3] float32."""
    h = np.asarray(h, dtype=np.float32)
    s = np.broadcast_to(np.asarray(s, dtype=np.float32), h.shape)
    v = np.broadcast_to(np.asarray(v, dtype=np.float32), h.shape)
    k = (np.array([5.0, 3.0, 1.0], dtype=np.float32)[None] + h[:, None] * 6.0) % 6.0
    c = np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)
    return (v[:, None] - v[:, None] * s[:, None] * c).astype(np.float32)


def hex_rgb(code: str) -> np.ndarray:
    """'#rrggbb' -> float32 [3] in [0, 1] (for fixed style palettes)."""
    code = code.lstrip("#")
    return np.array([int(code[i : i + 2], 16) / 255.0 for i in (0, 2, 4)], dtype=np.float32)


def _luma(img: np.ndarray) -> np.ndarray:
    """[..., 3] -> [...] Rec. 601 luma."""
    return img[..., 0] * 0.299 + img[..., 1] * 0.587 + img[..., 2] * 0.114


# ----------------------------------------------------------------------------------------------
# Geometry
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class GeometryOptions:
    """Per-style exaggerations applied to the identity's geometry (1.0 = as in `photo`)."""

    eye_w: float = 1.0
    eye_h: float = 1.0
    iris: float = 1.0
    eye_drop: float = 0.0  # moves the eyes down, in face half-heights
    nose: float = 1.0
    mouth: float = 1.0
    jaw: float = 1.0
    head: float = 1.0  # face size


# hair table, per HAIR_STYLES entry:
# cap width add, cap height add, fringe depth, fringe curvature, part (|x| slope),
# back present, back width, back bottom (face half-heights below centre), back length gain
_HAIR_TABLE = np.array(
    [
        [0.04, 0.05, 0.62, 0.9, 0.0, 0.0, 1.00, 0.0, 0.0],  # short
        [0.06, 0.07, 0.40, 0.0, 0.0, 1.0, 1.28, 0.45, 0.45],  # bob (straight fringe)
        [0.05, 0.06, 0.70, 0.0, 0.9, 1.0, 1.32, 1.10, 0.80],  # long (middle part)
        [0.16, 0.20, 0.60, 0.6, 0.0, 1.0, 1.45, -0.05, 0.35],  # puff
    ],
    dtype=np.float32,
)


def _ellipse(
    x: np.ndarray, y: np.ndarray, a: np.ndarray | float, b: np.ndarray | float
) -> np.ndarray:
    """Approximate signed distance to an axis-aligned ellipse with half-axes a, b (first order)."""
    u = x / a
    v = y / b
    r = np.sqrt(u * u + v * v) + 1e-6
    g = np.sqrt((u / a) ** 2 + (v / b) ** 2) / r + 1e-6
    return (r - 1.0) / g


def _box(x: np.ndarray, y: np.ndarray, a: np.ndarray | float, b: np.ndarray | float) -> np.ndarray:
    dx = np.abs(x) - a
    dy = np.abs(y) - b
    out = np.sqrt(np.maximum(dx, 0.0) ** 2 + np.maximum(dy, 0.0) ** 2)
    return out + np.minimum(np.maximum(dx, dy), 0.0)


def _rot(x: np.ndarray, y: np.ndarray, angle: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    c = np.cos(angle)
    s = np.sin(angle)
    return x * c + y * s, -x * s + y * c


def _c(v: np.ndarray) -> np.ndarray:
    """[N] -> [N, 1, 1] for broadcasting over the pixel grid."""
    return np.asarray(v, dtype=np.float32)[:, None, None]


@functools.lru_cache(maxsize=8)
def _grid(s: int) -> tuple[np.ndarray, np.ndarray]:
    t = ((np.arange(s, dtype=np.float32) + 0.5) / s * 2.0 - 1.0).astype(np.float32)
    return t[None, None, :], t[None, :, None]  # X [1,1,S], Y [1,S,1]


@functools.lru_cache(maxsize=3)  # 64 MiB each at 1024 px: keep a few sizes only
def _noise_bank(s: int) -> np.ndarray:
    """A fixed [2S, 2S] float32 noise texture, zero mean, unit-ish std, slightly smoothed."""
    rng = np.random.default_rng(20221012)
    n = rng.standard_normal((2 * s, 2 * s)).astype(np.float32)
    n = (n + np.roll(n, 1, 0) + np.roll(n, 1, 1) + np.roll(n, (1, 1), (0, 1))) * 0.5
    return n.astype(np.float32)


class Scene:
    """Everything a style needs to paint a batch of faces at the supersampled resolution S.

    Attributes (all float32):
      params: the FaceParams; n: batch size; s: supersampled side; px: one pixel in image units.
      X, Y: [1,1,S] and [1,S,1] image coordinates in [-1, 1] (y down).
      x, y: [N,S,S] head-local coordinates (pose removed).
      sdf: dict part -> [N,S,S] signed distance (negative inside), image units. Parts, back to
        front: hair_back, shoulders, neck, ears, face, nose, mouth, sclera, iris, pupil, glint,
        brows, hair_front. Also: `lid` (upper eyelid stroke) and `cheeks` (blush spots).
      colour: dict name -> [N,3]: skin, lips, iris, hair, brows, bg, bg2, cloth.
      face_in: [N,S,S] 0 at the face outline rising to 1 inside (for shading).
      strands: [N,S,S] in [-1,1], a hair-strand pattern; noise: [N,S,S] fixed texture.
    """

    def __init__(self, params: FaceParams, size: int, geometry: GeometryOptions, ss: int = 2):
        self.params = params
        self.n = len(params)
        self.size = size
        self.ss = ss
        self.s = s = size * ss
        self.px = np.float32(2.0 / s)
        self.geometry = geometry
        p = params
        g = geometry
        X, Y = _grid(s)
        self.X, self.Y = X, Y

        # pose: shift, roll; yaw shifts the inner features
        tx = _c((p["pose_x"] * 2.0 - 1.0) * 0.07)
        ty = _c((p["pose_y"] * 2.0 - 1.0) * 0.05 - 0.06)
        ang = _c((p["roll"] * 2.0 - 1.0) * 0.14)
        x, y = _rot(X - tx, Y - ty, ang)
        self.x, self.y = x, y

        fa = _c((0.35 + 0.11 * p["face_w"]) * g.head)
        fb = _c((0.46 + 0.10 * p["face_h"]) * g.head)
        self.fa, self.fb = fa, fb
        jaw_k = _c((0.12 + 0.40 * p["jaw"]) * g.jaw)
        yaw = _c((p["yaw"] * 2.0 - 1.0) * 0.16) * fa
        sdf: dict[str, np.ndarray] = {}

        # face: an egg whose lower half narrows towards the chin
        t = np.clip(y / fb, 0.0, 1.0)
        wj = 1.0 - jaw_k * t * t
        face = _ellipse(x, y, fa * wj, fb)
        sdf["face"] = face
        self.face_in = np.clip(-face / (0.35 * fa), 0.0, 1.0)

        sdf["ears"] = _ellipse(np.abs(x) - fa * 0.97, y - fb * 0.02, fa * 0.16, fb * 0.20)
        sdf["neck"] = _box(x, y - (fb * 0.8 + 0.3), fa * 0.42, 0.3 + fb * 0.1)
        shoulders = _ellipse(x, y - (fb + 0.66), 0.86, 0.42)
        collar = _ellipse(x, y - (fb + 0.18), fa * 0.5, 0.1 + fb * 0.0)
        sdf["shoulders"] = np.maximum(shoulders, -collar)

        # eyes
        ea0 = _c(0.075 + 0.035 * p["eye_size"])
        ea = ea0 * g.eye_w
        eb = ea * 0.62 * g.eye_h / g.eye_w
        ecy = fb * _c(-0.24 + 0.20 * p["eye_y"] + g.eye_drop)
        ecx = fa * _c(0.34 + 0.14 * p["eye_sep"]) + (ea - ea0) * 0.75  # bigger eyes: apart
        ex = np.abs(x - yaw) - ecx
        ey = y - ecy
        sclera = _ellipse(ex, ey, ea, eb)
        sdf["sclera"] = sclera
        ir = eb * 0.78 * g.iris
        gx = _c(p["gaze_x"] * 2.0 - 1.0) * (ea - ir * 0.45)
        gy = _c(p["gaze_y"] * 2.0 - 1.0) * (eb * 0.55)
        # gaze is in image space: both irises move the same way
        ix = (x - yaw) - np.sign(x - yaw) * ecx - gx
        iy = ey - gy
        sdf["iris"] = np.maximum(np.sqrt(ix * ix + iy * iy) - ir, sclera)
        sdf["pupil"] = np.maximum(np.sqrt(ix * ix + iy * iy) - ir * 0.45, sclera)
        sdf["glint"] = np.maximum(
            np.sqrt((ix + ir * 0.35) ** 2 + (iy + ir * 0.38) ** 2) - ir * 0.22, sclera
        )
        sdf["lid"] = np.maximum(np.abs(sclera) - 0.012, ey + eb * 0.25)

        # brows: bent, tilted ellipses above the eyes
        bcy = ecy - eb - _c(0.035 + 0.06 * p["brow_y"])
        tilt = _c((p["brow_tilt"] * 2.0 - 1.0) * 0.35)
        bx, by = _rot(ex, y - bcy, -tilt)
        by = by + 2.2 * bx * bx
        sdf["brows"] = _ellipse(bx, by, ea * 1.15, _c(0.013 + 0.016 * p["brow_thick"]))

        # nose: a short curved base (nostrils) plus a bridge shadow on one side
        ny = ecy + _c(0.13 + 0.13 * p["nose_len"]) * g.nose
        nw = _c(0.035 + 0.035 * p["nose_w"]) * g.nose
        nx = x - yaw * 1.3
        nb = _ellipse(nx, (y - ny) - 4.0 * nx * nx, nw, 0.014 * g.nose)
        bridge = _ellipse(
            nx - nw * 0.55, y - (ny - (ny - ecy) * 0.45), 0.008 * g.nose, (ny - ecy) * 0.4
        )
        sdf["nose"] = np.minimum(nb, bridge)

        # mouth: a bent ellipse (smile > 0.5 lifts the corners)
        my = np.minimum(ny + _c(0.07 + 0.10 * p["mouth_y"]), fb * 0.78)
        mw = _c(0.07 + 0.08 * p["mouth_w"]) * g.mouth
        curve = _c((p["mouth_curve"] * 2.0 - 1.0) * 3.2) / g.mouth
        mx = x - yaw * 1.1
        sdf["mouth"] = _ellipse(mx, (y - my) + curve * mx * mx, mw, 0.022 * g.mouth)
        sdf["cheeks"] = _ellipse(np.abs(mx) - fa * 0.55, y - (ny + 0.01), fa * 0.2, fa * 0.13)

        # hair (per-sample table lookup keeps it vectorised over the batch)
        h = _HAIR_TABLE[p.hair_style_index()]
        hl = p["hair_len"]
        cap_a = fa + _c(h[:, 0] + 0.03 * hl)
        cap_b = fb + _c(h[:, 1] + 0.04 * hl)
        cap = _ellipse(x, y + fb * 0.04, cap_a, cap_b)
        hairline = -fb * _c(h[:, 2]) + _c(h[:, 3]) * x * x / fa + _c(h[:, 4]) * np.abs(x)
        hairline = hairline + _c(0.06 * hl) * fb * (1.0 - _c(h[:, 4]))
        sdf["hair_front"] = np.maximum(cap, y - hairline)
        back_bottom = fb * _c(h[:, 7] + h[:, 8] * hl)
        back = _ellipse(
            x, y + fb * 0.1, fa * _c(h[:, 6] + 0.1 * hl), fb * 1.12 + np.maximum(back_bottom, 0)
        )
        back = np.maximum(back, y - back_bottom)
        back = np.where(_c(h[:, 5]) > 0.5, np.minimum(back, cap), cap)
        sdf["hair_back"] = back
        self.sdf = sdf

        # strands: fine stripes radiating from the crown, for hair texture
        crown_y = -fb * 1.15
        ang_h = np.arctan2(x, y - crown_y + 1e-3)
        self.strands = np.sin(ang_h * 46.0 + 3.0 * np.sin(ang_h * 7.0)).astype(np.float32)

        # fixed noise, shifted per face by an offset derived from its parameters
        bank = _noise_bank(s)
        offs = (np.abs(p.values[:, :4] * 9973.0).sum(1).astype(np.int64)) % s
        rows = np.arange(s)
        self.noise = bank[
            (rows[None, :, None] + offs[:, None, None]) % (2 * s), rows[None, None, :]
        ]

        # colours
        skin = _palette(p["skin_tone"], _SKIN)
        warm = (p["skin_warm"] * 2.0 - 1.0)[:, None] * np.array([0.03, 0.01, -0.05], np.float32)
        skin = np.clip(skin + warm, 0.0, 1.0)
        hair = _palette(p["hair_col"], _HAIR)
        bg = _hsv(p["bg_hue"], 0.35, 0.42 + 0.5 * p["bg_lum"])
        self.colour = {
            "skin": skin,
            "lips": np.clip(skin * np.float32([0.92, 0.55, 0.55]) + np.float32([0.08, 0, 0]), 0, 1),
            "iris": _palette(p["iris_col"], _IRIS),
            "hair": hair,
            "brows": hair * 0.75,
            "bg": bg,
            "bg2": np.clip(bg * 0.62 + 0.05, 0.0, 1.0),
            "cloth": _hsv(p["cloth_hue"], 0.55, 0.58),
        }
        self.bg_grad = p["bg_grad"]

    # -- painting helpers ------------------------------------------------------------------

    def cov(self, part: str | np.ndarray, soft: float = 1.0) -> np.ndarray:
        """Anti-aliased coverage [N,S,S] of a part (or an SDF); `soft` widens the edge in pixels."""
        d = self.sdf[part] if isinstance(part, str) else part
        return np.clip(0.5 - d / (self.px * soft), 0.0, 1.0)

    def line(self, part: str | np.ndarray, width_px: float, soft: float = 1.0) -> np.ndarray:
        """Coverage [N,S,S] of a `width_px` stroke (output pixels) centred on a part's outline."""
        d = self.sdf[part] if isinstance(part, str) else part
        half = 0.5 * width_px * self.ss * self.px
        return np.clip(0.5 - (np.abs(d) - half) / (self.px * soft), 0.0, 1.0)

    def background(
        self, top: np.ndarray | None = None, bottom: np.ndarray | None = None
    ) -> np.ndarray:
        """[N,S,S,3] vertical gradient from `top` to `bottom` ([N,3]); default: the identity's."""
        c1 = self.colour["bg"] if top is None else top
        c2 = self.colour["bg2"] if bottom is None else bottom
        g = self.bg_grad
        t = (self.Y[..., None] + 1.0) * 0.5  # [1,S,1,1]
        lo = np.where((g > 0.5)[:, None], c1, c2)[:, None, None, :]
        hi = np.where((g > 0.5)[:, None], c2, c1)[:, None, None, :]
        k = np.abs(g * 2.0 - 1.0)[:, None, None, None]
        mix = t * k
        return np.broadcast_to(lo * (1.0 - mix) + hi * mix, (self.n, self.s, self.s, 3)).copy()


def over(img: np.ndarray, colour: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Paint `colour` ([N,3] or [N,S,S,3] or [3]) over `img` [N,S,S,3] with coverage [N,S,S]."""
    c = np.asarray(colour, dtype=np.float32)
    if c.ndim == 2:
        c = c[:, None, None, :]
    a = alpha[..., None]
    img *= 1.0 - a
    img += c * a
    return img


PART_ORDER: tuple[str, ...] = (
    "hair_back",
    "neck",
    "shoulders",
    "ears",
    "face",
    "nose",
    "mouth",
    "sclera",
    "iris",
    "pupil",
    "glint",
    "brows",
    "hair_front",
)


def paint_parts(
    scene: Scene,
    img: np.ndarray,
    fills: dict[str, np.ndarray | None],
    lines: dict[str, float] | None = None,
    line_colour: np.ndarray | Sequence[float] = (0.0, 0.0, 0.0),
    soft: float = 1.0,
) -> np.ndarray:
    """Composite parts back to front (PART_ORDER): fill, then outline, so nearer parts hide lines.

    fills: part -> colour ([N,3], [N,S,S,3] or [3]); a part missing or None is not filled.
    lines: part -> stroke width in output pixels (missing: no outline).
    """
    lines = lines or {}
    ink = np.asarray(line_colour, dtype=np.float32)
    for part in PART_ORDER:
        colour = fills.get(part)
        if colour is not None:
            img = over(img, colour, scene.cov(part, soft))
        if part in lines:
            a = scene.line(part, lines[part], soft)
            if part in ("iris", "pupil", "glint"):
                a = a * scene.cov("sclera")
            img = over(img, ink, a)
    return img


# ----------------------------------------------------------------------------------------------
# Styles
# ----------------------------------------------------------------------------------------------

StyleFn = Callable[[Scene], np.ndarray]


@dataclasses.dataclass(frozen=True)
class Style:
    name: str
    description: str
    fn: StyleFn
    geometry: GeometryOptions = GeometryOptions()


#: name -> Style. `photo` is what the base model is trained on; every other entry is a reference
#: style for one-shot stylization. Hold styles out of any training with `style_names(exclude=...)`.
STYLES: dict[str, Style] = {}


def register_style(
    name: str, description: str, geometry: GeometryOptions | None = None
) -> Callable[[StyleFn], StyleFn]:
    """Decorator: add `fn(scene) -> [N,S,S,3] float32 in [0,1]` to STYLES under `name`."""

    def deco(fn: StyleFn) -> StyleFn:
        if name in STYLES:
            raise ValueError(f"register_style: style {name!r} is already registered")
        STYLES[name] = Style(name, description, fn, geometry or GeometryOptions())
        return fn

    return deco


class UnknownStyleError(ValueError, KeyError):
    """A style name that is not registered. A ValueError (the project's user errors) that is
    also a KeyError (what a registry lookup raised before), with a plain message."""

    __str__ = BaseException.__str__


def _unknown(who: str, names: Iterable[object]) -> UnknownStyleError:
    quoted = ", ".join(repr(str(n)[:40]) for n in names)
    return UnknownStyleError(
        f"{who}: unknown style {quoted}; known styles: {', '.join(STYLES)} (or register one "
        "with register_style / load_style_module)"
    )


def style_names(exclude: Iterable[str] = ()) -> list[str]:
    """Registered style names, registry order, without those in `exclude`. An unknown name
    in `exclude` raises `UnknownStyleError` (a ValueError) listing the known styles."""
    ex = {str(e) for e in exclude}
    unknown = ex - set(STYLES)
    if unknown:
        raise _unknown("style_names", sorted(unknown))
    return [s for s in STYLES if s not in ex]


def load_style_module(path: str | os.PathLike) -> list[str]:
    """Run the Python file ``path``, whose ``@register_style`` calls add styles that this package
    has never seen (held-out styles for an independent quality check); returns their names.

    Each file runs once per process (a second call returns the same names). Raises ValueError
    naming the file when it is missing, not a ``.py`` file, fails while it runs (the error is
    quoted), or registers no style."""
    p = Path(path).expanduser().resolve()
    if p in _STYLE_MODULES:
        return list(_STYLE_MODULES[p])
    if not p.is_file():
        raise ValueError(f"style module {path}: no such file")
    if p.suffix != ".py":
        raise ValueError(
            f"style module {path}: must be a Python file (.py) that calls register_style"
        )
    before = set(STYLES)
    name = f"jojogan_toy_styles_{len(_STYLE_MODULES)}_{p.stem}"
    spec = importlib.util.spec_from_file_location(name, p)
    if spec is None or spec.loader is None:
        raise ValueError(f"style module {path}: cannot be imported")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    try:
        spec.loader.exec_module(mod)
    except Exception as e:
        sys.modules.pop(name, None)
        for s in set(STYLES) - before:  # a half-run file leaves nothing registered
            del STYLES[s]
        raise ValueError(f"style module {path} failed while it ran: {type(e).__name__}: {e}") from e
    new = [s for s in STYLES if s not in before]
    if not new:
        raise ValueError(
            f"style module {path} registered no style: decorate a function with "
            "@jojogan.toy.render.register_style('name', 'description')"
        )
    _STYLE_MODULES[p] = tuple(new)
    return new


_STYLE_MODULES: dict[Path, tuple[str, ...]] = {}


@register_style("photo", "soft shading, gradients and slight texture: the base model's domain")
def _photo(sc: Scene) -> np.ndarray:
    c = sc.colour
    img = sc.background()
    img += (sc.noise * 0.012)[..., None]
    # hair behind the head, with strands and a soft gloss
    hair_tex = (1.0 + 0.10 * sc.strands + 0.04 * sc.noise)[..., None]
    gloss = np.clip(1.0 - ((sc.x + 0.12) ** 2 + (sc.y + sc.fb * 0.8) ** 2) / 0.05, 0.0, 1.0)
    hair = c["hair"][:, None, None] * hair_tex + (0.16 * gloss)[..., None]
    img = over(img, hair * 0.82, sc.cov("hair_back", 1.5))
    # skin shading: darker at the rim and to the right (light from the upper left)
    light = (1.0 - 0.12 * np.clip(sc.x / sc.fa, -1.0, 1.0) - 0.05 * sc.y)[..., None]
    skin = c["skin"][:, None, None]
    neck_shadow = 0.62 + 0.3 * np.clip((sc.y - sc.fb * 0.9) / 0.25, 0.0, 1.0)
    img = over(img, skin * neck_shadow[..., None], sc.cov("neck", 1.3))
    # shirt with soft fold shading
    fold = (1.0 - 0.18 * np.clip(np.abs(sc.x) - 0.2, 0.0, 1.0))[..., None]
    img = over(img, c["cloth"][:, None, None] * fold, sc.cov("shoulders", 1.3))
    img = over(img, skin * 0.86 * light, sc.cov("ears", 1.3))
    rim = (0.74 + 0.26 * np.sqrt(sc.face_in))[..., None]
    face = skin * rim * light * (1.0 + 0.02 * sc.noise[..., None])
    img = over(img, face, sc.cov("face", 1.3))
    blush = np.clip(-sc.sdf["cheeks"] / 0.06, 0.0, 1.0) * 0.22
    img = over(img, np.array([0.85, 0.35, 0.35], np.float32), blush * sc.cov("face"))
    img = over(img, skin * 0.66 * light, sc.cov("nose", 2.0) * 0.8)
    img = over(img, c["lips"], sc.cov("mouth", 1.4))
    img = over(img, np.float32([0.95, 0.94, 0.92]) * (0.9 + 0.1 * light), sc.cov("sclera", 1.2))
    iris = c["iris"][:, None, None] * (0.8 + 0.35 * np.clip(sc.noise, -1, 1) * 0.2)[..., None]
    img = over(img, iris, sc.cov("iris", 1.2))
    img = over(img, np.float32([0.05, 0.04, 0.04]), sc.cov("pupil", 1.2))
    img = over(img, np.float32([1.0, 1.0, 1.0]), sc.cov("glint", 1.2) * 0.9)
    img = over(img, skin * 0.35, sc.cov("lid", 1.2) * 0.85)
    img = over(img, c["brows"], sc.cov("brows", 1.3) * 0.92)
    # hair in front, with a shadow it casts on the forehead
    shadow = np.clip(0.5 - (sc.sdf["hair_front"] - 0.025) / 0.03, 0.0, 1.0) * sc.cov("face") * 0.25
    img = over(img, np.float32([0.0, 0.0, 0.0]), shadow)
    img = over(img, hair, sc.cov("hair_front", 1.5))
    return img


def _gray(v: np.ndarray) -> np.ndarray:
    return np.repeat(v[..., None], 3, axis=-1)


def _figure(sc: Scene) -> np.ndarray:
    """[N,S,S] coverage of the person (everything but the background)."""
    fig = np.maximum(sc.cov("hair_back"), sc.cov("shoulders"))
    fig = np.maximum(fig, sc.cov("neck"))
    fig = np.maximum(fig, sc.cov("ears"))
    return np.maximum(fig, sc.cov("face"))


def _flat_tone(sc: Scene) -> np.ndarray:
    """[N,S,S] luma of a flat, texture-free colouring (for styles that threshold tones)."""
    c = sc.colour
    img = sc.background()
    skin = c["skin"]
    fills = {
        "hair_back": c["hair"],
        "neck": skin * 0.8,
        "shoulders": c["cloth"],
        "ears": skin * 0.9,
        "face": skin[:, None, None] * (0.8 + 0.2 * np.sqrt(sc.face_in))[..., None],
        "nose": skin * 0.75,
        "mouth": c["lips"],
        "sclera": np.float32([0.95, 0.95, 0.95]),
        "iris": c["iris"],
        "pupil": np.float32([0.0, 0.0, 0.0]),
        "glint": np.float32([1.0, 1.0, 1.0]),
        "brows": c["brows"],
        "hair_front": c["hair"],
    }
    return _luma(paint_parts(sc, img, fills))


@register_style("sketch", "graphite pencil on paper: grayscale, soft outlines, diagonal hatching")
def _sketch(sc: Scene) -> np.ndarray:
    fig = _figure(sc)
    tone = _flat_tone(sc) * fig + 0.97 * (1.0 - fig)
    paper = 0.95 + 0.015 * sc.noise
    per = 4.0 * sc.ss
    d1 = (sc.X + sc.Y) * (sc.s / 2.0) / per
    d2 = (sc.X - sc.Y) * (sc.s / 2.0) / per
    h1 = np.clip(1.0 - np.abs(d1 - np.round(d1)) * 4.0, 0.0, 1.0)  # 1 on a stroke, 0 between
    h2 = np.clip(1.0 - np.abs(d2 - np.round(d2)) * 4.0, 0.0, 1.0)
    dark = 1.0 - tone
    s1 = np.clip((dark - 0.3) * 2.5, 0.0, 1.0)
    s2 = np.clip((dark - 0.65) * 3.0, 0.0, 1.0)
    val = paper * (1.0 - 0.25 * dark) * (1.0 - 0.5 * s1 * h1) * (1.0 - 0.5 * s2 * h2)
    shaded = _gray(val.astype(np.float32))
    lines = {k: 1.0 for k in ("hair_back", "shoulders", "neck", "ears", "face", "nose", "mouth")}
    lines.update({"sclera": 0.9, "iris": 0.8, "brows": 0.8, "hair_front": 1.0})
    # every part is filled with the shaded paper itself, so nearer parts hide farther lines
    fills: dict[str, np.ndarray | None] = {k: shaded for k in PART_ORDER}
    fills.update({"pupil": np.float32([0.2] * 3), "brows": np.float32([0.35] * 3)})
    return paint_parts(sc, shaded.copy(), fills, lines, (0.22, 0.22, 0.22), soft=1.4)


@register_style("cartoon", "flat colour fills with thick black outlines, rounder head")
def _cartoon(sc: Scene) -> np.ndarray:
    c = sc.colour
    flat_bg = np.clip(c["bg"] * 1.15, 0, 1)
    img = sc.background(flat_bg, flat_bg)
    skin = np.clip(c["skin"] * 1.08, 0, 1)
    fills = {
        "hair_back": c["hair"],
        "shoulders": c["cloth"],
        "neck": skin * 0.85,
        "ears": skin,
        "face": skin,
        "mouth": np.clip(c["lips"] * 0.8, 0, 1),
        "sclera": np.float32([1.0, 1.0, 1.0]),
        "iris": c["iris"],
        "pupil": np.float32([0.0, 0.0, 0.0]),
        "glint": np.float32([1.0, 1.0, 1.0]),
        "brows": np.float32([0.05, 0.05, 0.05]),
        "hair_front": c["hair"],
    }
    lines = {k: 2.2 for k in ("hair_back", "shoulders", "neck", "ears", "face", "hair_front")}
    lines.update({"sclera": 1.6, "nose": 1.5, "mouth": 1.6})
    return paint_parts(sc, img, fills, lines, (0.02, 0.02, 0.02))


@register_style(
    "big_eyes",
    "anime-like: huge tall eyes with big highlights, tiny nose and mouth, pastel cel shading",
    GeometryOptions(eye_w=1.5, eye_h=2.3, iris=1.0, eye_drop=0.1, nose=0.5, mouth=0.6, jaw=1.5),
)
def _big_eyes(sc: Scene) -> np.ndarray:
    c = sc.colour
    pastel = np.float32([0.98, 0.93, 0.95])
    img = sc.background(np.broadcast_to(pastel, c["bg"].shape), np.clip(c["bg"] * 0.4 + 0.6, 0, 1))
    skin = np.clip(c["skin"] * 0.5 + 0.52, 0, 1)
    hair = np.clip(c["hair"] * 0.8 + 0.25 * _hsv(sc.params["hair_col"], 0.6, 1.0), 0, 1)
    cel = np.where(sc.x > sc.fa * 0.35, 0.88, 1.0)[..., None].astype(np.float32)
    fills = {
        "hair_back": hair,
        "shoulders": np.clip(c["cloth"] * 0.6 + 0.4, 0, 1),
        "neck": skin * 0.88,
        "ears": skin,
        "face": skin[:, None, None] * cel,
        "mouth": np.float32([0.75, 0.3, 0.35]),
        "sclera": np.float32([1.0, 1.0, 1.0]),
        "iris": np.clip(c["iris"] * 1.3, 0, 1)[:, None, None]
        * (0.6 + 0.5 * np.clip((sc.y - sc.fb * -0.1) / 0.15 + 0.5, 0, 1))[..., None],
        "pupil": np.float32([0.08, 0.05, 0.12]),
        "glint": np.float32([1.0, 1.0, 1.0]),
        "brows": hair * 0.6,
        "hair_front": hair,
    }
    lines = {k: 1.0 for k in ("hair_back", "face", "hair_front", "neck", "shoulders")}
    lines.update({"iris": 0.8, "mouth": 0.6})
    img = paint_parts(sc, img, fills, lines, (0.25, 0.12, 0.15))
    img = over(img, np.float32([0.1, 0.05, 0.1]), sc.line("sclera", 1.6) * (sc.y < 0) * 1.0)
    blush = sc.cov("cheeks") * sc.cov("face") * 0.35
    return over(img, np.float32([1.0, 0.5, 0.6]), blush)


_POP = np.stack([hex_rgb(h) for h in ("#140a28", "#e6007e", "#00a6e6", "#ffe600", "#fffaf0")])
_POP_BG = np.stack([hex_rgb(h) for h in ("#ff5a00", "#00c060", "#9b30ff", "#00a6e6")])


@register_style(
    "popart", "posterised into a fixed saturated palette with halftone dots, Warhol-like"
)
def _popart(sc: Scene) -> np.ndarray:
    tone = _flat_tone(sc)
    levels = np.digitize(tone, np.float32([0.15, 0.35, 0.55, 0.75]))
    img = _POP[levels].astype(np.float32)
    # background: one of four loud colours, chosen by the identity's background hue
    bgc = _POP_BG[np.minimum((sc.params["bg_hue"] * 4).astype(np.int64), 3)]
    face_zone = _figure(sc)
    img = over(img, bgc, 1.0 - face_zone)
    # halftone dots on the mid tones
    per = 5.0 * sc.ss
    u = (sc.X + 1.0) * (sc.s / 2.0) / per
    v = (sc.Y + 1.0) * (sc.s / 2.0) / per
    dots = np.sqrt((u - np.round(u)) ** 2 + (v - np.round(v)) ** 2)
    dot_cov = np.clip((0.28 - dots) * per, 0.0, 1.0) * ((levels == 2) | (levels == 3))
    img = over(img, np.float32([1.0, 1.0, 1.0]), dot_cov * 0.7 * face_zone)
    lines = {"face": 1.4, "hair_front": 1.4, "sclera": 1.0, "mouth": 1.0, "brows": 1.0}
    return paint_parts(sc, img, {}, lines, _POP[0])


@register_style("ink", "monochrome brush ink: solid black hair and features on white, bold strokes")
def _ink(sc: Scene) -> np.ndarray:
    white = np.float32([0.97, 0.96, 0.94])
    black = np.float32([0.04, 0.04, 0.05])
    img = np.broadcast_to(white, (sc.n, sc.s, sc.s, 3)).copy()
    tone = np.clip(sc.params["hair_col"] * 1.2, 0, 1)  # light hair: outline only
    hair_fill = np.where(tone[:, None] < 0.6, black, white)
    fills = {
        "hair_back": hair_fill,
        "shoulders": black,
        "neck": white,
        "ears": white,
        "face": white,
        "nose": black,
        "mouth": black,
        "sclera": white,
        "iris": black,
        "glint": white,
        "brows": black,
        "hair_front": hair_fill,
    }
    lines = {k: 1.8 for k in ("hair_back", "neck", "ears", "face", "hair_front")}
    lines["sclera"] = 1.4
    img = paint_parts(sc, img, fills, lines, black)
    # a solid shadow block on the right side of the face
    shade = (sc.x > sc.fa * 0.55) & (sc.face_in < 0.8)
    return over(img, black, shade * sc.cov("face") * (1.0 - sc.cov("hair_front")) * 0.9)


_NEON = {
    "hair": hex_rgb("#ff2fd0"),
    "skin": hex_rgb("#27f0ff"),
    "eyes": hex_rgb("#c8ff3a"),
    "mouth": hex_rgb("#ff8a3a"),
    "cloth": hex_rgb("#8c5cff"),
}
_NEON_PART = {
    "hair_back": "hair",
    "neck": "skin",
    "shoulders": "cloth",
    "ears": "skin",
    "face": "skin",
    "nose": "mouth",
    "mouth": "mouth",
    "sclera": "eyes",
    "iris": "eyes",
    "brows": "hair",
    "hair_front": "hair",
}


@register_style("neon", "glowing neon outlines in a fixed palette on a near-black background")
def _neon(sc: Scene) -> np.ndarray:
    dark = np.float32([0.03, 0.03, 0.08])
    img = sc.background(np.broadcast_to(dark * 1.6, (sc.n, 3)), np.broadcast_to(dark, (sc.n, 3)))
    for part in PART_ORDER:
        if part not in _NEON_PART:
            continue
        colour = _NEON[_NEON_PART[part]]
        if part not in ("iris", "nose", "brows"):  # occlude farther lines
            img = over(img, dark, sc.cov(part))
        small = part in ("nose", "mouth", "iris", "brows", "sclera")
        glow = sc.line(part, 1.2, soft=2.5) * 0.3 if small else sc.line(part, 2.5, soft=5.0) * 0.45
        core = sc.line(part, 0.7 if small else 0.9)
        if part == "iris":
            glow, core = glow * sc.cov("sclera"), core * sc.cov("sclera")
        img = over(img, colour, glow)
        img = over(img, np.clip(colour * 0.5 + 0.55, 0, 1), core)
    return img


def _wash(sc: Scene, d: np.ndarray, wobble: float = 0.02) -> tuple[np.ndarray, np.ndarray]:
    """(soft coverage, pigment pooled at the edge) of a watercolour wash over an SDF."""
    d = d + sc.noise * wobble
    cov = np.clip(0.5 - d / (sc.px * 3.0), 0.0, 1.0)
    edge = np.clip(1.0 - np.abs(d) / (sc.px * 4.0), 0.0, 1.0) * cov
    return cov, edge


@register_style("watercolor", "soft watercolour washes with wobbly pooled edges on grainy paper")
def _watercolor(sc: Scene) -> np.ndarray:
    c = sc.colour
    paper = np.float32([0.97, 0.95, 0.9])
    img = np.broadcast_to(paper, (sc.n, sc.s, sc.s, 3)).copy()
    img *= (1.0 + 0.03 * sc.noise)[..., None]

    def tint(col: np.ndarray, k: float = 0.55) -> np.ndarray:
        return (col * k + paper * (1.0 - k)).astype(np.float32)

    bg_cov = np.clip(0.35 + 0.25 * sc.noise, 0.0, 1.0) * (0.6 + 0.4 * (sc.Y + 1.0) * 0.5)
    img = over(img, tint(c["bg"], 0.5), bg_cov * (1.0 - _figure(sc)) * 0.8)
    washes = (
        ("hair_back", tint(c["hair"], 0.7)),
        ("neck", tint(c["skin"] * 0.9)),
        ("shoulders", tint(c["cloth"])),
        ("ears", tint(c["skin"])),
        ("face", tint(c["skin"])),
        ("mouth", tint(c["lips"], 0.8)),
        ("sclera", paper),
        ("iris", tint(c["iris"], 0.8)),
        ("brows", tint(c["brows"], 0.7)),
        ("hair_front", tint(c["hair"], 0.7)),
    )
    for part, colour in washes:
        cov, edge = _wash(sc, sc.sdf[part], 0.0 if part in ("iris", "sclera") else 0.012)
        img = over(img, colour, cov * 0.92)
        img = over(img, colour * 0.7, edge * 0.5)
    brown = np.float32([0.35, 0.25, 0.2])
    for part, width in (("sclera", 0.7), ("nose", 0.6), ("mouth", 0.6)):
        img = over(img, brown, sc.line(part, width, soft=1.5) * 0.6)
    img = over(img, np.float32([0.1, 0.08, 0.08]), sc.cov("pupil") * 0.8)
    return img


# ----------------------------------------------------------------------------------------------
# Entry points
# ----------------------------------------------------------------------------------------------


def _as_params(params: FaceParams | Sequence[FaceParams] | np.ndarray) -> FaceParams:
    if isinstance(params, FaceParams):
        return params
    if isinstance(params, np.ndarray):
        return FaceParams(params)
    if (
        isinstance(params, (list, tuple))
        and params
        and all(isinstance(p, FaceParams) for p in params)
    ):
        return FaceParams.concat(params)
    raise TypeError(
        "render: params must be FaceParams, a list of FaceParams or a [N, P] array, "
        f"got {type(params).__name__}"
    )


def _check(style: str, size: int) -> Style:
    if not isinstance(style, str) or style not in STYLES:
        raise _unknown("render", [style])
    if not isinstance(size, (int, np.integer)) or size < 8 or size > 2048:
        raise ValueError(f"render: size must be an int in [8, 2048], got {size!r}")
    return STYLES[style]


#: Working memory (bytes) that one chunk of faces may use while it renders; above it the faces
#: render one at a time. Peak memory is then about the output plus one chunk, whatever the count.
RENDER_WORK_BYTES = 512 << 20
#: Measured working memory of one face, per supersampled pixel: ~50 float32 fields of the grid
#: (distance fields, coverages, colour layers, the noise texture), across the built-in styles.
_WORK_BYTES_PER_PX = 200


def render_chunk_size(size: int, chunk: int | None = None) -> int:
    """Faces per chunk at ``size`` px: ``chunk`` when given, else as many (at most 32) as fit
    `RENDER_WORK_BYTES`, and at least one. Chunking never changes the pixels."""
    if chunk is not None:
        if isinstance(chunk, bool) or not isinstance(chunk, (int, np.integer)) or chunk < 1:
            raise ValueError(f"render: chunk must be an integer >= 1, got {chunk!r}")
        return int(chunk)
    per_face = _WORK_BYTES_PER_PX * (2 * int(size)) ** 2
    return int(max(1, min(32, RENDER_WORK_BYTES // per_face)))


def _prepare(
    params: FaceParams | Sequence[FaceParams] | np.ndarray,
    style: str,
    size: int,
    chunk: int | None,
    bytes_per_value: int,
) -> tuple[Style, FaceParams, int]:
    """Check the style, size and params, refuse an output over the budget (before anything is
    allocated), and choose the chunk."""
    from ..images import check_output_budget  # inside: images needs torch; render does not

    st = _check(style, size)
    p = _as_params(params)
    check_output_budget(
        len(p),
        int(size),
        int(size),
        what=f"render: {len(p)} faces at size {int(size)}",
        bytes_per_value=bytes_per_value,
    )
    return st, p, render_chunk_size(size, chunk)


def _chunks(p: FaceParams, st: Style, size: int, chunk: int) -> Iterator[tuple[int, np.ndarray]]:
    """(first index, [n, size, size, 3] float32 in [0, 1]) for each chunk of ``chunk`` faces;
    each chunk's scene is freed before the next is built."""
    ss = 2
    for i in range(0, len(p), chunk):
        sub = p[i : i + chunk]
        scene = Scene(sub, int(size), st.geometry, ss)
        img = st.fn(scene)
        del scene
        img = img.reshape(len(sub), size, ss, size, ss, 3).mean(axis=(2, 4))
        yield i, np.clip(img, 0.0, 1.0)


def render_float(
    params: FaceParams | Sequence[FaceParams] | np.ndarray,
    style: str = "photo",
    size: int = 64,
    chunk: int | None = None,
) -> np.ndarray:
    """[N, size, size, 3] float32 in [0, 1] (2x supersampled, box-filtered).

    Rendered ``chunk`` faces at a time into one preallocated output (default: as many as fit
    `RENDER_WORK_BYTES`, see `render_chunk_size`), so memory peaks near the output's size. An
    output over `jojogan.images.check_output_budget` is refused before anything is allocated;
    an unknown style is an `UnknownStyleError` (a ValueError) listing the known ones."""
    st, p, chunk = _prepare(params, style, size, chunk, 4)
    out = np.empty((len(p), size, size, 3), dtype=np.float32)
    for i, img in _chunks(p, st, size, chunk):
        out[i : i + len(img)] = img
    return out


def render_batch(
    params: FaceParams | Sequence[FaceParams] | np.ndarray,
    style: str = "photo",
    size: int = 64,
    chunk: int | None = None,
) -> np.ndarray:
    """Render N faces: uint8 [N, size, size, 3]. Deterministic in (params, style, size);
    chunked as `render_float` (only the uint8 output is held whole)."""
    st, p, chunk = _prepare(params, style, size, chunk, 1)
    out = np.empty((len(p), size, size, 3), dtype=np.uint8)
    for i, img in _chunks(p, st, size, chunk):
        out[i : i + len(img)] = (img * 255.0 + 0.5).astype(np.uint8)
    return out


def render(params: FaceParams, style: str = "photo", size: int = 64) -> np.ndarray:
    """Render one face (`params` of length 1): uint8 [size, size, 3]."""
    p = _as_params(params)
    if len(p) != 1:
        raise ValueError(f"render: expects one face, got {len(p)}; use render_batch for a batch")
    return render_batch(p, style, size)[0]


def render_torch(
    params: FaceParams | Sequence[FaceParams] | np.ndarray,
    style: str = "photo",
    size: int = 64,
    device: object = None,
    chunk: int | None = None,
):
    """Render N faces as a torch float32 tensor [N, 3, size, size] in [-1, 1] on `device`;
    chunked as `render_float` (the output is allocated once, on the CPU)."""
    import torch  # inside: the renderer itself is numpy only

    st, p, chunk = _prepare(params, style, size, chunk, 4)
    out = torch.empty((len(p), 3, size, size), dtype=torch.float32)
    for i, img in _chunks(p, st, size, chunk):
        part = out[i : i + len(img)]
        part.copy_(torch.from_numpy(img).permute(0, 3, 1, 2))
        part.mul_(2.0).sub_(1.0)
    return out.to(device) if device is not None else out


def sample_photos(
    seed: int | np.random.Generator, n: int, size: int = 64, style: str = "photo"
) -> tuple[FaceParams, np.ndarray]:
    """Sample N identities and render them: (params, uint8 [N, size, size, 3])."""
    p = sample_params(seed, n)
    return p, render_batch(p, style, size)


def style_grid(
    n: int = 6, size: int = 64, seed: int = 0, styles: Sequence[str] | None = None
) -> np.ndarray:
    """uint8 sample sheet [n*size, len(styles)*size, 3]: rows = identities, columns = styles."""
    names = list(styles) if styles is not None else list(STYLES)
    p = sample_params(seed, n)
    cols = [render_batch(p, s, size) for s in names]  # each [n, size, size, 3]
    return np.concatenate([np.concatenate(list(c), 0) for c in cols], 1)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m jojogan.toy.render --grid docs/toy_styles.png`: write the style sample sheet."""
    ap = argparse.ArgumentParser(prog="python -m jojogan.toy.render", description=main.__doc__)
    ap.add_argument("--grid", required=True, help="output PNG path")
    ap.add_argument("--n", type=int, default=6, help="identities (rows)")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--scale", type=int, default=2, help="nearest-neighbour upscale for viewing")
    a = ap.parse_args(argv)
    grid = style_grid(a.n, a.size, a.seed)
    img = Image.fromarray(grid)
    if a.scale > 1:
        img = img.resize((img.width * a.scale, img.height * a.scale), Image.NEAREST)
    img.save(a.grid, optimize=True)
    print(f"wrote {a.grid}: {a.n} identities x {len(STYLES)} styles ({', '.join(STYLES)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
