"""jojogan.weights: registry, download with progress/resume/verification, offline errors.

Downloads go to a local HTTP server on 127.0.0.1 (a thread, bounded: it serves at most a few
dozen requests per test and is shut down by the fixture)."""

from __future__ import annotations

import hashlib
import http.server
import io
import socket
import threading
from dataclasses import replace

import pytest
import torch

from jojogan import weights as W
from jojogan.stylegan2 import Generator


@pytest.fixture(scope="module")
def style_bytes() -> bytes:
    torch.manual_seed(0)
    g = Generator(16, 16, 1, channels={4: 8, 8: 8, 16: 8})
    buf = io.BytesIO()
    torch.save({"g": g.state_dict()}, buf)
    return buf.getvalue()


class _Server:
    """Serves ``files`` (path -> bytes) with Range support; options per path."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
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


def test_registry_lists_every_known_file_with_a_source_and_says_sha256_unknown():
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
        assert e.sha256 is None  # none could be downloaded here: stated, not invented
    assert W.REGISTRY["detection_Resnet50_Final.pth"].folder == "facedetection"


def test_cache_dir_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv("JOJOGAN_CACHE", str(tmp_path))
    assert W.cache_dir("jojogan") == tmp_path / "jojogan"
    monkeypatch.delenv("JOJOGAN_CACHE")
    assert W.cache_dir("facedetection").parts[-3:] == (".cache", "jojogan", "facedetection")


def test_download_reports_progress_verifies_and_moves_atomically(server, tmp_path, style_bytes):
    server.files["/s.pt"] = style_bytes
    seen = []
    path = W.download(
        _entry(), tmp_path, urls=[server.url("/s.pt")], progress=lambda d, t: seen.append((d, t))
    )
    assert path == tmp_path / "tiny_style.pt" and path.read_bytes() == style_bytes
    assert not (tmp_path / "tiny_style.pt.part").exists()
    assert seen[-1] == (len(style_bytes), len(style_bytes))
    # an existing verified file is returned without a request
    n = len(server.requests)
    assert W.download(_entry(), tmp_path, urls=[server.url("/s.pt")]) == path
    assert len(server.requests) == n


def test_download_resumes_from_part_with_range(server, tmp_path, style_bytes):
    server.files["/s.pt"] = style_bytes
    half = len(style_bytes) // 2
    (tmp_path / "tiny_style.pt.part").write_bytes(style_bytes[:half])
    path = W.download(_entry(), tmp_path, urls=[server.url("/s.pt")])
    assert path.read_bytes() == style_bytes
    assert server.requests[-1] == ("/s.pt", f"bytes={half}-")


def test_server_ignoring_range_restarts_cleanly(server, tmp_path, style_bytes):
    server.files["/s.pt"] = style_bytes
    server.ignore_range.add("/s.pt")
    (tmp_path / "tiny_style.pt.part").write_bytes(b"garbage!" * 10)
    path = W.download(_entry(), tmp_path, urls=[server.url("/s.pt")])
    assert path.read_bytes() == style_bytes


def test_dropped_connection_keeps_part_and_next_call_resumes(server, tmp_path, style_bytes):
    server.files["/s.pt"] = style_bytes
    server.drop_after["/s.pt"] = 3000
    with pytest.raises(W.WeightsError, match="connection closed|tiny_style"):
        W.download(_entry(), tmp_path, urls=[server.url("/s.pt")])
    assert not (tmp_path / "tiny_style.pt").exists()
    assert (tmp_path / "tiny_style.pt.part").stat().st_size == 3000
    path = W.download(_entry(), tmp_path, urls=[server.url("/s.pt")])
    assert path.read_bytes() == style_bytes
    assert server.requests[-1][1] == "bytes=3000-"


def test_html_quota_page_is_refused_and_next_source_used(server, tmp_path, style_bytes):
    page = b"<!DOCTYPE html><html><head><title>Google Drive - Quota exceeded</title></head></html>"
    server.files["/quota"] = page * 40
    server.files["/good.pt"] = style_bytes
    with pytest.raises(W.WeightsError, match="web page") as err:
        W.download(_entry(), tmp_path, urls=[server.url("/quota")])
    assert "tiny_style.pt" in str(err.value)
    assert not (tmp_path / "tiny_style.pt").exists()
    assert not (tmp_path / "tiny_style.pt.part").exists()
    path = W.download(_entry(), tmp_path, urls=[server.url("/quota"), server.url("/good.pt")])
    assert path.read_bytes() == style_bytes


def test_truncated_wrong_layout_and_sha256_mismatch_are_refused(server, tmp_path, style_bytes):
    server.files["/short"] = style_bytes[:500]
    with pytest.raises(W.WeightsError, match="too small"):
        W.download(_entry(), tmp_path, urls=[server.url("/short")])
    buf = io.BytesIO()
    torch.save({"something": torch.zeros(2000)}, buf)
    server.files["/other"] = buf.getvalue()
    with pytest.raises(W.WeightsError, match="layout"):
        W.download(_entry(), tmp_path, urls=[server.url("/other")])
    server.files["/s.pt"] = style_bytes
    bad = _entry(sha256="0" * 64)
    with pytest.raises(W.WeightsError, match="sha256"):
        W.download(bad, tmp_path, urls=[server.url("/s.pt")])
    good = _entry(sha256=hashlib.sha256(style_bytes).hexdigest())
    assert W.download(good, tmp_path, urls=[server.url("/s.pt")]).read_bytes() == style_bytes


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_offline_error_names_file_folder_and_sources(tmp_path):
    entry = replace(W.REGISTRY["arcane_jinx.pt"])
    url = f"http://127.0.0.1:{_closed_port()}/arcane_jinx.pt"
    with pytest.raises(W.OfflineError) as err:
        W.download(entry, tmp_path, urls=[url], timeout=2)
    msg = str(err.value)
    assert "arcane_jinx.pt" in msg and str(tmp_path) in msg and "models/jojogan" in msg
    assert "1quQ8vPjYpUiXM4k1_KIwP4EccOefPpG_" in msg  # the JoJoGAN Drive id
    assert list(tmp_path.iterdir()) == []


def test_missing_file_message_for_known_and_unknown_names(tmp_path):
    msg = W.missing_file_message("e4e_ffhq_encode.pt", [tmp_path])
    assert str(tmp_path) in msg and "akhaliq/JoJoGAN_e4e_ffhq_encode" in msg
    assert "python -m jojogan.weights download e4e_ffhq_encode.pt" in msg
    msg = W.missing_file_message("mystery.pt", [tmp_path])
    assert "not a file this pack knows" in msg


def test_cli_list_prints_every_file(capsys):
    assert W.main(["list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in W.REGISTRY)
