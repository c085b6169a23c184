"""Inception-v3 pool features for FID, in plain torch (no torchvision here).

The network is the "FID Inception" of TTUR / pytorch-fid (Heusel et al. 2017's TensorFlow
graph ``inception-2015-12-05`` ported to torch), defined here so that its ``state_dict`` has
exactly the layout of pytorch-fid's weight file ``pt_inception-2015-12-05-6726825d.pth``
(torch-fidelity's ``weights-inception-2015-12-05-6726825d.pth`` has the same keys):

* top-level ``Conv2d_1a_3x3`` ... ``Conv2d_4a_3x3``, ``Mixed_5b`` ... ``Mixed_7c``, ``fc``
  (1008 x 2048, with bias; unused for features, present so the file loads strictly);
* every convolution is ``<name>.conv.weight`` (no bias) followed by
  ``<name>.bn.{weight,bias,running_mean,running_var}``, batch norm with eps = 1e-3 (there is
  no ``num_batches_tracked``: the batch norm here is frozen, inference only);
* the TensorFlow graph's quirks: the average-pool branches of Mixed_5b-5d (A), 6b-6e (C) and
  7b (E) exclude padding (``count_include_pad=False``), and Mixed_7c's pool branch is a
  *max* pool.

Preprocessing, as pytorch-fid: uint8 images -> float in [0, 1] -> resized to 299 x 299 with
``F.interpolate(mode="bilinear", align_corners=False)`` (no antialiasing) -> ``2x - 1``.
The resize is a choice that moves FID by whole points between implementations; this is
pytorch-fid's, and our 64 x 64 images are upsampled, where antialiasing plays no role.
Grey images are repeated to three channels.

The weights are not downloaded (no network at run time): pass a path, or set
``LVAE_INCEPTION_WEIGHTS``. The paper used Keras' ImageNet Inception-v3 instead, a different
graph with different weights, so its absolute FIDs are not comparable with these anyway.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

ENV_VAR = "LVAE_INCEPTION_WEIGHTS"
WEIGHTS_FILENAME = "pt_inception-2015-12-05-6726825d.pth"
WEIGHTS_URL = (
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/" + WEIGHTS_FILENAME
)
FEATURE_DIM = 2048
INPUT_SIZE = 299
RESIZE_METHOD = "torch bilinear, align_corners=False, no antialias (as pytorch-fid)"


class FrozenBatchNorm2d(nn.Module):
    """Inference-only batch norm holding exactly weight, bias, running_mean, running_var."""

    def __init__(self, channels: int, eps: float = 1e-3):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(
            x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps
        )


class ConvBN(nn.Module):
    """Convolution without bias, batch norm (eps 1e-3), ReLU: TF-slim's ``conv2d``."""

    def __init__(self, c_in: int, c_out: int, kernel_size, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel_size, stride, padding, bias=False)
        self.bn = FrozenBatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg_pool_no_pad(x: torch.Tensor) -> torch.Tensor:
    # TensorFlow's 3x3/1 average pool divides by the number of real (unpadded) pixels.
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


class BlockA(nn.Module):
    """35 x 35 block (Mixed_5b-5d): 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | avgpool-1x1."""

    def __init__(self, c_in: int, pool_features: int):
        super().__init__()
        self.branch1x1 = ConvBN(c_in, 64, 1)
        self.branch5x5_1 = ConvBN(c_in, 48, 1)
        self.branch5x5_2 = ConvBN(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = ConvBN(c_in, 64, 1)
        self.branch3x3dbl_2 = ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = ConvBN(96, 96, 3, padding=1)
        self.branch_pool = ConvBN(c_in, pool_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.branch_pool(_avg_pool_no_pad(x))
        return torch.cat([self.branch1x1(x), b5, b3, bp], 1)


class BlockB(nn.Module):
    """35 -> 17 reduction (Mixed_6a): 3x3/2 | 1x1-3x3-3x3/2 | maxpool/2."""

    def __init__(self, c_in: int):
        super().__init__()
        self.branch3x3 = ConvBN(c_in, 384, 3, stride=2)
        self.branch3x3dbl_1 = ConvBN(c_in, 64, 1)
        self.branch3x3dbl_2 = ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = ConvBN(96, 96, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), b3, F.max_pool2d(x, 3, stride=2)], 1)


