"""Reproduce the paper: every run of the grid as an executed notebook, then the book.

``python -m lvae reproduce --profile quick`` (or :func:`reproduce`) does, in order:

1. For every experiment of :mod:`lvae.report.grid` (``--only`` selects tables or figures), execute
   ``notebooks/experiment.ipynb`` with papermill into
   ``<out>/<profile>/<run_id>/experiment.ipynb``, parameters injected, each in its own
   kernel process. A run whose result.json (and eval.json, unless it diverged) and
   executed notebook exist and parse, for the same config, is skipped; ``force`` deletes
   the run folder and starts it again, but only once every option is checked, the output
   folder is writable and the executor (the Dask scheduler) is reached, so a mistyped
   option never costs a finished run. Each run being computed is locked
   (``fcntl.flock`` on ``<run>/.lock``, the lock the study's workers take too,
   :mod:`lvae.report.study.workers`): a second invocation on the same folder leaves it alone
   and says so.
2. Execute the book's pages into the staged book of :mod:`lvae.report.book`,
   ``<out>/<profile>/book/notebooks/`` (the repository's layout, so ``_toc.yml`` needs no
   change): the teaching pages (once) and the result pages (:data:`RESULT_NOTEBOOKS`, every
   time) with ``profile`` and ``out_dir`` injected. The executed copies are build products;
   the committed notebooks stay without outputs. The pages that read no run (the teaching
   pages and :data:`RUN_FREE_PAGES`) are executed beside the runs of step 1, in one
   longest-first order with them; the others after the last run, and
   :data:`LAST_PAGES` (the execution statistics, which read every other notebook's
   papermill record) after all of them.
3. ``lvae.report.book.build_book``: stage ``_config.yml``, ``_toc.yml``, ``book/`` and the result
   pages' CSV tables beside them and run ``jupyter-book build``; the HTML is in
   ``<out>/<profile>/book/_build/html``.

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
result, not a failure. Notebooks are written to a temporary name and moved into place only
when they parse, so a kill or a full disk at any moment leaves either the old file or the
new one, and a rerun redoes only what is missing (training itself resumes from its last
checkpoint). The grid's progress bar shows, between finished runs, the step each running
run has logged (a heartbeat read from its ``log.jsonl``), then the book's phases.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import os
import random
import shlex
import shutil
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tqdm.auto import tqdm

from lvae import runfolder
from lvae.config import profile as get_profile
from lvae.records import RecordError
from lvae.report import REPO, book
from lvae.report.book import TEACHING_NOTEBOOKS, executed_path
from lvae.report.grid import Experiment, default_seeds, experiments
from lvae.report.params import ExperimentSetup, experiment_config
from lvae.store import LOCK_NAME, Lock, atomic_write_json, lock_file, lock_run, now

EXPERIMENT_NOTEBOOK = REPO / "notebooks" / "experiment.ipynb"

#: The book's result pages, executed after the grid with ``profile`` and ``out_dir``
#: injected (absolute ``out_dir``; the runs are in ``<out_dir>/<profile>/``). Relative to
#: the repository root; ones not yet present are skipped with a warning.
RESULT_NOTEBOOKS: tuple[str, ...] = (
    "notebooks/results_study.ipynb",
    "notebooks/results_diagnosis.ipynb",
    "notebooks/results_table1.ipynb",
    "notebooks/results_table2.ipynb",
    "notebooks/results_table5.ipynb",
    "notebooks/results_traversal.ipynb",
    "notebooks/results_explore_alpha.ipynb",
    "notebooks/results_model_cards.ipynb",
    "notebooks/build_stats.ipynb",
)

#: Result pages that read none of the grid's runs: the study page reads the shipped runs
#: under ``results/`` only (its ``out_dir`` parameter is unused: tested). With the teaching
#: pages they are executed beside the grid's runs (:func:`reproduce`), not after them.
RUN_FREE_PAGES: tuple[str, ...] = ("notebooks/results_study.ipynb",
                                    "notebooks/results_diagnosis.ipynb",
                                    "notebooks/results_model_cards.ipynb")

#: Result pages executed after every other page of the build, with ``since`` (the time
#: :func:`reproduce` started, ISO 8601 UTC) injected beside ``profile`` and ``out_dir``:
#: the execution-statistics page reads the papermill record of every other executed
#: notebook (:mod:`lvae.report.execstats`), so it must come after all of them, and ``since`` is
#: how it tells the notebooks this build executed from those it reused.
LAST_PAGES: tuple[str, ...] = ("notebooks/build_stats.ipynb",)

#: Dask priority of the book's pages (the runs have :func:`cost_rank`, 0 to 3): the pages
#: executed beside the grid are ordered among its runs by their cost, longest first, so
#: the two workers still finish together. Measured at quick beside the study workers:
#: the study page replays 300 training steps of shipped runs (a few minutes, a CarsNORB
#: vanilla run's order), teach_local_vae ~1-3 min (a 3D Shapes baseline's), the other
#: pages under a minute; a page not named here gets -1 (after every run).
PAGE_PRIORITY: dict[str, int] = {"results_study": 1, "teach_local_vae": 0}


class RunnerError(RuntimeError):
    """A reproduction that cannot start (an unreachable scheduler, an output folder that
    cannot be written); the message says what to do. The CLI prints it as one line."""


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
    reads_runs: bool = True  # False: a book page that may run beside the grid (RUN_FREE_PAGES)
    last: bool = False  # True: a book page executed after every other page (LAST_PAGES)

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


@functools.cache
def kernel_manager_class() -> type:
    """The kernel manager :func:`execute` starts notebooks with: CurveZMQ keys when possible.

    Why: ipykernel 7.4 logs "Kernel is running over TCP without encryption" at every kernel
    start that has no Curve keys, and the grid starts one kernel per run, so the line cut
    through the progress bar once per run. jupyter_client 8.10's ``KernelManager`` has a
    ``transport_encryption`` trait ("disabled" by default); at "auto" the manager provisions
    a Curve key pair when the kernelspec declares ``supported_encryption: ["curve"]`` (the
    spec ``ipykernel install`` writes does) and hands it to the kernel in the connection
    file. Without CurveZMQ in pyzmq, "auto" would be refused, so the policy stays
    "disabled" there: the warning comes back, the run is unaffected. Built on first use so
    that importing this module does not import jupyter_client.
    """
    import zmq
    from jupyter_client.manager import AsyncKernelManager  # nbclient's default manager
    from traitlets import default

    if "transport_encryption" not in AsyncKernelManager.class_trait_names():
        return AsyncKernelManager  # a jupyter_client before 8.10: nothing to switch on

    class CurveKernelManager(AsyncKernelManager):
        """nbclient's AsyncKernelManager with ``transport_encryption = "auto"``."""

        @default("transport_encryption")
        def _transport_encryption_default(self) -> str:
            return "auto" if zmq.has("curve") else "disabled"

    return CurveKernelManager


