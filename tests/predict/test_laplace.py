"""LinearizedLaplace against closed forms: Bayesian linear regression, weight-space GGN posteriors, evidence."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.func import functional_call, jacrev

from tangentlab.predict import LinearizedLaplace, NotFittedError

DT = torch.float64


def _data(n: int, d: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=DT), torch.randn(n, 2, generator=g, dtype=DT)


def _blr(x: torch.Tensor, y: torch.Tensor, alpha: float, sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Bayesian linear regression posterior N(mu, S) for y = X theta + N(0, sigma^2), theta ~ N(0, I / alpha)."""
    a = x.T @ x + alpha * sigma**2 * torch.eye(x.shape[1], dtype=DT)
    return torch.linalg.solve(a, x.T @ y), sigma**2 * torch.linalg.inv(a)


def _linear(d: int, out: int, weight: torch.Tensor) -> nn.Linear:
    model = nn.Linear(d, out, bias=False).to(DT)
    with torch.no_grad():
        model.weight.copy_(weight)
    return model


@pytest.mark.parametrize("outputs", [1, 2])
def test_linear_model_matches_bayesian_linear_regression(outputs: int) -> None:
    x, y2 = _data(12, 4, 0)
    xs, _ = _data(5, 4, 1)
    y = y2[:, :outputs]
    alpha, sigma = 0.7, 0.3
    mu, s = _blr(x, y, alpha, sigma)
    la = LinearizedLaplace(_linear(4, outputs, mu.T), prior_precision=alpha, sigma_noise=sigma).fit(x, y)
    pred = la.predict(xs)
    torch.testing.assert_close(pred.mean, xs @ mu, rtol=0, atol=1e-10)
    assert pred.covariance is not None
    torch.testing.assert_close(pred.covariance, xs @ s @ xs.T, rtol=0, atol=1e-10)
    torch.testing.assert_close(la.kernel_train_, x @ x.T, rtol=0, atol=1e-10)
    assert la.solve_info_.solver == "cholesky"
    assert la.solve_info_.ridge == pytest.approx(alpha * sigma**2)


def _closed_lml(x: torch.Tensor, y: torch.Tensor, alpha: float, sigma: float) -> float:
    cov = x @ x.T / alpha + sigma**2 * torch.eye(x.shape[0], dtype=DT)
    dist = torch.distributions.MultivariateNormal(torch.zeros(x.shape[0], dtype=DT), covariance_matrix=cov)
    return float(sum(dist.log_prob(y[:, o]) for o in range(y.shape[1])))


@pytest.mark.parametrize("outputs", [1, 2])
def test_log_marginal_likelihood_closed_form(outputs: int) -> None:
    x, y2 = _data(15, 3, 2)
    y = y2[:, :outputs]
    alpha, sigma = 2.0, 0.5
    mu, _ = _blr(x, y, alpha, sigma)
    la = LinearizedLaplace(_linear(3, outputs, mu.T), prior_precision=alpha, sigma_noise=sigma).fit(x, y)
    exact = _closed_lml(x, y, alpha, sigma)
    # at the posterior mean the Laplace evidence is exact for a linear-Gaussian model, and equals the other form
    assert la.log_marginal_likelihood() == pytest.approx(exact, abs=1e-9)
    assert la.log_marginal_likelihood(form="function_space") == pytest.approx(exact, abs=1e-9)
    # the function-space evidence does not depend on the linearization point; the Laplace one does, and away from
    # the posterior mean it is below the exact evidence (log p(y, theta) is largest at the posterior mean)
    other = _closed_lml(x, y, 0.1, 1.3)
    assert la.log_marginal_likelihood(0.1, 1.3, form="function_space") == pytest.approx(other, abs=1e-9)
    assert la.log_marginal_likelihood(0.1, 1.3) < other - 1e-4
    off = LinearizedLaplace(_linear(3, outputs, mu.T + 0.5), prior_precision=alpha, sigma_noise=sigma).fit(
        x, y
    )
    assert off.log_marginal_likelihood(form="function_space") == pytest.approx(exact, abs=1e-9)
    assert off.log_marginal_likelihood() < exact - 1e-3


def test_evidence_recovers_generating_prior_precision() -> None:
    """Data drawn from the prior: the evidence argmax of alpha is unbiased on the log scale (20 draws)."""
    alpha0, sigma0, n, d = 4.0, 0.1, 120, 60
    logs = []
    for seed in range(20):
        g = torch.Generator().manual_seed(100 + seed)
        x = torch.randn(n, d, generator=g, dtype=DT)
        theta = torch.randn(d, 1, generator=g, dtype=DT) / math.sqrt(alpha0)
        y = x @ theta + sigma0 * torch.randn(n, 1, generator=g, dtype=DT)
        la = LinearizedLaplace(_linear(d, 1, theta.T), sigma_noise=sigma0).fit(x, y)
        la.optimize_prior_precision(fit_sigma_noise=False, method="gradient", form="function_space")
        logs.append(math.log(la.prior_precision_))
    mean_log = sum(logs) / len(logs)
    # one draw estimates log alpha from d = 60 directions (sd ~ sqrt(2/60) = 0.18); 20 draws: sd ~ 0.04
    assert abs(mean_log - math.log(alpha0)) < 0.15
    assert max(abs(v - math.log(alpha0)) for v in logs) < 0.7


