"""Fetching the real datasets: one table of sources, resumable verified downloads.

Links rot and mirrors come and go (NYU answered HTTP 403 for SmallNORB for a while in
2024), so every URL lives in :data:`SOURCES` only, ``--url-base`` or the environment
variable ``LVAE_DATA_URL_BASE`` points at a mirror or a local folder holding the same
file names, failed requests are retried with a clear message, and an interrupted
download resumes from its ``.part`` file (HTTP Range) instead of starting over.

Every file of the table carries the checksums other projects publish for it (the comments
say where each comes from), and its size where that is published too. A file is checked
after each download, before a file already in the target folder is kept, and on
``python -m lvae.data download NAME --to DIR --verify``: a mirror serving other bytes, a
truncated transfer or a damaged copy on disk is an error that names the file, the
expected and the computed sums, and what to do, never a silent rc 0.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import sys
import tarfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

URL_BASE_ENV = "LVAE_DATA_URL_BASE"
CHUNK = 1 << 20

#: ``(algorithm, hex digest)``, the algorithm a :func:`hashlib.new` name. Published sums
#: are md5 for some files and sha256 for others, so the table keeps whichever exist
#: (both where both do) instead of pretending one algorithm is available everywhere.
Checksum = tuple[str, str]


@dataclass(frozen=True)
class RemoteFile:
    """One file of a dataset: where it lives and what it must hash to."""

    url: str
    checksums: tuple[Checksum, ...] = ()  # empty: nothing published; the sha256 is printed
    size: int | None = None  # bytes, where published: a wrong length fails without hashing

    @property
    def name(self) -> str:
        return os.path.basename(urlsplit(self.url).path)


@dataclass(frozen=True)
class Source:
    files: tuple[RemoteFile, ...]
    extract: bool  # unpack .tar.gz archives after download
    licence: str


# Where the sums come from (read in the projects' source; the first commit is the one read):
# - sha256 and size: tensorflow/datasets, tensorflow_datasets/url_checksums/shapes3d.txt and
#   .../smallnorb.txt (commit 333639b37af6c6fedf3610a4a2d42f1c6ef6f7d5), "url size sha256".
# - md5: nmichlo/disent, disent/dataset/data/_groundtruth__shapes3d.py, _groundtruth__norb.py
#   and _groundtruth__cars3d.py (commit 8f061a87076adeae8d6e5b0fa984b660cd40e026), the
#   ``uri_hash["full"]`` values: disent's "full" mode is hashlib md5 over every byte of the
#   downloaded file (its "fast" mode hashes three chunks and the size, a scheme of its own,
#   not used here). No sha256 or size of the Cars3D archive was found published.
_NORB = "https://cs.nyu.edu/~ylclab/data/norb-v1.0-small/"
_NORB_SUMS: dict[str, tuple[int, str, str]] = {  # name part: (size, sha256, md5)
    "5x46789x9x18x6x2x96x96-training-dat": (
        131_896_188, "5ffd6272a07d32695ee1082a26a41a93a37aab8c28da047f8c34ed348d214873",
        "66054832f9accfe74a0f4c36a75bc0a2"),
    "5x46789x9x18x6x2x96x96-training-cat": (
        348, "2784e542c1922060691090952b6cd6278879a216c90f81476f0f00256d42cdaa",
        "23c8b86101fbf0904a000b43d3ed2fd9"),
    "5x46789x9x18x6x2x96x96-training-info": (
        71_052, "de7eb932ebe7a4ee16217fead60660d0eb3d23632c2f4d1c51f88c501c17bf32",
        "51dee1210a742582ff607dfd94e332e3"),
    "5x01235x9x18x6x2x96x96-testing-dat": (
        130_799_817, "cf7104eed3e51174d2f65b66d1e5878b9da233b886f161b0d88f4510ba2c7474",
        "e4ad715691ed5a3a5f138751a4ceb071"),
    "5x01235x9x18x6x2x96x96-testing-cat": (
        347, "ecaf6d5bb8c3bc5eab9cf0258f6d2198dd474e016e374836fc097f2e5ff509ff",
        "5aa791cd7e6016cf957ce9bdb93b8603"),
    "5x01235x9x18x6x2x96x96-testing-info": (
        10_428, "16adf314226327ee006d1a44db8cfef52773c06c829951d5653a9f6f310248a2",
        "a9454f3864d7fd4bb3ea7fc3eb84924e"),
}
_NORB_FILES = tuple(
    RemoteFile(f"{_NORB}smallnorb-{part}.mat.gz", (("sha256", sha), ("md5", md5)), size)
    for part, (size, sha, md5) in _NORB_SUMS.items()
)

# The one place where dataset URLs live.
SOURCES: dict[str, Source] = {
    "shapes3d": Source(
        (RemoteFile(
            "https://storage.googleapis.com/3d-shapes/3dshapes.h5",
            (("sha256", "0a0f6ed98baff276a50f3a081a7434d788da63cb135a98189b2a5b5769be1785"),
             ("md5", "099a2078d58cec4daad0702c55d06868")),
            267_573_662,
        ),),
        extract=False,
        licence="Apache-2.0 (deepmind/3d-shapes)",
    ),
    "smallnorb": Source(
        _NORB_FILES,
        extract=False,  # the loader reads the .gz files directly
        licence="research use only; cite LeCun, Huang & Bottou, CVPR 2004",
    ),
    "cars3d": Source(
        (RemoteFile(
            "http://www.scottreed.info/files/nips2015-analogy-data.tar.gz",
            (("md5", "4e866a7919c1beedf53964e6f7a23686"),),
        ),),
        extract=True,
        licence="no licence stated (Reed et al. 2015; CAD models from Fidler et al. 2012)",
    ),
}


class DownloadError(RuntimeError):
    """A download failed after its retries (the message says why and what to try)."""


class ChecksumError(DownloadError):
    """A file does not have the published size or checksum (the message says which)."""


def download_command(name: str, to: str | os.PathLike | None = None) -> str:
    """The shell command that (re)fetches dataset ``name`` into ``to`` (``DIR`` if unknown).

    Error messages quote it so that every failure says how to fix it; ``download``
    re-verifies what is already there and replaces only what is damaged or missing.
    """
    folder = shlex.quote(os.fspath(to)) if to is not None else "DIR"
    return f"python -m lvae.data download {name} --to {folder}"


def checked_checksums(checksums: Sequence[Checksum]) -> tuple[Checksum, ...]:
    """``checksums`` as a tuple, each an ``(algorithm, hex)`` pair of the right length.

    A bare hex string would iterate as characters and silently check nothing useful, and
    a digest of the wrong length for its algorithm can never match: both are refused.
    """
    if isinstance(checksums, str):
        raise TypeError(f"checksums must be (algorithm, hex) pairs, got the string {checksums!r}")
    out = []
    for pair in checksums:
        algorithm, hexdigest = pair
        if algorithm not in hashlib.algorithms_available:
            raise ValueError(f"unknown hash algorithm {algorithm!r}")
        length = 2 * hashlib.new(algorithm).digest_size
        if len(hexdigest) != length or any(c not in "0123456789abcdefABCDEF" for c in hexdigest):
            raise ValueError(f"{algorithm} digest must be {length} hex digits, got {hexdigest!r}")
        out.append((algorithm, hexdigest.lower()))
    return tuple(out)


def digests(path: str, algorithms: Iterable[str] = ("sha256",)) -> dict[str, str]:
    """Hex digests of ``path`` for each algorithm, computed in one pass over the file."""
    hashes = {a: hashlib.new(a) for a in dict.fromkeys(algorithms)}
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            for h in hashes.values():
                h.update(block)
    return {a: h.hexdigest() for a, h in hashes.items()}


def sha256_of(path: str) -> str:
    return digests(path)["sha256"]


def check_file(path: str, checksums: Sequence[Checksum] = (), size: int | None = None,
               ) -> str | None:
    """What is wrong with ``path`` against its published size and sums, or None if nothing.

    The size is compared first: a truncated file is reported without reading it. The
    message names the file and gives computed against expected values; what to do about
    it depends on the caller (delete and download again, or check the mirror).
    """
    return _inspect(path, checksums, size)[0]


def _inspect(path: str, checksums: Sequence[Checksum], size: int | None,
             ) -> tuple[str | None, str | None]:
    """``(problem or None, sha256 if the file was hashed)``: one pass over the file."""
    checksums = checked_checksums(checksums)
    if not os.path.exists(path):
        return f"{path}: missing", None
    have = os.path.getsize(path)
    if size is not None and have != size:
        return (f"{path}: {have:,} bytes; expected {size:,} (truncated or not the "
                "published file)", None)
    got = digests(path, ["sha256", *(a for a, _ in checksums)])
    bad = [f"{a} is {got[a]}, expected {want}" for a, want in checksums if got[a] != want]
    return (f"{path}: " + "; ".join(bad) if bad else None), got["sha256"]


def _progress(total: int | None, initial: int, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, desc=desc,
                file=sys.stderr, disable=None)


def _copy_local(src: str, part: str) -> None:
    if not os.path.exists(src):
        raise DownloadError(f"{src} does not exist (local --url-base)")
    shutil.copyfile(src, part)


def _http_resume(url: str, part: str, timeout: float) -> None:
    """Fetch ``url`` into ``part``, continuing after the bytes already there.

    HTTP 416 (range not satisfiable) means the ``.part`` is as long as or longer than the
    file: it cannot be a prefix of it, so it is discarded and the file fetched from zero
    (treating it as complete renamed whatever bytes were there into place).
    """
    import requests

    have = os.path.getsize(part) if os.path.exists(part) else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    with requests.get(url, headers=headers, stream=True, timeout=timeout) as r:
        if r.status_code == 416 and have:
            print(f"{os.path.basename(part)}: the server has no bytes after {have:,} "
                  "(HTTP 416): the partial file is not a prefix of the file; starting over",
                  file=sys.stderr)
            r.close()
            os.remove(part)
            _http_resume(url, part, timeout)
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


def _prepare_part(part: str, checksums: Sequence[Checksum], size: int | None) -> bool:
    """Deal with a ``.part`` left by an earlier try; True if it is already the whole file.

    A part longer than the published size cannot be resumed and is deleted; one exactly
    that long is the whole file if its sums match (no request needed), else deleted.
    """
    if size is None or not os.path.exists(part):
        return False
    have = os.path.getsize(part)
    if have < size:
        return False
    if have == size and checksums and check_file(part, checksums, size) is None:
        return True
    print(f"{os.path.basename(part)}: {have:,} bytes of a {size:,}-byte file that do not "
          "match it; starting over", file=sys.stderr)
    os.remove(part)
    return False


def fetch(url: str, dest: str, checksums: Sequence[Checksum] = (), size: int | None = None,
          retries: int = 3, wait: float = 5.0, timeout: float = 60.0) -> str:
    """Download ``url`` to ``dest`` (resuming ``dest.part``), verify, rename atomically.

    Returns the sha256 of the file. ``checksums`` are ``(algorithm, hex)`` pairs and
    ``size`` the length in bytes, where published. A ``dest`` already present is kept
    only if it passes them; a damaged one is deleted and fetched again. Raises
    :class:`ChecksumError` when the downloaded bytes fail them (they are deleted so that
    the next try starts clean) and :class:`DownloadError` when every retry failed.
    """
    checksums = checked_checksums(checksums)
    verifiable = bool(checksums) or size is not None
    if os.path.exists(dest):
        problem, got = _inspect(dest, checksums, size)
        if problem is None and got is not None:
            state = "verified" if verifiable else "no published checksum to verify against"
            print(f"{dest} already present ({state})", file=sys.stderr)
            return got
        print(f"{problem}: deleting it and downloading it again", file=sys.stderr)
        os.remove(dest)
    part = dest + ".part"
    if not _prepare_part(part, checksums, size):
        _download_part(url, part, retries, wait, timeout)
    problem, got = _inspect(part, checksums, size)
    if problem is not None or got is None:
        os.remove(part)
        raise ChecksumError(
            f"downloaded {problem} (from {url}; the bad bytes were deleted, so a new try "
            "starts clean)"
        )
    os.replace(part, dest)
    if not checksums:
        print(f"{os.path.basename(dest)} sha256 {got} (no published sum to compare with)",
              file=sys.stderr)
    return got


def _download_part(url: str, part: str, retries: int, wait: float, timeout: float) -> None:
    last: Exception | None = None
    for attempt in range(1, retries + 1):
        try:
            if urlsplit(url).scheme in ("", "file"):
                _copy_local(urlsplit(url).path if url.startswith("file:") else url, part)
            else:
                _http_resume(url, part, timeout)
            return
        except (DownloadError, OSError) as e:
            last = e
        except Exception as e:  # requests' connection errors and timeouts
            last = DownloadError(f"{type(e).__name__}: {e} for {url}")
        if attempt < retries:
            print(f"download failed ({last}); retry {attempt}/{retries - 1} in {wait:.0f} s",
                  file=sys.stderr)
            time.sleep(wait)
    raise DownloadError(f"giving up on {url} after {retries} tries: {last}")


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


def _source(name: str) -> Source:
    if name not in SOURCES:
        raise ValueError(f"unknown dataset {name!r}; expected one of {', '.join(SOURCES)}")
    return SOURCES[name]


def download(name: str, to: str | os.PathLike, url_base: str | None = None,
             retries: int = 3, wait: float = 5.0) -> list[str]:
    """Download dataset ``name`` into folder ``to``; returns the files written.

    Files already there are verified and kept, damaged ones fetched again; an archive
    (Cars3D) is re-extracted each time, which repairs a damaged or deleted extracted file.
    """
    source = _source(name)
    to = os.fspath(to)
    os.makedirs(to, exist_ok=True)
    url_base = url_base if url_base is not None else os.environ.get(URL_BASE_ENV)
    print(f"{name}: licence {source.licence}", file=sys.stderr)
    written = []
    for file in source.files:
        dest = os.path.join(to, file.name)
        try:
            fetch(source_url(file, url_base), dest, file.checksums, file.size,
                  retries=retries, wait=wait)
        except ChecksumError as e:
            raise ChecksumError(
                f"{name}: {e}: run `{download_command(name, to)}` again; if this repeats, "
                "the source or mirror serves another file than the published one"
            ) from None
        if source.extract and file.name.endswith((".tar.gz", ".tgz")):
            _extract(dest, to)
        written.append(dest)
    return written


def verify(name: str, to: str | os.PathLike) -> list[str]:
    """Check the files of dataset ``name`` in folder ``to``; returns one line per problem.

    Downloads nothing: this is ``--verify``, for a folder filled earlier, by hand or by
    another tool. Each line names the file, expected against computed values and the fix.
    """
    source = _source(name)
    to = os.fspath(to)
    problems = []
    for file in source.files:
        path = os.path.join(to, file.name)
        problem = check_file(path, file.checksums, file.size)
        if problem is not None:
            fix = ("download it with" if not os.path.exists(path)
                   else f"delete {shlex.quote(path)} and download it again with")
            problems.append(f"{name}: {problem}; {fix} `{download_command(name, to)}`")
        elif not file.checksums and file.size is None:
            print(f"{path}: no published checksum to verify against", file=sys.stderr)
        else:
            print(f"{path}: ok", file=sys.stderr)
    return problems
