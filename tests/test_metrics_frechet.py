"""Frechet distance against closed forms for Gaussians whose covariances commute."""

from __future__ import annotations

import numpy as np
import pytest

from lvae.metrics.frechet import frechet_distance, frechet_distance_from_features, gaussian_stats


def test_equal_covariances_leave_the_mean_term():
    rng = np.random.RandomState(0)
    a = rng.randn(6, 6)
    sigma = a @ a.T + np.eye(6)
    mu1, mu2 = rng.randn(6), rng.randn(6)
    assert frechet_distance(mu1, sigma, mu2, sigma) == pytest.approx(
        np.sum((mu1 - mu2) ** 2), rel=1e-9
    )


def test_diagonal_covariances():
    s1, s2 = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    expected = np.sum((np.sqrt(s1) - np.sqrt(s2)) ** 2) + np.sum((mu1 - mu2) ** 2)  # 4+1+0 + 5
    assert expected == pytest.approx(10.0)
    assert frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(expected)


def test_commuting_covariances_in_a_rotated_basis():
    q, _ = np.linalg.qr(np.random.RandomState(1).randn(4, 4))
    e1, e2 = np.array([1.0, 2.0, 3.0, 4.0]), np.array([0.5, 2.0, 5.0, 1.0])
    d = frechet_distance(np.zeros(4), q @ np.diag(e1) @ q.T, np.zeros(4), q @ np.diag(e2) @ q.T)
    assert d == pytest.approx(np.sum((np.sqrt(e1) - np.sqrt(e2)) ** 2), rel=1e-8)


def test_a_set_against_itself_is_zero():
    x = np.random.RandomState(2).randn(200, 8)
    assert frechet_distance_from_features(x, x) == pytest.approx(0.0, abs=1e-8)


def test_singular_covariances_stay_finite():
    rng = np.random.RandomState(3)
    x, y = rng.randn(5, 20), rng.randn(5, 20) + 1.0  # 5 samples in 20 dimensions: rank 4
    d = frechet_distance(*gaussian_stats(x), *gaussian_stats(y))
    assert np.isfinite(d) and d > 0


def test_stats_reject_a_single_sample():
    with pytest.raises(ValueError):
        gaussian_stats(np.zeros((1, 3)))
