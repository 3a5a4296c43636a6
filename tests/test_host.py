"""The node layer's model cache: bounded by bytes, least recently used out first, released when
ComfyUI reports the CPU short of memory for a call; many different style models keep it within
its budget (QUALITY.md "Load")."""

from __future__ import annotations

import copy
import gc
import sys
import types
import weakref
from pathlib import Path

import pytest
import torch
from torch import nn

from jojogan import style_model as jsm
from jojogan.stylegan2 import Generator

ROOT = Path(__file__).resolve().parents[1]
MB = 1 << 20


@pytest.fixture(scope="module")
def pack():
    from make_node_reference import load_pack as load_pack_as_comfyui_does

    return load_pack_as_comfyui_does(ROOT, "comfyui_jojogan_host_test")


@pytest.fixture(scope="module")
def host(pack):
    return sys.modules[pack.__name__ + ".nodes.host"]


@pytest.fixture(autouse=True)
def _env(tmp_path, monkeypatch):
    monkeypatch.setenv("JOJOGAN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("JOJOGAN_DEVICE", "cpu")
    monkeypatch.delenv("JOJOGAN_MODEL_CACHE_GB", raising=False)


def _blob(mb: float) -> torch.Tensor:
    return torch.zeros(int(mb * MB), dtype=torch.uint8)


def test_cache_keeps_the_most_recently_used_within_its_bytes(host):
    cache = host.ModelCache(max_bytes=3 * MB)
    loads = []

    def get(key, mb=1):
        return cache.get((key,), lambda: loads.append(key) or _blob(mb))

    for k in "abc":
        get(k)
    assert len(cache) == 3 and cache.nbytes == 3 * MB
    get("a")  # a hit: a becomes the most recent
    get("d")  # over budget: b, the least recently used, goes
    assert loads == ["a", "b", "c", "d"] and cache.nbytes == 3 * MB
    get("a"), get("c"), get("d")
    assert loads == ["a", "b", "c", "d"]
    get("b")
    assert loads[-1] == "b" and len(cache) == 3
    big = get("huge", mb=5)  # larger than the budget: returned, not kept
    assert big.numel() == 5 * MB and len(cache) == 3 and cache.nbytes == 3 * MB
    assert cache.release(MB) == MB and len(cache) == 2
    assert cache.release() == 2 * MB and len(cache) == 0 and cache.nbytes == 0


def test_value_bytes_counts_modules_sockets_and_shared_storage_once(host):
    lin = nn.Linear(256, 256)  # 65536 + 256 float32 values
    params = (256 * 256 + 256) * 4
    t = torch.zeros(1000)
    socket = types.SimpleNamespace(generator=lin, latent_avg=t, source="x.pt")
    assert host.value_bytes(lin) == params
    assert host.value_bytes((socket, socket, lin, t[:10])) == params + 4000
    assert host.value_bytes(torch.empty(10**6, device="meta")) == 0


def test_budget_comes_from_the_environment(host, monkeypatch, caplog):
    default = host.cache_budget_bytes()
    assert 0 < default <= 4 << 30
    monkeypatch.setenv("JOJOGAN_MODEL_CACHE_GB", "0.5")
    assert host.cache_budget_bytes() == 1 << 29
    monkeypatch.setenv("JOJOGAN_MODEL_CACHE_GB", "0")
    cache = host.ModelCache()
    cache.get(("a",), lambda: _blob(1))
    assert len(cache) == 0  # 0 turns the cache off
    monkeypatch.setenv("JOJOGAN_MODEL_CACHE_GB", "lots")
    with caplog.at_level("WARNING", logger="jojogan"):
        assert host.cache_budget_bytes() == default
    assert "JOJOGAN_MODEL_CACHE_GB" in caplog.text


def _tiny_base() -> Generator:
    torch.manual_seed(0)
    ch = {4: 16, 8: 16, 16: 8}
    return Generator(16, 32, 2, channels=ch, channel_max=16).eval().requires_grad_(False)


def test_fifteen_saved_styles_loaded_in_turn_stay_within_the_budget(pack, host, tmp_path):
    """The issue's leak: every new style file added an entry (RSS 385 -> 431 MB over 15 runs)."""
    M = pack.NODE_CLASS_MAPPINGS
    S = sys.modules[pack.__name__ + ".nodes.sockets"]
    base = _tiny_base()
    gen = S.GeneratorModel(base, None, "<tiny>")
    folder = tmp_path / "cache" / "jojogan"
    folder.mkdir(parents=True)
    one = host.value_bytes(base)
    host.CACHE.clear()
    host.CACHE.max_bytes = int(2.5 * one)  # room for two style models
    alive = []
    try:
        for i in range(15):
            tuned = copy.deepcopy(base)
            with torch.no_grad():
                tuned.conv1.conv.weight.add_(0.01 * (i + 1))
            jsm.save_style_model(folder / f"style_{i:02d}.safetensors", tuned, base)
            (sm,) = M["JoJoGAN_LoadStyleModel"]().load(gen, f"style_{i:02d}.safetensors", True)
            delta = sm.generator.conv1.conv.weight - base.conv1.conv.weight
            assert torch.allclose(delta, torch.full_like(delta, 0.01 * (i + 1)), atol=1e-6)
            alive.append(weakref.ref(sm.generator))
            assert host.CACHE.nbytes <= host.CACHE.max_bytes and len(host.CACHE) <= 2
            del sm, tuned, delta
        gc.collect()
        assert sum(r() is not None for r in alive) <= 2  # the others were freed
        (again,) = M["JoJoGAN_LoadStyleModel"]().load(gen, "style_14.safetensors", True)
        assert again.generator is alive[-1]()  # the most recent is still cached
    finally:
        host.CACHE.max_bytes = None
        host.CACHE.clear()


def test_on_device_releases_the_cache_when_comfyui_reports_the_cpu_short(host, monkeypatch):
    free = {"cpu": 1 << 40}
    calls = []
    mm = types.ModuleType("comfy.model_management")
    mm.get_torch_device = lambda: torch.device("cpu")
    mm.get_free_memory = lambda dev=None, torch_free_too=False: free["cpu"]
    mm.free_memory = lambda need, dev, keep_loaded=(): calls.append((need, dev))
    comfy = types.ModuleType("comfy")
    comfy.model_management = mm
    monkeypatch.setitem(sys.modules, "comfy", comfy)
    monkeypatch.setitem(sys.modules, "comfy.model_management", mm)
    host.CACHE.clear()
    try:
        for k in "abc":
            host.CACHE.get(("test", k), lambda: _blob(1))
        module = nn.Linear(4, 4)
        with host.on_device(module, work_bytes=MB):
            pass
        assert len(host.CACHE) == 3  # plenty free: nothing dropped
        free["cpu"] = MB // 2
        with host.on_device(module, work_bytes=MB):
            pass
        assert len(host.CACHE) == 2  # the gap (about 0.5 MiB) took the least recent entry
        assert host.CACHE.get(("test", "c"), lambda: pytest.fail("c was dropped")) is not None
        free["cpu"] = 0
        with host.on_device(module, work_bytes=8 * MB):
            pass
        assert len(host.CACHE) == 0
    finally:
        host.CACHE.clear()
