"""The negative ELBO (eq. 1) and the Local VAE objective (eqs. 6-8, Algorithm 1).

For anchor ``x_i`` with neighbours ``x_i1 .. x_iK`` (its neighbourhood N(x_i)) the Local VAE
loss is

    L_i = L_g(theta'_i, phi'_i; x_i)                                                 (eq. 6)
    (theta'_i, phi'_i) = (theta, phi) - alpha * grad (1/K) sum_k L(theta, phi; x_ik)  (eqs. 7-8)

averaged over the anchors of a batch, and Adam steps the meta-parameters (theta, phi) along
its gradient *through* the inner step (second order, MAML). We follow eqs. 7-8, which put
1/K on both the decoder (theta) and encoder (phi) updates; Algorithm 1's line 5 drops the
1/K from the theta update only, which reads as a typo (it would make alpha mean different
things for the two networks).

**Loss scale.** alpha is a step size on the loss, so it means nothing until the loss's scale
is fixed (see ``shared/notes/fidelity.md``). :class:`LossSpec.reduction` makes the choice
explicit: ``"sum"`` is eq. 1 read literally (nats per image, summed over pixels), and
``"pixel_mean"`` divides the whole per-image negative ELBO by the number of pixel values D
(the reading under which the paper's alpha = 1 trains and only alpha = 100 diverges). The
step size on the summed loss is then ``alpha / D`` (:meth:`LossSpec.effective_alpha`).

**How the meta-step is batched.** The inner loss of every task is evaluated at the *same*
meta-parameters, so one forward and one backward pass over all ``B*K`` neighbours give every
activation and every gradient with respect to a layer's output; only the weight gradients
differ per task (a sum over that task's K images). Neighbours are laid out k-major
(``x[k*B + b]`` is neighbour k of anchor b), so folding tasks into the channel axis is a free
view, and one grouped weight-gradient convolution (``groups=B``) gives all B per-task conv
weight gradients at once. Linear layers never materialise per-task weights: their task
gradient is rank K, ``g_b = sum_k d_kb a_kb^T``, so the adapted layer applied to an anchor is
``W h + b - alpha * sum_k d_kb (a_kb . h + 1)``. Every adapted layer is computed in this
split form, ``dense(h; W) - alpha * correction(h; g)``, so at alpha = 0 the loss and the
gradients equal the vanilla VAE's bit for bit. ``tests/test_objective.py`` checks the
meta-gradient against a plain per-task loop (the oracle) and ``benchmarks/meta_step.py``
measures the cost.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from lvae.model import (
    CONV_CHANNELS,
    KERNEL,
    PADDING,
    STRIDE,
    Architecture,
    Layer,
    Params,
    apply_layer,
    decode,
    encode,
    layer_specs,
)

LIKELIHOODS = ("bernoulli", "gaussian")
REDUCTIONS = ("pixel_mean", "sum")


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


def neg_elbo(
    params: Params, x: Tensor, eps: Tensor, arch: Architecture, loss: LossSpec
) -> Tensor:
    """Scaled negative ELBO per image, ``(n,)``: eq. 1 with beta on the KL term."""
    mu, logvar = encode(params, x, arch)
    logits = decode(params, reparameterize(mu, logvar, eps), arch)
    return scaled_neg_elbo(x, logits, mu, logvar, loss, arch)[0]


# --------------------------------------------------------------------------------------
# Per-task inner gradients in compact form
# --------------------------------------------------------------------------------------


@dataclass
class InnerGradients:
    """The inner-step gradients of every task, without per-task copies of big matrices.

    ``conv[name] = (gW, gb)`` with ``gW`` ``(B*out, in, k, k)`` for conv and
    ``(B*in, out, k, k)`` for transposed conv (the grouped-convolution weight layouts) and
    ``gb`` ``(B*out,)``; ``linear[name] = (a, d)`` with inputs ``a`` ``(K, B, in)`` and output
    gradients ``d`` ``(K, B, out)``, so that task b's weight gradient is ``d_b^T a_b``.
    ``unfold[name] = (gW, gb)`` holds the layers on the image side (few channels at full
    resolution: the first conv and the last transposed conv) as matrices ``gW``
    ``(B, out, in*k*k)`` (conv) or ``(B, in, out*k*k)`` (transposed conv), ``gb`` ``(B, out)``.
    ``inner_loss`` is the mean over tasks of each task's mean neighbour loss (eqs. 7-8).
    """

    num_tasks: int
    conv: dict[str, tuple[Tensor, Tensor]]
    linear: dict[str, tuple[Tensor, Tensor]]
    inner_loss: Tensor
    unfold: dict[str, tuple[Tensor, Tensor]] = field(default_factory=dict)


def _forward_recording(
    layers: list[Layer], params: Params, h: Tensor, c_last: int, record: dict[str, tuple]
) -> Tensor:
    """Shared forward pass that keeps each layer's input and pre-activation output."""
    for layer in layers:
        if layer.kind == "linear" and h.dim() == 4:
            h = h.flatten(1)
        elif layer.kind == "deconv" and h.dim() == 2:
            h = h.view(h.shape[0], c_last, 4, 4)
        s = apply_layer(layer, params, h)
        record[layer.name] = (h, s)
        h = F.relu(s) if layer.relu else s
    return h


