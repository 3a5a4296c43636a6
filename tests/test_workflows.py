"""The bundled workflows (example_workflows/): checked against the pack's own node definitions,
UI and API formats consistent, generated files up to date, and the toy workflow run end to end
through the node functions the way ComfyUI's executor calls them (no ComfyUI needed)."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import generate  # example_workflows/generate.py
import pytest
import torch
from toy_standin import toy_model_dir  # tests/toy_standin.py

from jojogan import weights

ROOT = Path(__file__).resolve().parents[1]
WF_DIR = ROOT / "example_workflows"

API_FILES = sorted((WF_DIR / "api").glob("*.json"))
UI_FILES = sorted(WF_DIR.glob("*.json"))
MODEL_WIDGETS = {"ckpt_name", "encoder_name", "model_name", "style_name"}
REQUIRED_WORKFLOWS = {
    "jojogan_toy_demo",
    "jojogan_one_shot_face",
    "jojogan_multi_shot",
    "jojogan_preserve_color_identity",
    "jojogan_intensity_sweep",
    "jojogan_released_style_paste_back",
    "jojogan_video_frames",
}


@pytest.fixture(scope="module")
def pack():
    from make_node_reference import load_pack as load_pack_as_comfyui_does

    return load_pack_as_comfyui_does(ROOT, "comfyui_jojogan_workflows_test")


def _core_spec(class_type: str) -> dict | None:
    return generate.CORE_NODES.get(class_type)


def validate_api(wf: dict, mappings: dict) -> list[str]:
    """Every problem ComfyUI's /prompt validation would report for this graph (and a few more)."""
    errors: list[str] = []
    for nid, node in wf.items():
        ct = node.get("class_type")
        inputs = node.get("inputs", {})
        where = f"node {nid} ({ct})"
        if ct in mappings:
            it = mappings[ct].INPUT_TYPES()
            specs = {**it.get("required", {}), **it.get("optional", {})}
            required = set(it.get("required", {}))
        elif _core_spec(ct) is not None:
            core = _core_spec(ct)
            specs = {
                n: (([],) if t == "COMBO" else (t,)) + (({"core": True},) if w else ())
                for n, t, w in core["inputs"]
            }
            required = set(specs)
        else:
            errors.append(f"{where}: unknown node class")
            continue
        for name in required - set(inputs):
            errors.append(f"{where}: required input {name!r} missing")
        for name in set(inputs) - set(specs):
            errors.append(f"{where}: unknown input {name!r}")
        for name, value in inputs.items():
            if name not in specs:
                continue
            spec = specs[name]
            t = spec[0]
            opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
            if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str):
                src, idx = value
                if src not in wf:
                    errors.append(f"{where}: {name!r} links to missing node {src}")
                    continue
                out_types = _output_types(wf[src]["class_type"], mappings)
                if out_types is None or not 0 <= idx < len(out_types):
                    errors.append(f"{where}: {name!r} links to a missing output {src}:{idx}")
                    continue
                want = "COMBO" if isinstance(t, list) else t
                if out_types[idx] != want:
                    errors.append(f"{where}: {name!r} wants {want}, gets {out_types[idx]}")
                continue
            if isinstance(t, list):
                if opts.get("core"):
                    ok = isinstance(value, str) and bool(value)
                elif name in MODEL_WIDGETS:
                    ok = value in weights.REGISTRY or str(value).endswith(".safetensors")
                else:
                    ok = value in t
                if not ok:
                    errors.append(f"{where}: {name!r} = {value!r} is not a valid choice")
            elif t == "INT":
                if not isinstance(value, int) or isinstance(value, bool):
                    errors.append(f"{where}: {name!r} must be an INT, got {value!r}")
                elif not opts.get("min", -(2**63)) <= value <= opts.get("max", 2**63):
                    errors.append(f"{where}: {name!r} = {value} outside its range")
            elif t == "FLOAT":
                if not isinstance(value, int | float) or isinstance(value, bool):
                    errors.append(f"{where}: {name!r} must be a FLOAT, got {value!r}")
                elif not opts.get("min", -1e300) <= value <= opts.get("max", 1e300):
                    errors.append(f"{where}: {name!r} = {value} outside its range")
            elif t == "BOOLEAN":
                if not isinstance(value, bool):
                    errors.append(f"{where}: {name!r} must be a BOOLEAN, got {value!r}")
            elif t == "STRING":
                if not isinstance(value, str):
                    errors.append(f"{where}: {name!r} must be a STRING, got {value!r}")
            else:
                errors.append(f"{where}: socket {name!r} ({t}) must be a link, got {value!r}")
    outputs = [
        n
        for n in wf.values()
        if n["class_type"] in ("SaveImage", "SaveVideo")
        or getattr(mappings.get(n["class_type"]), "OUTPUT_NODE", False)
    ]
    if not outputs:
        errors.append("the graph has no output node (ComfyUI would run nothing)")
    return errors


