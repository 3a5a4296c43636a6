"""NVIDIA StyleGAN2-ADA network pickles: read without running their code, converted to
rosinality's layout, and checked against outputs recorded by running NVIDIA's own code
(tests/fixtures/nvidia/make_ada_fixture.py)."""

from __future__ import annotations

import json
import pathlib
import pickle
import sys
import types
from collections import OrderedDict

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from jojogan import checkpoints as ck
from jojogan.checkpoints import CheckpointError

FIXTURE = pathlib.Path(__file__).parent / "fixtures" / "nvidia" / "ada64.safetensors"
BUFFERS = ("noise_const", "w_avg", "resample_filter")


def _reconstruct_persistent_obj(meta):  # what NVIDIA's loader does: exec the embedded source
    exec(meta["module_src"], {})


class _Persistent:
    def __init__(self, class_name: str, state: dict) -> None:
        self.class_name, self.state = class_name, state

    def __reduce__(self):
        meta = {
            "type": "class",
            "version": 4,
            "module_src": _Persistent.payload,
            "class_name": self.class_name,
            "state": self.state,
        }
        return (_reconstruct_persistent_obj, (meta,))


def _network(flat: dict[str, torch.Tensor], class_name: str, attrs: dict) -> _Persistent:
    tree: dict = {}
    for key, value in flat.items():
        *path, leaf = key.split(".")
        node = tree
        for part in path:
            node = node.setdefault(part, {})
        node[leaf] = value

    def build(node: dict, name: str, extra: dict) -> _Persistent:
        params, buffers, modules = OrderedDict(), OrderedDict(), OrderedDict()
        for k, v in node.items():
            if isinstance(v, dict):
                modules[k] = build(v, "Layer", {})
            elif k in BUFFERS:
                buffers[k] = v.clone()
            else:
                params[k] = torch.nn.Parameter(v.clone(), requires_grad=False)
        state = {"training": False, "_parameters": params, "_buffers": buffers}
        state["_modules"] = modules
        return _Persistent(name, {**state, **extra})

    return build(tree, class_name, attrs)


@pytest.fixture(scope="module")
def golden() -> dict[str, torch.Tensor]:
    return load_file(str(FIXTURE))


@pytest.fixture(scope="module")
def config() -> dict:
    with safe_open(str(FIXTURE), "pt") as f:
        return json.loads(f.metadata()["config"])


def write_nvidia_pkl(path, golden, config, marker, monkeypatch, *, g_extra=None, g_attrs=None):
    """An NVIDIA-style network pickle {G, D, G_ema, augment_pipe, training_set_kwargs}."""
    _Persistent.payload = f"open({str(marker)!r}, 'w').close()"
    g_sd = {k[2:]: v for k, v in golden.items() if k.startswith("G.")}
    g_sd.update(g_extra or {})
    d_sd = {k[2:]: v for k, v in golden.items() if k.startswith("D.")}
    g_attrs = {**config, **(g_attrs or {})}
    d_attrs = {"c_dim": 0, "img_resolution": config["img_resolution"], "img_channels": 3}
    persistence = types.ModuleType("torch_utils.persistence")
    persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj
    monkeypatch.setattr(_reconstruct_persistent_obj, "__module__", "torch_utils.persistence")
    monkeypatch.setitem(sys.modules, "torch_utils", types.ModuleType("torch_utils"))
    monkeypatch.setitem(sys.modules, "torch_utils.persistence", persistence)
    snapshot = {
        "training_set_kwargs": {"resolution": config["img_resolution"]},
        "G": _network(g_sd, "Generator", g_attrs),
        "D": _network(d_sd, "Discriminator", d_attrs),
        "G_ema": _network(g_sd, "Generator", g_attrs),
        "augment_pipe": None,
    }
    path.write_bytes(pickle.dumps(snapshot))
    monkeypatch.undo()


