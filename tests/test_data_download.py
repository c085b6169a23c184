"""Downloads against a loopback HTTP server: resume, checksums, HTTP errors, mirrors.

Also the sources table (every file has a published checksum), HTTP 416 on a ``.part`` as
long as the file or longer, damaged files already in the target folder, and ``--verify``.
"""

import hashlib
import http.server
import os
import threading

import pytest

from lvae.data import download as dl
from lvae.data.__main__ import main

PAYLOAD = bytes(range(256)) * 400  # 100 KiB
SHA = ("sha256", hashlib.sha256(PAYLOAD).hexdigest())
MD5 = ("md5", hashlib.md5(PAYLOAD).hexdigest())


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


def _flipped(data: bytes) -> bytes:
    """``data`` with one byte changed in the middle: same length, other content."""
    mid = len(data) // 2
    return data[:mid] + bytes([data[mid] ^ 0xFF]) + data[mid + 1 :]


def _use_source(monkeypatch, checksums=(SHA,), size=None, extract=False):
    """Make "shapes3d" one file, f.bin (the loopback server's), with these sums."""
    monkeypatch.setitem(
        dl.SOURCES, "shapes3d",
        dl.Source((dl.RemoteFile("https://example.invalid/f.bin", checksums, size),),
                  extract, "test"),
    )


def test_full_download_verifies_and_renames(server, tmp_path):
    dest = str(tmp_path / "f.bin")
    digest = dl.fetch(f"{server}/f.bin", dest, [SHA, MD5], len(PAYLOAD), wait=0)
    with open(dest, "rb") as f:
        assert f.read() == PAYLOAD
    assert not os.path.exists(dest + ".part")
    assert digest == SHA[1]


def test_partial_download_resumes_with_range(server, tmp_path):
    dest = str(tmp_path / "f.bin")
    with open(dest + ".part", "wb") as f:
        f.write(PAYLOAD[:30_000])
    _Handler.requests_seen.clear()
    dl.fetch(f"{server}/f.bin", dest, [SHA], wait=0)
    assert _Handler.requests_seen == [("/f.bin", "bytes=30000-")]
    with open(dest, "rb") as f:
        assert f.read() == PAYLOAD


@pytest.mark.parametrize("checksum", [("sha256", "0" * 64), ("md5", "0" * 32)])
def test_checksum_mismatch_raises_and_discards(server, tmp_path, checksum):
    dest = str(tmp_path / "f.bin")
    wrong = rf"f.bin.*{checksum[0]} is [0-9a-f]+, expected 0000"
    with pytest.raises(dl.ChecksumError, match=wrong):
        dl.fetch(f"{server}/f.bin", dest, [checksum], wait=0)
    assert not os.path.exists(dest) and not os.path.exists(dest + ".part")


def test_md5_only_source_is_verified(server, tmp_path):
    """Cars3D has only an md5 published: a file is checked with whatever algorithm is given."""
    dest = str(tmp_path / "f.bin")
    assert dl.fetch(f"{server}/f.bin", dest, [MD5], wait=0) == SHA[1]
    assert dl.check_file(dest, [MD5]) is None
    (tmp_path / "f.bin").write_bytes(_flipped(PAYLOAD))
    assert f"md5 is {hashlib.md5(_flipped(PAYLOAD)).hexdigest()}, expected {MD5[1]}" in (
        dl.check_file(dest, [MD5]))


def test_checksums_are_pairs_of_the_right_length():
    with pytest.raises(TypeError, match="pairs"):
        dl.checked_checksums(SHA[1])  # a bare string would check nothing useful
    with pytest.raises(ValueError, match="64 hex digits"):
        dl.checked_checksums([("sha256", MD5[1])])
    with pytest.raises(ValueError, match="unknown hash"):
        dl.checked_checksums([("sha3000", "00")])


@pytest.mark.parametrize("part", [PAYLOAD + b"junk", _flipped(PAYLOAD)],
                         ids=["longer", "same-length-other-bytes"])
def test_part_as_long_as_the_file_is_not_taken_as_complete(server, tmp_path, part):
    """HTTP 416 for a .part >= the file: start over, never rename the part into place."""
    dest = str(tmp_path / "f.bin")
    (tmp_path / "f.bin.part").write_bytes(part)
    _Handler.requests_seen.clear()
    dl.fetch(f"{server}/f.bin", dest, (), wait=0)  # no sum to catch it: 416 alone must
    assert (tmp_path / "f.bin").read_bytes() == PAYLOAD
    assert _Handler.requests_seen == [("/f.bin", f"bytes={len(part)}-"), ("/f.bin", None)]


def test_part_checked_against_published_size_before_any_request(server, tmp_path):
    dest = str(tmp_path / "f.bin")
    (tmp_path / "f.bin.part").write_bytes(PAYLOAD)  # complete: only the rename was missing
    _Handler.requests_seen.clear()
    dl.fetch(f"{server}/f.bin", dest, [SHA], len(PAYLOAD), wait=0)
    assert _Handler.requests_seen == [] and (tmp_path / "f.bin").read_bytes() == PAYLOAD
    (tmp_path / "g.bin.part").write_bytes(_flipped(PAYLOAD))  # same size, wrong bytes
    dl.fetch(f"{server}/f.bin", str(tmp_path / "g.bin"), [SHA], len(PAYLOAD), wait=0)
    assert _Handler.requests_seen == [("/f.bin", None)]
    assert (tmp_path / "g.bin").read_bytes() == PAYLOAD


