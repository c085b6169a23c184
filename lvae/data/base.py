"""The ground-truth-data interface every dataset of lvae implements.

Modelled on disentanglement_lib's ``GroundTruthData``: a dataset is a full grid of discrete
factors of variation, images are addressed either by factor tuples or by their flat
row-major index in that grid, and every random draw takes an explicit
``numpy.random.RandomState`` (so DCI sampling reproduces disentanglement_lib draw for draw).

Images travel as ``uint8`` arrays of shape ``(n, H, W, C)`` (what the real files hold and what
is cheap to keep in memory); :func:`to_tensor` turns them into the ``float32`` ``(n, C, H, W)``
tensors in ``[0, 1]`` that the model consumes.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from typing import ClassVar

import numpy as np
import torch

from lvae.config import LIKELIHOODS

#: A dataset's ``noise_model`` is one of the decoder's likelihoods.
NOISE_MODELS = LIKELIHOODS


class DataFileError(ValueError):
    """A real data file is truncated, damaged, missing or not laid out as expected.

    The message names the file, says what is wrong with it and gives the command that
    fixes it (usually ``python -m lvae.data download NAME --to DIR``, which verifies what
    is there and fetches again what is damaged). A ``ValueError`` so that callers which
    already treat a bad dataset as a bad argument keep doing so.
    """


class ImageDataset(abc.ABC):
    """What training needs: a number of images, addressable by index.

    ``noise_model`` names the observation noise assumed by the synthetic neighbourhoods
    (section 3.1: "the noise distribution assumed as the observation process of the data").
    """

    name: str = "dataset"
    observation_shape: tuple[int, int, int]  # (H, W, C)
    noise_model: str = "bernoulli"

    @abc.abstractmethod
    def __len__(self) -> int: ...

    @abc.abstractmethod
    def images(self, indices: np.ndarray | Sequence[int]) -> np.ndarray:
        """uint8 images ``(n, H, W, C)`` at the given flat indices."""


class GroundTruthData(ImageDataset):
    """A dataset whose images are a deterministic function of discrete factors."""

    factor_names: tuple[str, ...]
    factor_sizes: tuple[int, ...]
    #: The factors disentanglement_lib samples as "latent" (its ``latent_factor_indices``),
    #: drawn first and in this order by :meth:`sample_factors`; the other factors (for
    #: SmallNORB the instance, which the library treats as observation noise) are drawn
    #: after them. ``None``: every factor is latent, drawn in factor order.
    latent_factor_indices: tuple[int, ...] | None = None
    #: What DCI scores on this dataset: ``eval.json`` key -> the factors scored (None:
    #: every factor), all keys from one set of classifier fits
    #: (:func:`lvae.evaluation.dci_groups`). Datasets whose paper table scores a subset
    #: say so here (3D Shapes with and without colour; SmallNORB without its instance).
    dci_subsets: ClassVar[Mapping[str, tuple[str, ...] | None]] = {"dci": None}

    @property
    def num_factors(self) -> int:
        return len(self.factor_sizes)

    @property
    def factor_values(self) -> tuple[np.ndarray, ...]:
        """The label value of each level of each factor (``factor_values[j][k]``).

        Datasets whose labels are physical quantities (3D Shapes' hues, scales and angles,
        NORB's elevations in degrees) override this; otherwise a level is its own value.
        """
        return tuple(np.arange(size, dtype=np.float64) for size in self.factor_sizes)

    def labels(self, factors: np.ndarray) -> np.ndarray:
        """float64 ``(n, num_factors)`` label values of integer factor tuples."""
        factors = np.asarray(factors, dtype=np.int64)
        values = self.factor_values
        return np.stack([values[j][factors[:, j]] for j in range(self.num_factors)], axis=1)

    def __len__(self) -> int:
        return int(np.prod(self.factor_sizes))

    @property
    def _strides(self) -> np.ndarray:
        sizes = np.asarray(self.factor_sizes, dtype=np.int64)
        return np.concatenate([np.cumprod(sizes[::-1])[::-1][1:], [1]]).astype(np.int64)

    def factors_to_index(self, factors: np.ndarray) -> np.ndarray:
        """Row-major flat index of each factor tuple (last factor varies fastest)."""
        factors = np.asarray(factors, dtype=np.int64)
        if factors.ndim != 2 or factors.shape[1] != self.num_factors:
            raise ValueError(
                f"factors must have shape (n, {self.num_factors}) for {self.name}, "
                f"got {factors.shape}"
            )
        if (factors < 0).any() or (factors >= np.asarray(self.factor_sizes)).any():
            raise ValueError(
                f"factor values out of range for {self.name}: sizes are {self.factor_sizes}"
            )
        return factors @ self._strides

    def index_to_factors(self, indices: np.ndarray | Sequence[int]) -> np.ndarray:
        """Inverse of :meth:`factors_to_index`: ``(n, num_factors)`` int64."""
        indices = np.asarray(indices, dtype=np.int64)
        if (indices < 0).any() or (indices >= len(self)).any():
            raise ValueError(f"index out of range for {self.name}: 0 <= index < {len(self)}")
        return (indices[:, None] // self._strides[None, :]) % np.asarray(self.factor_sizes)

    def check_indices(self, indices: np.ndarray | Sequence[int]) -> np.ndarray:
        """``indices`` as a flat int64 array, or ValueError if any is outside the dataset."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and ((idx < 0).any() or (idx >= len(self)).any()):
            raise ValueError(f"index out of range for {self.name}: 0 <= index < {len(self)}")
        return idx

    def sample_factors(self, num: int, random_state: np.random.RandomState) -> np.ndarray:
        """``num`` factor tuples ``(num, num_factors)`` drawn uniformly, per factor.

        One ``random_state.randint(size, size=num)`` call per factor: first the latent
        factors in ``latent_factor_indices`` order, then the others in factor order. That
        is the stream of disentanglement_lib's ``sample(num, random_state)``, which calls
        ``SplitDiscreteStateSpace.sample_latent_factors`` and then, in
        ``sample_observations_from_factors``, ``sample_all_factors`` for the rest, so
        metrics sampling with the same seed draws the library's points, draw for draw.
        """
        latent = self.latent_factor_indices
        order = list(range(self.num_factors)) if latent is None else list(latent)
        order += [j for j in range(self.num_factors) if j not in order]
        factors = np.zeros((num, self.num_factors), dtype=np.int64)
        for j in order:
            factors[:, j] = random_state.randint(self.factor_sizes[j], size=num)
        return factors

    def images_from_factors(self, factors: np.ndarray) -> np.ndarray:
        """uint8 images ``(n, H, W, C)`` for the given factor tuples."""
        return self.images(self.factors_to_index(factors))

    def sample(
        self, num: int, random_state: np.random.RandomState
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(factors, images)`` for ``num`` random factor tuples."""
        factors = self.sample_factors(num, random_state)
        return factors, self.images_from_factors(factors)


def to_tensor(images: np.ndarray, device: torch.device | str | None = None) -> torch.Tensor:
    """uint8 ``(n, H, W, C)`` -> float32 ``(n, C, H, W)`` in ``[0, 1]`` (the model's input)."""
    if images.dtype != np.uint8 or images.ndim != 4:
        raise ValueError(
            f"images must be uint8 of shape (n, H, W, C), got {images.dtype} {images.shape}"
        )
    t = torch.from_numpy(np.ascontiguousarray(images)).to(device)
    return t.permute(0, 3, 1, 2).float().div_(255.0).contiguous()
