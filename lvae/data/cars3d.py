"""Cars3D (Reed et al. 2015): the real ``car_NNN_mesh.mat`` files and a procedural twin.

Factors [elevation 4, azimuth 24, object 183], row-major (object fastest), as in
disentanglement_lib; objects are numbered in *sorted* file-name order (disentanglement_lib
uses the unsorted directory listing, which differs between machines).
"""

from __future__ import annotations

import glob
import os
import struct
from collections.abc import Sequence
from functools import cache

import numpy as np

from lvae.config import RESOLUTIONS
from lvae.data.base import DataFileError, GroundTruthData
from lvae.data.cache import ImageCache
from lvae.data.car_models import car_mesh, random_car
from lvae.data.download import download_command
from lvae.data.mesh import View, draw
from lvae.data.resize import resize_batch

NUM_OBJECTS = 183
ELEVATION_DEGREES = np.array([10.0, 17.5, 25.0, 32.5])  # twin's camera; real: unlabelled
AZIMUTH_DEGREES = np.arange(24) * 15.0
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


SUBFOLDERS = ("", "cars", os.path.join("data", "cars"))  # where the .mat files may sit
MAT_HEADER = 128  # bytes of a MATLAB v5 file before its first data element


def find_car_files(path: str | os.PathLike) -> list[str]:
    """Sorted ``car_*_mesh.mat`` paths under ``path``, ``path/cars`` or ``path/data/cars``."""
    for sub in SUBFOLDERS:
        files = sorted(glob.glob(os.path.join(os.fspath(path), sub, "car_*_mesh.mat")))
        if files:
            return files
    return []


def download_folder(car_file: str) -> str:
    """The ``--to`` folder the download extracted ``car_file`` under (``DIR/data/cars``)."""
    folder = os.path.dirname(os.path.abspath(car_file))
    parent, cars = os.path.split(folder)
    if cars == "cars":
        top, data = os.path.split(parent)
        return top if data == "data" else parent
    return folder


def _fix(folder: str) -> str:
    """What to run when a Cars3D file under ``folder`` is missing or damaged."""
    return (f"run `{download_command('cars3d', folder)}` (it verifies the archive, fetches "
            "it again if damaged, and extracts every car file afresh)")


def check_mat_file(path: str) -> None:
    """Raise :class:`DataFileError` unless ``path`` is a complete MATLAB v5 file.

    Walks the top-level data elements (an 8-byte tag with type and byte count each, as
    scipy's reader steps through them) without decoding any: a file cut short ends
    inside its last element. scipy itself only notices at the first ``loadmat``, long
    after loading, with "could not read bytes" and no file name; this costs a few seeks.
    """
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        header = f.read(MAT_HEADER)
        if len(header) < MAT_HEADER or header[126:128] not in (b"IM", b"MI"):
            raise DataFileError(
                f"{path}: {size} bytes, not a MATLAB v5 file (no v5 header); "
                f"{_fix(download_folder(path))}"
            )
        endian = "<" if header[126:128] == b"IM" else ">"
        pos = MAT_HEADER
        while pos < size:
            f.seek(pos)
            tag = f.read(8)
            if len(tag) < 8:
                break
            mdtype, nbytes = struct.unpack(endian + "II", tag)
            pos += 8 if mdtype >> 16 else 8 + nbytes  # small element: data inside the tag
    if pos != size:
        problem = (f"truncated ({size:,} bytes; its last variable needs {pos:,})"
                   if pos > size else f"damaged ({size - pos} stray bytes after its data)")
        raise DataFileError(f"{path}: {problem}; {_fix(download_folder(path))}")


