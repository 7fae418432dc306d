"""``kernels.ntk_features``: explicit per-example gradients whose Gram matrix is the eNTK (against a brute-force
Jacobian and against ``empirical_ntk``)."""

from __future__ import annotations

import pytest
import torch
from torch.func import functional_call, jacrev

from tangentlab import arch, empirical_ntk
from tangentlab.kernels import ntk_features

D64 = torch.float64


def _mlp(d: int = 5, width: int = 7, out: int = 1) -> torch.nn.Module:
    return arch.serial(arch.Dense(width), arch.Tanh(), arch.Dense(out)).build((d,), seed=0, dtype=D64)


def test_features_are_the_parameter_gradients_and_their_gram_is_the_entk():
    net = _mlp()
    g = torch.Generator().manual_seed(0)
    x1, x2 = torch.randn(4, 5, generator=g, dtype=D64), torch.randn(3, 5, generator=g, dtype=D64)
    f1, f2 = ntk_features(net, x1), ntk_features(net, x2)
    params = {k: v.detach() for k, v in net.named_parameters()}
    jac = jacrev(lambda p: functional_call(net, p, (x1,)).reshape(-1))(params)
    brute = torch.cat([jac[k].reshape(4, -1) for k in params], dim=1)
    torch.testing.assert_close(f1, brute, rtol=1e-12, atol=1e-13)
    torch.testing.assert_close(f1 @ f2.T, empirical_ntk(net, x1, x2), rtol=1e-10, atol=1e-12)


def test_frozen_parameters_are_left_out():
    net = _mlp()
    first = next(net.parameters())
    first.requires_grad_(False)
    x = torch.randn(2, 5, dtype=D64)
    assert ntk_features(net, x).shape == (2, sum(p.numel() for p in net.parameters() if p.requires_grad))


def test_several_outputs_are_refused_by_name():
    with pytest.raises(ValueError, match="model: expected one output per example, got 3"):
        ntk_features(_mlp(out=3), torch.randn(2, 5, dtype=D64))
