"""Neighbourhoods N(x): the K points each anchor's inner step adapts to (section 3.1, App. D).

Three kinds behind one interface (:class:`Neighborhood`), each returning K neighbours per
anchor as a k-major tensor ``(K, B, C, H, W)`` (the layout ``lvae.objective`` wants):

``synthetic``
    "we sampled K different examples for each x from the noise distribution assumed as the
    observation process of the data". With the Bernoulli decoder we read this as K
    independent Bernoulli images whose pixel probabilities are the anchor's intensities
    (``noise="gaussian"``: anchor + N(0, sigma^2), clipped to [0, 1]). Cheap, needs no
    graph; the paper uses it for 3D Shapes.
``input_l2``
    The K nearest training images in pixel space (l2), precomputed once with faiss
    (exact ``IndexFlatL2``; pools above ``pca_above`` images are first projected to 256
    PCA dimensions, since the exact 480k x 12288 search of the paper profile is too big).
``latent_knn``
    The K nearest training images in the latent space of the current encoder (faiss over
    a bank of encoder means). The paper "continuously updated the latent code for each
    iteration": each step re-encodes the batch's anchors into the bank and queries only
    them; the whole bank is re-encoded every ``refresh`` steps.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any

import faiss
import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from lvae.config import LIKELIHOODS
from lvae.pool import ImagePool

EncodeMeans = Callable[[Tensor], Tensor]


def _check_k(k: int, pool_size: int | None = None) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"K (neighbours per anchor) must be an int >= 1, got {k!r}")
    if pool_size is not None and k >= pool_size:
        raise ValueError(f"K must be smaller than the pool ({pool_size} images), got K={k}")
    return k


class Neighborhood(abc.ABC):
    """K neighbours per anchor, k-major ``(K, B, C, H, W)``."""

    kind: str

    def __init__(self, k: int) -> None:
        self.k = _check_k(k)

    def setup(  # noqa: B027 - optional hook
        self, pool: ImagePool, encode_means: EncodeMeans | None = None
    ) -> None:
        """Prepare for a training pool (build graphs or banks); cheap kinds do nothing."""

    def step(self, step: int) -> None:  # noqa: B027 - optional hook
        """Called once per training step before :meth:`sample` (refresh schedules)."""

    def state(self) -> dict[str, Any]:
        """What a checkpoint must keep for a resumed run to draw the neighbours the
        uninterrupted run would have drawn (kinds that change while training: their bank).
        Stateless kinds keep nothing."""
        return {}

    def load_state(self, state: dict[str, Any]) -> None:  # noqa: B027 - optional hook
        """Restore :meth:`state` after :meth:`setup` (a resumed run)."""

    @abc.abstractmethod
    def sample(self, anchor_pos: np.ndarray, anchors: Tensor, generator: torch.Generator) -> Tensor:
        """Neighbours of the anchors at pool positions ``anchor_pos`` (tensors ``anchors``)."""

    def neighbors_of(self, images: Tensor, generator: torch.Generator) -> Tensor:
        """Neighbours of images that are not in the pool (held-out references), k-major.

        A kNN kind returns the K nearest pool images, found as the pool's own are; the
        synthetic kind draws around the images themselves, as for any anchor.
        """
        return self.sample(np.arange(len(images)), images, generator)


def _nearest_pool_images(index: faiss.Index, pool: ImagePool, queries: np.ndarray, k: int,
                         device: torch.device) -> Tensor:
    """The ``k`` nearest pool images of each query row, k-major ``(K, B, C, H, W)``."""
    _, idx = index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
    imgs = pool.tensor(idx.T.reshape(-1), device=device)
    return imgs.view(k, len(queries), *imgs.shape[1:])


class SyntheticNeighborhood(Neighborhood):
    """K draws from the observation noise model around the anchor."""

    kind = "synthetic"

    def __init__(self, k: int, noise: str = "bernoulli", sigma: float = 0.05) -> None:
        super().__init__(k)
        if noise not in LIKELIHOODS:
            raise ValueError(f"noise must be one of {LIKELIHOODS}, got {noise!r}")
        if not sigma > 0:
            raise ValueError(f"sigma must be > 0, got {sigma!r}")
        self.noise, self.sigma = noise, sigma

    def sample(self, anchor_pos: np.ndarray, anchors: Tensor, generator: torch.Generator) -> Tensor:
        p = anchors.unsqueeze(0).expand(self.k, *anchors.shape)
        if self.noise == "bernoulli":
            return torch.bernoulli(p, generator=generator)
        noise = torch.randn(p.shape, generator=generator, device=p.device, dtype=p.dtype)
        return (p + self.sigma * noise).clamp_(0.0, 1.0)


def knn_graph(vectors: np.ndarray, k: int, chunk: int = 1024, desc: str = "kNN",
              index: faiss.Index | None = None) -> np.ndarray:
    """Indices ``(n, k)`` of each row's k nearest other rows (l2, exact, faiss).

    ``index``: an exact index already holding exactly ``vectors`` (it is searched instead
    of building another)."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if index is None:
        index = faiss.IndexFlatL2(vectors.shape[1])
        index.add(vectors)
    out = np.empty((len(vectors), k), dtype=np.int64)
    for start in tqdm(range(0, len(vectors), chunk), desc=desc, leave=False):
        q = vectors[start : start + chunk]
        _, idx = index.search(q, k + 1)
        out[start : start + len(q)] = _drop_self(idx, np.arange(start, start + len(q)), k)
    return out


