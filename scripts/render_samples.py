"""Write PNG sample grids of the procedural twins, to look at next to the real data.

    python scripts/render_samples.py [--out build-out/samples] [--scale 3]

For each dataset and resolution (64, 32): ``NAME_RES_sweeps.png`` (one row per factor,
the factor swept over its levels from a fixed random base, at most 16 columns) and
``NAME_RES_random.png`` (a 6x10 grid of random images). Also prints simple statistics
(mean RGB, fraction of pure-white pixels, mean/std) to compare with the real data.
"""

from __future__ import annotations

import argparse
import os

import numpy as np
from PIL import Image

from lvae.data import load_dataset

NAMES = ("shapes3d", "cars3d", "smallnorb")


def _rgb(x: np.ndarray) -> np.ndarray:
    return np.repeat(x, 3, axis=-1) if x.shape[-1] == 1 else x


def grid(rows: list[np.ndarray], pad: int = 1) -> np.ndarray:
    """Rows of images ``(k, H, W, C)`` -> one padded uint8 RGB picture."""
    h, w = rows[0].shape[1:3]
    cols = max(len(r) for r in rows)
    out = np.full((len(rows) * (h + pad) + pad, cols * (w + pad) + pad, 3), 255, np.uint8)
    for i, row in enumerate(rows):
        for j, img in enumerate(_rgb(row)):
            out[pad + i * (h + pad):pad + i * (h + pad) + h,
                pad + j * (w + pad):pad + j * (w + pad) + w] = img
    return out


def save(img: np.ndarray, path: str, scale: int) -> None:
    Image.fromarray(img).resize((img.shape[1] * scale, img.shape[0] * scale),
                                Image.NEAREST).save(path)
    print("wrote", path)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", default="build-out/samples")
    p.add_argument("--scale", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for name in NAMES:
        for res in (64, 32):
            data = load_dataset(name, res)
            rng = np.random.RandomState(args.seed)
            base = data.sample_factors(1, rng)[0]
            rows = []
            for j, size in enumerate(data.factor_sizes):
                levels = np.linspace(0, size - 1, min(size, 16)).round().astype(int)
                f = np.repeat(base[None], len(levels), axis=0)
                f[:, j] = levels
                rows.append(data.images_from_factors(f))
            save(grid(rows), os.path.join(args.out, f"{name}_{res}_sweeps.png"), args.scale)
            rand = data.images(rng.randint(0, len(data), 60))
            save(grid(list(rand.reshape(6, 10, *rand.shape[1:]))),
                 os.path.join(args.out, f"{name}_{res}_random.png"), args.scale)
            if res == 64:
                x = data.images(rng.randint(0, len(data), 500)).astype(np.float64) / 255
                white = (x == 1.0).all(-1).mean()
                print(f"{name}: mean per channel {x.reshape(-1, x.shape[-1]).mean(0).round(3)}, "
                      f"std {x.std():.3f}, pure-white pixels {white:.3f}")


if __name__ == "__main__":
    main()