def _input_grad(layer: Layer, params: Params, d: Tensor) -> Tensor:
    """Gradient w.r.t. a layer's input given the gradient ``d`` w.r.t. its output."""
    w = params[layer.name + ".weight"]
    if layer.kind == "linear":
        return d @ w
    if layer.kind == "conv":
        return F.conv_transpose2d(d, w, None, STRIDE, PADDING)
    return F.conv2d(d, w, None, STRIDE, PADDING)


def _backward_by_hand(enc: list[Layer], dec: list[Layer], params: Params, rec: dict,
                      x: Tensor, logits: Tensor, mu: Tensor, logvar: Tensor, eps: Tensor,
                      loss: LossSpec, c: float) -> list[Tensor]:
    """Gradients of ``c * sum(neg-ELBO)`` w.r.t. every layer's pre-activation, written out.

    Autograd's double backward of a convolution goes through generic convolution calls
    that are several times slower than the ordinary kernels; writing the inner backward as
    ordinary differentiable ops (transposed convolutions, matmuls, masks) lets the outer
    backward use the ordinary kernels. ``tests/test_objective.py`` checks it against
    ``torch.autograd.grad`` through the per-task loop.
    """
    p = torch.sigmoid(logits)
    if loss.likelihood == "bernoulli":
        d = (p - x) * c  # d BCE-with-logits / d logits
    else:
        s2 = loss.gaussian_sigma**2
        d = (p - x) / s2 * p * (1 - p) * c
    grads: dict[str, Tensor] = {}
    layers = enc + dec
    for i in range(len(layers) - 1, -1, -1):
        layer = layers[i]
        if layer.name == "enc.head":  # the encoder output: KL and the decoder's dz
            std = torch.exp(0.5 * logvar)
            d_mu = d + (loss.beta * c) * mu
            d_logvar = d * eps * 0.5 * std + (loss.beta * c * 0.5) * (std * std - 1.0)
            d = torch.cat([d_mu, d_logvar], dim=1)
        grads[layer.name] = d
        if i == 0:
            break
        if layer.name == "dec.fc0":  # its input is z: the next gradient is dz
            d = _input_grad(layer, params, d)
            continue
        d = _input_grad(layer, params, d)
        prev = layers[i - 1]
        s_prev = rec[prev.name][1]
        if d.dim() != s_prev.dim():
            d = d.reshape(s_prev.shape)
        if prev.relu:
            d = d * (s_prev > 0)
    return [grads[layer.name] for layer in layers]


