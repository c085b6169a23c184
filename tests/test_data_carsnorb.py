"""CarsNORB: one RGB index space over both parts, labels per part."""

import numpy as np

from lvae.data import Cars3DTwin, CarsNORB, SmallNORBTwin, load_dataset


def test_concatenation_and_parts():
    data = load_dataset("carsnorb", 32, n_objects=2, n_instances=1)
    cars, norb = data.parts["cars3d"], data.parts["smallnorb"]
    assert len(data) == len(cars) + len(norb) == 192 + 4860
    assert data.observation_shape == cars.observation_shape == norb.observation_shape == (32, 32, 3)
    idx = np.array([5, 192, 191, 5051, 0])
    x = data.images(idx)
    assert x.shape == (5, 32, 32, 3) and x.dtype == np.uint8
    assert np.array_equal(x[0], cars.images([5])[0])
    assert np.array_equal(x[1], norb.images([0])[0])
    assert (x[1, ..., 0] == x[1, ..., 2]).all()  # grey repeated to RGB
    sel = data.part_of(idx)
    assert sel["cars3d"].positions.tolist() == [0, 2, 4]
    assert sel["smallnorb"].local.tolist() == [0, 4859]
    assert np.array_equal(sel["smallnorb"].factors, norb.index_to_factors([0, 4859]))
    assert np.array_equal(data.global_index("smallnorb", [0]), [192])


def test_smallnorb_part_draws_like_disentanglement_lib():
    """CarsNORB's NORB part (grey as RGB) keeps SmallNORB's draw order: latent, then instance."""
    cars, norb = Cars3DTwin(32, n_objects=2), SmallNORBTwin(32)
    part = CarsNORB(cars, norb).parts["smallnorb"]
    assert part.latent_factor_indices == (0, 2, 3, 4)
    rs = np.random.RandomState(5)
    latent = [rs.randint(s, size=9) for s in (5, 9, 18, 6)]  # the library's order
    expected = np.column_stack([latent[0], rs.randint(10, size=9), *latent[1:]])
    assert np.array_equal(part.sample_factors(9, np.random.RandomState(5)), expected)
