"""jojogan.weights: the registry, ``python -m jojogan download``, downloads (the Hugging Face Hub
through the real huggingface_hub client, Google Drive / URLs through urllib) with progress, resume
and verification, offline errors, bare-name loading and file kinds.

Every server is local (127.0.0.1): ``tests/fake_hub.py`` stands in for the Hub (the client is
pointed at it with ``HF_ENDPOINT``), ``_Server`` below for Drive and plain URLs. Both are threads,
bounded in the number of requests they answer, and shut down by their fixtures."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import os
import pickle
import shlex
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch
from fake_hub import COMMIT, FakeHub  # tests/fake_hub.py

from jojogan import weights as W
from jojogan.checkpoints import folders
from jojogan.stylegan2 import Generator

ROOT = Path(__file__).resolve().parents[1]
_REAL_DETECT = folders._detect_comfyui_root
TINY = {"channels": {4: 8, 8: 8, 16: 8}}


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """A private cache folder, no ComfyUI root, the Hub client online and its cache private."""
    monkeypatch.setenv("JOJOGAN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf_home" / "hub"))
    for var in ("COMFYUI_PATH", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(folders, "_detect_comfyui_root", lambda package_dir=None: None)


def _tiny_g() -> Generator:
    torch.manual_seed(0)
    return Generator(16, 16, 1, **TINY)


def _save(obj, **kw) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf, **kw)
    return buf.getvalue()


@pytest.fixture(scope="module")
def style_bytes() -> bytes:
    return _save({"g": _tiny_g().state_dict()})


# ------------------------------------------------------------------------------ local servers


class _Server:
    """Serves ``files`` (path -> bytes) with Range support; options per path."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.ctypes: dict[str, str] = {}
        self.ignore_range: set[str] = set()
        self.drop_after: dict[str, int] = {}  # send only this many bytes, then close
        self.requests: list[tuple[str, str | None]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):  # quiet
                pass

            def do_GET(self):
                rng = self.headers.get("Range")
                outer.requests.append((self.path, rng))
                if len(outer.requests) > 50:
                    self.send_error(503)
                    return
                data = outer.files.get(self.path)
                if data is None:
                    self.send_error(404)
                    return
                start = 0
                status = 200
                if rng and self.path not in outer.ignore_range:
                    start = int(rng.split("=")[1].split("-")[0])
                    if start >= len(data):
                        self.send_response(416)
                        self.end_headers()
                        return
                    status = 206
                body = data[start:]
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                if self.path in outer.ctypes:
                    self.send_header("Content-Type", outer.ctypes[self.path])
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.end_headers()
                limit = outer.drop_after.pop(self.path, None)
                self.wfile.write(body if limit is None else body[:limit])
                if limit is not None:
                    self.close_connection = True

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.timeout = 5
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def server():
    s = _Server()
    yield s
    s.close()


@pytest.fixture
def hub(monkeypatch):
    h = FakeHub()
    monkeypatch.setenv("HF_ENDPOINT", h.endpoint)
    yield h
    h.close()


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _entry(name="tiny_style.pt", **kw) -> W.WeightFile:
    base = dict(
        name=name,
        kind="style",
        description="a tiny style file for tests",
        sources=(W.Source("url", "http://127.0.0.1:9/never", "test"),),
        min_size=1000,
        layout=("jojogan-style",),
    )
    base.update(kw)
    return W.WeightFile(**base)


def _hub_entry(name="tiny_style.pt", repo="owner/styles", **kw) -> W.WeightFile:
    return _entry(name, sources=(W.Source("hf", f"{repo}:{name}", "test"),), **kw)


def _staging(d: Path, name="tiny_style.pt") -> Path:
    return d / W.STAGING / name


def _files_under(d: Path) -> list[str]:
    return sorted(p.relative_to(d).as_posix() for p in d.rglob("*") if p.is_file())


# ------------------------------------------------------------------------------------- registry


def test_registry_lists_every_known_file_with_confirmed_sources_hub_first():
    names = set(W.REGISTRY)
    for must in (
        "stylegan2-ffhq-config-f.pt",
        "e4e_ffhq_encode.pt",
        "restyle_psp_ffhq_encode.pt",
        "model_ir_se50.pth",
        "detection_Resnet50_Final.pth",
    ):
        assert must in names
    styles = ["jojo", "jojo_yasuho", "disney", "arcane_jinx", "arcane_caitlyn", "arcane_multi"]
    styles += ["art", "sketch_multi", "supergirl"]
    for s in styles:
        assert f"{s}.pt" in names
    for s in styles[:-3] + ["supergirl"]:
        assert f"{s}_preserve_color.pt" in names
    for e in W.REGISTRY.values():
        assert e.sources and all(s.url().startswith("https://") for s in e.sources)
        assert all(s.note for s in e.sources), e.name  # where each source was confirmed
        assert e.sha256 is None  # no source read states one: not invented
        kinds = [s.kind for s in e.sources]
        if "hf" in kinds and e.kind != "detector":  # Hub first where a mirror exists
            assert kinds[0] == "hf", e.name
    assert W.REGISTRY["detection_Resnet50_Final.pth"].folder == "facedetection"
    hub = [e.name for e in W.REGISTRY.values() if e.sources[0].kind == "hf"]
    assert "stylegan2-ffhq-config-f.pt" in hub and "e4e_ffhq_encode.pt" in hub
    assert "arcane_jinx_preserve_color.pt" in hub and "art.pt" in hub


