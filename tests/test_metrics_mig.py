"""MIG: a copied factor code has an exactly computable MIG; a duplicated code has MIG 0."""

from __future__ import annotations

import numpy as np
import pytest

from lvae.data.base import GroundTruthData
from lvae.metrics import mig
from lvae.metrics.sampling import sample_codes


class IdentityData(GroundTruthData):
    name = "identity"
    factor_sizes = (4, 6, 3, 5)
    factor_names = ("a", "b", "c", "d")
    observation_shape = (1, 1, 4)

    def images(self, indices):
        return self.index_to_factors(indices).astype(np.uint8)[:, None, None, :]


def copy_code(images):
    return images.reshape(len(images), -1).astype(np.float64)


def plugin_mi(a: np.ndarray, b: np.ndarray) -> float:
    """Mutual information of the empirical joint of two label vectors, in nats."""
    joint = np.zeros((a.max() + 1, b.max() + 1))
    np.add.at(joint, (a, b), 1.0)
    p = joint / len(a)
    outer = np.outer(p.sum(1), p.sum(0))
    nz = p > 0
    return float(np.sum(p[nz] * np.log(p[nz] / outer[nz])))


def test_discretize_uses_20_equal_width_bins():
    x = np.linspace(-3.0, 5.0, 1001)[:, None]
    labels = mig.discretize(x)
    assert labels.min() == 1 and labels.max() == 20
    counts = np.bincount(labels[:, 0].astype(int))[1:]
    assert counts.max() - counts.min() <= 2  # equal widths on a uniform grid


def mig_of(represent, num_train: int) -> dict:
    """MIG as lvae.evaluation computes it: the training codes' draw, then mig_from_codes."""
    codes, factors = sample_codes(IdentityData(), represent, num_train, np.random.RandomState(0))
    return mig.mig_from_codes(codes, factors)


def test_copied_factors_give_the_hand_computed_mig():
    out = mig_of(copy_code, 2000)
    # 20 bins over each code's range separate its <= 20 integer values, so code j carries
    # all of H(v_j); the runner-up is the chance MI of two independent factors' samples.
    _, factors = sample_codes(IdentityData(), copy_code, 2000, np.random.RandomState(0))
    k = factors.shape[1]
    gaps = []
    for j in range(k):
        h = plugin_mi(factors[:, j], factors[:, j])
        runner_up = max(plugin_mi(factors[:, i], factors[:, j]) for i in range(k) if i != j)
        gaps.append((h - runner_up) / h)
    assert out["mig"] == pytest.approx(np.mean(gaps), abs=1e-12)
    assert 0.99 < out["mig"] < 1.0
    assert len(out["per_factor"]) == len(IdentityData.factor_names)


def test_duplicated_code_gives_zero():
    def duplicated(images):
        x = copy_code(images)
        return np.hstack([x, x])

    out = mig_of(duplicated, 1000)
    assert out["mig"] == 0.0


def test_constant_code_gives_zero():
    out = mig.mig_from_codes(np.zeros((500, 3)), np.random.RandomState(0).randint(0, 4, (500, 2)))
    assert out["mig"] == 0.0