def _grouped_weight_grad(a: Tensor, d: Tensor, layer: Layer, params: Params, tasks: int) -> Tensor:
    """All tasks' weight gradients of one (transposed) conv layer in one grouped call.

    ``a`` and ``d`` are k-major ``(K*B, C, H, W)``; viewing them as ``(K, B*C, H, W)`` puts
    the task index in the channel axis, and ``groups=B`` keeps the tasks apart while the
    convolution's batch sum runs over each task's K neighbours. ``convolution_backward`` is
    differentiable, so the meta-gradient flows through it (second order).
    """
    k = a.shape[0] // tasks
    a_f = a.reshape(k, tasks * a.shape[1], *a.shape[2:])
    d_f = d.reshape(k, tasks * d.shape[1], *d.shape[2:])
    w = params[layer.name + ".weight"]
    transposed = layer.kind == "deconv"
    shape = (tasks * w.shape[0], *w.shape[1:])
    fake_w = d.new_empty(1).expand(shape)  # only its shape is read
    return torch.ops.aten.convolution_backward(
        d_f, a_f, fake_w, None, [STRIDE] * 2, [PADDING] * 2, [1, 1], transposed, [0, 0],
        tasks, (False, True, False),
    )[1]


# Layers whose image-side channel count is at most this use im2col (unfold) + batched
# matmuls instead of grouped convolutions: grouped kernels with 3 channels per group at full
# resolution are the slowest calls of the whole step (benchmarks/meta_step.py).
UNFOLD_MAX_CHANNELS = 4


def _uses_unfold(layer: Layer) -> bool:
    small = layer.in_features if layer.kind == "conv" else layer.out_features
    return layer.kind in ("conv", "deconv") and small <= UNFOLD_MAX_CHANNELS


def _unfold(t: Tensor) -> Tensor:
    """im2col of a 4x4 / stride 2 / pad 1 window: ``(n, C*16, L)``, rows ordered (C, kh, kw)."""
    return F.unfold(t, KERNEL, padding=PADDING, stride=STRIDE)


def _unfold_weight_grad(a: Tensor, d: Tensor, layer: Layer, tasks: int) -> Tensor:
    """Per-task weight gradients of an image-side layer as batched matmuls over im2col.

    conv: ``gW_b = sum_k d_kb  unfold(a_kb)^T``  ``(B, out, in*16)``;
    transposed conv: ``gW_b = sum_k a_kb  unfold(d_kb)^T``  ``(B, in, out*16)``.
    One ``bmm`` over all K*B images, then a sum over the K neighbours of each task: the
    k-major layout makes that a plain reduction over the leading axis, with no transposes
    of the (large) im2col matrices.
    """
    k = a.shape[0] // tasks
    if layer.kind == "conv":
        left, right = d.flatten(2), _unfold(a)
    else:
        left, right = a.flatten(2), _unfold(d)
    per_image = torch.bmm(left, right.transpose(1, 2))  # (K*B, rows, cols)
    return per_image.view(k, tasks, *per_image.shape[1:]).sum(0)


def inner_gradients(
    params: Params,
    arch: Architecture,
    neighbors: Tensor,
    eps: Tensor,
    loss: LossSpec,
    create_graph: bool = True,
) -> InnerGradients:
    """Gradients of each task's mean neighbour loss at the meta-parameters (eqs. 7-8).

    ``neighbors`` is ``(K, B, C, H, W)`` (k-major) and ``eps`` ``(K, B, latent)``.
    ``create_graph=False`` gives the first-order variant (no graph through the inner step).
    """
    if neighbors.dim() != 5:
        raise ValueError(f"neighbors must be (K, B, C, H, W), got {tuple(neighbors.shape)}")
    # First order needs no graph at all: the inner step is a constant of the meta-gradient
    # (and generation/evaluation call this under no_grad).
    with torch.set_grad_enabled(create_graph and torch.is_grad_enabled()):
        return _inner_gradients(params, arch, neighbors, eps, loss, create_graph)


