"""The runner: skip what is done, record failures and divergence, go on, retry dead kernels.

Most tests drive :func:`lvae.report.reproduce.reproduce` with a stand-in experiment notebook that
takes the real notebook's parameters and validation but writes its result files in
milliseconds instead of training; one test runs the real notebook on a run made to diverge.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import nbformat as nbf
import pytest

import lvae.report.reproduce as rp
from lvae.report.grid import Experiment
from lvae.report.results import collect

FAKE_EXPERIMENT = '''
import json, os
from lvae.report.params import experiment_config
setup = experiment_config(dataset=dataset, alpha=alpha, beta=beta, neighborhood=neighborhood,
                          seed=seed, profile=profile, out_dir=out_dir, reduction=reduction,
                          threads=threads)
with open(os.path.join(out_dir, "calls.txt"), "a") as f:
    f.write(setup.run_id + "\\n")
if alpha == 13:
    raise RuntimeError("boom: a notebook error")
d = setup.run_dir
d.mkdir(parents=True, exist_ok=True)
(d / "config.json").write_text(setup.config.to_json())
status = "diverged" if alpha >= 100 else "completed"
(d / "result.json").write_text(json.dumps({"status": status}))
if status == "completed":
    (d / "eval.json").write_text(json.dumps({"status": "completed",
                                             "dci_nocolor": {"disentanglement": 0.5}}))
else:  # evaluate() records a divergence in eval.json, as the real notebook does
    (d / "eval.json").write_text(json.dumps({"status": "diverged"}))
'''

PARAMS = '''dataset = "shapes3d"
alpha = 1.0
beta = 1.0
neighborhood = "synthetic"
seed = 0
profile = "smoke"
out_dir = "runs"
reduction = None
threads = None'''

FAKE_RESULTS = '''
from lvae.report.results import collect, paper_vs_ours
df = collect(out_dir, profile=profile, imported=None)
paper_vs_ours(df, "table1", csv=f"{out_dir}/table1.csv")
'''


def notebook(path: Path, params: str, body: str) -> Path:
    nb = nbf.v4.new_notebook(cells=[nbf.v4.new_code_cell(params,
                                                         metadata={"tags": ["parameters"]}),
                                    nbf.v4.new_code_cell(body)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbf.write(nb, path)
    return path


@pytest.fixture
def fake(tmp_path: Path) -> Path:
    return notebook(tmp_path / "fake_experiment.ipynb", PARAMS, FAKE_EXPERIMENT)


def calls(out: Path) -> list[str]:
    p = out / "calls.txt"
    return p.read_text().split() if p.exists() else []


GRID = [Experiment("shapes3d", 0.0), Experiment("shapes3d", 1.0),
        Experiment("shapes3d", 100.0)]


def test_second_run_skips_finished_runs(tmp_path: Path, fake: Path):
    out = tmp_path / "runs"
    s = rp.reproduce("smoke", out, grid=GRID, notebook=fake, book=False, progress=False)
    assert s.ok and len(s.executed) == 3 and s.skipped == []
    assert s.diverged == ["shapes3d-a1e+02-b1-synthetic-s0"]  # a result, not a failure
    run = out / "smoke" / "shapes3d-a1e+00-b1-synthetic-s0"
    assert (run / "experiment.ipynb").is_file()
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp.ipynb")]
    assert json.loads((run / "reproduce.json").read_text())["status"] == "completed"
    mtime = (run / "result.json").stat().st_mtime_ns

    s2 = rp.reproduce("smoke", out, grid=GRID, notebook=fake, book=False, progress=False)
    assert s2.executed == [] and len(s2.skipped) == 3 and len(calls(out)) == 3
    assert (run / "result.json").stat().st_mtime_ns == mtime

    # a run killed between training and evaluation: only that one is redone, and the
    # temporary notebook the killed execution left behind is cleared
    (run / "eval.json").unlink()
    (run / ".experiment.dead0001.tmp.ipynb").write_text("{}")
    s3 = rp.reproduce("smoke", out, grid=GRID, notebook=fake, book=False, progress=False)
    assert s3.executed == [run.name] and calls(out)[-1] == run.name
    assert not list(run.glob(".*.tmp.ipynb"))

    # an evaluation made with other sample counts (another profile's) is redone
    vanilla = out / "smoke" / "shapes3d-a0e+00-b1-synthetic-s0"
    (vanilla / "eval.json").write_text(json.dumps({"status": "completed",
                                                   "params": {"num_train": 1, "seed": 0}}))
    s4 = rp.reproduce("smoke", out, grid=GRID, notebook=fake, book=False, progress=False)
    assert s4.executed == [vanilla.name]

    s5 = rp.reproduce("smoke", out, grid=GRID, notebook=fake, book=False, progress=False,
                      force=True)
    assert len(s5.executed) == 3 and len(calls(out)) == 8


def test_a_failed_run_is_recorded_and_the_rest_go_on(tmp_path: Path, fake: Path):
    out = tmp_path / "runs"
    grid = [Experiment("shapes3d", 13.0), *GRID[:2]]
    s = rp.reproduce("smoke", out, grid=grid, notebook=fake, book=False, progress=False)
    assert not s.ok and len(s.executed) == 3
    [(name, nb, msg)] = s.failed
    assert name == "shapes3d-a1.3e+01-b1-synthetic-s0" and "boom" in msg
    assert Path(nb).is_file() and "boom" in Path(nb).read_text()  # the partial notebook
    assert "FAILED shapes3d-a1.3e+01" in s.report() and nb in s.report()
    df = collect(out, imported=None)
    assert sorted(df.status) == ["completed", "completed", "failed"]


def test_book_goes_on_after_divergence(tmp_path: Path, fake: Path, monkeypatch):
    from lvae.report import book

    out = tmp_path / "runs"
    results_nb = notebook(tmp_path / "results_fake.ipynb", 'profile = "quick"\nout_dir = "x"',
                          FAKE_RESULTS)
    built = []
    monkeypatch.setattr(book, "build_book", lambda root: built.append(root) or root / "html")
    missing = "notebooks/results_not_written_yet.ipynb"
    with pytest.warns(UserWarning, match="results_not_written_yet"):
        s = rp.reproduce("smoke", out, grid=GRID, notebook=fake, progress=False,
                         result_notebooks=[results_nb, missing], teaching_notebooks=())
    assert s.ok, s.report()
    executed = out / "smoke" / "book" / "notebooks" / "results_fake.ipynb"
    assert executed.is_file() and '"profile": "smoke"' in executed.read_text()
    injected = [c for c in nbf.read(executed, as_version=4).cells
                if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and "remove-cell" in injected[0].metadata["tags"]  # not shown
    assert "diverged" in (out / "table1.csv").read_text()
    if not (rp.REPO / "_config.yml").is_file():
        pytest.skip("no _config.yml yet: the book build itself is skipped")
    assert built == [out / "smoke"] and s.book_html == out / "smoke" / "html"

    def broken(root):
        raise FileNotFoundError("no executed copy of ['notebooks/results_table2.ipynb']")

    monkeypatch.setattr(book, "build_book", broken)
    s2 = rp.reproduce("smoke", out, grid=GRID, notebook=fake, progress=False,
                      result_notebooks=[results_nb], teaching_notebooks=())
    assert s2.skipped and [f[0] for f in s2.failed] == ["book"]
    assert "results_table2" in s2.failed[0][2]


def test_dead_kernel_is_retried_then_failed(tmp_path: Path, monkeypatch):
    import papermill

    attempts = []

    whole = nbf.writes(nbf.v4.new_notebook())  # a cut-short file is never moved into place

    def flaky(input_path, output_path, **kw):
        attempts.append(1)
        Path(output_path).write_text(whole)
        if len(attempts) < 2:
            raise RuntimeError("Kernel died before replying to kernel_info")
        return None

    monkeypatch.setattr(papermill, "execute_notebook", flaky)
    monkeypatch.setattr(rp.time, "sleep", lambda s: None)
    task = rp.Task("t", "in.ipynb", str(tmp_path / "o" / "out.ipynb"), {})
    o = rp.execute(task)
    assert (o.status, o.attempts) == ("executed", 2)

    def dead(input_path, output_path, **kw):
        Path(output_path).write_text(whole)
        raise OSError("zmq: Address already in use")

    monkeypatch.setattr(papermill, "execute_notebook", dead)
    o = rp.execute(task)
    assert (o.status, o.attempts) == ("failed", rp.KERNEL_RETRIES + 1)
    assert "Address already in use" in o.message and Path(o.notebook).is_file()
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["out.ipynb"]


def test_dask_executor_runs_tasks_in_worker_processes(tmp_path: Path, fake: Path):
    out = tmp_path / "runs"
    ex = rp.DaskExecutor(jobs=2)
    try:
        assert ex.in_flight == 2  # the local cluster: one task per worker at a time
        s = rp.reproduce("smoke", out, grid=GRID, notebook=fake, book=False, progress=False,
                         jobs=2, executor=ex)
    finally:
        ex.close()
    assert s.ok and len(s.executed) == 3 and len(s.diverged) == 1
    nb = out / "smoke" / "shapes3d-a0e+00-b1-synthetic-s0" / "experiment.ipynb"
    assert '"threads": ' in nb.read_text()  # each kernel got its share of the cores


def test_real_notebook_records_divergence(tmp_path: Path):
    out = tmp_path / "runs"
    grid = [Experiment("shapes3d", 1e6, reduction="sum")]
    s = rp.reproduce("smoke", out, grid=grid, book=False, progress=False)
    assert s.ok, s.report()
    assert s.diverged == ["shapes3d-a1e+06-b1-synthetic-s0-rsum"]
    run = out / "smoke" / s.diverged[0]
    assert json.loads((run / "result.json").read_text())["status"] == "diverged"
    assert json.loads((run / "eval.json").read_text())["status"] == "diverged"  # no metrics
    assert collect(out, imported=None).status.tolist() == ["diverged"]
    again = rp.reproduce("smoke", out, grid=grid, book=False, progress=False)
    assert again.skipped == s.diverged
    assert os.path.getsize(run / "experiment.ipynb") > 0


def test_cli_exit_code_says_whether_runs_failed(tmp_path: Path, monkeypatch, capsys):
    from lvae.__main__ import main

    seen = {}

    def fake(**kw):
        seen.update(kw)
        s = rp.Summary(kw["profile"], Path(kw["out"]))
        if kw["force"]:
            s.failed.append(("r1", "/x/experiment.ipynb", "boom"))
        return s

    monkeypatch.setattr(rp, "reproduce", fake)
    assert main(["reproduce", "--profile", "smoke", "--out", str(tmp_path), "--jobs", "3",
                 "--only", "table2", "--no-book", "--seeds", "2"]) == 0
    assert (seen["jobs"], seen["only"], seen["book"], seen["seeds"]) == (3, "table2", False, 2)
    assert seen["runs"] and not seen["inline"] and seen["resources"] is None
    assert main(["reproduce", "--book-only", "--resources", "GPU=1", "--inline"]) == 0
    assert (seen["runs"], seen["resources"], seen["inline"]) == (False, {"GPU": 1.0}, True)
    assert main(["reproduce", "--resources", "GPU"]) == 2  # a clear error, no traceback
    assert "--resources must look like GPU=1" in capsys.readouterr().err
    assert main(["reproduce", "--profile", "smoke", "--force"]) == 1
    assert "FAILED r1: boom" in capsys.readouterr().out


def test_book_only_trains_nothing(tmp_path: Path, fake: Path):
    out = tmp_path / "runs"
    s = rp.reproduce("smoke", out, grid=GRID, notebook=fake, book=False, progress=False,
                     runs=False, inline=True)
    assert s.ok and s.executed == [] and len(s.pending) == 3 and calls(out) == []
    assert "3 not run (book only)" in s.report()


def test_executor_options_are_checked():
    with pytest.raises(ValueError, match="--inline runs one task at a time"):
        rp.make_executor(jobs=2, inline=True)
    with pytest.raises(ValueError, match="jobs must be an int >= 1"):
        rp.make_executor(jobs=0)
    assert isinstance(rp.make_executor(inline=True), rp.SequentialExecutor)
    assert rp.parse_resources("GPU=1, MEM=16e9") == {"GPU": 1.0, "MEM": 1.6e10}


def test_dask_gets_resources_for_training_only_and_longest_runs_first(tmp_path: Path,
                                                                     monkeypatch):
    """What the Dask executor submits: the GPU request goes with the training runs, never
    with the book's pages, and every task carries its priority (a fake client records)."""
    submitted = []

    class Future:
        def __init__(self, task):
            self.task = task

        def result(self):
            return rp.Outcome(self.task.name, "executed", self.task.output)

    class Client:
        def submit(self, fn, task, **kw):
            submitted.append((task.name, kw["resources"], kw["priority"]))
            return Future(task)

    class AsCompleted(list):
        add = list.append

    ex = object.__new__(rp.DaskExecutor)  # no cluster: only map() is under test
    ex.client, ex.resources, ex.retries, ex.in_flight = Client(), {"GPU": 1.0}, 0, None
    monkeypatch.setattr("distributed.as_completed", AsCompleted)
    grid = [Experiment("shapes3d", 0.0), Experiment("carsnorb", 1.0, neighborhood="latent_knn"),
            Experiment("shapes3d", 1.0), Experiment("carsnorb", 0.0, neighborhood="latent_knn")]
    tasks = [p.task for p in rp.plan("smoke", tmp_path, grid=grid)]
    tasks += rp.book_tasks("smoke", tmp_path, results=[], teaching=None, force=True)
    assert len(list(ex.map(tasks))) == len(tasks) > 4
    runs, pages = submitted[:4], submitted[4:]
    assert runs == [("carsnorb-a1e+00-b1-latent_knn-s0", {"GPU": 1.0}, 3),
                    ("shapes3d-a1e+00-b1-synthetic-s0", {"GPU": 1.0}, 2),
                    ("carsnorb-a0e+00-b1-latent_knn-s0", {"GPU": 1.0}, 1),
                    ("shapes3d-a0e+00-b1-synthetic-s0", {"GPU": 1.0}, 0)]
    assert pages and all(name.startswith("book:") and res is None for name, res, _ in pages)
    # the pages by their cost among the runs' ranks: the study page (a replay of 300 steps)
    # with the CarsNORB vanilla run, teach_local_vae with the 3D Shapes baselines, the rest
    # after every run
    assert [prio for _, _, prio in pages] == sorted((prio for _, _, prio in pages), reverse=True)
    assert all(prio == rp.PAGE_PRIORITY.get(name.removeprefix("book:"), -1)
               for name, _, prio in pages)
    assert rp.PAGE_PRIORITY == {"results_study": 1, "teach_local_vae": 0}


