"""QUALITY.md "Model files": every bad file is built here, refused with one clear error that names
the file and the problem, nothing is written, and the next good load still works."""

from __future__ import annotations

import pathlib
import pickle
import sys
import types
import zipfile

import numpy as np
import pytest
import torch
from tiny_models import SIZE, STYLE_DIM, TINY, tiny_d, tiny_g  # noqa: E402,F401

from jojogan import checkpoints as ck
from jojogan.checkpoints import CheckpointError, layouts, reading
from jojogan.stylegan2 import Generator


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> pathlib.Path:
    path = tmp_path_factory.mktemp("good") / "stylegan2-tiny.pt"
    torch.save(
        {"g_ema": tiny_g().state_dict(), "d": tiny_d().state_dict(), "latent_avg": torch.zeros(16)},
        path,
    )
    return path


def refused(path: pathlib.Path, good: pathlib.Path, *patterns: str, load=None) -> str:
    """Assert ``load(path)`` raises one CheckpointError naming the file and each pattern,
    that nothing in the folder changed, and that the good file still loads."""
    load = load or ck.load_stylegan2
    folder = path.parent
    before = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    with pytest.raises(CheckpointError) as ei:
        load(path)
    msg = str(ei.value)
    assert str(path) in msg, msg
    for pat in patterns:
        assert pat.lower() in msg.lower(), f"{pat!r} not in: {msg}"
    assert "Traceback" not in msg and len(msg) < 1500, msg
    after = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    assert after == before, "a failed load changed files"
    out = ck.load_stylegan2(good)
    assert out.g_ema is not None and out.d is not None
    return msg


# ------------------------------------------------------------------------------------------
# Pickles that would run code: the payload never runs
# ------------------------------------------------------------------------------------------


class _OpenPayload:
    """Unpickling this calls open(marker, "w"): the marker file appears if the payload runs."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


class _ExecPayload:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').close()",))


class _TorchSavePayload:
    """Uses a torch callable, so only torch's weights-only unpickler stands in the way."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (torch.save, (torch.zeros(1), self.marker))


@pytest.mark.parametrize("payload", [_OpenPayload, _ExecPayload, _TorchSavePayload])
@pytest.mark.parametrize("fmt", ["zip", "legacy", "pickle2", "pickle4"])
def test_malicious_pickle_is_refused_and_payload_never_runs(tmp_path, good, payload, fmt):
    marker = tmp_path / "PWNED"
    obj = {"g_ema": tiny_g().state_dict(), "x": payload(str(marker))}
    path = tmp_path / "stylegan2-ffhq-config-f.pt"
    if fmt == "zip":
        torch.save(obj, path)
    elif fmt == "legacy":
        torch.save(obj, path, _use_new_zipfile_serialization=False)
    else:
        path.write_bytes(pickle.dumps(obj, protocol=int(fmt[-1])))
    assert not marker.exists()
    msg = refused(path, good, "refused")
    assert not marker.exists(), "the payload ran"
    if payload is not _TorchSavePayload:
        assert ("open" in msg) or ("exec" in msg)
    with pytest.raises(CheckpointError):
        ck.load_file(path)
    assert not marker.exists()


def test_nvidia_network_pickle_says_convert_first(tmp_path, good, monkeypatch):
    marker = tmp_path / "PWNED"
    dnnlib = types.ModuleType("dnnlib")
    util = types.ModuleType("dnnlib.util")
    persistence = types.ModuleType("torch_utils.persistence")

    class EasyDict(dict):
        pass

    def _reconstruct_persistent_obj(meta):  # would exec the embedded source in NVIDIA's code
        open(marker, "w").close()

    EasyDict.__module__ = "dnnlib.util"
    EasyDict.__qualname__ = "EasyDict"
    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    util.EasyDict = EasyDict
    persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj
    for name, mod in (
        ("dnnlib", dnnlib),
        ("dnnlib.util", util),
        ("torch_utils", types.ModuleType("torch_utils")),
        ("torch_utils.persistence", persistence),
    ):
        monkeypatch.setitem(sys.modules, name, mod)

    class _Net:
        def __reduce__(self):
            return (_reconstruct_persistent_obj, ({"module_src": "import os"},))

    data = pickle.dumps({"G_ema": _Net(), "training_set_kwargs": EasyDict(res=1024)}, protocol=2)
    path = tmp_path / "ffhq.pkl"
    path.write_bytes(data)
    monkeypatch.undo()
    msg = refused(path, good, "NVIDIA", "convert", "dnnlib")
    assert "torch_utils.persistence" in msg
    assert not marker.exists()


