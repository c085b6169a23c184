"""3D Shapes (Burgess & Kim 2018): the real ``3dshapes.h5`` and an offline procedural twin.

Both classes share the factor grid, the label values and the row-major flat index of the
real file, ``index = f . [48000, 4800, 480, 60, 15, 1]``, so code written against the twin
runs unchanged on the real data.
"""

from __future__ import annotations

import colorsys
import os
from collections.abc import Mapping, Sequence
from typing import ClassVar

import numpy as np

from lvae.config import RESOLUTIONS
from lvae.data import shapes3d_render as render
from lvae.data.base import DataFileError, GroundTruthData
from lvae.data.download import download_command
from lvae.data.resize import resize_batch

FACTOR_NAMES = ("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation")
FACTOR_SIZES = (10, 10, 10, 8, 4, 15)
NUM_IMAGES = 480_000
NUM_CONFIGS = 8 * 4 * 15  # geometry configurations: (scale, shape, orientation)
HUES = np.round(np.arange(10) / 10.0, 1)
SCALES = np.linspace(0.75, 1.25, 8)
SHAPES = np.arange(4, dtype=np.float64)  # 0 cube, 1 cylinder, 2 sphere, 3 capsule
ORIENTATIONS = np.linspace(-30.0, 30.0, 15)
FACTOR_VALUES = (HUES, HUES, HUES, SCALES, SHAPES, ORIENTATIONS)


def grid_labels() -> np.ndarray:
    """float64 ``(480000, 6)``: the real file's ``labels`` array, row-major over the grid."""
    mesh = np.meshgrid(*FACTOR_VALUES, indexing="ij")
    return np.stack([m.ravel() for m in mesh], axis=1)


def hue_rgb(hue: float) -> np.ndarray:
    """Fully saturated HSV hue at value 1 as RGB in [0, 1] (the real images' colours)."""
    return np.array(colorsys.hsv_to_rgb(hue, 1.0, 1.0), dtype=np.float32)


class Shapes3D(GroundTruthData):
    """3D Shapes: one object in a room, 480,000 images of 64x64x3.

    Factors (row-major, orientation fastest):

    - ``floor_hue`` 10: 0.0, 0.1, ..., 0.9
    - ``wall_hue`` 10: same values
    - ``object_hue`` 10: same values
    - ``scale`` 8: linspace(0.75, 1.25)
    - ``shape`` 4: cube, cylinder, sphere, capsule
    - ``orientation`` 15: linspace(-30, 30) degrees (the camera swings about the object)

    Noise model ``bernoulli``: the paper's decoder is Bernoulli (Table 4) and the images
    are mostly saturated colours near 0 or 1 per channel, where a Bernoulli likelihood on
    ``[0, 1]`` intensities is the usual choice (as in disentanglement_lib).
    """

    name = "shapes3d"
    factor_names = FACTOR_NAMES
    factor_sizes = FACTOR_SIZES
    noise_model = "bernoulli"
    #: Table 1 reports DCI "w/ color" (all six factors) and "w/o color" (these three)
    dci_subsets: ClassVar[Mapping[str, tuple[str, ...] | None]] = {
        "dci_color": None, "dci_nocolor": ("scale", "shape", "orientation")}

    def __init__(self, resolution: int = 64) -> None:
        if resolution not in RESOLUTIONS:
            raise ValueError(f"resolution must be one of {RESOLUTIONS}, got {resolution}")
        self.resolution = resolution
        self.observation_shape = (resolution, resolution, 3)

    @property
    def factor_values(self) -> tuple[np.ndarray, ...]:
        return FACTOR_VALUES


