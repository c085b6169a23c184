"""The reference study: long CPU runs, evaluated along the way (DCI against training steps).

The quick profile's 300 steps demonstrate the pipeline; they cannot test the paper's claims.
The study trains a few configurations long enough to, and evaluates each at its profile's
``milestones`` so the book can show whether a gap between configurations is opening,
closing, or not there yet. It is built to run for days on a small machine, across sessions:

* :data:`STUDY` lists the runs in priority order (the pilot first, then 3 seeds of the
  three configurations the headline claims need, then the rest as compute allows);
* :func:`work` is one worker: it takes the first run that is neither finished nor held by
  another worker (an ``flock`` on ``<run>/.lock``, released by the OS when a worker dies),
  trains it with :func:`lvae.training.train` (resumable, checkpointed every few minutes),
  evaluates each milestone snapshot as it is written, then the final model with
  :func:`lvae.evaluation.evaluate`, and moves on. Start two, one thread each, on 2 cores;
  kill them at any time; start them again later;
* :func:`milestone_eval` writes ``milestones/step_NNNNNN.json`` per snapshot: DCI with and
  without colour on the meta-encoder's means, and :func:`z_share`, the measure of the
  overfitting the paper's Figure 3 argues against;
* :func:`progress` says where every run stands (``python -m lvae study status``).
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lvae.config import PROFILES
from lvae.grid import Experiment
from lvae.params import experiment_config
from lvae.store import atomic_write_json, git_revision, now

#: DCI sample sizes at a milestone: smaller than the final evaluation's, one GBT seed.
MILESTONE_DCI = {"num_train": 2000, "num_test": 1000}
#: References (rows) and prior codes (columns) of the z-share grid.
ZSHARE_REFS, ZSHARE_CODES = 16, 16
MILESTONE_VERSION = 1


@dataclass(frozen=True)
class StudyRun:
    """One run of the study: an experiment, the profile it runs at, and why it is there."""

    experiment: Experiment
    profile: str
    purpose: str

    @property
    def name(self) -> str:
        return f"{self.profile}/{self.experiment.run_id}"


def _shapes(alpha: float, seed: int, beta: float = 1.0, neighborhood: str = "synthetic"
            ) -> Experiment:
    return Experiment("shapes3d", alpha, beta, neighborhood, seed)


def _plan() -> list[StudyRun]:
    pilot = "pilot: "
    runs = [
        StudyRun(_shapes(0.0, 0), "study", pilot + "vanilla VAE at lr 1e-3 (seed 0 of the study)"),
        StudyRun(_shapes(1.0, 0), "study", pilot + "alpha = 1 at lr 1e-3 (seed 0 of the study)"),
        StudyRun(_shapes(0.0, 0), "cpu", pilot + "vanilla VAE at the paper's lr 1e-4"),
        StudyRun(_shapes(0.0, 0, beta=16.0), "study", "beta-VAE baseline (Table 1)"),
    ]
    for s in (1, 2):
        runs += [StudyRun(_shapes(0.0, s), "study", "vanilla VAE (Table 1)"),
                 StudyRun(_shapes(0.0, s, beta=16.0), "study", "beta-VAE baseline (Table 1)")]
    runs += [StudyRun(_shapes(1.0, s), "study", "alpha = 1 (Table 1 headline)") for s in (1, 2)]
    runs += [StudyRun(_shapes(1e-1, s), "study", "alpha = 0.1 (Table 1)") for s in range(3)]
    runs += [StudyRun(_shapes(1.0, s, neighborhood="input_l2"), "study",
                      "alpha = 1, input-space l2 neighbours (Table 5)") for s in range(3)]
    runs += [StudyRun(_shapes(a, 0), "study", f"alpha = {a:g}: does it diverge? (Table 1)")
             for a in (10.0, 100.0)]
    return runs


#: The study's runs in the order workers take them (the book's reproduce page states it).
STUDY: tuple[StudyRun, ...] = tuple(_plan())


def run_dir(out: str | Path, sr: StudyRun) -> Path:
    return Path(out) / sr.profile / sr.experiment.run_id


def setup(out: str | Path, sr: StudyRun):
    """The run's validated :class:`lvae.params.ExperimentSetup` (config and folder)."""
    e = sr.experiment
    return experiment_config(dataset=e.dataset, alpha=e.alpha, beta=e.beta,
                             neighborhood=e.neighborhood, seed=e.seed, profile=sr.profile,
                             out_dir=str(out))