def test_optimizer_matches_brute_force_grid_argmax() -> None:
    x, y2 = _data(30, 5, 3)
    y = y2[:, :1] + x[:, :1]
    mu, _ = _blr(x, y, 1.0, 0.5)
    la = LinearizedLaplace(_linear(5, 1, mu.T)).fit(x, y)
    alphas = [10.0**e for e in torch.linspace(-2, 2, 41).tolist()]
    sigmas = [10.0**e for e in torch.linspace(-1.5, 0.5, 41).tolist()]
    for form in ("laplace", "function_space"):
        brute = max(
            ((la.log_marginal_likelihood(a, s, form=form), a, s) for a in alphas for s in sigmas),
            key=lambda t: t[0],
        )
        la.optimize_prior_precision(grid=alphas, sigma_grid=sigmas, form=form)
        assert (la.prior_precision_, la.sigma_noise_) == (brute[1], brute[2])
        la.optimize_prior_precision(grid=alphas, sigma_grid=sigmas, form=form, method="gradient")
        # the refined optimum is at least as good as the grid's and within one grid step of it
        assert la.log_marginal_likelihood(form=form) >= brute[0] - 1e-12
        assert abs(math.log10(la.prior_precision_ / brute[1])) <= 0.1 + 1e-9
        assert abs(math.log10(la.sigma_noise_ / brute[2])) <= 0.05 + 1e-9
    # with fit_sigma_noise=False only alpha moves: the argmax over alpha at the current sigma
    s_now = la.sigma_noise_
    la.optimize_prior_precision(fit_sigma_noise=False, grid=alphas)
    assert la.sigma_noise_ == s_now
    assert la.prior_precision_ == max(alphas, key=lambda a: la.log_marginal_likelihood(a, s_now))


def _mlp(outputs: int, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 7), nn.Tanh(), nn.Linear(7, 5), nn.ReLU(), nn.Linear(5, outputs)).to(DT)


def _jacobian(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """(n O, P) Jacobian, rows ordered example-major, by torch.func.jacrev."""
    params = {k: p.detach() for k, p in model.named_parameters()}
    jac = jacrev(lambda p: functional_call(model, p, (x,)).reshape(-1))(params)
    return torch.cat([j.reshape(j.shape[0], -1) for j in jac.values()], dim=1)


def test_mlp_matches_weight_space_ggn_posterior() -> None:
    model = _mlp(1, 0)
    x, y2 = _data(9, 3, 4)
    xs, _ = _data(4, 3, 5)
    y = y2[:, :1]
    alpha, sigma = 0.8, 0.4
    prior_mean = {k: 0.1 * torch.ones_like(p) for k, p in model.named_parameters()}
    la = LinearizedLaplace(model, prior_precision=alpha, sigma_noise=sigma, prior_mean=prior_mean).fit(x, y)
    j, js = _jacobian(model, x), _jacobian(model, xs)
    p = j.shape[1]
    h = j.T @ j / sigma**2 + alpha * torch.eye(p, dtype=DT)
    pred = la.predict(xs)
    assert pred.covariance is not None
    torch.testing.assert_close(pred.covariance, js @ torch.linalg.inv(h) @ js.T, rtol=0, atol=1e-10)
    with torch.no_grad():
        torch.testing.assert_close(pred.mean, model(xs), rtol=0, atol=0)
    # Laplace evidence in weight space with the P-dimensional determinant (MacKay 1992; arXiv 2104.04975)
    theta = torch.cat([q.detach().reshape(-1) for q in model.parameters()])
    m = torch.cat([v.reshape(-1) for v in prior_mean.values()])
    with torch.no_grad():
        r = y - model(x)
    log_lik = float(-0.5 * (r**2).sum() / sigma**2 - 0.5 * r.numel() * math.log(2 * math.pi * sigma**2))
    log_prior = float(-0.5 * alpha * ((theta - m) ** 2).sum() + 0.5 * p * math.log(alpha / (2 * math.pi)))
    log_det = float(torch.logdet(h / (2 * math.pi)))
    assert la.log_marginal_likelihood() == pytest.approx(log_lik + log_prior - 0.5 * log_det, abs=1e-9)
    # function-space evidence with pseudo-targets y - f(X) + J (theta* - m)
    pseudo = r[:, 0] + j @ (theta - m)
    cov = j @ j.T / alpha + sigma**2 * torch.eye(9, dtype=DT)
    dist = torch.distributions.MultivariateNormal(torch.zeros(9, dtype=DT), covariance_matrix=cov)
    assert la.log_marginal_likelihood(form="function_space") == pytest.approx(
        float(dist.log_prob(pseudo)), abs=1e-9
    )


def test_multi_output_uses_output_averaged_kernel() -> None:
    model = _mlp(3, 1)
    x, _ = _data(6, 3, 6)
    xs, _ = _data(2, 3, 7)
    y = torch.randn(6, 3, dtype=DT, generator=torch.Generator().manual_seed(8))
    la = LinearizedLaplace(model, prior_precision=2.0, sigma_noise=0.5).fit(x, y)
    j = _jacobian(model, x).reshape(6, 3, -1)
    js = _jacobian(model, xs).reshape(2, 3, -1)
    k = torch.einsum("iop,jop->ij", j, j) / 3
    kx = torch.einsum("iop,jop->ij", js, j) / 3
    kss = torch.einsum("iop,jop->ij", js, js) / 3
    torch.testing.assert_close(la.kernel_train_, k, rtol=0, atol=1e-10)
    expected = (kss - kx @ torch.linalg.solve(k + 2.0 * 0.25 * torch.eye(6, dtype=DT), kx.T)) / 2.0
    pred = la.predict(xs)
    assert pred.mean.shape == (2, 3)
    assert pred.covariance is not None
    torch.testing.assert_close(pred.covariance, expected, rtol=0, atol=1e-10)


def test_scalar_output_model_gives_vector_mean() -> None:
    model = nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, 1), nn.Flatten(0)).to(DT)
    x, y2 = _data(5, 2, 9)
    la = LinearizedLaplace(model).fit(x, y2[:, 0])
    assert la.predict(x[:3]).mean.shape == (3,)


