"""The study's workers: who takes which run, trains and evaluates it, and where each stands.

:func:`work` is one worker: it takes the first run of a plan that is neither finished nor
held by another worker (an ``flock`` on ``<run>/.lock``, released by the OS when a worker
dies), trains it with :func:`lvae.training.train` (resumable, checkpointed every few
minutes), evaluates each milestone snapshot as it is written, then the final model with
:func:`lvae.evaluation.evaluate`, and moves on. Start two, one thread each, on 2 cores;
kill them at any time; start them again later. :func:`work_on` hands the same runs to the
grid's executor; :func:`train_only` trains named runs side by side on this machine's
default device without evaluating them (``python -m lvae study train``: how a session lent
a GPU for minutes trains runs that take a CPU hours); :func:`progress` says where every
run stands (``python -m lvae study status``).
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from lvae import runfolder
from lvae.config import PROFILES
from lvae.evaluation import evaluate
from lvae.report.reproduce import Outcome, Task, make_executor
from lvae.report.shipped import results_root
from lvae.report.study.measures import milestone_eval
from lvae.report.study.plans import STUDY, StudyRun, run_dir, setup, study_run
from lvae.report.study.shipping import (
    _checkpoint_facts,
    _device_label,
    _hours,
    resume_from_shipped,
    trained_device,
)
from lvae.store import Lock, lock_run, now
from lvae.training import train


@contextmanager
def claimed(rdir: Path) -> Iterator[bool]:
    """Hold the run's lock (:func:`lvae.store.lock_run`, the one ``lvae reproduce`` takes
    too) for this process; yields False when another process holds it."""
    held = lock_run(rdir, "lvae study")
    if not isinstance(held, Lock):
        yield False
        return
    try:
        yield True
    finally:
        held.release()


def is_done(rdir: Path) -> bool:
    """Finished: trained and evaluated (:func:`lvae.runfolder.finished`, the one
    definition); every milestone is evaluated before the final evaluation is written."""
    return runfolder.finished(rdir) is not None


def complete(out: str | Path, sr: StudyRun, log=print,
             shipped_root: str | Path | None = None) -> dict[str, Any]:
    """Train, evaluate the milestones and the final model of one run (all resumable); a
    run the repository holds in progress (under ``shipped_root``, its ``results/``) goes on
    from that copy's checkpoint."""

    st = setup(out, sr)
    prof = PROFILES[sr.profile]
    resume_from_shipped(st.run_dir, sr, shipped_root, log=log)

    def on_snapshot(step: int, _path: Path) -> None:
        rec = milestone_eval(st.run_dir, step)
        log(f"{sr.name} step {step}: DCI w/o colour D "
            f"{rec.metrics.get('dci_nocolor', {}).get('disentanglement', float('nan')):.3f}, "
            f"z-share {rec.zshare['z_share']:.3f} ({rec.wall_time_s:.0f} s)")

    # snapshots a killed worker left unevaluated
    for step in sorted(runfolder.snapshots(st.run_dir)):
        on_snapshot(step, Path())
    result = train(st.config, st.run_dir, progress=False, snapshot_steps=prof.milestones,
                   on_snapshot=on_snapshot)
    log(f"{sr.name}: {result['status']} at step {result['steps_done']}, "
        f"{result['wall_time_s'] / 3600:.2f} h")
    return evaluate(st.run_dir, prof.evaluation(n_jobs=1), progress=False)


def shipped_done(sr: StudyRun, root: str | Path | None = None) -> bool:
    """Whether the repository already holds ``sr`` finished (or diverged) under
    ``results/``: such a run is done on any machine, and no worker trains it again."""
    return (results_root(root) / sr.profile / sr.run_id / runfolder.RESULT).is_file()


def work(out: str | Path, limit: int | None = None, log=print,
         runs: tuple[StudyRun, ...] | None = None, shipped_root: str | Path | None = None
         ) -> int:
    """One worker: complete the runs of a plan (:data:`STUDY` by default) in order until
    none is left (or ``limit``).

    Returns how many runs it completed. Runs held by another worker are skipped, and so are
    runs the repository already holds finished (:func:`shipped_done`): a fresh machine does
    not retrain the shipped evidence (``shipped_root``: where it is; ``results/``).
    """
    torch.set_num_threads(1)
    done = 0
    while limit is None or done < limit:
        for sr in STUDY if runs is None else runs:
            rdir = run_dir(out, sr)
            if is_done(rdir) or shipped_done(sr, shipped_root):
                continue
            with claimed(rdir) as mine:
                if not mine:
                    continue
                if is_done(rdir):  # finished by another worker between the checks
                    continue
                log(f"{now()} worker {os.getpid()} takes {sr.name} ({sr.arm or sr.purpose})")
                complete(out, sr, log=log, shipped_root=shipped_root)
                done += 1
                break
        else:
            log(f"{now()} worker {os.getpid()}: no run left to take")
            return done
    return done


