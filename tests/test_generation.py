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


@pytest.mark.parametrize("literal", [False, True])
def test_inner_step_sq_norms_match_one_autograd_step_per_reference(run: Run, literal: bool
                                                                   ) -> None:
    """The batched step lengths against the reference path: each reference's own local
    objective (Algorithm 1, line 4) differentiated by autograd, one step of eqs. 7-8
    (:func:`lvae.objective.inner_step`, with Algorithm 1's K on the decoder's step where
    the run reads it literally), and the squared distance of each part from the
    meta-parameters, on the same neighbours and noise."""
    import dataclasses

    from lvae.generation import inner_step_sq_norms, prepared_neighborhood
    from lvae.objective import inner_step, is_decoder, local_objective
    from lvae.training import decoder_scale

    r = dataclasses.replace(run, config=run.config.replace(algorithm1_literal=literal))
    refs = r.pool.tensor(np.arange(3))
    got = inner_step_sq_norms(r, refs, seed=7)
    gen = torch.Generator().manual_seed(7)  # adapt's draws, in adapt's order
    neighbors = prepared_neighborhood(r).neighbors_of(refs, gen)
    eps = torch.randn(neighbors.shape[0], len(refs), r.arch.latent_dim, generator=gen)
    params = {n: p.detach().requires_grad_(True) for n, p in r.model.params().items()}
    for b in range(len(refs)):
        obj = local_objective(params, neighbors[:, b], eps[:, b], r.arch, r.loss)
        grads = dict(zip(params, torch.autograd.grad(obj, list(params.values())),
                         strict=True))
        stepped = inner_step(params, grads, r.config.alpha, decoder_scale(r.config))
        sq = {part: sum(float((stepped[n] - params[n]).detach().pow(2).sum()) for n in params
                        if is_decoder(n) == (part == "decoder"))
              for part in ("encoder", "decoder")}
        for part in ("encoder", "decoder"):
            assert float(got[part][b]) == pytest.approx(sq[part], rel=1e-4)
    assert decoder_scale(r.config) == (r.config.k if literal else 1.0)
