"""Cars3D: the real .mat layout decoded exactly, and the twin's look and structure."""

import re

import numpy as np
import pytest
import scipy.io

from lvae.data import load_dataset
from lvae.data.cars3d import Cars3DFiles, Cars3DTwin
from lvae.data.resize import resize_batch


def _write_car(path, seed):
    """A car file in the real layout: 'im' uint8 (128, 128, 3, 24, 4) = [H, W, C, az, el]."""
    rng = np.random.RandomState(seed)
    im = np.full((128, 128, 3, 24, 4), 255, dtype=np.uint8)
    for a in range(24):
        for e in range(4):
            im[40 + e * 5 : 80, 10 + a : 100, :, a, e] = rng.randint(0, 255, 3)
    scipy.io.savemat(path, {"im": im})
    return im


def test_real_files_decode_in_sorted_order_with_factors(tmp_path):
    cars = tmp_path / "data" / "cars"
    cars.mkdir(parents=True)
    im_b = _write_car(cars / "car_002_mesh.mat", 2)  # written first, sorts second
    im_a = _write_car(cars / "car_001_mesh.mat", 1)
    with pytest.raises(ValueError, match="expected 183"):
        Cars3DFiles(tmp_path)
    data = load_dataset("cars3d", 64, path=tmp_path, partial=True)
    assert data.factor_sizes == (4, 24, 2) and len(data) == 192
    f = np.array([[0, 0, 0], [3, 23, 1], [2, 5, 0]])
    got = data.images_from_factors(f)
    for (e, a, o), img in zip(f, got, strict=True):
        src = (im_a, im_b)[o][:, :, :, a, e]
        assert np.array_equal(img, resize_batch(src[None], 64)[0])
    assert load_dataset("cars3d", 32, path=cars, partial=True).images([5]).shape == (1, 32, 32, 3)


FIX = r"python -m lvae\.data download cars3d --to "


def test_real_file_with_wrong_variable_is_rejected_at_load(tmp_path):
    scipy.io.savemat(tmp_path / "car_001_mesh.mat", {"images": np.zeros((2, 2), np.uint8)})
    with pytest.raises(ValueError, match=rf"car_001_mesh.mat: no variable 'im'.*{FIX}"):
        Cars3DFiles(tmp_path, partial=True)
    scipy.io.savemat(tmp_path / "car_001_mesh.mat", {"im": np.zeros((128, 128, 3, 24, 4))})
    with pytest.raises(ValueError, match=r"'im' is double.*expected uint8"):
        Cars3DFiles(tmp_path, partial=True)


@pytest.mark.parametrize("compressed", [False, True])
def test_truncated_car_file_fails_at_load_naming_it(tmp_path, compressed):
    """scipy notices only at the first image access ("could not read bytes", no name)."""
    cars = tmp_path / "data" / "cars"
    cars.mkdir(parents=True)
    im = np.random.RandomState(0).randint(0, 256, (128, 128, 3, 24, 4)).astype(np.uint8)
    for i in (1, 2):
        scipy.io.savemat(cars / f"car_00{i}_mesh.mat", {"im": im}, do_compression=compressed)
    assert len(Cars3DFiles(tmp_path, partial=True)) == 192
    bad = cars / "car_002_mesh.mat"
    blob = bad.read_bytes()
    bad.write_bytes(blob[: len(blob) - 1000])
    want = rf"{re.escape(str(bad))}: truncated .*{FIX}{re.escape(str(tmp_path))}"
    with pytest.raises(ValueError, match=want):
        Cars3DFiles(tmp_path, partial=True)
    bad.write_bytes(b"not a mat file")
    with pytest.raises(ValueError, match=rf"car_002_mesh.mat: .*not a MATLAB v5 file.*{FIX}"):
        Cars3DFiles(tmp_path, partial=True)


def test_missing_car_file_advises_download_not_partial(tmp_path):
    """partial=True would renumber every car after the gap: the fix is to download again."""
    cars = tmp_path / "data" / "cars"
    cars.mkdir(parents=True)
    (cars / "list.txt").write_text("".join(f"car_{i:03d}_mesh\n" for i in range(1, 184)))
    for i in range(1, 184):
        if i != 7:
            (cars / f"car_{i:03d}_mesh.mat").write_bytes(b"")  # count only: never opened
    with pytest.raises(ValueError) as err:
        Cars3DFiles(tmp_path)
    msg = str(err.value)
    assert "found 182 car_*_mesh.mat files" in msg and "missing: car_007_mesh.mat" in msg
    assert f"python -m lvae.data download cars3d --to {tmp_path}`" in msg
    assert "partial=True" not in msg


def test_twin_looks_like_cars_on_white():
    data = Cars3DTwin(64, n_objects=6)
    assert data.factor_sizes == (4, 24, 6) and len(data) == 576
    x = data.images(np.arange(0, 576, 7))
    assert x.shape == (83, 64, 64, 3) and x.dtype == np.uint8
    white = (x == 255).all(-1)
    assert 0.6 < white.mean() < 0.9  # real: ~76% pure white
    assert white[:, :3].all() and white[:, :, :2].all()  # empty border, car centred
    assert np.array_equal(Cars3DTwin(64, n_objects=6).images([100, 7]), data.images([100, 7]))


def test_twin_factors_change_the_car():
    data = Cars3DTwin(32, n_objects=3)
    base = np.array([[1, 3, 0]])
    for j, v in ((0, 3), (1, 9), (2, 2)):
        other = base.copy()
        other[0, j] = v
        assert (data.images_from_factors(base) != data.images_from_factors(other)).sum() > 30
