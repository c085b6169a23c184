"""How fast and how big the 3D Shapes twin is: batch composition, memory, h5 export.

    python benchmarks/data_twin.py                 # batch + memory + export of 4,800 images
    python benchmarks/data_twin.py --full-export   # the real 480,000-image file (~6 GB)
    python benchmarks/data_twin.py --skip-export

Targets: a random batch of 256 images <= 15 ms on 2 cores, < 1 GB resident, full
export <= 10 min. The subset export is extrapolated linearly to the full grid and
labelled as such.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time

import numpy as np

from lvae.data.shapes3d import NUM_IMAGES, Shapes3DTwin


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--resolution", type=int, default=64)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--repeats", type=int, default=50)
    p.add_argument("--skip-export", action="store_true")
    p.add_argument("--full-export", action="store_true")
    p.add_argument("--export-images", type=int, default=4800)
    args = p.parse_args()

    t0 = time.perf_counter()
    twin = Shapes3DTwin(args.resolution)
    twin.render_all()
    print(f"render 480 geometry configs: {time.perf_counter() - t0:.2f} s")
    rng = np.random.RandomState(0)
    for _ in range(5):  # warm-up
        twin.images(rng.randint(0, NUM_IMAGES, args.batch))
    times = []
    for _ in range(args.repeats):
        idx = rng.randint(0, NUM_IMAGES, args.batch)
        t = time.perf_counter()
        twin.images(idx)
        times.append(time.perf_counter() - t)
    ms = np.array(times) * 1e3
    print(f"random batch of {args.batch} at {args.resolution}px: median {np.median(ms):.1f} ms "
          f"(p90 {np.percentile(ms, 90):.1f} ms, target <= 15 ms)")
    print(f"peak resident memory: {peak_rss_mb():.0f} MB (target < 1024 MB)")
    if args.skip_export or args.resolution != 64:
        return
    n = NUM_IMAGES if args.full_export else args.export_images
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "3dshapes.h5")
        t = time.perf_counter()
        twin.export_h5(path, num_images=n)
        dt = time.perf_counter() - t
        size = os.path.getsize(path) / 1e6
    if n == NUM_IMAGES:
        print(f"full export of {n} images: {dt / 60:.1f} min ({size:.0f} MB), target <= 10 min")
    else:
        print(f"export of {n} images: {dt:.2f} s ({size:.0f} MB); EXTRAPOLATED to the full "
              f"grid: {dt * NUM_IMAGES / n / 60:.1f} min (target <= 10 min)")


if __name__ == "__main__":
    main()
