"""Notebook parameters: checked before compute, messages name the parameter."""

from __future__ import annotations

import json
import time
from pathlib import Path

import papermill as pm
import pytest

from lvae.config import PROFILES, EvalSettings
from lvae.report.params import ParameterError, experiment_config
from lvae.report.reproduce import EXPERIMENT_NOTEBOOK


def test_defaults_take_the_profile_budget(tmp_path: Path):
    s = experiment_config(profile="quick", alpha=0.1, out_dir=str(tmp_path))
    q = PROFILES["quick"]
    assert (s.config.steps, s.config.resolution, s.config.pool_size) == \
        (q.steps, q.resolution, q.pool_size)
    assert s.config.profile == "quick"
    assert s.evaluation == EvalSettings(num_train=q.eval_train, num_test=q.eval_test,
                                        num_fd=q.eval_fd, seed=0, num_elbo=q.eval_elbo,
                                        fd_steps=q.fd_steps, n_jobs=q.eval_jobs,
                                        gbt_seeds=q.gbt_seeds,
                                        gbt_seeds_by_dataset=q.gbt_seeds_by_dataset)
    assert s.run_dir == tmp_path / "quick" / "shapes3d-a1e-01-b1-synthetic-s0"
    s2 = experiment_config(profile="quick", steps=7, resolution=64, eval_fd=11, alpha=1)
    assert (s2.config.steps, s2.config.resolution, s2.evaluation.num_fd) == (7, 64, 11)
    assert isinstance(s2.config.alpha, float)