# --------------------------------------------------------------------------- measures


def z_share(samples: np.ndarray) -> dict[str, float]:
    """How much of the localized generations' spread the prior code z accounts for.

    ``samples`` are pixel means ``(R, M, ...)``: row r = one reference's adapted decoder,
    column m = one shared prior code (the paper's Figure 3). With ``within_row`` the mean
    per-pixel variance across z in a row and ``across_refs`` the mean per-pixel variance
    across references in a column, ``z_share = within_row / (within_row + across_refs)``:

    * near 0: each row is one image whatever z is: the adapted decoder reproduces its
      reference and z carries nothing (the overfitting Figure 3 argues against);
    * 1: the reference changes nothing (the vanilla VAE, alpha = 0);
    * in between: z and the reference both shape the image, as Figure 3 shows.
    """
    s = np.asarray(samples, dtype=np.float64)
    if s.ndim < 3 or s.shape[0] < 2 or s.shape[1] < 2:
        raise ValueError(f"samples must be (references >= 2, codes >= 2, ...), got {s.shape}")
    within_row = float(s.var(axis=1).mean())
    across_refs = float(s.var(axis=0).mean())
    total = within_row + across_refs
    return {"z_share": within_row / total if total > 0 else float("nan"),
            "within_row": within_row, "across_refs": across_refs}


def _read_json(path: Path) -> Any:
    """A result file's content, or None when it is missing or does not parse (never trusted)."""
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return None


def milestone_path(rdir: str | Path, step: int) -> Path:
    return Path(rdir) / "milestones" / f"step_{step:06d}.json"


def milestone_eval(rdir: str | Path, step: int, seed: int = 0, dataset=None,
                   force: bool = False) -> dict[str, Any]:
    """DCI (with and without colour, meta codes) and :func:`z_share` of one snapshot."""
    from lvae.data.base import to_tensor
    from lvae.evaluation import _jsonable, disentanglement_metrics
    from lvae.generation import localized_samples, represent
    from lvae.training import load_run

    path = milestone_path(rdir, step)
    old = _read_json(path)
    if not force and isinstance(old, dict) and old.get("version") == MILESTONE_VERSION:
        return old
    t0 = time.perf_counter()
    run = load_run(rdir, snapshot=step, dataset=dataset)
    metrics = disentanglement_metrics(run.dataset, represent(run, "meta"), seed=seed,
                                      n_jobs=1, **MILESTONE_DCI)
    rs = np.random.RandomState(seed)
    refs_idx = run.heldout[rs.choice(len(run.heldout), ZSHARE_REFS, replace=False)]
    refs = to_tensor(run.dataset.images(np.sort(refs_idx)))
    z = torch.from_numpy(rs.standard_normal((ZSHARE_CODES, run.arch.latent_dim))
                         .astype(np.float32))
    samples = localized_samples(run, refs, z, seed=seed).numpy()
    record = {
        "step": step,
        "version": MILESTONE_VERSION,
        **{k: v for k, v in metrics.items() if k.startswith(("dci_", "mig"))},
        "zshare": z_share(samples),
        "sample_counts": dict(MILESTONE_DCI, zshare_refs=ZSHARE_REFS,
                              zshare_codes=ZSHARE_CODES),
        "wall_time_s": round(time.perf_counter() - t0, 2),
        "evaluated": now(),
        "commit": git_revision(),
    }
    record = _jsonable(record)
    atomic_write_json(path, record)
    return record


def milestones(rdir: str | Path) -> list[dict[str, Any]]:
    """Every parsed milestone record of a run folder, by step."""
    folder = Path(rdir) / "milestones"
    recs = [_read_json(p) for p in sorted(folder.glob("step_*.json"))] if folder.is_dir() else []
    return [r for r in recs if isinstance(r, dict) and "step" in r]