def test_errors() -> None:
    model = _mlp(1, 0)
    x, y2 = _data(5, 3, 0)
    with pytest.raises(ValueError, match="prior_precision"):
        LinearizedLaplace(model, prior_precision=0.0)
    with pytest.raises(ValueError, match="sigma_noise"):
        LinearizedLaplace(model, sigma_noise=-1.0)
    with pytest.raises(NotFittedError, match="fit"):
        LinearizedLaplace(model).predict(x)
    with pytest.raises(ValueError, match=r"y: expected shape \(5, 1\)"):
        LinearizedLaplace(model).fit(x, y2)
    la = LinearizedLaplace(model).fit(x, y2[:, :1])
    with pytest.raises(ValueError, match="method"):
        la.optimize_prior_precision(method="newton")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="form"):
        la.log_marginal_likelihood(form="exact")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="grid"):
        la.optimize_prior_precision(grid=[1.0, -1.0])
    with pytest.raises(ValueError, match="prior_mean"):
        LinearizedLaplace(model, prior_mean={}).fit(x, y2[:, :1])


def test_diagonal_predictive_equals_the_full_covariance_diagonal_without_an_m_by_m_matrix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = _mlp(3, 1)
    x, _ = _data(6, 3, 6)
    xs, _ = _data(7, 3, 7)
    y = torch.randn(6, 3, dtype=DT, generator=torch.Generator().manual_seed(8))
    la = LinearizedLaplace(model, prior_precision=2.0, sigma_noise=0.5).fit(x, y)
    full = la.predict(xs)
    assert full.covariance is not None and full.marginal_variance is None
    shapes: list[tuple[int, ...]] = []
    original = la._kernel

    def recording(x1: torch.Tensor, x2: torch.Tensor | None = None) -> torch.Tensor:
        k = original(x1, x2)
        shapes.append(tuple(k.shape))
        return k

    monkeypatch.setattr(la, "_kernel", recording)
    diag = la.predict(xs, covariance="diagonal", block_size=3)
    assert diag.covariance is None and diag.variance is diag.marginal_variance
    torch.testing.assert_close(diag.variance, torch.diagonal(full.covariance), rtol=0, atol=1e-12)
    torch.testing.assert_close(diag.mean, full.mean, rtol=0, atol=0)
    assert (7, 7) not in shapes and max(s[0] * s[1] for s in shapes if s[1] != 6) <= 9
    with pytest.raises(ValueError, match="covariance: expected one of 'full', 'diagonal'"):
        la.predict(xs, covariance="dense")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="block_size"):
        la.predict(xs, covariance="diagonal", block_size=0)


def test_sigma_noise_means_the_noise_std_and_the_old_boolean_is_deprecated() -> None:
    model = _mlp(1, 0)
    x, y2 = _data(8, 3, 0)
    fixed = LinearizedLaplace(model, sigma_noise=0.3).fit(x, y2[:, :1])
    fixed.optimize_prior_precision(fit_sigma_noise=False)
    assert fixed.sigma_noise_ == 0.3
    old = LinearizedLaplace(model, sigma_noise=0.3).fit(x, y2[:, :1])
    with pytest.warns(DeprecationWarning, match="fit_sigma_noise"):
        old.optimize_prior_precision(sigma_noise=False)
    assert (old.prior_precision_, old.sigma_noise_) == (fixed.prior_precision_, fixed.sigma_noise_)
