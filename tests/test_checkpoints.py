"""Layouts, config inference, strict loading and atomic writes of jojogan.checkpoints.

Files are built in tmp_path with each real layout's exact key set (tiny configs; the 1024 px key
set comes from tests/fixtures/stylegan2/keys_1024.json, the reference's own list).
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import pathlib
import signal
import subprocess
import sys
import time
import zipfile

import pytest
import torch

from jojogan import checkpoints as ck
from jojogan.checkpoints import CheckpointError, writing
from jojogan.stylegan2 import Discriminator, Generator

ROOT = pathlib.Path(__file__).resolve().parents[1]
KEYS_1024 = ROOT / "tests" / "fixtures" / "stylegan2" / "keys_1024.json"

from tiny_models import SIZE, STYLE_DIM, TINY, tiny_d, tiny_g  # noqa: E402,F401


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def meta_state_dict(pairs: list[list]) -> dict[str, torch.Tensor]:
    return {k: torch.empty(shape, device="meta") for k, shape in pairs}


# ------------------------------------------------------------------------------------------
# Layouts: each real layout loads strictly and round-trips
# ------------------------------------------------------------------------------------------


def test_rosinality_g_ema_and_latent_avg_loads_for_inference_without_d(tmp_path):
    g = tiny_g()
    lat = torch.randn(STYLE_DIM)
    path = tmp_path / "stylegan2-tiny.pt"
    torch.save({"g_ema": g.state_dict(), "latent_avg": lat}, path)

    out = ck.load_stylegan2(path, expect_size=SIZE)

    assert out.layout == "rosinality"
    assert out.size == SIZE and out.config.style_dim == STYLE_DIM and out.config.n_mlp == 2
    assert out.g is None and out.d is None  # fine-tuning needs d: not in this file
    assert_same_weights(out.g_ema, g)
    assert torch.equal(out.latent_avg, lat)
    assert out.generator is out.g_ema
    assert not any(p.requires_grad for p in out.g_ema.parameters())


def test_rosinality_full_layout_loads_all_parts_strictly(tmp_path):
    g_ema, g, d = tiny_g(0), tiny_g(1), tiny_d(2)
    path = tmp_path / "full.pt"
    torch.save(
        {
            "g_ema": g_ema.state_dict(),
            "g": g.state_dict(),
            "d": d.state_dict(),
            "latent_avg": torch.zeros(STYLE_DIM),
        },
        path,
    )
    out = ck.load_stylegan2(path)
    assert out.layout == "rosinality"
    assert_same_weights(out.g_ema, g_ema)
    assert_same_weights(out.g, g)
    assert_same_weights(out.d, d)
    assert out.d_config.size == SIZE
    # the discriminator works (JoJoGAN's loss taps)
    feats = out.d.features(torch.zeros(1, 3, SIZE, SIZE), layers=(1, 3))
    assert len(feats) == 2


def test_parts_argument_builds_only_the_requested_modules(tmp_path):
    path = tmp_path / "full.pt"
    torch.save({"g_ema": tiny_g().state_dict(), "g": tiny_g(1).state_dict()}, path)
    out = ck.load_stylegan2(path, parts=("g_ema",))
    assert out.g_ema is not None and out.g is None


def test_rosinality_training_checkpoint_with_namespace_and_optimizers_loads(tmp_path):
    g, d = tiny_g(), tiny_d()
    g_optim = torch.optim.Adam(g.parameters(), lr=2e-3, betas=(0.0, 0.99))
    d_optim = torch.optim.Adam(d.parameters(), lr=2e-3, betas=(0.0, 0.99))
    for model, opt in ((g, g_optim), (d, d_optim)):
        loss = sum(p.float().pow(2).sum() for p in model.parameters())
        loss.backward()
        opt.step()
    args = argparse.Namespace(size=SIZE, channel_multiplier=2, batch=4, lr=0.002, r1=10.0)
    path = tmp_path / "050000.pt"
    torch.save(
        {
            "g": g.state_dict(),
            "d": d.state_dict(),
            "g_ema": g.state_dict(),
            "g_optim": g_optim.state_dict(),
            "d_optim": d_optim.state_dict(),
            "args": args,
            "ada_aug_p": 0.25,
        },
        path,
    )
    assert ck.detect_layout(ck.load_file(path)) == "rosinality-training"
    out = ck.load_stylegan2(path)
    assert out.layout == "rosinality-training"
    assert out.args == vars(args)
    assert_same_weights(out.g, g)
    assert_same_weights(out.d, d)


def test_jojogan_style_file_g_only_loads_into_generator(tmp_path):
    g = tiny_g(3)
    path = tmp_path / "arcane_jinx.pt"
    torch.save({"g": g.state_dict()}, path)

    out = ck.load_stylegan2(path)
    assert out.layout == "jojogan-style"
    assert out.g_ema is None and out.generator is out.g
    assert_same_weights(out.g, g)

    target = tiny_g(4)
    assert ck.load_generator_weights(path, target) == "jojogan-style"
    assert_same_weights(target, g)


def test_bare_generator_state_dict_and_legacy_format_load(tmp_path):
    g = tiny_g(5)
    bare = tmp_path / "bare.pt"
    torch.save(g.state_dict(), bare)
    legacy = tmp_path / "legacy.pt"
    torch.save({"g_ema": g.state_dict()}, legacy, _use_new_zipfile_serialization=False)
    assert ck.sniff(legacy) == "pickle" and ck.sniff(bare) == "zip"
    for path, layout in ((bare, "generator"), (legacy, "rosinality")):
        out = ck.load_stylegan2(path)
        assert out.layout == layout
        assert_same_weights(out.generator, g)


def test_safetensors_round_trip_keeps_weights_and_metadata(tmp_path):
    g_ema, d = tiny_g(6), tiny_d(7)
    lat = torch.randn(STYLE_DIM)
    path = tmp_path / "base.safetensors"
    ck.save_stylegan2(path, g_ema=g_ema, d=d, latent_avg=lat, metadata={"source": "test"})

    assert ck.sniff(path) == "safetensors"
    meta = ck.read_safetensors_metadata(path)
    assert meta["source"] == "test" and len(meta["jojogan.tensors_sha256"]) == 64
    out = ck.load_stylegan2(path)
    assert out.layout == "rosinality"
    assert_same_weights(out.g_ema, g_ema)
    assert_same_weights(out.d, d)
    assert torch.equal(out.latent_avg, lat)

    # .pt -> .safetensors -> .pt round trip is exact
    again = tmp_path / "again.pt"
    torch.save({"g_ema": out.g_ema.state_dict(), "d": out.d.state_dict()}, again)
    assert_same_weights(ck.load_stylegan2(again).d, d)


def test_safetensors_bare_generator_loads_with_generator_weights(tmp_path):
    g = tiny_g(8)
    path = tmp_path / "style.safetensors"
    ck.save_safetensors(g.state_dict(), path, {"kind": "style"})
    target = tiny_g(9)
    assert ck.load_generator_weights(path, target) == "generator"
    assert_same_weights(target, g)


# ------------------------------------------------------------------------------------------
# Layout detection and config inference, including the real 1024 px key set
# ------------------------------------------------------------------------------------------


def test_1024_key_set_detected_and_config_inferred_as_ffhq_config_f():
    pairs = json.loads(KEYS_1024.read_text())
    g_sd = meta_state_dict(pairs["generator"])
    d_sd = meta_state_dict(pairs["discriminator"])
    assert len(g_sd) == 171

    assert ck.detect_layout(g_sd) == "generator"
    assert ck.detect_layout(d_sd) == "discriminator"
    assert ck.detect_layout({"g_ema": g_sd, "latent_avg": torch.zeros(512)}) == "rosinality"
    assert ck.detect_layout({"g": g_sd}) == "jojogan-style"

    gcfg = ck.infer_generator_config(g_sd)
    assert gcfg == ck.GeneratorConfig(size=1024, style_dim=512, n_mlp=8, channel_multiplier=2)
    dcfg = ck.infer_discriminator_config(d_sd)
    assert dcfg == ck.DiscriminatorConfig(size=1024, channel_multiplier=2)

    # the modules built from the inferred config have exactly the reference key set
    with torch.device("meta"):
        g = Generator(gcfg.size, **gcfg.kwargs())
        d = Discriminator(dcfg.size, **dcfg.kwargs())
    assert [(k, list(v.shape)) for k, v in g.state_dict().items()] == [
        (k, list(s)) for k, s in pairs["generator"]
    ]
    assert {k: list(v.shape) for k, v in d.state_dict().items()} == {
        k: list(s) for k, s in pairs["discriminator"]
    }


@pytest.mark.parametrize(
    ("size", "mult", "extra"),
    [
        (256, 2, {}),
        (512, 2, {}),
        (256, 1, {}),
        (64, 4, {"channel_max": 1024}),  # rosinality's uncapped table: 1024 wide at 64 px
        (128, 2, {"channel_max": 64}),
    ],
)
def test_config_inference_recovers_size_multiplier_and_custom_widths(size, mult, extra):
    with torch.device("meta"):
        g = Generator(size, style_dim=64, n_mlp=3, channel_multiplier=mult, **extra)
        d = Discriminator(size, channel_multiplier=mult, **extra)
    gcfg = ck.infer_generator_config(g.state_dict())
    dcfg = ck.infer_discriminator_config(d.state_dict())
    assert (gcfg.size, gcfg.style_dim, gcfg.n_mlp) == (size, 64, 3)
    assert dcfg.size == size
    if extra:
        assert gcfg.channel_multiplier is None and gcfg.channels == g.channels
    else:
        assert gcfg.channel_multiplier == mult and gcfg.channels is None
    with torch.device("meta"):
        g2 = Generator(gcfg.size, **gcfg.kwargs())
        d2 = Discriminator(dcfg.size, **dcfg.kwargs())
    assert {k: v.shape for k, v in g2.state_dict().items()} == {
        k: v.shape for k, v in g.state_dict().items()
    }
    assert {k: v.shape for k, v in d2.state_dict().items()} == {
        k: v.shape for k, v in d.state_dict().items()
    }


def test_encoder_and_arcface_layouts_are_recognised():
    t = torch.zeros(1)
    e4e = {
        "state_dict": {
            "encoder.input_layer.0.weight": t,
            "encoder.body.0.res_layer.0.weight": t,
            "encoder.styles.0.convs.0.weight": t,
            "decoder.style.1.weight": t,
        },
        "opts": {"encoder_type": "Encoder4Editing", "stylegan_size": 1024},
        "latent_avg": t,
    }
    arcface = {
        "input_layer.0.weight": t,
        "body.0.res_layer.1.weight": t,
        "output_layer.3.weight": t,
    }
    assert ck.detect_layout(e4e) == "psp-encoder"
    assert ck.detect_layout(arcface) == "arcface"
    assert ck.detect_layout({"something": t}) == "unknown"
    assert ck.detect_layout([t]) == "unknown"


def test_sniff_reads_bytes_not_extensions(tmp_path):
    g = tiny_g()
    cases = {
        "a.safetensors": None,
        "zip.safetensors": "zip",
        "html.pt": "html",
        "empty.pth": "empty",
        "notes.pt": "text",
        "rand.bin": "unknown",
    }
    torch.save(g.state_dict(), tmp_path / "zip.safetensors")
    (tmp_path / "html.pt").write_text("  <!DOCTYPE html><html><title>Google Drive</title>")
    (tmp_path / "empty.pth").write_bytes(b"")
    (tmp_path / "notes.pt").write_text("version https://git-lfs.github.com/spec/v1\n")
    (tmp_path / "rand.bin").write_bytes(bytes([1, 200, 3, 0, 17, 255, 9, 0]) * 8)
    ck.save_safetensors({"x": torch.zeros(2)}, tmp_path / "st.pt")
    assert ck.sniff(tmp_path / "st.pt") == "safetensors"
    for name, kind in cases.items():
        if kind:
            assert ck.sniff(tmp_path / name) == kind, name


def test_pickle_scan_names_globals_without_running_them():
    import pickle

    data = pickle.dumps({"a": argparse.Namespace(x=1), "f": os.getcwd}, protocol=4)
    names = ck.scan_pickle_globals(data)
    assert "argparse.Namespace" in names
    assert any(n.endswith("getcwd") for n in names)


# ------------------------------------------------------------------------------------------
# Atomic writes
# ------------------------------------------------------------------------------------------


def _no_temp_files(folder: pathlib.Path) -> bool:
    return not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_atomic_write_replaces_target_and_uses_umask_mode(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    ck.atomic_write_bytes(target, b"new contents")
    assert target.read_bytes() == b"new contents"
    assert _no_temp_files(tmp_path)
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask


def test_keyboard_interrupt_mid_write_keeps_old_file_and_removes_temp(tmp_path, monkeypatch):
    target = tmp_path / "style.safetensors"
    ck.save_safetensors({"w": torch.ones(4)}, target)
    old = target.read_bytes()

    real_open = open
    calls = {"n": 0}

    class Interrupting:
        def __init__(self, f):
            self.f = f

        def write(self, chunk):
            calls["n"] += 1
            self.f.write(bytes(chunk)[: len(chunk) // 2])
            raise KeyboardInterrupt

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    def fake_open(file, mode="r", *a, **k):
        f = real_open(file, mode, *a, **k)
        return Interrupting(f) if "w" in mode and str(file).endswith(".tmp") else f

    monkeypatch.setattr("builtins.open", fake_open)
    with pytest.raises(KeyboardInterrupt):
        ck.save_safetensors({"w": torch.zeros(1000)}, target)
    monkeypatch.undo()
    assert calls["n"] == 1
    assert target.read_bytes() == old
    assert _no_temp_files(tmp_path)
    assert torch.equal(ck.load_file(target)["w"], torch.ones(4))


def test_exception_inside_atomic_writer_leaves_no_partial_file(tmp_path):
    target = tmp_path / "new.bin"
    with pytest.raises(RuntimeError), ck.atomic_writer(target) as tmp:
        tmp.write_bytes(b"partial")
        raise RuntimeError("boom")
    assert not target.exists() and _no_temp_files(tmp_path)


def test_disk_full_gives_not_enough_space_and_keeps_old_file(tmp_path, monkeypatch):
    target = tmp_path / "style.safetensors"
    ck.save_safetensors({"w": torch.ones(4)}, target)
    old = target.read_bytes()

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(CheckpointError, match="not enough space in") as ei:
        ck.save_safetensors({"w": torch.zeros(1000)}, target)
    monkeypatch.undo()
    assert str(tmp_path) in str(ei.value)
    assert target.read_bytes() == old and _no_temp_files(tmp_path)
    ck.save_safetensors({"w": torch.zeros(3)}, target)  # the next save works
    assert torch.equal(ck.load_file(target)["w"], torch.zeros(3))


@pytest.mark.parametrize(
    ("code", "where", "text"),
    [
        (errno.EROFS, "mkstemp", "cannot write in"),
        (errno.EACCES, "mkstemp", "choose a folder you can write to"),
        (errno.ENAMETOOLONG, "mkstemp", "choose a shorter name"),
        (errno.EIO, "replace", "saving failed"),
        (errno.EDQUOT, "replace", "not enough space in"),
    ],
)
def test_save_errors_say_where_and_what_to_do_and_keep_the_old_file(
    tmp_path, monkeypatch, code, where, text
):
    """A read-only folder, a name too long, an I/O error, a quota: one CheckpointError (a
    ValueError) naming the folder, never a raw OSError; the old file is intact."""
    target = tmp_path / "style.safetensors"
    ck.save_safetensors({"w": torch.ones(4)}, target)
    old = target.read_bytes()

    def fail(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(writing.tempfile if where == "mkstemp" else os, where, fail)
    with pytest.raises(CheckpointError) as ei:
        ck.save_safetensors({"w": torch.zeros(8)}, target)
    monkeypatch.undo()
    msg = str(ei.value)
    assert isinstance(ei.value, ValueError) and text.lower() in msg.lower(), msg
    assert str(tmp_path) in msg and "Traceback" not in msg
    assert target.read_bytes() == old and _no_temp_files(tmp_path)


# The child processes import this checkout's jojogan (not whichever one is installed).
_CHILD_ENV = {**os.environ, "PYTHONPATH": str(ROOT)}

_FSIZE_SCRIPT = """
import resource, sys, torch
from jojogan import checkpoints as ck
hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
resource.setrlimit(resource.RLIMIT_FSIZE, (65536, hard))
try:
    ck.save_safetensors({"w": torch.zeros(1 << 18)}, sys.argv[1])
