"""What a run folder is: its files, when it is finished, and how its log is read.

One training run lives in one folder, written by :func:`lvae.training.train` and
:func:`lvae.evaluation.evaluate`, read by the grid's runner (:mod:`lvae.report.reproduce`), the
study's workers (:mod:`lvae.report.study`) and the results store
(:mod:`lvae.report.results`). This module
is the one place that knows its layout (the file names below), the one definition of
*finished* (:func:`finished`), and the one reader of its training log (:func:`read_log`,
:func:`last_log`); the one lock on it is :func:`lvae.store.lock_run`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from lvae.store import read_json_or_none

#: The run's settings (:class:`lvae.config.TrainConfig`); written first.
CONFIG = "config.json"
#: How training ended (status "completed" or "diverged", time, provenance); written last.
RESULT = "result.json"
#: The final evaluation (:func:`lvae.evaluation.evaluate`); its status repeats the result's.
EVAL = "eval.json"
#: One JSON object per logged step (step, loss, inner_loss, recon, kl, wall_time_s).
LOG = "log.jsonl"
#: Parameters, Adam's state and both generators: what training resumes from.
CHECKPOINT = "checkpoint.pt"
#: The final parameters in float16, as shipped under ``results/`` (no optimiser state).
MODEL = "model.pt"
#: A shipped run's commits, machine, times and the sha256 of every shipped file.
PROVENANCE = "provenance.json"
#: Parameters at the milestone steps (``snapshots/step_NNNNNN.pt``) and their evaluations
#: (``milestones/step_NNNNNN.json``).
SNAPSHOTS, MILESTONES = "snapshots", "milestones"
#: What a shipped run draws at each milestone (``<step>/<name>`` uint8 arrays).
PICTURES = "pictures.npz"

#: The statuses a finished run ends with.
ENDINGS = ("completed", "diverged")


def finished(folder: str | Path) -> str | None:
    """``"completed"`` or ``"diverged"`` when the run is finished: its result says how
    training ended and its evaluation, with the same status, is written (a diverged run's
    records the divergence); None otherwise (planned, training, or cut short while writing
    either file, which then does not parse).

    Every reader that decides "this run is done" asks this (the runner adds its own checks
    on top: the same config, the same evaluation sizes, an executed notebook).
    """
    folder = Path(folder)
    result = read_json_or_none(folder / RESULT)
    status = result.get("status") if isinstance(result, dict) else None
    if status not in ENDINGS:
        return None
    ev = read_json_or_none(folder / EVAL)
    return status if isinstance(ev, dict) and ev.get("status") == status else None


def state(folder: str | Path) -> str:
    """``"finished"``, ``"diverged"`` (finished by a divergence), ``"trained"`` (training
    ended, evaluation not written), ``"training"`` (begun: a config is there) or
    ``"planned"``."""
    folder = Path(folder)
    ending = finished(folder)
    if ending is not None:
        return "finished" if ending == "completed" else "diverged"
    result = read_json_or_none(folder / RESULT)
    if isinstance(result, dict) and result.get("status") in ENDINGS:
        return "trained"
    return "training" if (folder / CONFIG).is_file() else "planned"


def read_log(folder: str | Path) -> list[dict[str, Any]]:
    """Every line of the run's ``log.jsonl``, parsed ([] when there is none).

    A last line that does not parse is one a killed process was writing: it is skipped,
    as training's resume drops it. Any other line that does not parse means the file was
    damaged, and is an error naming the file and the line.
    """
    path = Path(folder) / LOG
    if not path.is_file():
        return []
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    out = []
    for i, line in enumerate(lines):
        try:
            rec = json.loads(line)
        except ValueError:
            if i == len(lines) - 1:
                break
            raise ValueError(f"{path}: line {i + 1} is not JSON ({line[:60]!r}); the log is "
                             "damaged: restore it or retrain the run") from None
        out.append(rec)
    return out


def last_log(folder: str | Path, tail: int = 8192) -> dict[str, Any]:
    """The newest whole line of the run's log ({} when there is none), read from the end of
    the file: the log of a long run is large, and a line being written is skipped."""
    path = Path(folder) / LOG
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - tail))
            lines = f.read().splitlines()
    except OSError:
        return {}
    for line in reversed(lines):
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict) and isinstance(rec.get("step"), int):
            return rec
    return {}


def _step_file(folder: str | Path, sub: str, step: int, suffix: str) -> Path:
    return Path(folder) / sub / f"step_{step:06d}{suffix}"


def snapshot_path(folder: str | Path, step: int) -> Path:
    """Where the parameters at ``step`` are kept (``snapshots/step_001000.pt``)."""
    return _step_file(folder, SNAPSHOTS, step, ".pt")


def snapshots(folder: str | Path) -> dict[int, Path]:
    """The snapshots a run folder holds, by step."""
    found = Path(folder) / SNAPSHOTS
    paths = sorted(found.glob("step_*.pt")) if found.is_dir() else []
    return {int(p.stem.split("_")[1]): p for p in paths}


def milestone_path(folder: str | Path, step: int) -> Path:
    """Where a milestone's evaluation is kept (``milestones/step_001000.json``)."""
    return _step_file(folder, MILESTONES, step, ".json")


def pictures_path(folder: str | Path, step: int) -> Path:
    """Where a milestone's pictures are kept beside its record (``step_001000.npz``)."""
    return _step_file(folder, MILESTONES, step, ".npz")


def milestones(folder: str | Path) -> list[dict[str, Any]]:
    """Every milestone record of a run folder that parses, by step (one cut short while
    written is not a record)."""
    found = Path(folder) / MILESTONES
    paths = sorted(found.glob("step_*.json")) if found.is_dir() else []
    recs = [read_json_or_none(p) for p in paths]
    return [r for r in recs if isinstance(r, dict) and "step" in r]
