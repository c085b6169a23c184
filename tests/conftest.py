"""Shared fixtures: small in-memory datasets so core tests need no renderer, and the smoke
build of the whole book (built once per session, for test_book.py and test_browser.py)."""

from __future__ import annotations

import time

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


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory):
    """Every cache lvae writes (renders, FID statistics, FD-factors nets) goes to a folder
    of this test session, never the user's ~/.cache; tests that need their own set it."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LVAE_CACHE", str(tmp_path_factory.mktemp("lvae-cache")))
        yield


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


#: The profile of the book built by the ``built`` fixture.
BOOK_PROFILE = "smoke"


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The whole book through ``lvae.report.reproduce`` on the smoke profile, once per session.

    One training run (3D Shapes, alpha = 1: the model behind Figures 2-4); ``out`` holds
    ``<profile>/book/_build/html``. A few minutes on 2 cores.
    """
    from lvae.report.grid import Experiment
    from lvae.report.reproduce import reproduce

    out = tmp_path_factory.mktemp("book-runs")
    grid = [Experiment("shapes3d", 1.0, tables=("table1", "fig2", "fig3", "fig4"))]
    t0 = time.perf_counter()
    summary = reproduce(profile=BOOK_PROFILE, out=out, grid=grid, progress=False)
    return {"out": out, "profile": BOOK_PROFILE, "summary": summary,
            "wall": time.perf_counter() - t0}
