"""Fuzz the node layer the way ComfyUI's HTTP API drives it (issue 28).

The API enforces nothing the frontend shows, so every node gets its inputs built from its own
INPUT_TYPES (defaults, the first choice of a combo, tiny real models and images for the
sockets), then ONE value replaced at a time by a bad one: every case of the issue (quoted above
its rows) and, for every widget, the classes of input behind them (wrong type, out of range,
NaN/inf, huge int, empty/huge text, paths for file names, unknown choice, degenerate tensors).
Each case must give, within a time and a memory bound, either a ValueError that starts with the
node's display name and names the widget, or a correct result; the next good request must still
work. The count of cases tried is printed. A longer sweep (several bad values at once, drawn at
random) runs with ``-m slow``.
"""

from __future__ import annotations

import dataclasses
import math
import os
import random
import resource
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tests.tiny_models import tiny_d, tiny_g

ROOT = Path(__file__).resolve().parents[1]
TIME_LIMIT_S = 5.0  # per case
MEMORY_LIMIT_MB = 200  # per case: Python allocations (tracemalloc) and the process's peak RSS
BUDGET_GB = "0.25"  # $JOJOGAN_MAX_OUTPUT_GB while fuzzing: refusals do not depend on the machine
SECRET = "root:x:0:0:fuzz-secret-line"  # a file outside the model folder; never quoted

TOY = "JoJoGAN_ToyRender"
INVERT = "JoJoGAN_Invert"
BMD = "JoJoGAN_BuildMixedDataset"
FINETUNE = "JoJoGAN_Finetune"
STYLIZE = "JoJoGAN_Stylize"
INTERP = "JoJoGAN_InterpolateStyle"
SAMPLE = "JoJoGAN_SampleStyled"
ALIGN = "JoJoGAN_AlignFaces"
VIDEO = "JoJoGAN_AlignVideo"
PASTE = "JoJoGAN_PasteBack"
SAVE = "JoJoGAN_SaveStyleModel"
LOAD_G = "JoJoGAN_LoadStyleGAN2"
LOAD_STYLE = "JoJoGAN_LoadStyleModel"
LOAD_ENC = "JoJoGAN_LoadEncoder"
LOAD_ARC = "JoJoGAN_LoadArcFace"
LOAD_DET = "JoJoGAN_LoadFaceDetector"
LOAD_TOY = "JoJoGAN_LoadToyModel"
WIDGETS = {"INT", "FLOAT", "STRING", "BOOLEAN"}
FILE_WIDGETS = {"ckpt_name", "encoder_name", "model_name", "style_name"}
LAYER_WIDGETS = {"blend_layers", "layers", "feature_layers", "train_layers"}
# Widget values that keep a good run fast (the API may send any value within the limits).
FAST = {
    FINETUNE: {"steps": 1, "preview_every": 0},
    INVERT: {"steps": 2},
    ALIGN: {"size": 32, "min_face": 1.0},
    VIDEO: {"size": 32, "min_face": 1.0},
}
# Nodes whose good run needs a file that cannot exist here (real e4e/ArcFace weights): their
# default input is the missing-file error, which must name the widget too.
MISSING_FILE = {LOAD_ENC: "encoder_name", LOAD_ARC: "model_name"}


@dataclasses.dataclass
class Case:
    """One bad input: ``node`` gets ``value`` for ``widget`` (the rest from its defaults, plus
    ``also``). expect: "error" (a ValueError naming node and widget) or "any" (that, or a
    correct result). A str value starting with "@" names a value from the world fixture."""

    node: str
    widget: str
    value: Any
    expect: str = "error"
    also: dict = dataclasses.field(default_factory=dict)
    xfail: str = ""

    def __str__(self) -> str:
        v = self.value
        shown = v if isinstance(v, str) and v.startswith(("@", "~")) else _short(v)
        return f"{self.node}.{self.widget}={shown}"


def _short(v: Any) -> str:
    if isinstance(v, torch.Tensor):
        return f"tensor{list(v.shape)}:{v.dtype}:{v.device.type}"
    r = repr(v)
    return r if len(r) <= 30 else r[:27] + "..."


