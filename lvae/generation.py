"""Localized generation (figs. 2-3), latent traversals (fig. 4), and codes for the metrics.

At inference the Local VAE "obtains the local parameters by applying one-step gradient
descent using the randomly selected training data and generates images from these local
parameters" (section 5.1). Every function here runs that one inner step with
:func:`lvae.batched.inner_gradients` (the same code as training, first order since no
meta-gradient is needed) and then decodes or encodes under the adapted parameters, through
one :func:`adapted_model` (a :class:`~lvae.batched.AdaptedModel`, used like the meta-model).

Two outputs are always available side by side, because they can differ a lot: the *meta*
model (theta, phi) alone, and the model *adapted* to a reference image's neighbourhood
(theta', phi'). With synthetic neighbours that are near-copies of the reference, the inner
step fits the reference itself, and a Local VAE's meta-model alone can reconstruct almost
nothing (flat grey) while the adapted model reconstructs the image, colours included.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from lvae.batched import AdaptedModel, InnerGradients, inner_gradients, task_sq_norms
from lvae.data.base import to_tensor
from lvae.model import VAE, layer_specs
from lvae.neighborhoods import Neighborhood
from lvae.objective import check_alpha
from lvae.training import Run, decoder_scale, neighborhood_for


def _check_images(images: Tensor, run: Run, name: str = "references") -> Tensor:
    c, h, w = run.arch.image_shape
    if not isinstance(images, Tensor) or images.dim() != 4 or tuple(images.shape[1:]) != (c, h, w):
        got = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"{name} must be a float tensor of shape (n, {c}, {h}, {w}), got {got}")
    if not images.is_floating_point():
        raise ValueError(f"{name} must be float in [0, 1] (use lvae.data.to_tensor), "
                         f"got dtype {images.dtype}")
    return images


def prepared_neighborhood(run: Run, k: int | None = None) -> Neighborhood:
    """The run's neighbourhood, set up once on its pool (kNN graphs are costly to build)."""
    if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
        raise ValueError(f"k must be an int >= 1, got {k!r}")
    nbhd = neighborhood_for(run.config.replace(k=k or run.config.k), run.dataset)
    if run.config.neighborhood != "synthetic":
        nbhd.setup(run.pool, encode_means=lambda x: run.model.encode(x)[0])
    return nbhd


def adapt(run: Run, references: Tensor, k: int | None = None, seed: int = 0,
          neighbor_positions: np.ndarray | None = None,
          neighborhood: Neighborhood | None = None,
          generator: torch.Generator | None = None) -> InnerGradients:
    """One inner step per reference (eqs. 7-8), on neighbours from the run's neighbourhood.

    ``references`` are float images ``(B, C, H, W)``. For kNN neighbourhoods, references
    that are pool images take their neighbours from the training graph when their pool
    positions are passed as ``neighbor_positions``; any other image (a held-out one) takes
    its K nearest pool images (:meth:`~lvae.neighborhoods.Neighborhood.neighbors_of`). Callers that
    adapt many batches pass a :func:`prepared_neighborhood` and their own ``generator``.
    """
    references = _check_images(references, run)
    nbhd = neighborhood if neighborhood is not None else prepared_neighborhood(run, k)
    gen = generator if generator is not None else torch.Generator().manual_seed(seed)
    if neighbor_positions is not None and run.config.neighborhood != "synthetic":
        neighbors = nbhd.sample(np.asarray(neighbor_positions), references, gen)
    else:  # held-out references: their K nearest pool images (kNN kinds)
        neighbors = nbhd.neighbors_of(references, gen)
    eps = torch.randn(neighbors.shape[0], len(references), run.arch.latent_dim, generator=gen)
    with torch.no_grad():
        return inner_gradients(run.model.params(), run.arch, neighbors, eps, run.loss,
                               create_graph=False)


def adapted_model(run: Run, references: Tensor, alpha: float | None = None,
                  **adapt_kwargs) -> AdaptedModel:
    """The run's model adapted to each reference's neighbourhood: :func:`adapt`, wrapped.

    ``alpha`` defaults to the run's own; ``adapt_kwargs`` go to :func:`adapt`. Item b of an
    input (m-major for several per reference) goes through reference b's network.
    """
    alpha = check_alpha(run.config.alpha if alpha is None else alpha)
    g = adapt(run, references, **adapt_kwargs)
    scale = decoder_scale(run.config)
    return AdaptedModel(run.model.params(), run.arch, g, alpha,
                        None if scale == 1.0 else alpha * scale)


