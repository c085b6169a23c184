"""Fetching the real datasets: one table of sources, resumable verified downloads.

Links rot and mirrors come and go (NYU answered HTTP 403 for SmallNORB for a while in
2024), so every URL lives in :data:`SOURCES` only, ``--url-base`` or the environment
variable ``LVAE_DATA_URL_BASE`` points at a mirror or a local folder holding the same
file names, failed requests are retried with a clear message, and an interrupted
download resumes from its ``.part`` file (HTTP Range) instead of starting over.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tarfile
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

URL_BASE_ENV = "LVAE_DATA_URL_BASE"
CHUNK = 1 << 20


@dataclass(frozen=True)
class RemoteFile:
    url: str
    sha256: str | None  # None: not known offline; the computed sum is printed to compare

    @property
    def name(self) -> str:
        return os.path.basename(urlsplit(self.url).path)


@dataclass(frozen=True)
class Source:
    files: tuple[RemoteFile, ...]
    extract: bool  # unpack .tar.gz archives after download
    licence: str


_NORB = "https://cs.nyu.edu/~ylclab/data/norb-v1.0-small/"
_NORB_FILES = tuple(
    RemoteFile(f"{_NORB}smallnorb-{part}-{kind}.mat.gz", None)
    for part in ("5x46789x9x18x6x2x96x96-training", "5x01235x9x18x6x2x96x96-testing")
    for kind in ("dat", "cat", "info")
)

# The one place where dataset URLs live. sha256 None = we could not obtain a trustworthy
# sum offline; the download prints the computed sum so it can be compared and added.
SOURCES: dict[str, Source] = {
    "shapes3d": Source(
        (RemoteFile("https://storage.googleapis.com/3d-shapes/3dshapes.h5", None),),
        extract=False,
        licence="Apache-2.0 (deepmind/3d-shapes)",
    ),
    "smallnorb": Source(
        _NORB_FILES,
        extract=False,  # the loader reads the .gz files directly
        licence="research use only; cite LeCun, Huang & Bottou, CVPR 2004",
    ),
    "cars3d": Source(
        (RemoteFile("http://www.scottreed.info/files/nips2015-analogy-data.tar.gz", None),),
        extract=True,
        licence="no licence stated (Reed et al. 2015; CAD models from Fidler et al. 2012)",
    ),
}


class DownloadError(RuntimeError):
    """A download failed after its retries (the message says why and what to try)."""


class ChecksumError(DownloadError):
    """The downloaded bytes do not have the expected sha256."""


def sha256_of(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _progress(total: int | None, initial: int, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, desc=desc,
                file=sys.stderr, disable=None)


def _copy_local(src: str, part: str) -> None:
    if not os.path.exists(src):
        raise DownloadError(f"{src} does not exist (local --url-base)")
    shutil.copyfile(src, part)


def _http_resume(url: str, part: str, timeout: float) -> None:
    """Fetch ``url`` into ``part``, continuing after the bytes already there."""
    import requests

    have = os.path.getsize(part) if os.path.exists(part) else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    with requests.get(url, headers=headers, stream=True, timeout=timeout) as r:
        if r.status_code == 416 and have:  # nothing left to fetch: the part is complete
            return
        if r.status_code >= 400:
            hint = (" (the host may block automated downloads for a while: retry later, "
                    f"or fetch the file by hand and pass --url-base / {URL_BASE_ENV})"
                    if r.status_code in (401, 403, 429) else "")
            raise DownloadError(f"HTTP {r.status_code} {r.reason} for {url}{hint}")
        resumed = r.status_code == 206
        if not resumed:
            have = 0  # the server ignored Range: start over
        size = r.headers.get("Content-Length")
        total = have + int(size) if size is not None else None
        with open(part, "ab" if resumed else "wb") as f, \
                _progress(total, have, os.path.basename(part)) as bar:
            for block in r.iter_content(CHUNK):
                f.write(block)
                bar.update(len(block))


def fetch(url: str, dest: str, sha256: str | None = None, retries: int = 3,
          wait: float = 5.0, timeout: float = 60.0) -> str:
    """Download ``url`` to ``dest`` (resuming ``dest.part``), verify, rename atomically.

    Returns the sha256 of the file. Raises :class:`ChecksumError` on a mismatch (the
    bad bytes are deleted so that the next try starts clean) and :class:`DownloadError`
    when every retry failed. A ``dest`` already present with the right sum is kept.
    """
    if os.path.exists(dest) and (sha256 is None or sha256_of(dest) == sha256):
        print(f"{dest} already present", file=sys.stderr)
        return sha256_of(dest)
    part = dest + ".part"
    last: Exception | None = None
    for attempt in range(1, retries + 1):
        try:
            if urlsplit(url).scheme in ("", "file"):
                _copy_local(urlsplit(url).path if url.startswith("file:") else url, part)
            else:
                _http_resume(url, part, timeout)
            break
        except (DownloadError, OSError) as e:
            last = e
        except Exception as e:  # requests' connection errors and timeouts
            last = DownloadError(f"{type(e).__name__}: {e} for {url}")
        if attempt < retries:
            print(f"download failed ({last}); retry {attempt}/{retries - 1} in {wait:.0f} s",
                  file=sys.stderr)
            time.sleep(wait)
    else:
        raise DownloadError(f"giving up on {url} after {retries} tries: {last}")
    got = sha256_of(part)
    if sha256 is not None and got != sha256:
        os.remove(part)
        raise ChecksumError(f"{os.path.basename(dest)}: sha256 {got}; expected {sha256}")
    os.replace(part, dest)
    if sha256 is None:
        print(f"{os.path.basename(dest)} sha256 {got} (no known sum to compare with)",
              file=sys.stderr)
    return got


def source_url(file: RemoteFile, url_base: str | None) -> str:
    """The file's URL, or the same file name under ``url_base`` (mirror or folder)."""
    if not url_base:
        return file.url
    if "://" not in url_base:
        return os.path.join(url_base, file.name)
    return url_base.rstrip("/") + "/" + file.name


def _extract(archive: str, to: str) -> None:
    print(f"extracting {os.path.basename(archive)}", file=sys.stderr)
    with tarfile.open(archive) as tar:
        if sys.version_info >= (3, 12):
            tar.extractall(to, filter="data")
        else:  # members are checked by hand where the "data" filter does not exist
            root = os.path.realpath(to)
            for m in tar.getmembers():
                target = os.path.realpath(os.path.join(to, m.name))
                if not target.startswith(root + os.sep) or m.issym() or m.islnk():
                    raise DownloadError(f"refusing unsafe archive member {m.name!r}")
            tar.extractall(to)


def download(name: str, to: str | os.PathLike, url_base: str | None = None,
             retries: int = 3, wait: float = 5.0) -> list[str]:
    """Download dataset ``name`` into folder ``to``; returns the files written."""
    if name not in SOURCES:
        raise ValueError(f"unknown dataset {name!r}; expected one of {', '.join(SOURCES)}")
    to = os.fspath(to)
    os.makedirs(to, exist_ok=True)
    url_base = url_base if url_base is not None else os.environ.get(URL_BASE_ENV)
    source = SOURCES[name]
    print(f"{name}: licence {source.licence}", file=sys.stderr)
    written = []
    for file in source.files:
        dest = os.path.join(to, file.name)
        fetch(source_url(file, url_base), dest, file.sha256, retries=retries, wait=wait)
        if source.extract and file.name.endswith((".tar.gz", ".tgz")):
            _extract(dest, to)
        written.append(dest)
    return written
