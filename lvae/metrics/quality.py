"""FID when Inception weights are available, FD-factors otherwise, always named.

The paper's FID (Table 1) uses 50,000 real and 50,000 generated images and Keras' ImageNet
Inception-v3. Offline, without that file, :func:`fid_or_fd` falls back to FD-factors
(:mod:`lvae.metrics.factor_net`) and says so in the returned name, so a number can never be
shown under the wrong metric.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

import numpy as np

from lvae.data.base import GroundTruthData
from lvae.metrics import factor_net as fdf
from lvae.metrics.frechet import frechet_distance_from_features
from lvae.metrics.inception import (
    RESIZE_METHOD,
    WEIGHTS_FILENAME,
    find_inception_weights,
    inception_features,
    load_inception,
)


@dataclass(frozen=True)
class FrechetResult:
    """A Frechet distance with the name of the feature space it was computed in."""

    name: str  # "FID" or "FD-factors"
    value: float
    num_real: int
    num_generated: int
    features: str  # what produced the features, for the record

    def as_dict(self) -> dict:
        return asdict(self)


def fid(
    real_images: np.ndarray,
    generated_images: np.ndarray,
    weights: str | os.PathLike | None = None,
    batch_size: int = 50,
) -> float:
    """FID of two uint8 ``(n, H, W, C)`` image sets with pytorch-fid's Inception weights."""
    model = load_inception(weights)
    return frechet_distance_from_features(
        inception_features(model, real_images, batch_size),
        inception_features(model, generated_images, batch_size),
    )


def fid_or_fd(
    data: GroundTruthData,
    real_images: np.ndarray,
    generated_images: np.ndarray,
    weights: str | os.PathLike | None = None,
    **fd_kwargs,
) -> FrechetResult:
    """FID if Inception weights are configured, else FD-factors.

    Weights are configured by ``weights`` or ``$LVAE_INCEPTION_WEIGHTS``; a configured path
    that does not exist is an error (FileNotFoundError), not a silent fallback.
    ``fd_kwargs`` go to :func:`lvae.metrics.factor_net.fd_factors`.
    """
    found = find_inception_weights(weights)
    if found is not None:
        return FrechetResult(
            "FID",
            fid(real_images, generated_images, found),
            len(real_images),
            len(generated_images),
            f"Inception-v3 pool3, {WEIGHTS_FILENAME}, resize: {RESIZE_METHOD}",
        )
    value = fdf.fd_factors(data, real_images, generated_images, **fd_kwargs)
    return FrechetResult(
        fdf.NAME,
        value,
        len(real_images),
        len(generated_images),
        f"FactorNet v{fdf.VERSION} penultimate layer ({fdf.FEATURE_DIM}-d), trained on "
        f"{getattr(data, 'name', type(data).__name__)} factors",
    )
