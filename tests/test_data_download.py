"""Downloads against a loopback HTTP server: resume, checksum, HTTP errors, mirrors."""

import hashlib
import http.server
import os
import threading

import pytest

from lvae.data import download as dl
from lvae.data.__main__ import main

PAYLOAD = bytes(range(256)) * 400  # 100 KiB


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves PAYLOAD at /f.bin with Range support; /forbidden always answers 403."""

    requests_seen: list = []  # noqa: RUF012 (shared on purpose: the test reads it)

    def do_GET(self):
        self.requests_seen.append((self.path, self.headers.get("Range")))
        if self.path.endswith("forbidden"):
            self.send_error(403, "Forbidden")
            return
        if self.path != "/f.bin":
            self.send_error(404)
            return
        start = 0
        rng = self.headers.get("Range")
        if rng:
            start = int(rng.split("=")[1].split("-")[0])
            if start >= len(PAYLOAD):
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
        else:
            self.send_response(200)
        body = PAYLOAD[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_full_download_verifies_and_renames(server, tmp_path):
    dest = str(tmp_path / "f.bin")
    digest = dl.fetch(f"{server}/f.bin", dest, hashlib.sha256(PAYLOAD).hexdigest(), wait=0)
    with open(dest, "rb") as f:
        assert f.read() == PAYLOAD
    assert not os.path.exists(dest + ".part")
    assert digest == hashlib.sha256(PAYLOAD).hexdigest()


def test_partial_download_resumes_with_range(server, tmp_path):
    dest = str(tmp_path / "f.bin")
    with open(dest + ".part", "wb") as f:
        f.write(PAYLOAD[:30_000])
    _Handler.requests_seen.clear()
    dl.fetch(f"{server}/f.bin", dest, hashlib.sha256(PAYLOAD).hexdigest(), wait=0)
    assert _Handler.requests_seen == [("/f.bin", "bytes=30000-")]
    with open(dest, "rb") as f:
        assert f.read() == PAYLOAD


def test_checksum_mismatch_raises_and_discards(server, tmp_path):
    dest = str(tmp_path / "f.bin")
    with pytest.raises(dl.ChecksumError, match="expected 0000"):
        dl.fetch(f"{server}/f.bin", dest, "0" * 64, wait=0)
    assert not os.path.exists(dest) and not os.path.exists(dest + ".part")


def test_http_error_is_retried_then_explained(server, tmp_path):
    _Handler.requests_seen.clear()
    with pytest.raises(dl.DownloadError, match=r"HTTP 403.*--url-base"):
        dl.fetch(f"{server}/forbidden", str(tmp_path / "x"), retries=2, wait=0)
    assert len(_Handler.requests_seen) == 2


def test_cli_with_url_base_mirror(server, tmp_path, monkeypatch):
    monkeypatch.setitem(
        dl.SOURCES, "shapes3d",
        dl.Source((dl.RemoteFile("https://example.invalid/f.bin", None),), False, "test"),
    )
    assert main(["download", "shapes3d", "--to", str(tmp_path), "--url-base", server]) == 0
    assert (tmp_path / "f.bin").read_bytes() == PAYLOAD
    monkeypatch.setenv(dl.URL_BASE_ENV, str(tmp_path))  # a local folder works as a mirror
    out = tmp_path / "copy"
    assert main(["download", "shapes3d", "--to", str(out)]) == 0
    assert (out / "f.bin").read_bytes() == PAYLOAD
    assert main(["download", "shapes3d", "--to", str(tmp_path / "y"), "--url-base",
                 f"{server}/nothing/", "--retries", "1"]) == 1


def test_sources_table_is_the_only_place_with_urls():
    assert set(dl.SOURCES) == {"shapes3d", "smallnorb", "cars3d"}
    urls = [f.url for s in dl.SOURCES.values() for f in s.files]
    assert "https://storage.googleapis.com/3d-shapes/3dshapes.h5" in urls
    assert sum("cs.nyu.edu/~ylclab/data/norb-v1.0-small/" in u for u in urls) == 6
    for s in dl.SOURCES.values():
        for f in s.files:
            assert f.sha256 is None or len(f.sha256) == 64
