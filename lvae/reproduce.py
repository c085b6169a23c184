"""Reproduce the paper: every run of the grid as an executed notebook, then the book.

``python -m lvae reproduce --profile quick`` (or :func:`reproduce`) does, in order:

1. For every experiment of :mod:`lvae.grid` (``--only`` selects tables or figures), execute
   ``notebooks/experiment.ipynb`` with papermill into
   ``<out>/<profile>/<run_id>/experiment.ipynb``, parameters injected, each in its own
   kernel process. A run whose result.json (and eval.json, unless it diverged) exist for
   the same config is skipped; ``force`` deletes the run folder and starts it again.
2. Execute the book's pages into the staged book of :mod:`lvae.figures`,
   ``<out>/<profile>/book/notebooks/`` (the repository's layout, so ``_toc.yml`` needs no
   change): the teaching pages (once) and the result pages (:data:`RESULT_NOTEBOOKS`, every
   time) with ``profile`` and ``out_dir`` injected. The executed copies are build products;
   the committed notebooks stay without outputs.
3. ``lvae.figures.build_book``: stage ``_config.yml``, ``_toc.yml`` and ``book/`` beside
   them and run ``jupyter-book build``; the HTML is in ``<out>/<profile>/book/_build/html``.

Every execution goes through one seam, :class:`Executor`. The grid runs on Dask
distributed (:class:`DaskExecutor`): by default a ``LocalCluster`` on loopback of ``jobs``
separate worker processes, one notebook at a time each; ``scheduler="tcp://host:port"``
submits to a running cluster instead (for Slurm or PBS, start one with dask-jobqueue: see
``book/reproduce.md``), and ``resources={"GPU": 1}`` asks the scheduler for workers that
declared such a resource (the paper profile on GPU nodes). :class:`SequentialExecutor`
(``inline=True``, ``--inline``) runs the same tasks in this process, for debugging.

A task is one papermill execution, idempotent by its parameters: a kernel that dies or
cannot start (the "Address already in use" port race of parallel papermill,
nteract/papermill#511) is retried :data:`KERNEL_RETRIES` times inside the task; a worker
process that dies mid-task is replaced by its nanny and the task rescheduled up to
:data:`KERNEL_RETRIES` times by the scheduler; after that the run is recorded as failed with
the path to its partial notebook. A failure never stops the other runs; a diverged run is a
result, not a failure. Notebooks are written to a temporary name and moved into place, so a
kill at any moment leaves either the old file or the new one, and a rerun redoes only what
is missing (training itself resumes from its last checkpoint).
"""

from __future__ import annotations

import json
import os
import random
import shlex
import shutil
import time
import uuid
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tqdm.auto import tqdm

from lvae.config import profile as get_profile
from lvae.grid import Experiment, default_seeds, experiments
from lvae.params import ExperimentSetup, experiment_config
from lvae.store import atomic_write_json, now

REPO = Path(__file__).resolve().parent.parent
EXPERIMENT_NOTEBOOK = REPO / "notebooks" / "experiment.ipynb"

#: The book's result pages, executed after the grid with ``profile`` and ``out_dir``
#: injected (absolute ``out_dir``; the runs are in ``<out_dir>/<profile>/``). Relative to
#: the repository root; ones not yet present are skipped with a warning.
RESULT_NOTEBOOKS: tuple[str, ...] = (
    "notebooks/results_table1.ipynb",
    "notebooks/results_table2.ipynb",
    "notebooks/results_table5.ipynb",
    "notebooks/results_traversal.ipynb",
    "notebooks/results_explore_alpha.ipynb",
)

#: How many times a task whose kernel died or could not start is tried again.
KERNEL_RETRIES = 2

#: Exception texts that mean "the kernel, not the notebook, failed": worth a retry.
_KERNEL_ERRORS = ("Address already in use", "Kernel died", "kernel died", "DeadKernelError",
                  "Kernel didn't respond", "Kernel is dead", "KernelDied")


# --------------------------------------------------------------------------- tasks