def check_car_file(path: str) -> None:
    """Check one car file's completeness and its ``im`` variable without decoding images.

    Done for every file when the dataset is opened, so a damaged file fails at load,
    named, instead of in the middle of a training run (images are decoded on first use).
    """
    import scipy.io

    check_mat_file(path)
    try:
        variables = {name: (shape, cls) for name, shape, cls in scipy.io.whosmat(path)}
    except Exception as e:  # scipy raises various types for a damaged header
        raise DataFileError(f"{path}: unreadable ({type(e).__name__}: {e}); "
                            f"{_fix(download_folder(path))}") from e
    if "im" not in variables:
        raise DataFileError(
            f"{path}: no variable 'im' (found {sorted(variables)}); expected 'im'; "
            f"{_fix(download_folder(path))}"
        )
    shape, cls = variables["im"]
    if tuple(shape) != (NATIVE, NATIVE, 3, 24, 4) or cls != "uint8":
        raise DataFileError(
            f"{path}: 'im' is {cls} of shape {tuple(shape)}; expected uint8 of shape "
            f"(128, 128, 3, 24, 4); {_fix(download_folder(path))}"
        )


def read_car_file(path: str) -> np.ndarray:
    """uint8 ``(4, 24, 128, 128, 3)`` [elevation, azimuth, H, W, C] from one ``.mat``."""
    import scipy.io

    try:
        mat = scipy.io.loadmat(path)
    except Exception as e:  # damaged compressed data: zlib, OSError, ValueError...
        raise DataFileError(f"{path}: cannot be decoded ({type(e).__name__}: {e}); "
                            f"{_fix(download_folder(path))}") from e
    if "im" not in mat:
        keys = sorted(k for k in mat if not k.startswith("__"))
        raise DataFileError(f"{path}: no variable 'im' (found {keys}); expected 'im'; "
                            f"{_fix(download_folder(path))}")
    im = mat["im"]
    if im.shape != (NATIVE, NATIVE, 3, 24, 4) or im.dtype != np.uint8:
        raise DataFileError(
            f"{path}: 'im' is {im.dtype} of shape {im.shape}; expected uint8 of shape "
            f"(128, 128, 3, 24, 4); {_fix(download_folder(path))}"
        )
    return np.transpose(im, (4, 3, 0, 1, 2))


def _missing_names(files: list[str]) -> list[str]:
    """Car files named in the archive's ``list.txt`` (next to them) but absent."""
    listing = os.path.join(os.path.dirname(files[0]), "list.txt")
    if not os.path.exists(listing):
        return []
    with open(listing) as f:
        names = [line.strip() for line in f if line.strip()]
    present = {os.path.splitext(os.path.basename(p))[0] for p in files}
    return [f"{n}.mat" for n in names if n not in present]


class Cars3DFiles(Cars3D):
    """The real Cars3D: 183 MATLAB files, decoded one car at a time on first use.

    ``path`` is the extracted ``nips2015-analogy-data`` folder (or its ``data/cars``).
    Every file is checked when the dataset is opened (complete, an ``im`` of the right
    shape and type), so a damaged download fails here, naming the file.

    ``partial=True`` accepts fewer than 183 files; it is for tests, which write two or
    three. Never use it to skip a missing real file: objects are numbered in file order,
    so a gap would renumber every later car; download the data again instead.
    """

    def __init__(self, path: str | os.PathLike, resolution: int = 64,
                 partial: bool = False) -> None:
        path = os.fspath(path)
        if not os.path.exists(path):
            raise FileNotFoundError(
                f"{path} does not exist; get Cars3D with `{download_command('cars3d', path)}`"
            )
        self.files = find_car_files(path)
        if not self.files:
            raise FileNotFoundError(
                f"no car_*_mesh.mat files in {path} (nor in its cars/ or data/cars/); get "
                f"them with `{download_command('cars3d', path)}`"
            )
        if len(self.files) != NUM_OBJECTS and not partial:
            missing = _missing_names(self.files)
            which = f" (missing: {', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''})"
            raise DataFileError(
                f"found {len(self.files)} car_*_mesh.mat files in "
                f"{os.path.dirname(self.files[0])}; expected {NUM_OBJECTS}"
                f"{which if missing else ''}: the extraction is incomplete (skipping a car "
                f"would renumber every later one); {_fix(download_folder(self.files[0]))}"
            )
        for file in self.files:
            check_car_file(file)
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
