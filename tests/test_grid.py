"""The grid: stable, unique ids; shared runs not duplicated; --list gives runnable commands."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from lvae.__main__ import main
from lvae.report.grid import Experiment, experiments, format_alpha, parse_only


def test_ids_are_stable():
    # These names are folder names of committed and imported runs: never change them.
    assert Experiment("shapes3d", 0.1).run_id == "shapes3d-a1e-01-b1-synthetic-s0"
    assert Experiment("shapes3d", 0.0, beta=16.0, seed=2).run_id == \
        "shapes3d-a0e+00-b16-synthetic-s2"
    assert Experiment("carsnorb", 1e-2, neighborhood="latent_knn").run_id == \
        "carsnorb-a1e-02-b1-latent_knn-s0"
    assert Experiment("shapes3d", 1e6, reduction="sum").run_id == \
        "shapes3d-a1e+06-b1-synthetic-s0-rsum"
    assert Experiment("shapes3d", 1.0, seed=1).config_id == "shapes3d-a1e+00-b1-synthetic"


def test_alpha_format_is_exact():
    assert format_alpha(0) == "0e+00"
    assert format_alpha(1e-3) == "1e-03"
    assert format_alpha(100) == "1e+02"
    assert format_alpha(2.5) == "2.5e+00"
    assert format_alpha(0.1) != format_alpha(0.10000001)


def test_ids_unique_and_tables_share_runs():
    exps = experiments(seeds=3)
    ids = [e.run_id for e in exps]
    assert len(ids) == len(set(ids)) == 16 * 3
    one = {e.run_id: e for e in experiments()}
    # Table 5's sampling and vanilla rows are Table 1's runs, figures read Table 1's alpha=1
    assert one["shapes3d-a1e+00-b1-synthetic-s0"].tables == (
        "table1", "table5", "fig2", "fig3", "fig4")
    assert set(one["shapes3d-a0e+00-b1-synthetic-s0"].tables) == {"table1", "table5", "fig2"}
    assert one["shapes3d-a1e+00-b1-input_l2-s0"].tables == ("table5",)
    assert one["shapes3d-a1e+02-b1-synthetic-s0"].paper_status == "diverged"
    assert len([e for e in one.values() if "table1" in e.tables]) == 11
    assert {e.neighborhood for e in one.values() if "table2" in e.tables} == {"latent_knn"}
    assert len(experiments("table5")) == 3
    assert [e.run_id for e in experiments("fig4")] == ["shapes3d-a1e+00-b1-synthetic-s0"]


def test_only_rejects_unknown_names():
    assert parse_only("table1, table5") == ("table1", "table5")
    with pytest.raises(ValueError, match="table3"):
        parse_only("table1,table3")
    with pytest.raises(ValueError, match="seeds"):
        experiments(seeds=0)


def test_list_prints_valid_papermill_commands(tmp_path: Path, capsys):
    assert main(["reproduce", "--profile", "smoke", "--list", "--out", str(tmp_path),
                 "--only", "table5", "--seeds", "2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 6
    outputs = set()
    for line in lines:
        argv = shlex.split(line)
        assert argv[0] == "papermill" and argv[1].endswith("notebooks/experiment.ipynb")
        outputs.add(argv[2])
        params, rest = {}, argv[3:]
        while rest:
            if rest[0] == "-p":
                params[rest[1]] = rest[2]
                rest = rest[3:]
            else:
                assert rest[0] == "--cwd" and Path(rest[1]).is_dir()
                rest = rest[2:]
        assert {"dataset", "alpha", "beta", "neighborhood", "seed", "profile",
                "out_dir"} <= set(params)
        assert Path(argv[2]).parent.name.startswith(params["dataset"])
        assert Path(argv[2]).parent.parent == tmp_path / "smoke"
    assert len(outputs) == 6
    # papermill itself accepts the command: --prepare-only injects without starting a kernel
    argv = shlex.split(lines[0])
    argv[2] = str(tmp_path / "prepared.ipynb")
    proc = subprocess.run([sys.executable, "-m", "papermill", *argv[1:], "--prepare-only"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "alpha = 1.0" in (tmp_path / "prepared.ipynb").read_text()


def test_cli_rejects_bad_option(capsys):
    assert main(["reproduce", "--profile", "smoke", "--list", "--only", "table9"]) == 2
    assert "table9" in capsys.readouterr().err


def test_data_path_and_custom_settings_extend_the_id():
    from lvae.report.grid import data_tag

    e = Experiment("shapes3d", 1.0, data_path="/data/3dshapes.h5")
    assert e.run_id == f"shapes3d-a1e+00-b1-synthetic-s0-d{data_tag('/data/3dshapes.h5')}"
    assert len(data_tag("/data/3dshapes.h5")) == 8
    assert e.config_id == e.run_id.replace("-s0", "")  # seeds pool, data never mixes
    assert e.parameters("quick")["data_path"] == "/data/3dshapes.h5"
    v = Experiment("shapes3d", 1.0, seed=1, reduction="sum", variant="0123abcd")
    assert v.run_id == "shapes3d-a1e+00-b1-synthetic-s1-rsum-c0123abcd"
    assert v.config_id == "shapes3d-a1e+00-b1-synthetic-rsum-c0123abcd"


def test_one_name_per_configuration():
    """Figures, tables, cards and load_shipped name a configuration by config_name."""
    from lvae.report.figures import config_label
    from lvae.report.grid import config_name
    from lvae.report.shipped import short_name

    assert config_name(0.0) == "vanilla" and config_name(1e-3) == "α=0.001"
    assert config_name(0.0, 16.0) == "β=16" and config_name(1.0, 4.0) == "α=1,β=4"
    assert config_name(1.0, 1.0, "input_l2") == "α=1 (input_l2)"
    assert config_name(0.0, 1.0, "input_l2") == "vanilla"  # no inner step: no neighbours
    cfg = {"alpha": 1.0, "beta": 1.0, "neighborhood": "latent_knn"}
    assert short_name(cfg) == "alpha=1 (latent_knn)"
    assert config_label(cfg) == "α=1 (latent_knn)"
    # the loss summed over pixels is another configuration (its alpha means another step);
    # the study's pixel_mean, a missing value and a vanilla VAE (no step) add nothing
    assert config_label({**cfg, "neighborhood": "synthetic", "reduction": "sum"}) \
        == "α=1 (summed loss)"
    assert config_name(0.1, reduction="pixel_mean") == config_name(0.1) == "α=0.1"
    assert config_label({"alpha": 0.1, "beta": 1.0, "reduction": float("nan")}) == "α=0.1"
    assert config_name(0.0, reduction="sum") == "vanilla"