@dataclass(frozen=True)
class Task:
    """One papermill execution (picklable: it travels to Dask workers)."""

    name: str
    notebook: str
    output: str
    parameters: dict[str, Any]
    cwd: str | None = None
    retries: int = KERNEL_RETRIES
    timeout_s: int | None = None  # per cell; None: no limit
    accelerated: bool = False  # asks for the executor's resources (a GPU): training runs do
    priority: int = 0  # larger starts first, so the longest runs do not finish the grid alone

    def command(self) -> str:
        """The equivalent papermill command line."""
        parts = ["papermill", self.notebook, self.output]
        for k, v in self.parameters.items():
            parts += ["-p", k, _cli_value(v)]
        if self.cwd:
            parts += ["--cwd", self.cwd]
        return shlex.join(parts)


@dataclass(frozen=True)
class Outcome:
    """What became of a task: ``executed`` or ``failed`` (with the notebook to look at)."""

    name: str
    status: str
    notebook: str
    message: str = ""
    attempts: int = 1
    wall_s: float = 0.0


def _cli_value(v: Any) -> str:
    # papermill -p parses its text as a Python/YAML literal: None -> "None", 0.001 -> "0.001"
    return "None" if v is None else str(v)


def _kernel_failure(exc: BaseException) -> bool:
    text = f"{type(exc).__name__}: {exc}"
    return type(exc).__name__ in ("DeadKernelError", "ZMQError") or any(
        s in text for s in _KERNEL_ERRORS)


#: Variables a notebook's kernel must not inherit from a Dask worker. The nanny sets
#: ``MALLOC_TRIM_THRESHOLD_=65536`` in its workers (``distributed.nanny.pre-spawn-environ``)
#: so that a long-lived worker hands freed memory back to the OS; a training kernel that
#: inherits it hands back and page-faults in again the ~200 MB a meta-step allocates, every
#: step: the step ran 1.9x slower with it (benchmarks/meta_step.py, 32x32, 1 thread: vanilla
#: 339 ms against 177 ms), and quick Local VAE runs took 1.3 s a step on the grid against
#: 0.55 s alone. glibc reads the variable at process start, so dropping it from the worker's
#: ``os.environ`` changes its kernels only, not the worker.
KERNEL_ENV_DROP = ("MALLOC_TRIM_THRESHOLD_",)


