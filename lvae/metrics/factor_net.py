"""FD-factors: a Frechet distance on features of a small network trained on the factors.

Why it exists: FID needs ImageNet Inception-v3 weights, which cannot be downloaded at run
time here. The offline stand-in keeps FID's recipe (Gaussians fitted to penultimate-layer
features of a classifier, compared with :func:`lvae.metrics.frechet.frechet_distance`) but
swaps the feature extractor for a small CNN trained, on this machine, to classify the
dataset's own ground-truth factors (one softmax head per factor, a few hundred Adam steps).
Its features therefore measure what the factors make visible: object shape, scale, pose,
colours, lighting.

It is reported as "FD-factors", never "FID": its scale is not FID's. The features are
128-d, not 2048-d; their magnitudes come from this network's training, not ImageNet's;
and the network differs per dataset. Values compare models on one dataset with one cached
network (same name, resolution, steps and seed), nothing else.

The trained network is cached per dataset (name, class, factor sizes) and resolution under
``$LVAE_CACHE/fd_factors`` (default ``~/.cache/lvae``), written atomically, so every
evaluation of a dataset uses the same features.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lvae.data.base import GroundTruthData, to_tensor
from lvae.metrics.frechet import frechet_distance_from_features

NAME = "FD-factors"
VERSION = 1  # bump when the architecture or training recipe changes (invalidates the cache)
FEATURE_DIM = 128
DEFAULT_STEPS = 400
DEFAULT_BATCH = 64


def cache_dir() -> Path:
    """``$LVAE_CACHE`` or ``~/.cache/lvae``."""
    return Path(os.environ.get("LVAE_CACHE") or Path.home() / ".cache" / "lvae").expanduser()


class FactorNet(nn.Module):
    """Four stride-2 convolutions, a 128-d feature layer, one linear head per factor."""

    def __init__(self, channels: int, factor_sizes: tuple[int, ...]):
        super().__init__()
        self.factor_sizes = tuple(int(s) for s in factor_sizes)
        self.body = nn.Sequential(
            nn.Conv2d(channels, 32, 4, 2, 1),
            nn.ReLU(),
            nn.Conv2d(32, 32, 4, 2, 1),
            nn.ReLU(),
            nn.Conv2d(32, 64, 4, 2, 1),
            nn.ReLU(),
            nn.Conv2d(64, 64, 4, 2, 1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(4),
            nn.Flatten(),  # (n, 64 * 4 * 4)
            nn.Linear(64 * 16, FEATURE_DIM),
            nn.ReLU(),
        )
        self.heads = nn.Linear(FEATURE_DIM, sum(self.factor_sizes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate-layer features ``(n, 128)`` of ``(n, C, H, W)`` images in [0, 1]."""
        return self.body(x)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """One logits tensor ``(n, size_j)`` per factor."""
        return list(torch.split(self.heads(self.body(x)), self.factor_sizes, dim=1))


def train_factor_net(
    data: GroundTruthData,
    steps: int = DEFAULT_STEPS,
    batch_size: int = DEFAULT_BATCH,
    seed: int = 0,
    lr: float = 1e-3,
) -> tuple[FactorNet, dict]:
    """Train a :class:`FactorNet` on fresh random grid points; returns (net, training info)."""
    rng = np.random.RandomState(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = FactorNet(data.observation_shape[-1], tuple(data.factor_sizes))
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    net.train()
    accuracy = np.zeros(data.num_factors)
    for _ in range(steps):
        factors, images = data.sample(batch_size, rng)
        y = torch.from_numpy(np.asarray(factors, dtype=np.int64))
        logits = net(to_tensor(images))
        loss = sum(F.cross_entropy(lg, y[:, j]) for j, lg in enumerate(logits))
        opt.zero_grad()
        loss.backward()
        opt.step()
        accuracy = np.array(
            [(lg.argmax(1) == y[:, j]).float().mean().item() for j, lg in enumerate(logits)]
        )
    net.eval()
    info = {
        "steps": steps,
        "batch_size": batch_size,
        "seed": seed,
        "lr": lr,
        "last_batch_accuracy": dict(zip(data.factor_names, accuracy.tolist(), strict=True)),
    }
    return net, info


def _cache_path(data: GroundTruthData, steps: int, seed: int, root: Path) -> Path:
    # The class tells a procedural twin from the real files (both are named "shapes3d");
    # the factor sizes tell a scaled-down twin from the full one.
    h, w, c = data.observation_shape
    name = getattr(data, "name", "data")
    sizes = "x".join(str(s) for s in data.factor_sizes)
    key = f"{name}-{type(data).__name__}-{h}x{w}x{c}-f{sizes}-v{VERSION}-steps{steps}-seed{seed}"
    return root / "fd_factors" / f"{key}.pt"


def _atomic_torch_save(obj: object, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_or_train_factor_net(
    data: GroundTruthData,
    steps: int = DEFAULT_STEPS,
    seed: int = 0,
    cache: str | os.PathLike | None = None,
) -> FactorNet:
    """The cached network for ``data`` (name + resolution), training and caching it if absent."""
    path = _cache_path(data, steps, seed, Path(cache) if cache is not None else cache_dir())
    if path.is_file():
        saved = torch.load(path, map_location="cpu", weights_only=True)
        net = FactorNet(int(saved["channels"]), tuple(saved["factor_sizes"]))
        net.load_state_dict(saved["state_dict"])
        return net.eval()
    net, info = train_factor_net(data, steps=steps, seed=seed)
    _atomic_torch_save(
        {
            "state_dict": net.state_dict(),
            "channels": data.observation_shape[-1],
            "factor_sizes": list(data.factor_sizes),
            "info": info,
            "version": VERSION,
        },
        path,
    )
    return net


@torch.no_grad()
def factor_features(net: FactorNet, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """``(n, 128)`` float64 features of uint8 ``(n, H, W, C)`` images."""
    return np.concatenate(
        [
            net.features(to_tensor(images[i : i + batch_size])).double().numpy()
            for i in range(0, len(images), batch_size)
        ]
    )


def fd_factors(
    data: GroundTruthData,
    real_images: np.ndarray,
    generated_images: np.ndarray,
    *,
    steps: int = DEFAULT_STEPS,
    seed: int = 0,
    cache: str | os.PathLike | None = None,
) -> float:
    """FD-factors between two uint8 image sets of ``data``'s format (module docstring)."""
    net = load_or_train_factor_net(data, steps=steps, seed=seed, cache=cache)
    return frechet_distance_from_features(
        factor_features(net, real_images), factor_features(net, generated_images)
    )
