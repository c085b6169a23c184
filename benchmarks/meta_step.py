"""Cost of one second-order meta-step, as a ratio to one vanilla VAE step on the same images.

Every formulation is timed in the same run, interleaved round by round, on B = 25 anchors
with K = 10 neighbours each (275 images; the vanilla step sees the same 275 images), for
the Table 3 network at 64x64 and its 32x32 sibling. Ratios are medians over rounds; the
absolute times on shared machines move by 2x between runs, the ratios much less.

Formulations:
  vanilla      forward + backward of the negative ELBO on all 275 images (the unit)
  loop         per-task Python loop, autograd.grad(create_graph=True) (learn2learn/higher)
  vmap         torch.func.vmap over tasks of a grad-based task loss (functorch MAML example)
  lvae         lvae.batched.local_vae_loss: shared inner pass, grouped weight gradients,
               low-rank linear layers (second order)      <- what training uses
  lvae-fo      the same, first order

Memory: the bytes autograd saves for the backward pass (exact and machine independent on
CPU), plus the CUDA peak when run on a GPU.

Work: the floating-point operations each formulation actually executes, counted with
``torch.utils.flop_counter.FlopCounterMode`` (matmuls and convolutions, forward and every
backward, 2 per multiply-add) over one step, and the achieved GFLOP/s at the median time.
The stock counter's ``convolution_backward`` formula ignores ``groups`` for the weight
gradient (it counts a grouped weight gradient B times over), so it is replaced here by one
that charges each requested gradient the cost of the forward convolution of the same shapes
(:func:`conv_backward_flops`). Elementwise ops are not counted. The FLOP ratio of lvae to
vanilla is the floor a formulation running at vanilla's GFLOP/s would reach.

    python benchmarks/meta_step.py [--rounds 7] [--threads 2] [--res 64 32] [--skip loop vmap]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch.func import grad, vmap
from torch.utils.flop_counter import FlopCounterMode, conv_flop_count

from lvae.batched import local_vae_loss
from lvae.model import VAE, Architecture
from lvae.objective import LossSpec, neg_elbo, vanilla_vae_loss

B, K = 25, 10


def make_problem(res: int, device: torch.device):
    torch.manual_seed(0)
    arch = Architecture(resolution=res)
    model = VAE(arch).to(device)
    params = model.params()
    x = torch.rand(B, 3, res, res, device=device)
    nb = torch.bernoulli(x.expand(K, *x.shape)).contiguous()
    ea = torch.randn(B, 10, device=device)
    ei = torch.randn(K, B, 10, device=device)
    return arch, model, params, x, nb, ea, ei


def formulations(arch, model, params, x, nb, ea, ei, alpha=1.0) -> dict[str, Callable]:
    loss = LossSpec()
    allx = torch.cat([x, nb.reshape(-1, *x.shape[1:])])
    alle = torch.cat([ea, ei.reshape(-1, 10)])
    names = list(params)

    def vanilla():
        vanilla_vae_loss(params, arch, allx, alle, loss).loss.backward()

    def lvae_so():
        local_vae_loss(params, arch, x, nb, ea, ei, alpha, loss).loss.backward()

    def lvae_fo():
        local_vae_loss(params, arch, x, nb, ea, ei, alpha, loss, first_order=True).loss.backward()

    def lvae_prior():  # eq. 5's prior kept (the diagnosis's arm): per-task decoder step norms
        local_vae_loss(params, arch, x, nb, ea, ei, alpha, loss,
                       prior_sigma=0.03).loss.backward()

    def loop():
        total = 0.0
        for i in range(B):
            inner = neg_elbo(params, nb[:, i], ei[:, i], arch, loss).mean()
            gs = torch.autograd.grad(inner, [params[n] for n in names], create_graph=True)
            adapted = {n: params[n] - alpha * g for n, g in zip(names, gs, strict=True)}
            total = total + neg_elbo(adapted, x[i : i + 1], ea[i : i + 1], arch, loss).sum()
        (total / B).backward()

    detached = {n: p.detach() for n, p in params.items()}

    def task_loss(p, nb_i, ei_i, x_i, ea_i):
        def inner(q):
            return neg_elbo(q, nb_i, ei_i, arch, loss).mean()

        g = grad(inner)(p)
        adapted = {n: p[n] - alpha * g[n] for n in p}
        return neg_elbo(adapted, x_i[None], ea_i[None], arch, loss).sum()

    def meta_vmap(p):
        per = vmap(task_loss, in_dims=(None, 1, 1, 0, 0))(p, nb, ei, x, ea)
        return per.mean()

    def vmapped():
        grad(meta_vmap)(detached)

    return {"vanilla": vanilla, "loop": loop, "vmap": vmapped, "lvae": lvae_so,
            "lvae-fo": lvae_fo, "lvae-prior": lvae_prior}


def saved_bytes(fn: Callable) -> int:
    """Bytes of tensors autograd saves for backward during ``fn`` (graph memory)."""
    total = 0

    def pack(t):
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return total


def conv_backward_flops(grad_out_shape, x_shape, w_shape, _bias, _stride, _padding, _dilation,
                        transposed, _output_padding, _groups, output_mask, out_shape=None,
                        **_kwargs) -> int:
    """FLOPs of ``aten.convolution_backward``: the forward convolution's, per gradient asked.

    The input gradient is the adjoint convolution and the weight gradient the correlation of
    input and output gradient; each does as many multiply-adds as the forward convolution.
    ``w_shape`` holds ``in/groups`` (or ``out/groups``), so grouped calls count right.
    """
    forward = conv_flop_count(list(x_shape), list(w_shape), list(grad_out_shape), transposed)
    return forward * (int(output_mask[0]) + int(output_mask[1]))


def count_flops(fn: Callable) -> float:
    """Floating-point operations of one call of ``fn`` (see the module docstring)."""
    mapping = {torch.ops.aten.convolution_backward: conv_backward_flops}
    try:
        with FlopCounterMode(display=False, custom_mapping=mapping) as counter:
            fn()
    except Exception:  # e.g. a functorch transform the counter cannot follow
        return float("nan")
    return float(counter.get_total_flops())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--res", type=int, nargs="+", default=[64, 32])
    ap.add_argument("--skip", nargs="*", default=[], help="formulations to leave out")
    ap.add_argument("--cpu-time", action="store_true",
                    help="time with process CPU time instead of wall clock (steadier on a "
                         "loaded machine; use with --threads 1)")
    args = ap.parse_args()
    clock = time.process_time if args.cpu_time else time.perf_counter
    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    print(f"device={device} threads={torch.get_num_threads()} B={B} K={K} rounds={args.rounds}"
          f" clock={'process CPU time' if args.cpu_time else 'wall'} torch={torch.__version__}")
    for res in args.res:
        problem = make_problem(res, device)
        fns = {n: f for n, f in formulations(*problem).items() if n not in args.skip}
        for f in fns.values():  # warm-up
            f()
        sync()
        times: dict[str, list[float]] = {n: [] for n in fns}
        for _ in range(args.rounds):
            for n, f in fns.items():
                sync()
                t = clock()
                f()
                sync()
                times[n].append(clock() - t)
        unit = statistics.median(times["vanilla"])
        print(f"\n{res}x{res}: vanilla step {unit * 1e3:.1f} ms (median)")
        print(f"  {'formulation':<10} {'ratio':>7} {'min ratio':>9} {'saved MB':>9} "
              f"{'GFLOP':>8} {'GFLOP/s':>8}")
        for n, ts in times.items():
            mb = saved_bytes(fns[n]) / 2**20 if n != "vmap" else float("nan")
            gflop = count_flops(fns[n]) / 1e9
            ratio = statistics.median(ts) / unit
            print(f"  {n:<10} {ratio:7.2f} {min(ts) / min(times['vanilla']):9.2f} {mb:9.1f} "
                  f"{gflop:8.2f} {gflop / statistics.median(ts):8.1f}")
        if device.type == "cuda":
            for n, f in fns.items():
                torch.cuda.reset_peak_memory_stats()
                f()
                sync()
                print(f"  {n:<10} CUDA peak {torch.cuda.max_memory_allocated() / 2**20:.0f} MB")


if __name__ == "__main__":
    main()
