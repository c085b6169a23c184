"""The render cache (lvae.data.render_cache): a twin's pool kept on disk.

Every check compares against images drawn afresh by a dataset object that never saw the
cache, so a cache that returned wrong, stale or partial images would fail here.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from lvae.config import TrainConfig
from lvae.data import load_dataset
from lvae.data import render_cache as rc
from lvae.data.cars3d import Cars3DTwin
from lvae.data.carsnorb import CarsNORB
from lvae.data.shapes3d import Shapes3DTwin
from lvae.data.smallnorb import SmallNORBTwin
from lvae.pool import ImagePool, split_pool
from lvae.training import train


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh cache folder for this test (never the user's cache home)."""
    monkeypatch.setenv(rc.CACHE_ENV, str(tmp_path / "lvae-cache"))
    monkeypatch.delenv(rc.SWITCH_ENV, raising=False)
    return tmp_path / "lvae-cache" / "renders"


def small_carsnorb() -> CarsNORB:
    return CarsNORB(Cars3DTwin(32, n_objects=2), SmallNORBTwin(32, n_instances=1))


def forbid_drawing(dataset) -> None:
    """Make any attempt to draw an image fail: a hit must not draw."""
    def boom(*_a, **_k):
        raise AssertionError("drew an image although the cache holds it")

    dataset.images = boom


@pytest.mark.parametrize("make", [lambda: Shapes3DTwin(32), small_carsnorb])
def test_a_pool_read_back_is_the_pool_drawn_afresh(cache: Path, make):
    idx, _ = split_pool(len(make()), 40, 10, seed=3)
    fresh = make().images(idx)  # no cache involved
    first = ImagePool(make(), idx)  # draws, then writes the entry
    assert [p.name.split("-")[0] for p in cache.iterdir()] == ["pool"]
    again_data = make()
    forbid_drawing(again_data)
    second = ImagePool(again_data, idx)  # reads it
    for pool in (first, second):
        assert pool.uint8(np.arange(len(idx))).tobytes() == fresh.tobytes()
        assert pool.uint8(np.arange(len(idx))).shape == fresh.shape


def test_the_key_holds_the_exact_indices_resolution_and_options(cache: Path):
    data = Shapes3DTwin(32)
    a = np.arange(0, 400, 10)
    ImagePool(data, a)
    ImagePool(data, a[::-1].copy())  # same images, other order: another entry
    ImagePool(Shapes3DTwin(64), a)  # other resolution
    ImagePool(small_carsnorb(), np.arange(5))
    ImagePool(CarsNORB(Cars3DTwin(32, n_objects=3), SmallNORBTwin(32, n_instances=1)),
              np.arange(5))  # other number of cars: other images at the same indices
    assert len(list(cache.glob("pool-*.npz"))) == 5
    reversed_pool = ImagePool(Shapes3DTwin(32), a[::-1].copy())
    assert reversed_pool.uint8(np.arange(len(a))).tobytes() == \
        Shapes3DTwin(32).images(a[::-1]).tobytes()


def test_a_damaged_or_foreign_entry_is_recomputed_never_trusted(cache: Path):
    idx = np.arange(0, 480, 12)
    fresh = Shapes3DTwin(32).images(idx)
    ImagePool(Shapes3DTwin(32), idx)
    [entry] = cache.glob("pool-*.npz")
    ImagePool(Shapes3DTwin(32), idx + 1)
    [foreign] = [p for p in cache.glob("pool-*.npz") if p != entry]

    def read_back() -> bytes:
        return ImagePool(Shapes3DTwin(32), idx).uint8(np.arange(len(idx))).tobytes()

    entry.write_bytes(entry.read_bytes()[:200])  # truncated
    assert read_back() == fresh.tobytes()
    with np.load(entry) as z:  # written anew, whole
        assert z["images"].tobytes() == fresh.tobytes()
    entry.write_bytes(foreign.read_bytes())  # another key's file under this name
    assert read_back() == fresh.tobytes()
    entry.write_bytes(b"not a zip file at all")
    assert read_back() == fresh.tobytes()


def test_an_entry_of_another_renderer_version_is_not_used(cache: Path, monkeypatch):
    idx = np.arange(0, 480, 24)
    ImagePool(Shapes3DTwin(32), idx)
    # the same file, stored as if it were the current version's, but holding wrong images:
    [entry] = cache.glob("pool-*.npz")
    with np.load(entry) as z:
        key = json.loads(str(z["__key__"]))
        arrays = {n: z[n] for n in z.files if n != "__key__"}
    arrays["images"] = np.zeros_like(arrays["images"])
    rc.save_entry("pool", key, arrays, cache)
    assert not ImagePool(Shapes3DTwin(32), idx).uint8(np.arange(len(idx))).any()  # trusted
    monkeypatch.setattr(rc, "renderer_version", lambda: "another-renderer")
    assert ImagePool(Shapes3DTwin(32), idx).uint8(np.arange(len(idx))).tobytes() == \
        Shapes3DTwin(32).images(idx).tobytes()


