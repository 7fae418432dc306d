"""Test models for the empirical kernels, written as data: (name, factory, input shape, input dtype)."""

from __future__ import annotations

import torch
from torch import nn

from tangentlab.modules import ScaledConv2d, ScaledLinear


class ResidualLayerNorm(nn.Module):
    """Linear → LayerNorm → x + MLP(x) with one Linear used twice (shared weights) and an in-place ReLU."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Linear(6, 8)
        self.norm = nn.LayerNorm(8)
        self.hidden = nn.Linear(8, 8)
        self.act = nn.ReLU(inplace=True)
        self.out = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(self.inp(x))
        h = h + torch.tanh(self.hidden(self.act(self.hidden(h))))
        return self.out(h)


class TokenModel(nn.Module):
    """Embedding of integer tokens, a Linear applied per token, mean over tokens, readout."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(11, 5)
        self.mix = nn.Linear(5, 7)
        self.out = nn.Linear(7, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.nn.functional.gelu(self.mix(self.embed(x))).mean(1))


class ScalarOutput(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 9), nn.Softplus(), nn.Linear(9, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)


def mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 12), nn.Tanh(), nn.Linear(12, 3))


def conv2d_flatten() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(2, 3, 3, padding=1),
        nn.Tanh(),
        nn.Conv2d(3, 4, 3, stride=2, padding=1, padding_mode="circular"),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 3 * 3, 3),
    )


def conv1d_avgpool() -> nn.Module:
    return nn.Sequential(
        nn.Conv1d(1, 4, 5, padding="same"),
        nn.ReLU(),
        nn.AvgPool1d(2),
        nn.Conv1d(4, 4, 3, dilation=2, bias=False),
        nn.GELU(),
        nn.AdaptiveAvgPool1d(1),
        nn.Flatten(),
        nn.Linear(4, 2),
    )


def with_buffers_eval() -> nn.Module:
    model = nn.Sequential(nn.Linear(5, 10), nn.BatchNorm1d(10), nn.ReLU(), nn.Dropout(0.3), nn.Linear(10, 2))
    model[1].running_mean.uniform_(-1, 1)
    model[1].running_var.uniform_(0.5, 2)
    return model.eval()


def ntk_parametrized() -> nn.Module:
    return nn.Sequential(
        ScaledConv2d(1, 4, 3, padding=1, weight_scale=1.5 / 3, bias_scale=0.2),
        nn.ReLU(),
        nn.Flatten(),
        ScaledLinear(4 * 5 * 5, 6, weight_scale=2.0**0.5 / 10, bias_scale=0.1),
        nn.Sigmoid(),
        ScaledLinear(6, 2, weight_scale=6**-0.5, bias_scale=0.0),
    )


def frozen_partly() -> nn.Module:
    model = mlp()
    model[2].weight.requires_grad_(False)
    return model


# name -> (factory, per-example input shape, integer inputs?)
CASES = {
    "mlp": (mlp, (5,), False),
    "conv2d_flatten": (conv2d_flatten, (2, 5, 5), False),
    "conv1d_avgpool": (conv1d_avgpool, (1, 12), False),
    "residual_layernorm": (ResidualLayerNorm, (6,), False),
    "tokens": (TokenModel, (4,), True),
    "scalar_output": (ScalarOutput, (4,), False),
    "buffers_eval": (with_buffers_eval, (5,), False),
    "ntk_parametrized": (ntk_parametrized, (1, 5, 5), False),
    "frozen_partly": (frozen_partly, (5,), False),
}


def make_case(name: str, n1: int, n2: int, dtype: torch.dtype = torch.float64, seed: int = 0):
    factory, shape, integer = CASES[name]
    torch.manual_seed(seed)
    model = factory().to(dtype)
    gen = torch.Generator().manual_seed(seed + 1)
    if integer:
        x1 = torch.randint(0, 11, (n1, *shape), generator=gen)
        x2 = torch.randint(0, 11, (n2, *shape), generator=gen)
    else:
        x1 = torch.randn((n1, *shape), generator=gen, dtype=dtype)
        x2 = torch.randn((n2, *shape), generator=gen, dtype=dtype)
    return model, x1, x2
