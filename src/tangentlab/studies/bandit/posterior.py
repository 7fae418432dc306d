"""Function-space posterior over past pulls, shared by the kernel agents of the ``bandit`` study.

NeuralUCB (Zhou, Li & Gu 2020, arXiv 1911.04462, Alg. 1) keeps ``Z_t = lambda I + sum_i g_i g_i^T / m`` over the
gradients ``g_i = grad_theta f(x_i; theta)`` of past pulls and explores with ``sqrt(g^T Z_t^-1 g / m)``. In NTK
parametrization ``g / sqrt(m)`` of their network is our ``g``, so with the eNTK ``k(x, x') = g(x)^T g(x')`` and the
Gram matrix ``K`` of the ``n`` past pulls, Woodbury gives the exact function-space form used here::

    g^T Z^-1 g = (1/lambda) [k(x, x) - k(x, X) (K + lambda I)^-1 k(X, x)]            (variance)
    log det Z / det(lambda I) = log det(I + K / lambda)                              (information gain)

The same formula with ``lambda = alpha sigma^2`` times ``sigma^2`` is the predictive variance of a linearized
Laplace model with prior precision ``alpha`` and noise ``sigma`` (Immer, Korzepa & Bauer 2021, arXiv 2008.08400),
and with the infinite-width NTK and ``lambda`` the noise variance it is ``1/lambda`` times the GP posterior variance.
:class:`KernelPosterior` keeps ``(K + lambda I)^-1`` and the log determinant and adds one pull at a time in
``O(n^2)`` by the Schur complement, so an agent never recomputes the kernel of its whole history between retrains.
"""

from __future__ import annotations

import math

import torch


class KernelPosterior:
    """``(K + lambda I)^-1`` over past pulls, grown one pull at a time; variances and information gain from it.

    Args:
        lam: the regulariser ``lambda > 0`` (NeuralUCB's ``lambda``; a GP's noise variance).
    """

    def __init__(self, lam: float) -> None:
        if not (lam > 0 and math.isfinite(lam)):
            raise ValueError(f"lam: expected a finite number > 0, got {lam!r}")
        self.lam = float(lam)
        self.inverse = torch.zeros(0, 0, dtype=torch.float64)
        self.logdet = 0.0  # log det(K + lambda I)

    @property
    def n(self) -> int:
        """Number of pulls held."""
        return int(self.inverse.shape[0])

    def reset(self, gram: torch.Tensor, lam: float | None = None) -> None:
        """Start over from the (n, n) Gram matrix of all pulls (after a retrain changed the kernel)."""
        if lam is not None:
            self.lam = float(lam)
        a = gram.to(torch.float64) + self.lam * torch.eye(gram.shape[0], dtype=torch.float64)
        chol = torch.linalg.cholesky(a)
        self.inverse = torch.cholesky_inverse(chol)
        self.logdet = float(2.0 * torch.log(torch.diagonal(chol)).sum())

    def append(self, k_new: torch.Tensor, k_self: float) -> None:
        """Add a pull with kernel ``k_new`` (n,) against the held pulls and ``k_self`` against itself.

        With ``A^-1`` held and ``b = A^-1 k_new``, the Schur complement ``s = k_self + lambda - k_new^T b`` gives
        ``[[A, k],[k^T, c]]^-1 = [[A^-1 + b b^T / s, -b / s], [-b^T / s, 1 / s]]`` and ``log det`` grows by
        ``log s``.
        """
        b = self.inverse @ k_new.to(torch.float64)
        s = float(k_self + self.lam - k_new.to(torch.float64) @ b)
        s = max(s, 1e-12 * self.lam)
        n = self.n
        new = torch.empty(n + 1, n + 1, dtype=torch.float64)
        new[:n, :n] = self.inverse + torch.outer(b, b) / s
        new[:n, n] = -b / s
        new[n, :n] = -b / s
        new[n, n] = 1.0 / s
        self.inverse = new
        self.logdet += math.log(s)

    def info_gain(self) -> float:
        """``log det(I + K / lambda) = log det Z_t / det(lambda I)`` (Zhou et al. 2020, Thm. 4.1's ``log det``)."""
        return self.logdet - self.n * math.log(self.lam)

    def covariance(self, k_cross: torch.Tensor, k_test: torch.Tensor) -> torch.Tensor:
        """``(1/lambda) [K_** - K_*X (K + lambda I)^-1 K_X*]`` for (m, n) ``k_cross`` and (m, m) ``k_test``."""
        if self.n == 0:
            return k_test / self.lam
        return (k_test - k_cross @ self.inverse @ k_cross.T) / self.lam

    def variance(self, k_cross: torch.Tensor, k_diag: torch.Tensor) -> torch.Tensor:
        """The diagonal of :meth:`covariance` from (m, n) ``k_cross`` and the (m,) diagonal ``k_diag``; >= 0."""
        if self.n == 0:
            return (k_diag / self.lam).clamp_min(0.0)
        reduce = ((k_cross @ self.inverse) * k_cross).sum(1)
        return ((k_diag - reduce) / self.lam).clamp_min(0.0)

    def mean(self, k_cross: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """GP posterior mean ``K_*X (K + lambda I)^-1 y`` (zero prior mean) for (n,) ``targets``."""
        if self.n == 0:
            return torch.zeros(k_cross.shape[0], dtype=torch.float64)
        return k_cross @ (self.inverse @ targets.to(torch.float64))
