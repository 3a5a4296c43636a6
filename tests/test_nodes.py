"""The node layer without ComfyUI: definitions well-formed, IMAGE/MASK conventions, widgets that
follow the core's settings, clear errors naming node and input, model cache, host hooks."""

from __future__ import annotations

import copy
import dataclasses
import inspect
import os
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from jojogan import finetune as jft
from jojogan import invert as jinv
from jojogan import stylize as jst
from jojogan.stylegan2 import Discriminator, Generator

ROOT = Path(__file__).resolve().parents[1]
SOCKETS = {
    "IMAGE",
    "MASK",
    "INT",
    "FLOAT",
    "STRING",
    "BOOLEAN",
    "JOJOGAN_GENERATOR",
    "JOJOGAN_DISCRIMINATOR",
    "JOJOGAN_ENCODER",
    "JOJOGAN_ARCFACE",
    "JOJOGAN_LATENT",
    "JOJOGAN_DATASET",
    "JOJOGAN_FACES",
    "JOJOGAN_STYLE_MODEL",
    "JOJOGAN_FACE_DETECTOR",
}
FIVE = ["Invert", "BuildMixedDataset", "Finetune", "Stylize", "InterpolateStyle"]
S_WIDGETS = {"INT", "FLOAT", "STRING", "BOOLEAN"}


@pytest.fixture(scope="module")
def pack():
    from make_node_reference import load_pack as load_pack_as_comfyui_does

    return load_pack_as_comfyui_does(ROOT, "comfyui_jojogan_nodes_test")


@pytest.fixture(scope="module")
def M(pack):
    return pack.NODE_CLASS_MAPPINGS


@pytest.fixture(scope="module")
def S(pack):
    return sys.modules[pack.__name__ + ".nodes.sockets"]


