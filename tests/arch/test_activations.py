"""Activations: closed forms against the quadrature path, and each activation's kernel against Monte Carlo."""

from __future__ import annotations

import math

import pytest
import torch

from tangentlab import arch
from tangentlab.arch.activations import Elementwise

CLOSED_FORMS = [
    arch.ReLU(),
    arch.LeakyReLU(0.2),
    arch.LeakyReLU(-0.5),
    arch.Abs(),
    arch.Erf(),
    arch.GELU(),
    arch.Identity(),
]


def _grid() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    a = torch.tensor([0.01, 0.3, 1.0, 2.5, 10.0], dtype=torch.float64)[:, None, None]
    b = torch.tensor([0.05, 0.7, 1.0, 4.0, 9.0], dtype=torch.float64)[None, :, None]
    rho = torch.tensor([-1.0, -0.99, -0.5, 0.0, 0.3, 0.9, 0.999, 1.0], dtype=torch.float64)
    return rho * torch.sqrt(a * b), a, b


@pytest.mark.parametrize("act", CLOSED_FORMS, ids=lambda a: repr(a))
def test_closed_form_equals_quadrature(act: Elementwise) -> None:
    c, a, b = _grid()
    closed = act.expectation(c, a, b)
    quad = Elementwise.expectation(act, c, a, b)
    torch.testing.assert_close(closed, quad, rtol=0, atol=1e-6)
    closed_d = act.derivative_expectation(c, a, b)
    quad_d = Elementwise.derivative_expectation(act, c, a, b)
    torch.testing.assert_close(closed_d, quad_d, rtol=0, atol=1e-6)


def test_quadrature_matches_one_dimensional_reference() -> None:
    # Independent check of the quadrature itself: at rho = 1, E[tanh(u)^2] for u ~ N(0, 2) by a fine 1-D rule.
    nodes = torch.linspace(-40, 40, 400001, dtype=torch.float64)
    dens = torch.exp(-(nodes**2) / 4) / math.sqrt(4 * math.pi)
    reference = torch.trapezoid(torch.tanh(nodes) ** 2 * dens, nodes)
    two = torch.tensor([2.0], dtype=torch.float64)
    value = arch.Tanh().expectation(two, two, two)
    torch.testing.assert_close(value, reference.reshape(1), rtol=0, atol=1e-9)


def test_arccos_special_values() -> None:
    one = torch.ones(1, dtype=torch.float64)
    # E[relu(u)^2] = var / 2, E[1{u>0}] = 1/2, independent ReLUs: E = 1/(2 pi) * var.
    torch.testing.assert_close(arch.ReLU().expectation(3 * one, 3 * one, 3 * one), 1.5 * one)
    torch.testing.assert_close(arch.ReLU().derivative_expectation(one, one, one), 0.5 * one)
    torch.testing.assert_close(arch.ReLU().expectation(0 * one, one, one), one / (2 * math.pi))


ACTIVATIONS = [
    *CLOSED_FORMS[:-1],
    arch.Tanh(),
    arch.Sigmoid(),
    arch.Softplus(),
    arch.Identity(),
    arch.Activation("torch.sin"),
    arch.Activation(torch.nn.functional.silu),
]


@pytest.mark.parametrize("parametrization", ["ntk", "standard", "mup"])
@pytest.mark.parametrize("act", ACTIVATIONS, ids=lambda a: repr(a))
def test_activation_kernel_matches_monte_carlo(act, parametrization, law, make_inputs) -> None:
    net = arch.serial(
        arch.Dense(1024, sigma_w=1.3, sigma_b=0.4), act, arch.Dense(1, sigma_w=1.1, sigma_b=0.2)
    )
    law(net, make_inputs(5, 3), parametrization, exact=True)


def test_activation_needs_a_function() -> None:
    with pytest.raises(ValueError, match=r"Activation: fn=42 .*callable or an importable dotted name"):
        arch.Activation(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"Activation: fn='no_such_module.fn'"):
        arch.Activation("no_such_module.fn")


def test_activation_lambda_builds_but_does_not_serialise(make_inputs) -> None:
    net = arch.serial(arch.Dense(8), arch.Activation(lambda t: t * torch.sigmoid(t)), arch.Dense(1))
    assert net.kernel(make_inputs(2, 3)).ntk.shape == (2, 2)
    with pytest.raises(ValueError, match=r"Activation: fn=.*importable function"):
        net.to_json()