class BlockC(nn.Module):
    """17 x 17 block (Mixed_6b-6e) with factorised 7x7 convolutions."""

    def __init__(self, c_in: int, c7: int):
        super().__init__()
        self.branch1x1 = ConvBN(c_in, 192, 1)
        self.branch7x7_1 = ConvBN(c_in, c7, 1)
        self.branch7x7_2 = ConvBN(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = ConvBN(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = ConvBN(c_in, c7, 1)
        self.branch7x7dbl_2 = ConvBN(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = ConvBN(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = ConvBN(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = ConvBN(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = ConvBN(c_in, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = x
        for conv in (
            self.branch7x7dbl_1,
            self.branch7x7dbl_2,
            self.branch7x7dbl_3,
            self.branch7x7dbl_4,
            self.branch7x7dbl_5,
        ):
            bd = conv(bd)
        bp = self.branch_pool(_avg_pool_no_pad(x))
        return torch.cat([self.branch1x1(x), b7, bd, bp], 1)


class BlockD(nn.Module):
    """17 -> 8 reduction (Mixed_7a)."""

    def __init__(self, c_in: int):
        super().__init__()
        self.branch3x3_1 = ConvBN(c_in, 192, 1)
        self.branch3x3_2 = ConvBN(192, 320, 3, stride=2)
        self.branch7x7x3_1 = ConvBN(c_in, 192, 1)
        self.branch7x7x3_2 = ConvBN(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = ConvBN(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = ConvBN(192, 192, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = x
        for conv in (
            self.branch7x7x3_1,
            self.branch7x7x3_2,
            self.branch7x7x3_3,
            self.branch7x7x3_4,
        ):
            b7 = conv(b7)
        return torch.cat([b3, b7, F.max_pool2d(x, 3, stride=2)], 1)


class BlockE(nn.Module):
    """8 x 8 block (Mixed_7b: average pool without padding; Mixed_7c: max pool)."""

    def __init__(self, c_in: int, pool: str):
        super().__init__()
        if pool not in ("avg", "max"):
            raise ValueError(pool)
        self.pool = pool
        self.branch1x1 = ConvBN(c_in, 320, 1)
        self.branch3x3_1 = ConvBN(c_in, 384, 1)
        self.branch3x3_2a = ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = ConvBN(c_in, 448, 1)
        self.branch3x3dbl_2 = ConvBN(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = ConvBN(c_in, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], 1)
        if self.pool == "avg":
            pooled = _avg_pool_no_pad(x)
        else:  # the FID graph's Mixed_7c pools with max, not average
            pooled = F.max_pool2d(x, 3, stride=1, padding=1)
        return torch.cat([self.branch1x1(x), b3, bd, self.branch_pool(pooled)], 1)


class InceptionV3Features(nn.Module):
    """FID Inception-v3 up to the 2048-d average pool; ``forward`` takes [0, 1] images."""

    def __init__(self):
        super().__init__()
        self.Conv2d_1a_3x3 = ConvBN(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = ConvBN(32, 32, 3)
        self.Conv2d_2b_3x3 = ConvBN(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = ConvBN(64, 80, 1)
        self.Conv2d_4a_3x3 = ConvBN(80, 192, 3)
        self.Mixed_5b = BlockA(192, pool_features=32)
        self.Mixed_5c = BlockA(256, pool_features=64)
        self.Mixed_5d = BlockA(288, pool_features=64)
        self.Mixed_6a = BlockB(288)
        self.Mixed_6b = BlockC(768, c7=128)
        self.Mixed_6c = BlockC(768, c7=160)
        self.Mixed_6d = BlockC(768, c7=160)
        self.Mixed_6e = BlockC(768, c7=192)
        self.Mixed_7a = BlockD(768)
        self.Mixed_7b = BlockE(1280, pool="avg")
        self.Mixed_7c = BlockE(2048, pool="max")
        self.fc = nn.Linear(FEATURE_DIM, 1008)  # logits of the 2015 graph; unused here

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(n, 3, H, W)`` floats in [0, 1] -> ``(n, 2048)`` pool features."""
        x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
        x = 2.0 * x - 1.0
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))  # (n, 64, 147, 147)
        x = F.max_pool2d(x, 3, stride=2)  # (n, 64, 73, 73)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))  # (n, 192, 71, 71)
        x = F.max_pool2d(x, 3, stride=2)  # (n, 192, 35, 35)
        for block in (
            self.Mixed_5b,
            self.Mixed_5c,
            self.Mixed_5d,
            self.Mixed_6a,
            self.Mixed_6b,
            self.Mixed_6c,
            self.Mixed_6d,
            self.Mixed_6e,
            self.Mixed_7a,
            self.Mixed_7b,
            self.Mixed_7c,
        ):
            x = block(x)  # ends at (n, 2048, 8, 8)
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)


def find_inception_weights(path: str | os.PathLike | None = None) -> Path | None:
    """The weight file from ``path``, else ``$LVAE_INCEPTION_WEIGHTS``; None if neither."""
    chosen = path if path is not None else os.environ.get(ENV_VAR) or None
    return Path(chosen).expanduser() if chosen is not None else None


def load_inception(path: str | os.PathLike | None = None) -> InceptionV3Features:
    """The FID network with weights from ``path`` or ``$LVAE_INCEPTION_WEIGHTS``, in eval mode.

    Loading is strict: every key and shape of the file must match (a file with
    ``num_batches_tracked`` entries from a newer torch save is accepted; they are unused).
    """
    weights = find_inception_weights(path)
    if weights is None or not weights.is_file():
        where = f"{weights} does not exist" if weights is not None else f"${ENV_VAR} is not set"
        raise FileNotFoundError(
            f"Inception weights not found ({where}). Download {WEIGHTS_FILENAME} from "
            f"{WEIGHTS_URL} (pytorch-fid's FID weights) and pass its path or set {ENV_VAR}. "
            "Without them lvae reports FD-factors instead of FID (lvae.metrics.fid_or_fd)."
        )
    state = torch.load(weights, map_location="cpu", weights_only=True)
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    model = InceptionV3Features()
    model.load_state_dict(state, strict=True)
    return model.eval().requires_grad_(False)


@torch.no_grad()
def inception_features(
    model: InceptionV3Features,
    images: np.ndarray,
    batch_size: int = 50,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """``(n, 2048)`` float64 pool features of uint8 ``(n, H, W, C)`` images (C = 1 or 3)."""
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(f"need uint8 (n, H, W, 1 or 3) images, got {images.dtype} {images.shape}")
    model = model.to(device)
    feats = []
    for i in range(0, len(images), batch_size):
        x = torch.from_numpy(np.ascontiguousarray(images[i : i + batch_size])).to(device)
        x = x.permute(0, 3, 1, 2).float() / 255.0
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        feats.append(model(x).double().cpu().numpy())
    return np.concatenate(feats)