# ------------------------------------------------------------------- the issue's cases, quoted

ISSUE_CASES = [
    # "a layer string "0-99999999" (Build Mixed Dataset `layers`, Finetune `feature_layers`,
    # Invert `blend_layers`) expands to 10^8 integers: ~50 s and an error message of ~1 GB"
    Case(BMD, "layers", "0-99999999", also={"preset": "custom"}),
    Case(FINETUNE, "feature_layers", "0-99999999"),
    Case(FINETUNE, "train_layers", "0-99999999"),
    Case(INVERT, "blend_layers", "0-99999999", also={"method": "blend"}),
    # "Toy Render `count=256, size=1024` (inside the widget limits) needs ~0.7 GB per face and
    # the OOM killer takes the whole ComfyUI server"
    Case(TOY, "count", 256, also={"size": 1024}),
    # "64 faces at 1024 px raise a raw MemoryError"
    Case(TOY, "count", 64, also={"size": 1024}),
    # "A zip-bomb `.pt` allocates the size it claims before anything checks it."
    Case(LOAD_G, "ckpt_name", "@zip_bomb"),
    # "loaders accept `../` and absolute names through the API
    # (`style_name="../../../../etc/passwd"`, `ckpt_name="/etc/passwd"`, symlinks out of the
    # folder) and the error quotes the file's first bytes ("root:x:0:0:...")"
    Case(LOAD_STYLE, "style_name", "../../../../etc/passwd"),
    Case(LOAD_G, "ckpt_name", "/etc/passwd"),
    Case(LOAD_G, "ckpt_name", "@secret_path"),
    Case(LOAD_G, "ckpt_name", "@symlink_out"),
    Case(LOAD_STYLE, "style_name", "@symlink_out"),
    # "Raw tracebacks: Interpolate Style `count=0` ("stack expects a non-empty TensorList")"
    Case(INTERP, "count", 0),
    # "Toy Render with an unknown style (KeyError)"
    Case(TOY, "style", "no_such_style"),
    # "Align Faces on a 1x1 image"
    Case(ALIGN, "images", "@image_1x1"),
    # "image size 100000"
    Case(ALIGN, "size", 100_000),
    Case(VIDEO, "size", 100_000),
    # "`preview_count=-1`"
    Case(BMD, "preview_count", -1),
    # "meta tensors"
    Case(INVERT, "images", "@image_meta"),
    Case(BMD, "references", "@image_meta"),
    Case(STYLIZE, "latent", "@latent_meta"),
    # "IMAGE tensors with requires_grad"
    Case(INVERT, "images", "~grad", expect="any"),
    Case(BMD, "references", "~grad", expect="any"),
    Case(FINETUNE, "references", "~grad", expect="any"),
    Case(PASTE, "stylized", "~grad", expect="any"),
    # "`seed=2**64`, None or NaN get generic messages" (every seed widget: the class rows below)
    Case(TOY, "seed", 2**64),
    Case(FINETUNE, "seed", None),
    Case(SAMPLE, "seed", math.nan),
    # "errors name the core's parameter (`n`) instead of the widget (`count`)"
    Case(SAMPLE, "count", 0),
    Case(INTERP, "count", -3),
    # "Silently wrong: 1x1 references accepted by Build Mixed Dataset and Finetune"
    Case(BMD, "references", "@image_1x1"),
    Case(FINETUNE, "references", "@image_1x1"),
    # "NaN latent codes give a NaN image"
    Case(STYLIZE, "latent", "@latent_nan"),
    Case(INTERP, "latent", "@latent_nan"),
    Case(BMD, "latent", "@latent_nan"),
    Case(FINETUNE, "latent", "@latent_nan"),
    Case(FINETUNE, "dataset", "@dataset_nan", also={"references": None, "latent": None}),
    # "`layers` ignored unless preset is `custom` (no warning)": refused, the tooltip says so
    Case(BMD, "layers", "0-3", also={"preset": "full"}),
    # "raw OSErrors on save (read-only folder, file name too long)"
    Case(SAVE, "filename_prefix", "a" * 300),
    Case(SAVE, "filename_prefix", "@prefix_in_a_file"),
    # Not reachable through a node's inputs, tested where they live: "a bfloat16 model saved
    # as float32" and "fp16 overflow reported as NaN" (tests/test_style_model.py,
    # tests/test_checkpoints.py); "Load Toy Model accepts NaN weights" (no inputs:
    # $JOJOGAN_TOY_DIR, tests/test_toy_weights.py); the model cache's growth and the ops
    # switches under concurrent prompts (tests/test_nodes.py, tests/test_ops.py).
]


