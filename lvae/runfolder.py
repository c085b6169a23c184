"""What a run folder is: its files, its records, when it is finished, and how its log is read.

One training run lives in one folder, written by :func:`lvae.training.train` and
:func:`lvae.evaluation.evaluate`, read by the grid's runner (:mod:`lvae.report.reproduce`), the
study's workers (:mod:`lvae.report.study.workers`) and the results store
(:mod:`lvae.report.results`). This module
is the one place that knows its layout (the file names below), the one reader and writer of
its records (:func:`read_result`, :func:`read_eval`, :func:`read_provenance`,
:func:`read_milestones` and their writers; the records are :mod:`lvae.records`), the one
definition of *finished* (:func:`finished`), and the one reader of its training log
(:func:`read_log`, :func:`last_log`); the one lock on it is :func:`lvae.store.lock_run`.

Every reader treats a file that is missing or does not parse (cut short while written) as
absent (None), and raises :class:`lvae.records.RecordError`, naming the file, for one that
parses but is not its record.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from lvae.records import Eval, Milestone, Provenance, RecordError, Result
from lvae.store import atomic_write_bytes, atomic_write_json

T = TypeVar("T")

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
    either file, which then does not parse; a file that is not its record is not trusted
    either).

    Every reader that decides "this run is done" asks this (the runner adds its own checks
    on top: the same config, the same evaluation sizes, an executed notebook).
    """
    result = _trusted(read_result, folder)
    if result is None or result.status not in ENDINGS:
        return None
    ev = _trusted(read_eval, folder)
    return result.status if ev is not None and ev.status == result.status else None


def state(folder: str | Path) -> str:
    """``"finished"``, ``"diverged"`` (finished by a divergence), ``"trained"`` (training
    ended, evaluation not written), ``"training"`` (begun: a config is there) or
    ``"planned"``."""
    folder = Path(folder)
    ending = finished(folder)
    if ending is not None:
        return "finished" if ending == "completed" else "diverged"
    result = _trusted(read_result, folder)
    if result is not None and result.status in ENDINGS:
        return "trained"
    return "training" if (folder / CONFIG).is_file() else "planned"


def _trusted(read: Callable[[str | Path], T | None], folder: str | Path) -> T | None:
    """``read(folder)``, with a file that is not its record read as no file."""
    try:
        return read(folder)
    except RecordError:
        return None


# --------------------------------------------------------------------------- the records


def _read(path: Path, make: Callable[[Any, Path], T]) -> T | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):  # missing, or cut short while written (or not text)
        return None
    return make(data, path)


def _settings(data: Any, path: Path) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise RecordError(f"{path}: not a run's settings (a JSON object), but "
                          f"{type(data).__name__}")
    return data


def read_config(folder: str | Path) -> dict[str, Any] | None:
    """The run's settings as written (``config.json``, the fields of
    :class:`lvae.config.TrainConfig`), or None."""
    return _read(Path(folder) / CONFIG, _settings)


def read_result(folder: str | Path) -> Result | None:
    """How training ended (``result.json``), or None while it has not."""
    return _read(Path(folder) / RESULT, Result.from_dict)


def write_result(folder: str | Path, result: Result) -> None:
    atomic_write_json(Path(folder) / RESULT, result.to_dict())


def read_eval(folder: str | Path) -> Eval | None:
    """The final evaluation (``eval.json``), or None before it is written."""
    return _read(Path(folder) / EVAL, Eval.from_dict)


def write_eval(folder: str | Path, ev: Eval) -> None:
    atomic_write_json(Path(folder) / EVAL, ev.to_dict())


def read_provenance(folder: str | Path) -> Provenance | None:
    """A shipped run's ``provenance.json``, or None (a run folder that was not shipped)."""
    return _read(Path(folder) / PROVENANCE, Provenance.from_dict)


def write_provenance(folder: str | Path, prov: Provenance) -> None:
    atomic_write_bytes(Path(folder) / PROVENANCE, shipped_json(prov.to_dict()))


def recorded_sha256(folder: str | Path) -> Mapping[str, str]:
    """The sha256 of each file a shipped run's provenance records ({} when none)."""
    prov = read_provenance(folder)
    return (prov.sha256 if prov is not None else None) or {}


def shipped_json(record: Mapping[str, Any]) -> bytes:
    """A record as the files shipped under ``results/`` hold it (``provenance.json``,
    ``milestones/``): one-space indent, sorted keys; a run folder's own records are written
    with :func:`lvae.store.atomic_write_json`'s two spaces."""
    return (json.dumps(record, indent=1, sort_keys=True) + "\n").encode()


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


def read_milestone(folder: str | Path, step: int) -> Milestone | None:
    """The evaluation of the milestone at ``step``, or None."""
    return _read(milestone_path(folder, step), Milestone.from_dict)


def write_milestone(folder: str | Path, milestone: Milestone) -> None:
    atomic_write_json(milestone_path(folder, milestone.step), milestone.to_dict())


def read_milestones(folder: str | Path) -> list[Milestone]:
    """Every milestone record of a run folder, by step (one cut short while written is not
    a record)."""
    found = Path(folder) / MILESTONES
    paths = sorted(found.glob("step_*.json")) if found.is_dir() else []
    return [m for m in (_read(p, Milestone.from_dict) for p in paths) if m is not None]