def _inner_gradients(params: Params, arch: Architecture, neighbors: Tensor, eps: Tensor,
                     loss: LossSpec, create_graph: bool) -> InnerGradients:
    k, b = neighbors.shape[:2]
    enc, dec = layer_specs(arch)
    c_last = CONV_CHANNELS[arch.resolution][-1]
    x = neighbors.reshape(k * b, *neighbors.shape[2:])
    rec: dict[str, tuple] = {}
    out = _forward_recording(enc, params, x, c_last, rec)
    mu, logvar = out[:, : arch.latent_dim], out[:, arch.latent_dim :]
    z = reparameterize(mu, logvar, eps.reshape(k * b, -1))
    logits = _forward_recording(dec, params, z, c_last, rec)
    per_image = scaled_neg_elbo(x, logits, mu, logvar, loss, arch)[0]
    layers = enc + dec
    # The loss being differentiated is the sum over tasks of each task's mean, so an
    # image's activation gradients are its share of its own task's gradient (factor 1/K).
    grads = _backward_by_hand(enc, dec, params, rec, x, logits, mu, logvar,
                              eps.reshape(k * b, -1), loss, loss.scale(arch) / k)
    conv: dict[str, tuple[Tensor, Tensor]] = {}
    linear: dict[str, tuple[Tensor, Tensor]] = {}
    unfold: dict[str, tuple[Tensor, Tensor]] = {}
    for layer, d in zip(layers, grads, strict=True):
        a = rec[layer.name][0]
        if layer.kind == "linear":
            linear[layer.name] = (a.view(k, b, -1), d.view(k, b, -1))
        elif _uses_unfold(layer):
            gw = _unfold_weight_grad(a, d, layer, b)
            unfold[layer.name] = (gw, d.view(k, b, d.shape[1], -1).sum((0, 3)))
        else:
            gw = _grouped_weight_grad(a, d, layer, params, b)
            gb = d.view(k, b, d.shape[1], -1).sum((0, 3)).reshape(-1)
            conv[layer.name] = (gw, gb)
    inner = per_image.detach().view(k, b).mean()
    return InnerGradients(b, conv, linear, inner, unfold)


# --------------------------------------------------------------------------------------
# Forward passes under the adapted parameters theta'_i, phi'_i
# --------------------------------------------------------------------------------------


def _correction(layer: Layer, h: Tensor, g: InnerGradients, m: int) -> Tensor:
    """``layer(h; g_task)`` for every input, each with its own task's gradient.

    ``h`` holds ``m`` inputs per task, m-major: ``h[j*B + b]`` belongs to task b.
    """
    b = g.num_tasks
    if layer.kind == "linear":
        a, d = g.linear[layer.name]  # (K, B, in), (K, B, out)
        hv = h.view(m, b, -1)
        s = torch.einsum("kbi,mbi->mkb", a, hv) + 1.0  # +1: the bias's share
        return torch.einsum("mkb,kbo->mbo", s, d).reshape(m * b, -1)
    if layer.name in g.unfold:
        gw, gb = g.unfold[layer.name]
        if layer.kind == "conv":  # (B, out, in*16) applied to im2col of h
            cols = _unfold(h)
            out = torch.matmul(gw, cols.view(m, b, *cols.shape[1:]))  # (m, B, out, L)
            side = h.shape[-1] // STRIDE
            out = out.reshape(m * b, gw.shape[1], side, side)
        else:  # (B, in, out*16): columns of the transposed conv, folded back
            cols = torch.matmul(gw.transpose(1, 2), h.flatten(2).view(m, b, h.shape[1], -1))
            side = h.shape[-1] * STRIDE
            out = F.fold(cols.reshape(m * b, cols.shape[2], -1), (side, side), KERNEL,
                         padding=PADDING, stride=STRIDE)
        return out + gb.repeat(m, 1)[:, :, None, None]
    gw, gb = g.conv[layer.name]
    hv = h.reshape(m, b * h.shape[1], *h.shape[2:])
    if layer.kind == "conv":
        out = F.conv2d(hv, gw, gb, STRIDE, PADDING, groups=b)
    else:
        out = F.conv_transpose2d(hv, gw, gb, STRIDE, PADDING, groups=b)
    return out.reshape(m * b, -1, *out.shape[2:])


def _adapted_layers(
    layers: list[Layer], params: Params, g: InnerGradients, alpha: float, h: Tensor, c_last: int
) -> Tensor:
    m = h.shape[0] // g.num_tasks
    for layer in layers:
        if layer.kind == "linear" and h.dim() == 4:
            h = h.flatten(1)
        elif layer.kind == "deconv" and h.dim() == 2:
            h = h.view(h.shape[0], c_last, 4, 4)
        s = apply_layer(layer, params, h) - alpha * _correction(layer, h, g, m)
        h = F.relu(s) if layer.relu else s
    return h


