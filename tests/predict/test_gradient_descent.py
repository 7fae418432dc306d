"""gradient_descent_mse and its ensemble against a simulated linear random-features model.

The model is ``f(x) = phi(x)^T theta`` with fixed random features; its NTK is ``Phi Phi^T`` and, with
``theta_0 ~ N(0, diag(s^2))``, its NNGP is ``Phi diag(s^2) Phi^T``. Gradient flow in *parameter space* is solved
exactly with a matrix exponential (scipy), an independent reference for the function-space formulas.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch

from tangentlab.predict import gp_inference, gradient_descent_mse, gradient_descent_mse_ensemble

N_TRAIN, N_TEST, N_FEATURES, N_OUT = 10, 6, 30, 2
LR = 0.7


@pytest.fixture(scope="module")
def features() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    phi = torch.randn(N_TRAIN, N_FEATURES, generator=g, dtype=torch.float64) / math.sqrt(N_FEATURES)
    phi_s = torch.randn(N_TEST, N_FEATURES, generator=g, dtype=torch.float64) / math.sqrt(N_FEATURES)
    s2 = 0.5 + 1.5 * torch.rand(N_FEATURES, generator=g, dtype=torch.float64)
    y = torch.randn(N_TRAIN, N_OUT, generator=g, dtype=torch.float64)
    theta0 = torch.randn(N_FEATURES, N_OUT, generator=g, dtype=torch.float64) * s2.sqrt()[:, None]
    return {"phi": phi, "phi_s": phi_s, "s2": s2, "y": y, "theta0": theta0}


def _flow_transition(phi: torch.Tensor, y: torch.Tensor, t: float) -> tuple[np.ndarray, np.ndarray]:
    """Exact parameter-space gradient flow: theta_t = E theta_0 + c, from expm of the augmented linear ODE."""
    n, p = phi.shape
    k = y.shape[1]
    a = -(LR / n) * (phi.T @ phi).numpy()
    b = (LR / n) * (phi.T @ y).numpy()
    m = np.zeros((p + k, p + k))
    m[:p, :p], m[:p, p:] = a, b
    e = scipy.linalg.expm(t * m)
    return e[:p, :p], e[:p, p:]


@pytest.mark.parametrize("t", [0.0, 3.0, 25.0, 400.0])
def test_matches_exact_parameter_space_flow(features: dict[str, torch.Tensor], t: float) -> None:
    phi, phi_s, y, theta0 = features["phi"], features["phi_s"], features["y"], features["theta0"]
    e, c = _flow_transition(phi, y, t)
    theta_t = torch.from_numpy(e) @ theta0 + torch.from_numpy(c)
    out_test = gradient_descent_mse(
        phi @ phi.T, y, phi_s @ phi.T, t=t, learning_rate=LR, f0_train=phi @ theta0, f0_test=phi_s @ theta0
    )
    out_train = gradient_descent_mse(phi @ phi.T, y, t=t, learning_rate=LR, f0_train=phi @ theta0)
    torch.testing.assert_close(out_test, phi_s @ theta_t, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(out_train, phi @ theta_t, rtol=1e-9, atol=1e-10)


def test_infinite_time_is_min_norm_interpolant(features: dict[str, torch.Tensor]) -> None:
    phi, phi_s, y, theta0 = features["phi"], features["phi_s"], features["y"], features["theta0"]
    theta_inf = theta0 + torch.linalg.pinv(phi) @ (y - phi @ theta0)  # where GD from theta0 converges
    out, info = gradient_descent_mse(
        phi @ phi.T,
        y,
        phi_s @ phi.T,
        learning_rate=LR,
        f0_train=phi @ theta0,
        f0_test=phi_s @ theta0,
        return_info=True,
    )
    torch.testing.assert_close(out, phi_s @ theta_inf, rtol=1e-9, atol=1e-10)
    assert info.solver == "cholesky" and info.jitter == 0.0
    evals = torch.linalg.eigvalsh(phi @ phi.T)
    assert info.condition_number == pytest.approx(float(evals[-1] / evals[0]), rel=1e-8)
    train = gradient_descent_mse(phi @ phi.T, y, t=math.inf, learning_rate=LR, f0_train=phi @ theta0)
    torch.testing.assert_close(train, y, rtol=1e-9, atol=1e-9)


def test_discrete_gradient_descent_within_its_discretisation_bound(features: dict[str, torch.Tensor]) -> None:
    """Simulated GD steps against the flow; the tolerance is the closed-form gap (1-r)^T - exp(-rT) per mode."""
    phi, phi_s, y, theta0 = features["phi"], features["phi_s"], features["y"], features["theta0"]
    theta_ntk = phi @ phi.T
    lam = torch.linalg.eigvalsh(theta_ntk)
    lr = 0.01 * N_TRAIN / float(lam[-1])  # eta * lambda_max / n = 0.01
    steps = 1500
    theta = theta0.clone()
    for _ in range(steps):
        theta = theta - lr * phi.T @ (phi @ theta - y) / N_TRAIN
    pred_train = gradient_descent_mse(theta_ntk, y, t=steps, learning_rate=lr, f0_train=phi @ theta0)
    pred_test = gradient_descent_mse(
        theta_ntk, y, phi_s @ phi.T, t=steps, learning_rate=lr, f0_train=phi @ theta0, f0_test=phi_s @ theta0
    )
    r = lr * lam / N_TRAIN
    gap = ((1 - r) ** steps - torch.exp(-r * steps)).abs()
    resid = torch.linalg.norm(phi @ theta0 - y)
    assert torch.linalg.norm(phi @ theta - pred_train) <= float(gap.max() * resid) * (1 + 1e-6) + 1e-12
    test_bound = torch.linalg.matrix_norm(phi_s @ phi.T, ord=2) * (gap / lam).max() * resid
    assert torch.linalg.norm(phi_s @ theta - pred_test) <= float(test_bound) * (1 + 1e-6) + 1e-12
    assert float(gap.max()) < 0.01  # the check is not vacuous


def test_time_sequence_stacks_and_vector_targets(features: dict[str, torch.Tensor]) -> None:
    phi, phi_s, y = features["phi"], features["phi_s"], features["y"][:, 0]
    ks, kx = phi_s @ phi.T, phi @ phi.T
    out = gradient_descent_mse(kx, y, ks, t=[0.0, 5.0, None], learning_rate=LR)
    assert out.shape == (3, N_TEST)
    torch.testing.assert_close(out[0], torch.zeros(N_TEST, dtype=torch.float64))
    torch.testing.assert_close(out[1], gradient_descent_mse(kx, y, ks, t=5.0, learning_rate=LR))
    torch.testing.assert_close(out[2], gradient_descent_mse(kx, y, ks, learning_rate=LR))


def test_ridge_at_infinity_is_kernel_ridge(features: dict[str, torch.Tensor]) -> None:
    phi, phi_s, y = features["phi"], features["phi_s"], features["y"]
    kx, ks = phi @ phi.T, phi_s @ phi.T
    ref = ks @ torch.linalg.solve(kx + 0.3 * torch.eye(N_TRAIN, dtype=torch.float64), y)
    torch.testing.assert_close(gradient_descent_mse(kx, y, ks, ridge=0.3), ref, rtol=1e-10, atol=1e-12)
    late = gradient_descent_mse(kx, y, ks, ridge=0.3, t=1e7)
    torch.testing.assert_close(late, ref, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("t", [2.0, 30.0, None])
def test_ensemble_matches_monte_carlo_over_inits(features: dict[str, torch.Tensor], t: float | None) -> None:
    """Mean and covariance over 2,000 simulated inits; tolerance = 5 Monte Carlo standard errors."""
    phi, phi_s, s2 = features["phi"], features["phi_s"], features["s2"]
    y = features["y"][:, 0]
    n_inits = 2000
    g = torch.Generator().manual_seed(1)
    theta0 = torch.randn(N_FEATURES, n_inits, generator=g, dtype=torch.float64) * s2.sqrt()[:, None]
    if t is None:
        theta_t = theta0 + torch.linalg.pinv(phi) @ (y[:, None] - phi @ theta0)
    else:
        e, c = _flow_transition(phi, y[:, None], t)
        theta_t = torch.from_numpy(e) @ theta0 + torch.from_numpy(c)
    f = (phi_s @ theta_t).T  # (inits, m)
    emp_mean = f.mean(0)
    emp_cov = torch.cov(f.T)
    nngp = lambda a, b: a @ torch.diag(s2) @ b.T  # noqa: E731
    pred = gradient_descent_mse_ensemble(
        y,
        nngp_train_train=nngp(phi, phi),
        ntk_train_train=phi @ phi.T,
        nngp_test_train=nngp(phi_s, phi),
        ntk_test_train=phi_s @ phi.T,
        nngp_test_test=nngp(phi_s, phi_s),
        t=t,
        learning_rate=LR,
    )
    assert pred.covariance is not None
    var = torch.diagonal(pred.covariance)
    z = 5.0
    assert bool(((emp_mean - pred.mean).abs() <= z * (var / n_inits).sqrt()).all())
    se_cov = ((pred.covariance**2 + var[:, None] * var[None, :]) / n_inits).sqrt()
    assert bool(((emp_cov - pred.covariance).abs() <= z * se_cov).all())
    assert float((pred.covariance - pred.covariance.T).abs().max()) == 0.0


def test_ensemble_nngp_mode_at_infinity_is_gp_posterior(features: dict[str, torch.Tensor]) -> None:
    phi, phi_s, s2, y = features["phi"], features["phi_s"], features["s2"], features["y"]
    kxx, ksx, kss = phi * s2 @ phi.T, phi_s * s2 @ phi.T, phi_s * s2 @ phi_s.T
    ens = gradient_descent_mse_ensemble(
        y, nngp_train_train=kxx, nngp_test_train=ksx, nngp_test_test=kss, mode="nngp"
    )
    post = gp_inference(kxx, y, ksx, kss)
    torch.testing.assert_close(ens.mean, post.mean, rtol=1e-9, atol=1e-10)
    assert ens.covariance is not None and post.covariance is not None
    torch.testing.assert_close(ens.covariance, post.covariance, rtol=1e-7, atol=1e-9)
    same = gradient_descent_mse_ensemble(
        y,
        nngp_train_train=kxx,
        ntk_train_train=kxx,
        nngp_test_train=ksx,
        ntk_test_train=ksx,
        nngp_test_test=kss,
        t=7.0,
    )
    other = gradient_descent_mse_ensemble(
        y, nngp_train_train=kxx, nngp_test_train=ksx, nngp_test_test=kss, mode="nngp", t=7.0
    )
    torch.testing.assert_close(same.mean, other.mean)


def test_ensemble_mean_equals_single_net_with_zero_init(features: dict[str, torch.Tensor]) -> None:
    phi, phi_s, s2, y = features["phi"], features["phi_s"], features["s2"], features["y"]
    ens = gradient_descent_mse_ensemble(
        y,
        nngp_train_train=phi * s2 @ phi.T,
        ntk_train_train=phi @ phi.T,
        nngp_test_train=phi_s * s2 @ phi.T,
        ntk_test_train=phi_s @ phi.T,
        t=[1.0, 10.0],
    )
    single = gradient_descent_mse(phi @ phi.T, y, phi_s @ phi.T, t=[1.0, 10.0])
    torch.testing.assert_close(ens.mean, single)
    assert ens.covariance is None and ens.mean.shape == (2, N_TEST, N_OUT)
