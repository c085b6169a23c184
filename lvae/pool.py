"""The training pool: which dataset images a run trains on, and a fast way to fetch them.

A run draws its anchors from a fixed, seeded subset of the dataset (all of it when
``pool_size`` is None) and keeps a disjoint held-out set for the held-out ELBO. Small pools
are cached in memory as uint8; big ones (the paper profile's 480,000 images) are fetched
from the dataset on demand. A procedural twin's in-memory pool is also kept on disk
(:mod:`lvae.data.render_cache`): the pool depends only on the dataset, the resolution and
the exact indices, yet every run used to render it again, three times per notebook.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from lvae.data.base import ImageDataset, to_tensor
from lvae.data.render_cache import cached_images

CACHE_BYTES = 2 * 1024**3


class ImagePool:
    """Positions 0..n-1 of a pool map to dataset indices ``self.indices``.

    ``disk_cache``: read and keep a twin's pool in the render cache (it never changes
    which images the pool holds, only whether they are drawn again).
    """

    def __init__(self, dataset: ImageDataset, indices: np.ndarray,
                 disk_cache: bool = True) -> None:
        self.dataset = dataset
        self.indices = np.asarray(indices, dtype=np.int64)
        h, w, c = dataset.observation_shape
        self._cache: np.ndarray | None = None
        if len(self.indices) * h * w * c <= CACHE_BYTES:
            self._cache = (cached_images(dataset, self.indices, self._fetch, kind="pool")
                           if disk_cache else self._fetch(self.indices))

    def __len__(self) -> int:
        return len(self.indices)

    def _fetch(self, idx: np.ndarray, chunk: int = 4096) -> np.ndarray:
        parts = [self.dataset.images(idx[i : i + chunk]) for i in range(0, len(idx), chunk)]
        return np.concatenate(parts) if parts else np.zeros((0, *self.dataset.observation_shape),
                                                              np.uint8)

    def uint8(self, positions: np.ndarray) -> np.ndarray:
        positions = np.asarray(positions, dtype=np.int64)
        if self._cache is not None:
            return self._cache[positions]
        return self.dataset.images(self.indices[positions])

    def tensor(self, positions: np.ndarray, device: torch.device | str | None = None) -> Tensor:
        """Float ``(n, C, H, W)`` images in [0, 1] at pool positions."""
        return to_tensor(self.uint8(positions), device)

    def flat_pixels(self) -> np.ndarray:
        """All pool images as float32 rows in [0, 1] (for pixel-space kNN)."""
        imgs = self._cache if self._cache is not None else self._fetch(self.indices)
        return imgs.reshape(len(imgs), -1).astype(np.float32) / 255.0


def split_pool(
    n_total: int, pool_size: int | None, heldout_size: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint (pool, held-out) dataset indices, drawn with their own seeded RNG."""
    rng = np.random.RandomState(seed + 7919)
    if heldout_size >= n_total:
        raise ValueError(f"heldout_size ({heldout_size}) must be smaller than the dataset "
                         f"({n_total} images)")
    perm = rng.permutation(n_total)
    heldout = np.sort(perm[:heldout_size])
    rest = perm[heldout_size:]
    if pool_size is not None:
        if pool_size > len(rest):
            raise ValueError(f"pool_size {pool_size} exceeds the {len(rest)} images available")
        rest = rest[:pool_size]
    return np.sort(rest), heldout
