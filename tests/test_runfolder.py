"""The run-folder model: the one definition of finished, the one log reader."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lvae import runfolder


def _write(folder: Path, **files: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        text = content if isinstance(content, str) else json.dumps(content)
        (folder / name.replace("_", ".")).write_text(text)
    return folder


def test_finished_needs_the_result_and_its_evaluation(tmp_path: Path):
    d = _write(tmp_path / "a", config_json={})
    assert runfolder.finished(d) is None and runfolder.state(d) == "training"
    _write(d, result_json={"status": "completed"})
    assert runfolder.finished(d) is None and runfolder.state(d) == "trained"
    _write(d, eval_json='{"status": "comp')  # cut short while written
    assert runfolder.finished(d) is None
    _write(d, eval_json={"status": "completed"})
    assert runfolder.finished(d) == "completed" and runfolder.state(d) == "finished"
    _write(d, result_json={"status": "diverged"})  # an evaluation of another ending
    assert runfolder.finished(d) is None
    _write(d, eval_json={"status": "diverged"})
    assert runfolder.finished(d) == "diverged" and runfolder.state(d) == "diverged"
    assert runfolder.state(tmp_path / "nothing") == "planned"


def test_the_log_reader_skips_a_line_being_written_and_names_a_damaged_one(tmp_path: Path):
    lines = [json.dumps({"step": s, "loss": 0.5}) for s in (50, 100)]
    d = _write(tmp_path / "a", log_jsonl="\n".join(lines) + '\n{"step": 150, "lo')
    assert [r["step"] for r in runfolder.read_log(d)] == [50, 100]
    assert runfolder.last_log(d)["step"] == 100
    _write(d, log_jsonl=lines[0] + "\n{oops\n" + lines[1] + "\n")
    with pytest.raises(ValueError, match=r"log\.jsonl: line 2 is not JSON"):
        runfolder.read_log(d)
    assert runfolder.read_log(tmp_path / "none") == [] and runfolder.last_log(tmp_path) == {}


def test_training_resumes_past_a_half_written_log_line(tmp_path: Path, blobs):
    """A kill in the middle of a log write left a line that crashed the resume's trim."""
    from lvae.config import TrainConfig
    from lvae.training import train

    cfg = TrainConfig(dataset="shapes3d", resolution=32, steps=8, batch_size=4, k=3,
                      pool_size=100, heldout_size=20, log_every=2, checkpoint_every=4,
                      alpha=1.0, seed=3)
    d = tmp_path / "run"
    train(cfg.replace(steps=8), d, dataset=blobs, progress=False)
    whole = runfolder.read_log(d)
    (d / "result.json").unlink()  # as if killed after step 8's line but mid-write of more
    with (d / "log.jsonl").open("a") as f:
        f.write('{"step": 10, "lo')
    train(cfg, d, dataset=blobs, progress=False)
    assert runfolder.read_log(d) == whole[:len(runfolder.read_log(d))]
    assert [r["step"] for r in runfolder.read_log(d)] == [2, 4, 6, 8]
