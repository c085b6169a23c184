"""The records a run folder holds, typed: how training ended (:class:`Result`), the final
evaluation (:class:`Eval`), a milestone's evaluation (:class:`Milestone`) and a shipped
run's provenance (:class:`Provenance`).

Each is a frozen dataclass made from the file's JSON object by ``from_dict`` and turned
back by ``to_dict``, losing nothing: keys a record does not name are kept in ``extra``
(files of older or newer code still load), a field the file leaves out stays out and one
it holds as null stays null. So ``R.from_dict(d).to_dict() == d`` for every file written,
and a record written back by its writer is the file it was read from, byte for byte
(``tests/test_records.py`` checks every one under ``results/``). A file that parses but is
not its record (not an object, a required field missing, a field of the wrong type) is a
:class:`RecordError` naming the file. :mod:`lvae.runfolder` reads and writes them.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, Self, Union, get_args, get_origin, get_type_hints

#: Fields every record has besides its own: not keys of its file.
_OWN = ("extra", "nulls")


class RecordError(ValueError):
    """A run-folder file that parses but is not the record it should be; the message names
    the file and what is wrong with it."""


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return get_type_hints(cls)


def _fits(hint: Any, value: Any) -> bool:
    """Whether a JSON value is of a field's declared type (an int is a float, a bool is
    neither)."""
    if hint is Any:
        return True
    if get_origin(hint) in (Union, types.UnionType):
        return any(_fits(h, value) for h in get_args(hint) if h is not type(None))
    base = get_origin(hint) or hint
    if base in (int, float) and isinstance(value, bool):
        return False
    if base is float:
        return isinstance(value, int | float)
    return isinstance(value, base)


@dataclass(frozen=True, kw_only=True)
class _Record:
    """What every record shares: ``from_dict``, ``to_dict``, ``extra`` and the nulls."""

    #: Fields written as null when they are None (the current writer always writes them);
    #: any other field that is None is left out of the file.
    NULLS: ClassVar[frozenset[str]] = frozenset()
    #: Keys gathered into the ``metrics`` field (they depend on the dataset: ``dci``,
    #: ``dci_color``, ``mig_cars3d``...), by how they start.
    METRIC_PREFIXES: ClassVar[tuple[str, ...]] = ()

    #: The file's keys this record does not name, as they were.
    extra: Mapping[str, Any] = field(default_factory=dict)
    #: The fields written as null (None: :data:`NULLS`); a record read from a file keeps
    #: that file's.
    nulls: frozenset[str] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_dict(cls, d: Any, source: str | Path | None = None) -> Self:
        """The record a file's JSON object holds; :class:`RecordError` naming ``source``
        (the file) when it is not one."""
        where = f"{source or cls.__name__}"
        if not isinstance(d, dict):
            raise RecordError(f"{where}: not a {cls.__name__} record (a JSON object), but "
                              f"{type(d).__name__}: {str(d)[:60]!r}")
        hints, kwargs = _hints(cls), {}
        names = {f.name for f in fields(cls)} - set(_OWN)
        for f in fields(cls):
            if f.name in _OWN:
                continue
            if f.name == "metrics":
                kwargs[f.name] = {k: v for k, v in d.items()
                                  if k.startswith(cls.METRIC_PREFIXES) and k not in names}
                continue
            value = d.get(f.name)
            required = f.default is MISSING and f.default_factory is MISSING
            if value is None and required:
                raise RecordError(f"{where}: no {f.name!r}, which every {cls.__name__} "
                                  "record has")
            if value is not None and not _fits(hints[f.name], value):
                raise RecordError(f"{where}: {f.name!r} is {value!r:.80}, not of type "
                                  f"{hints[f.name]}")
            if f.name in d:
                kwargs[f.name] = value
        metrics = kwargs.get("metrics", {})
        extra = {k: v for k, v in d.items() if k not in names and k not in metrics}
        nulls = frozenset(k for k in kwargs if d.get(k, 0) is None)
        return cls(**kwargs, extra=extra, nulls=nulls)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of the file: ``from_dict``'s input, exactly."""
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name == "metrics":
                out.update(self.metrics)  # type: ignore[attr-defined]
            elif f.name not in _OWN and self.holds(f.name):
                out[f.name] = getattr(self, f.name)
        return {**out, **self.extra}

    def holds(self, name: str) -> bool:
        """Whether the file holds the field ``name`` (as a value or as null)."""
        nulls = self.NULLS if self.nulls is None else self.nulls
        return getattr(self, name) is not None or name in nulls


