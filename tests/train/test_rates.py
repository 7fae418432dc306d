"""``train.spectral_learning_rate`` against the gradient-descent dynamics it is derived from, simulated directly."""

from __future__ import annotations

import pytest
import torch

from tangentlab import train

D64 = torch.float64


def linear_problem(n: int = 12, p: int = 30, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    jac = torch.randn(n, p, generator=g, dtype=D64)
    return jac, torch.randn(n, generator=g, dtype=D64)


def final_loss(jac: torch.Tensor, y: torch.Tensor, eta: float, steps: int = 400) -> float:
    """Plain GD on L = (1/(2n)) ||J theta - y||^2 from theta = 0, written out by hand."""
    n = jac.shape[0]
    theta = torch.zeros(jac.shape[1], dtype=D64)
    for _ in range(steps):
        theta = theta - eta * jac.T @ (jac @ theta - y) / n
    return float(((jac @ theta - y) ** 2).sum() / (2 * n))


def test_it_is_fraction_times_n_over_the_largest_eigenvalue():
    jac, _ = linear_problem()
    ntk = jac @ jac.T
    lam_max = float(torch.linalg.eigvalsh(ntk)[-1])
    assert train.spectral_learning_rate(ntk, 0.5) == pytest.approx(0.5 * 12 / lam_max, rel=1e-14)
    evals = torch.linalg.eigvalsh(ntk)
    assert train.spectral_learning_rate(ntk, 0.3, eigenvalues=evals) == 0.3 * 12 / float(evals[-1])


def test_gradient_descent_is_stable_below_two_and_diverges_above():
    jac, y = linear_problem()
    ntk = jac @ jac.T
    start = float((y**2).sum() / 24)
    assert final_loss(jac, y, train.spectral_learning_rate(ntk, 1.9)) < 1e-3 * start
    assert final_loss(jac, y, train.spectral_learning_rate(ntk, 2.1)) > 1e3 * start


def test_the_full_kernel_gives_the_same_rate_when_told_n():
    jac, _ = linear_problem()
    ntk = jac @ jac.T
    full = torch.kron(ntk, torch.eye(3, dtype=D64))  # i.i.d. outputs: Theta (x) I_O
    assert train.spectral_learning_rate(full, 0.5, n=12) == pytest.approx(
        train.spectral_learning_rate(ntk, 0.5), rel=1e-12
    )


@pytest.mark.parametrize(
    ("ntk", "kwargs", "match"),
    [
        (torch.ones(2, 3, dtype=D64), {}, "square"),
        (torch.eye(2, dtype=D64), {"fraction": 0.0}, "fraction"),
        (torch.eye(2, dtype=D64), {"n": 0}, "n: expected a positive int"),
        (-torch.eye(2, dtype=D64), {}, "positive largest eigenvalue"),
    ],
)
def test_bad_input_is_named(ntk, kwargs, match):
    with pytest.raises(ValueError, match=match):
        train.spectral_learning_rate(ntk, **kwargs)
