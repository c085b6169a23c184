"""The adapted-model helper: every generation path composes the adapted VAE in one place."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lvae.batched import AdaptedModel
from lvae.config import TrainConfig
from lvae.generation import adapt, adapted_model, localized_samples, reconstructions, traversal
from lvae.training import Run, load_run, train


@pytest.fixture
def run(tmp_path, blobs) -> Run:
    """A Local VAE trained for a few steps (the helper needs a run, not a good model)."""
    cfg = TrainConfig(dataset="shapes3d", resolution=32, steps=4, batch_size=4, k=3,
                      pool_size=60, heldout_size=10, log_every=2, checkpoint_every=4, alpha=1.0,
                      seed=1)
    train(cfg, tmp_path / "run", dataset=blobs, progress=False)
    return load_run(tmp_path / "run", dataset=blobs)


@torch.no_grad()
def test_adapted_model_is_adapt_plus_the_runs_parameters(run: Run) -> None:
    refs = run.pool.tensor(np.arange(3))
    model = adapted_model(run, refs, seed=5)
    assert isinstance(model, AdaptedModel) and model.alpha == run.config.alpha
    g = adapt(run, refs, seed=5)
    # same draws, same inner gradients
    for name, (gw, gb) in g.unfold.items():
        assert torch.equal(model.grads.unfold[name][0], gw)
        assert torch.equal(model.grads.unfold[name][1], gb)
    assert torch.equal(model.grads.inner_loss, g.inner_loss)


@torch.no_grad()
def test_adapted_model_at_alpha_zero_is_the_meta_model(run: Run) -> None:
    refs = run.pool.tensor(np.arange(3))
    model = adapted_model(run, refs, alpha=0.0)
    assert torch.equal(model.encode(refs)[0], run.model.encode(refs)[0])
    z = torch.randn(3, run.arch.latent_dim)
    assert torch.equal(model.decode(z), run.model.decode(z))


@torch.no_grad()
def test_generation_paths_go_through_the_helper(run: Run) -> None:
    refs = run.pool.tensor(np.arange(3))
    model = adapted_model(run, refs, seed=0)
    mu, _ = model.encode(refs)
    assert torch.equal(reconstructions(run, refs, seed=0), torch.sigmoid(model.decode(mu)))
    meta_mu, _ = run.model.encode(refs)
    assert torch.equal(reconstructions(run, refs, adapted=False),
                       torch.sigmoid(run.model.decode(meta_mu)))
    z = torch.randn(2, run.arch.latent_dim)
    samples = localized_samples(run, refs, z, seed=0)  # (B, M, C, H, W)
    for j in range(2):  # code j under each reference's decoder
        expect = torch.sigmoid(model.decode(z[j].expand(3, -1)))
        assert torch.allclose(samples[:, j], expect, atol=1e-6)
    tr = traversal(run, refs[0], adapted=True)
    assert tr.shape == (run.arch.latent_dim, 9, *run.arch.image_shape)


def test_adapted_model_refuses_a_bad_alpha(run: Run) -> None:
    with pytest.raises(ValueError, match="alpha"):
        adapted_model(run, run.pool.tensor(np.arange(2)), alpha=-1.0)
