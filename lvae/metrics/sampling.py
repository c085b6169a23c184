"""Draw (codes, factors) pairs from a ground-truth dataset, as disentanglement_lib does.

Every metric of :mod:`lvae.metrics` is "sampling + pure maths on arrays". This module is the
sampling half: it draws factor tuples from the dataset's grid with an explicit
``numpy.random.RandomState``, renders their images and passes them through a
*representation function* (for lvae: the encoder means; metrics never see the model).

The draw order reproduces ``disentanglement_lib.evaluation.metrics.utils.
generate_batch_factor_code``: points are drawn in mini-batches of ``batch_size`` (16 there),
each batch one ``data.sample(n, random_state)`` call. The batch size is therefore part of the
random stream, not just a memory knob: with the same ``RandomState`` seed and ``batch_size=16``
the factors are the ones disentanglement_lib would have drawn. Images are encoded in larger
chunks (``encode_batch_size``), which changes nothing but speed.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from lvae.data.base import GroundTruthData

#: ``represent(images_uint8 (n, H, W, C)) -> codes (n, d)``: the encoder means, typically.
RepresentationFunction = Callable[[np.ndarray], np.ndarray]

#: disentanglement_lib's default ``batch_size`` of ``generate_batch_factor_code``.
DLIB_SAMPLING_BATCH = 16


def sample_factors_and_images(
    data: GroundTruthData,
    num: int,
    random_state: np.random.RandomState,
    batch_size: int = DLIB_SAMPLING_BATCH,
) -> tuple[np.ndarray, np.ndarray]:
    """``num`` factor tuples ``(num, k)`` and their uint8 images, drawn batch by batch."""
    factors, images = [], []
    drawn = 0
    while drawn < num:
        n = min(batch_size, num - drawn)
        f, x = data.sample(n, random_state)
        factors.append(np.asarray(f))
        images.append(np.asarray(x))
        drawn += n
    return np.concatenate(factors), np.concatenate(images)


def represent_in_batches(
    represent: RepresentationFunction, images: np.ndarray, batch_size: int = 256
) -> np.ndarray:
    """Apply ``represent`` to ``images`` chunk by chunk; returns floating ``(n, d)`` codes.

    A floating dtype is kept as returned (float32 encoder means stay float32, as in
    disentanglement_lib, so MIG's histogram edges match); anything else becomes float64.
    """
    chunks = range(0, len(images), batch_size)
    out = np.concatenate([np.asarray(represent(images[i : i + batch_size])) for i in chunks])
    if not np.issubdtype(out.dtype, np.floating):
        out = out.astype(np.float64)
    if out.ndim != 2 or len(out) != len(images):
        raise ValueError(f"represent must return (n, d) codes, got shape {out.shape}")
    return out


def sample_codes(
    data: GroundTruthData,
    represent: RepresentationFunction,
    num: int,
    random_state: np.random.RandomState,
    batch_size: int = DLIB_SAMPLING_BATCH,
    encode_batch_size: int = 256,
) -> tuple[np.ndarray, np.ndarray]:
    """``(codes (num, d) floating, factors (num, k) int64)`` for ``num`` random grid points.

    Rows are points (disentanglement_lib stores the transpose, ``(d, num)``).
    """
    factors, images = sample_factors_and_images(data, num, random_state, batch_size)
    codes = represent_in_batches(represent, images, encode_batch_size)
    return codes, factors.astype(np.int64)
