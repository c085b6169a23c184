"""The Local VAE objective for all tasks of a batch at once: the fast path training uses.

:func:`local_vae_loss` computes exactly what ``lvae.objective.local_vae_loss_reference``
computes (Algorithm 1, lines 2-7: inner step of eqs. 7-8, eq. 6 on each anchor), without a
Python loop over tasks and without building any adapted copy of the network.
``tests/test_objective.py`` checks loss and meta-gradient against the reference, and
``benchmarks/meta_step.py`` measures the cost against the loop and ``torch.func.vmap``.

**The inner gradients** (:func:`inner_gradients`). The inner loss of every task is evaluated
at the *same* meta-parameters, so one forward and one backward pass over all ``B*K``
neighbours give every activation and every gradient with respect to a layer's output; only
the weight gradients differ per task (a sum over that task's K images). Neighbours are laid
out k-major (``x[k*B + b]`` is neighbour k of anchor b), so folding tasks into the channel
axis is a free view, and one grouped weight-gradient convolution (``groups=B``) gives all B
per-task conv weight gradients at once. Linear layers never materialise per-task weights:
their task gradient is rank K, ``g_b = sum_k d_kb a_kb^T``. The backward pass is written
out by hand (:func:`_backward_by_hand`) so that the outer backward differentiates ordinary
ops.

**The adapted networks** (:func:`adapted_encode`, :func:`adapted_decode`). An affine map is
linear in its parameters, so under eqs. 7-8's ``W' = W - alpha * g_b`` a layer is
``layer(h; W') = layer(h; W) - alpha * layer(h; g_b)``: the meta-weights' map, shared by all
tasks, minus a per-task correction. For a linear layer the correction is
``sum_k d_kb (a_kb . h + 1)`` (the +1 is the bias's share). Every adapted layer is computed
in this split form, so at alpha = 0 the loss and the gradients equal the vanilla VAE's bit
for bit.

**Speed** (issue 14; ``benchmarks/meta_step.py`` prints the ratios and GFLOP/s). The step
does ~2.8x the vanilla step's floating-point work on the same images (9 passes' worth over
the B*K neighbours against 3 over B*(K+1) images), so what is left is running it at the
vanilla step's speed. A few small autograd Functions write out backwards that autograd
would run slowly: the per-task weight gradients (:class:`_TaskWeightGrad`, per-layer choice
of grouped call or task loop), the image-side per-task matmuls (:class:`_TaskOuterSum`) and
bias sums (:class:`_TaskBiasGrad`), im2col/col2im (:class:`_Unfold`, :class:`_Fold`), and the
transposed conv into the image (:class:`_ThinConvTranspose`, :class:`_ThinConvAdjoint`).
Each computes the numbers of the plain expression (to rounding) and is held to the
reference in ``tests/test_batched_paths.py``.
"""

from __future__ import annotations

import ctypes
import os
import sys
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from lvae.model import (
    KERNEL,
    PADDING,
    STRIDE,
    Architecture,
    Layer,
    Params,
    apply_layer,
    layer_specs,
    run_layers,
)
from lvae.objective import (
    LocalLoss,
    LossSpec,
    adapted_prior,
    check_alpha,
    check_task_batch,
    reparameterize,
    scaled_neg_elbo,
)

# Bytes below which glibc serves an allocation from its heap and keeps a freed block for
# reuse (see _retain_freed_memory).
MALLOC_RETAIN_BYTES = 1 << 30


