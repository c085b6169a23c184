"""Frechet distance against closed forms (commuting covariances), scipy's general matrix
square root (non-commuting ones) and a by-hand formula from features (fewer samples than
dimensions)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from lvae.metrics.frechet import (
    frechet_distance,
    frechet_distance_from_features,
    frechet_distance_to_features,
    gaussian_stats,
    psd_sqrt,
)


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


def _sqrtm_distance(mu1, s1, mu2, s2) -> float:
    """The textbook formula with scipy's general matrix square root (pytorch-fid's way)."""
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * covmean))


def test_non_commuting_covariances_match_the_general_square_root():
    rng = np.random.RandomState(5)
    a, b = rng.randn(6, 6), rng.randn(6, 6)
    s1, s2 = a @ a.T + 0.1 * np.eye(6), b @ b.T + 0.1 * np.eye(6)
    assert not np.allclose(s1 @ s2, s2 @ s1)
    mu1, mu2 = rng.randn(6), rng.randn(6)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(
        _sqrtm_distance(mu1, s1, mu2, s2), rel=1e-9)  # fmt: skip
    assert frechet_distance(mu1, s1, mu2, s2, sqrt1=psd_sqrt(s1)) == pytest.approx(
        frechet_distance(mu1, s1, mu2, s2), rel=1e-12)  # fmt: skip


def nuclear_distance(x: np.ndarray, y: np.ndarray) -> float:
    """From features, by hand: Tr((S1 S2)^1/2) = ||A B'||_* / sqrt((n-1)(m-1)), A, B centred."""
    a, b = x - x.mean(0), y - y.mean(0)
    cross = np.linalg.svd(a @ b.T, compute_uv=False).sum() / np.sqrt((len(a) - 1) * (len(b) - 1))
    tr = (a**2).sum() / (len(a) - 1) + (b**2).sum() / (len(b) - 1)
    return float(np.sum((x.mean(0) - y.mean(0)) ** 2) + tr - 2 * cross)


def test_fewer_samples_than_dimensions_by_either_route():
    rng = np.random.RandomState(6)
    x, y = np.abs(rng.randn(7, 40)), np.abs(rng.randn(9, 40)) + 0.2  # ranks 6 and 8 in 40-d
    expected = nuclear_distance(x, y)
    mu, sigma = gaussian_stats(x)
    assert frechet_distance_to_features(mu, sigma, y) == pytest.approx(expected, rel=1e-9)
    assert frechet_distance(mu, sigma, *gaussian_stats(y)) == pytest.approx(expected, rel=1e-9)
    assert frechet_distance_from_features(x, y) == pytest.approx(expected, rel=1e-9)
    assert frechet_distance_from_features(x, x) == pytest.approx(0.0, abs=1e-10)


def test_a_matrix_with_a_negative_eigenvalue_is_refused():
    with pytest.raises(ValueError, match="not a covariance"):
        psd_sqrt(np.diag([1.0, -0.5]))
    root = psd_sqrt(np.diag([4.0, 0.0]))
    np.testing.assert_allclose(root, np.diag([2.0, 0.0]))