def test_plain_pickle_of_tensors_and_numpy_globals_are_refused(tmp_path, good):
    plain = tmp_path / "plain.pt"
    plain.write_bytes(pickle.dumps({"g_ema": {"w": [0.0, 1.0]}}, protocol=2))
    refused(plain, good, "plain Python pickle")
    # pickled tensors outside torch.save go through torch.storage._load_from_bytes -> torch.load
    tensors = tmp_path / "tensors.pt"
    tensors.write_bytes(pickle.dumps({"g_ema": {"w": torch.zeros(2)}}, protocol=2))
    refused(tensors, good, "refused", "torch.storage._load_from_bytes")

    numpy_args = tmp_path / "numpy_args.pt"
    torch.save({"g_ema": tiny_g().state_dict(), "ada_aug_p": np.float64(0.1)}, numpy_args)
    refused(numpy_args, good, "numpy", "refused")


# ------------------------------------------------------------------------------------------
# Not a model at all
# ------------------------------------------------------------------------------------------

QUOTA_PAGE = (
    "<!DOCTYPE html><html><head><title>Google Drive - Quota exceeded</title></head><body>"
    "Too many users have viewed or downloaded this file recently.</body></html>"
)


@pytest.mark.parametrize(
    ("name", "content", "patterns"),
    [
        ("stylegan2-ffhq-config-f.pt", QUOTA_PAGE, ("HTML page", "failed download", "Quota")),
        ("arcane_jinx.pt", "\n\n<html><body>sign in</body></html>", ("HTML page",)),
        ("empty.pt", b"", ("empty",)),
        ("empty.safetensors", b"", ("empty",)),
        ("lfs.pt", "version https://git-lfs.github.com/spec/v1\noid sha256:abc\n", ("LFS",)),
        ("error.safetensors", '{"error": "Repository not found"}', ("text file",)),
        ("random.pt", bytes(range(7, 250, 3)) * 40, ("unrecognised",)),
    ],
)
def test_file_that_is_not_a_model_says_what_it_is(tmp_path, good, name, content, patterns):
    path = tmp_path / name
    if isinstance(content, str):
        path.write_text(content)
    else:
        path.write_bytes(content)
    refused(path, good, *patterns)
    refused(path, good, *patterns, load=ck.load_file)


def test_missing_file_folder_and_non_torch_zip(tmp_path, good):
    refused(tmp_path / "nowhere.pt", good, "not found")
    (tmp_path / "dir.pt").mkdir()
    refused(tmp_path / "dir.pt", good, "folder")
    z = tmp_path / "weights.zip.pt"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("readme.txt", "hello")
    refused(z, good, "not a PyTorch checkpoint")


# ------------------------------------------------------------------------------------------
# Damaged files: truncated and bit-flipped
# ------------------------------------------------------------------------------------------


def _saved(tmp_path: pathlib.Path, fmt: str) -> pathlib.Path:
    g = tiny_g(4)
    if fmt == "safetensors":
        path = tmp_path / "m.safetensors"
        ck.save_stylegan2(path, g_ema=g, latent_avg=torch.zeros(STYLE_DIM))
    else:
        path = tmp_path / "m.pt"
        torch.save(
            {"g_ema": g.state_dict(), "latent_avg": torch.zeros(STYLE_DIM)},
            path,
            _use_new_zipfile_serialization=(fmt == "zip"),
        )
    return path


@pytest.mark.parametrize("fmt", ["zip", "legacy", "safetensors"])
@pytest.mark.parametrize("keep", [0.02, 0.5, 0.97])
def test_truncated_file_is_refused(tmp_path, good, fmt, keep):
    full = _saved(tmp_path, fmt)
    data = full.read_bytes()
    path = tmp_path / f"cut{full.suffix}"
    path.write_bytes(data[: int(len(data) * keep)])
    full.unlink()
    refused(path, good, "truncated")