def _output_types(class_type: str, mappings: dict) -> list[str] | None:
    if class_type in mappings:
        return list(mappings[class_type].RETURN_TYPES)
    core = _core_spec(class_type)
    return None if core is None else [t for _n, t in core.get("outputs", [])]


def test_every_required_workflow_is_bundled_in_both_formats():
    api = {p.stem for p in API_FILES}
    ui = {p.stem for p in UI_FILES}
    assert REQUIRED_WORKFLOWS <= api
    assert api == ui


def test_generated_files_are_up_to_date():
    for path, text in generate.render_all().items():
        assert path.read_text() == text, (
            f"{path} is stale: run python example_workflows/generate.py"
        )


@pytest.mark.parametrize("path", API_FILES, ids=lambda p: p.stem)
def test_api_workflow_is_valid_for_the_pack(path, pack):
    wf = json.loads(path.read_text())
    assert validate_api(wf, pack.NODE_CLASS_MAPPINGS) == []


def test_validator_catches_broken_graphs(pack):
    wf = json.loads((WF_DIR / "api" / "jojogan_one_shot_face.json").read_text())
    m = pack.NODE_CLASS_MAPPINGS
    bad = copy.deepcopy(wf)
    bad["7"]["inputs"]["steps"] = 0  # below min
    bad["7"]["inputs"]["noise_mode"] = "loud"  # not a choice
    bad["11"]["inputs"]["latent"] = ["3", 0]  # IMAGE into a LATENT socket
    del bad["7"]["inputs"]["generator"]  # required link missing
    bad["5"]["class_type"] = "JoJoGAN_Nope"
    errs = "\n".join(validate_api(bad, m))
    for needle in ("'steps' = 0", "'noise_mode'", "wants JOJOGAN_LATENT", "'generator'", "Nope"):
        assert needle in errs


@pytest.mark.parametrize("path", UI_FILES, ids=lambda p: p.stem)
def test_ui_workflow_matches_its_api_twin(path, pack):
    ui = json.loads(path.read_text())
    api = json.loads((WF_DIR / "api" / path.name).read_text())
    notes = [n for n in ui["nodes"] if n["type"] == "MarkdownNote"]  # UI-only, for the reader
    graph = [n for n in ui["nodes"] if n["type"] != "MarkdownNote"]
    assert {str(n["id"]) for n in graph} == set(api)
    assert ui["last_node_id"] == max(n["id"] for n in ui["nodes"])
    assert ui["last_link_id"] == len(ui["links"])
    assert len(notes) == 1 and len(notes[0]["widgets_values"][0]) > 100
    for n in graph:
        a = api[str(n["id"])]
        assert n["type"] == a["class_type"]
        spec = generate.node_spec(n["type"])
        widget_names = [name for name, _t, w in spec["inputs"] if w]
        values = list(n["widgets_values"])
        expected = []
        for name in widget_names:
            value = a["inputs"][name]
            if isinstance(value, list):  # a widget fed by a link: an input slot in the UI
                slot = next(i for i in n["inputs"] if i["name"] == name)
                assert slot["widget"] == {"name": name} and slot["link"] is not None
                value = values[len(expected)]  # its own value stays, unused
            expected.append(value)
            if name == "seed":
                expected.append("fixed")
            expected.extend(spec["ui_extra"].get(name, []))
        assert values == expected, n["type"]
        assert [o["type"] for o in n["outputs"]] == [t for _n, t in spec["outputs"]]
    sockets = {n["id"]: [i["name"] for i in n["inputs"]] for n in graph}
    for link_id, src, slot, dst, dst_slot, typ in ui["links"]:
        name = sockets[dst][dst_slot]
        assert api[str(dst)]["inputs"][name] == [str(src), slot]
        src_node = next(n for n in graph if n["id"] == src)
        assert link_id in src_node["outputs"][slot]["links"]
        assert src_node["outputs"][slot]["type"] == typ
    n_links = sum(
        1 for a in api.values() for v in a["inputs"].values() if isinstance(v, list) and len(v) == 2
    )
    assert n_links == len(ui["links"])


