"""The Local VAE objective against independent references.

The oracle is the plain per-task loop of Algorithm 1 (what learn2learn/higher do), written
here from scratch: for each anchor, ``autograd.grad(create_graph=True)`` of its neighbours'
mean loss, an explicit adapted parameter dict, the anchor's loss under it. The library's own
reading of the paper (``lvae.objective.local_vae_loss_reference``) must equal it, and the
batched formulation (``lvae.batched``, what training calls) must give the same loss and the
same meta-gradient as both, for both decoder likelihoods.
"""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch

from lvae import batched, objective
from lvae.batched import (
    AdaptedModel,
    adapted_decode,
    adapted_encode,
    inner_gradients,
    local_vae_loss,
)
from lvae.model import VAE, Architecture, decode, encode
from lvae.objective import (
    LIKELIHOODS,
    LossSpec,
    inner_step,
    local_objective,
    local_vae_loss_reference,
    neg_elbo,
    neg_elbo_terms,
    vanilla_vae_loss,
)


def loop_oracle(params, arch, anchors, neighbors, eps_a, eps_i, alpha, loss, first_order=False):
    names = list(params)
    total = 0.0
    b = anchors.shape[0]
    for i in range(b):
        inner = neg_elbo(params, neighbors[:, i], eps_i[:, i], arch, loss).mean()  # (1/K) sum
        grads = torch.autograd.grad(inner, [params[n] for n in names],
                                    create_graph=not first_order)
        adapted = {n: params[n] - alpha * g for n, g in zip(names, grads, strict=True)}
        total = total + neg_elbo(adapted, anchors[i : i + 1], eps_a[i : i + 1], arch, loss).sum()
    return total / b


def problem(res, channels=3, b=4, k=3, dtype=torch.float64, seed=0):
    torch.manual_seed(seed)
    arch = Architecture(resolution=res, channels=channels)
    params = VAE(arch).to(dtype).params()
    x = torch.rand(b, channels, res, res, dtype=dtype)
    nb = torch.bernoulli(x.expand(k, *x.shape))
    eps_a = torch.randn(b, arch.latent_dim, dtype=dtype)
    eps_i = torch.randn(k, b, arch.latent_dim, dtype=dtype)
    return arch, params, x, nb, eps_a, eps_i


def rel_err(a, b):
    return max(((x - y).norm() / y.norm().clamp_min(1e-30)).item() for x, y in zip(a, b,
                                                                                   strict=True))


@pytest.mark.parametrize("likelihood", LIKELIHOODS)
@pytest.mark.parametrize("res,channels", [(32, 3), (64, 3), (32, 1)])
@pytest.mark.parametrize("first_order", [False, True])
def test_meta_gradient_matches_per_task_loop(res, channels, first_order, likelihood):
    arch, params, x, nb, ea, ei = problem(res, channels)
    # "sum" reduction with a sizeable alpha makes the second-order terms large.
    loss = LossSpec(likelihood=likelihood, reduction="sum", beta=2.0)
    alpha = 1e-4
    fast = local_vae_loss(params, arch, x, nb, ea, ei, alpha, loss, first_order=first_order)
    ref = loop_oracle(params, arch, x, nb, ea, ei, alpha, loss, first_order=first_order)
    assert torch.allclose(fast.loss, ref, rtol=1e-10)
    g_fast = torch.autograd.grad(fast.loss, list(params.values()))
    g_ref = torch.autograd.grad(ref, list(params.values()))
    assert rel_err(g_fast, g_ref) < 1e-5


@pytest.mark.parametrize("likelihood", LIKELIHOODS)
@pytest.mark.parametrize("first_order", [False, True])
def test_library_reference_is_the_loop_oracle(first_order, likelihood):
    """local_vae_loss_reference (inner_step, global_loss) is the plain loop, to rounding."""
    arch, params, x, nb, ea, ei = problem(32, b=3)
    loss = LossSpec(likelihood=likelihood, reduction="sum", beta=2.0)
    ref = local_vae_loss_reference(params, arch, x, nb, ea, ei, 1e-4, loss,
                                   first_order=first_order)
    oracle = loop_oracle(params, arch, x, nb, ea, ei, 1e-4, loss, first_order=first_order)
    assert torch.allclose(ref.loss, oracle, rtol=1e-12)
    g_ref = torch.autograd.grad(ref.loss, list(params.values()))
    g_oracle = torch.autograd.grad(oracle, list(params.values()))
    assert rel_err(g_ref, g_oracle) < 1e-10


