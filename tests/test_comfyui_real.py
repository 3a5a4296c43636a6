"""The pack inside a real ComfyUI, headless (marker ``comfyui``; skipped without COMFYUI_PATH).

    COMFYUI_PATH=/path/to/ComfyUI python -m pytest -m comfyui tests/test_comfyui_real.py

ComfyUI is started on 127.0.0.1 (a free port) with ``--cpu --base-directory <tmp>
--database-url sqlite:///:memory: --disable-api-nodes`` and this pack symlinked into
``<tmp>/custom_nodes``; ``COMFYUI_PYTHON`` picks its interpreter (default: this one). The test
process needs ComfyUI's requirements too (PyAV writes the test video).

Pretrained FFHQ weights cannot be downloaded here, so the FFHQ workflows run on **stand-in files
under the real names** (random weights of the right layouts, a 64 px generator with 512-wide
codes; e4e / ArcFace of the real architectures): every node executes for real, the pictures are
meaningless. Their Finetune steps are lowered to 3 and alignment sizes to 256 px (stated in the
output). The toy workflow runs unmodified on the shipped toy model, or on a tiny stand-in when it
is absent (said so).
"""

from __future__ import annotations

import copy
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.comfyui

ROOT = Path(__file__).resolve().parents[1]
WF_DIR = ROOT / "example_workflows"
COMFYUI = os.environ.get("COMFYUI_PATH")
if not COMFYUI:
    pytest.skip("COMFYUI_PATH is not set (no ComfyUI to test against)", allow_module_level=True)

from toy_standin import toy_model_dir  # noqa: E402  (tests/toy_standin.py)

STANDIN_GEN = 64  # px of the stand-in FFHQ generator


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Comfy:
    def __init__(self, base: Path, env: dict) -> None:
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

    def wait_ready(self, timeout: float = 180) -> None:
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

    def submit(self, wf: dict) -> dict:
        status, body = self.post("/prompt", {"prompt": wf, "client_id": uuid.uuid4().hex})
        return {"status": status, **body}

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


# --------------------------------------------------------------------------- stand-in inputs


def _write_standins(models: Path, inputs: Path) -> None:
    import torch
    from PIL import Image

    from jojogan.arcface import ArcFace
    from jojogan.encoders import Encoder4Editing, n_styles_for_size
    from jojogan.stylegan2 import Discriminator, Generator

    torch.manual_seed(0)
    ch = {4: 64, 8: 64, 16: 32, 32: 32, 64: 16}
    g = Generator(STANDIN_GEN, 512, 2, channels=ch, channel_max=64)
    d = Discriminator(STANDIN_GEN, channels=ch, channel_max=64)
    torch.save(
        {"g_ema": g.state_dict(), "d": d.state_dict(), "latent_avg": torch.zeros(512)},
        models / "stylegan2-ffhq-config-f.pt",
    )
    for name in ("jojo", "arcane_jinx", "disney"):
        sd = {
            k: v + 0.01 * torch.randn_like(v) if v.is_floating_point() else v
            for k, v in g.state_dict().items()
        }
        torch.save({"g": sd}, models / f"{name}.pt")
    n = n_styles_for_size(STANDIN_GEN)
    enc = Encoder4Editing(n)
    dec = Generator(STANDIN_GEN, 512, 8, channel_multiplier=2)
    sd = {f"encoder.{k}": v for k, v in enc.state_dict().items()}
    sd.update({f"decoder.{k}": v for k, v in dec.state_dict().items()})
    opts = {
        "encoder_type": "Encoder4Editing",
        "stylegan_size": STANDIN_GEN,
        "start_from_latent_avg": True,
    }
    torch.save(
        {"state_dict": sd, "opts": opts, "latent_avg": torch.zeros(n, 512)},
        models / "e4e_ffhq_encode.pt",
    )
    del enc, dec, sd
    torch.save(ArcFace(112, 50, "ir_se").state_dict(), models / "model_ir_se50.pth")

    from skimage import data as skdata

    face = Image.open(Path(skdata.__file__).parent / "astronaut.png").convert("RGB")
    face = face.resize((256, 256))
    face.save(inputs / "jojogan_face.png")
    face.save(inputs / "jojogan_reference.png")
    face.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(inputs / "jojogan_reference_2.png")
    import av
    import numpy as np

    arr = np.asarray(Image.open(Path(skdata.__file__).parent / "astronaut.png").convert("RGB"))
    with av.open(str(inputs / "jojogan_video.mp4"), "w") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = arr.shape[1], arr.shape[0], "yuv420p"
        stream.bit_rate = 4_000_000
        for k in range(6):
            frame = np.roll(arr, 2 * k, axis=1)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


@pytest.fixture(scope="module")
def comfy(tmp_path_factory):
    base = tmp_path_factory.mktemp("comfy_base")
    (base / "custom_nodes").mkdir()
    os.symlink(ROOT, base / "custom_nodes" / "comfyui-jojogan")
    models = base / "models" / "jojogan"
    inputs = base / "input"
    models.mkdir(parents=True)
    inputs.mkdir(parents=True)
    _write_standins(models, inputs)
    toy_dir, toy_label = toy_model_dir(base)
    env = dict(os.environ)
    env.update(
        JOJOGAN_TOY_DIR=str(toy_dir),
        JOJOGAN_CACHE=str(base / "jojogan_cache"),
        OMP_NUM_THREADS="2",
        HF_HUB_OFFLINE="1",
        JOJOGAN_TOY_STYLES=str(ROOT / "benchmarks" / "example_styles.py"),
    )
    server = Comfy(base, env)
    try:
        server.wait_ready()
        server.toy_label = toy_label
        server.base = base
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


