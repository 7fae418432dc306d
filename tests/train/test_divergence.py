"""The shared divergence rule: its three parts, and that fit() applies it where plain GD theory says it must."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from tangentlab.train import divergence, fit


@pytest.mark.parametrize(
    ("losses", "initial", "want"),
    [
        ([1.0, 0.5, 0.2, 0.1], 1.0, "ok"),
        ([1.0, 0.5, math.nan], 1.0, "diverged"),
        ([1.0, math.inf], 1.0, "diverged"),
        ([1.0, 999.0], 1.0, "ok"),  # below FACTOR x initial
        ([1.0, 1001.0], 1.0, "diverged"),  # above it
        ([1.0, 0.1, 0.2, 0.4, 0.8, 1.6], 1.0, "diverged"),  # still doubling over the last five evaluations
        ([1.0, 0.1, 0.11, 0.12, 0.13, 0.14], 1.0, "ok"),  # rising, but by less than GROWTH
        ([1.0, 0.1, 0.2, 0.4, 0.8, 1.6, 0.5], 1.0, "ok"),  # a transient rise it recovered from (a catapult)
    ],
)
def test_classify_follows_the_documented_rule(losses, initial, want):
    assert divergence.classify(losses, initial) == want
    assert (divergence.reason(losses, initial) is None) == (want == "ok")


def test_constants_are_the_documented_ones():
    assert (divergence.FACTOR, divergence.WINDOW, divergence.GROWTH) == (1e3, 5, 2.0)


def _linear_problem() -> tuple[nn.Linear, torch.Tensor, torch.Tensor, float]:
    """A linear model f(x) = w.x on MSE (1/(2n))||Xw - y||^2: GD is stable iff lr < 2 / lambda_max(X^T X / n)."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(32, 6, generator=gen, dtype=torch.float64)
    y = torch.randn(32, 1, generator=gen, dtype=torch.float64)
    model = nn.Linear(6, 1, bias=False).to(torch.float64)
    with torch.no_grad():
        model.weight.zero_()
    lam_max = float(torch.linalg.eigvalsh(x.T @ x / 32)[-1])
    return model, x, y, lam_max


@pytest.mark.parametrize("fraction", [2.1, 3.0])
def test_gd_above_two_over_lambda_max_is_diverged(fraction):
    """Above 2/lambda_max the top mode's error is multiplied by |1 - lr lambda_max| > 1 each step."""
    model, x, y, lam_max = _linear_problem()
    lr = fraction / lam_max
    res = fit(model, x, y, steps=400, learning_rate=lr)
    assert res.diverged and "exceeded 1000 x the initial loss" in res.message
    # independent reference: GD simulated by hand; fit stops at the first step whose loss passes FACTOR x initial
    w, losses = torch.zeros(6, 1, dtype=torch.float64), []
    for _ in range(400):
        losses.append(float(((x @ w - y) ** 2).sum() / (2 * 32)))
        w = w - lr * x.T @ (x @ w - y) / 32
    first = next(k for k, v in enumerate(losses) if v > divergence.FACTOR * losses[0])
    assert res.steps_run == first


@pytest.mark.parametrize("fraction", [0.5, 1.0, 1.9])
def test_gd_below_two_over_lambda_max_completes(fraction):
    model, x, y, lam_max = _linear_problem()
    res = fit(model, x, y, steps=400, learning_rate=fraction / lam_max)
    assert res.status == "completed"
    # converged to the least-squares solution (independent reference: lstsq)
    w = torch.linalg.lstsq(x, y).solution
    assert torch.allclose(model.weight.T, w, atol=1e-6)