def execute(task: Task) -> Outcome:
    """Run one notebook with papermill: temp file, then ``os.replace`` onto ``task.output``.

    Returns ``failed`` (never raises) for an error in the notebook; retries a dead or
    unstartable kernel ``task.retries`` times. The partial notebook of a failure is moved
    to ``task.output`` too, so the summary can point at the cell that failed. Kernels get
    CurveZMQ keys (:func:`kernel_manager_class`), so none warns about unencrypted TCP.
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
        failure: BaseException | None = None
        try:
            pm.execute_notebook(task.notebook, str(tmp), parameters=task.parameters,
                                cwd=task.cwd, progress_bar=False, kernel_name="python3",
                                execution_timeout=task.timeout_s,
                                kernel_manager_class=kernel_manager_class())
            hide_injected_parameters(tmp)
        except Exception as exc:  # the notebook's error, the kernel's, or a failed write
            if _kernel_failure(exc) and attempt <= task.retries:
                time.sleep(random.uniform(0.5, 2.0) * attempt)  # de-synchronise port grabs
                continue
            failure = exc
        message = _short(failure) if failure is not None else ""
        try:
            if notebook_parses(tmp):
                os.replace(tmp, out)
            elif tmp.exists():  # a full disk cut it short: never moved where a notebook goes
                tmp.unlink()
                failure = failure or OSError("the executed notebook does not parse")
                message = (f"{message or _short(failure)} (the executed notebook could not be "
                           f"saved whole: is the disk full? nothing was moved onto {out.name})")
            elif failure is None:
                failure = OSError("papermill wrote no notebook")
                message = _short(failure)
        except OSError as exc:  # the folder became unwritable
            failure, message = exc, f"{_short(exc)} (saving the executed notebook)"
        wall = time.perf_counter() - t0
        if failure is None:
            return Outcome(task.name, "executed", str(out), attempts=attempt, wall_s=wall)
        return Outcome(task.name, "failed", str(out), message, attempt, wall)


def notebook_parses(path: str | Path) -> bool:
    """Whether ``path`` holds a whole notebook (JSON with a list of cells): a file cut short
    by a full disk or a kill does not, and is never trusted or moved into place."""
    try:
        nb = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(nb, dict) and isinstance(nb.get("cells"), list) and "nbformat" in nb


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

    def map(self, tasks: Sequence[Task], fn: Callable[[Task], Outcome] | None = None
            ) -> Iterator[Outcome]: ...

    def close(self) -> None: ...


class SequentialExecutor:
    """One task after another in this process (each notebook still gets its own kernel)."""

    def map(self, tasks: Sequence[Task], fn: Callable[[Task], Outcome] | None = None
            ) -> Iterator[Outcome]:
        for t in tasks:
            yield (fn or execute)(t)

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

    On the local cluster at most ``jobs`` tasks are submitted at a time, the next by
    priority whenever one ends (``in_flight``): exact longest-first list scheduling. Why:
    Dask places a task on a worker when it is submitted (each task is its own key group,
    so none is queued on the scheduler), and ``priority`` then only orders each worker's
    own queue; work stealing evens the queues out, and in a simulation of the quick grid
    with its run-free pages (2 workers, tasks sleeping 2-5% of the measured seconds,
    +-25% noise) the grid ended 7-31 simulated seconds later than list scheduling. Holding
    tasks back costs a hand-off per task (~0.2 s on the loaded 2-core VM), so the gain is
    small either way; what it buys is that the order is the documented one. A remote
    cluster, whose size can change, gets every task at once (``in_flight`` None).
    """

    def __init__(self, jobs: int = 1, address: str | None = None,
                 resources: Mapping[str, float] | None = None) -> None:
        import dask
        from distributed import Client, LocalCluster

        self._cluster = None
        self.in_flight: int | None = None if address else jobs  # tasks submitted at a time
        self.resources = dict(resources) if resources else None
        self.retries = KERNEL_RETRIES if address else 0  # local: allowed-failures does it
        if address:
            try:
                self.client = Client(address)
            except (OSError, TimeoutError) as exc:  # refused, unknown host, timed out
                raise RunnerError(
                    f"cannot reach the Dask scheduler at {address} ({_short(exc)}); start it "
                    "(dask scheduler, or a dask-jobqueue cluster: book/reproduce.md) or leave "
                    "out --scheduler to run on this machine") from None
        else:
            with dask.config.set({"distributed.scheduler.allowed-failures": KERNEL_RETRIES}):
                self._cluster = LocalCluster(n_workers=jobs, threads_per_worker=1,
                                             processes=True, host="127.0.0.1",
                                             dashboard_address="127.0.0.1:0", memory_limit=0,
                                             resources=self.resources)
            self.client = Client(self._cluster)

    def map(self, tasks: Sequence[Task], fn: Callable[[Task], Outcome] | None = None
            ) -> Iterator[Outcome]:
        """Each task through ``fn`` (:func:`execute`, a papermill run, by default; the
        study's workers pass :func:`lvae.report.study.workers.run_task`), yielded as it finishes."""
        from distributed import as_completed

        futures = {}

        def submit(t: Task) -> Any:
            res = self.resources if t.accelerated else None
            fut = self.client.submit(fn or execute, t, key=f"{t.name}-{uuid.uuid4().hex[:6]}",
                                     pure=False, retries=self.retries, resources=res,
                                     priority=t.priority)
            futures[fut] = t
            return fut

        # highest priority first (a stable sort: ties keep their order); with in_flight,
        # the next one only when a task ends, so it goes to the worker that just freed
        queue = iter(sorted(tasks, key=lambda t: -t.priority))
        limit = self.in_flight if self.in_flight is not None else len(tasks)
        done = as_completed([submit(t) for t in itertools.islice(queue, max(1, limit))])
        for fut in done:
            t = futures.pop(fut)
            following = next(queue, None)
            if following is not None:  # before the caller records this one: no idle worker
                done.add(submit(following))
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
    if partial and notebook_parses(partial[-1]):  # one cut short is never moved into place
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
    check_executor_options(jobs, scheduler, inline)
    if inline:
        return SequentialExecutor()
    return DaskExecutor(jobs=jobs, address=scheduler, resources=resources)


