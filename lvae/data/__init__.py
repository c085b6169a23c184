"""Datasets of the Local VAE experiments: 3D Shapes, Cars3D, SmallNORB and CarsNORB.

``load_dataset(name)`` gives an offline procedural *twin* with the real factor grid (no
download, deterministic); ``load_dataset(name, path=...)`` reads the real files, which
``python -m lvae.data download NAME --to DIR`` fetches.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from lvae.config import DATASETS, RESOLUTIONS
from lvae.data.base import GroundTruthData, ImageDataset, to_tensor
from lvae.data.cars3d import Cars3D, Cars3DFiles, Cars3DTwin
from lvae.data.carsnorb import CarsNORB
from lvae.data.shapes3d import Shapes3D, Shapes3DFile, Shapes3DTwin
from lvae.data.smallnorb import SmallNORB, SmallNORBFiles, SmallNORBTwin

NAMES = DATASETS  # the dataset names a config may use

__all__ = [
    "NAMES", "RESOLUTIONS", "Cars3D", "Cars3DFiles", "Cars3DTwin", "CarsNORB",
    "GroundTruthData", "ImageDataset", "Shapes3D", "Shapes3DFile", "Shapes3DTwin",
    "SmallNORB", "SmallNORBFiles", "SmallNORBTwin", "load_dataset", "to_tensor",
]


def _shapes3d(resolution: int, path: str | None, **options) -> ImageDataset:
    if path is None:
        return Shapes3DTwin(resolution, **options)
    if os.path.isdir(path):
        path = os.path.join(path, "3dshapes.h5")
    return Shapes3DFile(path, resolution, **options)


def _cars3d(resolution: int, path: str | None, **options) -> ImageDataset:
    if path is None:
        return Cars3DTwin(resolution, **options)
    return Cars3DFiles(path, resolution, **options)


def _smallnorb(resolution: int, path: str | None, **options) -> ImageDataset:
    if path is None:
        return SmallNORBTwin(resolution, **options)
    return SmallNORBFiles(path, resolution, **options)


def _carsnorb(resolution: int, path: str | None, **options) -> ImageDataset:
    """``path`` holds ``cars3d/`` and ``smallnorb/`` (what ``download`` writes)."""
    cars_opts = {k: options.pop(k) for k in ("n_objects",) if k in options}
    norb_opts = {k: options.pop(k) for k in ("n_instances",) if k in options}
    if options:
        raise TypeError(f"unknown options for carsnorb: {sorted(options)}")
    if path is None:
        return CarsNORB(Cars3DTwin(resolution, **cars_opts),
                        SmallNORBTwin(resolution, **norb_opts))
    if not os.path.isdir(path):
        raise FileNotFoundError(
            f"{path} does not exist; get the data with "
            "`python -m lvae.data download cars3d --to DIR` and "
            "`python -m lvae.data download smallnorb --to DIR`"
        )
    return CarsNORB(Cars3DFiles(os.path.join(path, "cars3d"), resolution),
                    SmallNORBFiles(os.path.join(path, "smallnorb"), resolution))


_LOADERS: dict[str, Callable[..., ImageDataset]] = {
    "shapes3d": _shapes3d, "cars3d": _cars3d, "smallnorb": _smallnorb, "carsnorb": _carsnorb,
}


def load_dataset(
    name: str, resolution: int = 64, path: str | os.PathLike | None = None, **options
) -> ImageDataset:
    """A dataset by name: the procedural twin (``path=None``) or the real files.

    ``name``: shapes3d, cars3d, smallnorb or carsnorb; ``resolution``: 64 or 32.
    ``path``: the folder ``python -m lvae.data download NAME --to DIR`` filled (or, for
    3D Shapes, the ``3dshapes.h5`` file itself; for carsnorb a folder holding
    ``cars3d/`` and ``smallnorb/``). Options scale the twins down for CPU profiles:
    ``n_objects`` (Cars3D, of 183) and ``n_instances`` (SmallNORB, of 10 per category);
    the real loaders take ``partial=True`` for incomplete test files.
    """
    if name not in _LOADERS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {', '.join(NAMES)}")
    if resolution not in RESOLUTIONS:
        raise ValueError(
            f"unsupported resolution {resolution!r}; expected one of "
            f"{', '.join(map(str, RESOLUTIONS))}"
        )
    if path is not None:
        path = os.fspath(path)
        if not os.path.exists(path):
            real = "cars3d and smallnorb" if name == "carsnorb" else name
            raise FileNotFoundError(
                f"{path} does not exist; download {real} with "
                f"`python -m lvae.data download NAME --to DIR` (NAME: {real})"
            )
    return _LOADERS[name](resolution, path, **options)
