"""Every line of docs/neural-tangents.md's conversion table, checked against an independent reference.

neural-tangents (JAX) is not a dependency: its side of each line is written out here from its documented formulas
(``trace_axes`` kernels are means over outputs; ``gradient_descent_mse`` uses ``exp(-lr t Θ / y_train.size)``;
``diag_reg`` is relative to ``trace(k) / n`` unless ``diag_reg_absolute_scale``), and the kernels' closed forms
(arc-cosine, arcsine) are computed in float64 without tangentlab.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn

import tangentlab
from tangentlab import arch, predict
from tests.kernels.reference import reference_ntk

DT = torch.float64
DOC = Path(__file__).resolve().parents[1] / "docs" / "neural-tangents.md"
LINES = re.findall(r"^\| `([\w-]+)` \|", DOC.read_text(), flags=re.M)


def _mlp(outputs: int = 3) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, outputs)).to(DT)


def _x(n: int, d: int = 4, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, d, dtype=DT, generator=torch.Generator().manual_seed(seed))


def check_mean_kernel() -> None:
    model, x1, x2 = _mlp(), _x(5), _x(3, seed=2)
    got = tangentlab.empirical_ntk(model, x1, x2, outputs="mean")
    torch.testing.assert_close(got, reference_ntk(model, x1, x2, "full").diagonal(dim1=2, dim2=3).mean(-1))


def check_trace_kernel() -> None:
    model, x1 = _mlp(), _x(5)
    mean = tangentlab.empirical_ntk(model, x1, outputs="mean")
    torch.testing.assert_close(tangentlab.empirical_ntk(model, x1, outputs="trace"), 3 * mean)


def check_full_kernel() -> None:
    model, x1, x2 = _mlp(), _x(5), _x(3, seed=2)
    got = tangentlab.empirical_ntk(model, x1, x2, outputs="full")
    assert got.shape == (5, 3, 3, 3)
    torch.testing.assert_close(got, reference_ntk(model, x1, x2, "full"))


def check_diagonal_kernel() -> None:
    model, x1, x2 = _mlp(), _x(5), _x(3, seed=2)
    got = tangentlab.empirical_ntk(model, x1, x2, outputs="diagonal")
    assert got.shape == (5, 3, 3)
    torch.testing.assert_close(got, reference_ntk(model, x1, x2, "full").diagonal(dim1=2, dim2=3))


def _dense(parametrization: str, width: int = 3, d: int = 4) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    net = arch.serial(arch.Dense(width, sigma_w=1.5, sigma_b=0.5))
    model = net.build((d,), parametrization=parametrization, seed=0, dtype=DT)  # type: ignore[arg-type]
    weight = next(p for p in model.parameters() if p.ndim == 2)
    bias = next(p for p in model.parameters() if p.ndim == 1)
    return model, weight.detach(), bias.detach()


def check_dense_ntk() -> None:
    model, w, b = _dense("ntk")
    x = _x(5)
    with torch.no_grad():
        torch.testing.assert_close(model(x), 1.5 / math.sqrt(4) * x @ w.T + 0.5 * b)
    _, w_big, b_big = _dense("ntk", width=400, d=500)
    assert abs(float(w_big.var()) - 1.0) < 0.02 and abs(float(b_big.var()) - 1.0) < 0.3


def check_dense_standard() -> None:
    model, w, b = _dense("standard")
    x = _x(5)
    with torch.no_grad():
        torch.testing.assert_close(model(x), x @ w.T + b)
    _, w_big, b_big = _dense("standard", width=400, d=500)
    assert abs(float(w_big.var()) / (1.5**2 / 500) - 1.0) < 0.02
    assert abs(float(b_big.var()) / 0.5**2 - 1.0) < 0.3


def _relu_closed_form(x1: torch.Tensor, x2: torch.Tensor, s_w: float, s_b: float) -> tuple[torch.Tensor, ...]:
    """NNGP and NTK of Dense(N, s_w, s_b) → ReLU → Dense(1, s_w, s_b), NTK parametrization, infinite N."""
    d = x1.shape[1]
    k12 = s_w**2 * x1 @ x2.T / d + s_b**2
    k11 = s_w**2 * (x1 * x1).sum(1) / d + s_b**2
    k22 = s_w**2 * (x2 * x2).sum(1) / d + s_b**2
    norm = torch.sqrt(k11[:, None] * k22[None, :])
    theta = torch.arccos((k12 / norm).clamp(-1, 1))
    relu_k = norm * (torch.sin(theta) + (math.pi - theta) * torch.cos(theta)) / (2 * math.pi)
    relu_dot = (math.pi - theta) / (2 * math.pi)
    nngp = s_w**2 * relu_k + s_b**2
    ntk = s_w**2 * (k12 * relu_dot + relu_k) + s_b**2
    return nngp, ntk


def _net(activation: arch.Layer, s_w: float = 1.3, s_b: float = 0.2) -> arch.Layer:
    return arch.serial(
        arch.Dense(64, sigma_w=s_w, sigma_b=s_b), activation, arch.Dense(1, sigma_w=s_w, sigma_b=s_b)
    )


def check_relu_nngp() -> None:
    x1, x2 = _x(5), _x(3, seed=2)
    nngp, _ = _relu_closed_form(x1, x2, 1.3, 0.2)
    torch.testing.assert_close(_net(arch.ReLU()).kernel(x1, x2).nngp.to(DT), nngp, rtol=1e-9, atol=1e-9)


def check_relu_ntk() -> None:
    x1, x2 = _x(5), _x(3, seed=2)
    _, ntk = _relu_closed_form(x1, x2, 1.3, 0.2)
    torch.testing.assert_close(_net(arch.ReLU()).kernel(x1, x2).ntk.to(DT), ntk, rtol=1e-9, atol=1e-9)


def check_erf_nngp() -> None:
    x1, x2 = _x(5), _x(3, seed=2)
    s_w, s_b, d = 1.3, 0.2, 4
    k12 = s_w**2 * x1 @ x2.T / d + s_b**2
    k11 = s_w**2 * (x1 * x1).sum(1) / d + s_b**2
    k22 = s_w**2 * (x2 * x2).sum(1) / d + s_b**2
    erf_k = 2 / math.pi * torch.arcsin(2 * k12 / torch.sqrt((1 + 2 * k11[:, None]) * (1 + 2 * k22[None, :])))
    want = s_w**2 * erf_k + s_b**2
    torch.testing.assert_close(_net(arch.Erf()).kernel(x1, x2).nngp.to(DT), want, rtol=1e-7, atol=1e-7)


def _nt_gradient_descent_mse(k, y, k_test_train, t, lr, diag_reg=0.0):  # type: ignore[no-untyped-def]
    """neural-tangents' formula: f_test(t) = K_*X K^{-1} (I - exp(-lr t K / y.size)) y, with f_0 = 0."""
    reg = k + diag_reg * torch.trace(k) / k.shape[0] * torch.eye(k.shape[0], dtype=DT)
    evals, evecs = torch.linalg.eigh(reg)
    decay = -torch.expm1(-lr * t * evals.clamp_min(0) / y.numel()) / evals
    return k_test_train @ (evecs @ (decay[:, None] * (evecs.T @ y)))