def check_executor_options(jobs: int = 1, scheduler: str | None = None,
                           inline: bool = False) -> None:
    """Raise ``ValueError`` for options :func:`make_executor` cannot honour, without
    starting or reaching anything (so :func:`reproduce` checks them before it touches a
    run)."""
    _check_jobs(jobs)
    if inline and (jobs != 1 or scheduler is not None):
        raise ValueError("--inline runs one task at a time in this process: it takes "
                         "neither --jobs > 1 nor --scheduler")
    if scheduler is not None and not scheduler.strip():
        raise ValueError("--scheduler must be an address such as tcp://10.0.0.5:8786")


# --------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class PlannedRun:
    """One experiment of the grid, where it lives and whether it is already done."""

    experiment: Experiment
    setup: ExperimentSetup
    task: Task
    done: bool
    status: str | None = None  # a done run's status: "completed" or "diverged"


def done_status(setup: ExperimentSetup) -> str | None:
    """``"completed"`` or ``"diverged"`` when the folder holds a finished run
    (:func:`lvae.runfolder.finished`, the one definition) of exactly this config, evaluated
    with the same sample counts and seed (a diverged run has no metrics: there is no model),
    and its executed notebook; else None.

    Every file must parse: a notebook or result cut short by a full disk or a kill is not
    a finished run, so the run is executed again (training and an evaluation already made
    with these settings return at once; the notebook is written anew).
    """
    d = setup.run_dir
    ending = runfolder.finished(d)
    if ending is None or runfolder.read_config(d) != json.loads(setup.config.to_json()):
        return None
    if not notebook_parses(d / "experiment.ipynb"):
        return None
    if ending == "diverged":
        return "diverged"
    # an evaluation with other sample counts (the profile changed) is redone
    asked = setup.evaluation.identity()
    ev = runfolder.read_eval(d)
    done = (ev.params if ev is not None else None) or {}
    if any(done.get(k, v) != v for k, v in asked.items()):
        return None
    return "completed"


