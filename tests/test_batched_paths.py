"""Every code path of ``lvae.batched``'s fast meta-step against the reference.

``lvae.batched`` picks, per layer, between implementations that compute the same numbers
(e.g. the backward of the per-task weight gradients as one grouped convolution or as a loop
over tasks, chosen by map size). The problems of ``tests/test_objective.py`` are small and
exercise only the branch the thresholds pick for them; here each switch is forced to each
side and the loss and meta-gradient are held to ``local_vae_loss_reference`` (the tested
reading of Algorithm 1) at both resolutions, second order, float64.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from lvae import batched
from lvae.model import VAE, Architecture
from lvae.objective import LossSpec, local_vae_loss_reference


def _problem(res: int, b: int = 3, k: int = 2, seed: int = 0):
    torch.manual_seed(seed)
    arch = Architecture(resolution=res)
    params = VAE(arch).double().params()
    x = torch.rand(b, 3, res, res, dtype=torch.float64)
    nb = torch.bernoulli(x.expand(k, *x.shape))
    ea = torch.randn(b, arch.latent_dim, dtype=torch.float64)
    ei = torch.randn(k, b, arch.latent_dim, dtype=torch.float64)
    return arch, params, x, nb, ea, ei


def _rel_err(a, b) -> float:
    return max(((x - y).norm() / y.norm().clamp_min(1e-30)).item()
               for x, y in zip(a, b, strict=True))


# 0: every per-task convolution of the backward runs as a loop over tasks; huge: none does.
@pytest.mark.parametrize("loop_min_side", [0, 10**9], ids=["loop", "grouped"])
@pytest.mark.parametrize("res", [32, 64])
def test_weight_grad_backward_branches_match_reference(monkeypatch, res, loop_min_side):
    monkeypatch.setattr(batched, "LOOP_MIN_SIDE", loop_min_side)
    arch, params, x, nb, ea, ei = _problem(res)
    loss = LossSpec(reduction="sum", beta=2.0)  # large second-order terms (as test_objective)
    alpha = 1e-4
    fast = batched.local_vae_loss(params, arch, x, nb, ea, ei, alpha, loss)
    ref = local_vae_loss_reference(params, arch, x, nb, ea, ei, alpha, loss)
    assert torch.allclose(fast.loss, ref.loss, rtol=1e-10)
    g_fast = torch.autograd.grad(fast.loss, list(params.values()))
    g_ref = torch.autograd.grad(ref.loss, list(params.values()))
    assert _rel_err(g_fast, g_ref) < 1e-8


def test_weight_grad_backward_branches_agree_with_each_other(monkeypatch):
    """The two branches differ only in how the same convolutions are batched."""
    arch, params, x, nb, ea, ei = _problem(64, b=2)
    grads = []
    for side in (0, 10**9):
        monkeypatch.setattr(batched, "LOOP_MIN_SIDE", side)
        out = batched.local_vae_loss(params, arch, x, nb, ea, ei, 1.0, LossSpec()).loss
        grads.append(torch.autograd.grad(out, list(params.values())))
    assert _rel_err(grads[0], grads[1]) < 1e-12


@pytest.mark.parametrize("setting,expected", [(None, sys.platform.startswith("linux")),
                                              ("0", False)])
def test_malloc_retention_is_set_on_import_unless_switched_off(setting, expected):
    """Import-time allocator setting (lvae.batched._retain_freed_memory), its opt-out."""
    env = {k: v for k, v in os.environ.items() if k != "LVAE_MALLOC_RETAIN"}
    if setting is not None:
        env["LVAE_MALLOC_RETAIN"] = setting
    code = "import lvae.batched as b; print(b.MALLOC_RETAINED)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == str(expected)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("with_bias", [True, False])
def test_thin_transposed_conv_is_conv_transpose2d(channels, with_bias):
    """The image-side transposed conv by matmul + col2im (_ThinConvTranspose): values,
    gradients and second derivatives against torch's conv_transpose2d."""
    torch.manual_seed(0)
    h = torch.randn(2, 5, 4, 4, dtype=torch.float64, requires_grad=True)
    w = torch.randn(5, channels, 4, 4, dtype=torch.float64, requires_grad=True)
    b = torch.randn(channels, dtype=torch.float64, requires_grad=True) if with_bias else None
    ref = torch.nn.functional.conv_transpose2d(h, w, b, 2, 1)
    assert torch.allclose(batched._ThinConvTranspose.apply(h, w, b), ref, rtol=1e-12, atol=1e-12)
    inputs = (h, w, b) if with_bias else (h, w)

    def thin(*args):
        return batched._ThinConvTranspose.apply(*args) if with_bias else \
            batched._ThinConvTranspose.apply(*args, None)

    assert torch.autograd.gradcheck(thin, inputs)
    assert torch.autograd.gradgradcheck(thin, inputs)


def test_thin_conv_adjoint_is_conv2d():
    """The input gradient of the thin transposed conv (_ThinConvAdjoint) is conv2d, with
    conv2d's gradients and second derivatives."""
    torch.manual_seed(1)
    d = torch.randn(2, 3, 8, 8, dtype=torch.float64, requires_grad=True)
    w = torch.randn(5, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    ref = torch.nn.functional.conv2d(d, w, None, 2, 1)
    assert torch.allclose(batched._ThinConvAdjoint.apply(d, w), ref, rtol=1e-12, atol=1e-12)
    assert torch.autograd.gradcheck(batched._ThinConvAdjoint.apply, (d, w))
    assert torch.autograd.gradgradcheck(batched._ThinConvAdjoint.apply, (d, w))


def test_inner_pass_takes_the_thin_path_only_for_the_image_layer():
    arch = Architecture(resolution=32)
    thin = [layer.name for layer in batched.layer_specs(arch)[1] if batched._is_thin_deconv(layer)]
    assert thin == ["dec.deconv2"]


@pytest.mark.parametrize("side", [4, 8])
def test_strided_im2col_is_unfold_and_fold_is_its_adjoint(side):
    """_Unfold (one strided copy) equals F.unfold bit for bit; _Unfold/_Fold are each
    other's backward, checked to second order."""
    torch.manual_seed(2)
    t = torch.randn(3, 2, side, side, dtype=torch.float64, requires_grad=True)
    ref = torch.nn.functional.unfold(t, 4, padding=1, stride=2)
    assert torch.equal(batched._Unfold.apply(t), ref)
    cols = torch.randn(ref.shape, dtype=torch.float64, requires_grad=True)
    assert torch.equal(batched._Fold.apply(cols, side),
                       torch.nn.functional.fold(cols, (side, side), 4, padding=1, stride=2))
    assert torch.autograd.gradcheck(batched._Unfold.apply, (t,))
    assert torch.autograd.gradgradcheck(batched._Unfold.apply, (t,))
    assert torch.autograd.gradcheck(lambda c: batched._Fold.apply(c, side), (cols,))
    assert torch.autograd.gradgradcheck(lambda c: batched._Fold.apply(c, side), (cols,))
