"""A stand-in for the Hugging Face Hub on 127.0.0.1, for the real ``huggingface_hub`` client.

Point the client at it with ``HF_ENDPOINT`` (or ``endpoint=``). It answers what
``hf_hub_download`` asks for (read from huggingface_hub's ``file_download.py`` and
``utils/_http.py``):

- ``HEAD /{owner}/{repo}/resolve/{revision}/{path}``: for an LFS file, ``302`` with
  ``X-Repo-Commit``, ``X-Linked-Etag`` (the file's sha256, quoted), ``X-Linked-Size``, an ``ETag``
  and a ``Location`` on a second server (the "CDN": another port, so the client stops at the
  redirect and takes the metadata from it, as it does for the real CDN); for a small (non-LFS)
  file, ``200`` with ``ETag`` (a git blob id, 40 hex), ``X-Repo-Commit`` and ``Content-Length``.
  Missing repositories and files get ``404`` with ``X-Error-Code: RepoNotFound`` /
  ``EntryNotFound`` (which the client maps to its own errors);
- ``GET`` of the same URL (small files) or of the CDN location (LFS files): the bytes, with
  ``Range: bytes=N-`` answered by ``206`` and ``Content-Range``.

Test knobs: ``drop_after[(repo, path)] = n`` sends only ``n`` bytes of the next GET and closes the
connection; ``serve_instead[(repo, path)] = data`` makes the CDN send other bytes than the ones the
metadata describes (a corrupted transfer); ``html_page = True`` makes every resolve URL answer
``200`` with an HTML page (a captive portal or a wrong ``HF_ENDPOINT``); ``requests`` records
``(server, method, path, Range header)``. Both servers are threads, bounded by ``max_requests``.
"""

from __future__ import annotations

import hashlib
import http.server
import threading
import urllib.parse

COMMIT = "5d5a3f6c0e9b2f1a7c4d8e0b1a2c3d4e5f607182"
HTML_PAGE = (
    b"<!DOCTYPE html><html><head><title>Sign in to the network</title></head>"
    b"<body>Please accept the terms to continue.</body></html>"
)


class FakeHub:
    def __init__(self, max_requests: int = 200) -> None:
        self.files: dict[tuple[str, str], bytes] = {}
        self.small: set[tuple[str, str]] = set()  # served as plain git files (no LFS redirect)
        self.drop_after: dict[tuple[str, str], int] = {}
        self.serve_instead: dict[tuple[str, str], bytes] = {}
        self.html_page = False
        self.requests: list[tuple[str, str, str, str | None]] = []
        self.max_requests = max_requests
        self._lock = threading.Lock()
        self._by_sha: dict[str, tuple[str, str]] = {}
        self.hub = self._serve("hub")
        self.cdn = self._serve("cdn")

    # ------------------------------------------------------------------------------ setup

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.hub.server_address[1]}"

    def add(self, repo: str, path: str, data: bytes, *, lfs: bool = True) -> str:
        """Serve ``data`` as ``path`` in ``repo``; returns its sha256."""
        self.files[(repo, path)] = data
        sha = hashlib.sha256(data).hexdigest()
        self._by_sha[sha] = (repo, path)
        if not lfs:
            self.small.add((repo, path))
        return sha

    def close(self) -> None:
        for srv in (self.hub, self.cdn):
            srv.shutdown()
            srv.server_close()

    # ---------------------------------------------------------------------------- serving

    def _record(self, server: str, method: str, path: str, rng: str | None) -> bool:
        with self._lock:
            self.requests.append((server, method, path, rng))
            return len(self.requests) <= self.max_requests

    def _serve(self, role: str) -> http.server.ThreadingHTTPServer:
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def do_HEAD(self):
                self._answer(body=False)

            def do_GET(self):
                self._answer(body=True)

            def _answer(self, body: bool) -> None:
                rng = self.headers.get("Range")
                if not hub._record(role, self.command, self.path, rng):
                    self._plain(503, b"too many requests in one test")
                    return
                path = urllib.parse.urlsplit(self.path).path
                if role == "cdn":
                    key = hub._by_sha.get(path.rsplit("/", 1)[-1])
                    if key is None:
                        self._plain(404, b"no such blob")
                        return
                    self._bytes(key, body, rng)
                    return
                if hub.html_page:
                    self._plain(200, HTML_PAGE, "text/html; charset=utf-8")
                    return
                parts = urllib.parse.unquote(path).lstrip("/").split("/")
                if len(parts) < 5 or parts[2] != "resolve":
                    self._plain(404, b"not found", error="EntryNotFound")
                    return
                repo, filename = "/".join(parts[:2]), "/".join(parts[4:])
                if not any(r == repo for r, _ in hub.files):
                    self._plain(404, b"Repository not found", error="RepoNotFound")
                    return
                key = (repo, filename)
                if key not in hub.files:
                    self._plain(404, b"Entry not found", error="EntryNotFound")
                    return
                data = hub.files[key]
                git_id = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
                if key in hub.small:
                    self._bytes(key, body, rng, {"ETag": f'"{git_id}"', "X-Repo-Commit": COMMIT})
                    return
                sha = hashlib.sha256(data).hexdigest()
                cdn = f"http://127.0.0.1:{hub.cdn.server_address[1]}/blobs/{sha}?sig=test"
                self.send_response(302)
                self.send_header("Location", cdn)
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("ETag", f'"{git_id}"')
                self.send_header("X-Linked-Etag", f'"{sha}"')
                self.send_header("X-Linked-Size", str(len(data)))
                self.send_header("Content-Length", "0")
                self.end_headers()

            def _plain(self, code: int, text: bytes, ctype="text/plain", error=None) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(text)))
                if error:
                    self.send_header("X-Error-Code", error)
                    self.send_header("X-Repo-Commit", COMMIT)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(text)

            def _bytes(self, key, body: bool, rng: str | None, extra=None) -> None:
                data = hub.serve_instead.get(key, hub.files[key])
                start = 0
                if rng and rng.startswith("bytes="):
                    start = int(rng[6:].split("-")[0] or 0)
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                part = data[start:]
                self.send_response(206 if start else 200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(part)))
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                for k, v in (extra or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                if not body:
                    return
                limit = hub.drop_after.pop(key, None) if self.command == "GET" else None
                if limit is None:
                    self.wfile.write(part)
                    return
                self.wfile.write(part[:limit])
                self.wfile.flush()
                self.close_connection = True

        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        srv.daemon_threads = True
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        return srv
