"""Regressions of the run store's defects (issue 22), each on a copy of a real shipped run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from lvae.report import results, study

SHIPPED = results.IMPORTED_DIR / "study" / "shapes3d-a0e+00-b1-synthetic-s0"


def _copy(dest: Path) -> Path:
    shutil.copytree(SHIPPED, dest, ignore=shutil.ignore_patterns("model.pt", "pictures.npz"))
    return dest


def test_leftovers_of_an_interrupted_ship_are_never_read(tmp_path: Path):
    """A SIGKILLed ``replace_folder`` leaves ``.<run>.<tmp>`` and ``.<run>.old``: they were
    counted as a fourth vanilla seed (n 4) and drawn; hidden folders are not runs."""
    base = tmp_path / "study"
    _copy(base / SHIPPED.name)
    _copy(base / f".{SHIPPED.name}.x1y2z3")
    _copy(base / f".{SHIPPED.name}.old")
    df = results.collect(None, profile="study", imported=tmp_path)
    assert len(df) == 1 and df["run_id"].tolist() == [SHIPPED.name]
    assert [d.name for d, _ in study.shipped_runs(tmp_path)] == [SHIPPED.name]


def test_a_progress_copy_beside_the_finished_run_is_not_drawn(tmp_path: Path):
    _copy(tmp_path / "study" / SHIPPED.name)
    stale = _copy(tmp_path / "progress" / "study" / SHIPPED.name)
    (stale / "result.json").unlink()
    found = study.shipped_runs(tmp_path)
    assert found == [(tmp_path / "study" / SHIPPED.name, "finished")]
    frame = study.milestone_frame(tmp_path)
    assert set(frame["state"]) == {"finished"}


def test_result_pages_leave_out_the_diagnosis_arms(tmp_path: Path):
    """Arms of a profile that varies settings (eq. 5's prior, a Gaussian decoder...) share
    alpha and beta with the grid's rows; pooled into Table 1 they would read as its seeds."""
    _copy(tmp_path / "study" / SHIPPED.name)
    arm = _copy(tmp_path / "diagnosis" / (SHIPPED.name + "-c83bc1988"))
    cfg = json.loads((arm / "config.json").read_text())
    (arm / "config.json").write_text(json.dumps({**cfg, "profile": "diagnosis"}))
    _, both = results.page_frames(tmp_path / "none", "smoke", imported=tmp_path)
    assert both["profile"].tolist() == ["study"]


def test_import_run_needs_the_log_and_ships_readable_files(tmp_path: Path):
    import os
    import stat

    import pytest

    run = _copy(tmp_path / "run" / SHIPPED.name)
    (run / "log.jsonl").rename(tmp_path / "log.jsonl")
    with pytest.raises(FileNotFoundError, match=r"no log\.jsonl"):
        results.import_run(run, tmp_path / "kept")
    (tmp_path / "log.jsonl").rename(run / "log.jsonl")
    before = os.umask(0o077)  # a private umask: result files used to come out 0600
    try:
        dest = results.import_run(run, tmp_path / "kept")
    finally:
        os.umask(before)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in dest.rglob("*")}
    assert set(modes.values()) <= {0o644, 0o755} and modes["result.json"] == 0o644


def test_two_imports_of_one_run_at_once_both_succeed(tmp_path: Path):
    """They raised a raw FileNotFoundError on the shared ``.old`` folder."""
    from concurrent.futures import ThreadPoolExecutor

    run = _copy(tmp_path / "run" / SHIPPED.name)
    results.import_run(run, tmp_path / "kept")
    with ThreadPoolExecutor(4) as pool:
        done = list(pool.map(lambda _: results.import_run(run, tmp_path / "kept"), range(8)))
    dest = done[0]
    assert (dest / "result.json").read_bytes() == (run / "result.json").read_bytes()
    assert [p.name for p in dest.parent.iterdir() if not p.name.startswith(".")] == [dest.name]
