"""The pixel-space neighbourhood (Table 5's input_l2) against a brute-force search."""

from __future__ import annotations

import numpy as np
import torch

from lvae.neighborhoods import knn_graph, make_neighborhood
from lvae.pool import ImagePool


def _pool(blobs, n: int = 60) -> ImagePool:
    return ImagePool(blobs, np.arange(n), disk_cache=False)


def test_pool_graph_is_each_image_k_nearest_others(blobs):
    """The graph built from the index holds, for every pool image, K other images at the
    K smallest pixel distances (ties allowed), as a brute-force torch search says."""
    pool, k = _pool(blobs), 4
    nbhd = make_neighborhood("input_l2", k)
    nbhd.setup(pool)
    graph = nbhd.pool_graph()
    flat = torch.from_numpy(pool.flat_pixels()).double()
    d = torch.cdist(flat, flat)
    d.fill_diagonal_(float("inf"))  # never its own neighbour
    want = d.sort(1).values[:, :k]
    have = d.gather(1, torch.from_numpy(graph)).sort(1).values
    assert graph.shape == (len(pool), k)
    assert (graph != np.arange(len(pool))[:, None]).all()
    assert torch.allclose(have, want, rtol=1e-5, atol=1e-5)
    # the same graph as one built from the pixels alone, with an index of its own
    assert np.array_equal(graph, knn_graph(pool.flat_pixels(), k))


def test_held_out_neighbours_do_not_build_the_pool_graph(blobs):
    """neighbors_of only searches the index: a milestone's readout and pictures (held-out
    references) never pay for the pool's graph; sample() builds it once and keeps it."""
    pool = _pool(blobs)
    nbhd = make_neighborhood("input_l2", 3)
    nbhd.setup(pool)
    held = torch.from_numpy(blobs.images(np.arange(60, 62))).permute(0, 3, 1, 2).float() / 255
    assert nbhd.neighbors_of(held, torch.Generator()).shape[:2] == (3, 2)
    assert nbhd.graph is None
    pos = np.arange(5)
    out = nbhd.sample(pos, pool.tensor(pos), torch.Generator())
    assert out.shape[:2] == (3, 5)
    first = nbhd.graph
    nbhd.sample(pos, pool.tensor(pos), torch.Generator())
    assert nbhd.graph is first
    # the neighbours are the graph's pool images
    assert torch.equal(out, pool.tensor(first[pos].T.reshape(-1)).view(out.shape))