except ck.CheckpointError as e:
    print("ERR", e)
"""


def test_file_size_limit_gives_not_enough_space_and_keeps_old_file(tmp_path):
    target = tmp_path / "big.safetensors"
    ck.save_safetensors({"w": torch.ones(4)}, target)
    old = target.read_bytes()
    r = subprocess.run(
        [sys.executable, "-c", _FSIZE_SCRIPT, str(target)],
        env=_CHILD_ENV,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("ERR") and "not enough space in" in r.stdout, r.stdout
    assert "Traceback" not in r.stderr
    assert target.read_bytes() == old and _no_temp_files(tmp_path)


_LOOP_SCRIPT = """
import pathlib, sys, torch
from jojogan import checkpoints as ck
target = pathlib.Path(sys.argv[1])
blobs = []
for value in (1.0, 2.0):  # two valid files, serialised once: the loop is all writing
    ck.save_safetensors({"w": torch.full((1 << 21,), value)}, target)
    blobs.append(target.read_bytes())
print("ready", flush=True)
i = 0
while True:
    ck.atomic_write_bytes(target, blobs[i % 2])
    i += 1
"""


def test_sigkill_during_repeated_saves_leaves_old_or_new_valid_file(tmp_path):
    """kill -9 while a temp file is being written (seen in the folder): the target is always a
    complete old or new file, verified by the checksum stored in it."""
    target = tmp_path / "model.safetensors"
    landed_mid_save = 0
    for attempt in range(3):
        proc = subprocess.Popen(
            [sys.executable, "-c", _LOOP_SCRIPT, str(target)],
            env=_CHILD_ENV,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 20
        while not list(tmp_path.glob(".*.tmp")) and time.monotonic() < deadline:
            time.sleep(0.0005)
        time.sleep(0.002 * attempt)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        leftovers = list(tmp_path.glob(".*.tmp"))  # a kill mid-save leaves its temp file
        landed_mid_save += bool(leftovers)
        for p in leftovers:
            p.unlink()
        w = ck.load_file(target)["w"]  # checksum verified: a torn file would be refused
        assert w.shape == (1 << 21,)
        assert bool((w == 1.0).all()) or bool((w == 2.0).all())
    assert landed_mid_save >= 1


def test_refuses_to_overwrite_an_input(tmp_path):
    src = tmp_path / "base.safetensors"
    ck.save_safetensors({"w": torch.ones(2)}, src)
    old = src.read_bytes()
    link = tmp_path / "link.safetensors"
    link.symlink_to(src)
    for target in (src, link):
        with pytest.raises(CheckpointError, match="refusing to overwrite an input"):
            ck.save_safetensors({"w": torch.zeros(2)}, target, inputs=[src])
    assert src.read_bytes() == old
    ck.save_safetensors({"w": torch.zeros(2)}, tmp_path / "other.safetensors", inputs=[src])


def test_fp16_safetensors_style_file_loads_into_float32_generator(tmp_path):
    g = tiny_g(10)
    path = tmp_path / "style_fp16.safetensors"
    ck.save_safetensors({k: v.half() for k, v in g.state_dict().items()}, path)
    target = tiny_g(11)
    ck.load_generator_weights(path, target)
    for k, v in target.state_dict().items():
        assert v.dtype == torch.float32
        assert torch.equal(v, g.state_dict()[k].half().float()), k


@pytest.mark.slow
def test_full_1024_checkpoint_loads_strictly_and_refuses_a_256_generator(tmp_path):
    """The FFHQ config-f layout at full size: {g_ema, g, d, latent_avg}, ~83 M parameters."""
    torch.manual_seed(0)
    g_ema, d = Generator(1024), Discriminator(1024)
    path = tmp_path / "stylegan2-ffhq-config-f.pt"
    torch.save(
        {
            "g_ema": g_ema.state_dict(),
            "g": g_ema.state_dict(),
            "d": d.state_dict(),
            "latent_avg": torch.randn(512),
        },
        path,
    )
    t0 = time.perf_counter()
    out = ck.load_stylegan2(path, expect_size=1024)
    seconds = time.perf_counter() - t0
    assert out.config == ck.GeneratorConfig(1024, 512, 8, 2) and out.g_ema.n_latent == 18
    assert out.d_config == ck.DiscriminatorConfig(1024, 2)
    assert_same_weights(out.g_ema, g_ema)
    assert_same_weights(out.d, d)
    print(f"1024 px {{g_ema, g, d, latent_avg}} load: {seconds:.1f} s")

    style = tmp_path / "jojo.pt"
    torch.save({"g": g_ema.state_dict()}, style)
    target = Generator(1024)
    ck.load_generator_weights(style, target)
    assert_same_weights(target, g_ema)

    small = tmp_path / "stylegan2-church-config-f.pt"
    torch.save({"g_ema": Generator(256).state_dict()}, small)
    with pytest.raises(CheckpointError, match="256 px generator where a 1024 px one is expected"):
        ck.load_stylegan2(small, expect_size=1024)
    with pytest.raises(CheckpointError, match="another base model"):
        ck.load_generator_weights(small, target)


def test_zip_saved_without_crc32_loads(tmp_path):
    """torch's `compute_crc32=False` save option writes CRC 0 everywhere: not corruption."""
    config = pytest.importorskip("torch.utils.serialization").config
    g = tiny_g(12)
    path = tmp_path / "nocrc.pt"
    old = config.save.compute_crc32
    config.save.compute_crc32 = False
    try:
        torch.save({"g_ema": g.state_dict()}, path)
    finally:
        config.save.compute_crc32 = old
    assert {i.CRC for i in zipfile.ZipFile(path).infolist()} == {0}
    assert_same_weights(ck.load_stylegan2(path).g_ema, g)
