"""Table 3 architecture: shapes, parameter counts, functional == module."""

from __future__ import annotations

import pytest
import torch

from lvae.model import (
    BOTTLENECK,
    CONV_CHANNELS,
    VAE,
    Architecture,
    apply_layer,
    layer_specs,
    run_layers,
)


def test_table3_layers_at_64():
    enc, dec = layer_specs(Architecture())
    assert [(lay.kind, lay.out_features) for lay in enc] == [
        ("conv", 32), ("conv", 32), ("conv", 64), ("conv", 64), ("linear", 256), ("linear", 20)]
    assert [(lay.kind, lay.out_features) for lay in dec] == [
        ("linear", 256), ("linear", 1024), ("deconv", 64), ("deconv", 32), ("deconv", 32),
        ("deconv", 3)]
    assert [lay.relu for lay in dec][-1] is False  # logits


def test_parameter_count_at_64_by_hand():
    # convs: 3*32*16+32, 32*32*16+32, 32*64*16+64, 64*64*16+64; fc 1024*256+256, 256*20+20
    enc = (1568 + 16416 + 32832 + 65600) + (262400 + 5140)
    # fc 10*256+256, 256*1024+1024; deconvs 64*64*16+64, 64*32*16+32, 32*32*16+32, 32*3*16+3
    dec = (2816 + 263168) + (65600 + 32800 + 16416 + 1539)
    n = sum(p.numel() for p in VAE(Architecture()).parameters())
    assert n == enc + dec


@pytest.mark.parametrize("res,channels", [(64, 3), (32, 3), (64, 1), (32, 1)])
def test_shapes_round_trip(res, channels):
    m = VAE(Architecture(resolution=res, channels=channels))
    x = torch.rand(2, channels, res, res)
    mu, logvar = m.encode(x)
    assert mu.shape == logvar.shape == (2, 10)
    assert m.decode(mu).shape == x.shape


def test_bad_architecture_names_argument():
    with pytest.raises(ValueError, match="resolution"):
        Architecture(resolution=48)
    with pytest.raises(ValueError, match="channels"):
        Architecture(channels=2)


@pytest.mark.parametrize("res", [64, 32])
def test_every_resolution_halves_down_to_the_bottleneck(res):
    """The conv stack ends at BOTTLENECK x BOTTLENECK, which the linear layers assume."""
    arch = Architecture(resolution=res)
    assert res // 2 ** len(CONV_CHANNELS[res]) == BOTTLENECK
    enc, dec = layer_specs(arch)
    flat = CONV_CHANNELS[res][-1] * BOTTLENECK * BOTTLENECK
    assert enc[-2].in_features == flat and dec[1].out_features == flat
    h = torch.rand(2, 3, res, res)
    for layer in enc[:-2]:
        h = apply_layer(layer, VAE(arch).params(), h)
    assert h.shape[-2:] == (BOTTLENECK, BOTTLENECK)


def test_run_layers_affine_hook_replaces_only_the_affine_map():
    """The one layer loop: an ``affine`` hook sees every layer with its reshaped input."""
    arch = Architecture(resolution=32)
    params = VAE(arch).params()
    _, dec = layer_specs(arch)
    z = torch.randn(3, arch.latent_dim)
    seen: list[tuple[str, tuple[int, ...]]] = []

    def spy(layer, h):
        seen.append((layer.name, tuple(h.shape)))
        return apply_layer(layer, params, h)

    assert torch.equal(run_layers(dec, params, z, spy), run_layers(dec, params, z))
    assert [name for name, _ in seen] == [lay.name for lay in dec]
    assert seen[2][1] == (3, CONV_CHANNELS[32][-1], BOTTLENECK, BOTTLENECK)  # first deconv