def execute(task: Task) -> Outcome:
    """Run one notebook with papermill: temp file, then ``os.replace`` onto ``task.output``.

    Returns ``failed`` (never raises) for an error in the notebook; retries a dead or
    unstartable kernel ``task.retries`` times. The partial notebook of a failure is moved
    to ``task.output`` too, so the summary can point at the cell that failed.
    """
    import papermill as pm

    for name in KERNEL_ENV_DROP:  # the kernel papermill starts inherits this environment
        os.environ.pop(name, None)
    out = Path(task.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    for stale in partial_notebooks(out):  # left by a killed execution
        stale.unlink(missing_ok=True)
    tmp = out.with_name(f".{out.stem}.{uuid.uuid4().hex[:8]}{_PARTIAL_SUFFIX}")
    t0 = time.perf_counter()
    attempt = 0
    while True:
        attempt += 1
        try:
            pm.execute_notebook(task.notebook, str(tmp), parameters=task.parameters,
                                cwd=task.cwd, progress_bar=False, kernel_name="python3",
                                execution_timeout=task.timeout_s)
            hide_injected_parameters(tmp)
            os.replace(tmp, out)
            return Outcome(task.name, "executed", str(out), attempts=attempt,
                           wall_s=time.perf_counter() - t0)
        except Exception as exc:  # the notebook's error, or the kernel's
            retry = _kernel_failure(exc) and attempt <= task.retries
            if retry:
                time.sleep(random.uniform(0.5, 2.0) * attempt)  # de-synchronise port grabs
                continue
            if tmp.exists():
                os.replace(tmp, out)
            return Outcome(task.name, "failed", str(out), _short(exc), attempt,
                           time.perf_counter() - t0)


def hide_injected_parameters(path: str | Path) -> None:
    """Tag papermill's "# Parameters" cell ``remove-cell``, so the book's pages do not show
    it (the executed notebook still holds it, for whoever reruns the page)."""
    import nbformat

    try:
        nb = nbformat.read(str(path), as_version=4)
    except Exception:  # not a notebook (a stand-in in tests): leave it as it is
        return
    hit = False
    for cell in nb.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            cell.metadata["tags"] = [*tags, "remove-cell"]
            hit = True
    if hit:
        nbformat.write(nb, str(path))


def _short(exc: BaseException) -> str:
    ename, evalue = getattr(exc, "ename", None), getattr(exc, "evalue", None)
    text = f"{ename}: {evalue}" if ename else f"{type(exc).__name__}: {exc}"
    return text.strip().splitlines()[-1][:500] if text.strip() else type(exc).__name__


# --------------------------------------------------------------------------- executors


class Executor(Protocol):
    """Runs tasks and yields their outcomes as they finish (in any order)."""

    def map(self, tasks: Sequence[Task]) -> Iterator[Outcome]: ...

    def close(self) -> None: ...


class SequentialExecutor:
    """One task after another in this process (each notebook still gets its own kernel)."""

    def map(self, tasks: Sequence[Task]) -> Iterator[Outcome]:
        for t in tasks:
            yield execute(t)

    def close(self) -> None:
        pass


class DaskExecutor:
    """Tasks on Dask distributed, each a papermill execution (module docstring).

    Without ``address``: a ``LocalCluster`` on 127.0.0.1 of ``jobs`` worker processes with
    one thread each (so one notebook at a time per worker) under nannies, which replace a
    worker that dies; the scheduler reschedules its task up to :data:`KERNEL_RETRIES` times
    (``distributed.scheduler.allowed-failures``) before giving up with ``KilledWorker``.
    With ``address``: that cluster's scheduler (its own ``allowed-failures`` applies) and
    ``retries`` on every submitted task. ``resources`` (e.g. ``{"GPU": 1}``) is asked for
    by the tasks marked ``accelerated`` (the training runs); the book's pages need no
    accelerator. Tasks are submitted with their ``priority``: the longest runs start first.
    """

    def __init__(self, jobs: int = 1, address: str | None = None,
                 resources: Mapping[str, float] | None = None) -> None:
        import dask
        from distributed import Client, LocalCluster

        self._cluster = None
        self.resources = dict(resources) if resources else None
        self.retries = KERNEL_RETRIES if address else 0  # local: allowed-failures does it
        if address:
            self.client = Client(address)
        else:
            with dask.config.set({"distributed.scheduler.allowed-failures": KERNEL_RETRIES}):
                self._cluster = LocalCluster(n_workers=jobs, threads_per_worker=1,
                                             processes=True, host="127.0.0.1",
                                             dashboard_address="127.0.0.1:0", memory_limit=0,
                                             resources=self.resources)
            self.client = Client(self._cluster)

    def map(self, tasks: Sequence[Task]) -> Iterator[Outcome]:
        from distributed import as_completed

        futures = {}
        # highest priority first: the first tasks go straight to idle workers, before the
        # scheduler has seen the others' priorities
        for t in sorted(tasks, key=lambda t: -t.priority):
            res = self.resources if t.accelerated else None
            fut = self.client.submit(execute, t, key=f"{t.name}-{uuid.uuid4().hex[:6]}",
                                     pure=False, retries=self.retries, resources=res,
                                     priority=t.priority)
            futures[fut] = t
        for fut in as_completed(futures):
            t = futures[fut]
            try:
                yield fut.result()
            except Exception as exc:  # KilledWorker, a lost connection: not the notebook
                yield Outcome(t.name, "failed", keep_partial(t.output),
                              f"{_short(exc)} (the worker died {KERNEL_RETRIES + 1} times "
                              "running it)", KERNEL_RETRIES + 1)

    def close(self) -> None:
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()


#: The name :func:`execute` gives a notebook being written: ``.NAME.<8 hex>.tmp.ipynb``.
_PARTIAL_SUFFIX = ".tmp.ipynb"


def partial_notebooks(output: str | Path) -> list[Path]:
    """The temporary notebooks executions of ``output`` left beside it, oldest first."""
    out = Path(output)
    if not out.parent.is_dir():
        return []
    return sorted(out.parent.glob(f".{out.stem}.*{_PARTIAL_SUFFIX}"),
                  key=lambda p: p.stat().st_mtime)


def keep_partial(output: str) -> str:
    """Move the newest partial notebook a killed execution left (papermill saves after
    every cell) onto ``output``, so a failure points at how far it got; returns
    ``output``."""
    out = Path(output)
    partial = partial_notebooks(out)
    if partial:
        os.replace(partial[-1], out)
    return str(out)


def parse_resources(text: str | None) -> dict[str, float] | None:
    """``"GPU=1,MEM=16e9"`` -> ``{"GPU": 1.0, "MEM": 1.6e10}`` (Dask worker resources)."""
    if not text:
        return None
    out = {}
    for item in text.split(","):
        name, sep, value = item.partition("=")
        try:
            if not sep or not name.strip():
                raise ValueError
            out[name.strip()] = float(value)
        except ValueError:
            raise ValueError(f"--resources must look like GPU=1 or GPU=1,MEM=16e9, got "
                             f"{text!r}") from None
    return out


def make_executor(jobs: int = 1, scheduler: str | None = None, inline: bool = False,
                  resources: Mapping[str, float] | None = None) -> Executor:
    """The grid's executor: Dask (a LocalCluster of ``jobs`` workers, or ``scheduler``), or
    with ``inline`` one task after another in this process (debugging; ``jobs`` must be 1)."""
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise ValueError(f"jobs must be an int >= 1, got {jobs!r}")
    if inline:
        if jobs != 1 or scheduler is not None:
            raise ValueError("--inline runs one task at a time in this process: it takes "
                             "neither --jobs > 1 nor --scheduler")
        return SequentialExecutor()
    if scheduler is not None and not scheduler.strip():
        raise ValueError("--scheduler must be an address such as tcp://10.0.0.5:8786")
    return DaskExecutor(jobs=jobs, address=scheduler, resources=resources)


# --------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class PlannedRun:
    """One experiment of the grid, where it lives and whether it is already done."""

    experiment: Experiment
    setup: ExperimentSetup
    task: Task
    done: bool


def run_is_done(setup: ExperimentSetup) -> bool:
    """True when the folder holds a finished run of exactly this config, evaluated with
    the same sample counts and seed (a diverged run needs no metrics: there is no model)."""
    d = setup.run_dir
    try:
        same = json.loads((d / "config.json").read_text()) == json.loads(setup.config.to_json())
        result = json.loads((d / "result.json").read_text())
    except (OSError, ValueError):
        return False
    if not same:
        return False
    if result.get("status") == "diverged":
        return True
    try:
        ev = json.loads((d / "eval.json").read_text())
    except (OSError, ValueError):
        return False
    # an evaluation with other sample counts (the profile changed) is redone
    # (n_jobs changes how the fits are scheduled, not what they compute)
    asked = {k: v for k, v in setup.eval_kwargs.items() if k != "n_jobs"}
    done = ev.get("params", {})
    return ev.get("status") == "completed" and all(done.get(k, v) == v
                                                   for k, v in asked.items())


def cost_rank(e: Experiment) -> int:
    """A run's expected cost, as a rank (larger: longer). The meta-step costs about 3.4x a
    VAE step (benchmarks/meta_step.py), and CarsNORB's DCI fits a 183-class classifier for
    the car model (about 40 s per fit on one core), so: CarsNORB alpha > 0 = 3, 3D Shapes
    alpha > 0 = 2, CarsNORB vanilla = 1, the rest 0. Dask starts higher priorities first."""
    return 2 * (float(e.alpha) > 0) + (e.dataset == "carsnorb")


def plan(profile: str = "quick", out: str | Path = "runs", seeds: int | None = None,
         only: str | Iterable[str] | None = None, jobs: int = 1,
         grid: Sequence[Experiment] | None = None,
         notebook: str | Path = EXPERIMENT_NOTEBOOK) -> list[PlannedRun]:
    """The runs of a reproduction and their state; nothing is executed.

    ``grid`` replaces the paper's experiments (tests, special runs); with ``jobs > 1`` each
    kernel gets ``cores // jobs`` torch threads so parallel runs do not oversubscribe.
    """
    get_profile(profile)
    seeds = default_seeds(profile) if seeds is None else seeds
    exps = list(grid) if grid is not None else experiments(only, seeds)
    threads = max(1, (os.cpu_count() or 1) // jobs) if jobs > 1 else None
    out = Path(out).resolve()
    planned = []
    for e in exps:
        params = {**e.parameters(profile), "out_dir": str(out)}
        if threads is not None:
            params["threads"] = threads
        setup = experiment_config(**params)
        task = Task(e.run_id, str(notebook), str(setup.run_dir / "experiment.ipynb"), params,
                    cwd=str(Path(notebook).resolve().parent), accelerated=True,
                    priority=cost_rank(e))
        planned.append(PlannedRun(e, setup, task, run_is_done(setup)))
    return planned


def list_commands(planned: Sequence[PlannedRun]) -> list[str]:
    """One ``papermill notebooks/experiment.ipynb OUT -p ...`` command per run."""
    return [p.task.command() for p in planned]


# --------------------------------------------------------------------------- running


@dataclass
class Summary:
    """What a reproduction did; ``failed`` lists (name, notebook, message)."""

    profile: str
    out: Path
    counts: dict[str, int] = field(default_factory=dict)
    failed: list[tuple[str, str, str]] = field(default_factory=list)
    diverged: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    executed: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)  # not done, not run (book only)
    book_html: Path | None = None
    wall_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed

    def report(self) -> str:
        lines = [f"reproduce --profile {self.profile}: {len(self.executed)} executed, "
                 f"{len(self.skipped)} skipped (already done), "
                 + (f"{len(self.pending)} not run (book only), " if self.pending else "")
                 + f"{len(self.diverged)} diverged, "
                 f"{len(self.failed)} failed, in {self.wall_s:.0f} s; runs in "
                 f"{self.out / self.profile}"]
        if self.diverged:
            lines.append("diverged (recorded as results): " + ", ".join(self.diverged))
        for name, nb, msg in self.failed:
            lines.append(f"FAILED {name}: {msg}\n    notebook: {nb}")
        if self.book_html:
            lines.append(f"book: {self.book_html / 'index.html'}")
        return "\n".join(lines)


def _record(p: PlannedRun, o: Outcome) -> str:
    """Status of an executed experiment (completed/diverged/failed), kept in reproduce.json
    with the intended config, so a run that failed before training still shows up in
    :func:`lvae.results.collect`."""
    status = "failed"
    if o.status == "executed":
        try:
            status = json.loads((p.setup.run_dir / "result.json").read_text())["status"]
        except (OSError, ValueError, KeyError):
            status, o = "failed", Outcome(o.name, "failed", o.notebook,
                                          "the notebook ran but wrote no result.json",
                                          o.attempts, o.wall_s)
    atomic_write_json(p.setup.run_dir / "reproduce.json",
                      {"status": status, "notebook": o.notebook, "message": o.message,
                       "config": p.setup.config.to_dict(),
                       "attempts": o.attempts, "wall_s": round(o.wall_s, 2),
                       "finished": now()})
    return status


def _executed_copy(root: Path, src: Path) -> Path:
    """Where a notebook's executed copy goes in the staged book of ``root``."""
    from lvae.figures import executed_path

    src = src.resolve()
    if src.is_relative_to(REPO):
        return executed_path(root, src)
    return executed_path(root, REPO / "notebooks" / src.name)  # a stand-in (tests)


def book_tasks(profile: str, out: Path, results: Sequence[str | Path] = RESULT_NOTEBOOKS,
               teaching: Sequence[str | Path] | None = None, force: bool = False) -> list[Task]:
    """Papermill tasks for the book's pages, into ``<out>/<profile>/book/notebooks/``.

    Result pages always run again (they read the runs, which may have changed), with
    ``profile`` and ``out_dir`` (the runs root given to :func:`lvae.results.collect`)
    injected. Teaching pages (``lvae.figures.TEACHING_NOTEBOOKS``) run without parameters,
    only when their executed copy is missing or older than the source (or with ``force``).
    Pages not yet written are skipped with a warning. Kernels run in the repository root.
    """
    from lvae.figures import TEACHING_NOTEBOOKS

    root = out / profile
    tasks = []
    pages = [(Path(n), False) for n in (TEACHING_NOTEBOOKS if teaching is None else teaching)]
    pages += [(Path(n), True) for n in results]
    for rel, is_result in pages:
        src = rel if rel.is_absolute() else REPO / rel
        if not src.is_file():
            warnings.warn(f"book page {rel} not present: skipped", stacklevel=2)
            continue
        dst = _executed_copy(root, src)
        if not (is_result or force) and dst.is_file() and \
                dst.stat().st_mtime >= src.stat().st_mtime:
            continue
        params = {"profile": profile, "out_dir": str(out)} if is_result else {}
        tasks.append(Task(f"book:{src.stem}", str(src), str(dst), params, cwd=str(REPO)))
    return tasks


def reproduce(profile: str = "quick", out: str | Path = "runs", seeds: int | None = None,
              jobs: int = 1, force: bool = False, only: str | Iterable[str] | None = None,
              scheduler: str | None = None, book: bool = True,
              grid: Sequence[Experiment] | None = None, executor: Executor | None = None,
              inline: bool = False, resources: Mapping[str, float] | None = None,
              runs: bool = True,
              notebook: str | Path = EXPERIMENT_NOTEBOOK,
              result_notebooks: Sequence[str | Path] = RESULT_NOTEBOOKS,
              teaching_notebooks: Sequence[str | Path] | None = None,
              progress: bool = True) -> Summary:
    """Run the grid, the result notebooks and the book; returns a :class:`Summary`.

    Never raises for a failed or diverged run: check ``summary.ok`` (the CLI exits 1 when
    it is False). ``runs=False`` trains nothing and builds the pages and the book from
    the runs already there (a preview while a grid still runs elsewhere; missing runs show
    as "—", and ``summary.pending`` lists the runs that are not done). The runs go to Dask
    (:func:`make_executor`: ``jobs``, ``scheduler``,
    ``resources``; ``inline`` for this process); ``executor`` overrides that;
    ``grid``, ``notebook``, ``result_notebooks`` and ``teaching_notebooks`` (None: the
    book's, ``lvae.figures.TEACHING_NOTEBOOKS``) replace the paper's (tests use stand-ins).
    """
    t0 = time.perf_counter()
    out = Path(out).resolve()
    planned = plan(profile, out, seeds, only, jobs, grid, notebook)
    summary = Summary(profile, out)
    todo = []
    for p in planned:
        if force and runs and p.setup.run_dir.exists():
            shutil.rmtree(p.setup.run_dir)
        if p.done and not force:
            summary.skipped.append(p.experiment.run_id)
        elif not runs:
            summary.pending.append(p.experiment.run_id)
        else:
            todo.append(p)
    own = executor is None
    executor = executor or make_executor(jobs, scheduler, inline, resources)
    try:
        by_name = {p.task.name: p for p in todo}
        bar = tqdm(total=len(todo), desc=f"runs ({profile})", disable=not progress)
        for o in executor.map([p.task for p in todo]):
            status = _record(by_name[o.name], o)
            summary.executed.append(o.name)
            if status == "diverged":
                summary.diverged.append(o.name)
            elif status == "failed":
                summary.failed.append((o.name, o.notebook, o.message or "see the notebook"))
            bar.update(1)
            bar.set_postfix_str(f"{o.name}: {status}")
        bar.close()
        if book:
            _book(summary, executor, profile, out, result_notebooks, teaching_notebooks,
                  force)
    finally:
        if own:
            executor.close()
    summary.counts = {"runs": len(planned), "executed": len(summary.executed),
                      "skipped": len(summary.skipped), "diverged": len(summary.diverged),
                      "failed": len(summary.failed)}
    summary.wall_s = time.perf_counter() - t0
    return summary


def _book(summary: Summary, executor: Executor, profile: str, out: Path,
          results: Sequence[str | Path], teaching: Sequence[str | Path] | None,
          force: bool) -> None:
    """Execute the book's pages through the executor, then ``lvae.figures.build_book``."""
    from lvae import figures

    for o in executor.map(book_tasks(profile, out, results, teaching, force)):
        if o.status == "failed":
            summary.failed.append((o.name, o.notebook, o.message))
    if not (REPO / "_config.yml").is_file():
        warnings.warn("no _config.yml at the repository root: book build skipped", stacklevel=2)
        return
    try:
        summary.book_html = Path(figures.build_book(out / profile, execute_teaching=False))
    except (FileNotFoundError, RuntimeError) as e:  # a page missing, or the build failed
        summary.failed.append(("book", str(figures.book_source(out / profile)),
                               str(e).strip().splitlines()[0][:500]))