@pytest.mark.parametrize("damage", [_flipped, lambda b: b[: len(b) // 2]],
                         ids=["flipped", "half"])
def test_damaged_file_in_target_is_replaced_not_kept(server, tmp_path, monkeypatch, capsys,
                                                     damage):
    _use_source(monkeypatch, (SHA,), len(PAYLOAD))
    (tmp_path / "f.bin").write_bytes(damage(PAYLOAD))
    assert main(["download", "shapes3d", "--to", str(tmp_path), "--url-base", server]) == 0
    assert (tmp_path / "f.bin").read_bytes() == PAYLOAD
    err = capsys.readouterr().err
    assert "already present" not in err and "deleting it and downloading it again" in err
    assert main(["download", "shapes3d", "--to", str(tmp_path), "--url-base", server]) == 0
    assert "already present (verified)" in capsys.readouterr().err


def test_verify_option_names_file_expected_got_and_fix(tmp_path, monkeypatch, capsys):
    _use_source(monkeypatch, (SHA, MD5))
    args = ["download", "shapes3d", "--to", str(tmp_path), "--verify"]
    assert main(args) == 1  # nothing there: nothing downloaded either
    err = capsys.readouterr().err
    assert "f.bin: missing" in err and "python -m lvae.data download shapes3d --to" in err
    assert not (tmp_path / "f.bin").exists()
    (tmp_path / "f.bin").write_bytes(PAYLOAD)
    assert main(args) == 0
    (tmp_path / "f.bin").write_bytes(_flipped(PAYLOAD))
    assert main(args) == 1
    err = capsys.readouterr().err
    got = hashlib.sha256(_flipped(PAYLOAD)).hexdigest()
    assert f"f.bin: sha256 is {got}, expected {SHA[1]}" in err
    assert f"delete {tmp_path / 'f.bin'} and download it again" in err
    assert (tmp_path / "f.bin").exists()  # --verify only reports


def test_real_table_rejects_a_damaged_3dshapes(tmp_path, capsys):
    """The real sources table: a half-length or byte-flipped 3dshapes.h5 is not accepted."""
    mirror, to = tmp_path / "mirror", tmp_path / "to"
    mirror.mkdir()
    to.mkdir()
    (mirror / "3dshapes.h5").write_bytes(PAYLOAD)  # not the real file
    (to / "3dshapes.h5").write_bytes(PAYLOAD)
    assert main(["download", "shapes3d", "--to", str(to), "--verify"]) == 1
    assert "expected 267,573,662" in capsys.readouterr().err
    assert main(["download", "shapes3d", "--to", str(to), "--url-base", str(mirror),
                 "--retries", "1"]) == 1
    err = capsys.readouterr().err
    assert "already present" not in err
    assert "3dshapes.h5" in err and "expected 267,573,662" in err
    assert "python -m lvae.data download shapes3d --to" in err
    assert not (to / "3dshapes.h5").exists() and not (to / "3dshapes.h5.part").exists()


def test_http_error_is_retried_then_explained(server, tmp_path):
    _Handler.requests_seen.clear()
    with pytest.raises(dl.DownloadError, match=r"HTTP 403.*--url-base"):
        dl.fetch(f"{server}/forbidden", str(tmp_path / "x"), retries=2, wait=0)
    assert len(_Handler.requests_seen) == 2


def test_cli_with_url_base_mirror(server, tmp_path, monkeypatch):
    _use_source(monkeypatch, (SHA,))
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


def test_every_source_file_has_a_published_checksum():
    """Each file carries valid (algorithm, hex) sums; the published ones, spot-checked."""
    sums = {}
    for s in dl.SOURCES.values():
        for f in s.files:
            assert f.checksums, f"{f.name} has no checksum"
            assert dl.checked_checksums(f.checksums) == f.checksums
            sums[f.name] = dict(f.checksums) | {"size": f.size}
    assert sums["3dshapes.h5"] == {
        "sha256": "0a0f6ed98baff276a50f3a081a7434d788da63cb135a98189b2a5b5769be1785",
        "md5": "099a2078d58cec4daad0702c55d06868", "size": 267_573_662}
    assert sums["nips2015-analogy-data.tar.gz"] == {
        "md5": "4e866a7919c1beedf53964e6f7a23686", "size": None}
    norb = [n for n in sums if n.startswith("smallnorb-")]
    assert len(norb) == 6 and all(set(sums[n]) == {"sha256", "md5", "size"} for n in norb)
    assert sums["smallnorb-5x46789x9x18x6x2x96x96-training-dat.mat.gz"]["sha256"] == (
        "5ffd6272a07d32695ee1082a26a41a93a37aab8c28da047f8c34ed348d214873")