def inner_step_sq_norms(run: Run, references: Tensor, **adapt_kwargs) -> dict[str, Tensor]:
    """How far the inner step (eqs. 7-8) moves each reference's parameters from the
    meta-parameters: ``||phi' - phi||^2`` (``"encoder"``) and ``||theta' - theta||^2``
    (``"decoder"``), per reference ``(B,)``.

    The decoder's is what eq. 5's prior penalises (:func:`lvae.objective.adapted_prior`)
    and what memorisation needs: a meta-decoder that draws little on its own and one step
    that turns it into a copy of the reference. Computed from the batched inner gradients
    without building the adapted parameters (:func:`lvae.batched.task_sq_norms`), at the
    run's own alpha (and Algorithm 1's decoder scale where the run reads it literally);
    ``adapt_kwargs`` go to :func:`adapt`.
    """
    alpha = check_alpha(run.config.alpha)
    g = adapt(run, references, **adapt_kwargs)
    enc, dec = layer_specs(run.arch)
    return {"encoder": alpha ** 2 * task_sq_norms(g, enc),
            "decoder": (alpha * decoder_scale(run.config)) ** 2 * task_sq_norms(g, dec)}


@torch.no_grad()
def localized_samples(run: Run, references: Tensor, z: Tensor, alpha: float | None = None,
                      **adapt_kwargs) -> Tensor:
    """Fig. 3: decode the same prior codes ``z`` ``(M, latent)`` under each reference's
    adapted decoder. Returns pixel means ``(B, M, C, H, W)``: row = reference, column = z.
    """
    alpha = check_alpha(run.config.alpha if alpha is None else alpha)
    if z.dim() != 2 or z.shape[1] != run.arch.latent_dim:
        raise ValueError(f"z must be (M, {run.arch.latent_dim}), got {tuple(z.shape)}")
    model = adapted_model(run, references, alpha, **adapt_kwargs)
    b, m = len(references), len(z)
    z_mb = z.unsqueeze(1).expand(m, b, -1).reshape(m * b, -1)  # m-major: z_j for task b
    logits = model.decode(z_mb)
    probs = torch.sigmoid(logits).view(m, b, *logits.shape[1:])
    return probs.transpose(0, 1).contiguous()


@torch.no_grad()
def meta_samples(run: Run, z: Tensor) -> Tensor:
    """The meta-decoder alone on prior codes: ``(M, C, H, W)`` pixel means."""
    return torch.sigmoid(run.model.decode(z))


@torch.no_grad()
def reconstructions(run: Run, images: Tensor, adapted: bool = True, seed: int = 0,
                    neighbor_positions: np.ndarray | None = None) -> Tensor:
    """Posterior-mean reconstructions under the adapted (or the meta) model.

    For kNN neighbourhoods the images must be pool images at ``neighbor_positions``.
    """
    images = _check_images(images, run, "images")
    model: VAE | AdaptedModel = run.model
    if adapted and run.config.alpha != 0:
        model = adapted_model(run, images, seed=seed, neighbor_positions=neighbor_positions)
    mu, _ = model.encode(images)
    return torch.sigmoid(model.decode(mu))


@torch.no_grad()
def traversal(run: Run, image: Tensor, values: Tensor | None = None, adapted: bool = True,
              seed: int = 0) -> Tensor:
    """Fig. 4: sweep each latent dimension of one image's code over ``values``.

    ``image`` is ``(C, H, W)`` or ``(1, C, H, W)``; ``values`` defaults to 9 points in
    [-2, 2] as in Appendix C. Returns ``(latent, len(values), C, H, W)``: row i modifies z_i.
    """
    image = image.unsqueeze(0) if image.dim() == 3 else image
    image = _check_images(image, run, "image")
    values = torch.linspace(-2, 2, 9) if values is None else torch.as_tensor(values).float()
    model: VAE | AdaptedModel = run.model
    if adapted and run.config.alpha > 0:
        model = adapted_model(run, image, seed=seed)
    mu, _ = model.encode(image)
    d, n = run.arch.latent_dim, len(values)
    z = mu.repeat(d * n, 1).view(d, n, d).clone()
    for i in range(d):
        z[i, :, i] = values
    logits = model.decode(z.view(d * n, d))  # adapted: one task, m = d*n codes
    return torch.sigmoid(logits).view(d, n, *logits.shape[1:])


def represent(run: Run, mode: str = "meta", batch: int = 250,
              seed: int = 0) -> Callable[[np.ndarray], np.ndarray]:
    """A representation function for the metrics: uint8 images -> encoder means.

    ``mode="meta"``: the meta-encoder's means (the headline codes); ``mode="adapted"``: the
    means of the encoder adapted to each image's own neighbourhood (synthetic neighbours
    of the image itself, since metric images need not be in the training pool).
    """
    if mode not in ("meta", "adapted"):
        raise ValueError(f"mode must be 'meta' or 'adapted', got {mode!r}")
    adapted = mode == "adapted" and run.config.alpha > 0
    synthetic = run if run.config.neighborhood == "synthetic" else _as_synthetic(run)

    @torch.no_grad()
    def fn(images: np.ndarray) -> np.ndarray:
        out = []
        for start in range(0, len(images), batch):
            x = to_tensor(images[start : start + batch])
            model = adapted_model(synthetic, x, seed=seed + start) if adapted else run.model
            mu, _ = model.encode(x)
            out.append(mu.numpy())
        return np.concatenate(out) if out else np.zeros((0, run.arch.latent_dim), np.float32)

    return fn


def _as_synthetic(run: Run) -> Run:
    from dataclasses import replace

    return replace(run, config=run.config.replace(neighborhood="synthetic"))