@pytest.mark.parametrize("likelihood", LIKELIHOODS)
def test_fast_path_reports_what_the_reference_reports(likelihood):
    """Every field of LocalLoss, pixel_mean scale (what training uses), float64."""
    arch, params, x, nb, ea, ei = problem(32, b=2)
    loss = LossSpec(likelihood=likelihood, beta=4.0)
    fast = local_vae_loss(params, arch, x, nb, ea, ei, 1.0, loss)
    ref = local_vae_loss_reference(params, arch, x, nb, ea, ei, 1.0, loss)
    for field in ("loss", "inner_loss", "recon", "kl"):
        assert torch.allclose(getattr(fast, field), getattr(ref, field), rtol=1e-10), field
    g_fast = torch.autograd.grad(fast.loss, list(params.values()))
    g_ref = torch.autograd.grad(ref.loss, list(params.values()))
    assert rel_err(g_fast, g_ref) < 1e-8


def test_inner_step_is_pure_and_keeps_the_graph():
    """Eqs. 7-8 as a function: new tensors p - alpha * g, the meta-parameters untouched,
    and differentiable through the gradient when it was taken with create_graph."""
    arch, params, _x, nb, _ea, ei = problem(32, b=1, k=2)
    before = {n: p.detach().clone() for n, p in params.items()}
    task = local_objective(params, nb[:, 0], ei[:, 0], arch, LossSpec(reduction="sum"))
    grads = dict(zip(params, torch.autograd.grad(task, list(params.values()),
                                                 create_graph=True), strict=True))
    adapted = inner_step(params, grads, 0.5)
    assert set(adapted) == set(params)
    for n, p in params.items():
        assert torch.equal(p, before[n])
        assert torch.equal(adapted[n], p - 0.5 * grads[n])
    # second order: d(sum of adapted weights)/d(params) = 1 - alpha * (Hessian term)
    w = "dec.fc0.weight"
    (d,) = torch.autograd.grad(adapted[w].sum(), [params[w]])
    assert (d - 1).abs().max() > 1e-3


def test_reference_at_alpha_zero_is_the_vanilla_vae():
    arch, params, x, nb, ea, ei = problem(32, b=3)
    loss = LossSpec(beta=4.0)
    ref = local_vae_loss_reference(params, arch, x, nb, ea, ei, 0.0, loss)
    vanilla = vanilla_vae_loss(params, arch, x, ea, loss)
    assert torch.allclose(ref.loss, vanilla.loss, rtol=1e-12)
    assert torch.allclose(ref.recon, vanilla.recon, rtol=1e-12)


def test_the_fast_path_depends_on_the_reference_never_the_reverse():
    """lvae.batched builds on lvae.objective; objective imports nothing of batched (the
    import circle of a lazy re-export is gone), so either can be imported first."""
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(objective))
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert "lvae.batched" not in imported and not hasattr(objective, "local_vae_loss")
    code = "import lvae.objective, lvae.batched; import lvae.batched as b; b.local_vae_loss"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_second_order_differs_from_first_order():
    """The oracle test above could pass for a broken second order; this one cannot."""
    arch, params, x, nb, ea, ei = problem(32)
    loss = LossSpec(reduction="sum")
    so = local_vae_loss(params, arch, x, nb, ea, ei, 1e-4, loss).loss
    fo = local_vae_loss(params, arch, x, nb, ea, ei, 1e-4, loss, first_order=True).loss
    assert torch.allclose(so, fo)  # same forward value
    g_so = torch.autograd.grad(so, list(params.values()))
    g_fo = torch.autograd.grad(fo, list(params.values()))
    assert rel_err(g_fo, g_so) > 1e-3


def test_float32_fast_path_matches_oracle_to_1e5():
    arch, params, x, nb, ea, ei = problem(32, dtype=torch.float32, b=5, k=4)
    loss = LossSpec()
    fast = local_vae_loss(params, arch, x, nb, ea, ei, 1.0, loss)
    ref = loop_oracle(params, arch, x, nb, ea, ei, 1.0, loss)
    g_fast = torch.autograd.grad(fast.loss, list(params.values()))
    g_ref = torch.autograd.grad(ref, list(params.values()))
    assert rel_err(g_fast, g_ref) < 1e-5


