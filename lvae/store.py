"""Result files: atomic writes and the provenance stamped on every run.

No result file is ever left half-written: everything goes to a temporary file in the same
folder and is moved into place with ``os.replace`` (atomic on POSIX, also on network file
systems that honour rename). Provenance (commit, machine, versions, times) travels with
every result so runs made elsewhere (a GPU box, a longer CPU profile) can sit in the
repository beside the current build's runs, each labelled.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
import platform
import socket
import subprocess
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

import torch


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")
                       .encode())


def atomic_torch_save(path: str | Path, obj: Any) -> None:
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def read_json_or_none(path: str | Path) -> Any:
    """A result file's content, or None when it is missing, unreadable or does not parse:
    such a file is never trusted (the caller treats the result as absent)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):  # ValueError: JSON syntax and text decoding alike
        return None


def git_revision(root: str | Path | None = None) -> str:
    """The commit of the lvae checkout (with ``+dirty`` when its code has changes), or
    unknown. Shipped results (``results/``) are data, not code: shipping one run must not
    mark the next as shipped by changed code."""
    root = Path(__file__).resolve().parent.parent if root is None else Path(root)
    try:
        rev = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root,
                             capture_output=True, text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--",
                                ".", ":(exclude)results"],
                               cwd=root, capture_output=True, text=True, timeout=10).stdout.strip()
        return rev + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def machine() -> dict[str, Any]:
    """Where a run ran: host, CPU, threads, accelerator, library versions."""
    import numpy
    import sklearn

    return {
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "sklearn": sklearn.__version__,
    }


# --------------------------------------------------------------------------- the lock

#: A run folder's lock file: the one lock every writer of a run takes (``lvae reproduce``
#: and the study's workers alike), so no two processes ever believe they hold one run.
LOCK_NAME = ".lock"


class Lock:
    """An exclusive ``fcntl.flock`` held on ``path`` (released by the OS if this process
    dies). :meth:`release` deletes the file, so a finished run folder holds no stray
    ``.lock``; :func:`lock_file` checks after locking that the file it locked is still the
    one at ``path``, so a file deleted by its releaser in between is never trusted."""

    def __init__(self, path: Path, file: IO[str]) -> None:
        self.path, self.file = path, file

    def release(self) -> None:
        if self.file.closed:
            return
        with contextlib.suppress(OSError):
            if os.stat(self.path).st_ino == os.fstat(self.file.fileno()).st_ino:
                self.path.unlink()
        self.file.close()  # releases the flock


def lock_run(run_dir: Path, by: str = "lvae reproduce") -> Lock | str:
    """Take ``<run_dir>/.lock`` (:func:`lock_file`): two invocations on one output folder,
    or a study worker and a reproduce run sharing one, never compute one run twice."""
    return lock_file(run_dir / LOCK_NAME, by)


def lock_file(path: Path, by: str = "lvae reproduce") -> Lock | str:
    """Take an exclusive lock on ``path``: a :class:`Lock` while held, or the holder's note
    ("pid ... on host since ...") when another process holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        f = path.open("a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "pid unknown"
            f.close()
            return holder
        try:
            same = os.stat(path).st_ino == os.fstat(f.fileno()).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        f.close()  # its holder deleted it as we opened it: lock the file now at path
    f.seek(0)
    f.truncate()
    f.write(f"pid {os.getpid()} on {socket.gethostname()} since {now()} ({by})\n")
    f.flush()
    return Lock(path, f)
