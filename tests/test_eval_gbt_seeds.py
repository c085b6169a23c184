"""GBT seeds per dataset: quick fits CarsNORB's DCI once, and the pages cope without refits.

The count of DCI fits is read from the fitting function itself (wrapped), not from what
eval.json says about them, so a run that claimed one seed but fit two would fail here.
"""

from __future__ import annotations

import json
import math

import pytest
import torch

import lvae.evaluation as ev
from lvae.config import PROFILES, ConfigError, EvalSettings, TrainConfig
from lvae.metrics.inception import ENV_VAR
from lvae.report.results import codes_comparison, collect, noise_sources
from lvae.training import train

SMALL = EvalSettings(num_train=120, num_test=60, num_fd=40, num_elbo=10, seed=0, n_jobs=1,
                     fd_steps=10, gbt_seeds=2, gbt_seeds_by_dataset={"carsnorb": 1})


@pytest.fixture(autouse=True)
def offline(tmp_path, monkeypatch):
    monkeypatch.setenv("LVAE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(ENV_VAR, raising=False)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def fits(monkeypatch) -> list[int]:
    """The GBT seed of every DCI fit made, in order."""
    seeds: list[int] = []
    original = ev.dci_from_codes

    def counted(*args, **kwargs):
        seeds.append(kwargs["seed"])
        return original(*args, **kwargs)

    monkeypatch.setattr(ev, "dci_from_codes", counted)
    return seeds


def test_the_cpu_books_fit_carsnorb_once_and_shapes3d_twice():
    for name in ("smoke", "quick"):
        s = PROFILES[name].evaluation()
        assert s.gbt_seeds == 2 and s.gbt_seeds_for("shapes3d") == 2
        assert s.gbt_seeds_for("carsnorb") == 1
        assert s.identity()["gbt_seeds_by_dataset"] == {"carsnorb": 1}
    for name in ("study", "cpu", "paper"):  # their eval.json params are what they were
        s = PROFILES[name].evaluation()
        assert s.gbt_seeds_for("carsnorb") == s.gbt_seeds == 3
        assert "gbt_seeds_by_dataset" not in s.identity()


def test_settings_take_pairs_or_a_dict_and_read_back_from_json():
    a = EvalSettings(gbt_seeds_by_dataset={"carsnorb": 1, "cars3d": 2})
    b = EvalSettings(gbt_seeds_by_dataset=[("cars3d", 2), ("carsnorb", 1)])
    assert a == b and a.gbt_seeds_by_dataset == (("cars3d", 2), ("carsnorb", 1))
    assert json.loads(json.dumps(a.identity())) == a.identity()  # eval.json's params compare
    hash(a)  # still a value
    for bad, words in (({"cars": 1}, "keyed by one of"), ({"carsnorb": 0}, "an int >= 1"),
                       ("carsnorb", "pairs or a"), (3, "pairs or a")):
        with pytest.raises(ConfigError, match=words):
            EvalSettings(gbt_seeds_by_dataset=bad)


def _run(tmp_path, blobs, dataset: str, alpha: float, seed: int = 0):
    """A tiny run on the in-memory blobs whose config says ``dataset``."""
    config = TrainConfig(dataset=dataset, resolution=32, steps=2, batch_size=4, k=2,
                         pool_size=60, heldout_size=10, alpha=alpha, seed=seed,
                         neighborhood="synthetic")
    run_dir = tmp_path / "runs" / "custom" / f"{dataset}-a{alpha:g}-s{seed}"
    train(config, run_dir, dataset=blobs, progress=False)
    return run_dir


def test_evaluate_fits_the_meta_codes_as_often_as_the_dataset_asks(tmp_path, blobs, fits):
    carsnorb = _run(tmp_path, blobs, "carsnorb", alpha=1.0)
    rec = ev.evaluate(carsnorb, SMALL, dataset=blobs, progress=False)
    assert fits == [0, 0]  # meta codes once, adapted codes once: no refit
    assert "dci_gbt" not in rec and "gbt_sd" not in rec
    assert rec["adapted"]["dci"]["disentanglement"] >= 0
    assert rec["params"]["gbt_seeds_by_dataset"] == {"carsnorb": 1}
    ev.evaluate(carsnorb, SMALL, dataset=blobs, progress=False)
    assert fits == [0, 0]  # same settings: eval.json is reused, nothing is fit again

    fits.clear()
    shapes = _run(tmp_path, blobs, "shapes3d", alpha=0.0)
    rec = ev.evaluate(shapes, SMALL, dataset=blobs, progress=False)
    assert fits == [0, 1]  # the headline and one refit with GBT seed 1
    assert rec["dci_gbt"]["seeds"] == [0, 1] and "dci" in rec["gbt_sd"]

    fits.clear()  # the caller decides: asking for refits on CarsNORB gets them
    ev.evaluate(carsnorb, SMALL.replace(gbt_seeds_by_dataset=()), dataset=blobs,
                progress=False)
    assert fits == [0, 1, 0]


def test_the_pages_frames_show_a_dash_where_no_refit_was_made(tmp_path, blobs):
    """noise_sources and codes_comparison on runs with and without refits: no error, NaN
    (shown as '—') where a configuration has none, the values where it has."""
    for dataset, seed in (("carsnorb", 0), ("carsnorb", 1), ("shapes3d", 0), ("shapes3d", 1)):
        ev.evaluate(_run(tmp_path, blobs, dataset, alpha=1.0, seed=seed), SMALL,
                    dataset=blobs, progress=False)
    df = collect(tmp_path / "runs", "custom", imported=None)
    assert len(df) == 4 and "gbt_sd.dci.disentanglement" in df
    ns = noise_sources(df, ["dci.disentanglement"]).set_index("dataset")
    assert math.isnan(ns.loc["carsnorb", "sd_gbt"]) and ns.loc["carsnorb", "dominant"] == "—"
    assert ns.loc["carsnorb", "n_gbt_runs"] == 0 and ns.loc["carsnorb", "n_seeds"] == 2
    assert ns.loc["shapes3d", "sd_gbt"] >= 0 and ns.loc["shapes3d", "n_gbt_runs"] == 2
    assert ns.loc["shapes3d", "dominant"] in ("training seeds", "GBT seed")
    # a frame of CarsNORB runs alone has no gbt_sd column at all
    only = noise_sources(df[df["dataset"] == "carsnorb"], ["dci.disentanglement"])
    assert only["dominant"].tolist() == ["—"] and math.isnan(only["sd_gbt"].iloc[0])
    cc = codes_comparison(df, ["dci.disentanglement"])  # the adapted codes are still there
    assert sorted(cc["dataset"]) == ["carsnorb", "shapes3d"] and (cc["n"] == 2).all()