def run_is_done(setup: ExperimentSetup) -> bool:
    """True when :func:`done_status` finds a finished run (completed or diverged)."""
    return done_status(setup) is not None


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
    _check_jobs(jobs)
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
        status = done_status(setup)
        planned.append(PlannedRun(e, setup, task, status is not None, status))
    return planned


def list_commands(planned: Sequence[PlannedRun]) -> list[str]:
    """One ``papermill notebooks/experiment.ipynb OUT -p ...`` command per run; a run that
    is already done is commented out (``# done (completed): papermill ...``), so the list
    pasted into a shell computes only what is missing."""
    return [f"# done ({p.status}): {p.task.command()}" if p.done else p.task.command()
            for p in planned]


def _check_jobs(jobs: Any) -> None:
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise ValueError(f"jobs must be an int >= 1, got {jobs!r}")


# --------------------------------------------------------------------------- running


@dataclass
class Summary:
    """What a reproduction did; ``failed`` lists (name, notebook, message), ``busy`` the
    runs another invocation was computing (name, who holds the lock), left alone here."""

    profile: str
    out: Path
    counts: dict[str, int] = field(default_factory=dict)
    failed: list[tuple[str, str, str]] = field(default_factory=list)
    diverged: list[str] = field(default_factory=list)  # executed now or earlier (skipped)
    skipped: list[str] = field(default_factory=list)
    executed: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)  # not done, not run (book only)
    busy: list[tuple[str, str]] = field(default_factory=list)
    book_html: Path | None = None
    wall_s: float = 0.0

    @property
    def ok(self) -> bool:
        """False when a run or page failed, or a run was left to another invocation (the
        book built here lacks it)."""
        return not self.failed and not self.busy

    def report(self) -> str:
        lines = [f"reproduce --profile {self.profile}: {len(self.executed)} executed, "
                 f"{len(self.skipped)} skipped (already done), "
                 + (f"{len(self.pending)} not run (book only), " if self.pending else "")
                 + (f"{len(self.busy)} left to another invocation, " if self.busy else "")
                 + f"{len(self.diverged)} diverged, "
                 f"{len(self.failed)} failed, in {self.wall_s:.0f} s; runs in "
                 f"{self.out / self.profile}"]
        if self.diverged:
            lines.append("diverged (recorded as results): " + ", ".join(self.diverged))
        for name, holder in self.busy:
            lines.append(f"BUSY {name}: another invocation holds it ({holder}); "
                         "run this command again when it has finished")
        for name, nb, msg in self.failed:
            lines.append(f"FAILED {name}: {msg}\n    notebook: {nb}")
        if self.book_html:
            lines.append(f"book: {self.book_html / 'index.html'}")
        return "\n".join(lines)


