"""lvae.report.execstats: the execution-statistics page's table, read from papermill's records.

The notebooks here are written by hand with the metadata papermill 2.x writes (its
``metadata.papermill`` block and each cell's ``metadata.papermill.status``), so the
expected status, run time and cache state of each row are known independently of the
code under test. One notebook is executed by papermill itself, to check that the record
this module reads is the one papermill writes, against a clock of the test's own.
"""

from __future__ import annotations

import itertools
import json
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from lvae.report import execstats
from lvae.report.book import book_source

SINCE = datetime(2026, 12, 6, 12, 0, tzinfo=timezone.utc)


def _notebook(path: Path, *, start: datetime | None, seconds: float | None,
              cells: list[dict] | None = None, exception: bool | None = None) -> Path:
    """An executed notebook as papermill leaves it (no papermill block when ``start`` is
    None: a notebook papermill never ran)."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.from_dict(c) for c in (cells or [_cell("completed")])]
    if start is not None:
        nb.metadata["papermill"] = {
            "start_time": start.isoformat(), "duration": seconds, "exception": exception,
            "end_time": (start + timedelta(seconds=seconds or 0)).isoformat(),
            "parameters": {}, "version": "2.7.0"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


_IDS = itertools.count()


def _cell(status: str, error: tuple[str, str] | None = None) -> dict:
    outputs = [] if error is None else [{"output_type": "error", "ename": error[0],
                                         "evalue": error[1], "traceback": []}]
    return {"cell_type": "code", "source": "x = 1", "execution_count": None,
            "metadata": {"papermill": {"status": status}}, "outputs": outputs,
            "id": f"c{next(_IDS)}"}


@pytest.fixture
def build(tmp_path: Path) -> Path:
    """A build folder ``<out>/<profile>``: three pages (one executed by this build, one
    reused, one failed), a page copy no longer in the toc, papermill's partial notebook,
    and two runs (one reused and diverged, one killed mid-way)."""
    root = tmp_path / "smoke"
    pages = book_source(root) / "notebooks"
    _notebook(pages / "teach_vae.ipynb", start=SINCE - timedelta(days=2), seconds=11.0)
    _notebook(pages / "results_table1.ipynb", start=SINCE + timedelta(minutes=3),
              seconds=42.5)
    _notebook(pages / "results_table2.ipynb", start=SINCE + timedelta(minutes=4),
              seconds=3.0, exception=True,
              cells=[_cell("completed"), _cell("failed", ("ValueError", "<boom>")),
                     _cell("pending")])
    _notebook(pages / "results_gone.ipynb", start=SINCE, seconds=1.0)  # not in `PAGES`
    _notebook(pages / ".results_table1.1a2b3c4d.tmp.ipynb", start=SINCE, seconds=1.0)
    run = root / "shapes3d-a1e+02-b1-synthetic-s0"
    _notebook(run / "experiment.ipynb", start=SINCE - timedelta(hours=1), seconds=300.0)
    (run / "result.json").write_text(json.dumps({"status": "diverged"}))
    _notebook(root / "shapes3d-a1e+00-b1-synthetic-s0" / "experiment.ipynb",
              start=SINCE + timedelta(minutes=1), seconds=60.0,
              cells=[_cell("completed"), _cell("running"), _cell("pending")])
    (root / ".staging-run" / "experiment.ipynb").parent.mkdir()
    (root / ".staging-run" / "experiment.ipynb").write_text("{}")
    return root


PAGES = ["notebooks/teach_vae.ipynb", "notebooks/results_table1.ipynb",
         "notebooks/results_table2.ipynb", "notebooks/results_missing.ipynb"]


def test_every_notebook_of_the_build_with_its_record(build: Path, tmp_path: Path) -> None:
    csv = tmp_path / "stats.csv"
    t = execstats.execution_table(build, since=SINCE.isoformat(), pages=PAGES, csv=csv)
    assert list(t.columns) == execstats.COLUMNS
    # pages in the given (toc) order, those without an executed copy left out, then runs
    assert list(t.notebook) == ["teach_vae", "results_table1", "results_table2",
                                "shapes3d-a1e+00-b1-synthetic-s0",
                                "shapes3d-a1e+02-b1-synthetic-s0"]
    assert list(t.kind) == ["page"] * 3 + ["run"] * 2
    assert list(t["status"]) == ["ok", "ok", "failed: ValueError: <boom>", "incomplete",
                                 "ok (run diverged)"]
    assert list(t["run time (s)"]) == [11.0, 42.5, 3.0, 60.0, 300.0]
    assert list(t["cache"]) == ["reused", "executed", "executed", "executed", "reused"]
    assert list(t["started (UTC)"]) == ["2026-12-04 12:00", "2026-12-06 12:03",
                                        "2026-12-06 12:04", "2026-12-06 12:01",
                                        "2026-12-06 11:00"]
    back = pd.read_csv(csv)
    assert back["run time (s)"].tolist() == [11.0, 42.5, 3.0, 60.0, 300.0]
    tot = execstats.totals(t)
    assert tot == {"notebooks": 5, "executed": 3, "executed_s": 105.5, "reused": 2,
                   "reused_s": 311.0, "failed": 1}
    # without the build's start time, the cache state is not guessed
    assert set(execstats.execution_table(build, pages=PAGES)["cache"]) == {"unknown"}
    # a start time in another zone is the same instant
    later = SINCE.astimezone(timezone(timedelta(hours=5))).isoformat()
    assert list(execstats.execution_table(build, later, pages=PAGES)["cache"]) == list(t.cache)


def test_the_page_links_pages_and_escapes_error_text(build: Path) -> None:
    t = execstats.execution_table(build, SINCE, pages=PAGES, exclude=["results_table1"])
    assert "results_table1" not in set(t.notebook)
    html = execstats.styled(t).to_html()
    assert '<a href="teach_vae.html">teach_vae</a>' in html
    assert "failed: ValueError: &lt;boom&gt;" in html and "<boom>" not in html
    assert 'href="shapes3d' not in html  # a run has no page


def test_unreadable_and_unexecuted_notebooks(tmp_path: Path) -> None:
    bad = tmp_path / "cut.ipynb"
    bad.write_text('{"cells": [')
    assert execstats.notebook_record(bad, SINCE)["status"] == "unreadable"
    plain = _notebook(tmp_path / "plain.ipynb", start=None, seconds=None)
    rec = execstats.notebook_record(plain, SINCE)
    assert rec["status"] == "not executed by papermill" and rec["cache"] == "unknown"


def test_the_record_is_the_one_papermill_writes(tmp_path: Path) -> None:
    """papermill's duration lies within the wall time the test measures around it, and
    its start time after the test's start: the statistics are papermill's own clock."""
    import papermill as pm

    src = tmp_path / "sleep.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import time\ntime.sleep(0.4)")]
    nbformat.write(nb, src)
    before = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    pm.execute_notebook(str(src), str(tmp_path / "out.ipynb"), progress_bar=False,
                        kernel_name="python3")
    wall = time.perf_counter() - t0
    rec = execstats.notebook_record(tmp_path / "out.ipynb", before)
    assert rec["status"] == "ok" and rec["cache"] == "executed"
    assert 0.4 <= rec["seconds"] <= wall
    assert execstats.notebook_record(tmp_path / "out.ipynb",
                                     before + timedelta(seconds=wall + 1))["cache"] == "reused"


def test_machine_and_versions_name_what_the_page_promises() -> None:
    import numpy
    import torch

    facts = execstats.machine_facts()
    assert set(facts) == {"CPU", "cores", "memory", "accelerator", "OS"}
    assert facts["cores"].split()[0].isdigit() and facts["CPU"]
    v = execstats.versions()
    assert v["torch"] == torch.__version__ and v["numpy"] == numpy.__version__
    for name in ("Python", "scikit-learn", "papermill", "jupyter-book", "lvae (git)"):
        assert v[name] and v[name] != "not installed", name


def test_run_machines_count_the_runs_per_machine(build: Path) -> None:
    for i, device in enumerate(("cpu", "cpu", "NVIDIA H200")):
        d = build / f"run{i}"
        d.mkdir()
        machine = {"device": device, "cpu_count": 2 if device == "cpu" else 16, "torch": "2.13"}
        (d / "result.json").write_text(json.dumps({"status": "completed",
                                                   "provenance": {"machine": machine}}))
    m = execstats.run_machines(build)
    assert sorted(zip(m.device, m.runs, strict=True)) == [("NVIDIA H200", 1), ("cpu", 2)]
    assert execstats.run_machines(build / "none").empty
