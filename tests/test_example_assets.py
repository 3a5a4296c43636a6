"""The files the bundled workflows load (example_workflows/inputs/, made by
example_workflows/make_assets.py) and the template thumbnails: every loaded file ships, with its
licence stated; every workflow has its thumbnail; the images decode and the pack's dlib detector
finds exactly one face in each (aligned at 256 px to stay fast)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from jojogan.faces import align_faces, get_detector
from jojogan.images import load_image

ROOT = Path(__file__).resolve().parents[1]
WF_DIR = ROOT / "example_workflows"
INPUTS = WF_DIR / "inputs"
UI_FILES = sorted(WF_DIR.glob("*.json"))
API_FILES = sorted((WF_DIR / "api").glob("*.json"))
STILLS = ["jojogan_face.jpg", "jojogan_reference.jpg", "jojogan_reference_2.jpg"]
VIDEO = "jojogan_video.mp4"
SHIPPED = {*STILLS, VIDEO, "LICENSES.md"}
LOADERS = {"LoadImage": "image", "LoadVideo": "file"}  # class -> the widget naming the file


def loaded_files(path: Path) -> set[str]:
    """Input file names a workflow's LoadImage/LoadVideo nodes name (UI or API format)."""
    wf = json.loads(path.read_text())
    if "nodes" in wf:  # UI format: the file is the first widget value
        return {n["widgets_values"][0] for n in wf["nodes"] if n.get("type") in LOADERS}
    return {
        n["inputs"][LOADERS[n["class_type"]]] for n in wf.values() if n["class_type"] in LOADERS
    }


def test_workflows_found():
    assert len(UI_FILES) >= 7 and len(API_FILES) == len(UI_FILES)


def test_inputs_folder_holds_exactly_the_shipped_files():
    assert {p.name for p in INPUTS.iterdir()} == SHIPPED


@pytest.mark.parametrize("path", UI_FILES + API_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_loaded_file_ships(path):
    missing = loaded_files(path) - {p.name for p in INPUTS.iterdir()}
    assert not missing, f"{path.name} loads {sorted(missing)}, not in example_workflows/inputs/"


def test_every_input_file_is_loaded_by_a_workflow():
    used = set().union(*(loaded_files(p) for p in UI_FILES + API_FILES))
    assert SHIPPED - {"LICENSES.md"} <= used


@pytest.mark.parametrize("path", UI_FILES, ids=lambda p: p.stem)
def test_every_workflow_has_its_thumbnail(path):
    thumb = path.with_suffix(".jpg")
    assert thumb.is_file(), f"{thumb.name} missing (python example_workflows/make_assets.py)"
    with Image.open(thumb) as im:
        assert im.format == "JPEG"
        assert im.size == (512, 384)


def test_no_thumbnail_without_a_workflow():
    stems = {p.stem for p in UI_FILES}
    assert {p.stem for p in WF_DIR.glob("*.jpg")} <= stems


def test_licenses_name_every_input():
    text = (INPUTS / "LICENSES.md").read_text()
    for name in SHIPPED - {"LICENSES.md"}:
        assert name in text, f"LICENSES.md does not mention {name}"
    assert "public domain" in text.lower()


def test_inputs_are_small():
    total = sum(p.stat().st_size for p in INPUTS.iterdir())
    assert total < 1_000_000, f"example_workflows/inputs/ holds {total} bytes"


@pytest.mark.parametrize("name", STILLS)
def test_still_decodes(name):
    x = load_image(INPUTS / name)
    assert x.shape[0] == 3 and max(x.shape[1:]) <= 768 and min(x.shape[1:]) >= 256


@pytest.fixture(scope="module")
def dlib_detector():
    return get_detector("dlib")


@pytest.mark.parametrize("name", STILLS)
def test_dlib_finds_one_face(name, dlib_detector):
    faces = align_faces(load_image(INPUTS / name), size=256, detector=dlib_detector, which="all")
    assert len(faces) == 1


def test_video_is_an_mp4():
    head = (INPUTS / VIDEO).read_bytes()[:12]
    assert head[4:8] == b"ftyp"


def test_video_frames_have_one_face(dlib_detector):
    """Decoded with PyAV as ComfyUI's LoadVideo does (PyAV is a dev dependency)."""
    import av
    import torch

    with av.open(str(INPUTS / VIDEO)) as box:
        stream = box.streams.video[0]
        assert float(stream.average_rate) == 24
        frames = [f.to_ndarray(format="rgb24") for f in box.decode(video=0)]
    assert len(frames) == 48
    for a in frames[:: len(frames) // 3] + [frames[-1]]:
        x = torch.from_numpy(a).permute(2, 0, 1).float() / 255.0
        assert len(align_faces(x, size=256, detector=dlib_detector, which="all")) == 1
