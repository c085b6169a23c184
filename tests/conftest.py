"""Shared fixtures: small in-memory datasets so core tests need no renderer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lvae.data.base import GroundTruthData


class BlobData(GroundTruthData):
    """A tiny ground-truth dataset: a bright square whose x, y and grey level are factors.

    Small enough to train on in seconds, structured enough for kNN and DCI to mean
    something. Images are computed in the constructor (32x32, 1 or 3 channels).
    """

    name = "blobs"
    factor_names = ("x", "y", "level")
    factor_sizes = (6, 6, 4)
    noise_model = "bernoulli"

    def __init__(self, resolution: int = 32, channels: int = 3) -> None:
        self.observation_shape = (resolution, resolution, channels)
        n = len(self)
        imgs = np.zeros((n, resolution, resolution, channels), np.uint8)
        f = self.index_to_factors(np.arange(n))
        step = (resolution - 8) // 5
        for i, (x, y, lev) in enumerate(f):
            imgs[i, 2 + y * step : 8 + y * step, 2 + x * step : 8 + x * step] = 100 + 50 * lev
        self._imgs = imgs

    def images(self, indices):
        return self._imgs[np.asarray(indices, dtype=np.int64)]


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(2)
    yield


@pytest.fixture
def one_torch_thread():
    """On a shared 2-core machine one thread is several times faster than oversubscribed two."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def blobs() -> BlobData:
    return BlobData()
