"""Gaussian-process posterior with a precomputed kernel (NNGP or NTK) and the Gaussian prediction record.

Posterior of a zero-mean GP with kernel ``K`` and observation-noise variance ``s^2`` (Rasmussen & Williams 2006,
eqs. 2.23-2.24)::

    mean = K_{*X} (K_{XX} + s^2 I)^{-1} Y
    cov  = K_{**} - K_{*X} (K_{XX} + s^2 I)^{-1} K_{X*}

With the NNGP kernel this is the Bayesian posterior of an infinitely wide network (Lee et al. 2018,
arXiv 1711.00165); with the NTK it is the "NTK-GP" mean of kernel regression (Jacot et al. 2018).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from tangentlab.predict._checks import as_kernel, as_square_kernel, as_targets, check_nonnegative
from tangentlab.predict.solve import PSD_TOL, SolveInfo, solve_psd


@dataclass(frozen=True)
class GaussianPrediction:
    """Mean and covariance of Gaussian predictions.

    Attributes:
        mean: (m, k) predicted means, or (m,) when the targets were a vector; with a leading time axis (T, ...) when
            several times were asked for.
        covariance: (m, m) covariance shared by every output column (outputs are i.i.d. in the infinite-width
            limit), with a leading time axis when several times were asked for; None if not computed.
        info: how the training kernel was solved or diagonalised (for several times: the last solve).
        marginal_variance: (m,) per-point variances when only those were computed (no (m, m) matrix), else None.
    """

    mean: torch.Tensor
    covariance: torch.Tensor | None
    info: SolveInfo
    marginal_variance: torch.Tensor | None = None

    @property
    def variance(self) -> torch.Tensor | None:
        """Per-point variance: the covariance's diagonal, or ``marginal_variance``; None if neither was computed."""
        if self.covariance is None:
            return self.marginal_variance
        return torch.diagonal(self.covariance, dim1=-2, dim2=-1)


def gp_inference(
    kernel_train_train: Any,
    y_train: Any,
    kernel_test_train: Any = None,
    kernel_test_test: Any = None,
    *,
    noise: float = 0.0,
    psd_tol: float = PSD_TOL,
) -> GaussianPrediction:
    """Posterior of a zero-mean GP with a precomputed kernel (NNGP or NTK).

    ``mean = K_{*X} (K + noise I)^{-1} Y``, ``cov = K_{**} - K_{*X} (K + noise I)^{-1} K_{X*}``
    (Rasmussen & Williams 2006, eqs. 2.23-2.24; Lee et al. 2018, arXiv 1711.00165 for the NNGP).

    Args:
        kernel_train_train: (n, n) PSD kernel on the training inputs.
        y_train: (n,) or (n, k) targets.
        kernel_test_train: (m, n) kernel between test and training inputs; None predicts on the training inputs.
        kernel_test_test: (m, m) kernel on the test inputs; needed for the covariance when ``kernel_test_train`` is
            given (None then gives ``covariance=None``).
        noise: observation-noise variance added to the training diagonal.
        psd_tol: relative tolerance of the PSD check.

    Returns:
        A :class:`GaussianPrediction` with the solver record.

    Raises:
        ValueError: for mismatched shapes, non-finite values, negative noise, or a kernel that is not PSD.
    """
    k_xx = as_square_kernel("kernel_train_train", kernel_train_train)
    n = k_xx.shape[0]
    y, was_vector = as_targets("y_train", y_train, n)
    noise = check_nonnegative("noise", noise)
    k_ss: torch.Tensor | None
    if kernel_test_train is None:
        k_sx, k_ss = k_xx, k_xx
    else:
        k_sx = as_kernel("kernel_test_train", kernel_test_train, cols=n)
        k_ss = None if kernel_test_test is None else as_square_kernel("kernel_test_test", kernel_test_test)
        if k_ss is not None and k_ss.shape[0] != k_sx.shape[0]:
            raise ValueError(
                f"kernel_test_test: expected shape ({k_sx.shape[0]}, {k_sx.shape[0]}) to match kernel_test_train, "
                f"got {tuple(k_ss.shape)}"
            )
    rhs = torch.cat([y, k_sx.T], dim=1)
    sol, info = solve_psd("kernel_train_train", k_xx, rhs, ridge=noise, psd_tol=psd_tol)
    mean = k_sx @ sol[:, : y.shape[1]]
    cov = None
    if k_ss is not None:
        cov = k_ss - k_sx @ sol[:, y.shape[1] :]
        cov = 0.5 * (cov + cov.T)
    return GaussianPrediction(mean[:, 0] if was_vector else mean, cov, info)
