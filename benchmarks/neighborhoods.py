"""What a held-out adaptation pays for Table 5's pixel-space neighbourhood (input_l2).

A milestone evaluation (readout, pictures, held-out negative ELBO) and Figure 3 adapt the
model on held-out references, whose neighbours come from a search of the pool's index
(``neighbors_of``). Building the pool's own kNN graph is needed only for pool anchors
(training, adapted codes). Timed in one run, interleaved round by round, on the study's
pool (20,000 images of the 3D Shapes twin at 32x32, one thread by default):

  held-out   setup + neighbors_of(16 references): what a held-out adaptation pays now
  graph      setup + the pool graph + neighbors_of: what every setup paid before the
             graph was built on first use (a milestone evaluation sets up about five)

    python benchmarks/neighborhoods.py [--pool 20000] [--res 32] [--rounds 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from lvae.data.shapes3d import NUM_IMAGES, Shapes3DTwin
from lvae.neighborhoods import make_neighborhood
from lvae.pool import ImagePool


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--pool", type=int, default=20_000)
    p.add_argument("--res", type=int, default=32)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    try:
        import faiss
        faiss.omp_set_num_threads(args.threads)
    except AttributeError:
        pass
    rs = np.random.RandomState(0)
    idx = rs.choice(NUM_IMAGES, args.pool + 16, replace=False)
    data = Shapes3DTwin(args.res)
    pool = ImagePool(data, idx[: args.pool], disk_cache=False)
    pool.flat_pixels()  # render once, outside the timings
    held = torch.from_numpy(data.images(idx[args.pool:])).permute(0, 3, 1, 2).float() / 255

    def held_out() -> None:
        nbhd = make_neighborhood("input_l2", args.k)
        nbhd.setup(pool)
        nbhd.neighbors_of(held, torch.Generator())

    def with_graph() -> None:
        nbhd = make_neighborhood("input_l2", args.k)
        nbhd.setup(pool)
        nbhd.pool_graph()
        nbhd.neighbors_of(held, torch.Generator())

    times: dict[str, list[float]] = {"held-out": [], "graph": []}
    for _ in range(args.rounds):
        for name, fn in (("held-out", held_out), ("graph", with_graph)):
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"pool {args.pool} images at {args.res}x{args.res}, K = {args.k}, "
          f"{args.threads} thread(s), median of {args.rounds} rounds")
    for name, t in med.items():
        print(f"  {name:9s} {t:7.2f} s   (min {min(times[name]):.2f}, max {max(times[name]):.2f})")
    print(f"ratio graph / held-out: {med['graph'] / med['held-out']:.1f}x "
          "(what each held-out setup saves)")


if __name__ == "__main__":
    main()