# --------------------------------------------------------------------------- workers


@contextmanager
def claimed(rdir: Path) -> Iterator[bool]:
    """Hold ``<rdir>/.lock`` for this process; yields False when another worker holds it."""
    rdir.mkdir(parents=True, exist_ok=True)
    with (rdir / ".lock").open("a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()} {now()}\n")
        f.flush()
        try:
            yield True
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def is_done(rdir: Path) -> bool:
    """Trained, every milestone evaluated, and a parseable eval.json."""
    result = _read_json(rdir / "result.json")
    ev = _read_json(rdir / "eval.json")
    return isinstance(result, dict) and isinstance(ev, dict) and "status" in ev


def complete(out: str | Path, sr: StudyRun, log=print) -> dict[str, Any]:
    """Train, evaluate the milestones and the final model of one run (all resumable)."""
    from lvae.evaluation import evaluate
    from lvae.training import snapshots, train

    st = setup(out, sr)
    prof = PROFILES[sr.profile]

    def on_snapshot(step: int, _path: Path) -> None:
        rec = milestone_eval(st.run_dir, step)
        log(f"{sr.name} step {step}: DCI w/o colour D "
            f"{rec.get('dci_nocolor', {}).get('disentanglement', float('nan')):.3f}, "
            f"z-share {rec['zshare']['z_share']:.3f} ({rec['wall_time_s']:.0f} s)")

    for step in sorted(snapshots(st.run_dir)):  # snapshots a killed worker left unevaluated
        on_snapshot(step, Path())
    result = train(st.config, st.run_dir, progress=False, snapshot_steps=prof.milestones,
                   on_snapshot=on_snapshot)
    log(f"{sr.name}: {result['status']} at step {result['steps_done']}, "
        f"{result['wall_time_s'] / 3600:.2f} h")
    kwargs = {k: v for k, v in prof.eval_overrides().items() if k != "n_jobs"}
    return evaluate(st.run_dir, num_train=prof.eval_train, num_test=prof.eval_test,
                    num_fd=prof.eval_fd, seed=0, n_jobs=1, progress=False, **kwargs)


def work(out: str | Path, limit: int | None = None, log=print) -> int:
    """One worker: complete runs of :data:`STUDY` in order until none is left (or ``limit``).

    Returns how many runs it completed. Runs held by another worker are skipped.
    """
    torch.set_num_threads(1)
    done = 0
    while limit is None or done < limit:
        for sr in STUDY:
            rdir = run_dir(out, sr)
            if is_done(rdir):
                continue
            with claimed(rdir) as mine:
                if not mine:
                    continue
                if is_done(rdir):  # finished by another worker between the checks
                    continue
                log(f"{now()} worker {os.getpid()} takes {sr.name} ({sr.purpose})")
                complete(out, sr, log=log)
                done += 1
                break
        else:
            log(f"{now()} worker {os.getpid()}: no run left to take")
            return done
    return done


def progress(out: str | Path) -> list[dict[str, Any]]:
    """Where each run of the study stands: steps, seconds per step, CPU hours, milestones."""
    rows = []
    for sr in STUDY:
        rdir = run_dir(out, sr)
        cfg = _read_json(rdir / "config.json") or {}
        result = _read_json(rdir / "result.json")
        last: dict[str, Any] = {}
        log_path = rdir / "log.jsonl"
        if log_path.exists():
            lines = [ln for ln in log_path.read_text().splitlines() if ln.strip()]
            if lines:
                last = json.loads(lines[-1])
        steps = cfg.get("steps", PROFILES[sr.profile].steps)
        step = last.get("step", 0)
        wall = last.get("wall_time_s", 0.0)
        rows.append({
            "run": sr.name,
            "purpose": sr.purpose,
            "state": ("done" if is_done(rdir) else result["status"] if result
                      else "training" if step else "planned"),
            "step": step,
            "steps": steps,
            "sec_per_step": round(wall / step, 3) if step else None,
            "cpu_hours": round((result or {}).get("cpu_time_s", wall) / 3600, 2),
            "milestones": [m["step"] for m in milestones(rdir)],
        })
    return rows