def _retain_freed_memory() -> bool:
    """Make glibc keep freed large blocks instead of returning them to the kernel.

    A meta-step allocates and frees dozens of 8-50 MB temporaries (a 64x64 step's feature
    maps for 250 images are 33 MB each). glibc serves blocks above its mmap threshold
    (dynamic, at most 32 MB) with a fresh ``mmap`` and unmaps them on free, and trims the
    heap top above 128 KB, so each such tensor is page-faulted and zeroed by the kernel
    again on every step: measured 7% (32x32) to 12% (64x64) of the second-order step's CPU
    time, none of the vanilla step's. Raising both thresholds keeps the memory in the
    process for the next step (its resident size stays at its peak). Process-wide, Linux
    glibc only; ``LVAE_MALLOC_RETAIN=0`` leaves the allocator alone. Returns whether set.
    """
    if not sys.platform.startswith("linux") or os.environ.get("LVAE_MALLOC_RETAIN") == "0":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
        return bool(libc.mallopt(m_mmap_threshold, MALLOC_RETAIN_BYTES)
                    and libc.mallopt(m_trim_threshold, MALLOC_RETAIN_BYTES))
    except (OSError, AttributeError):  # not glibc
        return False


MALLOC_RETAINED = _retain_freed_memory()

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


def _im2col(t: Tensor) -> Tensor:
    """im2col of the KERNEL x KERNEL / STRIDE / PADDING window as one strided copy.

    ``(n, C, H, W)`` -> ``(n, C*KERNEL^2, L)``, rows ordered (C, kh, kw): exactly
    ``F.unfold``'s numbers, but ``F.unfold`` walks the batch image by image (2x slower on
    the 250-image batches here).
    """
    n, c, h, w = t.shape
    tp = F.pad(t, (PADDING,) * 4)
    ho, wo = (h + 2 * PADDING - KERNEL) // STRIDE + 1, (w + 2 * PADDING - KERNEL) // STRIDE + 1
    sn, sc, sh, sw = tp.stride()
    windows = tp.as_strided((n, c, KERNEL, KERNEL, ho, wo),
                            (sn, sc, sh, sw, STRIDE * sh, STRIDE * sw))
    return windows.reshape(n, c * KERNEL * KERNEL, ho * wo)


class _Unfold(torch.autograd.Function):
    """:func:`_im2col` with col2im (``F.fold``) as its backward, and the other way round
    in :class:`_Fold`: each is the other's adjoint, so both stay differentiable to any
    order without autograd's generic ``as_strided`` backward."""

    @staticmethod
    def forward(ctx, t: Tensor) -> Tensor:
        ctx.side = t.shape[-1]
        return _im2col(t)

    @staticmethod
    def backward(ctx, g: Tensor) -> Tensor:
        return _Fold.apply(g, ctx.side)


class _Fold(torch.autograd.Function):
    """col2im into ``(n, C, side, side)`` (``F.fold``), backward :class:`_Unfold`."""

    @staticmethod
    def forward(ctx, cols: Tensor, side: int) -> Tensor:
        return F.fold(cols, (side, side), KERNEL, padding=PADDING, stride=STRIDE)

    @staticmethod
    def backward(ctx, g: Tensor) -> tuple[Tensor, None]:
        return _Unfold.apply(g), None


def _fold_columns(cols: Tensor, side: int) -> Tensor:
    """col2im of KERNEL x KERNEL / STRIDE / PADDING columns ``(n, C*KERNEL^2, L)`` into
    ``(n, C, side, side)``: the adjoint of :func:`_unfold`."""
    return _Fold.apply(cols, side)


