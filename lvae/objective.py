"""The negative ELBO (eq. 1) and the Local VAE objective (eqs. 6-8, Algorithm 1), as written.

For anchor ``x_i`` with neighbours ``x_i1 .. x_iK`` (its neighbourhood N(x_i)) the Local VAE
loss is

    (theta'_i, phi'_i) = (theta, phi) - alpha * grad (1/K) sum_k L(theta, phi; x_ik)  (eqs. 7-8)
    L_i = L_g(theta'_i, phi'_i; x_i)                                                 (eq. 6)

averaged over the anchors of a batch, and Adam steps the meta-parameters (theta, phi) along
its gradient *through* the inner step (second order, MAML). Each piece is one function here:
:func:`neg_elbo` (eq. 1), :func:`local_objective` (Algorithm 1, line 4), :func:`inner_step`
(eqs. 7-8), :func:`global_loss` (eq. 6), and :func:`local_vae_loss_reference` (Algorithm 1,
lines 2-7, one task at a time with autograd). We follow eqs. 7-8, which put 1/K on both the
decoder (theta) and encoder (phi) updates; Algorithm 1's line 5 drops the 1/K from the
theta update only, which reads as a typo (it would make alpha mean different things for the
two networks).

**Loss scale.** alpha is a step size on the loss, so it means nothing until the loss's scale
is fixed. Summed over pixels, the inner gradient of an untrained 32x32 model is so large
that one step of alpha = 1 multiplies an anchor's loss by orders of magnitude (the book's
Local VAE page shows the table), yet the paper reports alpha = 1 as its best setting and only
alpha = 100 diverging. :class:`LossSpec.reduction` makes the choice explicit: ``"sum"`` is
eq. 1 read literally (nats per image, summed over pixels), and ``"pixel_mean"`` divides the
whole per-image negative ELBO by the number of pixel values D (the reading under which the
paper's alpha = 1 trains). The step size on the summed loss is then ``alpha / D``
(:meth:`LossSpec.effective_alpha`).

**Two formulations of one objective.** :func:`local_vae_loss_reference` is the plain reading
(what learn2learn or higher do): a Python loop over tasks, an explicit adapted parameter
dict per task. Training calls :func:`local_vae_loss`, which computes the same numbers for
all tasks at once without building any adapted copy of the network (``lvae.batched``, several
times faster); ``tests/test_objective.py`` holds it to the reference, loss and meta-gradient.
``lvae.batched`` builds on this module, so its public names (``local_vae_loss``,
``inner_gradients``, ``InnerGradients``, ``adapted_encode``, ``adapted_decode``,
``AdaptedModel``) live there, and are imported from there: the fast path depends on this
module, never the other way round.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from lvae.config import LIKELIHOODS, REDUCTIONS
from lvae.model import Architecture, Params, decode, encode

__all__ = [
    "LIKELIHOODS", "REDUCTIONS", "LocalLoss", "LossSpec", "adapted_prior", "check_alpha",
    "check_task_batch", "global_loss", "inner_step", "is_decoder", "local_objective",
    "local_vae_loss_reference", "neg_elbo", "neg_elbo_parts", "neg_elbo_terms",
    "reparameterize", "scaled_neg_elbo", "vanilla_vae_loss",
]


@dataclass(frozen=True)
class LossSpec:
    """How the negative ELBO is computed: decoder likelihood, beta, and its scale."""

    likelihood: str = "bernoulli"  # Table 4: Bernoulli decoder
    beta: float = 1.0  # weight of the KL term; beta > 1 is the beta-VAE baseline
    reduction: str = "pixel_mean"  # see the module docstring: what alpha means
    gaussian_sigma: float = 0.1  # std of the Gaussian decoder, if used

    def __post_init__(self) -> None:
        if self.likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {self.likelihood!r}")
        if self.reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {self.reduction!r}")
        if not self.beta >= 0:
            raise ValueError(f"beta must be >= 0, got {self.beta!r}")
        if not self.gaussian_sigma > 0:
            raise ValueError(f"gaussian_sigma must be > 0, got {self.gaussian_sigma!r}")

    def scale(self, arch: Architecture) -> float:
        """Factor applied to the per-image negative ELBO (1/D for ``pixel_mean``)."""
        return 1.0 / arch.num_pixels if self.reduction == "pixel_mean" else 1.0

    def effective_alpha(self, alpha: float, arch: Architecture) -> float:
        """The inner step size on the negative ELBO summed over pixels (nats per image)."""
        return alpha * self.scale(arch)


def check_alpha(alpha: float) -> float:
    """alpha is a step size: a finite number >= 0 (0 gives the vanilla VAE)."""
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)):
        raise ValueError(f"alpha must be a number >= 0, got {alpha!r} ({type(alpha).__name__})")
    if not math.isfinite(alpha) or alpha < 0:
        raise ValueError(f"alpha must be a finite number >= 0 (0 = vanilla VAE), got {alpha!r}")
    return float(alpha)


def check_task_batch(anchors: Tensor, neighbors: Tensor) -> None:
    """Anchors ``(B, C, H, W)`` and their neighbours k-major ``(K, B, C, H, W)``, same B.

    Both formulations index neighbours as ``neighbors[k, b]``; a transposed tensor would
    silently pair anchors with other anchors' neighbours.
    """
    if anchors.dim() != 4 or neighbors.dim() != 5 or neighbors.shape[1] != anchors.shape[0]:
        raise ValueError(
            f"anchors must be (B, C, H, W) and neighbors (K, B, C, H, W) with the same B; "
            f"got {tuple(anchors.shape)} and {tuple(neighbors.shape)}"
        )


# --------------------------------------------------------------------------------------
# Eq. 1: the negative ELBO of one image
# --------------------------------------------------------------------------------------


def neg_elbo_terms(
    x: Tensor, logits: Tensor, mu: Tensor, logvar: Tensor, loss: LossSpec
) -> tuple[Tensor, Tensor]:
    """Per-image reconstruction term ``-log p(x|z)`` and ``KL(q(z|x) || N(0, I))`` (eq. 1)."""
    if loss.likelihood == "bernoulli":
        recon = F.binary_cross_entropy_with_logits(logits, x, reduction="none")
    else:
        s = loss.gaussian_sigma
        recon = 0.5 * ((torch.sigmoid(logits) - x) / s) ** 2 + math.log(s * math.sqrt(2 * math.pi))
    recon = recon.flatten(1).sum(1)
    kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(1)
    return recon, kl


def reparameterize(mu: Tensor, logvar: Tensor, eps: Tensor) -> Tensor:
    """z = mu + sigma * eps, with the noise passed in so every formulation can share it."""
    return mu + torch.exp(0.5 * logvar) * eps


def scaled_neg_elbo(x: Tensor, logits: Tensor, mu: Tensor, logvar: Tensor, loss: LossSpec,
                    arch: Architecture) -> tuple[Tensor, Tensor, Tensor]:
    """``(loss per image, recon, kl)``: eq. 1 with beta on the KL, times the loss scale."""
    recon, kl = neg_elbo_terms(x, logits, mu, logvar, loss)
    return (recon + loss.beta * kl) * loss.scale(arch), recon, kl


def neg_elbo_parts(params: Params, x: Tensor, eps: Tensor, arch: Architecture,
                   loss: LossSpec) -> tuple[Tensor, Tensor, Tensor]:
    """Eq. 1 under ``params`` with one posterior sample per image (noise ``eps``).

    ``(scaled loss, recon, kl)`` per image: the loss is what is minimised, the two terms (in
    nats) are what training logs.
    """
    mu, logvar = encode(params, x, arch)
    logits = decode(params, reparameterize(mu, logvar, eps), arch)
    return scaled_neg_elbo(x, logits, mu, logvar, loss, arch)


def neg_elbo(
    params: Params, x: Tensor, eps: Tensor, arch: Architecture, loss: LossSpec
) -> Tensor:
    """Eq. 1, L(theta, phi; x): the scaled negative ELBO per image, ``(n,)``, beta on the KL."""
    return neg_elbo_parts(params, x, eps, arch, loss)[0]


# --------------------------------------------------------------------------------------
# Eqs. 6-8 and Algorithm 1, one task at a time
# --------------------------------------------------------------------------------------


def local_objective(params: Params, neighbors: Tensor, eps: Tensor, arch: Architecture,
                    loss: LossSpec) -> Tensor:
    """Algorithm 1, line 4: (1/K) sum_{x in N(x_i)} L(theta, phi; x), a scalar.

    The mean eq. 1 over one anchor's K neighbours ``(K, C, H, W)`` (noise ``(K, latent)``) at
    the meta-parameters: the loss whose gradient the inner step follows.
    """
    return neg_elbo(params, neighbors, eps, arch, loss).mean()


def inner_step(params: Params, grads: Params, alpha: float, decoder_scale: float = 1.0
               ) -> Params:
    """Eqs. 7-8: the neighbourhood's parameters, one gradient step from the meta-parameters.

    ``theta' = theta - alpha * grad_theta (1/K) sum_k L`` and the same for phi, where
    ``grads`` holds the gradient of :func:`local_objective` for every name in ``params``.
    Pure: the meta-parameters are untouched, and when ``grads`` was computed with
    ``create_graph=True`` the result stays differentiable with respect to them, which is
    what makes the meta-gradient second order. ``decoder_scale`` multiplies the decoder's
    (theta's) step only: K reads Algorithm 1's line 5 as printed, without eq. 7's 1/K.
    """
    return {name: p - alpha * (decoder_scale if is_decoder(name) else 1.0) * grads[name]
            for name, p in params.items()}


def is_decoder(name: str) -> bool:
    """Whether a parameter is the decoder's (theta) rather than the encoder's (phi)."""
    return name.startswith("dec.")


def adapted_prior(step_sq_norm: Tensor, sigma: float, scale: float) -> Tensor:
    """Eq. 5's ``-log p(theta_N | theta)`` for a Gaussian prior N(theta, sigma^2 I), per task.

    Eq. 5 keeps this term and eq. 6 drops it; with theta_N = theta' (the one-step estimate of
    eq. 7) it is ``||theta' - theta||^2 / (2 sigma^2)`` up to a constant: a penalty on the
    size of the decoder's inner step, which nothing in eq. 6 has. ``step_sq_norm`` holds
    ``||theta' - theta||^2`` per task; ``scale`` is the loss scale (:meth:`LossSpec.scale`),
    applied as to the rest of the bound so that sigma means the same under both reductions.
    This is the paper's own derivation kept, not an addition to it.
    """
    return step_sq_norm * (scale / (2.0 * sigma**2))


def global_loss(adapted: Params, anchors: Tensor, eps: Tensor, arch: Architecture,
                loss: LossSpec) -> tuple[Tensor, Tensor, Tensor]:
    """Eq. 6: L_g(theta', phi'; x_i), eq. 1 of each anchor under its neighbourhood's parameters.

    ``adapted`` comes from :func:`inner_step`. Returns ``(scaled loss, recon, kl)`` per anchor,
    as :func:`neg_elbo_parts`.
    """
    return neg_elbo_parts(adapted, anchors, eps, arch, loss)


@dataclass
class LocalLoss:
    """The meta-objective of one batch and its parts (all scaled as ``LossSpec``)."""

    loss: Tensor  # mean over anchors of L_g under the adapted parameters (eq. 6)
    inner_loss: Tensor  # mean neighbour loss at the meta-parameters (detached)
    recon: Tensor  # anchors' mean reconstruction term, unscaled nats (detached)
    kl: Tensor  # anchors' mean KL, nats (detached)


def local_vae_loss_reference(
    params: Params,
    arch: Architecture,
    anchors: Tensor,
    neighbors: Tensor,
    eps_anchor: Tensor,
    eps_inner: Tensor,
    alpha: float,
    loss: LossSpec,
    first_order: bool = False,
    decoder_scale: float = 1.0,
    prior_sigma: float | None = None,
) -> LocalLoss:
    """Algorithm 1, lines 2-7, as written: a loop over the anchors of the batch.

    Per anchor: the local objective on its K neighbours (line 4), its gradient by autograd,
    the adapted parameters (line 5, eqs. 7-8), eq. 6 on the anchor under them (line 6); the
    batch loss is the mean over anchors, whose gradient is line 8's meta-gradient. The
    gradient keeps its graph (``create_graph``) unless ``first_order``, so the meta-gradient
    flows through the inner step. Arguments as :func:`local_vae_loss`, which computes the
    same numbers batched; this one is the readable reference the tests hold it to.
    ``decoder_scale`` and ``prior_sigma`` are readings of what the paper leaves open
    (:func:`inner_step`, :func:`adapted_prior`); their defaults are eqs. 6-8.
    """
    alpha = check_alpha(alpha)
    check_task_batch(anchors, neighbors)
    names = list(params)
    parts: list[tuple[Tensor, Tensor, Tensor]] = []
    inner: list[Tensor] = []
    for i in range(anchors.shape[0]):
        task_loss = local_objective(params, neighbors[:, i], eps_inner[:, i], arch, loss)
        grads = torch.autograd.grad(task_loss, [params[n] for n in names],
                                    create_graph=not first_order)
        adapted = inner_step(params, dict(zip(names, grads, strict=True)), alpha, decoder_scale)
        per, recon, kl = global_loss(adapted, anchors[i : i + 1], eps_anchor[i : i + 1], arch,
                                     loss)
        if prior_sigma is not None:
            sq = sum(((adapted[n] - params[n]) ** 2).sum() for n in names if is_decoder(n))
            per = per + adapted_prior(sq, prior_sigma, loss.scale(arch))
        parts.append((per, recon, kl))
        inner.append(task_loss.detach())
    per_anchor, recon, kl = (torch.cat(t) for t in zip(*parts, strict=True))
    return LocalLoss(per_anchor.mean(), torch.stack(inner).mean(), recon.detach().mean(),
                     kl.detach().mean())


def vanilla_vae_loss(
    params: Params, arch: Architecture, x: Tensor, eps: Tensor, loss: LossSpec
) -> LocalLoss:
    """The (beta-)VAE objective on a batch, reported in the same form as the Local VAE's."""
    per, recon, kl = neg_elbo_parts(params, x, eps, arch, loss)
    mean = per.mean()
    return LocalLoss(mean, mean.detach(), recon.detach().mean(), kl.detach().mean())
