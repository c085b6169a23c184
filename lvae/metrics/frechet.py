"""The Frechet distance between two Gaussians fitted to feature sets (Heusel et al., 2017).

FID is this distance between Gaussians fitted to Inception-v3 pool features of real and of
generated images (:mod:`lvae.metrics.inception`); FD-factors is the same distance on the
features of a small factor classifier (:mod:`lvae.metrics.factor_net`). Only the feature
extractor differs, so the maths lives here, once.

``d^2 = |mu1 - mu2|^2 + Tr(sigma1) + Tr(sigma2) - 2 Tr((sigma1 sigma2)^(1/2))``. The last
trace is the sum of the square roots of the eigenvalues of ``sigma1 sigma2``, which are
those of ``S1 sigma2 S1`` with ``S1 = sigma1^(1/2)``, i.e. the squared singular values of
``S1 S2``: so ``Tr((sigma1 sigma2)^(1/2)) = ||S1 S2||_*`` (nuclear norm), with the symmetric
square roots from ``eigh``. Why not pytorch-fid's ``scipy.linalg.sqrtm`` of the product:
on 2048 x 2048 covariances it took 27 s on one of this machine's cores (twice 13 s: with
fewer samples than dimensions the product is singular, scipy warns, and pytorch-fid adds
1e-6 I and starts again), against 9 s here; and this route is exact for singular
covariances (its error on rank-99 ones was 2e-12, sqrtm-free ``eigvalsh`` of the product's
symmetric form 6e-5), so no offset is needed. When one side is ``n < d`` samples,
``sigma2 = B'B / (n - 1)`` with ``B`` the centred features, and the trace is
``||B S1||_* / sqrt(n - 1)``: an ``(n, d)`` singular value problem, milliseconds
(:func:`frechet_distance_to_features`, used with a cached ``S1`` of the real images).
"""

from __future__ import annotations

import numpy as np
import scipy.linalg


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(d,)`` and unbiased covariance ``(d, d)`` of ``(n, d)`` features (float64)."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"need (n >= 2, d) features, got shape {features.shape}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def psd_sqrt(sigma: np.ndarray) -> np.ndarray:
    """The symmetric square root of a covariance matrix, from ``eigh``.

    Eigenvalues within round-off of zero (below ``d * eps`` of the largest, LAPACK's rank
    tolerance) are zero: a covariance of n < d samples has d - n + 1 of them, and the
    square roots of their +-1e-16 noise would add ~1e-8 each. Eigenvalues below ``-1e-6``
    of the largest are an error: the input is not a covariance matrix.
    """
    sigma = np.atleast_2d(np.asarray(sigma, dtype=np.float64))
    w, v = scipy.linalg.eigh((sigma + sigma.T) / 2.0)
    top = max(abs(w[-1]), 1e-300) if len(w) else 1.0
    if len(w) and w[0] < -1e-6 * top:
        raise ValueError(f"eigenvalue {w[0]:.3g} < 0: not a covariance matrix")
    w = np.where(w > len(w) * np.finfo(np.float64).eps * top, w, 0.0)
    return (v * np.sqrt(w)) @ v.T


def _check(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, d2: int) -> tuple:
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    sigma1 = np.atleast_2d(sigma1).astype(np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != (len(mu1), len(mu1)) or d2 != len(mu1):
        raise ValueError("the two Gaussians have different dimensions")
    return mu1, sigma1, mu2


def frechet_distance(
    mu1: np.ndarray,
    sigma1: np.ndarray,
    mu2: np.ndarray,
    sigma2: np.ndarray,
    sqrt1: np.ndarray | None = None,
) -> float:
    """Squared Frechet (2-Wasserstein) distance of N(mu1, sigma1) and N(mu2, sigma2).

    ``sqrt1`` is :func:`psd_sqrt` of ``sigma1`` when the caller has it (a cache).
    """
    sigma2 = np.atleast_2d(sigma2).astype(np.float64)
    mu1, sigma1, mu2 = _check(mu1, sigma1, mu2, sigma2.shape[0])
    if sigma2.shape != sigma1.shape:
        raise ValueError("the two Gaussians have different dimensions")
    s1 = psd_sqrt(sigma1) if sqrt1 is None else sqrt1
    covmean_trace = scipy.linalg.svdvals(s1 @ psd_sqrt(sigma2)).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * covmean_trace)


def frechet_distance_to_features(
    mu1: np.ndarray,
    sigma1: np.ndarray,
    features: np.ndarray,
    sqrt1: np.ndarray | None = None,
) -> float:
    """:func:`frechet_distance` of N(mu1, sigma1) and the Gaussian fitted to ``features``.

    Equal to ``frechet_distance(mu1, sigma1, *gaussian_stats(features))``; with fewer
    samples than dimensions it works on the ``(n, d)`` centred features instead of their
    ``(d, d)`` covariance (module docstring), which is what makes a small generated sample
    cheap against a large cached real one.
    """
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"need (n >= 2, d) features, got shape {features.shape}")
    n, d = features.shape
    if n - 1 >= d:
        return frechet_distance(mu1, sigma1, *gaussian_stats(features), sqrt1)
    mu2 = features.mean(axis=0)
    mu1, sigma1, mu2 = _check(mu1, sigma1, mu2, d)
    s1 = psd_sqrt(sigma1) if sqrt1 is None else sqrt1
    centred = features - mu2
    trace2 = float(np.sum(centred**2)) / (n - 1)
    covmean_trace = scipy.linalg.svdvals(centred @ s1).sum() / np.sqrt(n - 1)
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + trace2 - 2.0 * covmean_trace)


def frechet_distance_from_features(features1: np.ndarray, features2: np.ndarray) -> float:
    """:func:`frechet_distance` of Gaussians fitted to two ``(n, d)`` feature sets."""
    return frechet_distance_to_features(*gaussian_stats(features1), features2)
