"""Rendered twin images kept on disk, so the grid's runs stop rendering the same images.

Why: the procedural twins draw every image on first use, and nothing outlives a process. A
run of ``experiment.ipynb`` builds its dataset three times (``train``, then ``load_run`` in
``evaluate`` and in the picture cell), and every run of a grid draws the same images again:
the quick profile's CarsNORB pool of 4,000 images takes 8-15 s to render at 32x32 on one
core, three times per run, while the pool depends only on the dataset, the resolution and
the seed.

What is kept: one compressed ``.npz`` file per set of images, named by the hash of a key
that holds everything the images depend on: the twin's class and options (resolution, how
many cars or toys), the exact indices (their hash, and the indices themselves in the file),
and :func:`renderer_version`, a hash of the data package's source and of the numpy and
Pillow versions, so any change to a renderer (or to the Lanczos resize) makes a new key by
itself, without anyone remembering to bump a number.

Never trusted: a file is used only if it loads, holds the key it was asked for, word for
word, and holds arrays of the expected dtype and shape; anything else (a truncated file, a
file of another version, a hash collision) is recomputed and written anew. Writes go to a
temporary file in the same folder and are moved into place (``os.replace``), so a reader
never sees half a file, and two workers writing the same entry leave one whole copy.
Images are a deterministic function of their index, so a run reads bit for bit the images
it would have drawn: its log is the same with or without the cache.

Only the procedural twins are cached: their images depend on lvae's code alone. Real
files (and test datasets) are read as before. Where: ``$LVAE_CACHE/renders``, by default
``~/.cache/lvae/renders`` (the folder lvae's other caches use: the FD-factors networks, the
FID statistics); ``LVAE_RENDER_CACHE=off`` switches it off. The entries are small (a
4,000-image pool at 32x32 is about 0.4 MB compressed); deleting the folder is always safe.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import warnings
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

#: Bump when the file layout changes (the renderers are covered by renderer_version).
FORMAT = 1
#: The root of lvae's caches (shared with lvae.metrics.factor_net); entries go to renders/.
CACHE_ENV = "LVAE_CACHE"
#: ``off`` (or 0, false, no): draw every image, keep nothing on disk.
SWITCH_ENV = "LVAE_RENDER_CACHE"


def cache_dir() -> Path | None:
    """The folder entries live in, or None when the render cache is switched off."""
    if os.environ.get(SWITCH_ENV, "").strip().lower() in ("off", "0", "false", "no"):
        return None
    root = os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "lvae")
    return Path(root).expanduser() / "renders"


@cache
def renderer_version() -> str:
    """Hash of every module of ``lvae.data`` plus the numpy and Pillow versions.

    Coarser than needed (a change to the download code also starts a new cache), never
    finer: whatever draws or resizes a twin's image lives in this package or in those two
    libraries.
    """
    import PIL

    h = hashlib.sha256(f"format {FORMAT}; numpy {np.__version__}; "
                       f"Pillow {PIL.__version__}\n".encode())
    for path in sorted(Path(__file__).resolve().parent.glob("*.py")):
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:32]


def twin_identity(dataset: Any) -> dict[str, Any] | None:
    """What a procedural twin's images depend on besides its code; None if not a twin.

    Exact classes only: a subclass (a test's, a user's) may draw other images under the
    same options, so it is never cached.
    """
    from lvae.data.cars3d import Cars3DTwin
    from lvae.data.carsnorb import CarsNORB, GreyAsRGB
    from lvae.data.shapes3d import Shapes3DTwin
    from lvae.data.smallnorb import SmallNORBTwin

    kind = type(dataset)
    if kind is Shapes3DTwin:
        return {"class": "Shapes3DTwin", "resolution": dataset.resolution}
    if kind is Cars3DTwin:
        return {"class": "Cars3DTwin", "resolution": dataset.resolution,
                "n_objects": dataset.n_objects}
    if kind is SmallNORBTwin:
        return {"class": "SmallNORBTwin", "resolution": dataset.resolution,
                "factor_sizes": list(dataset.factor_sizes)}
    if kind is GreyAsRGB:
        inner = twin_identity(dataset.inner)
        return None if inner is None else {"class": "GreyAsRGB", "inner": inner}
    if kind is CarsNORB:
        parts = {name: twin_identity(part) for name, part in dataset.parts.items()}
        if any(p is None for p in parts.values()):
            return None
        return {"class": "CarsNORB", "parts": parts}
    return None


def _key_text(key: Mapping[str, Any]) -> str:
    return json.dumps(key, sort_keys=True, separators=(",", ":"))


def entry_path(kind: str, key: Mapping[str, Any], folder: Path) -> Path:
    """Where the entry of ``key`` is kept (``<folder>/<kind>-<hash of the key>.npz``)."""
    return folder / f"{kind}-{hashlib.sha256(_key_text(key).encode()).hexdigest()[:32]}.npz"


def load_entry(kind: str, key: Mapping[str, Any],
               expect: Mapping[str, tuple[np.dtype, tuple[int, ...] | None]],
               folder: Path | None = None) -> dict[str, np.ndarray] | None:
    """The arrays stored under ``key``, or None (no entry, unreadable, or not this key).

    ``expect`` maps each array's name to its dtype and shape (None: any shape); an entry
    that lacks one or holds another is not used.
    """
    folder = folder if folder is not None else cache_dir()
    if folder is None:
        return None
    path = entry_path(kind, key, folder)
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["__key__"]) != _key_text(key):
                return None
            out = {name: z[name] for name in expect}
    except FileNotFoundError:
        return None
    except Exception:  # truncated, not a zip, missing arrays: recompute, never trust
        return None
    for name, (dtype, shape) in expect.items():
        a = out[name]
        if a.dtype != np.dtype(dtype) or (shape is not None and a.shape != tuple(shape)):
            return None
    return out


def save_entry(kind: str, key: Mapping[str, Any], arrays: Mapping[str, np.ndarray],
               folder: Path | None = None) -> Path | None:
    """Write ``arrays`` under ``key`` atomically; None (with a warning) if it cannot.

    A cache that cannot be written costs time, never a run: the error becomes a warning.
    """
    from lvae.store import atomic_write_bytes

    folder = folder if folder is not None else cache_dir()
    if folder is None:
        return None
    path = entry_path(kind, key, folder)
    buf = io.BytesIO()
    np.savez_compressed(buf, __key__=np.array(_key_text(key)), **arrays)
    try:
        atomic_write_bytes(path, buf.getvalue())
    except OSError as e:
        warnings.warn(f"could not write the render cache entry {path} ({e}); images are "
                      f"drawn again next time (set {CACHE_ENV} to a writable folder, or "
                      f"{SWITCH_ENV}=off)", RuntimeWarning, stacklevel=2)
        return None
    return path


def _indices_hash(indices: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(indices, dtype="<i8").tobytes()).hexdigest()


def cached_images(dataset: Any, indices: np.ndarray,
                  render: Callable[[np.ndarray], np.ndarray], kind: str = "images",
                  folder: Path | None = None) -> np.ndarray:
    """``render(indices)`` of a twin, read from the disk cache when it holds them.

    ``render`` must return the dataset's uint8 images at ``indices`` (e.g.
    ``dataset.images``); datasets that are not procedural twins, or a switched-off cache,
    just call it.
    """
    indices = np.asarray(indices, dtype=np.int64)
    ident = twin_identity(dataset)
    folder = folder if folder is not None else cache_dir()
    if ident is None or folder is None:
        return render(indices)
    shape = (len(indices), *dataset.observation_shape)
    key = {"format": FORMAT, "renderer": renderer_version(), "dataset": ident,
           "shape": list(shape), "indices_sha256": _indices_hash(indices)}
    hit = load_entry(kind, key, {"indices": (np.dtype(np.int64), (len(indices),)),
                                 "images": (np.dtype(np.uint8), shape)}, folder)
    if hit is not None and np.array_equal(hit["indices"], indices):
        return hit["images"]
    images = render(indices)
    save_entry(kind, key, {"indices": indices, "images": images}, folder)
    return images
