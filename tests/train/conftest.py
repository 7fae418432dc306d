"""Shared helpers: NTK-parametrized MLPs built from ScaledLinear with N(0, 1) weights and biases."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import pytest
import torch
from torch import nn

from tangentlab.modules import ScaledLinear


def build_ntk_mlp(
    in_dim: int, width: int, depth: int, out_dim: int = 1, *, seed: int = 0, act: type[nn.Module] = nn.ReLU
) -> nn.Sequential:
    """``depth`` hidden layers; a layer computes ``sigma_w / sqrt(fan_in) W x + sigma_b b`` with W, b ~ N(0, 1)."""
    sigma_w, sigma_b = math.sqrt(2.0), 0.1
    layers: list[nn.Module] = []
    fan = in_dim
    for _ in range(depth):
        layers += [
            ScaledLinear(
                fan, width, weight_scale=sigma_w / math.sqrt(fan), bias_scale=sigma_b, dtype=torch.float64
            ),
            act(),
        ]
        fan = width
    layers.append(
        ScaledLinear(fan, out_dim, weight_scale=1.0 / math.sqrt(fan), bias_scale=sigma_b, dtype=torch.float64)
    )
    net = nn.Sequential(*layers)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(generator=g)
    return net


@pytest.fixture
def ntk_mlp() -> Callable[..., nn.Sequential]:
    return build_ntk_mlp


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Run a CPU-heavy test on one thread (the machine is shared); restore the setting afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