class _ThinConvTranspose(torch.autograd.Function):
    """``conv_transpose2d(h, w, bias)`` into a map with few channels (the image).

    oneDNN computes a transposed convolution into 1-3 output channels at 12-15 GFLOP/s (its
    channel blocks are 16 wide); the same numbers as one matmul into columns ``w^T h``
    (48 rows, a dense GEMM) and a col2im take half the time. The backward is the ordinary
    ``convolution_backward``, which is fast here (its input gradient is a convolution *from*
    the thin map) and differentiable, so higher orders still work.
    """

    @staticmethod
    def forward(ctx, h: Tensor, w: Tensor, bias: Tensor | None) -> Tensor:
        ctx.save_for_backward(h, w)
        ctx.has_bias = bias is not None
        # (n, out*k*k, L); bmm, not matmul: matmul folds a 2-D @ 3-D product into one mm
        # with a transposed result and then copies that back.
        wt = w.flatten(1).t()
        cols = torch.bmm(wt.expand(h.shape[0], *wt.shape), h.flatten(2))
        out = _fold_columns(cols, h.shape[-1] * STRIDE)
        return out if bias is None else out + bias[:, None, None]

    @staticmethod
    def backward(ctx, g: Tensor) -> tuple[Tensor | None, ...]:
        h, w = ctx.saved_tensors
        mask = (ctx.needs_input_grad[0], ctx.needs_input_grad[1],
                ctx.has_bias and ctx.needs_input_grad[2])
        gh, gw, gb = torch.ops.aten.convolution_backward(
            g, h, w, [w.shape[1]] if ctx.has_bias else None, [STRIDE] * 2, [PADDING] * 2,
            [1, 1], True, [0, 0], 1, mask)
        return gh, gw, gb


class _ThinConvAdjoint(torch.autograd.Function):
    """``conv2d(d, w)`` from a map with few channels: the input gradient of a thin
    transposed convolution. Forward as usual (fast); its own input gradient is a thin
    transposed convolution, taken by :class:`_ThinConvTranspose`."""

    @staticmethod
    def forward(ctx, d: Tensor, w: Tensor) -> Tensor:
        ctx.save_for_backward(d, w)
        return F.conv2d(d, w, None, STRIDE, PADDING)

    @staticmethod
    def backward(ctx, g: Tensor) -> tuple[Tensor | None, ...]:
        d, w = ctx.saved_tensors
        gd = _ThinConvTranspose.apply(g, w, None) if ctx.needs_input_grad[0] else None
        gw = None
        if ctx.needs_input_grad[1]:
            gw = torch.ops.aten.convolution_backward(
                g, d, w, None, [STRIDE] * 2, [PADDING] * 2, [1, 1], False, [0, 0], 1,
                (False, True, False))[1]
        return gd, gw


def _is_thin_deconv(layer: Layer) -> bool:
    """A transposed conv into the image (few output channels): see _ThinConvTranspose."""
    return layer.kind == "deconv" and layer.out_features <= UNFOLD_MAX_CHANNELS


def _inner_affine(layer: Layer, params: Params, h: Tensor) -> Tensor:
    """The inner pass's affine map: :func:`lvae.model.apply_layer`, the thin transposed
    conv by :class:`_ThinConvTranspose` (same numbers to rounding). Only the inner step
    uses it; the anchors' pass keeps ``apply_layer`` so alpha = 0 stays the vanilla VAE
    bit for bit."""
    if _is_thin_deconv(layer):
        w, b = params[layer.name + ".weight"], params[layer.name + ".bias"]
        return _ThinConvTranspose.apply(h, w, b)
    return apply_layer(layer, params, h)


def _input_grad(layer: Layer, params: Params, d: Tensor) -> Tensor:
    """Gradient w.r.t. a layer's input given the gradient ``d`` w.r.t. its output."""
    w = params[layer.name + ".weight"]
    if layer.kind == "linear":
        return d @ w
    if layer.kind == "conv":
        return F.conv_transpose2d(d, w, None, STRIDE, PADDING)
    if _is_thin_deconv(layer):
        return _ThinConvAdjoint.apply(d, w)
    return F.conv2d(d, w, None, STRIDE, PADDING)


