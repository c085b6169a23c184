"""The factor grid: index <-> factors, sampling, label values, load_dataset's contract."""

import numpy as np
import pytest

from lvae.data import NAMES, load_dataset, to_tensor
from lvae.data.shapes3d import Shapes3DTwin


def test_shapes3d_index_is_the_real_files_row_major_stride():
    data = Shapes3DTwin(32)
    rng = np.random.RandomState(0)
    f = data.sample_factors(500, rng)
    assert np.array_equal(data.factors_to_index(f), f @ np.array([48000, 4800, 480, 60, 15, 1]))
    assert np.array_equal(data.index_to_factors(data.factors_to_index(f)), f)
    assert len(data) == 480_000


@pytest.mark.parametrize("name", NAMES)
def test_round_trip_and_sampling_for_every_twin(name):
    data = load_dataset(name, 32, n_objects=2, n_instances=1) if name == "carsnorb" else (
        load_dataset(name, 32, **({"n_objects": 2} if name == "cars3d" else
                                  {"n_instances": 1} if name == "smallnorb" else {})))
    parts = data.parts.values() if name == "carsnorb" else [data]
    for part in parts:
        idx = np.arange(len(part))
        assert np.array_equal(part.factors_to_index(part.index_to_factors(idx)), idx)
        f = part.sample_factors(64, np.random.RandomState(1))
        assert f.shape == (64, part.num_factors) and (f < np.array(part.factor_sizes)).all()
        assert np.array_equal(f, part.sample_factors(64, np.random.RandomState(1)))
        assert len(part.factor_values) == part.num_factors
    assert data.noise_model == "bernoulli"


def test_sample_factors_matches_disentanglement_lib_draw_order():
    data = Shapes3DTwin(32)
    rng = np.random.RandomState(3)
    expected = np.stack([rng.randint(s, size=7) for s in data.factor_sizes], axis=1)
    assert np.array_equal(data.sample_factors(7, np.random.RandomState(3)), expected)


def test_out_of_range_factors_and_indices_raise():
    data = Shapes3DTwin(32)
    with pytest.raises(ValueError, match="out of range"):
        data.factors_to_index(np.array([[10, 0, 0, 0, 0, 0]]))
    with pytest.raises(ValueError, match="out of range"):
        data.images([480_000])


def test_shapes3d_label_values_are_exact():
    data = Shapes3DTwin(32)
    values = data.factor_values
    assert values[0].tolist() == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    assert np.allclose(values[3], np.linspace(0.75, 1.25, 8))
    assert values[4].tolist() == [0, 1, 2, 3]
    assert np.allclose(values[5], np.linspace(-30, 30, 15))
    labels = data.labels(np.array([[9, 0, 3, 7, 2, 14]]))
    assert np.allclose(labels, [[0.9, 0.0, 0.3, 1.25, 2.0, 30.0]])


def test_unknown_name_and_resolution_name_the_allowed_values():
    with pytest.raises(ValueError, match="shapes3d, cars3d, smallnorb, carsnorb"):
        load_dataset("mnist")
    with pytest.raises(ValueError, match="64, 32"):
        load_dataset("shapes3d", resolution=128)


@pytest.mark.parametrize("name", NAMES)
def test_missing_real_path_says_how_to_download(name, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"python -m lvae\.data download"):
        load_dataset(name, path=tmp_path / "nowhere")


def test_to_tensor_layout():
    data = Shapes3DTwin(32)
    x = to_tensor(data.images([0, 1]))
    assert x.shape == (2, 3, 32, 32) and x.dtype.is_floating_point
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
