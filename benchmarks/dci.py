"""Benchmark: one model's DCI, both Table 1 conditions, at disentanglement_lib's sizes.

A synthetic stand-in for a trained encoder: 3D Shapes' factor grid (10, 10, 10, 8, 4, 15;
the "image" is the factor tuple) and a 10-d code that is a fixed random linear map of the
factors plus a little noise, so the trees have real work to do. 10,000 train and 5,000 test
points; one set of per-factor GradientBoostingClassifier fits gives DCI w/ and w/o colour.

Target: <= 90 s on 2 cores. Usage::

    .venv/bin/python benchmarks/dci.py [--num-train 10000] [--num-test 5000] [--n-jobs 2]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from lvae.data.base import GroundTruthData
from lvae.data.shapes3d import Shapes3D
from lvae.metrics.dci import dci_from_codes
from lvae.metrics.sampling import sample_codes


class FactorGrid(GroundTruthData):
    """3D Shapes' factors without its images: observation (1, 1, 6) = the factor tuple."""

    name = "shapes3d-factor-grid"
    factor_names = ("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation")
    factor_sizes = (10, 10, 10, 8, 4, 15)
    observation_shape = (1, 1, 6)

    def images(self, indices):
        return self.index_to_factors(indices).astype(np.uint8)[:, None, None, :]


def linear_code(num_codes: int = 10, noise: float = 0.05, seed: int = 0):
    """A representation function: random linear map of the normalised factors + noise."""
    rng = np.random.RandomState(seed)
    mix = rng.randn(6, num_codes)
    sizes = np.array(FactorGrid.factor_sizes, dtype=np.float64)

    def represent(images: np.ndarray) -> np.ndarray:
        f = images.reshape(len(images), -1) / sizes
        return (f @ mix + noise * rng.randn(len(images), num_codes)).astype(np.float32)

    return represent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-train", type=int, default=10_000)
    parser.add_argument("--num-test", type=int, default=5_000)
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--mode", default="parallel")
    args = parser.parse_args()

    # the steps of lvae.evaluation.disentanglement_metrics: draw the codes, then one fit
    start = time.perf_counter()
    data, represent, rs = FactorGrid(), linear_code(), np.random.RandomState(0)
    codes_train, y_train = sample_codes(data, represent, args.num_train, rs)
    codes_test, y_test = sample_codes(data, represent, args.num_test, rs)
    sample_seconds = time.perf_counter() - start
    out = dci_from_codes(codes_train, y_train, codes_test, y_test, data.factor_names,
                         Shapes3D.dci_subsets, mode=args.mode, n_jobs=args.n_jobs)
    total = time.perf_counter() - start
    print(f"DCI benchmark: {args.num_train}/{args.num_test} points, 10-d code, 6 factors")
    print(f"mode={out['mode']} n_jobs={out['n_jobs']} cpu_count={os.cpu_count()}")
    for subset, s in out["scores"].items():
        print(f"  {subset:14s} " + "  ".join(f"{k} {v:.3f}" for k, v in s.items()))
    print(
        f"time: total {total:.1f} s (sampling {sample_seconds:.1f} s, "
        f"fits {out['fit_seconds']:.1f} s); target <= 90 s"
    )
    cpu = out["fit_cpu_seconds"]
    print("CPU seconds per factor fit: " + ", ".join(f"{k} {v:.1f}" for k, v in cpu.items()))
    print(
        f"sum {sum(cpu.values()):.1f} CPU s; on {args.n_jobs} idle cores the fits would take "
        f"~{lpt_makespan(list(cpu.values()), args.n_jobs):.1f} s (longest-first schedule), "
        "the number to compare with the target when other processes share the cores"
    )


def lpt_makespan(durations: list[float], workers: int) -> float:
    """Wall time of jobs started longest first on ``workers`` idle workers (what joblib does
    with the fits sorted by class count)."""
    loads = [0.0] * max(1, workers)
    for d in sorted(durations, reverse=True):
        loads[loads.index(min(loads))] += d
    return max(loads)


if __name__ == "__main__":
    main()