def _check_outputs(comfy: Comfy, hist: dict) -> int:
    from io import BytesIO

    from PIL import Image

    n = 0
    for out in hist["outputs"].values():
        for img in out.get("images", []):
            q = urllib.parse.urlencode(
                {"filename": img["filename"], "subfolder": img["subfolder"], "type": img["type"]}
            )
            data = comfy.get(f"/view?{q}")
            pic = Image.open(BytesIO(data))
            pic.load()
            assert pic.size[0] > 0
            n += 1
    return n


# ------------------------------------------------------------------------------------- tests


def test_object_info_lists_every_node_and_templates(comfy):
    sys.path.insert(0, str(ROOT))
    from test_package import load_pack_as_comfyui_does

    pack = load_pack_as_comfyui_does(ROOT, "comfyui_jojogan_real_test")
    info = comfy.get_json("/object_info")
    missing = set(pack.NODE_CLASS_MAPPINGS) - set(info)
    assert missing == set()
    for key, cls in pack.NODE_CLASS_MAPPINGS.items():
        assert info[key]["output"] == list(cls.RETURN_TYPES)
        assert info[key]["category"] == cls.CATEGORY
    templates = comfy.get_json("/workflow_templates")
    assert {p.stem for p in WF_DIR.glob("*.json")} <= set(templates["comfyui-jojogan"])
    # the stand-in model files are listed by the loader widgets (models/jojogan registered)
    ckpts = info["JoJoGAN_LoadStyleGAN2"]["input"]["required"]["ckpt_name"][0]
    assert "stylegan2-ffhq-config-f.pt" in ckpts
    # $JOJOGAN_TOY_STYLES (set when the server started) adds its styles to the Toy Render node
    styles = info["JoJoGAN_ToyRender"]["input"]["required"]["style"][0]
    assert "blueprint" in styles and "photo" in styles


@pytest.mark.parametrize("name", sorted(p.stem for p in (WF_DIR / "api").glob("*.json")))
def test_bundled_api_workflow_is_accepted_and_finishes(comfy, name):
    wf = _load_api(name)
    if name != "jojogan_toy_demo":
        wf = _standin_patch(wf)
        print(f"{name}: stand-in weights, Finetune steps 3, align size 256")
    else:
        print(f"{name}: unmodified, on the {comfy.toy_label}")
    res = comfy.submit(wf)
    assert res["status"] == 200, res
    assert res.get("node_errors") == {}, res
    hist = comfy.wait_history(res["prompt_id"], timeout=900)
    errors = [
        {k: m[1].get(k) for k in ("node_type", "exception_message")}
        for m in hist["status"].get("messages", [])
        if m[0] == "execution_error"
    ]
    assert hist["status"]["status_str"] == "success", errors
    assert _check_outputs(comfy, hist) >= 1


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
    hist = comfy.wait_history(res["prompt_id"], timeout=300)
    assert hist["status"]["status_str"] == "error"
    err = next(m[1] for m in hist["status"]["messages"] if m[0] == "execution_error")
    assert err["node_type"] == "JoJoGAN_Finetune"
    assert err["exception_message"].startswith("JoJoGAN Finetune: 'id_weight' > 0 needs the")


def test_interrupt_stops_finetune_within_a_few_steps(comfy):
    wf = _load_api("jojogan_toy_demo")
    wf["6"]["inputs"]["steps"] = 100_000
    wf["6"]["inputs"]["seed"] = 12345  # not cached
    res = comfy.submit(wf)
    assert res["status"] == 200 and res["node_errors"] == {}
    pid = res["prompt_id"]
    t0 = time.time()
    while time.time() - t0 < 120:  # wait until the prompt runs
        q = comfy.get_json("/queue")
        if any(item[1] == pid for item in q["queue_running"]):
            break
        time.sleep(0.5)
    time.sleep(8)  # well inside Finetune (the earlier nodes take well under a second)
    t_int = time.time()
    status, _ = comfy.post("/interrupt")
    assert status == 200
    hist = comfy.wait_history(pid, timeout=120)
    stopped_after = time.time() - t_int
    msgs = hist["status"]["messages"]
    kinds = [m[0] for m in msgs]
    assert "execution_interrupted" in kinds, kinds
    info = next(m[1] for m in msgs if m[0] == "execution_interrupted")
    assert info["node_type"] == "JoJoGAN_Finetune"
    print(f"interrupt: Finetune stopped {stopped_after:.1f} s after /interrupt")
    assert stopped_after < 30
    # the server still works after an interrupt
    again = comfy.submit(_load_api("jojogan_toy_demo"))
    assert comfy.wait_history(again["prompt_id"], 300)["status"]["status_str"] == "success"