def _record(p: PlannedRun, o: Outcome) -> tuple[str, str]:
    """Status of an executed experiment (completed/diverged/failed) and why it failed, kept
    in reproduce.json with the intended config, so a run that failed before training still
    shows up in :func:`lvae.report.results.collect`. A reproduce.json that cannot be written (a
    full disk, a folder made read-only) fails this run, never the grid."""
    status, message = "failed", o.message
    if o.status == "executed":
        try:
            result = runfolder.read_result(p.setup.run_dir)
            why = "the notebook ran but wrote no readable result.json"
        except RecordError as e:
            result, why = None, f"the notebook ran but wrote a broken result.json ({e})"
        status = result.status if result is not None else "failed"
        if status not in runfolder.ENDINGS:
            status, message = "failed", why
    try:
        atomic_write_json(p.setup.run_dir / "reproduce.json",
                          {"status": status, "notebook": o.notebook, "message": message,
                           "config": p.setup.config.to_dict(),
                           "attempts": o.attempts, "wall_s": round(o.wall_s, 2),
                           "finished": now()})
    except OSError as exc:
        status = "failed"
        message = f"{message + '; ' if message else ''}reproduce.json not written: {_short(exc)}"
    return status, message


# --------------------------------------------------------------------------- locks


#: The staged book's lock, beside the runs of the profile (``<out>/<profile>/.book.lock``).
BOOK_LOCK = ".book.lock"