def test_kernels_do_not_inherit_the_dask_workers_malloc_trimming(tmp_path: Path, monkeypatch):
    """A Dask worker's MALLOC_TRIM_THRESHOLD_ (set by its nanny) made training 1.9x slower
    in the kernels it started: execute() must start kernels without it."""
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")
    nb = notebook(tmp_path / "env.ipynb", "out = ''",
                  "import os\nopen(out, 'w').write(repr(os.environ.get('MALLOC_TRIM_THRESHOLD_')))")
    seen = tmp_path / "seen.txt"
    o = rp.execute(rp.Task("env", str(nb), str(tmp_path / "env.out.ipynb"), {"out": str(seen)}))
    assert o.status == "executed", o.message
    assert seen.read_text() == "None"


class _Recording(rp.SequentialExecutor):
    """Runs tasks in this process, recording the names of each ``map`` call's tasks."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []

    def map(self, tasks):
        self.batches.append([t.name for t in tasks])
        return super().map(tasks)


def test_pages_that_read_no_run_are_executed_beside_the_grid(tmp_path: Path, fake: Path,
                                                            monkeypatch):
    """Teaching pages and RUN_FREE_PAGES go to the executor with the runs (one map, so one
    longest-first order); result pages that read the runs only after the last run; every
    page is executed once and the book is built after them."""
    from lvae.report import book

    out = tmp_path / "runs"
    teach = notebook(tmp_path / "teach_fake.ipynb", "x = 1", "y = x + 1")
    free = notebook(tmp_path / "results_free.ipynb", 'profile = "quick"\nout_dir = "x"',
                    "z = 3")
    reads = notebook(tmp_path / "results_fake.ipynb", 'profile = "quick"\nout_dir = "x"',
                     FAKE_RESULTS)
    monkeypatch.setattr(rp, "RUN_FREE_PAGES", (str(free),))
    built = []
    monkeypatch.setattr(book, "build_book", lambda root: built.append(root) or root / "html")
    ex = _Recording()
    s = rp.reproduce("smoke", out, grid=GRID, notebook=fake, progress=False, executor=ex,
                     result_notebooks=[free, reads], teaching_notebooks=[teach])
    assert s.ok, s.report()
    runs = [e.run_id for e in GRID]
    assert ex.batches == [[*runs, "book:teach_fake", "book:results_free"],
                          ["book:results_fake"]]
    pages = out / "smoke" / "book" / "notebooks"
    assert sorted(p.name for p in pages.iterdir()) == ["results_fake.ipynb",
                                                       "results_free.ipynb", "teach_fake.ipynb"]
    if (rp.REPO / "_config.yml").is_file():
        assert built == [out / "smoke"]
    assert not (out / "smoke" / rp.BOOK_LOCK).exists()  # released

    # nothing left to run: every page after the (empty) grid, as before
    ex2 = _Recording()
    s2 = rp.reproduce("smoke", out, grid=GRID, notebook=fake, progress=False, executor=ex2,
                      result_notebooks=[free, reads], teaching_notebooks=[teach], force=False)
    assert s2.ok and len(s2.skipped) == 3
    assert ex2.batches == [["book:results_free", "book:results_fake"]]  # teaching up to date

    # a failed page beside the grid is recorded like any page
    broken = notebook(tmp_path / "results_free.ipynb", 'profile = "quick"\nout_dir = "x"',
                      "raise RuntimeError('page boom')")
    s3 = rp.reproduce("smoke", out, grid=GRID, notebook=fake, progress=False,
                      executor=_Recording(), result_notebooks=[broken, reads],
                      teaching_notebooks=[teach], force=True)
    assert [name for name, _, _ in s3.failed] == ["book:results_free"]
    assert "page boom" in s3.failed[0][2]


def test_last_pages_are_executed_after_every_other_page_with_the_builds_start(
        tmp_path: Path, fake: Path, monkeypatch):
    """A LAST_PAGES page (the execution statistics) reads the other pages' papermill
    records, so it runs in a batch of its own after them, with ``since``: the time this
    reproduce started, before any of its notebooks did."""
    from datetime import datetime

    from lvae.report import book
    from lvae.store import now

    out = tmp_path / "runs"
    page_params = 'profile = "quick"\nout_dir = "x"'
    free = notebook(tmp_path / "results_free.ipynb", page_params, "z = 3")
    reads = notebook(tmp_path / "results_fake.ipynb", page_params, FAKE_RESULTS)
    stats = notebook(tmp_path / "stats_fake.ipynb", page_params + '\nsince = ""',
                     "assert since")
    monkeypatch.setattr(rp, "RUN_FREE_PAGES", (str(free),))
    monkeypatch.setattr(rp, "LAST_PAGES", (str(stats),))
    monkeypatch.setattr(book, "build_book", lambda root: root / "html")
    ex = _Recording()
    before = now()
    s = rp.reproduce("smoke", out, grid=GRID[:1], notebook=fake, progress=False, executor=ex,
                     result_notebooks=[stats, free, reads], teaching_notebooks=())
    assert s.ok, s.report()
    assert ex.batches == [[GRID[0].run_id, "book:results_free"], ["book:results_fake"],
                          ["book:stats_fake"]]
    done = nbf.read(out / "smoke" / "book" / "notebooks" / "stats_fake.ipynb", as_version=4)
    since = done.metadata["papermill"]["parameters"]["since"]
    started = [nbf.read(p, as_version=4).metadata["papermill"]["start_time"]
               for p in (out / "smoke").rglob("*.ipynb")]
    assert datetime.fromisoformat(before) <= datetime.fromisoformat(since) <= min(
        datetime.fromisoformat(t) for t in started)
    tasks = rp.book_tasks("smoke", out, [stats, reads], teaching=(), since=since)
    assert [(t.name, t.last, "since" in t.parameters) for t in tasks] == [
        ("book:stats_fake", True, True), ("book:results_fake", False, False)]


def test_the_run_free_pages_read_no_run():
    """A page beside the grid must not read the runs being computed: a RUN_FREE_PAGES page
    names ``out_dir`` (the runs' root that reproduce injects) in its parameters cell only."""
    assert set(rp.RUN_FREE_PAGES) <= set(rp.RESULT_NOTEBOOKS)
    for rel in rp.RUN_FREE_PAGES:
        nb = nbf.read(rp.REPO / rel, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert "parameters" in code[0].metadata.get("tags", [])
        assert "out_dir" in code[0].source
        assert not [c.source[:80] for c in code[1:] if "out_dir" in c.source], rel


def test_the_local_cluster_gets_exact_longest_first_list_scheduling(tmp_path: Path,
                                                                   monkeypatch):
    """With ``in_flight`` = 2 workers, map() submits two tasks, then the next by priority
    whenever one ends: on a simulated clock (each task takes its kind's measured seconds)
    every task starts when list scheduling in priority order starts it, computed apart here
    with a heap of worker free times, and never more than 2 tasks are in flight."""
    import heapq

    from lvae.report.grid import experiments

    seconds = {3: 410.0, 2: 290.0, 1: 120.0, 0: 49.0}  # quick, per cost_rank (measured)
    tasks = [p.task for p in rp.plan("smoke", tmp_path, grid=experiments(seeds=2))]
    tasks += [rp.Task("book:results_study", "s.ipynb", "o.ipynb", {}, priority=1)]
    cost = {t.name: seconds[t.priority] + 7.0 * (i % 3) for i, t in enumerate(tasks)}
    clock = {"now": 0.0}
    started: dict[str, float] = {}

    class Future:
        def __init__(self, task):
            self.task = task
            self.end = clock["now"] + cost[task.name]
            started[task.name] = clock["now"]

        def result(self):
            return rp.Outcome(self.task.name, "executed", self.task.output)

    class Client:
        def submit(self, fn, task, **kw):
            return Future(task)

    class AsCompleted:  # yields the in-flight future that ends first, moving the clock
        def __init__(self, futs):
            self.running = list(futs)
            self.most = len(self.running)

        def add(self, fut):
            self.running.append(fut)
            self.most = max(self.most, len(self.running))

        def __iter__(self):
            while self.running:
                fut = min(self.running, key=lambda f: f.end)
                self.running.remove(fut)
                clock["now"] = fut.end
                yield fut
            seen.append(self.most)

    seen: list[int] = []
    monkeypatch.setattr("distributed.as_completed", AsCompleted)
    ex = object.__new__(rp.DaskExecutor)
    ex.client, ex.resources, ex.retries, ex.in_flight = Client(), None, 0, 2
    outcomes = list(ex.map(tasks))
    assert sorted(o.name for o in outcomes) == sorted(t.name for t in tasks)
    assert seen == [2]

    free = [0.0, 0.0]  # list scheduling, longest first: each task to the first free worker
    expected = {}
    for t in sorted(tasks, key=lambda t: -t.priority):
        at = heapq.heappop(free)
        expected[t.name] = at
        heapq.heappush(free, at + cost[t.name])
    assert started == pytest.approx(expected)
    assert clock["now"] == pytest.approx(max(free))  # the grid ends when LPT says