# ------------------------------------------------------------------- running through the nodes


def run_api(wf: dict, mappings: dict, images: dict | None = None) -> dict:
    """Execute an API graph as ComfyUI does: topological order, widgets + linked outputs as
    keyword arguments, FUNCTION on a fresh instance. SaveImage records its images."""
    done: dict[str, tuple] = {}
    saved: dict[str, torch.Tensor] = {}

    def run(nid: str) -> tuple:
        if nid in done:
            return done[nid]
        node = wf[nid]
        kwargs = {}
        for k, v in node["inputs"].items():
            if isinstance(v, list) and len(v) == 2 and isinstance(v[0], str):
                kwargs[k] = run(v[0])[v[1]]
            else:
                kwargs[k] = v
        ct = node["class_type"]
        if ct == "SaveImage":
            saved[kwargs["filename_prefix"]] = kwargs["images"]
            out: tuple = ()
        elif ct == "LoadImage":
            img = images[kwargs["image"]]
            out = (img, torch.zeros(img.shape[:3]))
        else:
            cls = mappings[ct]
            res = getattr(cls(), cls.FUNCTION)(**kwargs)
            out = tuple(res["result"]) if isinstance(res, dict) else tuple(res)
            assert len(out) == len(cls.RETURN_TYPES)
        done[nid] = out
        return out

    for nid in wf:
        run(nid)
    return saved


def test_toy_workflow_runs_end_to_end_through_the_nodes(pack, tmp_path_factory, monkeypatch):
    folder, label = toy_model_dir(tmp_path_factory.mktemp("toy"))
    print(f"toy workflow on: {label}")
    monkeypatch.setenv("JOJOGAN_TOY_DIR", str(folder))
    monkeypatch.setenv("JOJOGAN_CACHE", str(tmp_path_factory.mktemp("cache")))
    torch.set_num_threads(1)
    wf = json.loads((WF_DIR / "api" / "jojogan_toy_demo.json").read_text())
    # the inputs' refinement runs as the workflow says, shorter (its 300 steps are the default
    # recipe's: test_toy_workflow_inverts_as_the_default_toy_recipe)
    wf["7"]["inputs"]["steps"] = 20
    if "TINY" in label:
        wf["6"]["inputs"]["steps"] = 20  # the stand-in is for wiring, not for quality
    saved = run_api(wf, pack.NODE_CLASS_MAPPINGS)
    stylized = saved["jojogan/toy_stylized"]
    grid = saved["jojogan/toy_intensity_grid"]
    assert stylized.ndim == 4 and stylized.shape[0] == 4 and stylized.shape[-1] == 3
    # one picture: a row per input face, a column per intensity (0, 1/2, 1), 2 px gaps
    s = stylized.shape[1]
    assert grid.shape == (1, 4 * (s + 2) + 2, 3 * (s + 2) + 2, 3)
    for t in (stylized, grid):
        assert t.dtype == torch.float32 and float(t.min()) >= 0 and float(t.max()) <= 1
        assert torch.isfinite(t).all()

    def cell(row, col):
        y, x = 2 + row * (s + 2), 2 + col * (s + 2)
        return grid[0, y : y + s, x : x + s]

    for i in range(4):
        # intensity 0 is the base generator's reconstruction, 1 the fine-tuned one: they differ
        assert (cell(i, 0) - cell(i, 2)).abs().mean() > 1e-4
        torch.testing.assert_close(cell(i, 2), stylized[i], atol=1e-5, rtol=0)


