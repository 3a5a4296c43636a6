"""The pack inside a real ComfyUI, headless (marker ``comfyui``; skipped without COMFYUI_PATH).

The real-ComfyUI test files, in one command (from the pack's folder, in the pack's dev
environment: ``pip install -e ".[dev,comfyui-tests]"``)::

    COMFYUI_PATH=/path/to/ComfyUI COMFYUI_PYTHON=/path/to/ComfyUI/venv/bin/python \\
        python -m pytest -q -m comfyui tests/test_comfyui_*.py

ComfyUI is started on 127.0.0.1 (a free port) with ``--cpu --base-directory <tmp>
--database-url sqlite:///:memory: --disable-api-nodes``, this pack symlinked into
``<tmp>/custom_nodes`` and ``OMP_NUM_THREADS=2``; ``COMFYUI_PYTHON`` is its interpreter (default:
this one), which needs only ComfyUI's requirements and the pack's ``requirements.txt`` (the pack
is not pip-installed there, as for real users). The test process itself runs in the pack's dev
environment: it writes the stand-in weights with ``jojogan`` and talks to the server over HTTP and
the websocket (``websocket-client``, the ``comfyui-tests`` extra).

Inputs: nothing is written into ``<tmp>/input`` but one file: the pack copies its own example
inputs there when it loads, and the test checks that a file the user already had under one of
those names (``jojogan_reference_2.jpg``, a different picture) is left alone.

Pretrained FFHQ weights cannot be downloaded here, so the FFHQ workflows run on **stand-in files
under the real names** (random weights of the right layouts, a 64 px generator with 512-wide
codes; e4e / ArcFace of the real architectures): every node executes for real, the pictures are
meaningless. Their Finetune steps are lowered to 3 and alignment sizes to 256 px (stated in the
output). The toy workflow runs unmodified on the shipped toy model (or on a tiny stand-in when it
is absent, said so), watched over the websocket: its Finetune (node 6) and the inputs' Invert
(node 7) must send live previews while they run.

On two idle CPU cores this file takes about 2.5 minutes and the browser file about 1.5 (the toy
workflow is most of it); several times that when other work shares the cores.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path

import pytest

pytestmark = pytest.mark.comfyui

ROOT = Path(__file__).resolve().parents[1]
WF_DIR = ROOT / "example_workflows"
EXAMPLE_INPUTS = WF_DIR / "inputs"
COMFYUI = os.environ.get("COMFYUI_PATH")
if not COMFYUI:
    pytest.skip("COMFYUI_PATH is not set (no ComfyUI to test against)", allow_module_level=True)

from standin_weights import write_standin_weights  # noqa: E402
from toy_standin import toy_model_dir  # noqa: E402  (tests/toy_standin.py)

# an input the user already had under one of the pack's example names: never overwritten
USER_INPUT = "jojogan_reference_2.jpg"
TOY_TIMEOUT = 1800  # s; ~1.5 min alone on two cores, several times that on shared, busy ones
# ComfyUI's binary websocket events (protocol.BinaryEventTypes)
PREVIEW_IMAGE = 1
PREVIEW_IMAGE_WITH_METADATA = 4


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Comfy:
    """One ComfyUI server process on 127.0.0.1 (a free port), its log in ``<base>/comfyui.log``."""

    def __init__(self, base: Path, env: dict) -> None:
        self.base = base
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = base / "comfyui.log"
        self.log = open(self.log_path, "w")
        python = os.environ.get("COMFYUI_PYTHON", sys.executable)
        cmd = [
            python,
            "main.py",
            "--cpu",
            "--listen",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--base-directory",
            str(base),
            "--database-url",
            "sqlite:///:memory:",
            "--disable-api-nodes",
        ]
        self.proc = subprocess.Popen(
            cmd, cwd=COMFYUI, stdout=self.log, stderr=subprocess.STDOUT, env=env
        )

    def get(self, path: str, timeout: float = 30) -> bytes:
        with urllib.request.urlopen(self.url + path, timeout=timeout) as r:
            return r.read()

    def get_json(self, path: str):
        return json.loads(self.get(path))

    def post(self, path: str, body: dict | None = None) -> tuple[int, dict]:
        data = json.dumps(body or {}).encode()
        req = urllib.request.Request(
            self.url + path, data=data, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                text = r.read()
                return r.status, (json.loads(text) if text.strip() else {})
        except urllib.error.HTTPError as e:
            text = e.read()
            try:
                return e.code, json.loads(text)
            except json.JSONDecodeError:
                return e.code, {"raw": text.decode(errors="replace")}

    def wait_ready(self, timeout: float = 300) -> None:
        t0 = time.time()
        while time.time() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ComfyUI exited: {self.log_path.read_text()[-3000:]}")
            try:
                self.get("/system_stats", timeout=5)
                return
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(1)
        raise TimeoutError(f"ComfyUI did not start: {self.log_path.read_text()[-3000:]}")

    def submit(self, wf: dict, client_id: str | None = None) -> dict:
        body = {"prompt": wf, "client_id": client_id or uuid.uuid4().hex}
        status, res = self.post("/prompt", body)
        return {"status": status, **res}

    def wait_history(self, prompt_id: str, timeout: float) -> dict:
        t0 = time.time()
        while time.time() - t0 < timeout:
            h = self.get_json(f"/history/{prompt_id}")
            if prompt_id in h and h[prompt_id].get("status", {}).get("completed") is not None:
                st = h[prompt_id]["status"]
                if st.get("completed") or st.get("status_str") == "error":
                    return h[prompt_id]
            time.sleep(1)
        raise TimeoutError(f"prompt {prompt_id} did not finish in {timeout} s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=20)
        self.log.close()


# --------------------------------------------------------------------- the server's base folder


def make_base(base: Path) -> Path:
    """``<base>/custom_nodes/comfyui-jojogan`` -> this checkout; returns ``<base>/models/jojogan``
    (not created: the pack creates it when it loads)."""
    (base / "custom_nodes").mkdir(parents=True)
    os.symlink(ROOT, base / "custom_nodes" / "comfyui-jojogan")
    return base / "models" / "jojogan"


def server_env(base: Path, toy_dir: Path) -> dict:
    env = dict(os.environ)
    env.update(
        JOJOGAN_TOY_DIR=str(toy_dir),
        JOJOGAN_CACHE=str(base / "jojogan_cache"),
        OMP_NUM_THREADS="2",
        HF_HUB_OFFLINE="1",
        JOJOGAN_TOY_STYLES=str(ROOT / "benchmarks" / "example_styles.py"),
    )
    env.pop("JOJOGAN_AUTO_DOWNLOAD", None)  # a missing model must be the pack's message
    return env


def _user_picture() -> bytes:
    """A JPEG that differs from every example input (the reference, mirrored)."""
    from PIL import Image, ImageOps

    pic = ImageOps.mirror(Image.open(EXAMPLE_INPUTS / "jojogan_reference.jpg").convert("RGB"))
    buf = BytesIO()
    pic.save(buf, format="JPEG", quality=80)
    return buf.getvalue()


@pytest.fixture(scope="module")
def comfy(tmp_path_factory):
    base = tmp_path_factory.mktemp("comfy_base")
    models = make_base(base)
    write_standin_weights(models)
    user_bytes = _user_picture()
    (base / "input").mkdir()
    (base / "input" / USER_INPUT).write_bytes(user_bytes)
    toy_dir, toy_label = toy_model_dir(base)
    server = Comfy(base, server_env(base, toy_dir))
    try:
        server.wait_ready()
        server.toy_label = toy_label
        server.models = models
        server.user_bytes = user_bytes
        yield server
    finally:
        server.stop()
        print(f"ComfyUI log: {server.log_path}")


def _load_api(name: str) -> dict:
    return json.loads((WF_DIR / "api" / f"{name}.json").read_text())


def _standin_patch(wf: dict) -> dict:
    wf = copy.deepcopy(wf)
    for node in wf.values():
        ins = node["inputs"]
        if node["class_type"] == "JoJoGAN_Finetune":
            ins["steps"] = 3
        if node["class_type"] in ("JoJoGAN_AlignFaces", "JoJoGAN_AlignVideo"):
            ins["size"] = 256
    return wf


def _output_images(comfy: Comfy, hist: dict) -> dict[str, list]:
    """node id -> the PIL images its outputs saved (fetched through /view); a saved video
    (Save Video) counts as its frames, decoded with PyAV."""
    from PIL import Image

    out: dict[str, list] = {}
    for node_id, node_out in hist["outputs"].items():
        for img in node_out.get("images", []):
            q = urllib.parse.urlencode(
                {"filename": img["filename"], "subfolder": img["subfolder"], "type": img["type"]}
            )
            data = comfy.get(f"/view?{q}")
            if img["filename"].lower().endswith((".mp4", ".webm", ".mov")):
                import av

                with av.open(BytesIO(data)) as box:
                    frames = [f.to_image() for f in box.decode(video=0)]
                assert len(frames) > 1, f"{img['filename']}: {len(frames)} frames"
                out.setdefault(node_id, []).extend(frames)
                continue
            pic = Image.open(BytesIO(data))
            pic.load()
            assert pic.size[0] > 0
            out.setdefault(node_id, []).append(pic)
    return out


def _errors(hist: dict) -> list[dict]:
    return [
        {k: m[1].get(k) for k in ("node_id", "node_type", "exception_message")}
        for m in hist["status"].get("messages", [])
        if m[0] == "execution_error"
    ]


# ------------------------------------------------------------------------- the websocket watch


@dataclass
class Preview:
    node: str | None  # the node id the server sent (new format), else the node executing
    executing: str | None  # the node the last "executing" message named
    fmt: int  # 4: with metadata, 1: the old bare image
    size: tuple[int, int]


@dataclass
class Watch:
    prompt_id: str
    events: list = field(default_factory=list)  # (type, data, t) of the JSON messages
    previews: list[Preview] = field(default_factory=list)
    executed_nodes: list[str] = field(default_factory=list)

    def previews_of(self, node: str) -> list[Preview]:
        return [p for p in self.previews if p.node == node]


def _decode_preview(data: bytes, executing: str | None) -> Preview | None:
    """A binary websocket message -> Preview (server.py ``encode_bytes``: a big-endian uint32
    event type, then for PREVIEW_IMAGE_WITH_METADATA a uint32 length, that much JSON metadata
    and the image; for PREVIEW_IMAGE a uint32 image format and the image)."""
    from PIL import Image

    (event,) = struct.unpack(">I", data[:4])
    if event == PREVIEW_IMAGE_WITH_METADATA:
        (n,) = struct.unpack(">I", data[4:8])
        meta = json.loads(data[8 : 8 + n])
        pic = Image.open(BytesIO(data[8 + n :]))
        node = str(meta.get("display_node_id") or meta.get("node_id"))
    elif event == PREVIEW_IMAGE:
        pic = Image.open(BytesIO(data[8:]))
        node = executing
    else:
        return None
    pic.load()
    return Preview(node, executing, event, pic.size)


def connect_ws(comfy: Comfy, client_id: str, timeout: float = 60):
    """A websocket as the frontend opens it: ``/ws?clientId=...``, then the feature flags
    (``supports_preview_metadata``: previews come with the node id); returns after the server
    answered with its own flags, so the next prompt's previews use the new format."""
    try:
        import websocket
    except ImportError:
        pytest.fail("needs websocket-client: pip install -e '.[comfyui-tests]'")
    ws = websocket.create_connection(
        f"ws://127.0.0.1:{comfy.port}/ws?clientId={client_id}", timeout=timeout
    )
    ws.send(json.dumps({"type": "feature_flags", "data": {"supports_preview_metadata": True}}))
    t0 = time.time()
    while time.time() - t0 < timeout:
        opcode, data = ws.recv_data()
        if opcode == websocket.ABNF.OPCODE_TEXT and json.loads(data).get("type") == "feature_flags":
            return ws
    ws.close()
    raise TimeoutError("the server never answered the feature flags")