def test_bit_flip_in_zip_tensor_data_is_caught_by_checksum(tmp_path, good):
    path = _saved(tmp_path, "zip")
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = next(i for i in zf.infolist() if i.filename.endswith("/data/17"))
    # local header: 30 bytes + name + extra; flip a bit in the middle of the tensor bytes
    name_len = int.from_bytes(data[info.header_offset + 26 : info.header_offset + 28], "little")
    extra_len = int.from_bytes(data[info.header_offset + 28 : info.header_offset + 30], "little")
    start = info.header_offset + 30 + name_len + extra_len
    data[start + info.file_size // 2] ^= 0x10
    path.write_bytes(bytes(data))
    refused(path, good, "corrupt")


def test_bit_flip_in_zip_central_directory_method_field_is_refused(tmp_path, good):
    path = _saved(tmp_path, "zip")
    data = bytearray(path.read_bytes())
    central = data.rfind(b"PK\x01\x02")  # the last central-directory entry
    data[central + 10] ^= 0x04  # its compression method: zipfile raises NotImplementedError
    path.write_bytes(bytes(data))
    refused(path, good, "corrupt")


def test_bit_flip_in_safetensors_data_is_caught_by_stored_checksum(tmp_path, good):
    path = _saved(tmp_path, "safetensors")
    data = bytearray(path.read_bytes())
    data[len(data) - 200] ^= 0x01
    path.write_bytes(bytes(data))
    refused(path, good, "corrupt", "checksum")


def test_bit_flip_in_safetensors_header_is_refused(tmp_path, good):
    path = _saved(tmp_path, "safetensors")
    data = bytearray(path.read_bytes())
    data[10] ^= 0x40  # inside the JSON header
    path.write_bytes(bytes(data))
    refused(path, good, "corrupt")


@pytest.mark.parametrize("fmt", ["zip", "legacy", "safetensors"])
def test_bit_flips_anywhere_give_a_clear_error_or_the_exact_weights(tmp_path, good, fmt):
    """A sweep of single-bit flips: each one is refused with a CheckpointError, or (where the
    format has no checksum, e.g. legacy tensor bytes, zip timestamps) loads; never a crash."""
    _bit_flip_sweep(tmp_path, fmt, 40)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["zip", "legacy", "safetensors"])
def test_dense_bit_flip_sweep_never_crashes(tmp_path, good, fmt):
    _bit_flip_sweep(tmp_path, fmt, 400)


