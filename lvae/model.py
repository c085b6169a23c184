"""The VAE of Appendix B, Table 3, as a parameter dict and a functional forward.

The Local VAE evaluates the *same* network under many parameter sets (the meta-parameters
and one adapted copy per neighbourhood), so the forward pass is written as pure functions of
a ``{name: tensor}`` dict (:func:`encode`, :func:`decode`), and :class:`VAE` is a thin
``nn.Module`` that owns the meta-parameters and calls them. Every forward pass of the package
(this plain one, and the recording and adapted passes of ``lvae.batched``) runs through the
one layer loop :func:`run_layers`, over the layer list of :func:`layer_specs`.

Table 3 (64x64x3, latent 10)::

    Encoder                                  Decoder
    4x4 conv 32 ReLU stride 2  (64 -> 32)    FC 256 ReLU
    4x4 conv 32 ReLU stride 2  (32 -> 16)    FC 4x4x64 ReLU
    4x4 conv 64 ReLU stride 2  (16 -> 8)     4x4 upconv 64 ReLU stride 2  (4 -> 8)
    4x4 conv 64 ReLU stride 2  (8 -> 4)      4x4 upconv 32 ReLU stride 2  (8 -> 16)
    FC 256 ReLU                              4x4 upconv 32 ReLU stride 2  (16 -> 32)
    FC 2 x 10 (mu, log sigma^2)              4x4 upconv C stride 2        (32 -> 64), logits

"Same" padding of the TensorFlow original is ``padding=1`` for 4x4 kernels of stride 2. The
32x32 member of the family drops one stage (convs 32-64-64, upconvs 64-32-C), and 1-channel
images (SmallNORB) change only ``C``. The encoder outputs the log-variance, as
disentanglement_lib does (the paper writes log sigma; the two differ by a factor 2 only).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn

Params = dict[str, Tensor]

CONV_CHANNELS = {64: (32, 32, 64, 64), 32: (32, 64, 64)}
KERNEL, STRIDE, PADDING = 4, 2, 1
HIDDEN = 256
# Side of the encoder's last feature map and of the decoder's first one (Table 3: 4x4x64):
# every resolution halves through its stride-2 convs down to it (64 -> 4, 32 -> 4).
BOTTLENECK = 4


@dataclass(frozen=True)
class Architecture:
    """Shape of the network: image resolution and channels, and the latent size."""

    resolution: int = 64
    channels: int = 3
    latent_dim: int = 10

    def __post_init__(self) -> None:
        if self.resolution not in CONV_CHANNELS:
            raise ValueError(
                f"resolution must be one of {sorted(CONV_CHANNELS)}, got {self.resolution!r}"
            )
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels!r}")
        if not isinstance(self.latent_dim, int) or self.latent_dim < 1:
            raise ValueError(f"latent_dim must be a positive int, got {self.latent_dim!r}")

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the model's input and output."""
        return (self.channels, self.resolution, self.resolution)

    @property
    def num_pixels(self) -> int:
        return self.channels * self.resolution * self.resolution


@dataclass(frozen=True)
class Layer:
    """One layer of the functional network: ``kind`` in conv, deconv, linear."""

    name: str
    kind: str
    in_features: int
    out_features: int
    relu: bool


def layer_specs(arch: Architecture) -> tuple[list[Layer], list[Layer]]:
    """Encoder and decoder layers in forward order (see the module docstring)."""
    chans = CONV_CHANNELS[arch.resolution]
    enc: list[Layer] = []
    c_in = arch.channels
    for i, c in enumerate(chans):
        enc.append(Layer(f"enc.conv{i}", "conv", c_in, c, True))
        c_in = c
    flat = chans[-1] * BOTTLENECK * BOTTLENECK
    enc.append(Layer("enc.fc", "linear", flat, HIDDEN, True))
    enc.append(Layer("enc.head", "linear", HIDDEN, 2 * arch.latent_dim, False))

    dec: list[Layer] = [
        Layer("dec.fc0", "linear", arch.latent_dim, HIDDEN, True),
        Layer("dec.fc1", "linear", HIDDEN, flat, True),
    ]
    outs = (*tuple(reversed(chans[:-1])), arch.channels)
    c_in = chans[-1]
    for i, c in enumerate(outs):
        dec.append(Layer(f"dec.deconv{i}", "deconv", c_in, c, i < len(outs) - 1))
        c_in = c
    return enc, dec