def test_cache_dir_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv("JOJOGAN_CACHE", str(tmp_path))
    assert W.cache_dir("jojogan") == tmp_path / "jojogan"
    monkeypatch.delenv("JOJOGAN_CACHE")
    assert W.cache_dir("facedetection").parts[-3:] == (".cache", "jojogan", "facedetection")


def test_comfyui_root_from_flag_env_or_the_package_location(tmp_path, monkeypatch):
    detect = _REAL_DETECT  # the fixture replaces folders._detect_comfyui_root for the other tests
    comfy = tmp_path / "ComfyUI"
    pkg = comfy / "custom_nodes" / "comfyui-jojogan" / "jojogan"
    pkg.mkdir(parents=True)
    assert detect(pkg) is None  # no folder_paths.py: not a ComfyUI folder
    (comfy / "folder_paths.py").write_text("# ComfyUI\n")
    assert detect(pkg) == comfy
    linked = tmp_path / "elsewhere"
    linked.symlink_to(comfy / "custom_nodes" / "comfyui-jojogan")
    assert detect(linked / "jojogan") == comfy  # found through the link's target too
    assert detect(ROOT / "jojogan") is None  # this checkout is not inside a ComfyUI
    monkeypatch.setattr(folders, "_detect_comfyui_root", lambda package_dir=None: comfy)
    assert W.comfyui_root() == comfy
    assert W.default_dir("facedetection") == comfy / "models" / "facedetection"
    other = tmp_path / "other"
    monkeypatch.setenv("COMFYUI_PATH", str(other))
    assert W.comfyui_root() == other and W.comfyui_root(comfy) == comfy
    monkeypatch.delenv("COMFYUI_PATH")
    monkeypatch.setattr(folders, "_detect_comfyui_root", lambda package_dir=None: None)
    assert W.default_dir("jojogan") == tmp_path / "cache" / "jojogan"


# ------------------------------------------------------------------------ Hub: huggingface_hub


def test_hub_download_lands_in_the_folder_with_progress_and_sha256(hub, tmp_path, style_bytes):
    sha = hub.add("owner/styles", "tiny_style.pt", style_bytes)
    seen = []
    dest = tmp_path / "models" / "jojogan"
    path = W.download(_hub_entry(), dest, progress=lambda d, t: seen.append((d, t)))
    assert path == dest / "tiny_style.pt" and path.read_bytes() == style_bytes
    assert _files_under(dest) == ["tiny_style.pt"]  # the staging folder is gone
    assert seen[-1] == (len(style_bytes), len(style_bytes))
    calls = [(srv, m, p.split("?")[0]) for srv, m, p, _ in hub.requests]
    assert ("hub", "HEAD", "/owner/styles/resolve/main/tiny_style.pt") in calls
    assert ("hub", "HEAD", f"/owner/styles/resolve/{COMMIT}/tiny_style.pt") in calls  # pinned
    assert ("cdn", "GET", f"/blobs/{sha}") in calls
    n = len(hub.requests)
    assert W.download(_hub_entry(), dest) == path  # an existing verified file: no request
    assert len(hub.requests) == n