def watch_prompt(ws, prompt_id: str, timeout: float, on_event=None) -> Watch:
    """Read the websocket until the prompt ends (``executing`` with node None for it); record
    its JSON events, which nodes executed and every preview (with the node executing when it
    arrived). ``on_event(type, data)`` is called for each JSON message."""
    import websocket

    w = Watch(prompt_id)
    executing = None
    deadline = time.time() + timeout
    while True:
        left = deadline - time.time()
        if left <= 0:
            raise TimeoutError(f"prompt {prompt_id} did not end in {timeout} s")
        ws.settimeout(left)
        opcode, data = ws.recv_data()
        if opcode == websocket.ABNF.OPCODE_BINARY:
            p = _decode_preview(data, executing)
            if p is not None:
                w.previews.append(p)
            continue
        if opcode != websocket.ABNF.OPCODE_TEXT:
            continue
        msg = json.loads(data)
        kind, d = msg.get("type"), msg.get("data") or {}
        if not isinstance(d, dict) or d.get("prompt_id") not in (None, prompt_id):
            continue
        w.events.append((kind, d, time.time()))
        if on_event is not None:
            on_event(kind, d)
        if kind == "executing":
            executing = d.get("node")
            if executing is None and d.get("prompt_id") == prompt_id:
                return w
            w.executed_nodes.append(executing)


