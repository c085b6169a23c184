"""SmallNORB: the binary matrix format (headers, .gz, truncation, dtypes), the twin and the
draw order of disentanglement_lib."""

import gzip
import re
import struct

import numpy as np
import pytest

from lvae.data import load_dataset
from lvae.data.resize import resize_batch
from lvae.data.smallnorb import (
    FILE_PREFIX,
    SmallNORB,
    SmallNORBFiles,
    SmallNORBTwin,
    read_norb_file,
)
from lvae.metrics.sampling import sample_factors_and_images

U8, I32 = 0x1E3D4C55, 0x1E3D4C54


def _norb_bytes(magic, array):
    dims = list(array.shape) + [1] * max(0, 3 - array.ndim)
    header = struct.pack("<Ii", magic, array.ndim) + struct.pack(f"<{len(dims)}i", *dims)
    return header + array.astype("<i4" if magic == I32 else np.uint8).tobytes()


def _write_split(folder, split, factors, rng, gz):
    n = len(factors)
    dat = rng.randint(0, 256, (n, 2, 96, 96)).astype(np.uint8)
    cat = factors[:, 0].astype(np.int32)
    info = np.column_stack([factors[:, 1], factors[:, 2], 2 * factors[:, 3], factors[:, 4]])
    for kind, magic, arr in (("dat", U8, dat), ("cat", I32, cat), ("info", I32, info)):
        name = folder / f"{FILE_PREFIX[split]}-{kind}.mat"
        blob = _norb_bytes(magic, arr)
        if gz:
            (folder / (name.name + ".gz")).write_bytes(gzip.compress(blob))
        else:
            name.write_bytes(blob)
    return dat


def test_truncated_files_with_consistent_headers_decode_exactly(tmp_path):
    rng = np.random.RandomState(0)
    train_f = np.array([[0, 4, 0, 0, 0], [4, 9, 8, 17, 5], [2, 6, 3, 5, 1]])
    test_f = np.array([[1, 0, 2, 3, 4], [3, 5, 7, 1, 2]])
    train = _write_split(tmp_path, "training", train_f, rng, gz=True)
    test = _write_split(tmp_path, "testing", test_f, rng, gz=False)
    with pytest.raises(ValueError, match="hold 5 of 48600"):
        SmallNORBFiles(tmp_path)
    data = load_dataset("smallnorb", 64, path=tmp_path, partial=True)
    assert data.observation_shape == (64, 64, 1)
    for f, dat in ((train_f, train), (test_f, test)):
        want = resize_batch(dat[:, 0, :, :, None], 64)  # camera 0, Lanczos
        assert np.array_equal(data.images_from_factors(f), want)
    with pytest.raises(ValueError, match="not in the files"):
        data.images_from_factors(np.array([[0, 0, 0, 0, 1]]))


def test_header_errors_say_what_is_wrong(tmp_path):
    path = tmp_path / "x-cat.mat"
    path.write_bytes(_norb_bytes(I32, np.arange(10, dtype=np.int32)))
    assert read_norb_file(path).tolist() == list(range(10))
    path.write_bytes(_norb_bytes(I32, np.arange(10, dtype=np.int32))[:-8])
    with pytest.raises(ValueError, match="truncated"):
        read_norb_file(path)
    path.write_bytes(struct.pack("<Ii3i", 0x12345678, 1, 4, 1, 1) + bytes(16))
    with pytest.raises(ValueError, match="magic number 0x12345678"):
        read_norb_file(path)


def test_twin_structure_and_lighting():
    data = SmallNORBTwin(32, n_instances=2)
    assert data.factor_sizes == (5, 2, 9, 18, 6)
    assert data.factor_values[2].tolist() == [30, 35, 40, 45, 50, 55, 60, 65, 70]
    f = np.array([[c, 1, 4, 3, li] for c in range(5) for li in range(6)])
    x = data.images_from_factors(f).reshape(5, 6, 32, 32).astype(float)
    corner = x[:, :, :3, :3].mean(axis=(2, 3))  # the table
    assert (corner.max(1) - corner.min(1) > 90).all()  # lighting changes brightness strongly
    centre = x[:, 0, 12:20, 12:20]
    assert (np.abs(centre - corner[:, :1, None]).max(axis=(1, 2)) > 20).all()  # a toy is there
    same = SmallNORBTwin(32, n_instances=2).images_from_factors(f[:4])
    assert np.array_equal(same, data.images_from_factors(f[:4]))
    for j, v in ((0, 2), (2, 8), (3, 9)):
        g = f[:1].copy()
        g[0, j] = v
        assert (data.images_from_factors(g) != data.images_from_factors(f[:1])).sum() > 20


FIX = r"python -m lvae\.data download smallnorb --to "


def _write_all(folder, rng):
    """Both halves, two images each, uncompressed (tests then damage one file)."""
    _write_split(folder, "training", np.array([[0, 4, 0, 0, 0], [4, 9, 8, 17, 5]]), rng, False)
    _write_split(folder, "testing", np.array([[1, 0, 2, 3, 4], [3, 5, 7, 1, 2]]), rng, False)