def run_task(task: Any) -> Any:
    """Complete one study run on a Dask worker (:func:`work_on`): the task's ``parameters``
    hold the output folder (``out``), the :class:`StudyRun` (``run``) and where the
    repository's shipped runs are (``shipped``, None for ``results/``). A run held by
    another process (a worker of another invocation, a ``study train``) is left to it; an
    error in the run is its outcome ("failed", with the error), not a dead worker."""

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    out, sr = task.parameters["out"], task.parameters["run"]
    rdir = run_dir(out, sr)
    try:
        with claimed(rdir) as mine:
            if not mine:
                return Outcome(task.name, "skipped", str(rdir), "held by another process")
            if not is_done(rdir):
                complete(out, sr, log=lambda m: print(m, flush=True),
                         shipped_root=task.parameters.get("shipped"))
    except Exception as e:  # the run's own failure, reported as such
        return Outcome(task.name, "failed", str(rdir), f"{type(e).__name__}: {e}", 1,
                       time.perf_counter() - t0)
    return Outcome(task.name, "executed", str(rdir), runfolder.state(rdir), 1,
                   time.perf_counter() - t0)


def work_on(out: str | Path, runs: tuple[StudyRun, ...] | None = None, jobs: int = 2,
            scheduler: str | None = None, resources: dict[str, float] | None = None,
            log=print, shipped_root: str | Path | None = None, inline: bool = False) -> int:
    """Complete the runs of a plan (:data:`STUDY` by default) on the grid's executor
    (:func:`lvae.report.reproduce.make_executor`): a LocalCluster of ``jobs`` one-thread workers,
    or the cluster at ``scheduler``; ``resources`` (``{"GPU": 1}``) is asked for by every
    run. Runs go in the plan's order (the first the highest priority); finished and shipped
    ones are left out, and each run holds its lock while a worker computes it, so this and
    other workers on the same folder never compute one run twice. Returns how many runs
    were completed. ``inline``: one run after another in this process (tests, debugging).
    """

    todo = [sr for sr in (STUDY if runs is None else runs)
            if not (is_done(run_dir(out, sr)) or shipped_done(sr, shipped_root))]
    if not todo:
        log(f"{now()}: no run left to take")
        return 0
    tasks = [Task(f"study:{sr.name}", "", str(run_dir(out, sr)),
                  {"out": str(out), "run": sr,
                   "shipped": None if shipped_root is None else str(shipped_root)},
                  priority=len(todo) - i,
                  accelerated=True) for i, sr in enumerate(todo)]
    log(f"{now()}: {len(todo)} runs for {jobs if scheduler is None else 'the cluster'}'s "
        f"workers, first {todo[0].name}")
    executor = make_executor(jobs, scheduler, inline=inline, resources=resources)
    done = 0
    try:
        for o in executor.map(tasks, fn=run_task):
            done += o.status == "executed"
            log(f"{now()} {o.name.removeprefix('study:')}: {o.status} {o.message}".rstrip())
    finally:
        executor.close()
    return done


def _die_with_parent(parent: int | None = None) -> None:
    """Ask Linux to kill this process when its parent dies (``PR_SET_PDEATHSIG``), so a
    trainer started by :func:`train_only` never outlives it (on a GPU lent for minutes, an
    orphan would go on spending them). ``parent``: the pid that started it; if that one is
    already gone (it died while this process was importing), exit now. Elsewhere a no-op."""

    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    if parent is not None and os.getppid() != parent:
        os._exit(1)


def _train_one(out: str, name: str, parent: int | None = None) -> int:
    """One trainer of :func:`train_only`; exit code 3 (and one ``error:`` line naming the
    holder) when another process holds the run."""


    _die_with_parent(parent)
    torch.set_num_threads(1)
    sr = study_run(name)
    st = setup(out, sr)
    held = lock_run(st.run_dir, "lvae study train")
    if not isinstance(held, Lock):
        print(f"error: {name} is held by {held}; wait for it or stop it", file=sys.stderr)
        return 3
    try:
        train(st.config, st.run_dir, progress=False,
              snapshot_steps=PROFILES[sr.profile].milestones, checkpoint_seconds=20)
    finally:
        held.release()
    return 0


