"""Notebook parameters: checked before compute, messages name the parameter."""

from __future__ import annotations

import json
import time
from pathlib import Path

import papermill as pm
import pytest

from lvae.config import PROFILES
from lvae.params import ParameterError, experiment_config
from lvae.reproduce import EXPERIMENT_NOTEBOOK


def test_defaults_take_the_profile_budget(tmp_path: Path):
    s = experiment_config(profile="quick", alpha=0.1, out_dir=str(tmp_path))
    q = PROFILES["quick"]
    assert (s.config.steps, s.config.resolution, s.config.pool_size) == \
        (q.steps, q.resolution, q.pool_size)
    assert s.config.profile == "quick"
    assert s.eval_kwargs == {"num_train": q.eval_train, "num_test": q.eval_test,
                             "num_fd": q.eval_fd, "seed": 0, "num_elbo": q.eval_elbo,
                             "fd_steps": q.fd_steps, "n_jobs": q.eval_jobs,
                             "gbt_seeds": q.gbt_seeds}
    assert s.run_dir == tmp_path / "quick" / "shapes3d-a1e-01-b1-synthetic-s0"
    s2 = experiment_config(profile="quick", steps=7, resolution=64, eval_fd=11, alpha=1)
    assert (s2.config.steps, s2.config.resolution, s2.eval_kwargs["num_fd"]) == (7, 64, 11)
    assert isinstance(s2.config.alpha, float)


@pytest.mark.parametrize("name, value, words", [
    ("alpha", -1, "'alpha' must be a number >= 0"),
    ("alpha", "1e-3", "'alpha' must be a finite number"),
    ("alpha", float("nan"), "'alpha'"),
    ("beta", None, "'beta'"),
    ("dataset", "mnist", "'dataset' must be one of"),
    ("neighborhood", "knn", "'neighborhood'"),
    ("profile", "huge", "'profile'"),
    ("steps", 0, "'steps' must be None or an int >= 1"),
    ("steps", 2.5, "'steps'"),
    ("resolution", 48, "'resolution'"),
    ("seed", -1, "'seed'"),
    ("k", True, "'k'"),
    ("eval_fd", "many", "'eval_fd'"),
    ("reduction", "mean", "'reduction'"),
    ("threads", 0, "'threads'"),
])
def test_bad_parameter_names_itself(name, value, words):
    with pytest.raises(ParameterError, match=words.replace("(", r"\(")) as err:
        experiment_config(**{name: value})
    assert repr(value) in str(err.value) or name == "alpha"


def test_combination_errors_come_from_the_config():
    with pytest.raises(ParameterError, match="pool_size"):
        experiment_config(profile="smoke", k=1000)


@pytest.mark.parametrize("value, words", [
    (-1, "'alpha' must be a number >= 0, got -1"),
    ("abc", "'alpha' must be a finite number >= 0, got 'abc'"),
])
def test_real_notebook_fails_fast_naming_the_parameter(tmp_path: Path, value, words):
    out = tmp_path / "bad.ipynb"
    t0 = time.perf_counter()
    with pytest.raises(pm.PapermillExecutionError) as err:
        pm.execute_notebook(str(EXPERIMENT_NOTEBOOK), str(out), progress_bar=False,
                            parameters={"alpha": value, "out_dir": str(tmp_path)},
                            kernel_name="python3")
    assert words in str(err.value.evalue)
    assert time.perf_counter() - t0 < 60
    # it stopped at the validation cell: nothing after it ran, no run folder was made
    cells = [c for c in json.loads(out.read_text())["cells"] if c["cell_type"] == "code"]
    failed = next(i for i, c in enumerate(cells) if "experiment_config(" in "".join(c["source"]))
    assert all(c["execution_count"] is None for c in cells[failed + 1:])
    assert not (tmp_path / "smoke").exists()


def test_papermill_sees_every_parameter():
    # papermill warns "Passed unknown parameter" for names it cannot parse in the cell
    import inspect

    names = list(pm.inspect_notebook(str(EXPERIMENT_NOTEBOOK)))
    assert names == list(inspect.signature(experiment_config).parameters)