def run_watched(comfy: Comfy, wf: dict, timeout: float, on_event=None) -> tuple[dict, Watch]:
    """Submit ``wf`` with a websocket open under the same client id; (history entry, Watch)."""
    cid = uuid.uuid4().hex
    ws = connect_ws(comfy, cid)
    try:
        res = comfy.submit(wf, client_id=cid)
        assert res["status"] == 200, res
        assert res.get("node_errors") == {}, res
        w = watch_prompt(ws, res["prompt_id"], timeout, on_event)
    finally:
        ws.close()
    return comfy.wait_history(res["prompt_id"], timeout=60), w


# ------------------------------------------------------------------------------------- tests


def test_pack_loads_and_installs_its_inputs_without_overwriting(comfy):
    log = comfy.log_path.read_text()
    failed = [ln for ln in log.splitlines() if "IMPORT FAILED" in ln or "Cannot import" in ln]
    assert not [ln for ln in failed if "jojogan" in ln], failed
    # the pack created its model folders
    assert (comfy.base / "models" / "jojogan").is_dir()
    assert (comfy.base / "models" / "facedetection").is_dir()
    shipped = sorted(
        p.name for p in EXAMPLE_INPUTS.iterdir() if p.suffix.lower() in {".jpg", ".mp4"}
    )
    assert {"jojogan_face.jpg", "jojogan_reference.jpg", "jojogan_video.mp4"} <= set(shipped)
    inputs = comfy.base / "input"
    for name in shipped:
        assert (inputs / name).is_file(), f"{name} was not copied to {inputs}"
        if name == USER_INPUT:
            assert (inputs / name).read_bytes() == comfy.user_bytes, "the user's file changed"
        else:
            assert (inputs / name).read_bytes() == (EXAMPLE_INPUTS / name).read_bytes()
    assert not [p.name for p in inputs.iterdir() if p.name.endswith(".jojogan-tmp")]
    # and LoadImage offers them
    images = comfy.get_json("/object_info/LoadImage")["LoadImage"]["input"]["required"]
    assert {"jojogan_face.jpg", "jojogan_reference.jpg", USER_INPUT} <= set(images["image"][0])


