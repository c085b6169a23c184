"""Figure 3 in numbers, on factor tables whose scores follow by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lvae.metrics.factor_net import FactorNet
from lvae.metrics.figure3 import chance_scores, figure3_scores, predict_factors

# four factors: two global (colours), two local (content)
LOCAL = (2, 3)
REFS = np.array([[0, 1, 0, 0], [2, 3, 1, 1], [4, 5, 2, 2]])  # 3 references, distinct
CODES = np.array([[7, 7, 3, 0], [8, 8, 0, 3], [9, 9, 1, 2], [6, 6, 2, 1]])  # 4 codes' picks


def test_a_copy_keeps_colours_and_nothing_else():
    gen = np.repeat(REFS[:, None], len(CODES), axis=1)  # every row is its reference
    assert figure3_scores(REFS, gen, LOCAL) == {
        "colours_kept": 1.0, "content_shared": 0.0}


def test_the_vanilla_vae_shares_content_down_columns_but_not_colours():
    gen = np.repeat(CODES[None], len(REFS), axis=0)  # the reference changes nothing
    assert figure3_scores(REFS, gen, LOCAL) == {
        "colours_kept": 0.0, "content_shared": 1.0}


def test_the_papers_picture_scores_one_twice():
    gen = np.empty((len(REFS), len(CODES), 4), int)
    gen[:, :, :2] = REFS[:, None, :2]  # the reference's colours
    gen[:, :, 2:] = CODES[None, :, 2:]  # z's shape, scale, orientation
    assert figure3_scores(REFS, gen, LOCAL) == {
        "colours_kept": 1.0, "content_shared": 1.0}


def test_a_mixed_case_by_hand():
    refs = np.array([[0, 0, 0, 0], [1, 1, 1, 1]])
    gen = np.array([[[0, 0, 5, 5], [0, 9, 5, 5], [0, 0, 6, 5]],     # kept: 2 of 3
                    [[1, 1, 5, 5], [1, 1, 7, 7], [2, 1, 6, 5]]])   # kept: 2 of 3
    s = figure3_scores(refs, gen, LOCAL)
    assert s["colours_kept"] == pytest.approx(4 / 6)
    # columns: (5,5)=(5,5) yes; (5,5)!=(7,7); (6,5)=(6,5) yes -> 2 of 3 pairs
    assert s["content_shared"] == pytest.approx(2 / 3)


def test_independent_uniform_factors_read_the_chance_scores():
    sizes, local = (10, 10, 10, 8, 4, 15), (3, 4, 5)  # 3D Shapes
    chance = chance_scores(sizes, local)
    assert chance["colours_kept"] == pytest.approx(1 / 1000)
    assert chance["content_shared"] == pytest.approx(1 / 480)
    rng = np.random.RandomState(0)
    # few values per factor so the chance is large enough to measure: 2 x 2 global, 3 local
    small, loc = (2, 2, 3), (2,)
    refs = np.stack([rng.randint(s, size=40) for s in small], -1)
    gen = np.stack([rng.randint(s, size=(40, 40)) for s in small], -1)
    want = chance_scores(small, loc)
    got = figure3_scores(refs, gen, loc)
    for k in want:
        assert got[k] == pytest.approx(want[k], abs=0.02)


def test_bad_shapes_and_factor_lists_are_refused():
    with pytest.raises(ValueError, match=r"\(R, Z, F\)"):
        figure3_scores(REFS, REFS, LOCAL)
    with pytest.raises(ValueError, match="at least 2 references and 2 codes"):
        figure3_scores(REFS[:1], np.zeros((1, 3, 4), int), LOCAL)
    with pytest.raises(ValueError, match="some but not all"):
        figure3_scores(REFS, np.zeros((3, 2, 4), int), (0, 1, 2, 3))


def test_predict_factors_reads_each_head_separately():
    net = FactorNet(3, (3, 2, 4))
    with torch.no_grad():
        net.heads.weight.zero_()
        net.heads.bias.copy_(torch.tensor([0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 2.0]))
    images = np.zeros((5, 32, 32, 3), np.uint8)
    got = predict_factors(net, images, batch_size=2)
    assert got.shape == (5, 3) and (got == [2, 0, 3]).all()


def test_the_object_factors_are_table_1s_without_colour_ones():
    from types import SimpleNamespace

    from lvae.metrics.figure3 import object_factors

    shapes = SimpleNamespace(factor_names=("floor_hue", "wall_hue", "object_hue", "scale",
                                           "shape", "orientation"),
                             dci_subsets={"dci_color": None,
                                          "dci_nocolor": ("scale", "shape", "orientation")})
    assert object_factors(shapes) == [3, 4, 5]
    assert object_factors(SimpleNamespace(factor_names=("a",), dci_subsets={"dci": None})) \
        is None