# ------------------------------------------------------------------------- the classes of input


def class_cases(node: str, name: str, spec: tuple) -> list[Case]:
    """Bad values of every class for one input, from its own INPUT_TYPES entry."""
    kind, opts = spec[0], (spec[1] if len(spec) > 1 else {})
    lo, hi = opts.get("min"), opts.get("max")
    bad: list[Any] = []
    expect_any: list[Any] = []
    if isinstance(kind, list):
        bad = [None, 5, "", "no_such_choice", "x" * 100_000, ["a"]]
        if name in FILE_WIDGETS:
            bad += ["../..", "../../../../etc/passwd", "/etc/passwd", "..\\..\\evil.pt", "a\x00b"]
    elif kind == "INT":
        bad = [None, "5", 1.5, True, math.nan, math.inf, 2**64, -(2**64)]
        bad += [v for v in (lo - 1 if lo is not None else None, hi + 1 if hi else None) if v]
        if lo == 0:
            bad.append(-1)
    elif kind == "FLOAT":
        bad = [None, "0.5", True, math.nan, math.inf, -math.inf, 2**64, [0.5]]
        if lo is not None:
            bad.append(lo - 1.0)
        if hi is not None:
            bad.append(hi + 1.0)
    elif kind == "STRING":
        bad = [None, 5, "x" * 100_000]
        if name in LAYER_WIDGETS:
            bad += ["0-99999999", "seven", "5-3", "-1", "../..", "1" * 5000]
        else:
            bad += ["../..", "/etc/passwd", "", "a/../../b"]
    elif kind == "BOOLEAN":
        bad = [None, "false", 2, math.nan]
    elif kind == "IMAGE":
        bad = [None, "nope", "@image_1x1", "@image_empty", "@image_nan", "@image_meta"]
        bad += ["@image_rank3", "@image_channels_first", "@image_uint8", "@image_255"]
        expect_any = ["~grad", "~float64"]  # the node's own good image, changed
    else:  # our sockets
        bad = ["nope", 3]
        if kind == "JOJOGAN_LATENT":
            bad += ["@latent_nan", "@latent_meta", "@latent_empty", "@latent_other_size"]
    cases = [Case(node, name, v) for v in bad]
    cases += [Case(node, name, v, expect="any") for v in expect_any]
    return cases


# ---------------------------------------------------------------------------------- the world


class FakeEncoder(torch.nn.Module):
    """An encoder that gives the generator's mean code for any image."""

    input_size = 32

    def __init__(self, g):
        super().__init__()
        with torch.no_grad():
            self.register_buffer("w", g.mean_latent(64)[:, None].expand(1, g.n_latent, -1).clone())

    def forward(self, x):
        return self.w.expand(x.shape[0], -1, -1).clone()


class FakeDetector:
    """One centred face in any photo (fast and deterministic)."""

    name = "fake"

    def detect(self, image):
        from jojogan.faces.detect import Detection

        h, w = (image.shape[-2:] if isinstance(image, torch.Tensor) else image.shape[:2])[:2]
        cx, cy, s = w / 2, h / 2, min(h, w) / 4
        lm = np.array(
            [
                [cx - 0.4 * s, cy - 0.3 * s],
                [cx + 0.4 * s, cy - 0.3 * s],
                [cx, cy],
                [cx - 0.3 * s, cy + 0.4 * s],
                [cx + 0.3 * s, cy + 0.4 * s],
            ]
        )
        return [Detection((cx - s, cy - s, cx + s, cy + s), 1.0, lm, backend="fake")]


