"""3D Shapes twin: what each factor may change, determinism, and the h5 file round trip."""

import re

import h5py
import numpy as np
import pytest

from lvae.data import load_dataset
from lvae.data.shapes3d import Shapes3DFile, Shapes3DTwin, grid_labels

SKY = (153, 226, 249)


@pytest.fixture(scope="module")
def twin64():
    return Shapes3DTwin(64)


def _changed(data, base, factor, value):
    other = base.copy()
    other[:, factor] = value
    a, b = data.images_from_factors(base), data.images_from_factors(other)
    return (a != b).any(axis=-1)  # (n, H, W) pixels that changed


def _bases(n=6, seed=0):
    f = Shapes3DTwin(32).sample_factors(n, np.random.RandomState(seed))
    f[:, :3] = np.array([0, 3, 6])  # distinct floor / wall / object hues
    return f


def test_images_shape_dtype_and_determinism(twin64):
    idx = np.random.RandomState(0).randint(0, len(twin64), 16)
    x = twin64.images(idx)
    assert x.shape == (16, 64, 64, 3) and x.dtype == np.uint8
    assert np.array_equal(x, Shapes3DTwin(64).images(idx))  # a fresh twin draws the same
    assert np.array_equal(twin64.images(idx[::-1]), x[::-1])
    assert Shapes3DTwin(32).images(idx).shape == (16, 32, 32, 3)


def test_each_hue_recolours_only_its_own_region(twin64):
    base = _bases()
    floor = _changed(twin64, base, 0, 8)
    wall = _changed(twin64, base, 1, 9)
    obj = _changed(twin64, base, 2, 1)
    for mask in (floor, wall, obj):
        assert mask.any(axis=(1, 2)).all()
    assert not (floor & obj).any() and not (floor & wall).any() and not (wall & obj).any()
    # sky on top: never recoloured, always the real sky colour
    top = twin64.images_from_factors(base)[:, :8]
    assert (top == SKY).all()
    assert not (floor | wall | obj)[:, :8].any()
    # the floor is the bottom of the image, the wall sits above it
    rows = np.arange(64)[None, :, None]
    assert np.where(floor, rows, 64).min() > np.where(wall, rows, -1).max() - 15
    assert floor[:, -1].all()  # the bottom row is floor (the object never reaches it)


def test_geometry_factors_change_shape_not_colours(twin64):
    base = _bases(4, seed=1)
    base[:, 3:] = [3, 0, 7]  # mid scale, cube, orientation 0 deg
    obj_pixels = _changed(twin64, base, 2, 1).sum()
    bigger = base.copy()
    bigger[:, 3] = 7
    assert _changed(twin64, bigger, 2, 1).sum() > 1.4 * obj_pixels
    # orientation moves the room corners: the wall region changes
    turned = base.copy()
    turned[:, 5] = 0
    wall0 = _changed(twin64, base, 1, 9)
    wall1 = _changed(twin64, turned, 1, 9)
    assert (wall0 != wall1).any()
    # different shapes give different images (cube and cylinder differ mostly in shading)
    shapes = np.repeat(base[:1], 4, axis=0)
    shapes[:, 4] = np.arange(4)
    x = twin64.images_from_factors(shapes).astype(int)
    assert all(
        (np.abs(x[i] - x[j]).sum(-1) > 30).sum() > 20 for i in range(4) for j in range(i)
    )


def test_object_size_and_position_like_the_real_images(twin64):
    f = np.array([[0, 3, 6, s, sh, 7] for s in (0, 7) for sh in range(4)])
    obj = _changed(twin64, f, 2, 1)
    for m in obj:
        cols = np.flatnonzero(m.any(axis=0))
        rows = np.flatnonzero(m.any(axis=1))
        assert 10 <= cols.size <= 36 and 12 <= rows.size <= 48
        assert abs(cols.mean() - 31.5) < 2 and 48 <= rows.max() <= 60


def test_export_and_read_back_identically(tmp_path):
    twin = Shapes3DTwin(64)
    path = tmp_path / "3dshapes.h5"
    twin.export_h5(path, num_images=1000, batch=300)
    with h5py.File(path) as f:
        assert f["images"].shape == (1000, 64, 64, 3) and f["images"].dtype == np.uint8
        assert f["labels"].dtype == np.float64
        assert np.array_equal(f["labels"][:], grid_labels()[:1000])
    real = Shapes3DFile(path, partial=True)
    idx = np.array([999, 3, 500, 3, 0])  # unsorted, repeated: h5py needs sorted unique
    assert np.array_equal(real.images(idx), twin.images(idx))
    assert len(real) == 1000
    small = load_dataset("shapes3d", 32, path=path, partial=True)
    assert small.images(idx).shape == (5, 32, 32, 3)


def _write(path, images_shape, labels=None, images_dtype=np.uint8):
    with h5py.File(path, "w") as f:
        f.create_dataset("images", shape=images_shape, dtype=images_dtype)
        if labels is not None:
            f.create_dataset("labels", data=labels)


def test_wrong_files_are_rejected_with_what_was_expected(tmp_path):
    path = tmp_path / "3dshapes.h5"
    _write(path, (10, 64, 64, 3), grid_labels()[:10])
    msg = (r"3dshapes.h5: dataset 'images' has shape \(10, 64, 64, 3\); "
           r"expected \(480000, 64, 64, 3\)")
    with pytest.raises(ValueError, match=msg):
        Shapes3DFile(path)
    _write(path, (10, 64, 64, 3))
    with pytest.raises(ValueError, match="missing dataset 'labels'"):
        Shapes3DFile(path, partial=True)
    _write(path, (10, 64, 64, 3), grid_labels()[:10].astype(np.float32))
    with pytest.raises(ValueError, match="dtype float32; expected float64"):
        Shapes3DFile(path, partial=True)
    labels = grid_labels()[:10]
    labels[4, 5] = 0.0
    _write(path, (10, 64, 64, 3), labels)
    with pytest.raises(ValueError, match="'labels' row 4"):
        Shapes3DFile(path, partial=True)


FIX = r"python -m lvae\.data download shapes3d --to "


@pytest.mark.parametrize("damage", ["truncated", "text"])
def test_unreadable_h5_names_file_problem_and_fix(tmp_path, damage):
    """h5py's own errors name no file ("truncated file: eof = ..."); ours name all three."""
    path = tmp_path / "3dshapes.h5"
    rng = np.random.RandomState(0)
    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=rng.randint(0, 256, (10, 64, 64, 3)).astype(np.uint8))
        f.create_dataset("labels", data=grid_labels()[:10])
    assert len(Shapes3DFile(path, partial=True)) == 10
    blob = path.read_bytes()
    path.write_bytes(blob[: len(blob) // 2] if damage == "truncated" else b"not hdf5\n" * 50)
    why = "truncated" if damage == "truncated" else "not a readable HDF5 file"
    expected = rf"{re.escape(str(path))}: {why} .*{FIX}{re.escape(str(tmp_path))}"
    with pytest.raises(ValueError, match=expected):
        Shapes3DFile(path, partial=True)
    with pytest.raises(ValueError, match=FIX):
        load_dataset("shapes3d", 64, path=tmp_path, partial=True)


def test_layout_errors_say_how_to_fix(tmp_path):
    path = tmp_path / "3dshapes.h5"
    _write(path, (10, 64, 64, 3))
    expected = rf"{re.escape(str(path))}: missing dataset 'labels'.*{FIX}"
    with pytest.raises(ValueError, match=expected):
        Shapes3DFile(path, partial=True)