def _bit_flip_sweep(tmp_path: pathlib.Path, fmt: str, n: int) -> None:
    path = _saved(tmp_path, fmt)
    original = path.read_bytes()
    reference = ck.load_file(path)
    outcomes = {"refused": 0, "loaded": 0}
    for pos in range(3, len(original), max(1, len(original) // n)):
        data = bytearray(original)
        data[pos] ^= 0x04
        path.write_bytes(bytes(data))
        try:
            out = ck.load_stylegan2(path)
        except CheckpointError as e:
            assert str(path) in str(e)
            outcomes["refused"] += 1
            continue
        outcomes["loaded"] += 1
        assert fmt == "legacy" or _same_as(out, reference), f"silent corruption at byte {pos}"
    assert outcomes["refused"] > 0
    path.write_bytes(original)
    ck.load_stylegan2(path)


def _same_as(out: ck.StyleGAN2Checkpoint, reference) -> bool:
    ref = layouts._unflatten(reference)["g_ema"]
    return all(torch.equal(v, ref[k]) for k, v in out.g_ema.state_dict().items())


# ------------------------------------------------------------------------------------------
# Wrong architecture, resolution or layout
# ------------------------------------------------------------------------------------------


def test_16px_generator_where_32px_expected(tmp_path, good):
    path = tmp_path / "small.pt"
    torch.save({"g_ema": tiny_g(size=16).state_dict()}, path)
    refused(
        path,
        good,
        "16 px generator where a 32 px one is expected",
        load=lambda p: ck.load_stylegan2(p, expect_size=32),
    )


def test_encoder_file_given_as_generator(tmp_path, good):
    t = torch.zeros(4, 4)
    e4e = {
        "state_dict": {
            "encoder.input_layer.0.weight": t,
            "encoder.body.0.shortcut_layer.1.weight": t,
            "encoder.styles.0.convs.0.weight": t,
            **{f"decoder.{k}": v for k, v in tiny_g().state_dict().items()},
        },
        "opts": {"encoder_type": "Encoder4Editing", "stylegan_size": 1024},
        "latent_avg": torch.zeros(18, 512),
    }
    path = tmp_path / "e4e_ffhq_encode.pt"
    torch.save(e4e, path)
    refused(path, good, "e4e/ReStyle/pSp encoder", "not a StyleGAN2 generator")
    refused(
        path,
        good,
        "encoder",
        load=lambda p: ck.load_generator_weights(p, tiny_g()),
    )


def test_arcface_and_unknown_files_given_as_generator(tmp_path, good):
    t = torch.zeros(2)
    arc = tmp_path / "model_ir_se50.pth"
    torch.save(
        {"input_layer.0.weight": t, "body.0.res_layer.0.weight": t, "output_layer.1.weight": t}, arc
    )
    refused(arc, good, "ArcFace")
    other = tmp_path / "resnet.pth"
    torch.save({"fc.weight": t, "layer1.0.conv1.weight": t}, other)
    refused(other, good, "not a StyleGAN2 checkpoint", "fc.weight")
    d_only = tmp_path / "d.pt"
    torch.save({"d": tiny_d().state_dict()}, d_only)
    refused(d_only, good, "only a StyleGAN2 discriminator")


def test_discriminator_missing_final_linear_lists_the_missing_keys(tmp_path, good):
    d = {k: v for k, v in tiny_d().state_dict().items() if not k.startswith("final_linear")}
    path = tmp_path / "no_head.pt"
    torch.save({"g_ema": tiny_g().state_dict(), "d": d}, path)
    msg = refused(path, good, "'d'", "Missing keys (4)")
    for k in ("final_linear.0.weight", "final_linear.0.bias", "final_linear.1.weight"):
        assert k in msg


def test_missing_unexpected_and_misshaped_keys_in_one_error(tmp_path, good):
    sd = tiny_g().state_dict()
    del sd["to_rgbs.1.bias"]
    sd["convs.0.conv.extra"] = torch.zeros(1)
    sd["conv1.activate.bias"] = torch.zeros(7)
    path = tmp_path / "edited.pt"
    torch.save({"g_ema": sd}, path)
    refused(
        path,
        good,
        "Missing keys (1): to_rgbs.1.bias",
        "Unexpected keys (1)",
        "convs.0.conv.extra",
        "Shape mismatches (1)",
        "conv1.activate.bias",
    )


def test_long_key_lists_are_truncated(tmp_path, good):
    sd = tiny_g().state_dict()
    for k in [k for k in sd if k.startswith("convs.")]:
        sd["x" + k] = sd.pop(k)
    path = tmp_path / "renamed.pt"
    torch.save({"g_ema": sd}, path)
    refused(path, good, "in all)")


def test_generator_and_discriminator_of_different_sizes(tmp_path, good):
    path = tmp_path / "mixed.pt"
    torch.save({"g_ema": tiny_g().state_dict(), "d": tiny_d(size=16).state_dict()}, path)
    refused(path, good, "discriminator is 16 px", "generator is 32 px")


def test_style_file_for_another_base_model_names_both(tmp_path, good):
    path = tmp_path / "jojo.pt"
    torch.save({"g": Generator(SIZE, style_dim=8, n_mlp=2, channel_max=16).state_dict()}, path)
    msg = refused(
        path, good, "another base model", load=lambda p: ck.load_generator_weights(p, tiny_g())
    )
    assert "style_dim 8" in msg and "style_dim 16" in msg


def test_latent_avg_of_the_wrong_width(tmp_path, good):
    path = tmp_path / "lat.pt"
    torch.save({"g_ema": tiny_g().state_dict(), "latent_avg": torch.zeros(512)}, path)
    refused(path, good, "latent_avg has shape (512,)")


# ------------------------------------------------------------------------------------------
# NaN / inf weights
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("part", "key", "value"),
    [
        ("g_ema", "conv1.conv.weight", float("nan")),
        ("d", "final_linear.1.weight", float("inf")),
        ("latent_avg", None, float("nan")),
    ],
)
def test_nan_or_inf_weights_are_refused_naming_the_tensor(tmp_path, good, part, key, value):
    obj = {
        "g_ema": tiny_g().state_dict(),
        "d": tiny_d().state_dict(),
        "latent_avg": torch.zeros(16),
    }
    if key is None:
        obj[part][3] = value
    else:
        obj[part][key].view(-1)[0] = value
    path = tmp_path / "diverged.pt"
    torch.save(obj, path)
    refused(path, good, "NaN or infinite", key or "latent_avg")


def test_nan_style_file_is_refused_and_the_generator_is_untouched(tmp_path, good):
    sd = tiny_g(1).state_dict()
    sd["style.2.bias"][0] = float("nan")
    path = tmp_path / "nan_style.pt"
    torch.save({"g": sd}, path)
    target = tiny_g(2)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    refused(path, good, "style.2.bias", load=lambda p: ck.load_generator_weights(p, target))
    assert all(torch.equal(v, before[k]) for k, v in target.state_dict().items())


# ------------------------------------------------------------------------------------------
# A name may point at any file: errors say what it is, never what it holds
# ------------------------------------------------------------------------------------------

PASSWD = "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"


@pytest.mark.parametrize(
    ("content", "kind", "secret"),
    [
        (PASSWD, "text file", "root:x"),
        ("<html><head><title>Sign in - Secret Corp</title></head></html>", "sign-in", "Secret"),
        ("<html><head><title>Private notes 42</title></head></html>", "HTML page", "Private"),
        (b"\x1f\x8b\x08\x00SECRETSECRET" + bytes(range(200)), "gzip archive", "SECRET"),
        (b"\x7fELF\x02\x01\x01" + bytes(range(250)) * 2, "executable", "45 4c 46"),
        (bytes([7, 9, 201, 13, 250, 17, 99, 1]) * 64, "unknown format", "07 09 c9"),
    ],
)
def test_errors_describe_the_file_kind_without_quoting_its_content(
    tmp_path, good, content, kind, secret
):
    path = tmp_path / "stylegan2-ffhq-config-f.pt"
    if isinstance(content, str):
        path.write_text(content)
    else:
        path.write_bytes(content)
    for load in (ck.load_stylegan2, ck.load_file, ck.read_safetensors_metadata):
        msg = refused(path, good, kind, load=load)
        assert secret not in msg and "daemon" not in msg, msg


# ------------------------------------------------------------------------------------------
# Claimed sizes are checked against the file before anything is allocated
# ------------------------------------------------------------------------------------------


def _torch_zip_with(path: pathlib.Path, replace: dict[str, tuple[bytes, int]]) -> None:
    """A copy of a torch zip file of ``{"w": zeros(4)}`` at ``path`` whose members ending in a
    key of ``replace`` get other (data, zip method)."""
    src = path.with_suffix(".src")
    torch.save({"w": torch.zeros(4)}, src)
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(path, "w") as zout:
        for info in zin.infolist():
            data, method = zin.read(info), zipfile.ZIP_STORED
            for end, (new, how) in replace.items():
                if info.filename.endswith(end):
                    data, method = new, how
            zout.writestr(info.filename, data, compress_type=method)
    src.unlink()


def _claiming_pickle(numel: int, protocol: int = 2) -> bytes:
    """data.pkl of ``{"w": tensor}`` whose one float storage claims ``numel`` elements."""
    import collections
    import io

    from torch._utils import _rebuild_tensor_v2

    class Storage:
        pass

    class Tensor:
        def __reduce__(self):
            args = (Storage(), 0, (numel,), (1,), False, collections.OrderedDict())
            return (_rebuild_tensor_v2, args)

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, Storage):
                return ("storage", torch.FloatStorage, "0", "cpu", numel)
            return None

    buf = io.BytesIO()
    Pickler(buf, protocol=protocol).dump({"w": Tensor()})
    return buf.getvalue()