@pytest.fixture(scope="module")
def fuzz_env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fuzz")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JOJOGAN_CACHE", str(tmp / "cache"))
        mp.setenv("JOJOGAN_DEVICE", "cpu")
        mp.setenv("JOJOGAN_MAX_OUTPUT_GB", BUDGET_GB)
        mp.delenv("JOJOGAN_AUTO_DOWNLOAD", raising=False)
        yield tmp


@pytest.fixture(scope="module")
def pack(fuzz_env):
    from make_node_reference import load_pack as load_pack_as_comfyui_does

    return load_pack_as_comfyui_does(ROOT, "comfyui_jojogan_fuzz")


@pytest.fixture(scope="module")
def world(pack, fuzz_env):
    """Tiny real inputs for every socket and the values the cases name with '@'."""
    from jojogan.checkpoints import save_stylegan2

    S = sys.modules[pack.__name__ + ".nodes.sockets"]
    host = sys.modules[pack.__name__ + ".nodes.host"]
    M = pack.NODE_CLASS_MAPPINGS
    g = tiny_g(size=32).eval().requires_grad_(False)
    d = tiny_d(size=32).eval().requires_grad_(False)
    gen, disc = S.GeneratorModel(g, None, "<tiny>"), S.DiscriminatorModel(d, "<tiny>")
    rng = torch.Generator().manual_seed(0)
    ref = torch.rand(1, 32, 32, 3, generator=rng)
    photo = torch.rand(1, 64, 64, 3, generator=rng)
    lat, _ = M[INVERT]().invert(gen, "mean", 1, 0.05, 0, 0, "")
    ds, _ = M[BMD]().build(gen, ref, lat, "w+", "full", "", 1.0, 0, 0)
    sm, _ = M[FINETUNE]().finetune(gen, disc, steps=1, references=ref, latent=lat, preview_every=0)
    det = S.FaceDetectorModel(FakeDetector(), "fake")
    aligned, faces = M[ALIGN]().align(photo, 32, "largest", 1.0, detector=det)

    folder = host.model_dirs()[0]
    folder.mkdir(parents=True, exist_ok=True)
    save_stylegan2(folder / "tiny.safetensors", g_ema=g, d=d)
    (style_path,) = M[SAVE]().save(sm, "fuzz/style", "float32")["result"]
    secret = fuzz_env / "outside" / "secret.pt"
    secret.parent.mkdir()
    secret.write_text(SECRET + "\n")
    (folder / "escape.pt").symlink_to(secret)
    (folder / "not_a_folder").write_text("a file where Save Style Model wants a folder")
    bomb = _zip_bomb(folder / "bomb.pt")

    other = tiny_g(size=16).eval().requires_grad_(False)
    lat_other, _ = M[INVERT]().invert(
        S.GeneratorModel(other, None, "<16>"), "mean", 1, 0.05, 0, 0, ""
    )
    nan_w = lat.w.clone()
    nan_w[0, 0, 0] = math.nan
    values = {
        "image_1x1": torch.rand(1, 1, 1, 3),
        "image_empty": torch.rand(0, 32, 32, 3),
        "image_nan": torch.full((1, 32, 32, 3), math.nan),
        "image_meta": torch.empty(1, 32, 32, 3, device="meta"),
        "image_rank3": ref[0],
        "image_channels_first": ref.permute(0, 3, 1, 2).contiguous(),
        "image_uint8": (ref * 255).to(torch.uint8),
        "image_255": ref * 255,
        "latent_nan": S.Latents(nan_w, None, "mean"),
        "latent_meta": S.Latents(torch.empty(1, g.n_latent, g.style_dim, device="meta")),
        "latent_empty": S.Latents(lat.w[:0]),
        "latent_other_size": lat_other,
        "dataset_nan": dataclasses.replace(ds, latents=S.Latents(nan_w, None, "mean")),
        "secret_path": str(secret),
        "symlink_out": "escape.pt",
        "zip_bomb": bomb,
        "prefix_in_a_file": "not_a_folder/style",
    }
    sockets = {
        "JOJOGAN_GENERATOR": gen,
        "JOJOGAN_DISCRIMINATOR": disc,
        "JOJOGAN_LATENT": lat,
        "JOJOGAN_DATASET": ds,
        "JOJOGAN_STYLE_MODEL": sm,
        "JOJOGAN_FACES": faces,
        "JOJOGAN_FACE_DETECTOR": det,
    }
    # inputs that depend on the node (connected optional sockets included, as a graph would)
    context = {
        LOAD_G: {"ckpt_name": "tiny.safetensors"},
        LOAD_STYLE: {"style_name": Path(style_path).relative_to(folder).as_posix()},
        LOAD_DET: {"backend": "dlib-fast"},
        ALIGN: {"images": photo, "detector": det},
        VIDEO: {"frames": photo.expand(3, -1, -1, -1).clone(), "detector": det},
        PASTE: {"images": photo, "stylized": aligned},
        INVERT: {"images": ref, "encoder": S.EncoderModel(FakeEncoder(g), "<fake>")},
        BMD: {"references": ref},
        FINETUNE: {"references": ref, "latent": lat},
    }
    return {"M": M, "S": S, "sockets": sockets, "values": values, "context": context}


