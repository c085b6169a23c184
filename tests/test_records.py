"""The typed records of a run folder: every file shipped under ``results/`` reads and writes
back byte for byte, a file cut short is no record, and a file of the wrong shape is an error
naming it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lvae import runfolder
from lvae.records import Eval, Milestone, Provenance, RecordError, Result
from lvae.report.results import IMPORTED_DIR

#: The records by file name, each with its writer's indent in a run folder (two spaces:
#: lvae.store.atomic_write_json) or as shipped (one: runfolder.shipped_json).
KINDS = {runfolder.RESULT: Result, runfolder.EVAL: Eval, runfolder.PROVENANCE: Provenance}


def _shipped_records() -> list[tuple[Path, type]]:
    found = [(p, KINDS[p.name]) for p in sorted(IMPORTED_DIR.rglob("*.json")) if p.name in KINDS]
    found += [(p, Milestone) for p in sorted(IMPORTED_DIR.rglob(f"{runfolder.MILESTONES}/*.json"))]
    return found


SHIPPED = _shipped_records()


def _written(record, kind: type, path: Path, tmp: Path) -> bytes:
    """``record`` as its writer writes it, in the layout ``path`` has."""
    if kind is Provenance:
        runfolder.write_provenance(tmp, record)
        return (tmp / runfolder.PROVENANCE).read_bytes()
    if kind is Milestone and path.read_text().startswith('{\n "'):  # shipped: one space
        return runfolder.shipped_json(record.to_dict())
    writer = {Result: runfolder.write_result, Eval: runfolder.write_eval,
              Milestone: runfolder.write_milestone}[kind]
    writer(tmp, record)
    out = (runfolder.milestone_path(tmp, record.step) if kind is Milestone
           else tmp / path.name)
    return out.read_bytes()


def test_every_shipped_record_is_found():
    counts = {k.__name__: sum(kind is k for _, kind in SHIPPED)
              for k in (Result, Eval, Provenance, Milestone)}
    assert all(n > 0 for n in counts.values()), counts


@pytest.mark.parametrize("path, kind", SHIPPED,
                         ids=[str(p.relative_to(IMPORTED_DIR)) for p, _ in SHIPPED])
def test_a_shipped_record_round_trips_byte_for_byte(path: Path, kind: type, tmp_path: Path):
    d = json.loads(path.read_text())
    record = kind.from_dict(d, path)
    assert record.to_dict() == d
    assert _written(record, kind, path, tmp_path) == path.read_bytes()
    # and the run folder's reader reads the same record
    folder = path.parent.parent if kind is Milestone else path.parent
    read = (runfolder.read_milestone(folder, record.step) if kind is Milestone else
            {Result: runfolder.read_result, Eval: runfolder.read_eval,
             Provenance: runfolder.read_provenance}[kind](folder))
    assert read is not None and read.to_dict() == d


def test_unknown_keys_are_kept_and_left_out_fields_stay_out():
    d = {"status": "completed", "steps_done": 3, "from_the_future": [1, 2]}
    r = Result.from_dict(d)
    assert r.extra == {"from_the_future": [1, 2]} and r.resumed is None
    assert r.to_dict() == d  # no "resumed": null added to a result that never had one
    assert not r.holds("resumed") and Result.from_dict({**d, "resumed": None}).holds("resumed")
    # made in code, a result writes resumed as training does (null: not resumed), and a
    # diverged run's message only when there is one
    assert Result(status="completed").to_dict() == {"status": "completed", "resumed": None}
    m = Milestone.from_dict({"step": 5, "dci_nocolor": {"disentanglement": 0.1}, "mig": 0.2})
    assert m.metrics == {"dci_nocolor": {"disentanglement": 0.1}, "mig": 0.2} and not m.extra


def test_a_record_cut_short_is_none_and_a_wrong_one_names_its_file(tmp_path: Path):
    assert runfolder.read_result(tmp_path) is None  # not written yet
    (tmp_path / runfolder.RESULT).write_text('{"status": "compl')  # cut short while written
    assert runfolder.read_result(tmp_path) is None
    for text, what in (("[1, 2]", "not a Result record"), ('{"steps_done": 3}', "no 'status'"),
                       ('{"status": "completed", "steps_done": "3"}', "'steps_done' is '3'")):
        (tmp_path / runfolder.RESULT).write_text(text)
        with pytest.raises(RecordError, match=what) as e:
            runfolder.read_result(tmp_path)
        assert str(tmp_path / runfolder.RESULT) in str(e.value)
        assert runfolder.finished(tmp_path) is None  # never trusted as finished either
    runfolder.milestone_path(tmp_path, 7).parent.mkdir()
    runfolder.milestone_path(tmp_path, 7).write_text('{"step": 7, "zshare": [0.5]}')
    with pytest.raises(RecordError, match=r"step_000007\.json: 'zshare'"):
        runfolder.read_milestones(tmp_path)