def test_object_info_lists_every_node_and_templates(comfy):
    from make_node_reference import load_pack as load_pack_as_comfyui_does

    pack = load_pack_as_comfyui_does(ROOT, "comfyui_jojogan_real_test")
    info = comfy.get_json("/object_info")
    missing = set(pack.NODE_CLASS_MAPPINGS) - set(info)
    assert missing == set()
    for key, cls in pack.NODE_CLASS_MAPPINGS.items():
        assert info[key]["output"] == list(cls.RETURN_TYPES)
        assert info[key]["category"] == cls.CATEGORY
    templates = comfy.get_json("/workflow_templates")
    assert {p.stem for p in WF_DIR.glob("*.json")} <= set(templates["comfyui-jojogan"])
    # $JOJOGAN_TOY_STYLES (set when the server started) adds its styles to the Toy Render node
    styles = info["JoJoGAN_ToyRender"]["input"]["required"]["style"][0]
    assert "blueprint" in styles and "photo" in styles


def test_loader_dropdowns_list_files_of_their_kind_and_the_fetchable_names(comfy):
    """Each loader lists the files of its kind (`jojogan.weights.file_kind`, by registry name or
    by contents) and the known files of that kind it can fetch; never another kind's files."""
    from jojogan import weights

    info = comfy.get_json("/object_info")

    def choices(node: str, widget: str) -> list[str]:
        return info[node]["input"]["required"][widget][0]

    lists = {
        "stylegan2": choices("JoJoGAN_LoadStyleGAN2", "ckpt_name"),
        "encoder": choices("JoJoGAN_LoadEncoder", "encoder_name"),
        "arcface": choices("JoJoGAN_LoadArcFace", "model_name"),
        "style": choices("JoJoGAN_LoadStyleModel", "style_name"),
    }
    present = {
        "stylegan2": {"stylegan2-ffhq-config-f.pt", "my_base.pt"},
        "encoder": {"e4e_ffhq_encode.pt"},
        "arcface": {"model_ir_se50.pth"},
        "style": {"jojo.pt", "arcane_jinx.pt", "disney.pt", "my_style.pt"},
    }
    for kind, names in lists.items():
        assert len(names) == len(set(names)), (kind, names)
        fetchable = {
            e.name for e in weights.REGISTRY.values() if e.kind == kind and e.folder == "jojogan"
        }
        assert set(names) == present[kind] | fetchable, (kind, sorted(names))
        for other, files in present.items():
            if other != kind:
                assert not (files & set(names)), f"{kind} loader lists {other} files: {names}"
    # the files that are there come first, then the ones that can be fetched
    style = lists["style"]
    assert set(style[:4]) == present["style"], style
    assert "stylegan2-ffhq-config-f.pt" in lists["stylegan2"]
    assert "jojo.pt" in lists["style"] and "jojo.pt" not in lists["stylegan2"]
    assert "arcane_caitlyn.pt" in lists["style"]  # known, not there: choosing it says how