def _zip_bomb(path: Path) -> str:
    """A .pt whose pickle claims a 2**40-element storage for a few bytes of data."""
    import io
    import zipfile

    buf = io.BytesIO()
    torch.save({"g_ema": {"w": torch.zeros(4)}}, buf)
    src = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    with zipfile.ZipFile(path, "w") as out:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename.endswith("data.pkl"):
                # the storage's element count (4) and the tensor's size (4,) -> 2**40
                data = data.replace(b"K\x04\x85", b"\x8a\x06\x00\x00\x00\x00\x00\x01\x85")
                data = data.replace(b"K\x04t", b"\x8a\x06\x00\x00\x00\x00\x00\x01t")
            out.writestr(info, data)
    return path.name


# -------------------------------------------------------------------------------- running cases


def base_inputs(world, node: str) -> dict:
    """A node's inputs as the API sends them: every widget (its default or first choice),
    every required socket, the optional sockets a graph connects."""
    cls = world["M"][node]
    it = cls.INPUT_TYPES()
    ctx = world["context"].get(node, {})
    out = {}
    for section in ("required", "optional"):
        for name, spec in it.get(section, {}).items():
            kind, opts = spec[0], (spec[1] if len(spec) > 1 else {})
            if name in ctx:
                out[name] = ctx[name]
            elif isinstance(kind, list):
                out[name] = opts.get("default", kind[0])
            elif kind in WIDGETS:
                out[name] = opts.get("default", opts.get("min", ""))
            elif section == "required":
                out[name] = world["sockets"][kind]
    out.update(FAST.get(node, {}))
    return out


TRANSFORMS = {
    "~grad": lambda t: t.clone().requires_grad_(True),
    "~float64": lambda t: t.double(),
}


def _resolve(world, value, base=None):
    """'@name': a value of the world; '~change': the node's own good input, changed."""
    if isinstance(value, str) and value.startswith("@"):
        return world["values"][value[1:]]
    if isinstance(value, str) and value.startswith("~"):
        return None if base is None else TRANSFORMS[value](base)
    return value


def _check_result(result) -> None:
    """A correct result: IMAGE outputs [B,H,W,3] finite in [0,1], no grad; nothing raw."""
    outs = result["result"] if isinstance(result, dict) else result
    assert isinstance(outs, tuple)
    for o in outs:
        if isinstance(o, torch.Tensor):
            assert not o.requires_grad and o.device.type == "cpu"
            assert bool(torch.isfinite(o).all())
            if o.dim() == 4:
                assert o.shape[-1] == 3 and 0 <= float(o.min()) and float(o.max()) <= 1


