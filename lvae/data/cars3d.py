"""Cars3D (Reed et al. 2015): the real ``car_NNN_mesh.mat`` files and a procedural twin.

Factors [elevation 4, azimuth 24, object 183], row-major (object fastest), as in
disentanglement_lib; objects are numbered in *sorted* file-name order (disentanglement_lib
uses the unsorted directory listing, which differs between machines).
"""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from functools import cache

import numpy as np

from lvae.data.base import GroundTruthData
from lvae.data.cache import ImageCache
from lvae.data.car_models import car_mesh, random_car
from lvae.data.mesh import View, draw
from lvae.data.resize import resize_batch

NUM_OBJECTS = 183
ELEVATION_DEGREES = np.array([10.0, 17.5, 25.0, 32.5])  # twin's camera; real: unlabelled
AZIMUTH_DEGREES = np.arange(24) * 15.0
RESOLUTIONS = (64, 32)
NATIVE = 128  # the real renders' size; the twin draws at this size too, then resizes


class Cars3D(GroundTruthData):
    """Cars3D: CAD car models on white, seen from 4 elevations and 24 azimuths.

    Factors (row-major, object fastest):

    - ``elevation`` 4: camera slightly above the car, looking down a little more each step
    - ``azimuth`` 24: 15 degree steps all around
    - ``object`` 183: the car model

    Noise model ``bernoulli``: the paper uses its Bernoulli decoder for every dataset
    (Table 4); ~76% of Cars3D pixels are pure white, which a Bernoulli likelihood on
    ``[0, 1]`` intensities fits sharply.
    """

    name = "cars3d"
    factor_names = ("elevation", "azimuth", "object")
    noise_model = "bernoulli"

    def __init__(self, resolution: int = 64, n_objects: int = NUM_OBJECTS) -> None:
        if resolution not in RESOLUTIONS:
            raise ValueError(f"resolution must be one of {RESOLUTIONS}, got {resolution}")
        if not 1 <= n_objects <= NUM_OBJECTS:
            raise ValueError(f"n_objects must be in 1..{NUM_OBJECTS}, got {n_objects}")
        self.resolution = resolution
        self.n_objects = n_objects
        self.factor_sizes = (4, 24, n_objects)
        self.observation_shape = (resolution, resolution, 3)
        self._cache = ImageCache(len(self), self.observation_shape)

    def images(self, indices: np.ndarray | Sequence[int]) -> np.ndarray:
        return self._cache.get(self.check_indices(indices), self._make)

    def _make(self, indices: np.ndarray) -> np.ndarray:
        raise NotImplementedError


@cache
def _twin_mesh(obj: int):
    return car_mesh(random_car(np.random.RandomState(10_000 + obj)))


def render_car(obj: int, elevation_deg: float, azimuth_deg: float) -> np.ndarray:
    """uint8 ``(128, 128, 3)``: twin car ``obj`` on white, hard edges like the real renders."""
    mesh = _twin_mesh(obj)
    view = View(azimuth=azimuth_deg, elevation=elevation_deg, scale=21.0, size=NATIVE,
                center=(0.0, 0.55))
    img = draw(mesh, view, background=(255, 255, 255), light=(-0.4, 1.0, -0.6),
               ambient=0.72, diffuse=0.33)
    return np.asarray(img)


class Cars3DTwin(Cars3D):
    """Procedural Cars3D: low-poly cars of seven body styles and realistic paints.

    ``n_objects`` (default 183, the real count) keeps only the first cars: a CPU profile
    can use e.g. ``n_objects=24`` (7.6x fewer images). Images are drawn at 128 px on
    first use and Lanczos-resized, then cached (216 MB when all 17,568 are drawn at 64 px).
    """

    def _make(self, indices: np.ndarray) -> np.ndarray:
        f = self.index_to_factors(indices)
        raw = np.stack(
            [render_car(int(o), ELEVATION_DEGREES[e], AZIMUTH_DEGREES[a]) for e, a, o in f]
        )
        return resize_batch(raw, self.resolution)


def find_car_files(path: str | os.PathLike) -> list[str]:
    """Sorted ``car_*_mesh.mat`` paths under ``path``, ``path/cars`` or ``path/data/cars``."""
    for sub in ("", "cars", os.path.join("data", "cars")):
        files = sorted(glob.glob(os.path.join(os.fspath(path), sub, "car_*_mesh.mat")))
        if files:
            return files
    return []


def read_car_file(path: str) -> np.ndarray:
    """uint8 ``(4, 24, 128, 128, 3)`` [elevation, azimuth, H, W, C] from one ``.mat``."""
    import scipy.io

    mat = scipy.io.loadmat(path)
    name = os.path.basename(path)
    if "im" not in mat:
        keys = sorted(k for k in mat if not k.startswith("__"))
        raise ValueError(f"{name}: no variable 'im' (found {keys}); expected 'im'")
    im = mat["im"]
    if im.shape != (NATIVE, NATIVE, 3, 24, 4):
        raise ValueError(f"{name}: 'im' has shape {im.shape}; expected (128, 128, 3, 24, 4)")
    if im.dtype != np.uint8:
        raise ValueError(f"{name}: 'im' has dtype {im.dtype}; expected uint8")
    return np.transpose(im, (4, 3, 0, 1, 2))


class Cars3DFiles(Cars3D):
    """The real Cars3D: 183 MATLAB files, decoded one car at a time on first use.

    ``path`` is the extracted ``nips2015-analogy-data`` folder (or its ``data/cars``).
    ``partial=True`` accepts fewer than 183 files (tests write two or three).
    """

    def __init__(self, path: str | os.PathLike, resolution: int = 64,
                 partial: bool = False) -> None:
        if not os.path.exists(path):
            raise FileNotFoundError(
                f"{os.fspath(path)} does not exist; get Cars3D with "
                f"`python -m lvae.data download cars3d --to DIR`"
            )
        self.files = find_car_files(path)
        if not self.files:
            raise FileNotFoundError(
                f"no car_*_mesh.mat files in {os.fspath(path)} (nor in its cars/ or "
                f"data/cars/); get them with `python -m lvae.data download cars3d --to DIR`"
            )
        if len(self.files) != NUM_OBJECTS and not partial:
            raise ValueError(
                f"found {len(self.files)} car_*_mesh.mat files in {os.fspath(path)}; "
                f"expected {NUM_OBJECTS} (pass partial=True to use an incomplete set)"
            )
        super().__init__(resolution, n_objects=len(self.files))

    def images(self, indices: np.ndarray | Sequence[int]) -> np.ndarray:
        idx = self.check_indices(indices)
        objects = np.unique(self.index_to_factors(self._cache.missing(idx))[:, 2])
        for obj in objects:  # decode every view of a car at once: one file read per car
            views = read_car_file(self.files[obj]).reshape(-1, NATIVE, NATIVE, 3)
            grid = np.stack(np.meshgrid(np.arange(4), np.arange(24), [obj], indexing="ij"),
                            axis=-1).reshape(-1, 3)  # (elevation, azimuth) order of views
            self._cache.put(self.factors_to_index(grid), resize_batch(views, self.resolution))
        return self._cache.get(idx, self._make)

    def _make(self, indices: np.ndarray) -> np.ndarray:
        raise AssertionError("every view of a requested car is decoded before lookup")