def test_absent_known_model_is_the_packs_message(comfy):
    """A workflow naming a known model file that is not in the folder passes validation (the
    dropdown offers it) and fails at run time with the pack's message: the file, the folder,
    and the download command."""
    name = "arcane_caitlyn.pt"
    assert not (comfy.models / name).exists()
    wf = {
        "1": {
            "class_type": "JoJoGAN_LoadStyleGAN2",
            "inputs": {"ckpt_name": "stylegan2-ffhq-config-f.pt"},
        },
        "2": {
            "class_type": "JoJoGAN_LoadStyleModel",
            "inputs": {"generator": ["1", 0], "style_name": name, "check_base": True},
        },
        "3": {
            "class_type": "JoJoGAN_SampleStyled",
            "inputs": {
                "style_model": ["2", 0],
                "count": 1,
                "seed": 0,
                "truncation": 0.7,
                "intensity": 1.0,
            },
        },
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "x"}},
    }
    res = comfy.submit(wf)
    assert res["status"] == 200 and res.get("node_errors") == {}, res
    hist = comfy.wait_history(res["prompt_id"], timeout=300)
    assert hist["status"]["status_str"] == "error"
    (err,) = _errors(hist)
    assert err["node_type"] == "JoJoGAN_LoadStyleModel" and err["node_id"] == "2", err
    msg = err["exception_message"]
    print(f"the message: {msg}")
    assert msg.startswith("JoJoGAN Load Style Model: 'style_name'"), msg
    assert name in msg
    assert str(comfy.models) in msg
    assert "-m jojogan download" in msg
    assert f"-m jojogan download {name}" in msg


@pytest.mark.parametrize("name", sorted(p.stem for p in (WF_DIR / "api").glob("*.json")))
def test_bundled_api_workflow_is_accepted_and_finishes(comfy, name):
    wf = _load_api(name)
    toy = name == "jojogan_toy_demo"
    if toy:
        print(f"{name}: unmodified, on the {comfy.toy_label}")
    else:
        wf = _standin_patch(wf)
        print(f"{name}: stand-in weights, Finetune steps 3, align size 256")
    t0 = time.time()
    hist, watch = run_watched(comfy, wf, timeout=TOY_TIMEOUT if toy else 900)
    print(f"{name}: {time.time() - t0:.0f} s, {len(watch.previews)} previews")
    assert hist["status"]["status_str"] == "success", _errors(hist)
    images = _output_images(comfy, hist)
    assert images, "no saved image"
    saves = {k for k, v in wf.items() if v["class_type"] in ("SaveImage", "SaveVideo")}
    assert set(images) == saves, (sorted(images), sorted(saves))
    # the intensity sweeps save Interpolate Style's grid: one picture, a row per input face
    # and a column per intensity
    for k, v in wf.items():
        if v["class_type"] != "SaveImage":
            continue
        src, idx = v["inputs"]["images"]
        if wf[src]["class_type"] == "JoJoGAN_InterpolateStyle":
            assert idx == 1, f"{name}: node {k} saves Interpolate Style's output {idx}"
            (grid,) = images[k]
            count = wf[src]["inputs"]["count"]
            rows = 4 if toy else 1  # the toy workflow's four input faces; one photo otherwise
            ratio = grid.size[0] / grid.size[1]
            assert abs(ratio - count / rows) < 0.15 * count / rows, (grid.size, count, rows)
    if name == "jojogan_video_frames":
        # Get Video Components' fps drives Align Video's smoothing and the saved video, which
        # has as many frames as the clip (48)
        assert wf["6"]["inputs"]["fps"] == ["5", 2] and wf["10"]["inputs"]["fps"] == ["5", 2]
        assert len(images["11"]) == 48
    if toy:
        # live previews while they run: the inputs' Invert (node 7) and Finetune (node 6), in
        # the new format (with the node id), each arriving while its node executes
        assert watch.previews, "no preview at all"
        assert {p.fmt for p in watch.previews} == {PREVIEW_IMAGE_WITH_METADATA}
        for node, steps in (("7", wf["7"]["inputs"]["steps"]), ("6", wf["6"]["inputs"]["steps"])):
            got = watch.previews_of(node)
            every = wf[node]["inputs"]["preview_every"]
            print(f"node {node}: {len(got)} previews ({steps} steps, one every {every})")
            assert got, f"no preview from node {node}"
            assert all(p.executing == node for p in got), [p.executing for p in got]
            assert all(min(p.size) >= 32 for p in got), [p.size for p in got]
        assert "6" in watch.executed_nodes and "7" in watch.executed_nodes