def run_case(world, case: Case, extra: dict | None = None) -> str:
    """Run one case; returns "error" or "result" (asserting the bounds), raises otherwise."""
    cls = world["M"][case.node]
    display = cls.DISPLAY
    kwargs = base_inputs(world, case.node)
    kwargs.update({k: _resolve(world, v) for k, v in case.also.items()})
    kwargs[case.widget] = _resolve(world, case.value, kwargs.get(case.widget))
    kwargs.update(extra or {})
    kwargs = {k: v for k, v in kwargs.items() if v is not None or k == case.widget}
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        result = getattr(cls(), cls.FUNCTION)(**kwargs)
        outcome = "result"
    except ValueError as e:
        outcome, err = "error", e
    finally:
        seconds = time.perf_counter() - t0
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - rss0
    assert seconds < TIME_LIMIT_S, f"{case}: {seconds:.1f} s"
    assert peak / 2**20 < MEMORY_LIMIT_MB, f"{case}: {peak / 2**20:.0f} MB of Python objects"
    assert grown < MEMORY_LIMIT_MB, f"{case}: peak RSS grew {grown:.0f} MB"
    if os.environ.get("JOJOGAN_FUZZ_SHOW"):  # to read every message: -s with this set
        print(f"{case} -> {str(err) if outcome == 'error' else 'a correct result'}")
    if outcome == "error":
        msg = str(err)
        assert msg.startswith(display + ":"), f"{case}: {msg[:200]}"
        assert f"'{case.widget}'" in msg, f"{case}: the message does not name the widget: {msg}"
        assert len(msg) <= 300 or case.widget in FILE_WIDGETS, f"{case}: {len(msg)} chars"
        assert SECRET[:10] not in msg, f"{case}: the message quotes a file: {msg}"
        v = case.value
        if isinstance(v, str) and len(v) > 40:
            assert v[:41] not in msg, f"{case}: the message quotes more than 40 characters"
        assert extra is not None or case.expect in ("error", "any"), f"{case}: {msg}"
    else:
        assert case.expect == "any" or extra is not None, f"{case}: accepted, expected an error"
        _check_result(result)
    return outcome


def all_cases(world) -> list[Case]:
    cases = list(ISSUE_CASES)
    for node, cls in world["M"].items():
        it = cls.INPUT_TYPES()
        for section in ("required", "optional"):
            for name, spec in it.get(section, {}).items():
                cases += class_cases(node, name, spec)
    return cases


# ---------------------------------------------------------------------------------------- tests


def test_every_node_and_input_is_in_the_table(world):
    covered = {(c.node, c.widget) for c in all_cases(world)}
    for node, cls in world["M"].items():
        it = cls.INPUT_TYPES()
        names = set(it.get("required", {})) | set(it.get("optional", {}))
        assert {(node, n) for n in names} <= covered, node
    assert {c.node for c in ISSUE_CASES} >= {TOY, INVERT, BMD, FINETUNE, INTERP, ALIGN, LOAD_G}


def test_good_requests_work_for_every_node(world):
    """The base request of every node (defaults + tiny inputs) runs, or, for a loader whose
    file cannot exist here, says which widget's file is missing."""
    for node, cls in world["M"].items():
        if node == LOAD_TOY:
            continue  # no inputs (the shipped toy model: tests/test_workflows.py)
        kwargs = base_inputs(world, node)
        if node in MISSING_FILE:
            with pytest.raises(ValueError, match=f"'{MISSING_FILE[node]}'"):
                getattr(cls(), cls.FUNCTION)(**kwargs)
            continue
        _check_result(getattr(cls(), cls.FUNCTION)(**kwargs))


TRIED = {"error": 0, "result": 0}


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(c, marks=pytest.mark.xfail(strict=False, reason=c.xfail)) if c.xfail else c
        for c in ISSUE_CASES
    ],
    ids=str,
)
def test_each_case_of_the_issue_is_a_clear_error_in_bounded_time_and_memory(world, case):
    TRIED[run_case(world, case)] += 1


def test_every_class_of_bad_value_for_every_input(world, capsys):
    """One bad value at a time, every class for every input of every node; then the next good
    request of every node still works."""
    cases = [c for c in all_cases(world) if c not in ISSUE_CASES]
    failures = []
    for case in cases:
        try:
            TRIED[run_case(world, case)] += 1
        except AssertionError as e:
            failures.append(str(e).splitlines()[0])
        except Exception as e:  # noqa: BLE001 (a raw exception is what this test looks for)
            failures.append(f"{case}: raw {type(e).__name__}: {str(e)[:160]}")
    with capsys.disabled():
        print(
            f"\nfuzz: {sum(TRIED.values()) + len(failures)} bad inputs tried so far: "
            f"{TRIED['error']} clear errors, {TRIED['result']} correct results, "
            f"{len(failures)} failures"
        )
    assert failures == [], "\n".join(failures)
    test_good_requests_work_for_every_node(world)