def _make_module(layer: Layer) -> nn.Module:
    if layer.kind == "conv":
        return nn.Conv2d(layer.in_features, layer.out_features, KERNEL, STRIDE, PADDING)
    if layer.kind == "deconv":
        return nn.ConvTranspose2d(layer.in_features, layer.out_features, KERNEL, STRIDE, PADDING)
    return nn.Linear(layer.in_features, layer.out_features)


def apply_layer(layer: Layer, params: Params, h: Tensor) -> Tensor:
    """The layer's affine map (before its ReLU) with the weights in ``params``."""
    w, b = params[layer.name + ".weight"], params[layer.name + ".bias"]
    if layer.kind == "conv":
        return F.conv2d(h, w, b, STRIDE, PADDING)
    if layer.kind == "deconv":
        return F.conv_transpose2d(h, w, b, STRIDE, PADDING)
    return F.linear(h, w, b)


# A layer's affine map given its input: ``apply_layer`` with some parameters, or a variant
# (the batched meta-step records activations, or applies each task's adapted weights).
LayerMap = Callable[[Layer, Tensor], Tensor]


def run_layers(layers: list[Layer], params: Params, h: Tensor,
               affine: LayerMap | None = None) -> Tensor:
    """Apply ``layers`` in order: reshape between conv and linear stages, affine map, ReLU.

    The only layer loop of the package. ``affine`` replaces each layer's affine map (default:
    :func:`apply_layer` with ``params``), so the passes of ``lvae.batched`` (recording, and
    under adapted parameters) share the reshapes and activations with the plain forward.
    """
    for layer in layers:
        if layer.kind == "linear" and h.dim() == 4:
            h = h.flatten(1)  # (n, C*BOTTLENECK*BOTTLENECK)
        elif layer.kind == "deconv" and h.dim() == 2:
            h = h.view(h.shape[0], layer.in_features, BOTTLENECK, BOTTLENECK)
        s = apply_layer(layer, params, h) if affine is None else affine(layer, h)
        h = F.relu(s) if layer.relu else s
    return h


def encode(params: Params, x: Tensor, arch: Architecture) -> tuple[Tensor, Tensor]:
    """q(z|x): images ``(n, C, H, W)`` in [0, 1] -> ``(mu, logvar)``, each ``(n, latent)``."""
    enc, _ = layer_specs(arch)
    out = run_layers(enc, params, x)
    return out[:, : arch.latent_dim], out[:, arch.latent_dim :]


def decode(params: Params, z: Tensor, arch: Architecture) -> Tensor:
    """p(x|z): latent codes ``(n, latent)`` -> pixel logits ``(n, C, H, W)``."""
    _, dec = layer_specs(arch)
    return run_layers(dec, params, z)


class VAE(nn.Module):
    """Owner of the meta-parameters (theta, phi); forward by the functional code above."""

    def __init__(self, arch: Architecture | None = None) -> None:
        super().__init__()
        self.arch = arch or Architecture()
        enc, dec = layer_specs(self.arch)
        # nn.ModuleDict keys cannot contain '.', so layers are stored by their short name
        # and :meth:`params` restores the dotted names the functional code uses.
        self.enc = nn.ModuleDict({lay.name[4:]: _make_module(lay) for lay in enc})
        self.dec = nn.ModuleDict({lay.name[4:]: _make_module(lay) for lay in dec})

    def params(self) -> Params:
        """The meta-parameters as the ``{layer.weight: tensor}`` dict of the functional code."""
        return {name: p for name, p in self.named_parameters()}

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return encode(self.params(), x, self.arch)

    def decode(self, z: Tensor) -> Tensor:
        return decode(self.params(), z, self.arch)

    def forward(self, x: Tensor) -> Tensor:
        """Reconstruction logits through the posterior mean (no sampling)."""
        mu, _ = self.encode(x)
        return self.decode(mu)
