"""The runner never loses or mistrusts a run (issue 15, "Runs and the results store").

Every test here is fast: runs are made by hand (the files a finished run leaves) or by a
stand-in executor, so no kernel starts; where a real Dask client is needed it is only asked
to reach a scheduler that is not there.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import dask
import nbformat as nbf
import pytest

import lvae.report.reproduce as rp
from lvae.__main__ import main
from lvae.report.grid import Experiment
from lvae.report.params import experiment_config

FIG4 = Experiment("shapes3d", 1.0)  # --only fig4 selects exactly this run
FIG4_ID = "shapes3d-a1e+00-b1-synthetic-s0"


def whole_notebook() -> str:
    return nbf.writes(nbf.v4.new_notebook(cells=[nbf.v4.new_code_cell("1")]))


def make_done(out: Path, e: Experiment = FIG4, profile: str = "smoke",
              status: str = "completed") -> Path:
    """The files a finished run leaves, exactly as :func:`rp.done_status` expects them."""
    setup = experiment_config(**e.parameters(profile), out_dir=str(out))
    d = setup.run_dir
    d.mkdir(parents=True)
    (d / "config.json").write_text(setup.config.to_json())
    (d / "result.json").write_text(json.dumps({"status": status}))
    (d / "experiment.ipynb").write_text(whole_notebook())
    if status == "completed":
        params = setup.evaluation.identity()
        (d / "eval.json").write_text(json.dumps({"status": "completed", "params": params}))
    else:  # evaluate() records a divergence in eval.json (lvae.runfolder.finished)
        (d / "eval.json").write_text(json.dumps({"status": status}))
    assert rp.run_is_done(setup)
    return d


def files(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir()) if p.name != rp.LOCK_NAME}


class FakeExecutor:
    """Records the tasks it is given; "executes" each by writing what ``write`` says."""

    def __init__(self, write=None):
        self.names: list[str] = []
        self.write = write

    def map(self, tasks):
        for t in tasks:
            self.names.append(t.name)
            out = Path(t.output)
            if self.write is not None:
                self.write(out.parent)
            out.write_text(whole_notebook())
            yield rp.Outcome(t.name, "executed", str(out))

    def close(self):
        pass


# --------------------------------------------------------------------------- --force


@pytest.mark.parametrize("extra", [
    ["--inline", "--jobs", "2"],
    ["--scheduler", " "],
    ["--jobs", "0"],
])
def test_force_deletes_nothing_when_an_option_is_wrong(tmp_path: Path, capsys, extra):
    run = make_done(tmp_path)
    before = files(run)
    rc = main(["reproduce", "--profile", "smoke", "--only", "fig4", "--out", str(tmp_path),
               "--force", "--no-book", *extra])
    assert rc == 2
    assert capsys.readouterr().err.startswith("error: ")
    assert files(run) == before


def test_force_deletes_nothing_when_the_scheduler_cannot_be_reached(tmp_path: Path, capsys):
    run = make_done(tmp_path)
    before = files(run)
    with dask.config.set({"distributed.comm.timeouts.connect": "2s"}):
        rc = main(["reproduce", "--profile", "smoke", "--only", "fig4", "--out",
                   str(tmp_path), "--force", "--no-book", "--scheduler", "tcp://127.0.0.1:9"])
    assert rc == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot reach the Dask scheduler at tcp://127.0.0.1:9")
    assert "Traceback" not in err and err.count("\n") == 1
    assert files(run) == before


def test_force_deletes_only_once_everything_is_checked(tmp_path: Path):
    run = make_done(tmp_path)
    (run / "checkpoint.pt").write_bytes(b"old")
    seen = []

    def write(d: Path) -> None:  # what is in the folder when the run executes
        seen.append(sorted(p.name for p in d.iterdir()))

    ex = FakeExecutor(write)
    s = rp.reproduce("smoke", tmp_path, grid=[FIG4], executor=ex, force=True, book=False,
                     progress=False)
    assert ex.names == [FIG4_ID] and seen == [[rp.LOCK_NAME]]  # emptied, lock kept
    assert not (run / rp.LOCK_NAME).exists()  # released: no stray file in a run folder
    assert s.failed and "result.json" in s.failed[0][2]  # the stand-in trained nothing


def test_help_says_force_deletes_and_has_no_rst(capsys):
    for argv in (["--help"], ["reproduce", "--help"]):
        with pytest.raises(SystemExit):
            main(argv)
        text = capsys.readouterr().out
        assert "``" not in text and ":func:" not in text and ":mod:" not in text
    assert "DELETE" in text and "--force" in text


# --------------------------------------------------------------------------- a full disk


def test_a_notebook_cut_short_is_never_moved_into_place(tmp_path: Path, monkeypatch):
    import papermill

    out = tmp_path / "run" / "experiment.ipynb"
    out.parent.mkdir()
    out.write_text(whole_notebook())  # an earlier, whole execution
    old = out.read_text()

    def disk_full(input_path, output_path, **kw):
        Path(output_path).write_text(whole_notebook()[:40])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(papermill, "execute_notebook", disk_full)
    o = rp.execute(rp.Task("t", "in.ipynb", str(out), {}))
    assert o.status == "failed" and "No space left on device" in o.message
    assert "could not be saved whole" in o.message
    assert out.read_text() == old and not rp.partial_notebooks(out)

    def cut_short_silently(input_path, output_path, **kw):
        Path(output_path).write_text(whole_notebook()[:40])

    monkeypatch.setattr(papermill, "execute_notebook", cut_short_silently)
    monkeypatch.setattr(rp, "hide_injected_parameters", lambda path: None)
    o = rp.execute(rp.Task("t", "in.ipynb", str(out), {}))
    assert o.status == "failed" and out.read_text() == old


@pytest.mark.parametrize("name, text", [
    ("experiment.ipynb", '{"cells": [{"cell_type": "co'),
    ("experiment.ipynb", None),
    ("result.json", '{"status": "compl'),
    ("result.json", "[]"),
    ("eval.json", '{"status": "completed", "params": {'),
    ("eval.json", '"completed"'),
    ("config.json", "{"),
])
def test_a_file_that_does_not_parse_is_never_trusted_as_done(tmp_path: Path, name, text):
    run = make_done(tmp_path)
    if text is None:
        (run / name).unlink()
    else:
        (run / name).write_text(text)
    [p] = rp.plan("smoke", tmp_path, grid=[FIG4])
    assert not p.done
    ex = FakeExecutor()
    s = rp.reproduce("smoke", tmp_path, grid=[FIG4], executor=ex, book=False, progress=False)
    assert ex.names == [FIG4_ID] and s.skipped == []


def test_an_unwritable_record_fails_the_run_not_the_grid(tmp_path: Path, monkeypatch):
    grid = [FIG4, Experiment("shapes3d", 0.0)]
    real = rp.atomic_write_json

    def full(path, obj):
        if FIG4_ID in str(path):
            raise OSError(28, "No space left on device")
        real(path, obj)

    monkeypatch.setattr(rp, "atomic_write_json", full)

    def write(d: Path) -> None:
        (d / "result.json").write_text(json.dumps({"status": "completed"}))

    s = rp.reproduce("smoke", tmp_path, grid=grid, executor=FakeExecutor(write), book=False,
                     progress=False)
    assert len(s.executed) == 2
    [(name, _, msg)] = s.failed
    assert name == FIG4_ID and "reproduce.json not written" in msg and "No space" in msg


def test_a_result_that_is_not_an_object_is_a_failure(tmp_path: Path):
    def write(d: Path) -> None:
        (d / "result.json").write_text("[1, 2]")

    s = rp.reproduce("smoke", tmp_path, grid=[FIG4], executor=FakeExecutor(write),
                     book=False, progress=False)
    assert [f[0] for f in s.failed] == [FIG4_ID] and "result.json" in s.failed[0][2]


def test_a_killed_workers_partial_that_does_not_parse_stays_aside(tmp_path: Path):
    out = tmp_path / "experiment.ipynb"
    (tmp_path / ".experiment.dead0001.tmp.ipynb").write_text('{"cells": [')
    assert rp.keep_partial(str(out)) == str(out) and not out.exists()


# --------------------------------------------------------------------------- smaller


def test_a_rerun_counts_the_diverged_runs_it_skips(tmp_path: Path):
    diverging = Experiment("shapes3d", 100.0)
    make_done(tmp_path, diverging, status="diverged")
    make_done(tmp_path)
    s = rp.reproduce("smoke", tmp_path, grid=[FIG4, diverging], executor=FakeExecutor(),
                     book=False, progress=False)
    assert s.executed == [] and len(s.skipped) == 2
    assert s.diverged == [diverging.run_id] and s.counts["diverged"] == 1
    assert "1 diverged" in s.report() and diverging.run_id in s.report()


def test_a_run_another_invocation_holds_is_left_alone(tmp_path: Path, monkeypatch):
    run = make_done(tmp_path)
    before = files(run)
    held = rp.lock_run(run)  # another invocation (flock: another open file description)
    assert isinstance(held, rp.Lock)
    ex = FakeExecutor()
    s = rp.reproduce("smoke", tmp_path, grid=[FIG4], executor=ex, force=True, book=False,
                     progress=False)
    assert ex.names == [] and files(run) == before  # not computed, not deleted
    assert [b[0] for b in s.busy] == [FIG4_ID] and f"pid {os.getpid()}" in s.busy[0][1]
    assert not s.ok and "BUSY " + FIG4_ID in s.report()
    held.release()
    s2 = rp.reproduce("smoke", tmp_path, grid=[FIG4], executor=ex, force=True, book=False,
                      progress=False)
    assert ex.names == [FIG4_ID] and s2.busy == []


def test_a_run_finished_meanwhile_by_another_invocation_is_not_redone(tmp_path: Path,
                                                                      monkeypatch):
    planned = rp.plan("smoke", tmp_path, grid=[FIG4])
    assert not planned[0].done
    make_done(tmp_path)  # the other invocation finishes it after we planned
    monkeypatch.setattr(rp, "plan", lambda *a, **k: planned)
    ex = FakeExecutor()
    s = rp.reproduce("smoke", tmp_path, grid=[FIG4], executor=ex, book=False, progress=False)
    assert ex.names == [] and s.skipped == [FIG4_ID]


def test_the_book_is_not_built_twice_at_once(tmp_path: Path):
    held = rp.lock_file(tmp_path / "smoke" / rp.BOOK_LOCK)
    s = rp.reproduce("smoke", tmp_path, grid=[], executor=FakeExecutor(), progress=False,
                     result_notebooks=[], teaching_notebooks=())
    assert [b[0] for b in s.busy] == ["book"] and s.book_html is None
    held.release()


def test_list_rejects_jobs_0_and_comments_out_runs_already_done(tmp_path: Path, capsys):
    assert main(["reproduce", "--profile", "smoke", "--list", "--only", "fig4",
                 "--jobs", "0"]) == 2
    assert "jobs must be an int >= 1" in capsys.readouterr().err
    make_done(tmp_path)
    assert main(["reproduce", "--profile", "smoke", "--list", "--out", str(tmp_path),
                 "--only", "fig2"]) == 0
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    done = [ln for ln in lines if FIG4_ID in ln]
    assert len(lines) == 3 and len(done) == 1 and done[0].startswith("# done (completed): ")
    assert all(ln.startswith("papermill ") for ln in lines if ln not in done)
    assert "3 runs, 1 already done" in captured.err


def test_ctrl_c_and_unwritable_folders_end_in_one_error_line(tmp_path: Path, monkeypatch,
                                                             capsys):
    # an output folder under a file: nothing can be written there
    (tmp_path / "file").write_text("")
    assert main(["reproduce", "--profile", "smoke", "--only", "fig4", "--out",
                 str(tmp_path / "file" / "runs"), "--inline"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot write to {tmp_path / 'file' / 'runs' / 'smoke'}")
    assert err.count("\n") == 1

    # a read-only folder (simulated: the tests may run as root, who writes anyway)
    def refused(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(rp.tempfile, "mkstemp", refused)
    assert main(["reproduce", "--profile", "smoke", "--only", "fig4", "--out",
                 str(tmp_path / "ro"), "--inline"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot write to") and "Permission denied" in err
    monkeypatch.undo()

    def interrupted(**kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(rp, "reproduce", interrupted)
    assert main(["reproduce", "--profile", "smoke", "--out", str(tmp_path)]) == 130
    err = capsys.readouterr().err
    assert err.startswith("error: interrupted") and err.count("\n") == 1


# --------------------------------------------------------------------------- progress


def test_heartbeat_reads_the_newest_step_of_each_running_run(tmp_path: Path):
    grid = [FIG4, Experiment("shapes3d", 0.0), Experiment("shapes3d", 0.1)]
    planned = rp.plan("smoke", tmp_path, grid=grid)
    a, b, c = (p.setup.run_dir for p in planned)
    for d in (a, b, c):
        d.mkdir(parents=True)
    (a / "log.jsonl").write_text('{"step": 1, "loss": 2.0}\n{"step": 4, "loss": 1.0}\n'
                                 '{"step": 5, "lo')  # a line being written
    (b / "log.jsonl").write_text("")  # started, nothing logged yet
    (c / "log.jsonl").write_text('{"step": 3}\n')
    old = time.time() - 3600
    os.utime(c / "log.jsonl", (old, old))  # an earlier invocation's log: not running now
    assert rp.last_step(a / "log.jsonl") == 4 and rp.last_step(b / "log.jsonl") is None
    assert rp.heartbeat(planned, since=time.time() - 60) == f"{FIG4_ID} 4/6"
    (c / "result.json").write_text("{}")  # trained: the notebook evaluates it now
    assert rp.heartbeat(planned, since=time.time() - 60) == \
        f"{FIG4_ID} 4/6; {c.name} evaluating"
    (c / "result.json").unlink()

    class Bar:
        def __init__(self):
            self.postfix: list[str] = []
            self.lock = threading.Lock()

        def set_postfix_str(self, s, refresh=True):
            with self.lock:
                self.postfix.append(s)

    bar = Bar()
    beat = rp._Heartbeat(bar, planned, interval=0.05).start()
    deadline = time.time() + 10
    while not any("running: " in s for s in bar.postfix) and time.time() < deadline:
        time.sleep(0.05)
    beat.finished(FIG4_ID, "completed")
    beat.stop()
    assert f"running: {FIG4_ID} 4/6" in bar.postfix[0]
    assert bar.postfix[-1] == f"{FIG4_ID}: completed"  # a finished run beats no more


def test_progress_names_the_book_phases(tmp_path: Path, monkeypatch):
    from lvae.report import book

    if not (rp.REPO / "_config.yml").is_file():
        pytest.skip("no _config.yml: the book build is skipped")
    postfixes: list[str] = []

    class Bar:
        def __init__(self, total=None, desc="", disable=False):
            self.desc = desc

        def set_postfix_str(self, s, refresh=True):
            postfixes.append(f"{self.desc}| {s}")

        def update(self, n=1):
            pass

        def close(self):
            pass

    monkeypatch.setattr(rp, "tqdm", Bar)
    monkeypatch.setattr(book, "build_book", lambda root: root / "html")
    s = rp.reproduce("smoke", tmp_path, grid=[FIG4], executor=FakeExecutor(), progress=True,
                     result_notebooks=[], teaching_notebooks=())
    assert s.book_html == tmp_path / "smoke" / "html"
    assert any(p.startswith("runs (smoke)| ") and FIG4_ID in p for p in postfixes)
    assert "book (smoke)| jupyter-book build (HTML)" in postfixes
    assert postfixes[-1] == "book (smoke)| built"


def test_the_revision_is_dirty_for_changed_code_not_for_shipped_results(tmp_path: Path):
    """Shipping a run writes results/: the next run shipped is not 'by changed code'."""
    import subprocess

    from lvae.store import git_revision

    def git(*args: str) -> None:
        subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", *args],
                       cwd=tmp_path, check=True, capture_output=True)

    (tmp_path / "lvae").mkdir()
    (tmp_path / "results").mkdir()
    (tmp_path / "lvae" / "a.py").write_text("x = 1\n")
    (tmp_path / "results" / "r.json").write_text("{}\n")
    git("init", "-q")
    git("add", ".")
    git("commit", "-qm", "one")
    clean = git_revision(tmp_path)
    assert len(clean) == 12 and "+" not in clean
    (tmp_path / "results" / "r.json").write_text('{"shipped": 1}\n')
    assert git_revision(tmp_path) == clean
    (tmp_path / "lvae" / "a.py").write_text("x = 2\n")
    assert git_revision(tmp_path) == clean + "+dirty"
    assert git_revision(tmp_path / "nowhere") == "unknown"
