"""Execution statistics of a build: every notebook, how long it ran, whether it failed,
whether this build ran it or reused it; the machine and the versions (the book's
"Execution statistics" page, ``notebooks/build_stats.ipynb``).

Why not MyST-NB's ``{nb-exec-table}``: that directive lists what MyST-NB itself executed
during the Sphinx build (``env`` metadata set by its execution client). This project
executes every notebook with papermill *before* the build and renders it with
``execute_notebooks: "off"``, so MyST-NB executes nothing and the directive's table is
empty. The record that does exist is the one papermill writes into each executed
notebook: ``metadata.papermill`` (``start_time``, ``end_time``, ``duration`` in seconds,
``exception``) and, per cell, ``metadata.papermill.status`` (``completed``, ``failed``,
``pending`` for a cell never reached). :func:`notebook_record` reads it;
:func:`execution_table` reads it for every notebook of a build folder ``<out>/<profile>``:
the book's pages (``book/notebooks/*.ipynb``, :mod:`lvae.report.book`) and the grid's runs
(``<run_id>/experiment.ipynb``, :mod:`lvae.report.reproduce`).

Cache state: :mod:`lvae.report.reproduce` skips a run that is already done and a teaching page
whose executed copy is newer than its source, so their notebooks are the ones an earlier
build wrote. Given the time this build started (``since``), a notebook whose papermill
run started at or after it was executed by this build; one before it was reused.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from lvae import runfolder
from lvae.report.book import executed_path, toc_notebooks
from lvae.store import atomic_write_bytes, git_revision

#: The distributions whose versions the page states: what trains, evaluates, executes and
#: renders the book (pip names).
VERSIONED = ("torch", "numpy", "scikit-learn", "pandas", "matplotlib", "papermill",
             "jupyter-book", "myst-nb", "sphinx")

#: The columns of :func:`execution_table`, in order.
COLUMNS = ["notebook", "kind", "status", "run time (s)", "started (UTC)", "cache"]

#: The cache states of :func:`notebook_record`: run by this build, or an earlier build's
#: executed notebook kept (a finished run, an up-to-date teaching page).
EXECUTED, REUSED, UNKNOWN = "executed", "reused", "unknown"


def _time(text: Any) -> datetime | None:
    """papermill's ISO time (``2026-12-06T13:12:32.668566+00:00``) as an aware datetime;
    None for anything else."""
    if not isinstance(text, str) or not text:
        return None
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def _failure(cells: Iterable[Mapping[str, Any]]) -> str | None:
    """``ename: evalue`` of the first error output of a notebook's cells, or None."""
    for cell in cells:
        for out in cell.get("outputs") or []:
            if out.get("output_type") == "error":
                text = f"{out.get('ename', 'Error')}: {out.get('evalue', '')}".strip()
                return text.rstrip(":")[:200]
    return None


def notebook_record(path: str | Path, since: datetime | str | None = None) -> dict[str, Any]:
    """What an executed notebook's papermill metadata says about its execution.

    Keys: ``status`` ("ok"; "failed: <ename>: <evalue>" for an error, read from the first
    error output; "incomplete" when a code cell never ran, e.g. a killed kernel; "not
    executed by papermill" without papermill metadata; "unreadable" for a file that does
    not parse), ``seconds`` (papermill's ``duration``, NaN when it has none),
    ``started`` (its ``start_time``, a datetime or None) and ``cache`` (:data:`EXECUTED`
    when it started at or after ``since``, :data:`REUSED` before it, :data:`UNKNOWN`
    without ``since`` or a start time).
    """
    try:
        nb = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {"status": "unreadable", "seconds": float("nan"), "started": None,
                "cache": UNKNOWN}
    pm = (nb.get("metadata") or {}).get("papermill") or {}
    cells = [c for c in nb.get("cells") or [] if isinstance(c, dict)]
    started = _time(pm.get("start_time"))
    duration = pm.get("duration")
    seconds = float(duration) if isinstance(duration, int | float) else float("nan")
    code = [c for c in cells if c.get("cell_type") == "code"]
    states = [((c.get("metadata") or {}).get("papermill") or {}).get("status") for c in code]
    error = _failure(code)
    if not pm:
        status = "not executed by papermill"
    elif pm.get("exception") or error or "failed" in states:
        status = f"failed: {error}" if error else "failed"
    elif any(s in ("pending", "running") for s in states):
        status = "incomplete"
    else:
        status = "ok"
    since_t = _time(since) if isinstance(since, str) else since
    if since_t is None or started is None:
        cache = UNKNOWN
    else:
        cache = EXECUTED if started >= since_t else REUSED
    return {"status": status, "seconds": seconds, "started": started, "cache": cache}


