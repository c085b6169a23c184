"""CarsNORB (paper section 5.2): Cars3D and SmallNORB concatenated into one dataset.

Training sees only images: one index space, Cars3D first, then SmallNORB, every image
3-channel at one size (NORB's grey repeated to RGB) and no sub-dataset id. Evaluation
needs the labels per sub-dataset (DCI is computed on each separately), which ``parts``
and :meth:`CarsNORB.part_of` give.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from lvae.data.base import GroundTruthData, ImageDataset


class GreyAsRGB(GroundTruthData):
    """A 1-channel ground-truth dataset with its grey channel repeated to RGB."""

    def __init__(self, inner: GroundTruthData) -> None:
        if inner.observation_shape[-1] != 1:
            raise ValueError(f"{inner.name} already has {inner.observation_shape[-1]} channels")
        self.inner = inner
        self.name = inner.name
        self.factor_names = inner.factor_names
        self.factor_sizes = inner.factor_sizes
        self.latent_factor_indices = inner.latent_factor_indices
        self.noise_model = inner.noise_model
        self.observation_shape = (*inner.observation_shape[:2], 3)

    @property
    def factor_values(self) -> tuple[np.ndarray, ...]:
        return self.inner.factor_values

    @property  # type: ignore[override]
    def dci_subsets(self) -> Mapping[str, tuple[str, ...] | None]:
        """The inner dataset's: SmallNORB in RGB is scored on the same factors."""
        return self.inner.dci_subsets

    def sample_factors(self, num: int, random_state: np.random.RandomState) -> np.ndarray:
        """The inner dataset's draws, so CarsNORB's metrics sample SmallNORB's stream."""
        return self.inner.sample_factors(num, random_state)

    def images(self, indices: np.ndarray | Sequence[int]) -> np.ndarray:
        return np.repeat(self.inner.images(indices), 3, axis=-1)


@dataclass
class PartSelection:
    """The queried indices that fall in one part of CarsNORB."""

    name: str
    positions: np.ndarray  # where these indices sit in the query
    local: np.ndarray  # their indices inside the part
    factors: np.ndarray  # (k, part's num_factors) ground-truth factors there


class CarsNORB(ImageDataset):
    """Cars3D (17,568 images) followed by SmallNORB as RGB (48,600): 66,168 images.

    ``parts`` maps ``"cars3d"`` and ``"smallnorb"`` to ground-truth datasets whose images
    are already in the concatenated format (RGB, same size), so metrics can run per
    sub-dataset. Shared factors in spirit: elevation and azimuth; the others (object;
    category, lighting) are specific to one part.

    Noise model ``bernoulli``, as both parts (the paper's decoder for all experiments).
    """

    name = "carsnorb"
    noise_model = "bernoulli"

    def __init__(self, cars: GroundTruthData, norb: GroundTruthData) -> None:
        norb_rgb = norb if norb.observation_shape[-1] == 3 else GreyAsRGB(norb)
        if cars.observation_shape != norb_rgb.observation_shape:
            raise ValueError(
                f"Cars3D {cars.observation_shape} and SmallNORB "
                f"{norb_rgb.observation_shape} must have the same resolution"
            )
        self.parts: dict[str, GroundTruthData] = {"cars3d": cars, "smallnorb": norb_rgb}
        self.observation_shape = cars.observation_shape
        self.offsets: dict[str, int] = {}
        start = 0
        for name, part in self.parts.items():
            self.offsets[name] = start
            start += len(part)

    def __len__(self) -> int:
        return sum(len(p) for p in self.parts.values())

    def global_index(self, part: str, local: np.ndarray | Sequence[int]) -> np.ndarray:
        """Concatenated indices of ``local`` indices of ``part``."""
        return np.asarray(local, dtype=np.int64) + int(self.offsets[part])

    def part_of(self, indices: np.ndarray | Sequence[int]) -> dict[str, PartSelection]:
        """Which part each index is in, its index there and its factors, per part."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and ((idx < 0).any() or (idx >= len(self)).any()):
            raise ValueError(f"index out of range for {self.name}: 0 <= index < {len(self)}")
        out = {}
        for name, part in self.parts.items():
            start = int(self.offsets[name])
            pos = np.flatnonzero((idx >= start) & (idx < start + len(part)))
            local = idx[pos] - start
            out[name] = PartSelection(name, pos, local, part.index_to_factors(local))
        return out

    def images(self, indices: np.ndarray | Sequence[int]) -> np.ndarray:
        sel = self.part_of(indices)
        n = sum(s.positions.size for s in sel.values())
        out = np.empty((n, *self.observation_shape), dtype=np.uint8)
        for name, s in sel.items():
            if s.positions.size:
                out[s.positions] = self.parts[name].images(s.local)
        return out
