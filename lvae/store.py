"""Result files: atomic writes and the provenance stamped on every run.

No result file is ever left half-written: everything goes to a temporary file in the same
folder and is moved into place with ``os.replace`` (atomic on POSIX, also on network file
systems that honour rename). Provenance (commit, machine, versions, times) travels with
every result so runs made elsewhere (a GPU box, a longer CPU profile) can sit in the
repository beside the current build's runs, each labelled.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import platform
import socket
import subprocess
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

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
