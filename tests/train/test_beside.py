"""``train.fit_beside_linearization``: the linearization is taken at init, trained like the net, and follows the
discrete gradient-descent map ``f <- f - (eta / n) Theta_0 (f - y)`` iterated by hand."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

import tangentlab
from tangentlab import train


def _data(n: int, d: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=torch.float64), torch.randn(
        n, 1, generator=g, dtype=torch.float64
    )


def test_linearization_follows_the_discrete_gd_map(ntk_mlp: Callable[..., nn.Module]) -> None:
    net = ntk_mlp(3, 64, 1, act=nn.Tanh)
    x, y = _data(10, 3)
    theta = tangentlab.empirical_ntk(net, x)
    with torch.no_grad():
        f = net(x).clone()
    eta = train.spectral_learning_rate(theta, 0.5)
    steps = 60
    both = train.fit_beside_linearization(net, x, y, steps=steps, learning_rate=eta)
    assert not both.diverged and both.message == both.linearized.message
    for _ in range(steps):  # the linearized model's outputs under full-batch GD on (1/(2n)) ||f - y||^2
        f = f - (eta / 10) * theta @ (f - y)
    with torch.no_grad():
        torch.testing.assert_close(both.linearized_model(x), f, rtol=1e-9, atol=1e-11)
        moved = float(torch.linalg.norm(net(x) - both.linearized_model(x)))
    assert moved > 0  # the net itself was trained in place, and is not its linearization


def test_it_equals_two_separate_fits_with_the_same_settings(ntk_mlp: Callable[..., nn.Module]) -> None:
    x, y = _data(16, 3)
    kwargs = {
        "steps": 25,
        "learning_rate": 0.05,
        "optimizer": "sgd",
        "batch_size": 4,
        "seed": 7,
        "eval_every": 5,
    }
    a, b = ntk_mlp(3, 32, 1, act=nn.Tanh), ntk_mlp(3, 32, 1, act=nn.Tanh)
    b.load_state_dict(a.state_dict())
    theta_0 = train.trainable_vector(a)
    both = train.fit_beside_linearization(a, x, y, **kwargs)
    lin = train.linearize(b)
    ref_net, ref_lin = train.fit(b, x, y, **kwargs), train.fit(lin, x, y, **kwargs)
    assert both.net.history.train_loss == ref_net.history.train_loss
    assert both.linearized.history.train_loss == ref_lin.history.train_loss
    torch.testing.assert_close(both.theta_0, theta_0, rtol=0, atol=0)
    torch.testing.assert_close(train.trainable_vector(a), train.trainable_vector(b), rtol=0, atol=0)