def _backward_by_hand(layers: list[Layer], params: Params, rec: dict[str, tuple[Tensor, Tensor]],
                      x: Tensor, logits: Tensor, mu: Tensor, logvar: Tensor, eps: Tensor,
                      loss: LossSpec, c: float) -> list[Tensor]:
    """Gradients of ``c * sum(neg-ELBO)`` w.r.t. every layer's pre-activation, written out.

    Autograd's double backward of a convolution goes through generic convolution calls
    that are several times slower than the ordinary kernels; writing the inner backward as
    ordinary differentiable ops (transposed convolutions, matmuls, masks) lets the outer
    backward use the ordinary kernels. ``layers`` is the encoder then the decoder, and
    ``rec`` maps each layer to its recorded ``(input, pre-activation)``.
    """
    p = torch.sigmoid(logits)
    if loss.likelihood == "bernoulli":
        d = (p - x) * c  # d BCE-with-logits / d logits
    else:
        s2 = loss.gaussian_sigma**2
        d = (p - x) / s2 * p * (1 - p) * c
    grads: dict[str, Tensor] = {}
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
            # The ReLU's derivative as one fused select: ``d * (s > 0)`` made a bool mask,
            # a float copy of it and a product (three passes over the largest tensors of
            # the step). The mask is read off the ReLU's output relu(s) > 0 <=> s > 0,
            # this layer's input, which the graph keeps anyway (the pre-activation would
            # be one more saved map per layer); detached, since the select's derivative
            # w.r.t. it is zero.
            relu_out = rec[layer.name][0].reshape(s_prev.shape)
            d = torch.ops.aten.threshold_backward(d, relu_out.detach(), 0.0)
    return [grads[layer.name] for layer in layers]


# Per-task (transposed) convolutions on maps at least this wide run as a loop over tasks
# in the backward of the weight gradients; narrower ones as one grouped call. oneDNN's
# grouped *transposed* convolution into wide maps (e.g. 16x16 -> 32x32, 32 channels a
# group) runs at a third of the speed of the same work done task by task, while on the
# small maps of the 32x32 tail the grouped call wins (benchmarks/meta_step.py).
LOOP_MIN_SIDE = 32


def _task_conv(x: Tensor, w: Tensor, tasks: int, transposed: bool, loop: bool) -> Tensor:
    """``conv(x_b, w_b)`` (or transposed) for every task b, tasks folded into channels.

    ``x`` is ``(K, B*C, H, W)``, ``w`` the grouped weight ``(B*..., ..., k, k)``. Both
    branches compute the same numbers; ``loop`` picks B ordinary calls over one grouped one.
    """
    op = F.conv_transpose2d if transposed else F.conv2d
    if not loop:
        return op(x, w, None, STRIDE, PADDING, groups=tasks)
    xs, ws = x.chunk(tasks, dim=1), w.chunk(tasks, dim=0)
    return torch.cat([op(xb, wb, None, STRIDE, PADDING) for xb, wb in zip(xs, ws, strict=True)],
                     dim=1)


class _TaskWeightGrad(torch.autograd.Function):
    """All tasks' weight gradients of one (transposed) conv layer, with a chosen backward.

    Forward: one grouped weight-gradient convolution (see :func:`_grouped_weight_grad`).
    Backward (the second-order part of the meta-gradient): the weight gradient is bilinear
    in the layer's input ``a`` and output gradient ``d``, so its adjoints are a per-task
    convolution and a per-task transposed convolution with the incoming gradient as
    weights. Autograd's generic double backward always makes both grouped calls; here the
    one into the wide map can run task by task instead (:data:`LOOP_MIN_SIDE`). The
    backward is written in differentiable ops, so higher orders still work.
    """

    @staticmethod
    def forward(ctx, a_f: Tensor, d_f: Tensor, w_shape: tuple[int, ...], transposed: bool,
                tasks: int) -> Tensor:
        ctx.save_for_backward(a_f, d_f)
        ctx.transposed, ctx.tasks = transposed, tasks
        weight = d_f.new_empty(w_shape)  # only its shape is read
        return torch.ops.aten.convolution_backward(
            d_f, a_f, weight, None, [STRIDE] * 2, [PADDING] * 2, [1, 1], transposed, [0, 0],
            tasks, (False, True, False),
        )[1]

    @staticmethod
    def backward(ctx, g: Tensor) -> tuple[Tensor | None, ...]:
        a_f, d_f = ctx.saved_tensors
        tasks, transposed = ctx.tasks, ctx.transposed
        # conv: a (wide) -> d (narrow); transposed conv: a (narrow) -> d (wide).
        wide = a_f if not transposed else d_f
        # Measured on CPU (oneDNN); on a GPU one grouped launch beats B small ones.
        loop = a_f.device.type == "cpu" and wide.shape[-1] >= LOOP_MIN_SIDE
        grad_a = grad_d = None
        if ctx.needs_input_grad[0]:  # d/da <gW, g>: the layer's adjoint, weights g
            grad_a = _task_conv(d_f, g, tasks, not transposed, loop and not transposed)
        if ctx.needs_input_grad[1]:  # d/dd <gW, g>: the layer itself, weights g
            grad_d = _task_conv(a_f, g, tasks, transposed, loop and transposed)
        return grad_a, grad_d, None, None, None


