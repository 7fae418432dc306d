"""ReLU, leaky ReLU and absolute value: closed-form (arc-cosine) kernels.

For ``(u, v) ~ N(0, [[a, c], [c, b]])``, ``rho = c / sqrt(a b)`` and ``theta = arccos(rho)``, the degree-1 and
degree-0 arc-cosine kernels of Cho & Saul (2009, "Kernel methods for deep learning", NeurIPS) are

    J1(c) = E[relu(u) relu(v)] = sqrt(a b) / (2 pi) * (sin(theta) + (pi - theta) cos(theta)),
    J0(c) = E[1{u>0} 1{v>0}]   = (pi - theta) / (2 pi).

A leaky ReLU with slope ``alpha``, ``phi(x) = relu(x) - alpha relu(-x)``, then has (using
``E[relu(u) relu(-v)] = J1(-c)``, ``P(u > 0, v < 0) = theta / (2 pi)``)

    E[phi(u) phi(v)]   = (1 + alpha^2) J1(c) - 2 alpha J1(-c),
    E[phi'(u) phi'(v)] = ((1 + alpha^2) (pi - theta) + 2 alpha theta) / (2 pi),

with ``J1(-c) = sqrt(a b) / (2 pi) * (sin(theta) - theta cos(theta))``. ReLU is ``alpha = 0`` and ``|x|`` is
``alpha = -1``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from tangentlab.arch._base import check_real
from tangentlab.arch.activations import Elementwise, ElementwiseModule


def _angles(cov: torch.Tensor, var1: torch.Tensor, var2: torch.Tensor) -> tuple[torch.Tensor, ...]:
    scale = torch.sqrt((var1 * var2).clamp_min(0))
    rho = (cov / scale.clamp_min(1e-300)).clamp(-1.0, 1.0)
    return scale, rho, torch.sqrt((1.0 - rho * rho).clamp_min(0)), torch.arccos(rho)


def leaky_relu_expectation(
    cov: torch.Tensor, var1: torch.Tensor, var2: torch.Tensor, alpha: float
) -> torch.Tensor:
    """``E[phi(u) phi(v)]`` for the leaky ReLU of slope ``alpha`` (module docstring)."""
    scale, rho, sin, theta = _angles(cov, var1, var2)
    j_plus = sin + (math.pi - theta) * rho
    if alpha == 0.0:
        return scale * j_plus / (2 * math.pi)
    j_minus = sin - theta * rho
    return scale * ((1 + alpha**2) * j_plus - 2 * alpha * j_minus) / (2 * math.pi)


def leaky_relu_derivative_expectation(
    cov: torch.Tensor, var1: torch.Tensor, var2: torch.Tensor, alpha: float
) -> torch.Tensor:
    """``E[phi'(u) phi'(v)]`` for the leaky ReLU of slope ``alpha`` (module docstring)."""
    _, _, _, theta = _angles(cov, var1, var2)
    return ((1 + alpha**2) * (math.pi - theta) + 2 * alpha * theta) / (2 * math.pi)


def leaky_relu_kernel_pair(
    cov: torch.Tensor, ntk: torch.Tensor, var1: torch.Tensor, var2: torch.Tensor, alpha: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(E[phi(u) phi(v)], ntk * E[phi'(u) phi'(v)])`` from one angle, with few full-size temporaries.

    The same formulas as :func:`leaky_relu_expectation` and :func:`leaky_relu_derivative_expectation`, evaluated
    in place: the angle ``theta = arccos(rho)`` (the costly part) is computed once for both. ``var1``/``var2``
    broadcast against ``cov``; ``cov`` and ``ntk`` are not modified. The scale is ``sqrt(var1 var2)`` (not
    ``sqrt(var1) sqrt(var2)``) so that ``rho`` is exactly 1 on the diagonal, where ``arccos`` is ill-conditioned.
    """
    scale = torch.mul(var1, var2).clamp_min_(0).sqrt_()
    rho = scale.clamp_min(1e-300)
    torch.div(cov, rho, out=rho).clamp_(-1.0, 1.0)
    theta = torch.arccos(rho)
    sin = torch.mul(rho, rho).neg_().add_(1.0).clamp_min_(0).sqrt_()
    if alpha == 0.0:
        gap = theta.neg_().add_(math.pi)  # pi - theta
        nngp = sin.addcmul_(gap, rho).mul_(scale).div_(2 * math.pi)
        return nngp, gap.div_(2 * math.pi).mul_(ntk)
    gap = torch.neg(theta).add_(math.pi)
    j_plus = torch.addcmul(sin, gap, rho)
    j_minus = sin.addcmul_(theta, rho, value=-1.0)
    nngp = j_plus.mul_(1 + alpha**2).add_(j_minus, alpha=-2 * alpha).mul_(scale).div_(2 * math.pi)
    derivative = gap.mul_(1 + alpha**2).add_(theta, alpha=2 * alpha).div_(2 * math.pi)
    return nngp, derivative.mul_(ntk)


class _PiecewiseLinear(Elementwise):
    """``relu(x) - alpha relu(-x)`` with the closed forms above."""

    def slope(self) -> float:
        raise NotImplementedError

    def phi(self, x: torch.Tensor) -> torch.Tensor:
        return torch.where(x >= 0, x, self.slope() * x)

    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        return torch.where(x > 0, torch.ones_like(x), torch.full_like(x, self.slope()))

    def expectation(self, cov: torch.Tensor, var1: torch.Tensor, var2: torch.Tensor) -> torch.Tensor:
        return leaky_relu_expectation(cov, var1, var2, self.slope())

    def derivative_expectation(
        self, cov: torch.Tensor, var1: torch.Tensor, var2: torch.Tensor
    ) -> torch.Tensor:
        return leaky_relu_derivative_expectation(cov, var1, var2, self.slope())

    def kernel_pair(
        self, cov: torch.Tensor, ntk: torch.Tensor, diag1: torch.Tensor, diag2: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return leaky_relu_kernel_pair(cov, ntk, diag1, diag2, self.slope())

    def work_factor(self) -> int:
        return 6


@dataclass(frozen=True)
class ReLU(_PiecewiseLinear):
    """``max(x, 0)``; arc-cosine kernels (Cho & Saul 2009)."""

    layer_name: ClassVar[str] = "ReLU"

    def slope(self) -> float:
        return 0.0

    def torch_module(self) -> nn.Module:
        return nn.ReLU()


@dataclass(frozen=True)
class LeakyReLU(_PiecewiseLinear):
    """``x`` for ``x >= 0`` and ``negative_slope * x`` otherwise; closed form of the module docstring.

    Args:
        negative_slope: the slope for negative inputs (any real; -1 gives ``|x|``).
    """

    layer_name: ClassVar[str] = "LeakyReLU"
    negative_slope: float = 0.01

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "negative_slope", check_real("LeakyReLU", "negative_slope", self.negative_slope)
        )

    def slope(self) -> float:
        return self.negative_slope

    def torch_module(self) -> nn.Module:
        return nn.LeakyReLU(self.negative_slope)


@dataclass(frozen=True)
class Abs(_PiecewiseLinear):
    """``|x|``: ``E = 2 J1(c) + 2 J1(-c)``, ``E[sgn(u) sgn(v)] = 1 - 2 theta / pi``."""

    layer_name: ClassVar[str] = "Abs"

    def slope(self) -> float:
        return -1.0

    def torch_module(self) -> nn.Module:
        return ElementwiseModule(torch.abs, "abs")