def build_notebooks(root: str | Path, pages: Iterable[str] | None = None,
                    exclude: Iterable[str] = ()) -> list[tuple[str, str, Path]]:
    """The executed notebooks of the build folder ``root`` (``<out>/<profile>``) as
    (name, kind, path): the book's pages (kind "page", named by stem, in the order of
    ``pages``: repository paths such as ``notebooks/teach_vae.ipynb``, by default those
    ``_toc.yml`` names, :func:`lvae.report.book.toc_notebooks`) that have an executed copy, then
    the grid's runs (``<run_id>/experiment.ipynb``, kind "run", named by run id, in id
    order). An executed copy of a page no longer in the toc is not part of the book, and
    hidden folders are not runs. ``exclude`` drops pages by stem (the statistics page
    itself, which cannot time its own execution)."""

    root = Path(root)
    skip = set(exclude)
    found = []
    for rel in (toc_notebooks() if pages is None else pages):
        path = executed_path(root, rel)
        if path.stem not in skip and path.is_file():
            found.append((path.stem, "page", path))
    runs = sorted(root.glob("*/experiment.ipynb")) if root.is_dir() else []
    found += [(p.parent.name, "run", p) for p in runs if not p.parent.name.startswith(".")]
    return found


def _run_outcome(run_dir: Path) -> str | None:
    """A run's own status when it is not "completed" (diverged is a result, not a failed
    execution: the notebook ran to its end), from its ``result.json``."""
    result = runfolder.read_result(run_dir)
    return result.status if result is not None and result.status != "completed" else None


def execution_table(root: str | Path, since: datetime | str | None = None,
                    pages: Iterable[str] | None = None, exclude: Iterable[str] = (),
                    csv: str | Path | None = None) -> pd.DataFrame:
    """One row per executed notebook of the build folder ``root`` (:func:`build_notebooks`
    with ``pages`` and ``exclude``) with :data:`COLUMNS`: its name, kind (page or run),
    status (:func:`notebook_record`; a run that diverged reads "ok (run diverged)"),
    papermill's run time in seconds, its start time (UTC, to the minute) and its cache
    state against ``since`` (the time the build started). ``csv`` also writes the table
    there (atomically), for the page's download link."""

    rows = []
    for name, kind, path in build_notebooks(root, pages, exclude):
        rec = notebook_record(path, since)
        status = rec["status"]
        outcome = _run_outcome(path.parent) if kind == "run" else None
        if outcome and status == "ok":
            status = f"ok (run {outcome})"
        started = rec["started"]
        rows.append({"notebook": name, "kind": kind, "status": status,
                     "run time (s)": rec["seconds"],
                     "started (UTC)": (f"{started.astimezone(timezone.utc):%Y-%m-%d %H:%M}"
                                       if started else "—"),
                     "cache": rec["cache"]})
    table = pd.DataFrame(rows, columns=COLUMNS)
    if csv is not None:
        atomic_write_bytes(csv, table.to_csv(index=False).encode())
    return table