@pytest.mark.parametrize("name, value, words", [
    ("alpha", -1, "'alpha' must be a finite number >= 0"),
    ("alpha", "1e-3", "'alpha' must be a finite number >= 0"),
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
    (-1, "'alpha' must be a finite number >= 0 (0 = vanilla), got -1"),
    ("abc", "'alpha' must be a finite number >= 0 (0 = vanilla), got 'abc'"),
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


# --------------------------------------------------------------------------- issue 15


def test_a_budget_other_than_the_profiles_is_labelled_custom(tmp_path: Path):
    """-p profile quick -p steps 6 is not a quick run: its label says custom, its folder is
    apart, and the settings it changed are named."""
    from lvae.report.params import CUSTOM, experiment_of

    base = experiment_config(profile="quick", out_dir=str(tmp_path))
    assert base.config.profile == "quick" and base.custom == ()
    assert experiment_config(profile="quick", steps=100, lr=1e-4,
                             out_dir=str(tmp_path)).run_dir == base.run_dir  # the same budget
    short = experiment_config(profile="quick", steps=6, out_dir=str(tmp_path))
    assert short.config.profile == CUSTOM and short.custom == ("steps",)
    assert short.run_dir.parent == tmp_path / "custom"
    assert short.run_id.startswith(base.run_id + "-c") and short.run_dir.name == short.run_id
    for kw, names in [({"lr": 1e-3}, ("lr",)), ({"resolution": 64}, ("resolution",)),
                      ({"k": 5, "first_order": True}, ("first_order", "k")),
                      ({"checkpoint_every": 50}, ("checkpoint_every",))]:
        s = experiment_config(profile="quick", out_dir=str(tmp_path), **kw)
        assert s.config.profile == CUSTOM and s.custom == names, kw
        assert s.run_id not in (base.run_id, short.run_id)
    # the study profile's lr (1e-3) is its budget, not a change
    study = experiment_config(profile="study", out_dir=str(tmp_path))
    assert study.config.lr == PROFILES["study"].lr and study.config.profile == "study"
    assert experiment_config(profile="study", lr=1e-4).config.profile == CUSTOM
    # the id follows from the stored config alone (what lvae.report.results reads back)
    for s in (base, short, study):
        stored = json.loads(s.config.to_json())
        assert experiment_of(stored).run_id == s.run_id == experiment_of(s.config).run_id


def test_training_settings_are_notebook_parameters():
    s = experiment_config(profile="smoke", lr=3e-4, first_order=True, likelihood="gaussian",
                          latent_refresh=7, checkpoint_every=2, neighborhood="latent_knn")
    c = s.config
    assert (c.lr, c.first_order, c.likelihood, c.latent_refresh, c.checkpoint_every) == \
        (3e-4, True, "gaussian", 7, 2)
    d = experiment_config(profile="smoke")
    assert (d.config.lr, d.config.first_order, d.config.likelihood) == \
        (PROFILES["smoke"].lr, False, "bernoulli")
    names = set(pm.inspect_notebook(str(EXPERIMENT_NOTEBOOK)))
    assert {"lr", "first_order", "likelihood", "latent_refresh", "checkpoint_every"} <= names


@pytest.mark.parametrize("name, value", [
    ("lr", 0), ("lr", "1e-3"), ("lr", float("inf")), ("first_order", 1),
    ("likelihood", "poisson"), ("latent_refresh", 0), ("checkpoint_every", 2.5),
    ("data_path", 3),
])
def test_bad_training_setting_names_itself(name, value):
    with pytest.raises(ParameterError, match=f"'{name}'"):
        experiment_config(**{name: value})


def _shapes_h5(path: Path) -> Path:
    import h5py
    import numpy as np

    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=np.zeros((2, 64, 64, 3), np.uint8))
        f.create_dataset("labels", data=np.zeros((2, 6)))
    return path


def test_data_path_is_part_of_the_run_id(tmp_path: Path):
    from lvae.report.grid import data_tag

    h5 = _shapes_h5(tmp_path / "3dshapes.h5")
    twin = experiment_config(out_dir=str(tmp_path))
    real = experiment_config(data_path=str(h5), out_dir=str(tmp_path))
    assert real.config.data_path == str(h5) and real.config.profile == "smoke"
    assert real.run_id == f"{twin.run_id}-d{data_tag(str(h5))}" and real.run_dir != twin.run_dir
    # the folder holding it names the same file set, but another path: another id
    by_dir = experiment_config(data_path=str(tmp_path), out_dir=str(tmp_path))
    assert by_dir.run_id not in (twin.run_id, real.run_id)


def _text(p: Path) -> Path:
    p.write_text("not hdf5\n")
    return p


def _truncated_h5(p: Path) -> Path:
    data = _shapes_h5(p).read_bytes()
    p.write_bytes(data[: len(data) // 2])
    return p


def _folder(p: Path, *subs: str) -> Path:
    for sub in ("", *subs):
        (p / sub).mkdir(parents=True, exist_ok=True)
    return p


@pytest.mark.parametrize("dataset, make, words", [
    ("shapes3d", _text, "is not an HDF5 file"),
    ("shapes3d", lambda p: p, "does not exist"),
    ("shapes3d", _folder, "folder without 3dshapes.h5"),
    ("shapes3d", _truncated_h5, "cannot be read as HDF5"),
    ("cars3d", _text, "must be the folder"),
    ("carsnorb", lambda p: _folder(p, "cars3d"), "no smallnorb/"),
])
def test_a_bad_data_path_fails_before_anything_is_written(tmp_path: Path, dataset, make,
                                                          words):
    path = make(tmp_path / "data.h5")
    with pytest.raises(ParameterError) as err:
        experiment_config(dataset=dataset, data_path=str(path), out_dir=str(tmp_path / "runs"))
    msg = str(err.value)
    assert words in msg and str(path) in msg and "'data_path'" in msg
    assert f"python -m lvae.data download {'cars3d' if dataset == 'carsnorb' else dataset}" \
        in msg and "leave data_path None" in msg
    assert not (tmp_path / "runs").exists()


def test_real_notebook_refuses_a_text_file_as_data_before_writing_config(tmp_path: Path):
    """A text file as data_path used to write config.json, then fail in h5py; the folder
    then refused the default run ("different config")."""
    bad = tmp_path / "3dshapes.h5"
    bad.write_text("hello\n")
    out = tmp_path / "bad.ipynb"
    with pytest.raises(pm.PapermillExecutionError) as err:
        pm.execute_notebook(str(EXPERIMENT_NOTEBOOK), str(out), progress_bar=False,
                            parameters={"data_path": str(bad), "out_dir": str(tmp_path)},
                            kernel_name="python3")
    assert "is not an HDF5 file" in err.value.evalue and str(bad) in err.value.evalue
    assert not (tmp_path / "smoke").exists()


def test_a_misspelt_parameter_is_an_error_naming_the_nearest(tmp_path: Path):
    """``-p alpah 0`` used to print papermill's warning and train the default alpha = 1."""
    from lvae.report.params import ParameterError, check_parameters

    with pytest.raises(ParameterError, match=r"'alpah' \(did you mean 'alpha'\?\)"):
        check_parameters({"alpha": 1.0, "alpah": 0, "In": [], "_i": ""})
    check_parameters({"alpha": 1.0, "seed": 0, "In": [], "_": None})  # all known: fine
    out = tmp_path / "out.ipynb"
    with pytest.raises(pm.PapermillExecutionError, match="did you mean 'alpha'"):
        pm.execute_notebook(str(EXPERIMENT_NOTEBOOK), str(out), kernel_name="python3",
                            parameters={"alpah": 0, "out_dir": str(tmp_path)}, progress_bar=False)
    assert not (tmp_path / "smoke").exists()  # stopped before anything was written