def test_renderer_version_follows_the_data_package_source():
    v = rc.renderer_version()
    assert len(v) == 32 and v == rc.renderer_version()
    rc.renderer_version.cache_clear()
    try:
        assert rc.renderer_version() == v  # deterministic
    finally:
        rc.renderer_version.cache_clear()


def test_only_procedural_twins_are_cached(cache: Path, blobs):
    ImagePool(blobs, np.arange(20))  # a test dataset: its images are not lvae's to key

    class Redrawn(Shapes3DTwin):  # a subclass may draw other images under the same options
        pass

    ImagePool(Redrawn(32), np.arange(20))
    assert rc.twin_identity(blobs) is None and rc.twin_identity(Redrawn(32)) is None
    assert rc.twin_identity(load_dataset("carsnorb", 32)) is not None
    assert not cache.exists() or not list(cache.iterdir())


def test_cache_folder_follows_the_environment(tmp_path: Path, monkeypatch):
    monkeypatch.delenv(rc.SWITCH_ENV, raising=False)
    monkeypatch.setenv(rc.CACHE_ENV, str(tmp_path / "here"))
    assert rc.cache_dir() == tmp_path / "here" / "renders"
    monkeypatch.delenv(rc.CACHE_ENV)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert rc.cache_dir() == tmp_path / "home" / ".cache" / "lvae" / "renders"
    for off in ("off", "0", "OFF"):
        monkeypatch.setenv(rc.SWITCH_ENV, off)
        assert rc.cache_dir() is None


def test_switched_off_or_opted_out_nothing_is_written(cache: Path, monkeypatch):
    idx = np.arange(30)
    ImagePool(Shapes3DTwin(32), idx, disk_cache=False)
    assert not cache.exists()
    monkeypatch.setenv(rc.SWITCH_ENV, "off")
    assert ImagePool(Shapes3DTwin(32), idx).uint8(idx).tobytes() == \
        Shapes3DTwin(32).images(idx).tobytes()
    assert not cache.exists()


def test_an_unwritable_cache_costs_a_warning_not_the_run(tmp_path: Path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv(rc.CACHE_ENV, str(blocker / "cache"))
    monkeypatch.delenv(rc.SWITCH_ENV, raising=False)
    idx = np.arange(30)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pool = ImagePool(Shapes3DTwin(32), idx)
    assert pool.uint8(idx).tobytes() == Shapes3DTwin(32).images(idx).tobytes()
    assert any("render cache" in str(w.message) for w in caught)


def _no_drawing(*_a, **_k):
    raise AssertionError("drew an image although the cache holds it")


def _log(run_dir: Path) -> list[dict]:
    rows = [json.loads(ln) for ln in (run_dir / "log.jsonl").read_text().splitlines() if ln]
    return [{k: v for k, v in r.items() if k != "wall_time_s"} for r in rows]


def test_a_run_logs_the_same_with_and_without_the_cache(tmp_path: Path, monkeypatch,
                                                        one_torch_thread):
    config = TrainConfig(dataset="shapes3d", resolution=32, pool_size=40, heldout_size=10,
                         steps=3, batch_size=4, k=2, alpha=1.0, log_every=1, seed=1)
    runs = {}
    monkeypatch.setenv(rc.CACHE_ENV, str(tmp_path / "c"))
    for name, switch in (("off", "off"), ("cold", "on"), ("warm", "on")):
        monkeypatch.setenv(rc.SWITCH_ENV, switch)
        if name == "warm":  # the warm run must read: drawing a twin image now fails
            monkeypatch.setattr(Shapes3DTwin, "images", _no_drawing)
        train(config, tmp_path / name, progress=False)
        runs[name] = tmp_path / name
    assert list((tmp_path / "c" / "renders").glob("pool-*.npz"))
    assert _log(runs["off"]) == _log(runs["cold"]) == _log(runs["warm"])
    params = [torch.load(r / "checkpoint.pt", weights_only=False)["model"] for r in runs.values()]
    for other in params[1:]:
        assert all(torch.equal(params[0][k], other[k]) for k in params[0])