def _grouped_weight_grad(a: Tensor, d: Tensor, layer: Layer, params: Params, tasks: int) -> Tensor:
    """All tasks' weight gradients of one (transposed) conv layer in one grouped call.

    ``a`` and ``d`` are k-major ``(K*B, C, H, W)``; viewing them as ``(K, B*C, H, W)`` puts
    the task index in the channel axis, and ``groups=B`` keeps the tasks apart while the
    convolution's batch sum runs over each task's K neighbours. Differentiable
    (:class:`_TaskWeightGrad`), so the meta-gradient flows through it (second order).
    """
    k = a.shape[0] // tasks
    a_f = a.reshape(k, tasks * a.shape[1], *a.shape[2:])
    d_f = d.reshape(k, tasks * d.shape[1], *d.shape[2:])
    w = params[layer.name + ".weight"]
    shape = (tasks * w.shape[0], *w.shape[1:])
    return _TaskWeightGrad.apply(a_f, d_f, shape, layer.kind == "deconv", tasks)


# Layers whose image-side channel count is at most this use im2col (unfold) + batched
# matmuls instead of grouped convolutions: grouped kernels with 3 channels per group at full
# resolution are the slowest calls of the whole step (benchmarks/meta_step.py).
UNFOLD_MAX_CHANNELS = 4


def _uses_unfold(layer: Layer) -> bool:
    small = layer.in_features if layer.kind == "conv" else layer.out_features
    return layer.kind in ("conv", "deconv") and small <= UNFOLD_MAX_CHANNELS


def _unfold(t: Tensor) -> Tensor:
    """im2col of the KERNEL x KERNEL / STRIDE / PADDING window: ``(n, C*KERNEL^2, L)``,
    rows ordered (C, kh, kw)."""
    return _Unfold.apply(t)