@pytest.mark.parametrize(("kind", "magic", "dtype"), [
    ("cat", U8, np.uint8), ("info", U8, np.uint8), ("info", 0x1E3D4C51, "<f4"),
])
def test_cat_and_info_dtypes_are_checked(tmp_path, kind, magic, dtype):
    """A cat/info file of another type would be cast silently into (wrong) factors."""
    _write_all(tmp_path, np.random.RandomState(0))
    assert len(load_dataset("smallnorb", 32, path=tmp_path, partial=True)) == 48_600
    name = tmp_path / f"{FILE_PREFIX['testing']}-{kind}.mat"
    shape = (2,) if kind == "cat" else (2, 4)
    header = struct.pack("<Ii", magic, len(shape)) + struct.pack(
        "<3i", *shape, *[1] * (3 - len(shape)))
    name.write_bytes(header + np.zeros(shape, dtype).tobytes())
    want = (rf"{re.escape(str(name))}: a {kind} file must hold int32 .* it holds "
            rf"{np.dtype(dtype)} .*{FIX}{re.escape(str(tmp_path))}")
    with pytest.raises(ValueError, match=want):
        SmallNORBFiles(tmp_path, partial=True)


def test_out_of_range_factor_names_the_file(tmp_path):
    _write_all(tmp_path, np.random.RandomState(0))
    name = tmp_path / f"{FILE_PREFIX['training']}-info.mat"
    name.write_bytes(_norb_bytes(I32, np.array([[4, 0, 3, 0], [9, 8, 34, 5]])))  # odd azimuth
    with pytest.raises(ValueError, match=rf"info.mat: row 0 has azimuth 3; .*{FIX}"):
        SmallNORBFiles(tmp_path, partial=True)
    name.write_bytes(_norb_bytes(I32, np.array([[4, 0, 0, 0], [9, 8, 34, 6]])))
    with pytest.raises(ValueError, match=r"info.mat: row 1 has lighting 6; expected 0 to 5"):
        SmallNORBFiles(tmp_path, partial=True)


def test_damaged_gzip_and_header_errors_name_the_fix(tmp_path):
    _write_all(tmp_path, np.random.RandomState(0))
    dat = tmp_path / f"{FILE_PREFIX['training']}-dat.mat"
    gz = tmp_path / (dat.name + ".gz")
    gz.write_bytes(gzip.compress(dat.read_bytes())[:5000])  # a download cut short
    dat.unlink()
    with pytest.raises(ValueError, match=rf"{re.escape(str(gz))}: cannot be read .*{FIX}"):
        SmallNORBFiles(tmp_path, partial=True)
    gz.write_bytes(gzip.compress(_norb_bytes(U8, np.zeros((2, 2, 96, 96), np.uint8))[:-50]))
    with pytest.raises(ValueError, match=rf"the file is truncated; .*{FIX}"):
        SmallNORBFiles(tmp_path, partial=True)


def _dlib_smallnorb_factors(num, random_state):
    """disentanglement_lib's SmallNORB.sample(num, random_state) draws, written out by hand.

    norb.py: factor_sizes [5, 10, 9, 18, 6], latent_factor_indices [0, 2, 3, 4];
    sample_factors -> SplitDiscreteStateSpace.sample_latent_factors (one randint per latent
    factor, in that order); sample_observations_from_factors -> sample_all_factors, which
    then draws the observation factor, the instance.
    """
    category = random_state.randint(5, size=num)
    elevation = random_state.randint(9, size=num)
    azimuth = random_state.randint(18, size=num)
    lighting = random_state.randint(6, size=num)
    instance = random_state.randint(10, size=num)
    return np.column_stack([category, instance, elevation, azimuth, lighting])


class _Blank(SmallNORB):
    """SmallNORB's factor grid with black images: sampling without decoding anything."""

    def images(self, indices):
        return np.zeros((len(self.check_indices(indices)), 64, 64, 1), np.uint8)


def test_factors_drawn_in_disentanglement_libs_order():
    data = _Blank()
    assert data.latent_factor_indices == (0, 2, 3, 4)
    rs, ours = np.random.RandomState(7), np.random.RandomState(7)
    for num in (16, 16, 5):
        assert np.array_equal(data.sample_factors(num, ours), _dlib_smallnorb_factors(num, rs))
    assert np.array_equal(ours.randint(1 << 30, size=4), rs.randint(1 << 30, size=4))
    # the metrics' path: batches of 16 through data.sample(), as generate_batch_factor_code
    factors, _ = sample_factors_and_images(data, 40, np.random.RandomState(11))
    rs = np.random.RandomState(11)
    expected = np.concatenate([_dlib_smallnorb_factors(n, rs) for n in (16, 16, 8)])
    assert np.array_equal(factors, expected)
    # and not the factor-order draws of before (category, instance, ... in turn)
    rs = np.random.RandomState(11)
    naive = np.stack([rs.randint(s, size=16) for s in data.factor_sizes], axis=1)
    assert not np.array_equal(factors[:16], naive)