def styled(table: pd.DataFrame) -> Any:
    """An :func:`execution_table` as its page shows it: each page's name a link to the
    page (a sibling of the statistics page under ``notebooks/``), run times to a tenth of a
    second, every other cell escaped (a status quotes an error message), the start times
    on one line and the columns apart (the theme's bare tables run "page ok" together),
    no index."""
    from html import escape

    def name(row: pd.Series) -> str:
        text = escape(str(row["notebook"]))
        return f'<a href="{text}.html">{text}</a>' if row["kind"] == "page" else text

    shown = table.assign(notebook=[name(r) for _, r in table.iterrows()])
    text = [c for c in COLUMNS if c not in ("notebook", "run time (s)")]
    return (shown.style.hide(axis="index")
            .format("{:.1f}", subset=["run time (s)"], na_rep="—")
            .format(str, subset=text, escape="html")  # an error message is text, not HTML
            .format(str, subset=["notebook"])  # escaped above, with its link
            .set_properties(subset=["started (UTC)"], **{"white-space": "nowrap"})
            .set_table_styles([{"selector": "td, th", "props": "padding: 0.1em 0.7em;"}]))


def totals(table: pd.DataFrame) -> dict[str, Any]:
    """Counts and summed run time of an :func:`execution_table`: notebooks, those this
    build executed and their seconds, those reused and the seconds they saved, failures."""
    executed = table[table["cache"] == EXECUTED]
    reused = table[table["cache"] == REUSED]
    return {"notebooks": len(table), "executed": len(executed),
            "executed_s": float(executed["run time (s)"].fillna(0).sum()),
            "reused": len(reused), "reused_s": float(reused["run time (s)"].fillna(0).sum()),
            "failed": int(table["status"].str.startswith("failed").sum())}


def _cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux; ``platform.processor()`` else):
    ``platform.processor()`` alone says only "x86_64" on Linux."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    except (OSError, ValueError, IndexError):
        pass
    return None


def machine_facts() -> dict[str, str]:
    """The machine this runs on, as the page states it: CPU model, cores (and how many
    this process may use), memory, the accelerator torch sees, the OS."""
    import torch

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    cores = f"{os.cpu_count()}" + (f" ({usable} usable by this process)"
                                   if usable is not None and usable != os.cpu_count() else "")
    if torch.cuda.is_available():
        device = ", ".join(torch.cuda.get_device_name(i)
                           for i in range(torch.cuda.device_count()))
    else:
        device = "CPU only (torch sees no CUDA device)"
    mem = _memory_gib()
    return {"CPU": _cpu_model(), "cores": cores,
            "memory": f"{mem:.1f} GiB" if mem is not None else "unknown",
            "accelerator": device, "OS": platform.platform()}


def versions(packages: Iterable[str] = VERSIONED) -> dict[str, str]:
    """Python's version and each installed distribution's ("not installed" where absent),
    plus the lvae checkout's commit (:func:`lvae.store.git_revision`)."""

    out = {"Python": platform.python_version() + f" ({sys.implementation.name})"}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    out["lvae (git)"] = git_revision()
    return out


def run_machines(root: str | Path) -> pd.DataFrame:
    """The machines the grid's runs under ``root`` recorded (``result.json``'s
    ``provenance.machine``): device, cores, torch, and how many runs each. On a local
    build they are this machine; on a cluster (``--scheduler``) they are the workers."""
    rows = []
    for path in sorted(Path(root).glob(f"*/{runfolder.RESULT}")):
        result = runfolder.read_result(path.parent)
        m = result.machine if result is not None else {}
        if m:
            rows.append({"device": m.get("device", "?"), "cores": m.get("cpu_count", "?"),
                         "torch": m.get("torch", "?")})
    if not rows:
        return pd.DataFrame(columns=["device", "cores", "torch", "runs"])
    df = pd.DataFrame(rows).astype(str)
    return df.groupby(["device", "cores", "torch"], as_index=False).size().rename(
        columns={"size": "runs"})
