"""Lanczos resizing of uint8 image batches (what disentanglement_lib's loaders do).

The real Cars3D (128 px) and SmallNORB (96 px) images are brought to 64 or 32 pixels with
PIL's Lanczos filter, as the reference loaders do; doing the same to the twins' larger
renders gives them the same antialiased-but-slightly-ringing edges.
"""

from __future__ import annotations

import numpy as np
from PIL import Image


def resize_batch(images: np.ndarray, size: int) -> np.ndarray:
    """uint8 ``(n, H, W, C)`` -> uint8 ``(n, size, size, C)`` with Lanczos (C is 1 or 3)."""
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(f"expected uint8 (n, H, W, 1|3) images, got {images.dtype} {images.shape}")
    n, h, w, c = images.shape
    if (h, w) == (size, size):
        return images.copy()
    out = np.empty((n, size, size, c), dtype=np.uint8)
    for i in range(n):
        src = images[i, :, :, 0] if c == 1 else images[i]
        img = Image.fromarray(src).resize((size, size), Image.LANCZOS)
        out[i] = np.asarray(img).reshape(size, size, c)
    return out
