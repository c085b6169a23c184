"""A fill-once image cache for datasets whose images are expensive to make.

The Cars3D and NORB twins render an image the first time it is asked for, and the real
Cars3D loader decodes one car's file the first time one of its views is asked for. The
cache is one preallocated uint8 array plus a "ready" mask: ``np.zeros`` memory is only
committed by the OS when written, so an unused cache costs (almost) nothing, and a full
one is exactly the dataset's size (e.g. 17,568 x 64 x 64 x 3 = 216 MB for Cars3D).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


class ImageCache:
    """``get(indices, fill)`` returns cached images, calling ``fill(missing)`` first."""

    def __init__(self, num: int, shape: tuple[int, ...]) -> None:
        self._images = np.zeros((num, *shape), dtype=np.uint8)
        self._ready = np.zeros(num, dtype=bool)

    def get(
        self, indices: np.ndarray, fill: Callable[[np.ndarray], np.ndarray]
    ) -> np.ndarray:
        """Images at ``indices``; ``fill(sorted unique missing indices)`` makes new ones."""
        missing = np.unique(indices[~self._ready[indices]])
        if missing.size:
            self._images[missing] = fill(missing)
            self._ready[missing] = True
        return self._images[indices]

    def put(self, indices: np.ndarray, images: np.ndarray) -> None:
        """Store ``images`` at ``indices`` (e.g. every view of a car decoded at once)."""
        self._images[indices] = images
        self._ready[indices] = True

    def missing(self, indices: np.ndarray) -> np.ndarray:
        """Sorted unique ``indices`` not cached yet."""
        return np.unique(indices[~self._ready[indices]])

    @property
    def filled(self) -> int:
        return int(self._ready.sum())
