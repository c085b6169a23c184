"""MIG: the Mutual Information Gap (Chen et al., 2018), as disentanglement_lib defines it.

Definition used here (disentanglement_lib ``evaluation/metrics/mig.py`` with the
``histogram_discretizer`` of 20 bins used by Locatello et al. 2019):

1. draw ``num_train = 10,000`` points and their codes (:mod:`lvae.metrics.sampling`);
2. discretise each code dimension into 20 equal-width bins over its observed range,
   ``np.digitize(x, np.histogram(x, 20)[1][:-1])`` (labels 1..20);
3. ``I(c_i; v_j)`` = ``sklearn.metrics.mutual_info_score`` of the discretised code and the
   factor labels: the plug-in *discrete* mutual information of the empirical joint, in nats;
4. per factor, ``(largest MI - second largest MI) / H(v_j)`` with the empirical entropy
   ``H(v_j) = I(v_j; v_j)``; MIG is the mean over factors.

This is not the continuous-entropy MIG of Chen et al.'s own code (which estimates
``I(z_i; v_j)`` from the encoder's Gaussian posterior); numbers from different definitions are
not comparable, they can differ by orders of magnitude. A code that copies the factors
scores ~1 (exactly 1 minus the largest chance-level MI with another factor); a factor copied
into two code dimensions scores 0 for that factor.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import mutual_info_score

NUM_BINS = 20


def discretize(codes: np.ndarray, num_bins: int = NUM_BINS) -> np.ndarray:
    """Equal-width histogram bin labels (1..num_bins) of each column of ``(n, d)`` codes."""
    out = np.zeros_like(codes)
    for i in range(codes.shape[1]):
        edges = np.histogram(codes[:, i], num_bins)[1][:-1]
        out[:, i] = np.digitize(codes[:, i], edges)
    return out


def discrete_mutual_info(codes: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """``(num_codes, num_factors)`` plug-in mutual information in nats."""
    m = np.zeros((codes.shape[1], factors.shape[1]))
    for i in range(codes.shape[1]):
        for j in range(factors.shape[1]):
            m[i, j] = mutual_info_score(factors[:, j], codes[:, i])
    return m


def discrete_entropy(factors: np.ndarray) -> np.ndarray:
    """Empirical entropy of each factor column, in nats."""
    return np.array(
        [mutual_info_score(factors[:, j], factors[:, j]) for j in range(factors.shape[1])]
    )


def mig_from_codes(
    codes: np.ndarray, factors: np.ndarray, num_bins: int = NUM_BINS
) -> dict[str, object]:
    """MIG of ``(n, d)`` continuous codes against ``(n, k)`` factor labels.

    Returns ``{"mig": float, "per_factor": (k,) gaps, "mutual_info": (d, k) matrix,
    "entropy": (k,)}``.
    """
    if codes.shape[1] < 2:
        raise ValueError("MIG needs at least two code dimensions (top-1 minus top-2)")
    m = discrete_mutual_info(discretize(codes, num_bins), factors)
    entropy = discrete_entropy(factors)
    top = np.sort(m, axis=0)[::-1]
    per_factor = (top[0] - top[1]) / entropy
    return {
        "mig": float(np.mean(per_factor)),
        "per_factor": per_factor,
        "mutual_info": m,
        "entropy": entropy,
    }