def test_queue_time_validation_refuses_bad_widgets_before_anything_runs(world):
    """VALIDATE_INPUTS (ComfyUI calls it with the widget values, links as None) refuses bad
    layer lists and file name prefixes, which ComfyUI cannot check; it names STRING widgets only
    (ComfyUI blames every input it names, and checks numbers' min/max itself)."""
    M = world["M"]
    for node, cls in M.items():
        check = getattr(cls, "VALIDATE_INPUTS", None)
        it = cls.INPUT_TYPES()
        spec = {**it.get("required", {}), **it.get("optional", {})}
        mine = sorted(n for n, s in spec.items() if s[0] == "STRING")
        if check is None:
            assert mine == [], node
            continue
        import inspect

        args = inspect.getfullargspec(check).args
        assert sorted(a for a in args if a != "cls") == mine, node
        assert check(**{n: None for n in mine}) is True  # linked: not known yet
        for name in mine:
            good = {n: base_inputs(world, node)[n] for n in mine}
            assert check(**good) is True, (node, name)
            bad = "0-99999999"
            if name == "filename_prefix":
                bad = "../../etc/passwd"
            msg = check(**{**good, name: bad})
            assert isinstance(msg, str) and f"'{name}'" in msg and msg.startswith(cls.DISPLAY)


def test_unexpected_errors_become_clear_node_errors_keeping_the_cause(world, monkeypatch):
    """Whatever slips through (KeyError, IndexError, RuntimeError, OSError, MemoryError, CUDA
    out of memory) reaches ComfyUI as a ValueError naming the node, the original as __cause__;
    ComfyUI's interrupt passes through untouched."""
    from jojogan.toy import render

    M = world["M"]
    node = M[TOY]()
    for exc in (
        KeyError("sketchy"),
        IndexError("list index out of range"),
        RuntimeError("stack expects a non-empty TensorList"),
        OSError(28, "No space left on device", "/models/x.safetensors"),
        MemoryError(),
        torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB"),
    ):

        def boom(*a, exc=exc, **k):
            raise exc

        monkeypatch.setattr(render, "sample_params", boom)
        with pytest.raises(ValueError) as e:
            node.render("photo", 0, 1, 64)
        assert str(e.value).startswith("JoJoGAN Toy Render: ") and len(str(e.value)) <= 300
        assert e.value.__cause__ is exc
        if isinstance(exc, MemoryError | torch.OutOfMemoryError):
            assert "out of memory" in str(e.value) and "count" in str(e.value)

    class Interrupted(Exception):  # ComfyUI's InterruptProcessingException is a plain Exception
        pass

    def interrupt(*a, **k):
        raise Interrupted()

    monkeypatch.setattr(render, "sample_params", interrupt)
    with pytest.raises(Interrupted):
        node.render("photo", 0, 1, 64)


@pytest.mark.slow
def test_random_combinations_of_bad_values(world):
    """The long sweep: 2-3 bad values at once on a random node, 2000 draws; every outcome must be
    a clear error naming one of the widgets, or a correct result, within the bounds."""
    cases = all_cases(world)
    by_node: dict[str, list[Case]] = {}
    for c in cases:
        by_node.setdefault(c.node, []).append(c)
    rnd = random.Random(28)
    tried = 0
    for _ in range(2000):
        node = rnd.choice(sorted(by_node))
        picks = rnd.sample(by_node[node], min(len(by_node[node]), rnd.randint(2, 3)))
        first, rest = picks[0], picks[1:]
        base = base_inputs(world, node)
        extra = {
            c.widget: _resolve(world, c.value, base.get(c.widget))
            for c in rest
            if c.widget != first.widget
        }
        try:
            run_case(world, first, extra)
        except AssertionError as e:
            # with several bad values the message may name another of them
            msg = str(e)
            assert "does not name the widget" in msg and any(
                f"'{c.widget}'" in msg for c in rest
            ), msg
        tried += 1
    print(f"\nfuzz (slow): {tried} random combinations tried")
