"""FD-factors and the FID/FD chooser on a tiny procedural dataset (16 x 16 squares)."""

from __future__ import annotations

import numpy as np
import pytest

from lvae.data.base import GroundTruthData
from lvae.metrics import factor_net as fdf
from lvae.metrics import quality as fid_module
from lvae.metrics.inception import ENV_VAR

COLOURS = np.array([[255, 40, 40], [40, 255, 40], [40, 40, 255]], dtype=np.uint8)


class Squares(GroundTruthData):
    """A coloured square on black: x position (4), colour (3), size (2)."""

    name = "squares"
    factor_names = ("x", "colour", "size")
    factor_sizes = (4, 3, 2)
    observation_shape = (16, 16, 3)

    def images(self, indices):
        out = np.zeros((len(indices), 16, 16, 3), dtype=np.uint8)
        for n, (x, c, s) in enumerate(self.index_to_factors(indices)):
            side = 4 + 3 * s
            out[n, 5 : 5 + side, 1 + 3 * x : 1 + 3 * x + side] = COLOURS[c]
        return out


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LVAE_CACHE", str(tmp_path))
    monkeypatch.delenv(ENV_VAR, raising=False)
    return tmp_path


def test_real_vs_real_is_far_below_real_vs_noise(cache):
    data = Squares()
    _, real = data.sample(300, np.random.RandomState(0))
    _, other = data.sample(300, np.random.RandomState(1))
    noise = np.random.RandomState(2).randint(0, 256, real.shape, dtype=np.uint8)
    same = fdf.fd_factors(data, real, other, steps=80)
    far = fdf.fd_factors(data, real, noise, steps=80)
    assert 0 <= same < 0.05 * far
    cached = list((cache / "fd_factors").glob("squares-Squares-16x16x3-f4x3x2-*.pt"))
    assert len(cached) == 1 and not list((cache / "fd_factors").glob("*.tmp"))


def test_the_network_is_trained_once_then_cached(cache, monkeypatch):
    data = Squares()
    first = fdf.load_or_train_factor_net(data, steps=5)

    def no_training(*args, **kwargs):
        raise AssertionError("should have loaded the cached network")

    monkeypatch.setattr(fdf, "train_factor_net", no_training)
    again = fdf.load_or_train_factor_net(data, steps=5)
    for a, b in zip(first.state_dict().values(), again.state_dict().values(), strict=True):
        assert (a == b).all()


def test_chooser_names_the_metric(cache, monkeypatch, tmp_path):
    data = Squares()
    _, real = data.sample(40, np.random.RandomState(0))
    result = fid_module.fid_or_fd(data, real, real[::-1], steps=5)
    assert result.name == "FD-factors" and result.num_real == 40
    assert "FID" not in result.name

    weights = tmp_path / "inception.pth"
    weights.write_bytes(b"")
    monkeypatch.setattr(fid_module, "fid", lambda real, gen, path: 1.5)
    monkeypatch.setenv(ENV_VAR, str(weights))
    result = fid_module.fid_or_fd(data, real, real)
    assert (result.name, result.value) == ("FID", 1.5)

    monkeypatch.setenv(ENV_VAR, str(tmp_path / "missing.pth"))
    monkeypatch.undo()  # restore the real fid(): a configured but missing file is an error
    monkeypatch.setenv("LVAE_CACHE", str(cache))
    with pytest.raises(FileNotFoundError):
        fid_module.fid_or_fd(data, real, real, weights=tmp_path / "missing.pth")