def test_bad_socket_is_a_node_error_and_bad_input_names_node_and_input(comfy):
    wf = _load_api("jojogan_toy_demo")
    bad = copy.deepcopy(wf)
    bad["8"]["inputs"]["latent"] = ["3", 0]  # an IMAGE into a JOJOGAN_LATENT socket
    res = comfy.submit(bad)
    assert res["status"] in (200, 400)
    assert "8" in res.get("node_errors", {}), res
    # a run-time refusal: identity loss without an ArcFace model
    bad = copy.deepcopy(wf)
    bad["6"]["inputs"]["id_weight"] = 1000.0
    res = comfy.submit(bad)
    assert res["status"] == 200 and res["node_errors"] == {}
    hist = comfy.wait_history(res["prompt_id"], timeout=TOY_TIMEOUT)
    assert hist["status"]["status_str"] == "error"
    err = next(m[1] for m in hist["status"]["messages"] if m[0] == "execution_error")
    assert err["node_type"] == "JoJoGAN_Finetune"
    assert err["exception_message"].startswith("JoJoGAN Finetune: 'id_weight' > 0 needs the")


def test_interrupt_stops_finetune_within_a_few_steps(comfy):
    wf = _load_api("jojogan_toy_demo")
    wf["6"]["inputs"]["steps"] = 100_000
    wf["6"]["inputs"]["seed"] = 12345  # not cached
    cid = uuid.uuid4().hex
    ws = connect_ws(comfy, cid)
    state = {"interrupted_at": None, "steps": 0}

    def on_event(kind, d):
        # interrupt once Finetune (node 6) has made a few steps
        if kind == "progress" and d.get("node") == "6" and state["interrupted_at"] is None:
            state["steps"] += 1
            if state["steps"] >= 3:
                state["interrupted_at"] = time.time()
                status, _ = comfy.post("/interrupt")
                assert status == 200

    try:
        res = comfy.submit(wf, client_id=cid)
        assert res["status"] == 200 and res["node_errors"] == {}
        watch_prompt(ws, res["prompt_id"], TOY_TIMEOUT, on_event)
    finally:
        ws.close()
    assert state["interrupted_at"] is not None, "Finetune never reported progress"
    hist = comfy.wait_history(res["prompt_id"], timeout=120)
    msgs = hist["status"]["messages"]
    kinds = [m[0] for m in msgs]
    assert "execution_interrupted" in kinds, kinds
    info = next(m[1] for m in msgs if m[0] == "execution_interrupted")
    assert info["node_type"] == "JoJoGAN_Finetune"
    stopped_after = info["timestamp"] / 1000 - state["interrupted_at"]
    print(f"interrupt: Finetune stopped {stopped_after:.2f} s after /interrupt was sent")
    assert stopped_after < 30
    # the server still works after an interrupt (a short Finetune; the rest is cached)
    again = _load_api("jojogan_toy_demo")
    again["6"]["inputs"]["steps"] = 5
    res = comfy.submit(again)
    assert res["status"] == 200 and res["node_errors"] == {}
    assert comfy.wait_history(res["prompt_id"], TOY_TIMEOUT)["status"]["status_str"] == "success"