def test_ada_pickle_converts_and_computes_nvidias_outputs(tmp_path, golden, config, monkeypatch):
    marker = tmp_path / "PWNED"
    src = tmp_path / "network-snapshot-000100.pkl"
    write_nvidia_pkl(src, golden, config, marker, monkeypatch)
    with pytest.raises(CheckpointError, match="convert_nvidia_pkl"):
        ck.load_file(src)

    dst = tmp_path / "converted.safetensors"
    out = ck.convert_nvidia_pkl(src, dst)
    assert not marker.exists(), "the pickle's embedded code ran"
    assert ck.read_safetensors_metadata(dst)["converted_from"] == src.name
    assert out.size == 64 and out.config.style_dim == 24 and out.config.n_mlp == 3
    assert out.config.channels == {4: 32, 8: 32, 16: 32, 32: 32, 64: 16}
    assert torch.equal(out.latent_avg, golden["G.mapping.w_avg"])

    g, d = out.g_ema, out.d
    with torch.no_grad():
        w = g.mapping(golden["z"])
        img = g.synthesis(w[:, None].expand(-1, g.n_latent, -1), noise_mode="const")
        logits = d(golden["img"])
        feats = d.features(golden["img"], layers=(1, 2, 3, 4))

    def rel(a, b):
        return ((a - b).abs().max() / b.abs().max()).item()

    assert rel(w, golden["ws"]) <= 1e-6
    assert rel(img, golden["img"]) <= 1e-5
    assert rel(logits, golden["logits"]) <= 1e-5
    for i, f in enumerate(feats):
        assert rel(f, golden[f"feat{i}"]) <= 1e-5

    # control: an ordinary unpickler (with NVIDIA's module importable) does run the payload
    persistence = types.ModuleType("torch_utils.persistence")
    persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj
    monkeypatch.setitem(sys.modules, "torch_utils", types.ModuleType("torch_utils"))
    monkeypatch.setitem(sys.modules, "torch_utils.persistence", persistence)
    pickle.loads(src.read_bytes())
    assert marker.exists()


def test_ada_pickle_with_unknown_keys_lists_them_and_writes_nothing(
    tmp_path, golden, config, monkeypatch
):
    marker = tmp_path / "PWNED"
    src = tmp_path / "stylegan3-t.pkl"
    extra = {"synthesis.L0_36_512.weight": torch.zeros(2)}
    write_nvidia_pkl(src, golden, config, marker, monkeypatch, g_extra=extra)
    dst = tmp_path / "out.safetensors"
    with pytest.raises(CheckpointError, match="synthesis.L0_36_512.weight") as ei:
        ck.convert_nvidia_pkl(src, dst)
    assert str(src) in str(ei.value) and "no rosinality counterpart" in str(ei.value)
    assert not dst.exists() and not marker.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [src.name]


def test_conditional_ada_network_is_refused(tmp_path, golden, config, monkeypatch):
    src = tmp_path / "cond.pkl"
    write_nvidia_pkl(src, golden, config, tmp_path / "m", monkeypatch, g_attrs={"c_dim": 10})
    with pytest.raises(CheckpointError, match="class-conditional"):
        ck.read_nvidia_pkl(src)


def test_conversion_never_overwrites_its_input_and_refuses_other_pickles(
    tmp_path, golden, config, monkeypatch
):
    src = tmp_path / "net.pkl"
    write_nvidia_pkl(src, golden, config, tmp_path / "m", monkeypatch)
    before = src.read_bytes()
    with pytest.raises(CheckpointError, match="refusing to overwrite an input"):
        ck.convert_nvidia_pkl(src, src)
    assert src.read_bytes() == before

    other = tmp_path / "other.pkl"
    other.write_bytes(pickle.dumps({"weights": [1.0, 2.0]}))
    with pytest.raises(CheckpointError, match="not a StyleGAN2-ADA network pickle"):
        ck.read_nvidia_pkl(other)
    zip_file = tmp_path / "model.pt"
    torch.save({"a": torch.zeros(1)}, zip_file)
    with pytest.raises(CheckpointError, match="not a pickle"):
        ck.read_nvidia_pkl(zip_file)
    truncated = tmp_path / "cut.pkl"
    truncated.write_bytes(before[: len(before) // 2])
    with pytest.raises(CheckpointError, match="could not read the NVIDIA pickle"):
        ck.read_nvidia_pkl(truncated)