def clear_run(run_dir: Path) -> None:
    """Delete everything in a run folder but its lock (``--force``): the lock stays held on
    the same file, so no other invocation can take the run in between."""
    for child in run_dir.iterdir():
        if child.name == LOCK_NAME:
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def check_writable(folder: Path) -> None:
    """Create ``folder`` and a file in it, or raise :class:`RunnerError` saying which
    folder cannot be written: found before a cluster starts or a run is deleted, not as a
    traceback from a worker."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise RunnerError(f"cannot write to {folder} ({exc.strerror or exc}); choose another "
                          "--out or make it writable") from None


# --------------------------------------------------------------------------- progress


#: Seconds between two looks at the running runs' logs.
HEARTBEAT_S = 10.0


def last_step(log: Path) -> int | None:
    """The ``step`` of the newest whole line of a run's ``log.jsonl``
    (:func:`lvae.runfolder.last_log`), or None when there is none yet."""
    return runfolder.last_log(log.parent).get("step")


def _written_since(path: Path, since: float) -> bool:
    try:
        return path.stat().st_mtime >= since
    except OSError:
        return False


def heartbeat(running: Sequence[PlannedRun], since: float) -> str:
    """``name step/steps`` for every run whose log was written after ``since`` (the runs
    training now; queued ones have no fresh log), ``name evaluating`` for one whose
    training ended after ``since``: the progress bar's postfix between finished runs."""
    parts = []
    for p in running:
        d, name = p.setup.run_dir, p.experiment.run_id
        if _written_since(d / runfolder.RESULT, since):
            parts.append(f"{name} evaluating")
        elif _written_since(d / runfolder.LOG, since):
            step = last_step(d / runfolder.LOG)
            if step is not None:
                parts.append(f"{name} {step}/{p.setup.config.steps}")
    return "; ".join(parts)


class _Heartbeat:
    """Every ``interval`` s, put the running runs' steps in ``bar``'s postfix after the
    last finished run's status: without it the bar moves only when a whole run ends, which
    on the quick profile is many minutes of an unmoving bar."""

    def __init__(self, bar: Any, runs: Sequence[PlannedRun], interval: float | None = None):
        self.bar = bar
        self.interval = HEARTBEAT_S if interval is None else interval
        self.running = {p.task.name: p for p in runs}
        self.last = ""  # the last finished run and its status
        self.since = time.time() - 1.0  # mtime resolution
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="lvae-heartbeat")

    def start(self) -> _Heartbeat:
        self._thread.start()
        return self

    def finished(self, name: str, status: str) -> None:
        self.running.pop(name, None)
        self.last = f"{name}: {status}"
        self.show()

    def show(self) -> None:
        beat = heartbeat(list(self.running.values()), self.since)
        text = " | ".join(t for t in (self.last, f"running: {beat}" if beat else "") if t)
        self.bar.set_postfix_str(text, refresh=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            with contextlib.suppress(Exception):  # a display aid must never stop the grid
                self.show()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)


def _executed_copy(root: Path, src: Path) -> Path:
    """Where a notebook's executed copy goes in the staged book of ``root``."""

    src = src.resolve()
    if src.is_relative_to(REPO):
        return executed_path(root, src)
    return executed_path(root, REPO / "notebooks" / src.name)  # a stand-in (tests)