def test_zip_bomb_is_refused_before_anything_is_unpacked(tmp_path, good):
    """A 64 MiB member of zeros deflates to ~64 kB; torch.load would allocate and unpack it."""
    import time

    n = 16 << 20
    path = tmp_path / "bomb.pt"
    _torch_zip_with(
        path, {"data.pkl": (_claiming_pickle(n), 0), "data/0": (bytes(4 * n), zipfile.ZIP_DEFLATED)}
    )
    assert path.stat().st_size < 1 << 20
    t0 = time.perf_counter()
    refused(path, good, "zip bomb", "nothing was allocated")
    assert time.perf_counter() - t0 < 5


def test_storage_claiming_more_than_its_zip_member_is_refused(tmp_path, good):
    path = tmp_path / "claims.pt"
    _torch_zip_with(path, {"data.pkl": (_claiming_pickle(10**12), zipfile.ZIP_STORED)})
    refused(path, good, "claims 4000000000000 bytes", "holds 16")


def test_legacy_storage_claiming_more_than_the_file_is_refused(tmp_path, good):
    path = tmp_path / "legacy.pt"
    torch.save({"w": torch.zeros(4)}, path, _use_new_zipfile_serialization=False)
    data = path.read_bytes()
    # the storage record's element count, 4, is BININT1 4 after the location 'cpu' (memoized)
    at = data.index(b"X\x03\x00\x00\x00cpuq") + 10
    assert data[at : at + 2] == b"K\x04", data[at - 12 : at + 4]
    path.write_bytes(data[:at] + b"\x8a\x06" + (10**13).to_bytes(6, "little") + data[at + 2 :])
    refused(path, good, "claim", "nothing was allocated")