def _drop_self(idx: np.ndarray, own: np.ndarray, k: int) -> np.ndarray:
    """Remove each row's own index from its k+1 results (or the last one if absent)."""
    keep = idx != own[:, None]
    keep[keep.sum(1) > k, -1] = False  # self not found: drop the farthest instead
    return idx[keep].reshape(len(idx), k)


class InputL2Neighborhood(Neighborhood):
    """The K nearest pool images in pixel space, from a graph built once.

    :meth:`setup` indexes the pool's pixels; the pool's own kNN graph is built on the first
    :meth:`sample` (training, adapted codes of pool images), never for :meth:`neighbors_of`
    (held-out references: a milestone's readout and pictures, Figure 3), which only needs
    the index. Building it is most of the cost (about 28 s on one thread for a 20,000-image
    32x32 pool), and a milestone evaluation sets up a fresh neighbourhood several times.
    """

    kind = "input_l2"

    def __init__(self, k: int, pca_above: int = 50_000, pca_dim: int = 256) -> None:
        super().__init__(k)
        self.pca_above, self.pca_dim = pca_above, pca_dim
        self.graph: np.ndarray | None = None
        self.pool: ImagePool | None = None
        self.index: faiss.Index | None = None  # the pool's pixels, for neighbors_of
        self.pca: faiss.PCAMatrix | None = None

    def setup(
        self, pool: ImagePool, encode_means: EncodeMeans | None = None
    ) -> None:
        _check_k(self.k, len(pool))
        self.pool = pool
        flat = pool.flat_pixels()
        if len(flat) > self.pca_above:
            pca = faiss.PCAMatrix(flat.shape[1], self.pca_dim)
            pca.train(flat[:: max(1, len(flat) // 50_000)])
            flat = pca.apply(flat)
            self.pca = pca
        self.graph = None
        self.index = faiss.IndexFlatL2(flat.shape[1])
        self.index.add(np.ascontiguousarray(flat, dtype=np.float32))

    def pool_graph(self) -> np.ndarray:
        """The pool's kNN graph ``(len(pool), K)``: built from the index on first use."""
        if self.index is None or self.pool is None:
            raise RuntimeError("InputL2Neighborhood.setup(pool) must run before sample()")
        if self.graph is None:
            flat = self.index.reconstruct_n(0, self.index.ntotal)  # the indexed pixels
            self.graph = knn_graph(flat, self.k, desc="input-l2 kNN graph", index=self.index)
        return self.graph

    def sample(self, anchor_pos: np.ndarray, anchors: Tensor, generator: torch.Generator) -> Tensor:
        graph = self.pool_graph()
        assert self.pool is not None
        idx = graph[anchor_pos].T  # (K, B)
        imgs = self.pool.tensor(idx.reshape(-1), device=anchors.device)
        return imgs.view(self.k, len(anchor_pos), *imgs.shape[1:])

    def neighbors_of(self, images: Tensor, generator: torch.Generator) -> Tensor:
        if self.index is None or self.pool is None:
            raise RuntimeError("InputL2Neighborhood.setup(pool) must run before neighbors_of()")
        # pixels as the pool flattens them (channels last, in [0, 1])
        flat = images.detach().movedim(1, -1).reshape(len(images), -1).float().cpu().numpy()
        if self.pca is not None:
            flat = self.pca.apply(np.ascontiguousarray(flat))
        return _nearest_pool_images(self.index, self.pool, flat, self.k, images.device)


class LatentKnnNeighborhood(Neighborhood):
    """The K nearest pool images in the current encoder's latent space (faiss)."""

    kind = "latent_knn"

    def __init__(self, k: int, refresh: int = 1000, batch: int = 500) -> None:
        super().__init__(k)
        if isinstance(refresh, bool) or not isinstance(refresh, int) or refresh < 1:
            raise ValueError(f"refresh must be an int >= 1, got {refresh!r}")
        self.refresh, self.batch = refresh, batch
        self.pool: ImagePool | None = None
        self.encode_means: EncodeMeans | None = None
        self.bank: np.ndarray | None = None
        self.index: faiss.IndexFlatL2 | None = None

    def setup(
        self, pool: ImagePool, encode_means: EncodeMeans | None = None
    ) -> None:
        if encode_means is None:
            raise ValueError("latent_knn needs encode_means (the current encoder's means)")
        _check_k(self.k, len(pool))
        self.pool, self.encode_means = pool, encode_means
        self.refresh_bank()

    @torch.no_grad()
    def refresh_bank(self) -> None:
        """Re-encode the whole pool and rebuild the index."""
        assert self.pool is not None and self.encode_means is not None
        parts = []
        for start in tqdm(range(0, len(self.pool), self.batch), desc="latent bank", leave=False):
            pos = np.arange(start, min(start + self.batch, len(self.pool)))
            parts.append(self.encode_means(self.pool.tensor(pos)).float().cpu().numpy())
        self.bank = np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)
        self.index = faiss.IndexFlatL2(self.bank.shape[1])
        self.index.add(self.bank)

    def step(self, step: int) -> None:
        if step > 0 and step % self.refresh == 0:
            self.refresh_bank()

    def state(self) -> dict[str, Any]:
        """The bank as it stands: refreshed every ``refresh`` steps and updated with each
        batch's codes in between, so re-encoding the pool on resume (what :meth:`setup`
        does) would hand a resumed run other neighbours than the uninterrupted run's."""
        return {"bank": None if self.bank is None else self.bank.copy()}

    def load_state(self, state: dict[str, Any]) -> None:
        bank = state.get("bank")
        if bank is None:
            return
        bank = np.ascontiguousarray(bank, dtype=np.float32)
        if self.bank is not None and bank.shape != self.bank.shape:
            raise ValueError(f"the checkpoint's latent bank has shape {bank.shape}, the pool's "
                             f"{self.bank.shape}: it belongs to another pool or model; "
                             "delete checkpoint.pt to train this run from step 0")
        self.bank = bank
        self.index = faiss.IndexFlatL2(bank.shape[1])
        self.index.add(bank)

    @torch.no_grad()
    def sample(self, anchor_pos: np.ndarray, anchors: Tensor, generator: torch.Generator) -> Tensor:
        if self.bank is None or self.index is None or self.pool is None:
            raise RuntimeError("LatentKnnNeighborhood.setup(pool, encode_means) must run first")
        assert self.encode_means is not None
        means = self.encode_means(anchors).float().cpu().numpy()
        self.bank[anchor_pos] = means  # the batch's codes are always current
        self.index.reset()
        self.index.add(self.bank)
        _, idx = self.index.search(np.ascontiguousarray(means), self.k + 1)
        idx = _drop_self(idx, np.asarray(anchor_pos), self.k).T  # (K, B)
        imgs = self.pool.tensor(idx.reshape(-1), device=anchors.device)
        return imgs.view(self.k, len(anchor_pos), *imgs.shape[1:])

    @torch.no_grad()
    def neighbors_of(self, images: Tensor, generator: torch.Generator) -> Tensor:
        if self.index is None or self.pool is None or self.encode_means is None:
            raise RuntimeError("LatentKnnNeighborhood.setup(pool, encode_means) must run first")
        means = self.encode_means(images).float().cpu().numpy()
        return _nearest_pool_images(self.index, self.pool, means, self.k, images.device)


def make_neighborhood(kind: str, k: int, **options) -> Neighborhood:
    """The neighbourhood of the given kind (``synthetic``, ``input_l2``, ``latent_knn``)."""
    kinds = {c.kind: c for c in (SyntheticNeighborhood, InputL2Neighborhood,
                                 LatentKnnNeighborhood)}
    if kind not in kinds:
        raise ValueError(f"neighborhood must be one of {sorted(kinds)}, got {kind!r}")
    return kinds[kind](k, **options)
