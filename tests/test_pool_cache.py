"""The render cache (lvae.data.render_cache): a twin's pool and DCI draws kept on disk.

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
from lvae.metrics.sampling import sample_factors_and_images
from lvae.pool import ImagePool, split_pool
from lvae.training import train


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh cache folder for this test (never the user's cache home)."""
    folder = tmp_path / "render-cache"
    monkeypatch.setenv(rc.CACHE_ENV, str(folder))
    return folder


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
    monkeypatch.setenv(rc.CACHE_ENV, str(tmp_path / "here"))
    assert rc.cache_dir() == tmp_path / "here"
    for off in ("", "off", "0"):
        monkeypatch.setenv(rc.CACHE_ENV, off)
        assert rc.cache_dir() is None
    monkeypatch.delenv(rc.CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert rc.cache_dir() == tmp_path / "xdg" / "lvae" / "renders"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert rc.cache_dir() == tmp_path / "home" / ".cache" / "lvae" / "renders"


def test_switched_off_or_opted_out_nothing_is_written(tmp_path: Path, monkeypatch):
    monkeypatch.setenv(rc.CACHE_ENV, "off")
    idx = np.arange(30)
    assert ImagePool(Shapes3DTwin(32), idx).uint8(idx).tobytes() == \
        Shapes3DTwin(32).images(idx).tobytes()
    monkeypatch.setenv(rc.CACHE_ENV, str(tmp_path / "c"))
    ImagePool(Shapes3DTwin(32), idx, disk_cache=False)
    assert not (tmp_path / "c").exists()


def test_an_unwritable_cache_costs_a_warning_not_the_run(tmp_path: Path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv(rc.CACHE_ENV, str(blocker / "cache"))
    idx = np.arange(30)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pool = ImagePool(Shapes3DTwin(32), idx)
    assert pool.uint8(idx).tobytes() == Shapes3DTwin(32).images(idx).tobytes()
    assert any("render cache" in str(w.message) for w in caught)


def test_a_cached_draw_is_the_draw_and_leaves_the_generator_where_it_would(cache: Path):
    """cached_draw replays sample_factors_and_images: same factors and images, and the
    RandomState continues with the same numbers, cold (writing) and warm (reading)."""
    def reference():
        rs = np.random.RandomState(0)
        f, x = sample_factors_and_images(small_carsnorb().parts["smallnorb"], 37, rs)
        return f, x, rs.randint(10**9, size=5)

    f0, x0, after0 = reference()
    for round_ in ("cold", "warm"):
        part = small_carsnorb().parts["smallnorb"]
        if round_ == "warm":
            forbid_drawing(part)
        rs = np.random.RandomState(0)
        f, x = rc.cached_draw(part, 37, rs, sample_factors_and_images)
        assert f.tobytes() == f0.tobytes() and x.tobytes() == x0.tobytes(), round_
        assert rs.randint(10**9, size=5).tolist() == after0.tolist(), round_
    # another generator state is another entry
    rs = np.random.RandomState(1)
    f1, _ = rc.cached_draw(small_carsnorb().parts["smallnorb"], 37, rs,
                           sample_factors_and_images)
    assert f1.tobytes() != f0.tobytes() and len(list(cache.glob("draw-*.npz"))) == 2


def _log(run_dir: Path) -> list[dict]:
    rows = [json.loads(ln) for ln in (run_dir / "log.jsonl").read_text().splitlines() if ln]
    return [{k: v for k, v in r.items() if k != "wall_time_s"} for r in rows]


def test_a_run_logs_the_same_with_and_without_the_cache(tmp_path: Path, monkeypatch,
                                                        one_torch_thread):
    config = TrainConfig(dataset="shapes3d", resolution=32, pool_size=40, heldout_size=10,
                         steps=3, batch_size=4, k=2, alpha=1.0, log_every=1, seed=1)
    runs = {}
    for name, env in (("off", "off"), ("cold", str(tmp_path / "c")),
                      ("warm", str(tmp_path / "c"))):
        monkeypatch.setenv(rc.CACHE_ENV, env)
        train(config, tmp_path / name, progress=False)
        runs[name] = tmp_path / name
    assert list((tmp_path / "c").glob("pool-*.npz"))  # the cold run wrote, the warm one read
    assert _log(runs["off"]) == _log(runs["cold"]) == _log(runs["warm"])
    params = [torch.load(r / "checkpoint.pt", weights_only=False)["model"] for r in runs.values()]
    for other in params[1:]:
        assert all(torch.equal(params[0][k], other[k]) for k in params[0])