def check_gd_time() -> None:
    model, x, xs = _mlp(), _x(8), _x(4, seed=3)
    k = tangentlab.empirical_ntk(model, x, outputs="mean")
    ks = tangentlab.empirical_ntk(model, xs, x, outputs="mean")
    y = _x(8, d=3, seed=4)  # O = 3 outputs
    t_nt, lr = 7.0, 0.5
    want = _nt_gradient_descent_mse(k, y, ks, t_nt, lr)
    got = predict.gradient_descent_mse(k, y, ks, t=t_nt / 3, learning_rate=lr)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-10)
    # and not with the same t: the factor matters
    assert not torch.allclose(predict.gradient_descent_mse(k, y, ks, t=t_nt, learning_rate=lr), want)


def check_gd_ridge() -> None:
    model, x, xs = _mlp(), _x(8), _x(4, seed=3)
    k = tangentlab.empirical_ntk(model, x, outputs="mean")
    ks = tangentlab.empirical_ntk(model, xs, x, outputs="mean")
    y = _x(8, d=3, seed=4)
    r = 0.1
    ridge = r * float(torch.trace(k)) / 8
    want = ks @ torch.linalg.solve(k + ridge * torch.eye(8, dtype=DT), y)  # t = inf
    torch.testing.assert_close(
        predict.gradient_descent_mse(k, y, ks, ridge=ridge), want, rtol=1e-9, atol=1e-10
    )
    want_t = _nt_gradient_descent_mse(k, y, ks, 5.0, 1.0, diag_reg=r)
    got_t = predict.gradient_descent_mse(k, y, ks, t=5.0 / 3, ridge=ridge)
    torch.testing.assert_close(got_t, want_t, rtol=1e-9, atol=1e-10)


def check_gp_noise() -> None:
    x, xs = _x(8), _x(4, seed=3)
    k_all = _relu_closed_form(torch.cat([x, xs]), torch.cat([x, xs]), 1.0, 0.1)[0]
    k, ks, kss = k_all[:8, :8], k_all[8:, :8], k_all[8:, 8:]
    y = _x(8, d=2, seed=4)
    r = 0.05
    inv = torch.linalg.inv(k + r * torch.eye(8, dtype=DT))
    pred = predict.gp_inference(k, y, ks, kss, noise=r)
    torch.testing.assert_close(pred.mean, ks @ inv @ y, rtol=1e-9, atol=1e-10)
    assert pred.covariance is not None
    torch.testing.assert_close(pred.covariance, kss - ks @ inv @ ks.T, rtol=1e-9, atol=1e-10)


CHECKS: dict[str, Callable[[], None]] = {
    name.removeprefix("check_").replace("_", "-"): fn
    for name, fn in globals().items()
    if name.startswith("check_")
}


def test_every_table_line_has_a_check_and_every_check_a_line() -> None:
    assert LINES and sorted(LINES) == sorted(CHECKS)


@pytest.mark.parametrize("line", LINES)
def test_table_line(line: str) -> None:
    CHECKS[line]()
