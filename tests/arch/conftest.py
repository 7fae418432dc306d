"""Shared checks for the arch tests: the analytic kernel against the Monte Carlo average of built networks.

Tolerance, entry by entry: ``|analytic - mean| <= 5 SE + bias``, with SE the Monte Carlo standard error of the
mean over ``N_SEEDS`` networks (the t-distribution with 63 degrees of freedom exceeds 5 with probability ~5e-6,
so a correct kernel passes all of a few thousand comparisons) and ``bias`` the finite-width bias of the mean:

- ``exact=True`` (one hidden layer of weights before the readout): zero. The first layer's pre-activations are
  exactly Gaussian given the inputs and the readout weights are independent of them, so the seed-average of the
  empirical NNGP and NTK equals the analytic kernel at every width (up to float64 rounding, 1e-12 relative).
- ``exact=False`` (deeper nets): a later layer sees the empirical kernel ``K̂`` of the previous one, and
  ``E[F(K̂)] - F(K) ≈ F''(K) Var(K̂) / 2`` (delta method), which is O(1/width). Since ``Var F(K̂) ≈ F'(K)^2 Var(K̂)``
  and the layer maps have curvature ``|F''| / F'^2 <~ 1 / |F|`` on the kernel's own scale, the bias is at most
  about ``std^2 / (2 |F|)``; we allow twice that, ``std_ij^2 / sqrt(|mean_ii mean_jj|)``, measured per entry
  (``std`` across seeds, the entry's Cauchy–Schwarz scale in the denominator).
"""

from __future__ import annotations

import pytest
import torch

import tangentlab as tl

N_SEEDS = 64
WIDTH = 1024


def _check(
    name: str, analytic: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, sem: torch.Tensor, exact: bool
):
    scale = torch.sqrt(torch.outer(mean.diagonal().abs(), mean.diagonal().abs()))
    bias = torch.zeros_like(mean) if exact else std**2 / scale
    tol = 5 * sem + bias + 1e-12 * scale
    err = (analytic - mean).abs()
    worst = int(torch.argmax(err / tol))
    assert bool((err <= tol).all()), (
        f"{name}: |analytic - mean| = {err.flatten()[worst]:.3g} > tol {tol.flatten()[worst]:.3g} "
        f"(analytic {analytic.flatten()[worst]:.6g}, mean {mean.flatten()[worst]:.6g}, sem {sem.flatten()[worst]:.3g})"
    )


def assert_law(net, x: torch.Tensor, parametrization: str = "ntk", *, exact: bool) -> None:
    """``net.kernel(x)`` agrees with ``monte_carlo_kernel(net, x)`` (NNGP and NTK) within the tolerance above."""
    analytic = net.kernel(x, parametrization=parametrization)
    mc = tl.monte_carlo_kernel(net, x, n_seeds=N_SEEDS, parametrization=parametrization, method="structured")
    assert analytic.nngp.dtype == torch.float64 and analytic.ntk.shape == (x.shape[0], x.shape[0])
    _check("nngp", analytic.nngp, mc.nngp, mc.nngp_std, mc.nngp_sem, exact)
    _check("ntk", analytic.ntk, mc.ntk, mc.ntk_std, mc.ntk_sem, exact)


def inputs(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.fixture
def law():
    """The check :func:`assert_law`."""
    return assert_law


@pytest.fixture
def make_inputs():
    """``make_inputs(*shape, seed=0)``: float64 standard normal inputs."""
    return inputs
