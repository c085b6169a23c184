"""SmallNORB: the binary matrix format (headers, .gz, truncation) and the twin."""

import gzip
import struct

import numpy as np
import pytest

from lvae.data import load_dataset
from lvae.data.resize import resize_batch
from lvae.data.smallnorb import FILE_PREFIX, SmallNORBFiles, SmallNORBTwin, read_norb_file

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
