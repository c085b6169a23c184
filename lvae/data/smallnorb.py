"""SmallNORB (LeCun, Huang & Bottou 2004): the real binary files and a procedural twin.

Factors [category 5, instance 10, elevation 9, azimuth 18, lighting 6] as in
disentanglement_lib: the training and testing halves are concatenated (48,600 images,
every factor combination exactly once), only camera 0 is used, and the 96 px grey images
are resized to 64 (or 32) with Lanczos. As in the library, the instance is not a latent
factor: random draws take category, elevation, azimuth and lighting first and the
instance after them (``latent_factor_indices``). SmallNORB is for research use only; cite
the CVPR 2004 paper.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from collections.abc import Mapping, Sequence
from functools import cache
from typing import ClassVar

import numpy as np
from PIL import Image

from lvae.config import RESOLUTIONS
from lvae.data.base import DataFileError, GroundTruthData
from lvae.data.cache import ImageCache
from lvae.data.download import download_command
from lvae.data.mesh import Mesh, View, draw, shadow_mask
from lvae.data.norb_toys import toy
from lvae.data.resize import resize_batch

NATIVE = 96
ELEVATION_DEGREES = 30.0 + 5.0 * np.arange(9)
AZIMUTH_DEGREES = 20.0 * np.arange(18)
FILE_PREFIX = {
    "training": "smallnorb-5x46789x9x18x6x2x96x96-training",
    "testing": "smallnorb-5x01235x9x18x6x2x96x96-testing",
}
MAGIC_DTYPES = {
    0x1E3D4C55: np.dtype(np.uint8),
    0x1E3D4C54: np.dtype("<i4"),
    0x1E3D4C51: np.dtype("<f4"),
    0x1E3D4C53: np.dtype("<f8"),
}


class SmallNORB(GroundTruthData):
    """SmallNORB: grey toys on a table, photographed by a stereo rig (camera 0 used).

    Factors (row-major, lighting fastest):

    - ``category`` 5: four-legged animal, human, airplane, truck, car
    - ``instance`` 10: which toy of the category (a nuisance factor in DCI work)
    - ``elevation`` 9: 30 to 70 degrees in steps of 5
    - ``azimuth`` 18: 0 to 340 degrees in steps of 20
    - ``lighting`` 6: six lighting conditions (strongly different brightness)

    Noise model ``bernoulli``: the paper trains every dataset with its Bernoulli decoder
    (Table 4); intensities are read as probabilities in ``[0, 1]``.

    ``latent_factor_indices`` (0, 2, 3, 4) is disentanglement_lib's: it samples those
    four and only then the instance (``SplitDiscreteStateSpace.sample_all_factors``), so
    :meth:`sample_factors` draws in that order to give the library's points for a seed.
    """

    name = "smallnorb"
    factor_names = ("category", "instance", "elevation", "azimuth", "lighting")
    latent_factor_indices = (0, 2, 3, 4)
    noise_model = "bernoulli"
    #: disentanglement_lib's four factors (its ``latent_factor_indices``): the instance
    #: is a nuisance, drawn but not predicted; the paper counts four factors
    dci_subsets: ClassVar[Mapping[str, tuple[str, ...] | None]] = {
        "dci": ("category", "elevation", "azimuth", "lighting")}

    def __init__(self, resolution: int = 64, n_instances: int = 10) -> None:
        if resolution not in RESOLUTIONS:
            raise ValueError(f"resolution must be one of {RESOLUTIONS}, got {resolution}")
        if not 1 <= n_instances <= 10:
            raise ValueError(f"n_instances must be in 1..10, got {n_instances}")
        self.resolution = resolution
        self.factor_sizes = (5, n_instances, 9, 18, 6)
        self.observation_shape = (resolution, resolution, 1)

    @property
    def factor_values(self) -> tuple[np.ndarray, ...]:
        sizes = self.factor_sizes
        return (np.arange(5.0), np.arange(float(sizes[1])), ELEVATION_DEGREES,
                AZIMUTH_DEGREES, np.arange(6.0))


# ---- the twin -------------------------------------------------------------------------

# (table brightness, direction towards the light in rig coordinates) per lighting
LIGHTINGS = (  # table levels as measured on real images: 223, 206, 125, 226, 174, 248
    (0.875, (-0.5, 1.0, -0.3)),
    (0.81, (0.6, 0.8, 0.2)),
    (0.49, (0.0, 1.0, 0.6)),
    (0.885, (-0.2, 1.0, -0.8)),
    (0.68, (0.7, 0.9, -0.4)),
    (0.97, (-0.8, 0.8, 0.3)),
)
TOY_SCALE = 60.0  # pixels per world unit at 96 px: toys ~37-65 px across, as measured


@cache
def _table_texture() -> np.ndarray:
    """Faint blotchy texture of the tabletop (fixed seed, same in every image)."""
    rng = np.random.RandomState(2004)
    noise = rng.standard_normal((24, 24)).astype(np.float32)
    img = Image.fromarray(((noise * 0.25 + 0.5).clip(0, 1) * 255).astype(np.uint8))
    smooth = np.asarray(img.resize((NATIVE, NATIVE), Image.BICUBIC), dtype=np.float32) / 255
    fine = rng.standard_normal((NATIVE, NATIVE)).astype(np.float32)
    return 1.0 + 0.012 * (smooth - 0.5) * 2 + 0.004 * fine


@cache
def _toy(category: int, instance: int) -> Mesh:
    return toy(category, instance)


def render_toy(category: int, instance: int, elevation_deg: float, azimuth_deg: float,
               lighting: int) -> np.ndarray:
    """uint8 ``(96, 96)``: one twin NORB photograph (camera 0) before resizing."""
    level, light = LIGHTINGS[lighting]
    mesh = _toy(category, instance)
    view = View(azimuth=azimuth_deg, elevation=elevation_deg, scale=TOY_SCALE, size=NATIVE,
                center=(0.0, 0.12))
    shadow = shadow_mask(mesh, view, light, blur=2.5)
    table = level * _table_texture() * (1.0 - 0.38 * shadow)
    img = Image.fromarray((np.clip(table, 0, 1) * 255 + 0.5).astype(np.uint8), mode="L")
    lit = Mesh(mesh.vertices, mesh.faces, mesh.colors * level)
    draw(lit, view, background=0, light=light, ambient=0.62, diffuse=0.42, image=img)
    return np.asarray(img)


class SmallNORBTwin(SmallNORB):
    """Procedural SmallNORB: low-poly grey toys on a light table, seen from above.

    ``n_instances`` (default 10, the real count) keeps the first toys of each category:
    a CPU profile can use e.g. ``n_instances=2`` (5x fewer images). Images are drawn at
    96 px on first use, Lanczos-resized and cached (199 MB for all 48,600 at 64 px).
    """

    def __init__(self, resolution: int = 64, n_instances: int = 10) -> None:
        super().__init__(resolution, n_instances)
        self._cache = ImageCache(len(self), self.observation_shape)

    def images(self, indices: np.ndarray | Sequence[int]) -> np.ndarray:
        return self._cache.get(self.check_indices(indices), self._make)

    def _make(self, indices: np.ndarray) -> np.ndarray:
        raw = np.stack([
            render_toy(int(c), int(i), ELEVATION_DEGREES[e], AZIMUTH_DEGREES[a], int(li))
            for c, i, e, a, li in self.index_to_factors(indices)
        ])
        return resize_batch(raw[..., None], self.resolution)


# ---- the real files -------------------------------------------------------------------

#: What each kind of file holds: dtype and, per image, the trailing shape. The
#: ``cat``/``info`` dtypes are part of the format (int32 matrices): a file of another type
#: (a ``dat`` file renamed, a float matrix) would otherwise be cast silently to factors.
KIND_LAYOUT = {
    "dat": (np.dtype(np.uint8), (2, NATIVE, NATIVE)),
    "cat": (np.dtype("<i4"), ()),
    "info": (np.dtype("<i4"), (4,)),
}
#: Valid values of the ``cat`` column and the four ``info`` columns (instance, elevation,
#: azimuth in 0, 2, ..., 34, lighting), named as in the NORB documentation.
VALUE_RANGES = (("category", 5), ("instance", 10), ("elevation", 9), ("azimuth", 35),
                ("lighting", 6))


def _fix(folder: str) -> str:
    """What to run when a SmallNORB file in ``folder`` is missing or damaged."""
    return (f"run `{download_command('smallnorb', folder or '.')}` "
            "(it verifies the files there and fetches the damaged ones again)")


def read_norb_file(path: str | os.PathLike) -> np.ndarray:
    """One NORB binary matrix (``-dat``, ``-cat`` or ``-info``; ``.gz`` or not).

    Header, int32 little-endian: magic (dtype), ndim, then max(3, ndim) dimensions; the
    data follow at byte 8 + 4 * max(3, ndim). Every failure is a :class:`DataFileError`
    naming the file, the problem and the download command that replaces it.
    """
    path = os.fspath(path)
    fix = _fix(os.path.dirname(path))
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError, zlib.error) as e:  # truncated or damaged gzip stream
        raise DataFileError(f"{path}: cannot be read ({type(e).__name__}: {e}); "
                            f"{fix}") from e
    if len(data) < 20:
        raise DataFileError(f"{path}: {len(data)} bytes is too short for a NORB header; "
                            f"{fix}")
    magic, ndim = struct.unpack("<Ii", data[:8])
    if magic not in MAGIC_DTYPES:
        raise DataFileError(
            f"{path}: magic number {magic:#x} is not a NORB matrix; expected one of "
            + ", ".join(f"{m:#x}" for m in MAGIC_DTYPES) + f"; {fix}"
        )
    if not 1 <= ndim <= 8:
        raise DataFileError(f"{path}: header says {ndim} dimensions; expected 1 to 8; "
                            f"{fix}")
    nd = max(3, ndim)
    dims = struct.unpack(f"<{nd}i", data[8 : 8 + 4 * nd])[:ndim]
    dtype = MAGIC_DTYPES[magic]
    offset = 8 + 4 * nd
    need = int(np.prod(dims)) * dtype.itemsize
    if min(dims) < 0 or len(data) - offset < need:
        raise DataFileError(
            f"{path}: header says shape {tuple(dims)} ({need} bytes of {dtype}) but only "
            f"{len(data) - offset} bytes follow it: the file is truncated; {fix}"
        )
    return np.frombuffer(data, dtype=dtype, count=int(np.prod(dims)), offset=offset).reshape(dims)


def _find(path: str, prefix: str, kind: str) -> str:
    for suffix in ("", ".gz"):
        candidate = os.path.join(path, f"{prefix}-{kind}.mat{suffix}")
        if os.path.exists(candidate):
            return candidate
    raise FileNotFoundError(
        f"{prefix}-{kind}.mat(.gz) not found in {path}; get SmallNORB with "
        f"`{download_command('smallnorb', path)}`"
    )


def read_kind(path: str, prefix: str, kind: str) -> np.ndarray:
    """The ``kind`` matrix of one half, its dtype and per-image shape checked."""
    file = _find(path, prefix, kind)
    array = read_norb_file(file)
    dtype, tail = KIND_LAYOUT[kind]
    if array.dtype != dtype or array.ndim != 1 + len(tail) or array.shape[1:] != tail:
        want = f"(n{''.join(f', {d}' for d in tail)}{',' if not tail else ''})"
        raise DataFileError(
            f"{file}: a {kind} file must hold {dtype} of shape {want}; it holds "
            f"{array.dtype} of shape {array.shape}; {_fix(path)}"
        )
    return array


def read_split(path: str, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(images camera 0 (n, 96, 96) uint8, category (n,), info (n, 4))`` of one half.

    Checks what turning the files into factors relies on: the dtypes and shapes of the
    three files, one ``cat`` and ``info`` row per image, and every value in its range (an
    out-of-range value would otherwise surface as an anonymous index error later).
    """
    prefix = FILE_PREFIX[split]
    dat = read_kind(path, prefix, "dat")
    cat = read_kind(path, prefix, "cat")
    info = read_kind(path, prefix, "info")
    n = dat.shape[0]
    if cat.shape[0] != n or info.shape[0] != n:
        raise DataFileError(
            f"{os.path.join(path, prefix)}-*: cat has {cat.shape[0]} rows and info "
            f"{info.shape[0]} but dat has {n} images; {_fix(path)}"
        )
    columns = np.column_stack([cat, info]).astype(np.int64)
    for j, (factor, size) in enumerate(VALUE_RANGES):
        kind = "cat" if j == 0 else "info"
        col = columns[:, j]
        bad = np.flatnonzero((col < 0) | (col >= size) | ((col % 2 != 0) & (factor == "azimuth")))
        if bad.size:
            file = _find(path, prefix, kind)
            allowed = "0, 2, ..., 34" if factor == "azimuth" else f"0 to {size - 1}"
            raise DataFileError(
                f"{file}: row {int(bad[0])} has {factor} {int(col[bad[0]])}; expected "
                f"{allowed}; {_fix(path)}"
            )
    return dat[:, 0].copy(), columns[:, 0], columns[:, 1:]