@pytest.fixture(scope="module")
def host(pack):
    return sys.modules[pack.__name__ + ".nodes.host"]


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("JOJOGAN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("JOJOGAN_DEVICE", "cpu")


@pytest.fixture(scope="module")
def tiny(S):
    torch.manual_seed(0)
    ch = {4: 16, 8: 16, 16: 8}
    g = Generator(16, 32, 2, channels=ch, channel_max=16).eval().requires_grad_(False)
    d = Discriminator(16, channels=ch, channel_max=16).eval().requires_grad_(False)
    return S.GeneratorModel(g, None, "<tiny>"), S.DiscriminatorModel(d, "<tiny>")


def _img(b=1, s=16, seed=0):
    return torch.rand(b, s, s, 3, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------------- definitions


def test_every_node_is_prefixed_named_and_categorised(M, pack):
    assert len(M) >= 17
    for name in ["JoJoGAN_" + n for n in FIVE + ["SampleStyled", "AlignFaces", "PasteBack"]]:
        assert name in M
    for key, cls in M.items():
        assert key.startswith("JoJoGAN_")
        assert pack.NODE_DISPLAY_NAME_MAPPINGS[key].startswith("JoJoGAN ")
        assert cls.CATEGORY.startswith("JoJoGAN/")
        assert callable(getattr(cls, cls.FUNCTION))
        assert isinstance(cls.RETURN_TYPES, tuple)
        assert len(getattr(cls, "RETURN_NAMES", cls.RETURN_TYPES)) == len(cls.RETURN_TYPES)
        assert all(t in SOCKETS for t in cls.RETURN_TYPES)


# The public node ids, written out: a saved workflow names its nodes by these. Changing one
# breaks every saved workflow that uses it (it needs a migration, not an edit here).
NODE_IDS = {
    "JoJoGAN_LoadStyleGAN2": "LoadStyleGAN2",
    "JoJoGAN_LoadToyModel": "LoadToyModel",
    "JoJoGAN_LoadEncoder": "LoadEncoder",
    "JoJoGAN_LoadArcFace": "LoadArcFace",
    "JoJoGAN_LoadFaceDetector": "LoadFaceDetector",
    "JoJoGAN_LoadStyleModel": "LoadStyleModel",
    "JoJoGAN_SaveStyleModel": "SaveStyleModel",
    "JoJoGAN_AlignFaces": "AlignFaces",
    "JoJoGAN_AlignVideo": "AlignVideo",
    "JoJoGAN_PasteBack": "PasteBack",
    "JoJoGAN_Invert": "Invert",
    "JoJoGAN_BuildMixedDataset": "BuildMixedDataset",
    "JoJoGAN_Finetune": "Finetune",
    "JoJoGAN_Stylize": "Stylize",
    "JoJoGAN_InterpolateStyle": "InterpolateStyle",
    "JoJoGAN_SampleStyled": "SampleStyled",
    "JoJoGAN_ToyRender": "ToyRender",
}


def test_node_ids_are_written_out_in_one_table_and_do_not_follow_class_names(M, pack):
    assert {k: cls.__name__ for k, cls in M.items()} == NODE_IDS
    assert pack.NODE_DISPLAY_NAME_MAPPINGS == {k: cls.DISPLAY for k, cls in M.items()}
    # one table: each id written once, as a literal, in nodes/__init__.py and nowhere else in
    # nodes/ (not derived from the classes: a renamed class keeps its id)
    table = Path(sys.modules[pack.__name__ + ".nodes"].__file__)
    assert "cls.__name__" not in table.read_text()
    for path in sorted(table.parent.glob("*.py")):
        text = path.read_text()
        for key in NODE_IDS:
            assert text.count(f'"{key}"') == (path == table), (path.name, key)


def test_every_input_has_a_tooltip_and_every_node_a_description(M):
    missing = []
    for key, cls in M.items():
        assert isinstance(cls.DESCRIPTION, str) and len(cls.DESCRIPTION) > 40, key
        assert len(cls.OUTPUT_TOOLTIPS) == len(cls.RETURN_TYPES), key
        assert all(isinstance(t, str) and t for t in cls.OUTPUT_TOOLTIPS), key
        it = cls.INPUT_TYPES()
        for section in ("required", "optional"):
            for name, spec in it.get(section, {}).items():
                tip = spec[1].get("tooltip") if len(spec) > 1 else None
                if not (isinstance(tip, str) and len(tip) > 10):
                    missing.append(f"{key}.{name}")
    assert missing == []


def test_input_types_are_well_formed(M):
    for key, cls in M.items():
        it = cls.INPUT_TYPES()
        assert set(it) <= {"required", "optional", "hidden"}, key
        for section in ("required", "optional"):
            for name, spec in it.get(section, {}).items():
                assert isinstance(spec, tuple) and 1 <= len(spec) <= 2, (key, name)
                t = spec[0]
                opts = spec[1] if len(spec) == 2 else {}
                assert isinstance(t, list) or t in SOCKETS, (key, name, t)
                if t in ("INT", "FLOAT"):
                    assert opts["min"] <= opts["default"] <= opts.get("max", float("inf"))
                    assert isinstance(opts["default"], int if t == "INT" else float)
                if t == "BOOLEAN":
                    assert isinstance(opts["default"], bool)
        # the function accepts exactly the declared inputs: by name, or (widgets spelled once,
        # in INPUT_TYPES) the sockets by name and the widgets as **widgets
        params = inspect.signature(getattr(cls, cls.FUNCTION)).parameters
        named = {n for n, p in params.items() if p.kind is not p.VAR_KEYWORD} - {"self"}
        declared = set(it.get("required", {})) | set(it.get("optional", {}))
        if len(named) < len(params) - 1:
            widgets = {n for n in declared if _is_widget(it, n)}
            assert named <= declared and declared - named <= widgets, key
        else:
            assert named == declared, key


def _is_widget(it: dict, name: str) -> bool:
    spec = {**it.get("required", {}), **it.get("optional", {})}[name]
    return isinstance(spec[0], list) or spec[0] in S_WIDGETS


def test_a_node_taking_widgets_as_keywords_gets_their_defaults_and_no_other_name(M, S, tiny):
    """Finetune's function takes its widgets as **widgets (named once, in INPUT_TYPES): a
    widget not sent (an optional one the API leaves out) is at its INPUT_TYPES default, a name
    that is no input is refused naming it."""
    g, d = tiny
    lat, _ = M["JoJoGAN_Invert"]().invert(g, "mean", 1, 0.05, 0, 0, "")
    ds, _ = M["JoJoGAN_BuildMixedDataset"]().build(g, _img(1), lat, "w+", "full", "", 1.0, 0, 0)
    ft = M["JoJoGAN_Finetune"]()
    sm, _ = ft.finetune(g, d, ds, steps=1, preview_every=0)
    it = M["JoJoGAN_Finetune"].INPUT_TYPES()
    widgets = {**it["required"], **it["optional"]}
    st = sm.result.settings
    for name in ("lr", "noise_mode", "refs_per_chunk", "seed", "precision", "gram_weight"):
        assert getattr(st, name) == widgets[name][1]["default"], name
    with pytest.raises(ValueError, match=r"^JoJoGAN Finetune: no input named 'step'$"):
        ft.finetune(g, d, ds, step=1)


def test_widgets_carry_the_core_defaults(M):
    it = M["JoJoGAN_Finetune"].INPUT_TYPES()
    ft = {**it["required"], **it["optional"]}
    st = jft.FinetuneSettings()
    rel = jft.FinetuneSettings.released()  # Finetune's default is the notebook's recipe
    for name in ("steps", "lr", "grayscale", "id_weight", "noise_mode"):
        assert ft[name][1]["default"] == getattr(rel, name), name
    assert ft["strength"][1]["default"] == rel.blend and ft["preserve_color"][1]["default"] is False
    for name in ("refs_per_chunk", "seed"):
        assert ft[name][1]["default"] == getattr(st, name), name
    # the notebook's terms in view, the rest behind "Show Advanced"
    shown = {k for k, v in ft.items() if len(v) > 1 and not v[1].get("advanced")}
    widgets = {k for k, v in ft.items() if isinstance(v[0], list) or v[0] in S_WIDGETS}
    assert shown & widgets == {"steps", "seed", "strength", "preserve_color", "preview_every"}
    inv = M["JoJoGAN_Invert"].INPUT_TYPES()["required"]
    assert inv["method"][0] == list(jinv.METHODS)
    for name in ("steps", "lr", "seed"):
        assert inv[name][1]["default"] == inspect.signature(jinv.invert).parameters[name].default
    sty = M["JoJoGAN_Stylize"].INPUT_TYPES()["required"]
    assert (
        sty["intensity"][1]["default"]
        == inspect.signature(jst.stylize).parameters["intensity"].default
    )
    ds = M["JoJoGAN_BuildMixedDataset"].INPUT_TYPES()["required"]
    assert ds["preset"][0][0] == st.preset and ds["blend"][1]["default"] == st.blend


# ----------------------------------------------------------------------------- running nodes


def test_pipeline_nodes_keep_image_conventions_and_socket_types(M, S, tiny):
    g, d = tiny
    ref = _img(1)
    lat, rec = M["JoJoGAN_Invert"]().invert(g, "optimize", 3, 0.05, 0, 0, "", images=ref)
    assert isinstance(lat, S.Latents) and lat.w.shape == (1, g.generator.n_latent, 32)
    assert rec.shape == (1, 16, 16, 3) and 0 <= float(rec.min()) and float(rec.max()) <= 1
    ds, prev = M["JoJoGAN_BuildMixedDataset"]().build(g, ref, lat, "w+", "full", "", 1.0, 3, 0)
    assert isinstance(ds, S.MixedDataset) and prev.shape == (3, 16, 16, 3)
    sm, fprev = M["JoJoGAN_Finetune"]().finetune(g, d, ds, steps=2, noise_mode="const")
    assert isinstance(sm, S.StyleModelSocket) and fprev.shape == (1, 16, 16, 3)
    imgs = _img(2, seed=1)
    lat2, _ = M["JoJoGAN_Invert"]().invert(g, "optimize", 2, 0.05, 0, 0, "", images=imgs)
    (out,) = M["JoJoGAN_Stylize"]().stylize(sm, lat2, 1.0, "const", 0, 0, -1, 8)
    (base,) = M["JoJoGAN_Stylize"]().stylize(sm, lat2, 0.0, "const", 0, 0, -1, 8)
    sweep, grid = M["JoJoGAN_InterpolateStyle"]().interpolate(sm, lat2, 0.0, 1.0, 3, 0, -1, 8)
    assert sweep.shape == (6, 16, 16, 3)
    torch.testing.assert_close(sweep.view(2, 3, 16, 16, 3)[:, 2], out)
    torch.testing.assert_close(sweep.view(2, 3, 16, 16, 3)[:, 0], base)
    # the grid: one row per input, one column per intensity, 2 px white gaps
    assert grid.shape == (1, 2 * 18 + 2, 3 * 18 + 2, 3)
    for i in range(2):
        for k in range(3):
            y, x = 2 + 18 * i, 2 + 18 * k
            torch.testing.assert_close(grid[0, y : y + 16, x : x + 16], sweep[3 * i + k])
    assert float(grid[0, :2].min()) == 1.0 and float(grid[0, :, 18:20].min()) == 1.0
    (samples,) = M["JoJoGAN_SampleStyled"]().sample(sm, 2, 0, 0.7, 1.0)
    assert samples.shape == (2, 16, 16, 3)
    for t in (out, base, sweep, samples):
        assert t.dtype == torch.float32 and t.device.type == "cpu"


@pytest.fixture(scope="module")
def tiny32(S):
    """A 32 px model: the smallest where the notebook's id_swap (W+ 7..) mixes anything."""
    torch.manual_seed(1)
    ch = {4: 16, 8: 16, 16: 8, 32: 8}
    g = Generator(32, 32, 2, channels=ch, channel_max=16).eval().requires_grad_(False)
    d = Discriminator(32, channels=ch, channel_max=16).eval().requires_grad_(False)
    return S.GeneratorModel(g, None, "<tiny32>"), S.DiscriminatorModel(d, "<tiny32>")


def test_finetune_from_references_and_latent_is_the_released_recipe(M, S, tiny32):
    """references + latent, widgets at their defaults: the core's FinetuneSettings.released()
    with the widget's seed on the notebook's stream (torch.manual_seed(seed), restored), bit for
    bit; the global RNG untouched; the style model records the recipe. An advanced widget changed
    makes a "custom" recipe."""
    g, d = tiny32
    refs = _img(2, 32, seed=3)
    lat, _ = M["JoJoGAN_Invert"]().invert(g, "mean", 1, 0.05, 0, 0, "")
    lat = S.Latents(lat.w.expand(2, -1, -1).clone(), None, "mean")
    before = torch.random.get_rng_state()
    sm, _ = M["JoJoGAN_Finetune"]().finetune(
        g, d, steps=3, seed=11, references=refs, latent=lat, strength=0.8, preview_every=0
    )
    assert torch.equal(torch.random.get_rng_state(), before)
    st = jft.FinetuneSettings.released(3, 0.8, False, seed=11, rng="global")
    core = jft.finetune(g.generator, d.discriminator, refs.permute(0, 3, 1, 2) * 2 - 1, lat.w, st)
    assert sm.result.losses == core.losses
    for a, b in zip(sm.generator.parameters(), core.generator.parameters(), strict=True):
        assert torch.equal(a, b)
    assert sm.style.info["recipe"] == "released" == sm.result.settings.recipe()
    assert sm.style.info["settings"]["noise_mode"] == "random"
    custom, _ = M["JoJoGAN_Finetune"]().finetune(
        g, d, steps=1, lr=1e-3, references=refs, latent=lat, preview_every=0
    )
    assert custom.style.info["recipe"] == "custom" == custom.result.settings.recipe()
    assert custom.style.info["settings"]["lr"] == 1e-3


def test_random_noise_in_stylize_and_samples_is_the_notebooks_and_repeats(M, S, tiny):
    """noise_mode random: the notebook's draws after torch.manual_seed(seed) (the core's
    rng="global", parity in test_stylize.py), the same seed the same bytes, the process's global
    RNG left as it was (other nodes are not disturbed)."""
    g, d = tiny
    lat, _ = M["JoJoGAN_Invert"]().invert(g, "mean", 1, 0.05, 0, 0, "")
    ds, _ = M["JoJoGAN_BuildMixedDataset"]().build(g, _img(1), lat, "w+", "full", "", 1.0, 0, 0)
    sm, _ = M["JoJoGAN_Finetune"]().finetune(g, d, ds, steps=1, preview_every=0)
    before = torch.random.get_rng_state()
    (a,) = M["JoJoGAN_Stylize"]().stylize(sm, lat, 1.0, "random", 5, 0, -1, 8)
    (b,) = M["JoJoGAN_Stylize"]().stylize(sm, lat, 1.0, "random", 5, 0, -1, 8)
    (c,) = M["JoJoGAN_Stylize"]().stylize(sm, lat, 1.0, "random", 6, 0, -1, 8)
    core = jst.stylize(sm.generator, lat.w, noise_mode="random", seed=5, rng="global")
    assert torch.equal(a, b) and not torch.equal(a, c)
    torch.testing.assert_close(a, (core.clamp(-1, 1).permute(0, 2, 3, 1) + 1) / 2)
    (s1,) = M["JoJoGAN_SampleStyled"]().sample(sm, 2, 3, 0.7, 1.0)
    (s2,) = M["JoJoGAN_SampleStyled"]().sample(sm, 2, 3, 0.7, 1.0)
    (s3,) = M["JoJoGAN_SampleStyled"]().sample(sm, 2, 3, 0.7, 1.0, noise_mode="const")
    assert torch.equal(s1, s2) and not torch.equal(s1, s3)
    assert torch.equal(torch.random.get_rng_state(), before)


def test_finetune_says_which_inputs_to_connect(M, S, tiny, tiny32):
    g, d = tiny
    ref = _img(1)
    lat, _ = M["JoJoGAN_Invert"]().invert(g, "mean", 1, 0.05, 0, 0, "")
    ds, _ = M["JoJoGAN_BuildMixedDataset"]().build(g, ref, lat, "w+", "full", "", 1.0, 0, 0)
    ft = M["JoJoGAN_Finetune"]()
    with pytest.raises(ValueError, match="connect 'references' .* or a 'dataset'"):
        ft.finetune(g, d, steps=1)
    with pytest.raises(ValueError, match="either 'dataset' or 'references' \\+ 'latent'"):
        ft.finetune(g, d, ds, steps=1, references=ref, latent=lat)
    with pytest.raises(ValueError, match="set its preset and blend on Build Mixed Dataset"):
        ft.finetune(g, d, ds, steps=1, strength=0.5)
    with pytest.raises(ValueError, match="2 references but 1 latents"):
        ft.finetune(g, d, steps=1, references=_img(2), latent=lat)
    # the notebook's preserve_color layers exist at 1024 px only
    g32, d32 = tiny32
    lat32, _ = M["JoJoGAN_Invert"]().invert(g32, "mean", 1, 0.05, 0, 0, "")
    with pytest.raises(ValueError, match="JoJoGAN Finetune: .*preserve_color"):
        ft.finetune(g32, d32, steps=1, references=_img(1, 32), latent=lat32, preserve_color=True)


def test_optimize_starts_from_a_connected_encoder_and_matches_edges_on_request(M, S, tiny):
    """method 'optimize' with an encoder connected refines the encoder's codes (1 step at a tiny
    lr stays at them); objective 'edges' reaches the core; it is refused where nothing is
    optimised."""
    g, _ = tiny
    gen = g.generator
    start = gen.mean_latent(64)[:, None].expand(1, gen.n_latent, -1) + 0.1

    class Enc(torch.nn.Module):
        input_size = 16

        def forward(self, x):
            return start.expand(x.shape[0], -1, -1).clone()

    enc = S.EncoderModel(Enc(), "<fake>")
    inv = M["JoJoGAN_Invert"]()
    lat, _ = inv.invert(g, "optimize", 1, 1e-5, 0, 0, "", images=_img(), encoder=enc)
    torch.testing.assert_close(lat.w, start, atol=1e-4, rtol=0)
    lat_p, _ = inv.invert(g, "optimize", 5, 0.05, 0, 0, "", images=_img(), encoder=enc)
    lat_e, _ = inv.invert(
        g, "optimize", 5, 0.05, 0, 0, "", images=_img(), encoder=enc, objective="edges"
    )
    assert not torch.equal(lat_e.w, lat_p.w) and not torch.allclose(lat_e.w, start)
    for method in ("encoder", "mean"):
        with pytest.raises(ValueError, match=r"Invert: objective 'edges' applies to optimisation"):
            inv.invert(g, method, 1, 0.05, 0, 0, "", images=_img(), encoder=enc, objective="edges")


def test_mean_and_blend_inversion_and_s_space_dataset(M, S, tiny):
    g, d = tiny
    lat, _ = M["JoJoGAN_Invert"]().invert(g, "mean", 1, 0.05, 0, 0, "")
    assert lat.w.shape[0] == 1
    lat2, _ = M["JoJoGAN_Invert"]().invert(g, "blend", 2, 0.05, 0, 0, "0-2", images=_img(1))
    ds, _ = M["JoJoGAN_BuildMixedDataset"]().build(g, _img(1), lat2, "s", "C", "", 1.0, 2, 0)
    sm, _ = M["JoJoGAN_Finetune"]().finetune(
        g, d, ds, steps=1, grayscale=True, feature_layers="1,2", noise_mode="const"
    )
    assert isinstance(sm, S.StyleModelSocket)
    # the optional inputs: only the chosen S layers change; bad lists are clear errors
    ft = M["JoJoGAN_Finetune"]()
    sm2, _ = ft.finetune(
        g, d, ds, steps=1, noise_mode="const", precision="bf16", train_layers="3-4"
    )
    before, after = g.generator.state_dict(), sm2.generator.state_dict()
    changed = {k for k in after if not torch.equal(after[k], before[k])}
    assert changed and all(k.startswith(("convs.1.", "to_rgbs.0.")) for k in changed), changed
    with pytest.raises(ValueError, match=r"Finetune: 'train_layers': '99' is out of range 0\.\.\d"):
        ft.finetune(g, d, ds, steps=1, noise_mode="const", train_layers="99")
    with pytest.raises(ValueError, match=r"Finetune: 'train_layers' must list layer indices"):
        ft.finetune(g, d, ds, steps=1, noise_mode="const", train_layers="fine")
    with pytest.raises(ValueError, match=r"Finetune: .*precision"):
        ft.finetune(g, d, ds, steps=1, noise_mode="const", precision="fp8")
    # the structure and texture inputs reach the fine-tune settings
    sm3, _ = ft.finetune(
        g, d, ds, steps=2, noise_mode="const", structure_weight=0.1, gram_weight=30.0
    )
    st = sm3.result.settings
    assert (st.structure_weight, st.gram_weight, st.random_faces) == (0.1, 30.0, 4)
    with pytest.raises(ValueError, match=r"Finetune: .*gram_weight"):
        ft.finetune(g, d, ds, steps=1, noise_mode="const", gram_weight=-1.0)


def test_save_and_load_style_model_never_overwrites(M, S, tiny, tmp_path):
    g, d = tiny
    lat, _ = M["JoJoGAN_Invert"]().invert(g, "mean", 1, 0.05, 0, 0, "")
    ds, _ = M["JoJoGAN_BuildMixedDataset"]().build(g, _img(1), lat, "w+", "full", "", 1.0, 0, 0)
    sm, _ = M["JoJoGAN_Finetune"]().finetune(g, d, ds, steps=1, noise_mode="const")
    saver = M["JoJoGAN_SaveStyleModel"]()
    p1 = Path(saver.save(sm, "styles/t", "float32")["result"][0])
    p2 = Path(saver.save(sm, "styles/t", "float16")["result"][0])
    assert p1 != p2 and p1.is_file() and p2.is_file()
    style = dataclasses.replace(sm.style, generator=copy.deepcopy(sm.generator).bfloat16())
    bf16 = dataclasses.replace(sm, style=style, result=None)
    p3 = Path(saver.save(bf16, "styles/b", "same as model")["result"][0])
    from safetensors import safe_open

    with safe_open(str(p3), "pt") as f:
        assert {f.get_slice(k).get_dtype() for k in f.keys()} == {"BF16"}
    assert p1.parent == tmp_path / "cache" / "jojogan" / "styles"
    (loaded,) = M["JoJoGAN_LoadStyleModel"]().load(g, "styles/t_00001.safetensors", True)
    want = sm.generator.state_dict()
    got = loaded.generator.state_dict()
    assert got.keys() == want.keys()
    for k in want:
        torch.testing.assert_close(got[k], want[k])
    for bad in ("", "/abs/path", "../escape"):
        with pytest.raises(ValueError, match="Save Style Model: 'filename_prefix'"):
            saver.save(sm, bad, "float16")
    # a subfolder that is a link to elsewhere: nothing is written through it
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "cache" / "jojogan" / "leak").symlink_to(outside, target_is_directory=True)
    with pytest.raises(ValueError, match="Save Style Model: 'filename_prefix': 'leak/x' leads out"):
        saver.save(sm, "leak/x", "float16")
    assert list(outside.iterdir()) == []


def test_toy_render_gives_comfy_images(M):
    (img,) = M["JoJoGAN_ToyRender"]().render("sketch", 3, 2, 32)
    assert img.shape == (2, 32, 32, 3) and img.dtype == torch.float32
    assert 0 <= float(img.min()) and float(img.max()) <= 1
    (again,) = M["JoJoGAN_ToyRender"]().render("sketch", 3, 2, 32)
    assert torch.equal(img, again)


def test_toy_styles_from_the_servers_environment(M, host, style_registry, tmp_path):
    """$JOJOGAN_TOY_STYLES (set by whoever starts ComfyUI) adds styles to the Toy Render node;
    a file that cannot be loaded is a warning naming it and the rest still load."""
    example = Path(__file__).resolve().parents[1] / "benchmarks" / "example_styles.py"
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('bad style file')\n")
    env = {host.TOY_STYLES_ENV: os.pathsep.join([str(broken), str(example), ""])}
    assert "blueprint" not in M["JoJoGAN_ToyRender"].INPUT_TYPES()["required"]["style"][0]
    with pytest.warns(UserWarning, match=r"JOJOGAN_TOY_STYLES: style module .*broken\.py failed"):
        assert host.load_toy_style_modules(env) == ["blueprint"]
    assert "blueprint" in M["JoJoGAN_ToyRender"].INPUT_TYPES()["required"]["style"][0]
    (img,) = M["JoJoGAN_ToyRender"]().render("blueprint", 3, 2, 32)
    assert img.shape == (2, 32, 32, 3)
    assert host.load_toy_style_modules({}) == []  # unset: nothing to do


@pytest.fixture(scope="module")
def astronaut():
    from PIL import Image
    from skimage import data as skdata

    path = Path(skdata.__file__).parent / "astronaut.png"
    arr = np.asarray(Image.open(path).convert("RGB").resize((256, 256)), dtype=np.float32) / 255
    return torch.from_numpy(arr)[None]


def test_align_and_paste_back_follow_image_and_mask_conventions(M, S, astronaut):
    photos = torch.cat([astronaut, torch.full_like(astronaut, 0.5)])  # second photo: no face
    aligned, faces = M["JoJoGAN_AlignFaces"]().align(astronaut, 64, "largest", 20.0)
    assert aligned.shape == (1, 64, 64, 3) and isinstance(faces, S.AlignedFaces)
    assert 0 <= float(aligned.min()) and float(aligned.max()) <= 1
    styl = 1.0 - aligned  # a stand-in "style"
    out, mask = M["JoJoGAN_PasteBack"]().paste(photos[:1], styl, faces, 0.1)
    assert out.shape == (1, 256, 256, 3) and mask.shape == (1, 256, 256)
    assert 0 <= float(mask.min()) and float(mask.max()) <= 1 and float(mask.max()) > 0.9
    assert (out - astronaut).abs().amax() > 0.3  # the face changed
    far = mask[0] == 0
    torch.testing.assert_close(out[0][far], astronaut[0][far], atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match=r"JoJoGAN Align Faces: .*no face found in images\[1\]"):
        M["JoJoGAN_AlignFaces"]().align(photos, 64, "largest", 20.0)
    with pytest.raises(ValueError, match="Paste Back: input 'stylized' has 2 images"):
        M["JoJoGAN_PasteBack"]().paste(photos[:1], torch.cat([styl, styl]), faces, 0.1)


# ------------------------------------------------------------------------------ clear errors


def test_bad_sockets_and_inputs_name_the_node_and_input(M, S, tiny):
    g, d = tiny
    lat, _ = M["JoJoGAN_Invert"]().invert(g, "mean", 1, 0.05, 0, 0, "")
    cases = [
        (
            lambda: M["JoJoGAN_Invert"]().invert("nope", "mean", 1, 0.05, 0, 0, ""),
            r"JoJoGAN Invert: input 'generator' must be a JOJOGAN_GENERATOR, got str",
        ),
        (
            lambda: M["JoJoGAN_Invert"]().invert(g, "encoder", 1, 0.05, 0, 0, "", images=_img()),
            r"JoJoGAN Invert: method 'encoder' needs the 'encoder' input",
        ),
        (
            lambda: M["JoJoGAN_Invert"]().invert(g, "optimize", 1, 0.05, 0, 0, ""),
            r"JoJoGAN Invert: method 'optimize' needs the 'images' input",
        ),
        (
            lambda: M["JoJoGAN_Invert"]().invert(
                g, "optimize", 1, 0.05, 0, 0, "", images=_img() * 255
            ),
            r"JoJoGAN Invert: input 'images': values must be in \[0,1\].*divide by 255",
        ),
        (
            lambda: M["JoJoGAN_Invert"]().invert(
                g, "optimize", 1, 0.05, 0, 0, "", images=torch.rand(16, 16, 3)
            ),
            r"JoJoGAN Invert: input 'images': .*rank 4",
        ),
        (
            lambda: M["JoJoGAN_Invert"]().invert(g, "blend", 1, 0.05, 0, 0, "", images=_img()),
            r"JoJoGAN Invert: method 'blend' needs 'blend_layers'",
        ),
        (
            lambda: M["JoJoGAN_BuildMixedDataset"]().build(
                g, _img(1), lat, "w+", "custom", "", 1.0, 0, 0
            ),
            r"Build Mixed Dataset: preset 'custom' needs 'layers'",
        ),
        (
            lambda: M["JoJoGAN_BuildMixedDataset"]().build(
                g, _img(1), lat, "w+", "custom", "3-99", 1.0, 0, 0
            ),
            r"JoJoGAN Build Mixed Dataset: .*99",
        ),
        (
            lambda: M["JoJoGAN_BuildMixedDataset"]().build(
                g, _img(1), lat, "w+", "custom", "seven", 1.0, 0, 0
            ),
            r"Build Mixed Dataset: 'layers' must list layer indices",
        ),
        (
            lambda: M["JoJoGAN_BuildMixedDataset"]().build(
                g, _img(2), lat, "w+", "full", "", 1.0, 0, 0
            ),
            r"2 references but 1 latents",
        ),
    ]
    for call, pattern in cases:
        with pytest.raises(ValueError, match=pattern):
            call()
    ds, _ = M["JoJoGAN_BuildMixedDataset"]().build(g, _img(1), lat, "w+", "full", "", 1.0, 0, 0)
    with pytest.raises(ValueError, match=r"Finetune: 'id_weight' > 0 needs the 'arcface' input"):
        M["JoJoGAN_Finetune"]().finetune(g, d, ds, steps=1, id_weight=100.0, noise_mode="const")
    with pytest.raises(ValueError, match=r"Finetune: .*steps"):
        M["JoJoGAN_Finetune"]().finetune(g, d, ds, steps=0, noise_mode="const")
    with pytest.raises(ValueError, match=r"Finetune: input 'discriminator' must be"):
        M["JoJoGAN_Finetune"]().finetune(g, None, ds, steps=1, noise_mode="const")
    sm, _ = M["JoJoGAN_Finetune"]().finetune(g, d, ds, steps=1, noise_mode="const")
    with pytest.raises(ValueError, match=r"Stylize: layer_start/layer_end \(5, 2\)"):
        M["JoJoGAN_Stylize"]().stylize(sm, lat, 0.5, "const", 0, 5, 2, 8)


def test_missing_model_file_says_where_to_put_it_and_where_to_get_it(M, tmp_path):
    with pytest.raises(ValueError) as err:
        M["JoJoGAN_LoadStyleGAN2"]().load("stylegan2-ffhq-config-f.pt")
    msg = str(err.value)
    assert msg.startswith("JoJoGAN Load StyleGAN2: 'ckpt_name'")
    assert str(tmp_path / "cache" / "jojogan") in msg and "models/jojogan" in msg
    assert "1Yr7KuD959btpmcKGAUsbAk5rPjX2MytK" in msg
    with pytest.raises(ValueError, match="Load Encoder: 'encoder_name': the model name is empty"):
        M["JoJoGAN_LoadEncoder"]().load("")


def test_loaders_list_their_own_kind_and_the_known_files_they_can_fetch(
    M, host, tiny, monkeypatch, tmp_path
):
    """Inside ComfyUI each loader offers the files of its kind (a style file is not a base
    checkpoint), files whose kind cannot be told (to say what is wrong with them), then the known
    files not downloaded yet; half-downloaded files in the staging folder are never offered. A
    missing known file is the pack's message: the file, its source, the folder, the command."""
    from jojogan.checkpoints import save_stylegan2

    g, d = tiny
    _fake_comfy(monkeypatch, tmp_path, host)
    host.register_model_folders()
    folder = tmp_path / "models" / "jojogan"
    save_stylegan2(folder / "mine.safetensors", g_ema=g.generator, d=d.discriminator)
    torch.save({"g": g.generator.state_dict()}, folder / "my_style.pt")
    (folder / "broken.pt").write_text("<html>quota exceeded</html>")
    (folder / ".jojogan-download").mkdir()
    (folder / ".jojogan-download" / "half.pt").write_bytes(b"partial")
    fp = sys.modules["folder_paths"]
    fp.get_filename_list = lambda name: sorted(
        p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()
    )

    def choices(node, widget):
        return M[node].INPUT_TYPES()["required"][widget][0]

    ckpts = choices("JoJoGAN_LoadStyleGAN2", "ckpt_name")
    assert ckpts == ["broken.pt", "mine.safetensors", "stylegan2-ffhq-config-f.pt"]
    styles = choices("JoJoGAN_LoadStyleModel", "style_name")
    assert styles[:2] == ["broken.pt", "my_style.pt"] and "jojo.pt" in styles[2:]
    assert "mine.safetensors" not in styles and "stylegan2-ffhq-config-f.pt" not in styles
    assert choices("JoJoGAN_LoadEncoder", "encoder_name")[1:] == [
        "e4e_ffhq_encode.pt",
        "restyle_psp_ffhq_encode.pt",
    ]
    assert choices("JoJoGAN_LoadArcFace", "model_name") == ["broken.pt", "model_ir_se50.pth"]
    # choosing a known file that is not there: the pack's message with the exact command
    with pytest.raises(ValueError) as err:
        M["JoJoGAN_LoadEncoder"]().load("e4e_ffhq_encode.pt")
    msg = str(err.value)
    assert msg.startswith("JoJoGAN Load Encoder: 'encoder_name': ")
    assert "e4e_ffhq_encode.pt" in msg and str(folder) in msg
    assert "-m jojogan download e4e_ffhq_encode.pt" in msg and "Hugging Face" in msg


def test_auto_download_is_opt_in_and_goes_into_the_loaders_folder(
    M, host, tiny, monkeypatch, tmp_path
):
    """With $JOJOGAN_AUTO_DOWNLOAD=1 a missing known file is fetched (jojogan.weights.download,
    tested against a local hub in test_weights.py) into the folder the loader reads, then
    loaded; without it, nothing is fetched; an unknown name is never fetched."""
    from jojogan import weights
    from jojogan.checkpoints import save_stylegan2

    g, d = tiny
    _fake_comfy(monkeypatch, tmp_path, host)
    folder = tmp_path / "models" / "jojogan"
    fetched = []

    def download(name, dest_dir=None, **kw):
        fetched.append((name, Path(dest_dir)))
        path = Path(dest_dir) / name
        save_stylegan2(path, g_ema=g.generator, d=d.discriminator)
        return path

    monkeypatch.setattr(weights, "download", download)
    with pytest.raises(ValueError, match="-m jojogan download"):
        M["JoJoGAN_LoadStyleGAN2"]().load("stylegan2-ffhq-config-f.pt")
    assert fetched == []
    monkeypatch.setenv("JOJOGAN_AUTO_DOWNLOAD", "1")
    with pytest.raises(ValueError, match="not a file this pack knows"):
        M["JoJoGAN_LoadStyleGAN2"]().load("someone_elses.pt")
    gen, disc = M["JoJoGAN_LoadStyleGAN2"]().load("stylegan2-ffhq-config-f.pt")
    assert fetched == [("stylegan2-ffhq-config-f.pt", folder)]
    assert gen.generator.size == g.generator.size and disc is not None


def test_html_page_saved_as_checkpoint_is_a_clear_node_error(M, tmp_path):
    folder = tmp_path / "cache" / "jojogan"
    folder.mkdir(parents=True)
    (folder / "stylegan2-ffhq-config-f.pt").write_text("<!DOCTYPE html><html>quota</html>")
    with pytest.raises(ValueError, match=r"^JoJoGAN Load StyleGAN2: .*(HTML|html|web page)"):
        M["JoJoGAN_LoadStyleGAN2"]().load("stylegan2-ffhq-config-f.pt")


# ------------------------------------------------------------------------ cache and host hooks


def test_loader_caches_by_path_mtime_size_and_clears(M, host, tiny, tmp_path):
    from jojogan.checkpoints import save_stylegan2

    g, d = tiny
    folder = tmp_path / "cache" / "jojogan"
    folder.mkdir(parents=True)
    path = folder / "tiny.safetensors"
    save_stylegan2(path, g_ema=g.generator, d=d.discriminator)
    assert (
        "tiny.safetensors" in M["JoJoGAN_LoadStyleGAN2"].INPUT_TYPES()["required"]["ckpt_name"][0]
    )
    host.clear_cache()
    a, da = M["JoJoGAN_LoadStyleGAN2"]().load("tiny.safetensors")
    b, _ = M["JoJoGAN_LoadStyleGAN2"]().load("tiny.safetensors")
    assert a is b and len(host.CACHE) == 1 and da.discriminator is not None
    import os

    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # file changed on disk
    c, _ = M["JoJoGAN_LoadStyleGAN2"]().load("tiny.safetensors")
    assert c is not a
    assert host.clear_cache() == 2 and len(host.CACHE) == 0


def _fake_comfy(monkeypatch, tmp_path, host, device="cpu"):
    """Fake comfy modules standing in for ComfyUI's; returns (calls, Interrupted)."""

    class Interrupted(Exception):
        pass

    calls = {"updates": [], "previews": [], "checks": 0, "free": [], "interrupt_at": None}
    mm = types.ModuleType("comfy.model_management")
    mm.get_torch_device = lambda: torch.device(device)
    mm.intermediate_device = lambda: torch.device("cpu")
    mm.free_memory = lambda need, dev, keep_loaded=(): calls["free"].append((need, dev))
    mm.module_size = lambda m: sum(t.numel() * t.element_size() for t in m.state_dict().values())

    def check():
        calls["checks"] += 1
        if calls["interrupt_at"] and calls["checks"] >= calls["interrupt_at"]:
            raise Interrupted()

    mm.throw_exception_if_processing_interrupted = check
    utils = types.ModuleType("comfy.utils")

    class ProgressBar:
        def __init__(self, total):
            self.total = total

        def update_absolute(self, value, total=None, preview=None):
            calls["updates"].append(value)
            if preview is not None:
                calls["previews"].append((value, preview))

    utils.ProgressBar = ProgressBar
    fp = types.ModuleType("folder_paths")
    fp.models_dir = str(tmp_path / "models")
    fp.folder_names_and_paths = {}
    fp.get_input_directory = lambda: str(tmp_path / "input")

    def add_model_folder_path(name, path, is_default=False):
        fp.folder_names_and_paths.setdefault(name, ([], set()))[0].append(path)

    def files(name):
        d = Path(fp.folder_names_and_paths[name][0][0])
        return sorted(p.name for p in d.iterdir()) if d.is_dir() else []

    fp.add_model_folder_path = add_model_folder_path
    fp.get_folder_paths = lambda name: fp.folder_names_and_paths[name][0]
    fp.get_filename_list = files
    fp.get_full_path = lambda name, f: os.path.join(fp.folder_names_and_paths[name][0][0], f)
    comfy = types.ModuleType("comfy")
    comfy.model_management, comfy.utils = mm, utils
    for name, mod in (
        ("comfy", comfy),
        ("comfy.model_management", mm),
        ("comfy.utils", utils),
        ("folder_paths", fp),
    ):
        monkeypatch.setitem(sys.modules, name, mod)
    monkeypatch.setattr(host, "_registered", False)
    return calls, Interrupted


def test_inside_comfyui_folders_exist_and_progress_shows_previews_and_interrupts(
    M, host, tiny, monkeypatch, tmp_path
):
    g, d = tiny
    calls, Interrupted = _fake_comfy(monkeypatch, tmp_path, host)
    host.register_model_folders()
    assert fp_paths(host, "jojogan") == [tmp_path / "models" / "jojogan"]
    assert (tmp_path / "models" / "jojogan").is_dir()
    assert (tmp_path / "models" / "facedetection").is_dir()
    fmap = sys.modules["folder_paths"].folder_names_and_paths
    assert ".safetensors" in fmap["facedetection"][1]

    lat, _ = M["JoJoGAN_Invert"]().invert(g, "mean", 1, 0.05, 0, 0, "")
    ds, _ = M["JoJoGAN_BuildMixedDataset"]().build(g, _img(1), lat, "w+", "full", "", 1.0, 0, 0)
    # live preview: every 2 steps and at the last, the tuned generator's drawing of the
    # reference's code and three mixed faces, as ComfyUI's ("JPEG", PIL image, max size)
    calls["updates"].clear()
    sm, _ = M["JoJoGAN_Finetune"]().finetune(g, d, ds, steps=5, noise_mode="const", preview_every=2)
    assert calls["updates"] == [1, 2, 3, 4, 5]
    assert [v for v, _ in calls["previews"]] == [2, 4, 5]
    fmt, pic, size = calls["previews"][0][1]
    assert fmt == "JPEG" and size == 512 and pic.size == (2 * 18 + 2, 2 * 18 + 2)
    # optimisation inversion shows its reconstruction the same way
    calls["previews"].clear()
    M["JoJoGAN_Invert"]().invert(g, "optimize", 3, 0.05, 0, 0, "", images=_img(2), preview_every=2)
    assert [v for v, _ in calls["previews"]] == [2, 3]
    assert calls["previews"][0][1][1].size == (2 * 18 + 2, 18 + 2)  # two faces side by side
    # Cancel stops the fine-tune within a step; the base generator is untouched
    before = [p.clone() for p in g.generator.parameters()]
    calls["updates"].clear()
    calls["checks"], calls["interrupt_at"] = 0, 3
    with pytest.raises(Interrupted):
        M["JoJoGAN_Finetune"]().finetune(g, d, ds, steps=200, noise_mode="const")
    assert calls["checks"] == 3 and calls["updates"] == [1, 2]  # stopped at step 3 of 200
    for a, b in zip(before, g.generator.parameters(), strict=True):
        assert torch.equal(a, b)


def fp_paths(host, folder):
    return host.model_dirs(folder)


def test_models_wait_on_the_cpu_and_run_on_comfyuis_device(host, tiny, monkeypatch, tmp_path):
    """on_device frees ComfyUI's memory for the modules first (as its upscale-model node does),
    moves them to the device for the call and back to the CPU afterwards, errors included."""
    g, d = tiny
    calls, _ = _fake_comfy(monkeypatch, tmp_path, host, device="cuda:0")
    moves = []
    monkeypatch.setattr(host, "_move", lambda m, dev: moves.append((m, str(dev))))
    size = sum(t.numel() * t.element_size() for t in g.generator.state_dict().values())
    size += sum(t.numel() * t.element_size() for t in d.discriminator.state_dict().values())
    with host.on_device(g.generator, None, d.discriminator, work_bytes=1000) as dev:
        assert str(dev) == "cuda:0"
        assert moves == [(g.generator, "cuda:0"), (d.discriminator, "cuda:0")]
    assert calls["free"] == [(size + 1000, torch.device("cuda:0"))]
    assert moves[2:] == [(g.generator, "cpu"), (d.discriminator, "cpu")]
    moves.clear()
    with pytest.raises(RuntimeError), host.on_device(g.generator):
        raise RuntimeError("boom")
    assert moves == [(g.generator, "cuda:0"), (g.generator, "cpu")]
    assert host.storage_device() == torch.device("cpu")
    # face detectors: RetinaFace's network is counted and moved; dlib (no network) is not
    calls["free"].clear()

    class RetinaLike:
        network = torch.nn.Linear(2, 2)

    class DlibLike:
        pass

    with host.on_device(RetinaLike(), DlibLike()):
        pass
    assert calls["free"] == [(6 * 4, torch.device("cuda:0"))]


def test_example_inputs_are_copied_to_comfyuis_input_folder_never_over_a_file(
    host, monkeypatch, tmp_path
):
    _fake_comfy(monkeypatch, tmp_path, host)
    src = tmp_path / "pack_inputs"
    src.mkdir()
    (src / "a.jpg").write_bytes(b"new a")
    (src / "b.mp4").write_bytes(b"new b")
    (src / "LICENSES.md").write_text("not an input")
    (tmp_path / "input").mkdir()
    (tmp_path / "input" / "a.jpg").write_bytes(b"the user's own a")
    assert host.install_example_inputs(src) == ["b.mp4"]
    assert (tmp_path / "input" / "a.jpg").read_bytes() == b"the user's own a"
    assert (tmp_path / "input" / "b.mp4").read_bytes() == b"new b"
    assert not (tmp_path / "input" / "LICENSES.md").exists()
    assert host.install_example_inputs(src) == []
    assert sorted(p.name for p in (tmp_path / "input").iterdir()) == ["a.jpg", "b.mp4"]


def test_the_pack_ships_the_inputs_its_workflows_name(host):
    names = {p.name for p in host.EXAMPLE_INPUTS.iterdir()}
    assert {"jojogan_face.jpg", "jojogan_reference.jpg", "jojogan_video.mp4"} <= names


def test_nodes_work_under_comfyui_inference_mode(M, host, tiny, tmp_path):
    """ComfyUI calls every node inside torch.inference_mode(): loaders must still build models
    that Finetune and optimisation inversion can train through."""
    from jojogan.checkpoints import save_stylegan2

    g0, d0 = tiny
    folder = tmp_path / "cache" / "jojogan"
    folder.mkdir(parents=True)
    save_stylegan2(folder / "inf.safetensors", g_ema=g0.generator, d=d0.discriminator)
    host.clear_cache()
    with torch.inference_mode():
        g, d = M["JoJoGAN_LoadStyleGAN2"]().load("inf.safetensors")
        ref = _img(1)
        lat, _ = M["JoJoGAN_Invert"]().invert(g, "optimize", 2, 0.05, 0, 0, "", images=ref)
        ds, _ = M["JoJoGAN_BuildMixedDataset"]().build(g, ref, lat, "w+", "full", "", 1.0, 1, 0)
        sm, _ = M["JoJoGAN_Finetune"]().finetune(g, d, ds, steps=2, noise_mode="const")
        (out,) = M["JoJoGAN_Stylize"]().stylize(sm, lat, 0.5, "const", 0, 0, -1, 8)
    assert sm.result.steps_done == 2 and out.shape == (1, 16, 16, 3)
    host.clear_cache()