def test_alpha_zero_is_exactly_the_vanilla_vae():
    """Bit for bit: same loss and same gradients as the vanilla ELBO on the anchors."""
    arch, params, x, nb, ea, ei = problem(32, dtype=torch.float32)
    loss = LossSpec(beta=4.0)
    local = local_vae_loss(params, arch, x, nb, ea, ei, 0.0, loss).loss
    vanilla = vanilla_vae_loss(params, arch, x, ea, loss).loss
    assert torch.equal(local, vanilla)
    g_local = torch.autograd.grad(local, list(params.values()))
    g_van = torch.autograd.grad(vanilla, list(params.values()))
    for a, b in zip(g_local, g_van, strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("likelihood", LIKELIHOODS)
def test_adapted_forward_equals_explicit_adapted_parameters(likelihood):
    """adapted_encode/decode with m samples per task == an explicit per-task param dict."""
    arch, params, x, nb, _ea, ei = problem(32, b=3, k=2)
    loss = LossSpec(likelihood=likelihood)
    alpha = 0.7
    g = inner_gradients(params, arch, nb, ei, loss, create_graph=False)
    m = 4
    z = torch.randn(m * 3, arch.latent_dim, dtype=x.dtype)  # m-major: z[j*B + b]
    logits = adapted_decode(params, arch, g, alpha, z)
    xs = x.repeat(m, 1, 1, 1)
    mu, _ = adapted_encode(params, arch, g, alpha, xs)
    model = AdaptedModel(params, arch, g, alpha)
    assert torch.equal(model.decode(z), logits) and torch.equal(model.encode(xs)[0], mu)
    for b in range(3):
        inner = local_objective(params, nb[:, b], ei[:, b], arch, loss)
        grads = dict(zip(params, torch.autograd.grad(inner, list(params.values())), strict=True))
        adapted = inner_step(params, grads, alpha)
        ref = decode(adapted, z[b::3], arch)
        assert torch.allclose(logits[b::3], ref, atol=1e-10)
        assert torch.allclose(mu[b::3], encode(adapted, xs[b::3], arch)[0], atol=1e-10)


def test_adapted_model_at_alpha_zero_is_the_meta_model_bit_for_bit():
    arch, params, x, nb, _ea, ei = problem(32, dtype=torch.float32)
    g = inner_gradients(params, arch, nb, ei, LossSpec(), create_graph=False)
    model = AdaptedModel(params, arch, g, 0.0)
    z = torch.randn(x.shape[0], arch.latent_dim)
    assert torch.equal(model.encode(x)[0], encode(params, x, arch)[0])
    assert torch.equal(model.decode(z), decode(params, z, arch))


def test_inner_loss_is_mean_of_neighbour_losses():
    arch, params, _x, nb, _ea, ei = problem(32)
    loss = LossSpec()
    g = inner_gradients(params, arch, nb, ei, loss, create_graph=False)
    k, b = nb.shape[:2]
    ref = neg_elbo(params, nb.reshape(k * b, *nb.shape[2:]), ei.reshape(k * b, -1), arch,
                   loss).mean()
    assert torch.allclose(g.inner_loss, ref)


def test_neg_elbo_terms_hand_computed():
    # One pixel, logit 0 (p = 0.5), x = 1: BCE = ln 2. mu = 1, logvar = 0: KL = 0.5.
    x = torch.ones(1, 1, 1, 1)
    recon, kl = neg_elbo_terms(x, torch.zeros(1, 1, 1, 1), torch.ones(1, 1), torch.zeros(1, 1),
                               LossSpec())
    assert math.isclose(recon.item(), math.log(2), rel_tol=1e-6)
    assert math.isclose(kl.item(), 0.5, rel_tol=1e-6)
    # Gaussian decoder, sigma 1: 0.5 (sigmoid(0) - 1)^2 + log sqrt(2 pi).
    recon_g, _ = neg_elbo_terms(x, torch.zeros(1, 1, 1, 1), torch.zeros(1, 1), torch.zeros(1, 1),
                                LossSpec(likelihood="gaussian", gaussian_sigma=1.0))
    assert math.isclose(recon_g.item(), 0.125 + 0.5 * math.log(2 * math.pi), rel_tol=1e-6)


def test_pixel_mean_scales_loss_and_alpha():
    arch = Architecture(resolution=32)
    spec = LossSpec(reduction="pixel_mean")
    assert spec.scale(arch) == 1 / 3072
    assert spec.effective_alpha(1.0, arch) == 1 / 3072
    assert LossSpec(reduction="sum").effective_alpha(1.0, arch) == 1.0


@pytest.mark.parametrize("alpha", [-1.0, float("nan"), "0.5", True, float("inf")])
def test_bad_alpha_is_refused_with_its_name(alpha):
    arch, params, x, nb, ea, ei = problem(32)
    with pytest.raises(ValueError, match="alpha"):
        local_vae_loss(params, arch, x, nb, ea, ei, alpha, LossSpec())


def test_bad_loss_spec_names_field():
    with pytest.raises(ValueError, match="likelihood"):
        LossSpec(likelihood="poisson")
    with pytest.raises(ValueError, match="reduction"):
        LossSpec(reduction="mean")


def loop_oracle_readings(params, arch, anchors, neighbors, eps_a, eps_i, alpha, loss,
                         decoder_scale, prior_sigma):
    """The loop oracle with the paper's open readings written out from scratch: the
    decoder's ("dec.") step times ``decoder_scale`` (Algorithm 1 line 5 without 1/K) and,
    per anchor, + scale * ||theta' - theta||^2 / (2 sigma^2) over the decoder (eq. 5)."""
    names = list(params)
    total = 0.0
    for i in range(anchors.shape[0]):
        inner = neg_elbo(params, neighbors[:, i], eps_i[:, i], arch, loss).mean()
        grads = torch.autograd.grad(inner, [params[n] for n in names], create_graph=True)
        step = {n: alpha * (decoder_scale if n.startswith("dec.") else 1.0) * g
                for n, g in zip(names, grads, strict=True)}
        adapted = {n: params[n] - step[n] for n in names}
        anchor = neg_elbo(adapted, anchors[i : i + 1], eps_a[i : i + 1], arch, loss).sum()
        if prior_sigma is not None:
            sq = sum((step[n] ** 2).sum() for n in names if n.startswith("dec."))
            anchor = anchor + loss.scale(arch) * sq / (2 * prior_sigma**2)
        total = total + anchor
    return total / anchors.shape[0]


@pytest.mark.parametrize("decoder_scale,prior_sigma", [(3.0, None), (1.0, 0.05), (3.0, 0.2)])
def test_open_readings_match_the_loop_oracle(decoder_scale, prior_sigma):
    """Algorithm 1 literal (no 1/K on theta's step) and eq. 5's prior: the batched path and
    the library's reference equal an oracle written here, loss and meta-gradient."""
    arch, params, x, nb, ea, ei = problem(32, b=3)
    loss = LossSpec(reduction="pixel_mean")
    oracle = loop_oracle_readings(params, arch, x, nb, ea, ei, 1.0, loss, decoder_scale,
                                  prior_sigma)
    g_oracle = torch.autograd.grad(oracle, list(params.values()))
    for fn in (local_vae_loss, local_vae_loss_reference):
        out = fn(params, arch, x, nb, ea, ei, 1.0, loss, decoder_scale=decoder_scale,
                 prior_sigma=prior_sigma)
        assert torch.allclose(out.loss, oracle, rtol=1e-10), fn.__name__
        g = torch.autograd.grad(out.loss, list(params.values()))
        assert rel_err(g, g_oracle) < 1e-8, fn.__name__
    plain = local_vae_loss(params, arch, x, nb, ea, ei, 1.0, loss)
    assert not torch.allclose(plain.loss, oracle)  # the readings change the objective


def test_task_sq_norms_is_the_materialised_gradient_norm():
    """batched.task_sq_norms over the decoder equals ||grad||^2 of each task's own loss."""
    arch, params, _x, nb, _ea, ei = problem(32, b=3)
    loss = LossSpec()
    g = inner_gradients(params, arch, nb, ei, loss, create_graph=False)
    from lvae.model import layer_specs

    got = batched.task_sq_norms(g, layer_specs(arch)[1])
    for i in range(3):
        inner = neg_elbo(params, nb[:, i], ei[:, i], arch, loss).mean()
        dec = [n for n in params if n.startswith("dec.")]
        grads = torch.autograd.grad(inner, [params[n] for n in dec])
        want = sum((t**2).sum() for t in grads)
        assert torch.allclose(got[i], want, rtol=1e-10)


def test_adapted_prior_hand_computed():
    """||step||^2 = 8, sigma 2, scale 1/4: 8 / (2 * 4) / 4 = 0.25."""
    assert objective.adapted_prior(torch.tensor([8.0]), 2.0, 0.25).item() == pytest.approx(0.25)
