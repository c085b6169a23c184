"""The Frechet distance between two Gaussians fitted to feature sets (Heusel et al., 2017).

FID is this distance between Gaussians fitted to Inception-v3 pool features of real and of
generated images (:mod:`lvae.metrics.inception`); FD-factors is the same distance on the
features of a small factor classifier (:mod:`lvae.metrics.factor_net`). Only the feature
extractor differs, so the maths lives here, once.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.linalg


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(d,)`` and unbiased covariance ``(d, d)`` of ``(n, d)`` features (float64)."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"need (n >= 2, d) features, got shape {features.shape}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def _sqrtm(m: np.ndarray) -> tuple[np.ndarray, bool]:
    """``scipy.linalg.sqrtm(m)`` and whether ``m`` was (numerically) singular."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", scipy.linalg.LinAlgWarning)
        root = scipy.linalg.sqrtm(m)
    warned = any(issubclass(w.category, scipy.linalg.LinAlgWarning) for w in caught)
    return root, warned or not np.isfinite(root).all()


def frechet_distance(
    mu1: np.ndarray,
    sigma1: np.ndarray,
    mu2: np.ndarray,
    sigma2: np.ndarray,
    eps: float = 1e-6,
) -> float:
    """Squared Frechet (2-Wasserstein) distance of N(mu1, sigma1) and N(mu2, sigma2).

    ``d^2 = |mu1 - mu2|^2 + Tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2))``.

    Numerics, as pytorch-fid's ``calculate_frechet_distance``: the matrix square root is
    ``scipy.linalg.sqrtm`` of the product; if the product is singular (scipy warns, or the
    root is not finite: fewer samples than dimensions, dead ReLU features) ``eps * I`` is
    added to both covariances and the root recomputed; an imaginary part from round-off is
    discarded when its diagonal is below 1e-3 (larger is an error: the inputs are not
    covariance matrices).
    """
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    sigma1 = np.atleast_2d(sigma1).astype(np.float64)
    sigma2 = np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError("the two Gaussians have different dimensions")

    diff = mu1 - mu2
    covmean, singular = _sqrtm(sigma1 @ sigma2)
    if singular:
        offset = np.eye(sigma1.shape[0]) * eps
        covmean, _ = _sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(
                f"imaginary component {np.max(np.abs(covmean.imag))} in sqrtm: "
                "are both arguments covariance matrices?"
            )
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


def frechet_distance_from_features(features1: np.ndarray, features2: np.ndarray) -> float:
    """:func:`frechet_distance` of Gaussians fitted to two ``(n, d)`` feature sets."""
    return frechet_distance(*gaussian_stats(features1), *gaussian_stats(features2))
