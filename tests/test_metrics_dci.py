"""DCI: analytic importance matrices, then end to end on an identity dataset.

The oracle is disentanglement_lib's: a dataset whose "images" are the factors themselves,
so a representation can copy, scramble or duplicate the factors exactly. End to end means
the evaluation's own path, :func:`lvae.evaluation.disentanglement_metrics`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import numpy as np
import pytest
from sklearn.ensemble import GradientBoostingClassifier

from lvae.data.base import GroundTruthData
from lvae.evaluation import disentanglement_metrics
from lvae.metrics import dci
from lvae.metrics.sampling import sample_codes

LN2_LN10 = np.log(2) / np.log(10)


class IdentityData(GroundTruthData):
    """Images ``(n, 1, 1, k)`` whose pixel j is factor j."""

    name = "identity"

    def __init__(self, factor_sizes=(4, 5, 3, 4), names=None):
        self.factor_sizes = tuple(factor_sizes)
        self.factor_names = tuple(names or (f"f{j}" for j in range(len(factor_sizes))))
        self.observation_shape = (1, 1, len(factor_sizes))

    def images(self, indices):
        return self.index_to_factors(indices).astype(np.uint8)[:, None, None, :]


def copy_code(images: np.ndarray) -> np.ndarray:
    return images.reshape(len(images), -1).astype(np.float64)


# ------------------------------------------------------------------ pure maths


def test_hand_worked_matrix():
    # 3 codes x 2 factors. Code 0 splits 3:1 over the factors, code 1 serves factor 1 only,
    # code 2 is unused. By hand (entropy base 2 for D, base 3 for C):
    #   D = 4/6 * (1 - H2(3/4, 1/4)) + 2/6 * 1 = 4/6 * (1 - 0.8112781) + 1/3 = 0.4591479
    #   C = 1/2 * 1 + 1/2 * (1 - H3(1/3, 2/3)) = 1/2 + 1/2 * (1 - 0.5793802) = 0.7103099
    importance = np.array([[3.0, 1.0], [0.0, 2.0], [0.0, 0.0]])
    assert dci.disentanglement(importance) == pytest.approx(0.4591479, abs=1e-6)
    assert dci.completeness(importance) == pytest.approx(0.7103099, abs=1e-6)


def test_diagonal_scores_one():
    importance = np.diag(5.0 * np.ones(5))
    assert dci.disentanglement(importance) == pytest.approx(1.0)
    assert dci.completeness(importance) == pytest.approx(1.0)


def test_duplicated_codes_halve_completeness():
    importance = np.vstack([np.diag(5.0 * np.ones(5))] * 2)  # 10 codes, two per factor
    assert dci.disentanglement(importance) == pytest.approx(1.0)
    assert dci.completeness(importance) == pytest.approx(1.0 - LN2_LN10)


def test_one_code_for_two_factors():
    importance = np.hstack([np.diag(5.0 * np.ones(5))] * 2)  # 10 factors, two per code
    assert dci.disentanglement(importance) == pytest.approx(1.0 - LN2_LN10)
    assert dci.completeness(importance) == pytest.approx(1.0)


def test_all_zero_importance_scores_zero():
    importance = np.zeros((10, 10))
    assert dci.disentanglement(importance) == pytest.approx(0.0, abs=1e-7)
    assert dci.completeness(importance) == pytest.approx(0.0, abs=1e-7)


def test_permuting_codes_changes_nothing():
    importance = np.random.RandomState(0).rand(7, 4)
    perm = np.random.RandomState(1).permutation(7)
    assert dci.disentanglement(importance[perm]) == pytest.approx(dci.disentanglement(importance))
    assert dci.completeness(importance[perm]) == pytest.approx(dci.completeness(importance))


def test_scores_on_factors_is_the_column_slice():
    rng = np.random.RandomState(0)
    fit = dci.ImportanceFit(rng.rand(5, 4), rng.rand(4), rng.rand(4), "parallel", 0, 0.0)
    s = dci.scores_on_factors(fit, [1, 3])
    assert s["disentanglement"] == dci.disentanglement(fit.importance[:, [1, 3]])
    assert s["completeness"] == dci.completeness(fit.importance[:, [1, 3]])
    assert s["informativeness_test"] == pytest.approx(fit.test_accuracy[[1, 3]].mean())
    with pytest.raises(ValueError):
        dci.scores_on_factors(fit, [2])


# ------------------------------------------------------------------ sampling


def test_sampling_follows_disentanglement_lib_batches():
    data = IdentityData()
    codes, factors = sample_codes(data, copy_code, 40, np.random.RandomState(3))
    # disentanglement_lib draws 16, 16, 8 points, each batch one sample() call.
    rng = np.random.RandomState(3)
    expected = np.concatenate([data.sample_factors(n, rng) for n in (16, 16, 8)])
    np.testing.assert_array_equal(factors, expected)
    np.testing.assert_array_equal(codes, expected.astype(float))


# ------------------------------------------------------------------ end to end

N_TRAIN, N_TEST = 400, 200


def dci_of(data: GroundTruthData, represent, n_train: int = N_TRAIN,
           n_test: int = N_TEST) -> dict:
    return disentanglement_metrics(data, represent, n_train, n_test, seed=0, n_jobs=1)


def test_copied_factors_score_one():
    out = dci_of(IdentityData(), copy_code)
    s = out["dci"]
    assert s["disentanglement"] > 0.99
    assert s["completeness"] > 0.99
    assert s["informativeness"] == 1.0
    assert s["informativeness_train"] == 1.0
    assert np.shape(out["details"]["identity"]["importance"]) == (4, 4)


def test_codes_independent_of_factors_score_near_zero():
    noise = np.random.RandomState(7)

    def represent(images):
        return noise.randn(len(images), 4)

    out = dci_of(IdentityData(), represent)
    assert out["dci"]["disentanglement"] < 0.2
    assert out["dci"]["completeness"] < 0.2


class ColourData(IdentityData):
    """Scored with and without its colour, as 3D Shapes declares for Table 1."""

    dci_subsets: ClassVar[Mapping[str, tuple[str, ...] | None]] = {
        "with_color": None, "without_color": ("scale", "shape", "orientation")}


def test_both_subsets_come_from_one_fit(monkeypatch):
    calls = []
    real_fit = dci._fit_factor

    def counting_fit(*args):
        calls.append(1)
        return real_fit(*args)

    monkeypatch.setattr(dci, "_fit_factor", counting_fit)
    data = ColourData(names=("hue", "scale", "shape", "orientation"))
    out = dci_of(data, copy_code)
    assert len(calls) == data.num_factors  # one classifier per factor, not per subset
    details = out["details"]["identity"]
    assert details["subsets"]["without_color"] == ["scale", "shape", "orientation"]
    sub = dci.scores_on_factors(
        dci.ImportanceFit(
            np.asarray(details["importance"]),
            np.array(details["train_accuracy"]),
            np.array(details["test_accuracy"]),
            "parallel",
            0,
            0.0,
        ),
        [1, 2, 3],
    )
    assert out["without_color"] == {
        "disentanglement": sub["disentanglement"], "completeness": sub["completeness"],
        "informativeness": sub["informativeness_test"],
        "informativeness_train": sub["informativeness_train"]}

    class Typo(IdentityData):
        dci_subsets: ClassVar[Mapping[str, tuple[str, ...] | None]] = {"x": ("colour",)}

    with pytest.raises(KeyError):
        dci_of(Typo(), copy_code, 10, 10)


def _noisy_codes(seed=0, n_train=300, n_test=150):
    rng = np.random.RandomState(seed)
    f_train = rng.randint(0, 3, size=(n_train, 3))
    f_test = rng.randint(0, 3, size=(n_test, 3))
    mix = rng.randn(3, 5)
    codes = [f @ mix + 0.5 * rng.randn(len(f), 5) for f in (f_train, f_test)]
    return codes[0], f_train, codes[1], f_test


def test_shared_rng_mode_is_disentanglement_libs_global_rng_loop():
    x_tr, y_tr, x_te, y_te = _noisy_codes()
    fit = dci.fit_importance(x_tr, y_tr, x_te, y_te, mode="sequential_shared_rng", seed=5)
    # disentanglement_lib's compute_importance_gbt: default classifiers on numpy's global RNG.
    np.random.seed(5)
    importance = np.zeros((5, 3))
    test_acc = []
    for j in range(3):
        model = GradientBoostingClassifier()
        model.fit(x_tr, y_tr[:, j])
        importance[:, j] = np.abs(model.feature_importances_)
        test_acc.append(np.mean(model.predict(x_te) == y_te[:, j]))
    np.testing.assert_array_equal(fit.importance, importance)
    assert np.mean(fit.test_accuracy) == np.mean(test_acc)


def test_parallel_mode_does_not_depend_on_n_jobs():
    x_tr, y_tr, x_te, y_te = _noisy_codes(1)
    one = dci.fit_importance(x_tr, y_tr, x_te, y_te, mode="parallel", seed=2, n_jobs=1)
    two = dci.fit_importance(x_tr, y_tr, x_te, y_te, mode="parallel", seed=2, n_jobs=2)
    np.testing.assert_array_equal(one.importance, two.importance)
    np.testing.assert_array_equal(one.test_accuracy, two.test_accuracy)
    with pytest.raises(ValueError):
        dci.fit_importance(x_tr, y_tr, x_te, y_te, mode="global")


def test_parallel_mode_keeps_factor_order():
    x_tr, y_tr, x_te, y_te = _noisy_codes(2)
    y_tr[:, 0] = y_tr[:, 0] % 2  # 2, 3, 3 classes: the scheduler reorders the factors
    y_te[:, 0] = y_te[:, 0] % 2
    fit = dci.fit_importance(x_tr, y_tr, x_te, y_te, mode="parallel", seed=4, n_jobs=1)
    seeds = dci.factor_seeds(4, 3)
    for j in range(3):
        imp, _, test_acc, _ = dci._fit_factor(x_tr, y_tr[:, j], x_te, y_te[:, j], seeds[j])
        np.testing.assert_array_equal(fit.importance[:, j], imp)
        assert fit.test_accuracy[j] == test_acc


class TwoOfThree(IdentityData):
    """As SmallNORB's nuisance "instance": the middle factor is drawn, never predicted."""

    dci_subsets: ClassVar[Mapping[str, tuple[str, ...] | None]] = {"dci": ("f0", "f2")}


def test_each_part_is_scored_on_its_own_declared_factors():
    data = IdentityData()
    data.parts = {"a": IdentityData((3, 4)), "b": TwoOfThree((2, 3, 2))}
    out = dci_of(data, copy_code, 200, 100)
    assert list(out["details"]) == ["a", "b"]
    assert np.shape(out["details"]["a"]["importance"]) == (2, 2)
    assert np.shape(out["details"]["b"]["importance"]) == (3, 2)
    assert out["details"]["b"]["factor_names"] == ["f0", "f2"]
    assert out["dci_a"]["disentanglement"] > 0.99 and set(out) >= {"dci_b", "mig_a", "mig_b"}