class Shapes3DTwin(Shapes3D):
    """Procedural 3D Shapes: the real grid and labels, images drawn by a numpy ray-caster.

    Geometry depends only on (scale, shape, orientation), the last three factors, so a
    flat index ``i`` has geometry ``i % 480`` and hues ``i // 48000``, ``i // 4800 % 10``,
    ``i // 480 % 10``. Each of the 480 configurations is rendered once, on first use, to
    a region label map plus shading (about 4 ms each, 2 s for all 480 at 64 px); any
    image is then composed by recolouring regions, vectorised over the batch. The full
    grid is never stored (the cache is ~18 MB at 64 px).
    """

    def __init__(self, resolution: int = 64) -> None:
        super().__init__(resolution)
        shape = (NUM_CONFIGS, resolution, resolution)
        self._label = np.zeros(shape, dtype=np.uint8)
        self._shade = np.zeros(shape, dtype=np.float32)
        self._spec = np.zeros(shape, dtype=np.float32)
        self._ready = np.zeros(NUM_CONFIGS, dtype=bool)
        # colour of each hue level, 0..255, plus the constant sky colour
        self._hue255 = np.stack([hue_rgb(h) for h in HUES]) * 255.0
        self._sky255 = render.SKY_RGB * 255.0

    def _ensure_rendered(self, configs: np.ndarray) -> None:
        for c in np.unique(configs[~self._ready[configs]]):
            scale_i, shape_i, orient_i = c // 60, (c // 15) % 4, c % 15
            label, shade, spec = render.render_config(
                SCALES[scale_i], int(shape_i), ORIENTATIONS[orient_i], self.resolution
            )
            sky = label == render.REGION_SKY
            self._label[c] = label
            self._shade[c] = np.where(sky, 1.0, shade)
            self._spec[c] = np.where(sky, 0.0, spec * 255.0)
            self._ready[c] = True

    def render_all(self) -> None:
        """Render all 480 geometry configurations now (a few seconds) instead of lazily."""
        self._ensure_rendered(np.arange(NUM_CONFIGS))

    def images(self, indices: np.ndarray | Sequence[int]) -> np.ndarray:
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and ((idx < 0).any() or (idx >= NUM_IMAGES).any()):
            raise ValueError(f"index out of range for {self.name}: 0 <= index < {NUM_IMAGES}")
        n, r = idx.size, self.resolution
        configs = idx % NUM_CONFIGS
        self._ensure_rendered(configs)
        # colour table per image: region 0 sky, 1 wall, 2 floor, 3 object (render's ids)
        table = np.empty((n, 4, 3), dtype=np.float32)
        table[:, render.REGION_SKY] = self._sky255
        table[:, render.REGION_WALL] = self._hue255[(idx // 4800) % 10]
        table[:, render.REGION_FLOOR] = self._hue255[idx // 48000]
        table[:, render.REGION_OBJECT] = self._hue255[(idx // 480) % 10]
        lookup = self._label[configs].astype(np.intp) + (4 * np.arange(n))[:, None, None]
        shade, spec = self._shade[configs], self._spec[configs]
        out = np.empty((n, r, r, 3), dtype=np.uint8)
        for ch in range(3):
            x = table[:, :, ch].ravel()[lookup]
            x *= shade
            x += spec
            np.clip(x, 0.0, 255.0, out=x)
            x += 0.5
            out[..., ch] = x  # truncation after +0.5 rounds
        return out

    def export_h5(
        self, path: str | os.PathLike, num_images: int = NUM_IMAGES, batch: int = 4800
    ) -> None:
        """Write a real-layout ``3dshapes.h5`` (``images`` uint8, ``labels`` float64).

        ``num_images < 480000`` writes the first images of the grid only (a prefix, for
        tests and quick looks); read such a file with ``Shapes3DFile(..., partial=True)``.
        """
        import h5py
        from tqdm import tqdm

        if self.resolution != 64:
            raise ValueError("export_h5 writes the real 64x64 layout: use a resolution-64 twin")
        if not 0 < num_images <= NUM_IMAGES:
            raise ValueError(f"num_images must be in 1..{NUM_IMAGES}, got {num_images}")
        labels = grid_labels()[:num_images]
        tmp = f"{os.fspath(path)}.part"
        with h5py.File(tmp, "w") as f:
            images = f.create_dataset(
                "images", shape=(num_images, 64, 64, 3), dtype=np.uint8,
                chunks=(min(num_images, 100), 64, 64, 3),
            )
            f.create_dataset("labels", data=labels, dtype=np.float64)
            for start in tqdm(range(0, num_images, batch), desc="3dshapes.h5", unit="batch"):
                stop = min(start + batch, num_images)
                images[start:stop] = self.images(np.arange(start, stop))
        os.replace(tmp, path)


class Shapes3DFile(Shapes3D):
    """The real ``3dshapes.h5``, read lazily with h5py (268 MB compressed on disk, 5.9 GB
    of pixels once decoded, which are never all held in memory).

    The file layout is checked when opened (keys, shapes, dtypes and that ``labels``
    follow the row-major grid) so that a truncated or foreign file fails loudly instead
    of silently mislabelling images; every error names the file and the command that
    replaces it. ``partial=True`` accepts a file holding only the first images of the grid
    (what :meth:`Shapes3DTwin.export_h5` writes for tests).
    """

    def __init__(
        self, path: str | os.PathLike, resolution: int = 64, partial: bool = False
    ) -> None:
        import h5py

        super().__init__(resolution)
        self.path = os.fspath(path)
        if not os.path.exists(self.path):
            raise FileNotFoundError(
                f"{self.path} does not exist; get it with `{self._download_command()}`"
            )
        try:
            self._file = h5py.File(self.path, "r")
        except OSError as e:  # truncated, not HDF5, damaged superblock: h5py names no file
            why = "truncated" if "truncated" in str(e) else "not a readable HDF5 file"
            raise DataFileError(f"{self.path}: {why} ({e}); {self._fix()}") from e
        try:
            self.num_images = self._check_layout(partial)
        except BaseException:
            self._file.close()
            raise
        self._images = self._file["images"]

    def _download_command(self) -> str:
        return download_command("shapes3d", os.path.dirname(os.path.abspath(self.path)))

    def _fix(self) -> str:
        """The command that replaces this file (download writes ``3dshapes.h5`` there)."""
        other = os.path.basename(self.path) != "3dshapes.h5"
        return (f"run `{self._download_command()}` (it checks the file against the published "
                "checksum and fetches it again if damaged)"
                + (", then load the 3dshapes.h5 it writes" if other else ""))

    def _check_layout(self, partial: bool) -> int:
        name = self.path
        for key in ("images", "labels"):
            if key not in self._file:
                raise DataFileError(
                    f"{name}: missing dataset '{key}' (found {sorted(self._file.keys())}); "
                    f"expected 'images' and 'labels'; {self._fix()}"
                )
        images, labels = self._file["images"], self._file["labels"]
        n = images.shape[0] if partial and images.ndim == 4 else NUM_IMAGES
        expected = {"images": ((n, 64, 64, 3), np.uint8), "labels": ((n, 6), np.float64)}
        for key, (shape, dtype) in expected.items():
            ds = self._file[key]
            if ds.shape != shape:
                raise DataFileError(
                    f"{name}: dataset '{key}' has shape {ds.shape}; expected {shape}; "
                    f"{self._fix()}"
                )
            if ds.dtype != dtype:
                raise DataFileError(
                    f"{name}: dataset '{key}' has dtype {ds.dtype}; expected "
                    f"{np.dtype(dtype)}; {self._fix()}"
                )
        try:
            got = labels[...]
        except OSError as e:
            raise DataFileError(f"{name}: 'labels' cannot be read ({e}); {self._fix()}") from e
        want = grid_labels()[:n]
        bad = np.flatnonzero(~np.isclose(got, want, atol=1e-6).all(axis=1))
        if bad.size:
            i = int(bad[0])
            raise DataFileError(
                f"{name}: 'labels' row {i} is {got[i].tolist()}; expected {want[i].tolist()} "
                "(labels must follow the row-major factor grid floor_hue, wall_hue, "
                f"object_hue, scale, shape, orientation); {self._fix()}"
            )
        return n

    def __len__(self) -> int:
        return self.num_images

    def images(self, indices: np.ndarray | Sequence[int]) -> np.ndarray:
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and ((idx < 0).any() or (idx >= self.num_images).any()):
            raise ValueError(f"index out of range for {self.name}: 0 <= index < {len(self)}")
        # h5py fancy indexing wants sorted unique indices: read those, then un-permute
        uniq, inverse = np.unique(idx, return_inverse=True)
        try:
            data = self._images[uniq] if uniq.size else np.zeros((0, 64, 64, 3), np.uint8)
        except OSError as e:  # a damaged chunk: h5py says "can't read data", no file name
            raise DataFileError(f"{self.path}: images cannot be read ({e}); {self._fix()}") from e
        out = data[inverse]
        return out if self.resolution == 64 else resize_batch(out, self.resolution)

    def close(self) -> None:
        self._file.close()