def adapted_encode(
    params: Params, arch: Architecture, g: InnerGradients, alpha: float, x: Tensor
) -> tuple[Tensor, Tensor]:
    """q(z|x; phi'_task): ``x`` holds m images per task, m-major ``(m*B, C, H, W)``."""
    enc, _ = layer_specs(arch)
    out = _adapted_layers(enc, params, g, alpha, x, CONV_CHANNELS[arch.resolution][-1])
    return out[:, : arch.latent_dim], out[:, arch.latent_dim :]


def adapted_decode(
    params: Params, arch: Architecture, g: InnerGradients, alpha: float, z: Tensor
) -> Tensor:
    """p(x|z; theta'_task): ``z`` holds m codes per task, m-major ``(m*B, latent)``."""
    _, dec = layer_specs(arch)
    return _adapted_layers(dec, params, g, alpha, z, CONV_CHANNELS[arch.resolution][-1])


@dataclass
class LocalLoss:
    """The meta-objective of one batch and its parts (all scaled as ``LossSpec``)."""

    loss: Tensor  # mean over anchors of L_g under the adapted parameters (eq. 6)
    inner_loss: Tensor  # mean neighbour loss at the meta-parameters (detached)
    recon: Tensor  # anchors' mean reconstruction term, unscaled nats (detached)
    kl: Tensor  # anchors' mean KL, nats (detached)


def check_alpha(alpha: float) -> float:
    """alpha is a step size: a finite number >= 0 (0 gives the vanilla VAE)."""
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)):
        raise ValueError(f"alpha must be a number >= 0, got {alpha!r} ({type(alpha).__name__})")
    if not math.isfinite(alpha) or alpha < 0:
        raise ValueError(f"alpha must be a finite number >= 0 (0 = vanilla VAE), got {alpha!r}")
    return float(alpha)


def local_vae_loss(
    params: Params,
    arch: Architecture,
    anchors: Tensor,
    neighbors: Tensor,
    eps_anchor: Tensor,
    eps_inner: Tensor,
    alpha: float,
    loss: LossSpec,
    first_order: bool = False,
) -> LocalLoss:
    """The Local VAE objective of one batch (Algorithm 1, lines 2-7; eqs. 6-8).

    ``anchors`` ``(B, C, H, W)``, ``neighbors`` ``(K, B, C, H, W)``, ``eps_anchor``
    ``(B, latent)`` and ``eps_inner`` ``(K, B, latent)`` (the reparameterisation noise,
    passed in so that formulations can be compared draw for draw). Backpropagating
    ``.loss`` gives the meta-gradient: second order unless ``first_order``.
    """
    alpha = check_alpha(alpha)
    if anchors.dim() != 4 or neighbors.shape[1] != anchors.shape[0]:
        raise ValueError(
            f"anchors must be (B, C, H, W) and neighbors (K, B, C, H, W) with the same B; "
            f"got {tuple(anchors.shape)} and {tuple(neighbors.shape)}"
        )
    g = inner_gradients(params, arch, neighbors, eps_inner, loss, create_graph=not first_order)
    mu, logvar = adapted_encode(params, arch, g, alpha, anchors)
    logits = adapted_decode(params, arch, g, alpha, reparameterize(mu, logvar, eps_anchor))
    per_anchor, recon, kl = scaled_neg_elbo(anchors, logits, mu, logvar, loss, arch)
    return LocalLoss(per_anchor.mean(), g.inner_loss, recon.detach().mean(), kl.detach().mean())


def vanilla_vae_loss(
    params: Params, arch: Architecture, x: Tensor, eps: Tensor, loss: LossSpec
) -> LocalLoss:
    """The (beta-)VAE objective on a batch, reported in the same form as the Local VAE's."""
    mu, logvar = encode(params, x, arch)
    logits = decode(params, reparameterize(mu, logvar, eps), arch)
    per, recon, kl = scaled_neg_elbo(x, logits, mu, logvar, loss, arch)
    mean = per.mean()
    return LocalLoss(mean, mean.detach(), recon.detach().mean(), kl.detach().mean())