@dataclass(frozen=True, kw_only=True)
class Result(_Record):
    """``result.json``: how training ended (:func:`lvae.training.train` writes it last)."""

    NULLS = frozenset({"resumed"})

    #: "completed" or "diverged" (``lvae.runfolder.ENDINGS``).
    status: str
    steps_done: int | None = None
    #: the steps the config asked for
    steps: int | None = None
    final_loss: float | None = None
    wall_time_s: float | None = None
    sec_per_step: float | None = None
    cpu_time_s: float | None = None
    #: the inner step on the summed loss (``LossSpec.effective_alpha``)
    effective_alpha: float | None = None
    #: when the run's first step began, resumed or not
    started: str | None = None
    #: when the last process took it up from a checkpoint (null: it did not; left out by
    #: results written before the first start was kept)
    resumed: str | None = None
    finished: str | None = None
    #: commit, commits, profile, seed and machine (:func:`lvae.store.machine`)
    provenance: Mapping[str, Any] | None = None
    #: why a diverged run stopped
    message: str | None = None

    @property
    def machine(self) -> Mapping[str, Any]:
        """Where it trained (``provenance.machine``; empty when not recorded)."""
        return (self.provenance or {}).get("machine") or {}


@dataclass(frozen=True, kw_only=True)
class Eval(_Record):
    """``eval.json``: the final evaluation (:func:`lvae.evaluation.evaluate`). A diverged
    run's holds its status, message, config, version and time; a completed run's the
    metrics and how they were computed."""

    #: a diverged run's evaluation holds its config, null when it was unreadable (a
    #: completed one is made from its whole dict, nulls included: ``adapted`` at alpha = 0)
    NULLS = frozenset({"config"})
    METRIC_PREFIXES = ("dci", "mig", "gbt_sd")

    #: the result's status, repeated (``lvae.runfolder.finished`` checks they agree)
    status: str
    #: the sample counts, seeds and versions it was computed with: an evaluation with
    #: other ``params`` is computed again
    params: Mapping[str, Any] | None = None
    #: which encoder's means the headline metrics use ("meta")
    codes: str | None = None
    #: DCI, MIG and the GBT seeds' spread, by key (``dci_color``, ``dci_nocolor``, ``mig``,
    #: ``dci_gbt``, ``gbt_sd``...: the keys depend on the dataset)
    metrics: Mapping[str, Any] = field(default_factory=dict)
    #: the same metrics on the adapted encoder's means (null at alpha = 0)
    adapted: Mapping[str, Any] | None = None
    frechet: Mapping[str, Any] | None = None
    elbo: Mapping[str, Any] | None = None
    details: Mapping[str, Any] | None = None
    sample_counts: Mapping[str, Any] | None = None
    #: seconds per stage and ``total``
    wall_time_s: Mapping[str, Any] | None = None
    config: Mapping[str, Any] | None = None
    provenance: Mapping[str, Any] | None = None
    message: str | None = None
    eval_version: int | None = None
    evaluated: str | None = None


@dataclass(frozen=True, kw_only=True)
class Milestone(_Record):
    """``milestones/step_NNNNNN.json``: one snapshot's evaluation
    (:func:`lvae.report.study.measures.milestone_eval`)."""

    METRIC_PREFIXES = ("dci_", "mig")

    step: int
    version: int | None = None
    #: DCI with and without colour and MIG on the meta-encoder's means, by key
    metrics: Mapping[str, Any] = field(default_factory=dict)
    #: :func:`lvae.report.study.measures.z_share` of the Figure 3 grid
    zshare: Mapping[str, Any] | None = None
    #: the memorisation readout (:func:`lvae.report.study.measures.readout`); absent from
    #: milestones evaluated before it existed
    readout: Mapping[str, Any] | None = None
    sample_counts: Mapping[str, Any] | None = None
    #: the pictures kept beside the record (``step_NNNNNN.npz``)
    pictures: str | None = None
    wall_time_s: float | None = None
    evaluated: str | None = None
    commit: str | None = None
    #: set when the readout was added later (to an older record, or from ``model.pt``)
    readout_wall_time_s: float | None = None
    readout_from: str | None = None


@dataclass(frozen=True, kw_only=True)
class Provenance(_Record):
    """``provenance.json`` of a shipped run (:func:`lvae.report.study.shipping.ship`): its
    commits, machine, times, budget and the sha256 of every file shipped with it."""

    #: "completed", "diverged", or "training" for a copy shipped while it trains
    status: str
    profile: str | None = None
    steps: int | None = None
    steps_done: int | None = None
    lr: float | None = None
    commits: list[Any] | None = None
    machine: Mapping[str, Any] | None = None
    wall_time_s: float | None = None
    cpu_time_s: float | None = None
    #: the first step (``started``) and the last take-up (``resumed``), as training
    #: records them; ``last_started`` for results that kept only the last process's start
    started: str | None = None
    resumed: str | None = None
    last_started: str | None = None
    finished: str | None = None
    shipped: str | None = None
    shipped_by: str | None = None
    #: file (relative path) -> hex sha256
    sha256: Mapping[str, str] | None = None
    #: when hashes were added to a run shipped before they were kept
    sha256_recorded: str | None = None