def test_two_threads_asking_for_one_file_download_it_once(hub, tmp_path, style_bytes):
    hub.add("owner/styles", "tiny_style.pt", style_bytes)
    dest = tmp_path / "d"
    results: list = []

    def get():
        try:
            results.append(W.download(_hub_entry(), dest))
        except Exception as e:  # reported by the assertion below
            results.append(e)

    threads = [threading.Thread(target=get) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert results == [dest / "tiny_style.pt"] * 2
    assert sum(1 for srv, m, _, _ in hub.requests if srv == "cdn" and m == "GET") == 1


def test_hub_download_resumes_after_a_dropped_connection(hub, tmp_path, monkeypatch):
    import huggingface_hub.constants as hc

    # The client writes what it received in chunks of DOWNLOAD_CHUNK_SIZE (10 MB): a smaller
    # chunk lets a small file show the resume (a setting of the real client, not a mock).
    monkeypatch.setattr(hc, "DOWNLOAD_CHUNK_SIZE", 4096)
    data = _save({"g": {**_tiny_g().state_dict(), "pad": torch.arange(20000.0)}})
    hub.add("owner/styles", "tiny_style.pt", data)
    hub.drop_after[("owner/styles", "tiny_style.pt")] = 30000
    path = W.download(_hub_entry(), tmp_path / "d")
    assert path.read_bytes() == data
    ranges = [rng for srv, m, _, rng in hub.requests if srv == "cdn" and m == "GET"]
    assert ranges[0] is None and ranges[-1] == "bytes=28672-"  # 7 chunks of 4096 were kept


def test_hub_sha256_mismatch_is_refused_and_never_gets_the_name(hub, tmp_path, style_bytes):
    key = ("owner/styles", "tiny_style.pt")
    hub.add(*key, style_bytes)
    flipped = bytearray(style_bytes)
    flipped[len(flipped) // 2] ^= 0xFF
    hub.serve_instead[key] = bytes(flipped)
    dest = tmp_path / "d"
    with pytest.raises(W.WeightsError, match="sha256") as err:
        W.download(_hub_entry(), dest)
    msg = str(err.value)
    assert "corrupted" in msg and "tiny_style.pt" in msg and "Traceback" not in msg
    assert _files_under(dest) == [] or all(".pt" not in f for f in _files_under(dest))
    assert not (dest / "tiny_style.pt").exists()
    # the registry's own sha256, when stated, is checked too
    del hub.serve_instead[key]
    with pytest.raises(W.WeightsError, match="differs from tiny_style.pt's"):
        W.download(_hub_entry(sha256="0" * 64), dest)
    assert not (dest / "tiny_style.pt").exists()
    good = _hub_entry(sha256=hashlib.sha256(style_bytes).hexdigest())
    assert W.download(good, dest).read_bytes() == style_bytes  # the next good request works


def test_hub_file_with_the_wrong_layout_is_refused(hub, tmp_path, style_bytes):
    hub.add("owner/styles", "tiny_style.pt", _save({"something": torch.zeros(2000)}))
    dest = tmp_path / "d"
    with pytest.raises(W.WeightsError, match="layout 'unknown'"):
        W.download(_hub_entry(), dest)
    assert not (dest / "tiny_style.pt").exists()
    assert not any(f.endswith(".pt") for f in _files_under(dest))
    hub.add("owner/styles", "tiny_style.pt", style_bytes)  # the mirror is fixed
    assert W.download(_hub_entry(), dest).read_bytes() == style_bytes


def test_a_web_page_instead_of_the_hub_is_refused(hub, tmp_path, style_bytes):
    hub.add("owner/styles", "tiny_style.pt", style_bytes)
    hub.html_page = True  # a captive portal or a wrong HF_ENDPOINT
    dest = tmp_path / "d"
    with pytest.raises(W.WeightsError, match="does not answer like the Hugging Face Hub"):
        W.download(_hub_entry(), dest)
    assert not (dest / "tiny_style.pt").exists()
    hub.html_page = False
    assert W.download(_hub_entry(), dest).read_bytes() == style_bytes


def test_missing_repo_or_file_on_the_hub_falls_back_to_the_next_source(
    hub, server, tmp_path, style_bytes
):
    server.files["/s.pt"] = style_bytes
    entry = _entry(
        sources=(
            W.Source("hf", "gone/repo:tiny_style.pt"),
            W.Source("url", server.url("/s.pt")),
        )
    )
    assert W.download(entry, tmp_path).read_bytes() == style_bytes
    hub.add("owner/styles", "other.pt", b"x")
    with pytest.raises(W.WeightsError, match="no such file in the repository"):
        W.download(_hub_entry(), tmp_path / "e")


def test_offline_hub_down_names_file_folder_sources_and_command(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    dest = tmp_path / "models" / "jojogan"
    with pytest.raises(W.OfflineError) as err:
        W.download(_hub_entry(), dest, timeout=2)
    msg = str(err.value)
    assert "tiny_style.pt" in msg and str(dest) in msg and "models/jojogan" in msg
    assert "owner/styles" in msg and "Connection refused" in msg
    assert f": {W.download_command(['tiny_style.pt'], dest_dir=dest)} -- " in msg
    assert "python -m jojogan download tiny_style.pt" in msg
    assert not dest.exists()  # not even an empty folder


def test_hf_hub_offline_tries_nothing_but_the_hugging_face_cache(
    tmp_path, monkeypatch, style_bytes
):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    dest = tmp_path / "d"
    entry = W.REGISTRY["arcane_jinx_preserve_color.pt"]  # a Hub source and a Drive id
    with pytest.raises(W.OfflineError, match="HF_HUB_OFFLINE is set") as err:
        W.download(entry, dest)
    assert "1jElwHxaYPod5Itdy18izJk49K1nl4ney" in str(err.value)
    # a copy already in the Hugging Face cache (HF_HUB_CACHE) is used, and checked
    sha = hashlib.sha256(style_bytes).hexdigest()
    repo = Path(os.environ["HF_HUB_CACHE"]) / "models--owner--styles"
    (repo / "blobs").mkdir(parents=True)
    (repo / "blobs" / sha).write_bytes(style_bytes)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    snap = repo / "snapshots" / COMMIT
    snap.mkdir(parents=True)
    (snap / "tiny_style.pt").symlink_to(Path("..", "..", "blobs", sha))
    path = W.download(_hub_entry(), dest)
    assert path.read_bytes() == style_bytes and (repo / "blobs" / sha).is_file()


# -------------------------------------------------------------------- Drive and plain URLs


def test_download_reports_progress_verifies_and_moves_atomically(server, tmp_path, style_bytes):
    server.files["/s.pt"] = style_bytes
    seen = []
    path = W.download(
        _entry(), tmp_path, urls=[server.url("/s.pt")], progress=lambda d, t: seen.append((d, t))
    )
    assert path == tmp_path / "tiny_style.pt" and path.read_bytes() == style_bytes
    assert _files_under(tmp_path) == ["tiny_style.pt"]
    assert seen[-1] == (len(style_bytes), len(style_bytes))
    n = len(server.requests)
    assert W.download(_entry(), tmp_path, urls=[server.url("/s.pt")]) == path
    assert len(server.requests) == n


def test_download_resumes_from_part_with_range(server, tmp_path, style_bytes):
    server.files["/s.pt"] = style_bytes
    half = len(style_bytes) // 2
    _staging(tmp_path).mkdir(parents=True)
    (_staging(tmp_path) / "tiny_style.pt.part").write_bytes(style_bytes[:half])
    path = W.download(_entry(), tmp_path, urls=[server.url("/s.pt")])
    assert path.read_bytes() == style_bytes
    assert server.requests[-1] == ("/s.pt", f"bytes={half}-")
    assert not (tmp_path / W.STAGING).exists()


def test_server_ignoring_range_restarts_cleanly(server, tmp_path, style_bytes):
    server.files["/s.pt"] = style_bytes
    server.ignore_range.add("/s.pt")
    _staging(tmp_path).mkdir(parents=True)
    (_staging(tmp_path) / "tiny_style.pt.part").write_bytes(b"garbage!" * 10)
    path = W.download(_entry(), tmp_path, urls=[server.url("/s.pt")])
    assert path.read_bytes() == style_bytes


def test_dropped_connection_keeps_part_and_next_call_resumes(server, tmp_path, style_bytes):
    server.files["/s.pt"] = style_bytes
    server.drop_after["/s.pt"] = 3000
    with pytest.raises(W.WeightsError, match="connection closed|tiny_style"):
        W.download(_entry(), tmp_path, urls=[server.url("/s.pt")])
    assert not (tmp_path / "tiny_style.pt").exists()
    assert (_staging(tmp_path) / "tiny_style.pt.part").stat().st_size == 3000
    path = W.download(_entry(), tmp_path, urls=[server.url("/s.pt")])
    assert path.read_bytes() == style_bytes
    assert server.requests[-1][1] == "bytes=3000-"


QUOTA = (
    b"<!DOCTYPE html><html><head><title>Google Drive - Quota exceeded</title></head>"
    b"<body>Too many users have viewed or downloaded this file recently.</body></html>"
)


def test_html_quota_page_is_refused_and_next_source_used(server, tmp_path, style_bytes):
    server.files["/quota"] = QUOTA * 40  # no Content-Type: caught by the file check
    server.files["/good.pt"] = style_bytes
    with pytest.raises(W.WeightsError, match="web page") as err:
        W.download(_entry(), tmp_path, urls=[server.url("/quota")])
    assert "tiny_style.pt" in str(err.value)
    assert _files_under(tmp_path) == []
    path = W.download(_entry(), tmp_path, urls=[server.url("/quota"), server.url("/good.pt")])
    assert path.read_bytes() == style_bytes


def test_drive_quota_page_is_named_and_a_partial_download_is_kept(server, tmp_path, style_bytes):
    server.files["/drive"] = QUOTA
    server.ctypes["/drive"] = "text/html; charset=utf-8"
    server.ignore_range.add("/drive")  # a page is a page, whatever the Range asked
    half = len(style_bytes) // 2
    _staging(tmp_path).mkdir(parents=True)
    (_staging(tmp_path) / "tiny_style.pt.part").write_bytes(style_bytes[:half])
    with pytest.raises(W.WeightsError) as err:
        W.download(_entry(), tmp_path, urls=[server.url("/drive")])
    msg = str(err.value)
    assert "web page" in msg and "Quota exceeded" in msg and "in a browser" in msg
    assert str(tmp_path) in msg and "Traceback" not in msg
    assert not (tmp_path / "tiny_style.pt").exists()
    # the page did not touch what was already downloaded
    assert (_staging(tmp_path) / "tiny_style.pt.part").read_bytes() == style_bytes[:half]


def test_truncated_wrong_layout_and_sha256_mismatch_are_refused(server, tmp_path, style_bytes):
    server.files["/short"] = style_bytes[:500]
    with pytest.raises(W.WeightsError, match="too small"):
        W.download(_entry(), tmp_path, urls=[server.url("/short")])
    server.files["/other"] = _save({"something": torch.zeros(2000)})
    with pytest.raises(W.WeightsError, match="layout"):
        W.download(_entry(), tmp_path, urls=[server.url("/other")])
    server.files["/s.pt"] = style_bytes
    bad = _entry(sha256="0" * 64)
    with pytest.raises(W.WeightsError, match="sha256"):
        W.download(bad, tmp_path, urls=[server.url("/s.pt")])
    assert _files_under(tmp_path) == []
    good = _entry(sha256=hashlib.sha256(style_bytes).hexdigest())
    assert W.download(good, tmp_path, urls=[server.url("/s.pt")]).read_bytes() == style_bytes


def test_existing_bad_file_is_reported_not_overwritten(tmp_path):
    (tmp_path / "tiny_style.pt").write_bytes(QUOTA)
    with pytest.raises(W.WeightsError, match="already at") as err:
        W.download(_entry(), tmp_path)
    assert "delete it" in str(err.value)
    assert (tmp_path / "tiny_style.pt").read_bytes() == QUOTA


def test_offline_error_names_file_folder_and_sources(tmp_path):
    entry = W.REGISTRY["arcane_jinx.pt"]
    url = f"http://127.0.0.1:{_closed_port()}/arcane_jinx.pt"
    with pytest.raises(W.OfflineError) as err:
        W.download(entry, tmp_path, urls=[url], timeout=2)
    msg = str(err.value)
    assert "arcane_jinx.pt" in msg and str(tmp_path) in msg and "models/jojogan" in msg
    assert "1quQ8vPjYpUiXM4k1_KIwP4EccOefPpG_" in msg  # the JoJoGAN Drive id
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------ messages, commands


def test_missing_file_message_gives_the_command_before_the_sources(tmp_path):
    models = tmp_path / "models" / "jojogan"
    msg = W.missing_file_message("e4e_ffhq_encode.pt", [models])
    assert msg.startswith(f"model file 'e4e_ffhq_encode.pt' not found in {models}. It is")
    command = f"python -m jojogan download e4e_ffhq_encode.pt --dir {models}"
    assert f"(on a machine with internet access): {command} -- or put" in msg
    assert msg.index(command) < msg.index("AIRI-Institute/HairFastGAN")
    assert "in ComfyUI: models" not in msg  # a ComfyUI models folder needs no hint
    home = W.missing_file_message("e4e_ffhq_encode.pt")  # its default folder: no --dir
    assert ": python -m jojogan download e4e_ffhq_encode.pt -- or put" in home
    assert "(in ComfyUI: models/jojogan/)" in home
    msg = W.missing_file_message("mystery.pt", [tmp_path])
    assert "not a file this pack knows" in msg and "jojogan download" not in msg


def test_download_command_for_a_checkout_runs_as_pasted(tmp_path, monkeypatch):
    assert folders._pip_installed()  # this checkout is installed editable in the test environment
    assert W.download_command("art.pt") == "python -m jojogan download art.pt"
    spaced = tmp_path / "my models" / "$HOME"
    assert W.download_command(["art.pt"], dest_dir=spaced).endswith(
        f"download art.pt --dir {shlex.quote(str(spaced))}"
    )
    comfy = tmp_path / "Comfy UI"
    assert f'--comfyui "{comfy}"' in W.download_command(["art.pt"], comfyui_root=comfy)
    monkeypatch.setattr(folders, "_pip_installed", lambda: False)  # a custom_nodes checkout
    cmd = W.download_command(["art.pt"])
    assert (
        cmd.startswith(f"cd {ROOT} && ") and f"{sys.executable} -m jojogan download art.pt" in cmd
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}
    run = subprocess.run(cmd, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert run.returncode == 1, run.stderr
    assert run.stderr.startswith("art.pt: downloading into ")
    assert "error: cannot download art.pt (HF_HUB_OFFLINE is set)" in run.stderr
    assert "Traceback" not in run.stderr


# -------------------------------------------------------------------------------- the command


def test_cli_list_shows_every_file_sources_and_presence(tmp_path, capsys):
    dest = tmp_path / "d"
    assert W.download_main(["--list", "--dir", str(dest)]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in W.REGISTRY)
    assert "confirmed: mchong6/JoJoGAN stylize.ipynb" in out and "present in" not in out
    assert f"art.pt  [style, models/jojogan, ~127 MB, sha256 not published] missing in {dest}" in (
        out
    )
    dest.mkdir()
    (dest / "art.pt").write_bytes(b"x")
    assert W.main(["list", "--dir", str(dest)]) == 0  # the older spelling still works
    assert f"present in {dest}" in capsys.readouterr().out


def test_cli_list_uses_the_comfyui_models_folders(tmp_path, capsys):
    comfy = tmp_path / "ComfyUI"
    (comfy / "models").mkdir(parents=True)
    assert W.download_main(["--list", "--comfyui", str(comfy)]) == 0
    out = capsys.readouterr().out
    assert f"missing in {comfy / 'models' / 'jojogan'}" in out
    assert f"missing in {comfy / 'models' / 'facedetection'}" in out
    assert W.download_main(["--list", "--comfyui", str(tmp_path / "nothing")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a ComfyUI folder" in err


def _ui_workflow(*names: str, extra_models=()) -> dict:
    nodes = [
        {
            "id": i + 1,
            "type": "JoJoGAN_LoadStyleModel",
            "widgets_values": [n, True],
            "properties": {"Node name for S&R": "x"},
        }
        for i, n in enumerate(names[:1])
    ]
    nodes.append(
        {
            "id": 9,
            "type": "JoJoGAN_LoadStyleGAN2",
            "widgets_values": ["not-a-model"],
            "properties": {
                "models": [
                    {"name": n, "url": "https://x", "directory": "jojogan"} for n in names[1:]
                ]
                + list(extra_models)
            },
        }
    )
    return {"last_node_id": 9, "nodes": nodes, "links": [], "version": 0.4}


def test_cli_workflow_downloads_every_known_file_it_names(hub, tmp_path, capsys, monkeypatch):
    data_a = _save({"g": _tiny_g().state_dict()})
    data_b = _save({"g": {**_tiny_g().state_dict(), "extra": torch.ones(3)}})
    hub.add("owner/styles", "tiny_a.pt", data_a)
    hub.add("owner/styles", "tiny_b.pt", data_b)
    for n in ("tiny_a.pt", "tiny_b.pt"):
        monkeypatch.setitem(W.REGISTRY, n, _hub_entry(n))
    ui = tmp_path / "ui.json"
    other = {"name": "someone_elses.safetensors", "directory": "checkpoints"}
    ui.write_text(json.dumps(_ui_workflow("tiny_a.pt", "tiny_b.pt", extra_models=[other])))
    dest = tmp_path / "dest"
    assert W.download_main(["--workflow", str(ui), "--dir", str(dest)]) == 0
    out, err = capsys.readouterr()
    assert out.split() == [str(dest / "tiny_a.pt"), str(dest / "tiny_b.pt")]
    assert "someone_elses.safetensors' is not a file this pack knows; skipped" in err
    assert (dest / "tiny_b.pt").read_bytes() == data_b
    api = tmp_path / "api.json"
    api.write_text(
        json.dumps(
            {
                "1": {
                    "class_type": "JoJoGAN_LoadStyleModel",
                    "inputs": {"style_name": "tiny_a.pt"},
                },
                "2": {"class_type": "X", "inputs": {"n": 3, "s": ["1", 0], "t": "tiny_b.pt"}},
            }
        )
    )
    dest2 = tmp_path / "dest2"
    assert W.download_main(["--workflow", str(api), "--dir", str(dest2)]) == 0
    assert capsys.readouterr().out.split() == [str(dest2 / "tiny_a.pt"), str(dest2 / "tiny_b.pt")]


def test_cli_bad_arguments_are_one_clear_line(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    cases = [
        (["--workflow", str(bad)], "not a workflow (not JSON"),
        (["--workflow", str(tmp_path / "none.json")], "no such workflow file"),
        (["mystery.pt"], "unknown model file 'mystery.pt'"),
        ([], "give file names, --workflow FILE or --list"),
        (["--frobnicate"], "unrecognized arguments"),
    ]
    for argv, text in cases:
        assert W.download_main(argv) == 1, argv
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and text in err, err
        assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == [bad]
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"nodes": [], "links": []}))
    assert W.download_main(["--workflow", str(empty)]) == 0
    assert "names no file this pack knows" in capsys.readouterr().err


SITECUSTOMIZE = """\
import json, os
_spec = os.environ.get("JOJOGAN_TEST_ENTRIES")
if _spec:
    import jojogan.weights as W
    for _e in json.loads(_spec):
        W.REGISTRY[_e["name"]] = W.WeightFile(
            _e["name"], "style", "a tiny style file for tests",
            (W.Source("hf", _e["ref"], "test"),), min_size=1000, layout=("jojogan-style",),
        )
"""


def test_command_from_another_folder_then_load_by_bare_name(hub, tmp_path, monkeypatch):
    g = _tiny_g()
    data = _save({"g": g.state_dict()})
    hub.add("owner/styles", "tiny_style.pt", data)
    site_dir = tmp_path / "site"
    site_dir.mkdir()
    (site_dir / "sitecustomize.py").write_text(SITECUSTOMIZE)
    elsewhere = tmp_path / "somewhere"
    elsewhere.mkdir()
    env = {
        **os.environ,
        "PYTHONPATH": str(site_dir),
        "JOJOGAN_TEST_ENTRIES": json.dumps(
            [{"name": "tiny_style.pt", "ref": "owner/styles:tiny_style.pt"}]
        ),
    }
    run = subprocess.run(
        [sys.executable, "-m", "jojogan", "download", "tiny_style.pt"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    cached = Path(os.environ["JOJOGAN_CACHE"]) / "jojogan" / "tiny_style.pt"
    assert run.stdout.strip() == str(cached) and cached.read_bytes() == data
    assert "tiny_style.pt: downloading into" in run.stderr and "verified" in run.stderr
    assert list(elsewhere.iterdir()) == []  # nothing written where it ran
    # the library's loaders find it by its bare name, from any folder
    monkeypatch.chdir(elsewhere)
    from jojogan.checkpoints import load_stylegan2
    from jojogan.style_model import load_style_model

    assert W.resolve("tiny_style.pt") == cached
    assert torch.equal(load_stylegan2("tiny_style.pt").g.style[1].weight, g.style[1].weight)
    sm = load_style_model("tiny_style.pt", Generator(16, 16, 1, **TINY))
    assert torch.equal(sm.generator.style[1].weight, g.style[1].weight)


def test_loaders_look_up_bare_names_and_say_how_to_get_missing_ones(tmp_path, monkeypatch):
    from jojogan.arcface import load_arcface
    from jojogan.checkpoints import CheckpointError
    from jojogan.encoders import load_encoder

    monkeypatch.chdir(tmp_path)
    for load, name in ((load_encoder, "e4e_ffhq_encode.pt"), (load_arcface, "model_ir_se50.pth")):
        with pytest.raises(FileNotFoundError) as err:
            load(name)
        msg = str(err.value)
        assert isinstance(err.value, CheckpointError)  # callers catching CheckpointError still do
        assert f"python -m jojogan download {name} -- " in msg and str(W.cache_dir()) in msg
    cache = W.cache_dir()
    cache.mkdir(parents=True)
    torch.save({"g": {"x": torch.zeros(1)}}, cache / "e4e_ffhq_encode.pt")  # found, wrong kind
    with pytest.raises(CheckpointError, match="not an? .*encoder|psp") as err:
        load_encoder("e4e_ffhq_encode.pt")
    assert str(cache / "e4e_ffhq_encode.pt") in str(err.value)
    with pytest.raises(FileNotFoundError, match="no_such_dir"):
        W.resolve(tmp_path / "no_such_dir" / "x.pt")
    here = tmp_path / "local.pt"
    here.write_bytes(b"x")
    assert W.resolve("local.pt") == Path("local.pt")  # an existing path as given


# ------------------------------------------------------------------------------------ file_kind


@pytest.fixture(scope="module")
def kind_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("kinds")
    g = _tiny_g()
    z = torch.zeros(2)
    files = {
        "gen.pt": ({"g_ema": g.state_dict(), "latent_avg": torch.zeros(16)}, "stylegan2"),
        "train.pt": ({"g_ema": g.state_dict(), "args": {"size": 16}, "d_optim": {}}, "stylegan2"),
        "style.pt": ({"g": g.state_dict()}, "style"),
        "enc.pt": (
            {
                "state_dict": {"encoder.input_layer.0.weight": z, "decoder.style.1.weight": z},
                "opts": {"encoder_type": "Encoder4Editing", "stylegan_size": 1024},
                "latent_avg": torch.zeros(18, 512),
            },
            "encoder",
        ),
        "arc.pth": (
            {
                "input_layer.0.weight": z,
                "body.0.res_layer.0.weight": z,
                "output_layer.3.weight": z,
            },
            "arcface",
        ),
        "retina.pth": (
            {"module.body.conv1.weight": z, "module.ClassHead.0.conv1x1.weight": z},
            "detector",
        ),
        "disc.pt": ({"convs.0.0.weight": z, "final_linear.0.weight": z}, None),
    }
    out = {}
    for name, (obj, kind) in files.items():
        torch.save(obj, d / name)
        out[name] = (d / name, kind)
    legacy = d / "legacy_style.pt"
    torch.save({"g": g.state_dict()}, legacy, _use_new_zipfile_serialization=False)
    out["legacy_style.pt"] = (legacy, "style")
    from safetensors.torch import save_file

    flat = {f"g_ema.{k}": v.contiguous() for k, v in g.state_dict().items()}
    save_file(flat, str(d / "gen.safetensors"))
    out["gen.safetensors"] = (d / "gen.safetensors", "stylegan2")
    sd = {k: v.contiguous() for k, v in g.state_dict().items() if not k.startswith("style.")}
    save_file(sd, str(d / "ours.safetensors"), {"jojogan.style_model": "{}"})
    out["ours.safetensors"] = (d / "ours.safetensors", "style")
    return out


def test_file_kind_of_tiny_files_in_the_real_layouts(kind_files):
    W._KIND_CACHE.clear()
    for name, (path, kind) in kind_files.items():
        assert W.file_kind(path) == kind, name
        assert W.file_kind(str(path)) == kind, name


def test_file_kind_trusts_registry_names_and_reads_no_tensor_data(tmp_path, kind_files):
    garbage = tmp_path / "e4e_ffhq_encode.pt"
    garbage.write_bytes(b"not opened")
    assert W.file_kind(garbage) == "encoder"
    assert W.file_kind(tmp_path / "detection_Resnet50_Final.pth") == "detector"  # not even there
    # damage the tensor data of a zip checkpoint: its pickle alone still says what it is
    src = kind_files["gen.pt"][0].read_bytes()
    damaged = bytearray(src)
    data_at = src.index(b"/data/0") + 200
    for i in range(data_at, data_at + 64):
        damaged[i] ^= 0x5A
    p = tmp_path / "damaged.pt"
    p.write_bytes(bytes(damaged))
    assert W.file_kind(p) == "stylegan2"


class _Payload:
    def __reduce__(self):
        return (open, (os.environ.get("KIND_MARKER", "/nonexistent/marker"), "w"))


def test_file_kind_of_bad_files_is_none_and_runs_nothing(tmp_path, monkeypatch):
    marker = tmp_path / "marker"
    monkeypatch.setenv("KIND_MARKER", str(marker))
    evil_zip = tmp_path / "evil.pt"
    torch.save({"g": {"w": torch.zeros(1)}, "x": _Payload()}, evil_zip)
    evil_pickle = tmp_path / "evil_plain.pt"
    evil_pickle.write_bytes(pickle.dumps({"g_ema": _Payload()}, protocol=2))
    html = tmp_path / "page.pt"
    html.write_bytes(QUOTA)
    trunc = tmp_path / "trunc.pt"
    trunc.write_bytes(_save({"g": _tiny_g().state_dict()})[:3000])
    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    for p in (evil_zip, evil_pickle, html, trunc, empty, tmp_path / "missing.pt", tmp_path):
        assert W.file_kind(p) is None, p
    assert not marker.exists()


def test_file_kind_is_cached_on_path_mtime_and_size(tmp_path, monkeypatch):
    calls = []
    real = W._inspect_kind
    monkeypatch.setattr(W, "_inspect_kind", lambda p: calls.append(p) or real(p))
    p = tmp_path / "m.pt"
    torch.save({"g": _tiny_g().state_dict()}, p)
    assert W.file_kind(p) == "style" and W.file_kind(p) == "style"
    assert len(calls) == 1
    link = tmp_path / "link.pt"
    link.symlink_to(p)
    assert W.file_kind(link) == "style" and len(calls) == 1  # same real file
    torch.save({"g_ema": _tiny_g().state_dict()}, p)
    os.utime(p, ns=(1, 10**18))
    assert W.file_kind(p) == "stylegan2" and len(calls) == 2


def test_nvidia_weights_show_their_non_commercial_licence(tmp_path, capsys, monkeypatch):
    """The download command, --list and the missing-file message all say it."""
    entry = W.REGISTRY["stylegan2-ffhq-config-f.pt"]
    assert "Nvidia Source Code License-NC" in entry.licence and "non-commercial" in entry.licence
    assert not W.REGISTRY["e4e_ffhq_encode.pt"].licence  # no licence is claimed for others
    msg = W.missing_file_message(entry.name, [tmp_path])
    assert "Licence: NVIDIA's FFHQ weights, under the Nvidia Source Code License-NC" in msg
    assert msg.index("Licence") < msg.index("python -m jojogan download")

    def offline(*args, **kwargs):
        raise W.OfflineError("offline in this test")

    monkeypatch.setattr(W, "download", offline)
    assert W.download_main([entry.name, "--dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    line = next(x for x in err.splitlines() if "licence" in x)
    assert line.startswith(f"{entry.name}: licence: NVIDIA's FFHQ weights") and "NC" in line
    assert W.download_main(["--list", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.count("licence: ") == 1 and "nvlabs.github.io/stylegan2/license.html" in out


def test_file_kind_of_a_pickle_claiming_a_huge_length_reads_only_the_file(tmp_path, monkeypatch):
    """A legacy file whose second pickle claims 2**60 bytes: no read asks for more than the file
    holds, so this is a quick None, not a MemoryError or a huge allocation."""
    from jojogan.checkpoints.reading import _CappedReader

    p = tmp_path / "huge.pt"
    magic = pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2)
    p.write_bytes(magic + b"\x80\x04\x8e" + (1 << 60).to_bytes(8, "little") + b"abc")
    got: list[int] = []
    read = _CappedReader.read
    monkeypatch.setattr(_CappedReader, "read", lambda self, n=-1: got.append(n) or read(self, n))
    assert W.file_kind(p) is None
    assert (1 << 60) in got  # the claim reached the capped reader, which read only what is there
