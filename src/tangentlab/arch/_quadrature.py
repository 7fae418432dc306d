"""Gaussian expectations ``E[f(u) g(v)]`` of a bivariate normal by a polar product rule.

For ``(u, v) ~ N(0, [[a, c], [c, b]])`` write ``u = sqrt(a) z1`` and
``v = sqrt(b) (rho z1 + sqrt(1 - rho^2) z2)`` with ``z ~ N(0, I_2)``, ``rho = c / sqrt(a b)``, and go to polar
coordinates ``z = r (cos t, sin t)``:

    E[f(u) g(v)] = (1 / 2 pi) ∫_0^{2 pi} ∫_0^∞ r exp(-r^2 / 2) f(r l1(t)) g(r l2(t)) dr dt,
    l1(t) = sqrt(a) cos t,   l2(t) = sqrt(b) cos(t - beta),   beta = atan2(sqrt(1 - rho^2), rho).

The radial integral uses the Gauss rule of the weight ``r exp(-r^2/2)`` on ``[0, ∞)`` (a half-range
Gauss–Hermite rule, built once by the discretised Stieltjes procedure and Golub–Welsch; Gautschi 2004,
*Orthogonal Polynomials: Computation and Approximation*, §2.2); it is exact for polynomials in ``r`` of degree
``< 2 * n_radial``. The angular integral is split at the four angles where ``l1`` or ``l2`` vanishes and each arc
uses Gauss–Legendre. Activations whose only kink is at 0 (ReLU, leaky ReLU, |x|, their step derivatives) are
therefore smooth on every piece, and the rule converges exponentially for them as well as for smooth activations,
where a plain Cartesian 2-D Gauss–Hermite rule converges only algebraically (error ~1e-2 for the ReLU derivative
term with 256² nodes).

Accuracy (defaults ``n_radial=32``, ``n_angular=24`` per arc, checked against the closed forms in the tests):
below 1e-9 absolute for ReLU/leaky ReLU/|x| at any correlation, and below 1e-8 for erf/GELU and their derivatives
for variances up to 10; activations growing faster than a polynomial or with kinks away from 0 converge more
slowly (algebraically in the number of angular nodes).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np
import torch
from scipy.special import roots_legendre

Elementwise = Callable[[torch.Tensor], torch.Tensor]

N_RADIAL = 32
N_ANGULAR = 24


@functools.cache
def radial_rule(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of the ``n``-point Gauss rule for ``∫_0^∞ h(r) r exp(-r^2/2) dr`` (weights sum to 1)."""
    # Discretise the measure with a fine Gauss–Legendre rule on [0, 40] (the weight is < 1e-300 beyond).
    x, w = roots_legendre(600)
    r = 20.0 * (x + 1.0)
    w = 20.0 * w * r * np.exp(-0.5 * r * r)
    alpha = np.zeros(n)
    beta = np.zeros(n)
    p_prev = np.zeros_like(r)
    p = np.ones_like(r)
    norm_prev = 1.0
    for k in range(n):
        norm = float(np.sum(w * p * p))
        alpha[k] = float(np.sum(w * r * p * p)) / norm
        beta[k] = norm / norm_prev if k > 0 else norm
        p_next = (r - alpha[k]) * p - (beta[k] if k > 0 else 0.0) * p_prev
        p_prev, p, norm_prev = p, p_next, norm
    jacobi = np.diag(alpha) + np.diag(np.sqrt(beta[1:]), 1) + np.diag(np.sqrt(beta[1:]), -1)
    nodes, vecs = np.linalg.eigh(jacobi)
    weights = beta[0] * vecs[0] ** 2
    return nodes, weights / weights.sum()


@functools.cache
def _legendre(n: int) -> tuple[np.ndarray, np.ndarray]:
    x, w = np.polynomial.legendre.leggauss(n)
    return (x + 1.0) / 2.0, w / 2.0  # on [0, 1], weights sum to 1


def gaussian_expectation(
    f: Elementwise,
    g: Elementwise,
    cov: torch.Tensor,
    var1: torch.Tensor,
    var2: torch.Tensor,
    *,
    n_radial: int = N_RADIAL,
    n_angular: int = N_ANGULAR,
) -> torch.Tensor:
    """``E[f(u) g(v)]`` for ``(u, v) ~ N(0, [[var1, cov], [cov, var2]])``, elementwise over broadcast shapes.

    Args:
        f: elementwise function applied to ``u`` (torch in, torch out).
        g: elementwise function applied to ``v``.
        cov: covariances ``c``.
        var1: variances ``a`` (broadcastable against ``cov``).
        var2: variances ``b`` (broadcastable against ``cov``).
        n_radial: nodes of the radial Gauss rule.
        n_angular: Gauss–Legendre nodes on each of the four angular arcs.

    Returns:
        Tensor of the broadcast shape of the three inputs, in their dtype.
    """
    cov, var1, var2 = torch.broadcast_tensors(cov, var1, var2)
    dtype, device = cov.dtype, cov.device
    sa = var1.clamp_min(0).sqrt()
    sb = var2.clamp_min(0).sqrt()
    rho = (cov / (sa * sb).clamp_min(1e-300)).clamp(-1.0, 1.0)
    beta = torch.atan2(torch.sqrt((1.0 - rho * rho).clamp_min(0)), rho)  # in [0, pi]
    # Angles in [0, 2 pi) where l1 or l2 vanishes; sort them, the arcs run between consecutive ones.
    half = math.pi / 2
    cuts = torch.stack(
        [torch.full_like(beta, half), torch.full_like(beta, 3 * half), beta + half, beta - half]
    )
    cuts = torch.remainder(cuts, 2 * math.pi).sort(dim=0).values
    ends = torch.cat([cuts[1:], cuts[:1] + 2 * math.pi])
    r_np, wr_np = radial_rule(n_radial)
    r = torch.as_tensor(r_np, dtype=dtype, device=device)
    wr = torch.as_tensor(wr_np, dtype=dtype, device=device)
    t_np, wt_np = _legendre(n_angular)
    out = torch.zeros_like(cov)
    for arc in range(4):
        length = ends[arc] - cuts[arc]
        for t01, wt in zip(t_np.tolist(), wt_np.tolist(), strict=True):
            t = cuts[arc] + t01 * length
            l1 = (sa * torch.cos(t)).unsqueeze(-1) * r
            l2 = (sb * torch.cos(t - beta)).unsqueeze(-1) * r
            inner = (f(l1) * g(l2) * wr).sum(-1)
            out += (wt / (2 * math.pi)) * length * inner
    return out
