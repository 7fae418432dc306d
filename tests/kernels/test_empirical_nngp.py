"""empirical_nngp: the readout features' Gram over their width, checked by hand-built features."""

from __future__ import annotations

import torch
from torch import nn

import tangentlab
from tangentlab.modules import ScaledLinear


def test_last_linear_features_by_hand() -> None:
    model = nn.Sequential(nn.Linear(4, 7), nn.Tanh(), nn.Linear(7, 5), nn.ReLU(), nn.Linear(5, 2)).double()
    x1, x2 = torch.randn(6, 4, dtype=torch.float64), torch.randn(3, 4, dtype=torch.float64)
    phi1, phi2 = model[:4](x1), model[:4](x2)
    want = phi1 @ phi2.T / 5
    torch.testing.assert_close(tangentlab.empirical_nngp(model, x1, x2), want, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(
        tangentlab.empirical_nngp(model, x1), phi1 @ phi1.T / 5, rtol=1e-12, atol=1e-12
    )


def test_named_layer_and_scaled_readout_in_blocks() -> None:
    model = nn.Sequential(ScaledLinear(4, 9, weight_scale=0.5), nn.ReLU(), ScaledLinear(9, 1)).double()
    x = torch.randn(10, 4, dtype=torch.float64)
    feats = torch.relu(model[0](x))
    got = tangentlab.empirical_nngp(model, x, batch_size=3)
    torch.testing.assert_close(got, feats @ feats.T / 9, rtol=1e-12, atol=1e-12)
    first = tangentlab.empirical_nngp(model, x, layer="0")
    torch.testing.assert_close(first, x @ x.T / 4, rtol=1e-12, atol=1e-12)