def test_toy_workflow_inverts_as_the_default_toy_recipe():
    """The toy workflow and `python -m jojogan demo` do the same: the encoder's code of the
    reference, then EDGE_STEPS steps matching its edges at EDGE_LR; the inputs' encoder codes
    refined input_refine_steps steps at REFINE_LR on pixels and the discriminator's features."""
    from jojogan.toy.recipes import EDGE_LR, REFINE_LR, toy_settings

    _, inv = toy_settings(None)
    wf = json.loads((WF_DIR / "api" / "jojogan_toy_demo.json").read_text())
    ref_inv, photo_inv = wf["4"]["inputs"], wf["7"]["inputs"]
    assert ref_inv["method"] == "optimize" and ref_inv["objective"] == "edges"
    assert ref_inv["encoder"] == ["1", 2] and inv.refine_steps == 0
    assert "discriminator" not in ref_inv
    assert (ref_inv["steps"], ref_inv["lr"]) == (inv.reference_edge_steps, EDGE_LR)
    assert photo_inv["method"] == "optimize" and photo_inv["objective"] == "pixel"
    assert photo_inv["encoder"] == ["1", 2] and photo_inv["discriminator"] == ["1", 1]
    assert (photo_inv["steps"], photo_inv["lr"]) == (inv.input_refine_steps, REFINE_LR)


def test_toy_workflow_without_toy_model_fails_with_a_clear_message(pack, tmp_path, monkeypatch):
    monkeypatch.setenv("JOJOGAN_TOY_DIR", str(tmp_path))
    wf = json.loads((WF_DIR / "api" / "jojogan_toy_demo.json").read_text())
    with pytest.raises(ValueError, match=r"JoJoGAN Load Toy Model: .*toy_stylegan2\.safetensors"):
        run_api(wf, pack.NODE_CLASS_MAPPINGS)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("path", UI_FILES, ids=lambda p: p.stem)
def test_ui_loader_nodes_carry_the_frontends_models_metadata(path):
    """ComfyUI's frontend offers the download of a missing model named in a node's
    properties.models (name, url, directory): every model a loader widget names is there, with
    a URL of one of the registry's sources and the folder the pack registers."""
    ui = json.loads(path.read_text())
    for n in ui["nodes"]:
        spec = generate.node_spec(n["type"]) if n["type"] != "MarkdownNote" else None
        if spec is None:
            continue
        names = [name for name, _t, w in spec["inputs"] if w]
        values = dict(zip([x for x in names], n["widgets_values"], strict=False))
        wanted = [values[w] for w in MODEL_WIDGETS if w in values]
        models = n["properties"].get("models", [])
        assert [m["name"] for m in models] == wanted, n["type"]
        for m in models:
            entry = weights.REGISTRY[m["name"]]
            assert m["directory"] == entry.folder
            assert m["url"] in {s.url() for s in entry.sources}
            assert m["url"].startswith("https://")


# Workflows saved before the released recipe became Finetune's default (this repository at
# ddc7d97): the widgets a saved UI workflow lists by position must land on the same names, and the
# saved API graphs must still validate. New widgets are only ever appended.
OLD_DIR = ROOT / "tests" / "fixtures" / "workflows_v0"


@pytest.mark.parametrize("stem", ["jojogan_toy_demo", "jojogan_one_shot_face"])
def test_workflows_saved_before_keep_their_widget_values_and_validate(stem, pack):
    ui = json.loads((OLD_DIR / f"{stem}.json").read_text())
    api = json.loads((OLD_DIR / f"api_{stem}.json").read_text())
    assert validate_api(api, pack.NODE_CLASS_MAPPINGS) == []
    checked = 0
    for n in ui["nodes"]:
        if n["type"] not in pack.NODE_CLASS_MAPPINGS:
            continue
        spec = generate.node_spec(n["type"])
        slots = []  # the current widgets, with the frontend's control value after a seed
        for name, _t, is_widget in spec["inputs"]:
            if is_widget:
                slots.append(name)
                if name == "seed":
                    slots.append(None)
        old = n["widgets_values"]
        assert len(old) <= len(slots), n["type"]
        for name, value in zip(slots, old, strict=False):
            if name is not None:
                assert api[str(n["id"])]["inputs"][name] == value, (n["type"], name)
                checked += 1
    assert checked > 10