def test_pickle_opcode_claiming_a_huge_length_is_refused_without_allocating(tmp_path, good):
    path = tmp_path / "huge_opcode.pt"
    magic = pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2)
    # BINBYTES8 (protocol 4) claiming 2**60 bytes, in a file of a few bytes
    path.write_bytes(magic + b"\x80\x04\x8e" + (1 << 60).to_bytes(8, "little") + b"abc")
    refused(path, good, "corrupt")


def _safetensors_with_header(path: pathlib.Path, entry: dict, data: bytes) -> None:
    import json
    import struct

    header = json.dumps({"w": entry}).encode()
    path.write_bytes(struct.pack("<Q", len(header)) + header + data)


@pytest.mark.parametrize(
    ("entry", "patterns"),
    [
        ({"dtype": "F32", "shape": [1 << 40], "data_offsets": [0, 16]}, ("corrupt", "claims")),
        ({"dtype": "F32", "shape": [4], "data_offsets": [0, 1 << 40]}, ("truncated",)),
        ({"dtype": "F32", "shape": [4], "data_offsets": [16, 0]}, ("corrupt",)),
        ({"dtype": "F32", "shape": [-4], "data_offsets": [0, 16]}, ("corrupt",)),
        ({"dtype": "F32", "shape": "4", "data_offsets": [0, 16]}, ("corrupt", "bad entry")),
    ],
)
def test_safetensors_header_claims_are_checked_against_the_file(tmp_path, good, entry, patterns):
    path = tmp_path / "claims.safetensors"
    _safetensors_with_header(path, entry, bytes(16))
    refused(path, good, *patterns, load=ck.load_file)


def test_meta_tensors_are_refused(tmp_path, good):
    path = tmp_path / "meta.pt"
    sd = tiny_g().state_dict()
    sd["conv1.conv.weight"] = torch.empty(sd["conv1.conv.weight"].shape, device="meta")
    torch.save({"g_ema": sd}, path)
    refused(path, good, "meta", "conv1.conv.weight")
    refused(path, good, "meta", load=ck.load_file)


@pytest.mark.parametrize("fmt", ["safetensors", "zip", "legacy"])
def test_every_loaded_tensor_is_finite_or_the_file_is_refused(tmp_path, good, fmt):
    tensors = {"a.weight": torch.ones(3), "b.bias": torch.tensor([0.0, float("-inf")])}
    path = tmp_path / f"inf.{fmt}"
    if fmt == "safetensors":
        ck.save_safetensors({"a.weight": torch.ones(3)}, path)  # the writer refuses NaN itself
        from safetensors.torch import save_file

        save_file(tensors, str(path))
    else:
        torch.save({"x": tensors}, path, _use_new_zipfile_serialization=(fmt == "zip"))
    msg = refused(path, good, "NaN or infinite", "b.bias", "1 of 2", load=ck.load_file)
    assert "a.weight" not in msg


def test_nan_toy_model_is_refused_by_the_toy_loader(tmp_path):
    from safetensors.torch import load_file, save_file

    from jojogan.toy import SHIPPED_DIR
    from jojogan.toy.model import load_toy

    src = SHIPPED_DIR / "toy_stylegan2.safetensors"
    tensors = load_file(str(src))
    meta = {k: v for k, v in ck.read_safetensors_metadata(src).items() if k != reading._SHA_KEY}
    key = next(k for k in sorted(tensors) if k.startswith("g_ema.") and k.endswith("weight"))
    tensors[key].view(-1)[0] = float("nan")
    save_file(tensors, str(tmp_path / src.name), metadata=meta)
    with pytest.raises(CheckpointError, match="NaN or infinite") as ei:
        load_toy(tmp_path)
    assert key in str(ei.value) and src.name in str(ei.value)