class SmallNORBFiles(SmallNORB):
    """The real SmallNORB: the six ``smallnorb-*.mat[.gz]`` files in one folder.

    All images are decoded and resized at construction (~10 s, 199 MB at 64 px) and
    stored in factor-grid order. ``partial=True`` accepts files covering only part of
    the grid (what tests write); missing images then raise on access. Real files that
    cover only part of the grid are damaged: the error says to download them again.
    """

    def __init__(self, path: str | os.PathLike, resolution: int = 64,
                 partial: bool = False) -> None:
        path = os.fspath(path)
        if not os.path.isdir(path):
            raise FileNotFoundError(
                f"{path} does not exist; get SmallNORB with "
                f"`{download_command('smallnorb', path)}`"
            )
        super().__init__(resolution)
        self._images = np.zeros((len(self), *self.observation_shape), dtype=np.uint8)
        self._present = np.zeros(len(self), dtype=bool)
        for split in ("training", "testing"):
            images, cat, info = read_split(path, split)
            factors = np.column_stack([cat, info[:, 0], info[:, 1], info[:, 2] // 2, info[:, 3]])
            idx = self.factors_to_index(factors)
            if self._present[idx].any() or np.unique(idx).size != idx.size:
                raise DataFileError(
                    f"{os.path.join(path, FILE_PREFIX[split])}-info.mat(.gz): the {split} "
                    f"half repeats factor combinations; {_fix(path)}"
                )
            self._images[idx] = resize_batch(images[..., None], resolution)
            self._present[idx] = True
        if not partial and not self._present.all():
            raise DataFileError(
                f"the SmallNORB files in {path} hold {self._present.sum()} of {len(self)} "
                f"images (the files are truncated or not the published ones); {_fix(path)}"
            )

    def images(self, indices: np.ndarray | Sequence[int]) -> np.ndarray:
        idx = self.check_indices(indices)
        if not self._present[idx].all():
            missing = idx[~self._present[idx]][:5].tolist()
            raise ValueError(f"indices {missing} are not in the files (partial SmallNORB)")
        return self._images[idx]