def book_tasks(profile: str, out: Path, results: Sequence[str | Path] = RESULT_NOTEBOOKS,
               teaching: Sequence[str | Path] | None = None, force: bool = False,
               since: str | None = None) -> list[Task]:
    """Papermill tasks for the book's pages, into ``<out>/<profile>/book/notebooks/``.

    Result pages always run again (they read the runs, which may have changed), with
    ``profile`` and ``out_dir`` (the runs root given to :func:`lvae.report.results.collect`)
    injected. Teaching pages (``lvae.report.book.TEACHING_NOTEBOOKS``) run without parameters,
    only when their executed copy is missing or older than the source (or with ``force``).
    Pages not yet written are skipped with a warning. Kernels run in the repository root.
    Teaching pages and :data:`RUN_FREE_PAGES` get ``reads_runs=False``; every page its
    :data:`PAGE_PRIORITY`. :data:`LAST_PAGES` get ``last=True`` and, when given, ``since``
    (the time the build started) as a parameter.
    """

    root = out / profile
    tasks = []
    run_free = {(REPO / n).resolve() for n in RUN_FREE_PAGES}
    last = {(REPO / n).resolve() for n in LAST_PAGES}
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
        params: dict[str, Any] = {"profile": profile, "out_dir": str(out)} if is_result \
            else {}
        is_last = is_result and src.resolve() in last
        if is_last and since is not None:
            params["since"] = since
        reads_runs = is_result and src.resolve() not in run_free
        tasks.append(Task(f"book:{src.stem}", str(src), str(dst), params, cwd=str(REPO),
                          priority=PAGE_PRIORITY.get(src.stem, -1), reads_runs=reads_runs,
                          last=is_last))
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
    book's, ``lvae.report.book.TEACHING_NOTEBOOKS``) replace the paper's (tests use stand-ins).

    The book's pages that read no run (``Task.reads_runs`` False: the teaching pages and
    :data:`RUN_FREE_PAGES`) are executed with the grid's runs, in one longest-first order
    (:func:`cost_rank`, :data:`PAGE_PRIORITY`), when the book's lock is free then; the
    other result pages after the last run, then the build. Why: run after the grid, the
    pages left one worker idle while the longest of them (the study page's replay) ran
    alone, and their minutes added to the grid's instead of filling its tail.

    In this order, so that nothing is lost to a mistake: check every option (``ValueError``),
    check that the output folder can be written and reach the executor
    (:class:`RunnerError`), lock the runs to compute (a run another invocation holds is
    left to it and listed in ``summary.busy``), and only then, with ``force``, delete the
    locked runs' folders.
    """
    t0 = time.perf_counter()
    started = now()  # what the statistics page (LAST_PAGES) compares executions with
    out = Path(out).resolve()
    planned = plan(profile, out, seeds, only, jobs, grid, notebook)
    if executor is None:
        check_executor_options(jobs, scheduler, inline)
    check_writable(out / profile)
    summary = Summary(profile, out)
    own = executor is None
    executor = executor or make_executor(jobs, scheduler, inline, resources)
    locks: list[Lock] = []
    try:
        todo = _claim(planned, summary, force, runs, locks)
        pages = book_tasks(profile, out, result_notebooks, teaching_notebooks, force,
                           since=started) if book else []
        beside: list[Task] = []
        held: Lock | None = None
        if todo and any(not t.reads_runs for t in pages):
            lock = lock_file(out / profile / BOOK_LOCK)
            if isinstance(lock, Lock):  # else: another build holds it; asked again later
                held = lock
                locks.append(held)
                beside = [t for t in pages if not t.reads_runs]
        if todo:
            _grid(summary, executor, todo, profile, progress, beside)
        if book:
            _book(summary, executor, profile, out, [t for t in pages if t not in beside],
                  progress, held)
    finally:
        for lock in locks:
            lock.release()
        if own:
            executor.close()
    summary.counts = {"runs": len(planned), "executed": len(summary.executed),
                      "skipped": len(summary.skipped), "diverged": len(summary.diverged),
                      "failed": len(summary.failed), "busy": len(summary.busy)}
    summary.wall_s = time.perf_counter() - t0
    return summary


def _claim(planned: Sequence[PlannedRun], summary: Summary, force: bool, runs: bool,
           locks: list[Lock]) -> list[PlannedRun]:
    """Sort the planned runs into skipped (done), pending (book only), busy (another
    invocation holds the lock) and the ones to compute, which are locked (their
    :class:`Lock` appended to ``locks``) and, with ``force``, emptied. A run found done once locked
    (another invocation finished it meanwhile) is skipped, not recomputed."""
    todo = []
    for p in planned:
        name = p.experiment.run_id
        if p.done and not force:
            summary.skipped.append(name)
            if p.status == "diverged":
                summary.diverged.append(name)
            continue
        if not runs:
            summary.pending.append(name)
            continue
        held = lock_run(p.setup.run_dir)
        if isinstance(held, str):
            summary.busy.append((name, held))
            continue
        locks.append(held)
        status = None if force else done_status(p.setup)
        if status is not None:  # finished by another invocation since it was planned
            summary.skipped.append(name)
            if status == "diverged":
                summary.diverged.append(name)
            continue
        if force:
            clear_run(p.setup.run_dir)
        todo.append(p)
    return todo


def _grid(summary: Summary, executor: Executor, todo: Sequence[PlannedRun], profile: str,
          progress: bool, pages: Sequence[Task] = ()) -> None:
    """Execute the runs, recording each as it ends; the bar's postfix beats between runs.
    ``pages`` (book pages that read no run) are executed among them and counted by the
    bar; a failed one is recorded in ``summary.failed`` as :func:`_book` records it."""
    by_name = {p.task.name: p for p in todo}
    page_names = {t.name for t in pages}
    bar = tqdm(total=len(todo) + len(pages), desc=f"runs ({profile})", disable=not progress)
    beat = _Heartbeat(bar, todo)
    if progress:
        beat.start()
    try:
        for o in executor.map([p.task for p in todo] + list(pages)):
            if o.name in page_names:
                if o.status == "failed":
                    summary.failed.append((o.name, o.notebook, o.message))
                bar.update(1)
                beat.finished(o.name, o.status)
                continue
            status, message = _record(by_name[o.name], o)
            summary.executed.append(o.name)
            if status == "diverged":
                summary.diverged.append(o.name)
            elif status == "failed":
                summary.failed.append((o.name, o.notebook, message or "see the notebook"))
            bar.update(1)
            beat.finished(o.name, status)
    finally:
        beat.stop()
        bar.close()


def _book(summary: Summary, executor: Executor, profile: str, out: Path,
          tasks: Sequence[Task], progress: bool = False, held: Lock | None = None) -> None:
    """Execute the book's pages ``tasks`` (:func:`book_tasks`, less those run beside the
    grid) through the executor, those marked ``last`` (:data:`LAST_PAGES`) after all the
    others, then ``lvae.report.book.build_book``; a bar counts the pages and then the build (its
    last step), naming each phase. ``held``: the book's lock when the caller holds it
    already (the caller releases it)."""

    own = held is None
    lock = lock_file(out / profile / BOOK_LOCK) if own else held
    if isinstance(lock, str):  # two builds into one staged book would mix their pages
        summary.busy.append(("book", lock))
        return
    bar = tqdm(total=len(tasks) + 1, desc=f"book ({profile})", disable=not progress)
    try:
        bar.set_postfix_str(f"executing {len(tasks)} pages", refresh=True)
        for batch in ([t for t in tasks if not t.last], [t for t in tasks if t.last]):
            for o in executor.map(batch) if batch else ():
                if o.status == "failed":
                    summary.failed.append((o.name, o.notebook, o.message))
                bar.update(1)
                bar.set_postfix_str(f"{o.name}: {o.status}", refresh=True)
        if not (REPO / "_config.yml").is_file():
            warnings.warn("no _config.yml at the repository root: book build skipped",
                          stacklevel=2)
            return
        bar.set_postfix_str("jupyter-book build (HTML)", refresh=True)
        try:
            summary.book_html = Path(book.build_book(out / profile))
        except (FileNotFoundError, RuntimeError) as e:  # a page missing, or the build failed
            summary.failed.append(("book", str(book.book_source(out / profile)),
                                   str(e).strip().splitlines()[0][:500]))
        bar.update(1)
        bar.set_postfix_str("built" if summary.book_html else "build failed", refresh=True)
    finally:
        bar.close()
        if own:
            lock.release()