class _TaskOuterSum(torch.autograd.Function):
    """``out[b] = sum_k left[k*B + b] @ right[k*B + b]^T``: per-task sums of per-image matmuls.

    ``left`` ``(K*B, R, L)``, ``right`` ``(K*B, S, L)``, k-major. The backward is written out
    so that both input gradients come out of a plain ``bmm`` already contiguous; autograd's
    own backward of ``bmm(left, right.transpose(1, 2))`` returns the gradient of ``right``
    as a transposed view, which the ``col2im`` behind an unfolded operand then copies with
    a transposing copy (the slowest copy of the whole step).
    """

    @staticmethod
    def forward(ctx, left: Tensor, right: Tensor, tasks: int) -> Tensor:
        ctx.save_for_backward(left, right)
        ctx.tasks = tasks
        per_image = torch.bmm(left, right.transpose(1, 2))  # (K*B, R, S)
        return per_image.view(-1, tasks, *per_image.shape[1:]).sum(0)

    @staticmethod
    def backward(ctx, g: Tensor) -> tuple[Tensor | None, ...]:
        left, right = ctx.saved_tensors
        per_image = g.repeat(left.shape[0] // ctx.tasks, 1, 1)  # (K*B, R, S), small
        grad_left = torch.bmm(per_image, right) if ctx.needs_input_grad[0] else None
        grad_right = (torch.bmm(per_image.transpose(1, 2), left)
                      if ctx.needs_input_grad[1] else None)
        return grad_left, grad_right, None


class _TaskBiasGrad(torch.autograd.Function):
    """Per-task bias gradients ``(B, C)``: the sum of ``d`` over each task's K images and
    all pixels.

    As ``d.view(K, B, C, -1).sum((0, 3))`` the backward broadcast cannot be viewed back as
    ``(K*B, C, H, W)`` (K and B do not merge under a stride-0 axis), so autograd
    materialised a full-size copy for every conv layer; here the broadcast is returned as a
    stride-0 view of a small ``(K*B, C)`` tensor. Same numbers both ways.
    """

    @staticmethod
    def forward(ctx, d: Tensor, tasks: int) -> Tensor:
        ctx.shape, ctx.tasks = d.shape, tasks
        return d.view(-1, tasks, d.shape[1], d.shape[2] * d.shape[3]).sum((0, 3))

    @staticmethod
    def backward(ctx, g: Tensor) -> tuple[Tensor | None, ...]:
        n, c = ctx.shape[0], ctx.shape[1]
        return g.repeat(n // ctx.tasks, 1).view(n, c, 1, 1).expand(ctx.shape), None


def _unfold_weight_grad(a: Tensor, d: Tensor, layer: Layer, tasks: int) -> Tensor:
    """Per-task weight gradients of an image-side layer as batched matmuls over im2col.

    conv: ``gW_b = sum_k d_kb  unfold(a_kb)^T``  ``(B, out, in*k*k)``;
    transposed conv: ``gW_b = sum_k a_kb  unfold(d_kb)^T``  ``(B, in, out*k*k)``.
    One ``bmm`` over all K*B images, then a sum over the K neighbours of each task: the
    k-major layout makes that a plain reduction over the leading axis, with no transposes
    of the (large) im2col matrices (:class:`_TaskOuterSum`).
    """
    if layer.kind == "conv":
        left, right = d.flatten(2), _unfold(a)
    else:
        left, right = a.flatten(2), _unfold(d)
    return _TaskOuterSum.apply(left, right, tasks)


def inner_gradients(
    params: Params,
    arch: Architecture,
    neighbors: Tensor,
    eps: Tensor,
    loss: LossSpec,
    create_graph: bool = True,
) -> InnerGradients:
    """Every task's gradient of its local objective at the meta-parameters (eqs. 7-8).

    The gradient part of eqs. 7-8 (``grad (1/K) sum_k L``); the step itself is taken inside
    each adapted layer (:func:`adapted_encode`, :func:`adapted_decode`). ``neighbors`` is
    ``(K, B, C, H, W)`` (k-major) and ``eps`` ``(K, B, latent)``. ``create_graph=False``
    gives the first-order variant (no graph through the inner step).
    """
    if neighbors.dim() != 5:
        raise ValueError(f"neighbors must be (K, B, C, H, W), got {tuple(neighbors.shape)}")
    # First order needs no graph at all: the inner step is a constant of the meta-gradient
    # (and generation/evaluation call this under no_grad).
    with torch.set_grad_enabled(create_graph and torch.is_grad_enabled()):
        return _inner_gradients(params, arch, neighbors, eps, loss)


def _inner_gradients(params: Params, arch: Architecture, neighbors: Tensor, eps: Tensor,
                     loss: LossSpec) -> InnerGradients:
    k, b = neighbors.shape[:2]
    enc, dec = layer_specs(arch)
    x = neighbors.reshape(k * b, *neighbors.shape[2:])
    rec: dict[str, tuple[Tensor, Tensor]] = {}

    def recording(layer: Layer, h: Tensor) -> Tensor:  # keep each layer's input and output
        s = _inner_affine(layer, params, h)
        rec[layer.name] = (h, s)
        return s

    out = run_layers(enc, params, x, recording)
    mu, logvar = out[:, : arch.latent_dim], out[:, arch.latent_dim :]
    z = reparameterize(mu, logvar, eps.reshape(k * b, -1))
    logits = run_layers(dec, params, z, recording)
    per_image = scaled_neg_elbo(x, logits, mu, logvar, loss, arch)[0]
    layers = enc + dec
    # The loss being differentiated is the sum over tasks of each task's mean, so an
    # image's activation gradients are its share of its own task's gradient (factor 1/K).
    grads = _backward_by_hand(layers, params, rec, x, logits, mu, logvar,
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
            unfold[layer.name] = (gw, _TaskBiasGrad.apply(d, b))
        else:
            gw = _grouped_weight_grad(a, d, layer, params, b)
            gb = _TaskBiasGrad.apply(d, b).reshape(-1)
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
        if layer.kind == "conv":  # (B, out, in*k*k) applied to im2col of h
            cols = _unfold(h)
            out = torch.matmul(gw, cols.view(m, b, *cols.shape[1:]))  # (m, B, out, L)
            side = h.shape[-1] // STRIDE
            out = out.reshape(m * b, gw.shape[1], side, side)
        else:  # (B, in, out*k*k): columns of the transposed conv, folded back
            cols = torch.matmul(gw.transpose(1, 2), h.flatten(2).view(m, b, h.shape[1], -1))
            side = h.shape[-1] * STRIDE
            out = _fold_columns(cols.reshape(m * b, cols.shape[2], -1), side)
        return out + gb.repeat(m, 1)[:, :, None, None]
    gw, gb = g.conv[layer.name]
    hv = h.reshape(m, b * h.shape[1], *h.shape[2:])
    if layer.kind == "conv":
        out = F.conv2d(hv, gw, gb, STRIDE, PADDING, groups=b)
    else:
        out = F.conv_transpose2d(hv, gw, gb, STRIDE, PADDING, groups=b)
    return out.reshape(m * b, -1, *out.shape[2:])


def _run_adapted(layers: list[Layer], params: Params, g: InnerGradients, alpha: float,
                 h: Tensor) -> Tensor:
    """``layers`` under each task's ``W - alpha * g_task``, in the split form (module doc)."""
    m = h.shape[0] // g.num_tasks

    def adapted(layer: Layer, h: Tensor) -> Tensor:
        return apply_layer(layer, params, h) - alpha * _correction(layer, h, g, m)

    return run_layers(layers, params, h, adapted)


def adapted_encode(
    params: Params, arch: Architecture, g: InnerGradients, alpha: float, x: Tensor
) -> tuple[Tensor, Tensor]:
    """q(z|x; phi'_task): ``x`` holds m images per task, m-major ``(m*B, C, H, W)``."""
    enc, _ = layer_specs(arch)
    out = _run_adapted(enc, params, g, alpha, x)
    return out[:, : arch.latent_dim], out[:, arch.latent_dim :]


def adapted_decode(
    params: Params, arch: Architecture, g: InnerGradients, alpha: float, z: Tensor
) -> Tensor:
    """p(x|z; theta'_task): ``z`` holds m codes per task, m-major ``(m*B, latent)``."""
    _, dec = layer_specs(arch)
    return _run_adapted(dec, params, g, alpha, z)


def task_sq_norms(g: InnerGradients, layers: list[Layer]) -> Tensor:
    """``||grad_task||^2`` over ``layers``' weights and biases, per task ``(B,)``.

    What eq. 5's prior needs (:func:`lvae.objective.adapted_prior`), without building any
    per-task matrix of a linear layer: its task gradient is ``sum_k d_k a_k^T`` plus the bias
    ``sum_k d_k``, whose squared norm is ``sum_kj (a_k . a_j + 1)(d_k . d_j)``.
    """
    total = torch.zeros(g.num_tasks, dtype=g.inner_loss.dtype, device=g.inner_loss.device)
    for layer in layers:
        if layer.kind == "linear":
            a, d = g.linear[layer.name]  # (K, B, in), (K, B, out)
            gram_a = torch.einsum("kbi,jbi->bkj", a, a) + 1.0
            total = total + (gram_a * torch.einsum("kbo,jbo->bkj", d, d)).sum((1, 2))
        else:
            gw, gb = g.unfold[layer.name] if layer.name in g.unfold else g.conv[layer.name]
            total = (total + gw.reshape(g.num_tasks, -1).pow(2).sum(1)
                     + gb.reshape(g.num_tasks, -1).pow(2).sum(1))
    return total


@dataclass(frozen=True, eq=False)  # holds tensors: identity, not value, equality
class AdaptedModel:
    """The B adapted VAEs of one inner step (eqs. 7-8), used like a :class:`~lvae.model.VAE`.

    ``encode`` and ``decode`` have the VAE's signatures, so code that reconstructs, encodes
    or generates takes either the meta-model (``run.model``) or this one. Their inputs hold
    m items per task, m-major: item ``j*B + b`` goes through task b's network (with one
    reference per task and one item each, item b is reference b's).
    """

    params: Params
    arch: Architecture
    grads: InnerGradients
    alpha: float
    #: the decoder's step size where it differs from the encoder's (Algorithm 1's line 5 as
    #: printed: ``K * alpha``); None: ``alpha``, as eqs. 7-8
    decoder_alpha: float | None = None

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(mu, logvar)`` under each task's adapted encoder phi'."""
        return adapted_encode(self.params, self.arch, self.grads, self.alpha, x)

    def decode(self, z: Tensor) -> Tensor:
        """Pixel logits under each task's adapted decoder theta'."""
        alpha = self.alpha if self.decoder_alpha is None else self.decoder_alpha
        return adapted_decode(self.params, self.arch, self.grads, alpha, z)


# --------------------------------------------------------------------------------------
# Algorithm 1, lines 2-7, batched
# --------------------------------------------------------------------------------------


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
    decoder_scale: float = 1.0,
    prior_sigma: float | None = None,
) -> LocalLoss:
    """The Local VAE objective of one batch (Algorithm 1, lines 2-7; eqs. 6-8), batched.

    ``anchors`` ``(B, C, H, W)``, ``neighbors`` ``(K, B, C, H, W)``, ``eps_anchor``
    ``(B, latent)`` and ``eps_inner`` ``(K, B, latent)`` (the reparameterisation noise,
    passed in so that formulations can be compared draw for draw). Backpropagating
    ``.loss`` gives the meta-gradient: second order unless ``first_order``. Same numbers as
    ``lvae.objective.local_vae_loss_reference``, including its readings ``decoder_scale``
    (the decoder's step times this) and ``prior_sigma`` (eq. 5's prior kept).
    """
    alpha = check_alpha(alpha)
    check_task_batch(anchors, neighbors)
    g = inner_gradients(params, arch, neighbors, eps_inner, loss, create_graph=not first_order)
    model = AdaptedModel(params, arch, g, alpha,
                         None if decoder_scale == 1.0 else alpha * decoder_scale)
    mu, logvar = model.encode(anchors)
    logits = model.decode(reparameterize(mu, logvar, eps_anchor))
    per_anchor, recon, kl = scaled_neg_elbo(anchors, logits, mu, logvar, loss, arch)
    if prior_sigma is not None:
        _, dec = layer_specs(arch)
        step_sq = (alpha * decoder_scale) ** 2 * task_sq_norms(g, dec)
        per_anchor = per_anchor + adapted_prior(step_sq, prior_sigma, loss.scale(arch))
    return LocalLoss(per_anchor.mean(), g.inner_loss, recon.detach().mean(), kl.detach().mean())
