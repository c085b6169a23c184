"""The evaluation pass on a tiny trained run: eval.json content, idempotence, divergence."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lvae.config import EvalSettings, TrainConfig
from lvae.evaluation import dci_groups, evaluate
from lvae.metrics.inception import ENV_VAR
from lvae.training import train

SMALL = EvalSettings(num_train=120, num_test=60, num_fd=60, num_elbo=20, seed=0, n_jobs=1,
                     fd_steps=20)  # fmt: skip


@pytest.fixture(autouse=True)
def offline(tmp_path, monkeypatch):
    monkeypatch.setenv("LVAE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(ENV_VAR, raising=False)
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # the shared 2-core machine: oversubscription is slower
    yield
    torch.set_num_threads(before)


def tiny(**kw) -> TrainConfig:
    base = dict(
        dataset="shapes3d",
        resolution=32,
        steps=8,
        batch_size=4,
        k=3,
        pool_size=100,
        heldout_size=20,
        log_every=2,
        checkpoint_every=4,
        alpha=1.0,
        seed=3,
    )
    base.update(kw)
    return TrainConfig(**base)


def test_local_vae_run_gets_every_metric_once(tmp_path, blobs):
    run_dir = tmp_path / "run"
    train(tiny(), run_dir, dataset=blobs, progress=False)
    ev = evaluate(run_dir, SMALL, dataset=blobs, progress=False)
    on_disk = json.loads((run_dir / "eval.json").read_text())
    assert on_disk == ev and not list(run_dir.glob("*.tmp"))
    assert ev["status"] == "completed" and ev["codes"] == "meta"
    for codes in (ev, ev["adapted"]):  # meta codes (headline) and adapted codes
        assert set(codes["dci"]) == {"disentanglement", "completeness", "informativeness",
                                     "informativeness_train"}  # fmt: skip
        assert all(0.0 <= v <= 1.0 for v in codes["dci"].values())
        assert 0.0 <= codes["mig"] <= 1.0
    assert np.array(ev["details"]["meta"]["blobs"]["importance"]).shape == (10, 3)
    assert ev["frechet"]["name"] == "FD-factors" and ev["frechet"]["FD-factors"] >= 0
    assert "FID" not in ev["frechet"]
    assert ev["elbo"]["meta"] > 0 and ev["elbo"]["adapted"] > 0
    assert ev["elbo"]["num_images"] == 20
    assert ev["sample_counts"]["dci_train"] == 120 and ev["params"]["checkpoint_step"] == 8
    assert ev["config"]["alpha"] == 1.0 and ev["wall_time_s"]["total"] > 0

    mtime = (run_dir / "eval.json").stat().st_mtime_ns
    assert evaluate(run_dir, SMALL, dataset=blobs, progress=False) == ev  # same parameters: skipped
    assert (run_dir / "eval.json").stat().st_mtime_ns == mtime
    again = evaluate(run_dir, SMALL.replace(num_fd=40), dataset=blobs, progress=False)
    assert again["params"]["num_fd"] == 40 and again["frechet"]["num_real"] == 40
    forced = evaluate(run_dir, SMALL.replace(num_fd=40), force=True, dataset=blobs,
                      progress=False)
    assert forced["provenance"]["evaluated"] >= again["provenance"]["evaluated"]
    assert forced["dci"] == again["dci"]  # deterministic given the seed


def test_vanilla_run_has_no_adapted_codes(tmp_path, blobs):
    run_dir = tmp_path / "vanilla"
    train(tiny(alpha=0.0), run_dir, dataset=blobs, progress=False)
    ev = evaluate(run_dir, SMALL, dataset=blobs, progress=False)
    assert ev["adapted"] is None and ev["elbo"]["adapted"] is None
    assert ev["frechet"]["generated"] == "meta decoder"


def test_diverged_run_gets_a_record_without_metrics(tmp_path):
    run_dir = tmp_path / "d"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(tiny(alpha=100.0).to_json())
    (run_dir / "result.json").write_text(json.dumps(
        {"status": "diverged", "message": "non-finite loss at step 3"}))  # fmt: skip
    ev = evaluate(run_dir, progress=False)
    assert ev["status"] == "diverged" and "non-finite" in ev["message"]
    assert "dci" not in ev and "frechet" not in ev
    assert json.loads((run_dir / "eval.json").read_text())["status"] == "diverged"


def test_unfinished_run_is_refused(tmp_path):
    with pytest.raises(RuntimeError, match=r"result\.json"):
        evaluate(tmp_path, progress=False)


def test_which_dci_each_table_gets():
    """The subsets are the datasets' own: Table 1 scores 3D Shapes with and without colour,
    Table 2 each CarsNORB part, SmallNORB without its nuisance instance."""
    from lvae.data import load_dataset

    [(label, _, subsets)] = dci_groups(load_dataset("shapes3d", 32))
    assert label == "" and subsets == {
        "dci_color": None,
        "dci_nocolor": ("scale", "shape", "orientation"),
    }
    groups = {label: subsets for label, _, subsets in dci_groups(load_dataset("carsnorb", 32))}
    assert groups == {"cars3d": {"dci_cars3d": None},
                      "smallnorb": {"dci_smallnorb": ("category", "elevation", "azimuth",
                                                      "lighting")}}  # fmt: skip


@pytest.mark.parametrize("kind", ["synthetic", "input_l2"])
def test_generated_images_are_uint8_with_own_references(tmp_path, blobs, kind):
    from lvae.evaluation import generate_images
    from lvae.training import load_run

    run_dir = tmp_path / kind
    train(tiny(neighborhood=kind, steps=2), run_dir, dataset=blobs, progress=False)
    run = load_run(run_dir, dataset=blobs)
    images = generate_images(run, 10, seed=0, batch=4)
    assert images.dtype == np.uint8 and images.shape == (10, 32, 32, 3)
    np.testing.assert_array_equal(images, generate_images(run, 10, seed=0, batch=4))
    assert len({im.tobytes() for im in images}) > 1  # each image its own reference and code


def test_gbt_refits_measure_dcis_own_noise_on_the_same_codes(blobs):
    """gbt_seeds = 3: the headline plus two refits with GBT seeds 1 and 2 on the same codes,
    each equal to an independent dci_from_codes call with that seed."""
    from lvae.evaluation import DCI_MODE, disentanglement_metrics
    from lvae.metrics.dci import dci_from_codes
    from lvae.metrics.sampling import sample_codes

    w = np.random.RandomState(0).randn(int(np.prod(blobs.observation_shape)), 3)

    def represent(x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=np.float64).reshape(len(x), -1) @ w

    out = disentanglement_metrics(blobs, represent, 150, 80, seed=0, n_jobs=1, gbt_seeds=3)
    [key] = [k for k in out if k.startswith("dci") and k != "dci_gbt"]
    runs = out["dci_gbt"][key]
    assert out["dci_gbt"]["seeds"] == [0, 1, 2] and len(runs["disentanglement"]) == 3
    assert runs["disentanglement"][0] == out[key]["disentanglement"]  # the headline
    rs = np.random.RandomState(0)
    tr, ytr = sample_codes(blobs, represent, 150, rs)
    te, yte = sample_codes(blobs, represent, 80, rs)
    ref = dci_from_codes(tr, ytr, te, yte, blobs.factor_names, None, mode=DCI_MODE, seed=2,
                         n_jobs=1)["scores"]["all"]
    assert runs["disentanglement"][2] == ref["disentanglement"]
    assert runs["informativeness"][2] == ref["informativeness_test"]
    assert out["gbt_sd"][key]["completeness"] == pytest.approx(
        np.std(runs["completeness"], ddof=1))
    assert "dci_gbt" not in disentanglement_metrics(blobs, represent, 150, 80, seed=0,
                                                    n_jobs=1)
    with pytest.raises(ValueError, match="gbt_seeds must be an int >= 1"):
        disentanglement_metrics(blobs, represent, 150, 80, seed=0, gbt_seeds=0)


def test_one_draw_of_dci_points_serves_meta_and_adapted_codes(tmp_path, blobs, monkeypatch):
    """The DCI points are drawn once per evaluation and encoded by both encoders: the codes
    are bit for bit those of sample_codes (disentanglement_lib's draw and encode, the adapted
    codes' chunk seeds included), and the images are rendered once, not once per encoder."""
    import lvae.metrics.sampling as sampling
    from lvae.evaluation import _encode, dci_draws
    from lvae.generation import represent
    from lvae.training import load_run

    run_dir = tmp_path / "run"
    train(tiny(steps=2), run_dir, dataset=blobs, progress=False)
    run = load_run(run_dir, dataset=blobs)
    draws = dci_draws(blobs, 300, 60, seed=5)
    assert list(draws) == [label for label, _, _ in dci_groups(blobs)]
    for mode in ("meta", "adapted"):
        fn = represent(run, mode, seed=5)
        rs = np.random.RandomState(5)
        (train_set, test_set) = draws[""]
        for drawn, n in ((train_set, 300), (test_set, 60)):
            codes, factors = sampling.sample_codes(blobs, fn, n, rs)
            ours_codes, ours_factors = _encode(fn, drawn)
            np.testing.assert_array_equal(ours_codes, codes)
            np.testing.assert_array_equal(ours_factors, factors)
            assert ours_codes.dtype == codes.dtype and ours_factors.dtype == factors.dtype

    calls = []
    draw = sampling.sample_factors_and_images
    monkeypatch.setattr(sampling, "sample_factors_and_images",
                        lambda *a, **k: calls.append(a[1]) or draw(*a, **k))
    ev = evaluate(run_dir, SMALL, dataset=blobs, progress=False)
    assert ev["adapted"] is not None
    assert calls == [SMALL.num_train, SMALL.num_test]  # one group, train then test, once


def test_the_copy_baseline_scores_the_training_images_themselves(tmp_path, blobs):
    """A model that returned its references would score the copy baseline; an untrained
    model's grey generations score far worse on the same real images and features."""
    from lvae.evaluation import copy_baseline, frechet_block, pool_images
    from lvae.training import load_run

    train(tiny(steps=2), tmp_path / "r", dataset=blobs, progress=False)
    run = load_run(tmp_path / "r", dataset=blobs)
    images = pool_images(run, 30, seed=0)
    pos = np.random.RandomState(0).randint(len(run.pool), size=30)
    by_hand = (run.pool.tensor(pos) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    np.testing.assert_array_equal(images, by_hand)
    kw = dict(num=60, seed=0, fd_steps=20, requested="FD-factors")
    copies, generated = copy_baseline(run, **kw), frechet_block(run, **kw)
    assert copies["name"] == generated["name"] == "FD-factors"
    assert copies["generated"].startswith("training images")
    assert 0 <= copies["FD-factors"] < generated["FD-factors"] / 2


@pytest.mark.parametrize("kind", ["input_l2", "latent_knn"])
def test_heldout_elbo_of_the_adapted_model_under_knn_neighbourhoods(tmp_path, blobs, kind):
    """Held-out images are no pool images: under kNN kinds they adapt on their K nearest
    pool images. As alpha goes to 0 the adapted model is the meta-model, so its held-out
    ELBO (same posterior draws) meets the meta-model's; at the run's alpha = 1 the step
    moves it."""
    import dataclasses

    from lvae.evaluation import heldout_neg_elbo
    from lvae.training import load_run

    run_dir = tmp_path / kind
    train(tiny(neighborhood=kind, steps=4), run_dir, dataset=blobs, progress=False)
    run = load_run(run_dir, dataset=blobs)
    out = heldout_neg_elbo(run, 12, seed=0, batch=5)
    assert out["num_images"] == 12 and np.isfinite(out["adapted"])
    assert abs(out["adapted"] - out["meta"]) > 1e-3 * out["meta"]
    still = dataclasses.replace(run, config=run.config.replace(alpha=1e-9))
    near = heldout_neg_elbo(still, 12, seed=0, batch=5)
    assert near["meta"] == out["meta"]
    assert near["adapted"] == pytest.approx(near["meta"], rel=1e-5)