def train_only(out: str | Path, names: list[str], seconds: float | None = None,
               poll: float = 15.0, log=print) -> dict[str, int]:
    """Train the study runs ``names`` at once, one process each, on the default device, with
    milestone snapshots but no evaluation; stop them after ``seconds`` (None: when done).

    For a GPU lent for minutes: 2 runs train side by side at about 21 ms a step on one H200
    (20k steps in 7 minutes), where a CPU core takes 3 hours. A stopped run keeps a
    checkpoint at most 20 s old and resumes from it; a finished one is evaluated by
    :func:`work` (on any machine) like any other. Returns each run's exit code (None when
    stopped at the deadline).
    """

    for n in names:
        study_run(n)  # an unknown name fails here, before anything starts
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"{', '.join(twice)} named more than once: each run trains in one "
                         "process")
    if seconds is not None and not seconds > 0:
        raise ValueError(f"seconds must be a number > 0 (or left out), got {seconds!r}")
    code = ("import sys; from lvae.report.study.workers import _train_one; "
            "sys.exit(_train_one(sys.argv[1], sys.argv[2], int(sys.argv[3])))")
    procs = {n: subprocess.Popen([sys.executable, "-c", code, str(out), n, str(os.getpid())])
             for n in names}
    t0 = time.monotonic()
    while any(p.poll() is None for p in procs.values()):
        left = poll if seconds is None else seconds - (time.monotonic() - t0)
        time.sleep(min(poll, max(0.1, left)))
        for n in names:
            last = runfolder.last_log(Path(out) / n)
            log(f"{now()} {n}: step {last.get('step', 0)}, "
                f"loss {last.get('loss', float('nan')):.4g}")
        if seconds is not None and time.monotonic() - t0 > seconds:
            for p in procs.values():
                if p.poll() is None:
                    p.kill()
            log(f"{now()} {seconds:.0f} s are up: stopped what was still training")
            break
    codes = {n: p.wait() for n, p in procs.items()}
    return {n: (c if c >= 0 else None) for n, c in codes.items()}  # killed: None


def progress(out: str | Path, runs: tuple[StudyRun, ...] | None = None,
             shipped_root: str | Path | None = None) -> list[dict[str, Any]]:
    """Where each run of a plan (the study's by default) stands: steps, seconds per step,
    CPU hours (training CPU from the result or the last checkpoint, plus the evaluations'
    wall time), milestones. A run the repository holds finished reads "shipped" when this
    machine has no copy of it (``shipped_root``: the repository's ``results/``)."""
    rows = []
    for sr in STUDY if runs is None else runs:
        rdir = run_dir(out, sr)
        shipped = not (rdir / runfolder.CONFIG).is_file() and shipped_done(sr, shipped_root)
        if shipped:
            rdir = results_root(shipped_root) / sr.profile / sr.run_id
        cfg = runfolder.read_config(rdir) or {}
        result = runfolder.read_result(rdir)
        last = runfolder.last_log(rdir)
        steps = cfg.get("steps", PROFILES[sr.profile].steps)
        step = last.get("step", 0)
        wall = last.get("wall_time_s", 0.0)
        cpu = result.cpu_time_s if result is not None else None
        if cpu is None and step:
            cpu = _checkpoint_facts(rdir)["cpu_time_s"]
        rows.append({
            "run": sr.name,
            "kind": run_kind(sr),
            "arm": sr.arm,
            "purpose": sr.purpose,
            "state": ("done" if is_done(rdir) else "shipped" if shipped else result.status
                      if result else "training" if step else "planned"),
            "step": step,
            "steps": steps,
            "sec_per_step": round(wall / step, 3) if step else None,
            "cpu_hours": _hours(cpu if cpu is not None else wall, rdir),
            "device": _device_label(trained_device(rdir)),
            "milestones": [m.step for m in runfolder.read_milestones(rdir)],
        })
    return rows


def run_kind(sr: StudyRun) -> tuple[str, str, int]:
    """What a run's cost per step depends on: its profile (the evaluations' sizes and
    milestones), whether it takes an inner step (a Local VAE step costs about twenty
    baseline steps) and its resolution."""
    return (sr.profile, "local" if sr.experiment.alpha > 0 else "baseline",
            setup("runs", sr).config.resolution)


def hours_left(rows: list[dict[str, Any]]) -> tuple[float, list[str]]:
    """An estimate of the CPU hours a plan's unfinished runs still need (:func:`progress`
    rows): each one's steps left times the hours per step (training and evaluations) of
    the finished runs of its :func:`run_kind`, or of its kind at any profile where none of
    its profile has finished; a diverged run needs nothing. Returns the hours and the
    runs no finished run could price (left out of the sum)."""
    done = [r for r in rows if r["state"] in ("done", "shipped") and r["step"]]

    def rate(match) -> float | None:
        xs = sorted(r["cpu_hours"] / r["step"] for r in done if match(r["kind"]))
        return xs[len(xs) // 2] if xs else None

    total, unpriced = 0.0, []
    for r in rows:
        if r["state"] in ("done", "shipped", "diverged"):
            continue
        per = rate(lambda k, r=r: k == r["kind"]) or rate(lambda k, r=r: k[1:] == r["kind"][1:])
        if per is None:
            unpriced.append(r["run"])
            continue
        total += (r["steps"] - r["step"]) * per
    return total, unpriced

