"""``Erf`` and ``GELU``: activations with closed-form Gaussian expectations.

For ``(u, v) ~ N(0, [[a, c], [c, b]])``:

Erf (Williams 1997, "Computing with infinite networks", NeurIPS)::

    E[erf(u) erf(v)] = (2 / pi) arcsin(2 c / sqrt((1 + 2 a)(1 + 2 b))),
    E[erf'(u) erf'(v)] = (4 / pi) / sqrt((1 + 2 a)(1 + 2 b) - 4 c^2).

GELU ``phi(x) = x Phi(x)`` (Hendrycks & Gimpel 2016, exact form; ``Phi`` the normal CDF, ``varphi`` its density).
Derived here with Stein's lemma ``E[u h(u, v)] = a E[d_u h] + c E[d_v h]`` and Gaussian tilting; with
``Q = (1 + a)(1 + b) - c^2`` and ``P = E[Phi(u) Phi(v)] = 1/4 + arcsin(c / sqrt((1 + a)(1 + b))) / (2 pi)``
(Sheppard's orthant formula for ``u - xi_1, v - xi_2``), ``E[Phi(u) v varphi(v)] = c / (2 pi (1 + b) sqrt(Q))``,
``E[varphi(u) v Phi(v)] = (b (1 + a) - c^2) / (2 pi (1 + a) sqrt(Q))``, ``E[u varphi(u) v varphi(v)] = c / (2 pi Q^{3/2})``::

    E[phi(u) phi(v)]   = (a b (1 + a)(1 + b) + c^2 (1 - a b)) / (2 pi (1 + a)(1 + b) sqrt(Q)) + c P,
    E[phi'(u) phi'(v)] = P + c (1 / (1 + a) + 1 / (1 + b)) / (2 pi sqrt(Q)) + c / (2 pi Q^{3/2}),

using ``phi'(x) = Phi(x) + x varphi(x)``. Both are checked against the quadrature path in the tests (1e-6).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from tangentlab.arch.activations import Elementwise, ElementwiseModule


@dataclass(frozen=True)
class Erf(Elementwise):
    """The error function; closed forms of Williams (1997) (module docstring)."""

    layer_name: ClassVar[str] = "Erf"

    def phi(self, x: torch.Tensor) -> torch.Tensor:
        return torch.erf(x)

    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        return (2.0 / math.sqrt(math.pi)) * torch.exp(-x * x)

    def expectation(self, cov: torch.Tensor, var1: torch.Tensor, var2: torch.Tensor) -> torch.Tensor:
        arg = 2 * cov / torch.sqrt((1 + 2 * var1) * (1 + 2 * var2))
        return (2 / math.pi) * torch.asin(arg.clamp(-1.0, 1.0))

    def derivative_expectation(
        self, cov: torch.Tensor, var1: torch.Tensor, var2: torch.Tensor
    ) -> torch.Tensor:
        return (4 / math.pi) / torch.sqrt((1 + 2 * var1) * (1 + 2 * var2) - 4 * cov * cov)

    def torch_module(self) -> nn.Module:
        return ElementwiseModule(torch.erf, "erf")

    def work_factor(self) -> int:
        return 8


def _gelu_terms(cov: torch.Tensor, var1: torch.Tensor, var2: torch.Tensor) -> tuple[torch.Tensor, ...]:
    one_a, one_b = 1 + var1, 1 + var2
    q = (one_a * one_b - cov * cov).clamp_min(1e-300)
    orthant = 0.25 + torch.asin((cov / torch.sqrt(one_a * one_b)).clamp(-1.0, 1.0)) / (2 * math.pi)
    return one_a, one_b, q, orthant


@dataclass(frozen=True)
class GELU(Elementwise):
    """``x Phi(x)`` (``torch.nn.GELU()``, exact form); closed forms of the module docstring."""

    layer_name: ClassVar[str] = "GELU"

    def phi(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.gelu(x)

    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        cdf = 0.5 * (1 + torch.erf(x / math.sqrt(2)))
        return cdf + x * torch.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)

    def expectation(self, cov: torch.Tensor, var1: torch.Tensor, var2: torch.Tensor) -> torch.Tensor:
        one_a, one_b, q, orthant = _gelu_terms(cov, var1, var2)
        num = var1 * var2 * one_a * one_b + cov * cov * (1 - var1 * var2)
        return num / (2 * math.pi * one_a * one_b * torch.sqrt(q)) + cov * orthant

    def derivative_expectation(
        self, cov: torch.Tensor, var1: torch.Tensor, var2: torch.Tensor
    ) -> torch.Tensor:
        one_a, one_b, q, orthant = _gelu_terms(cov, var1, var2)
        root = torch.sqrt(q)
        return orthant + cov * (1 / one_a + 1 / one_b) / (2 * math.pi * root) + cov / (2 * math.pi * q * root)

    def torch_module(self) -> nn.Module:
        return nn.GELU()

    def work_factor(self) -> int:
        return 12
