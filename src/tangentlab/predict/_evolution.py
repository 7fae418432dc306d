"""The operator ``P_t = Theta^{-1} (I - exp(-eta t Theta / n))`` of linearized gradient flow on MSE.

For ``L = (1/(2n)) sum_i ||f(x_i) - y_i||^2`` a linearized network's train outputs obey
``d f / dt = -(eta / n) Theta (f - y)``, so ``f_t - y = exp(-eta t Theta / n) (f_0 - y)`` and on any other input
``f_t(x) = f_0(x) + Theta_{x X} P_t (y - f_0(X))`` (Lee et al. 2019, arXiv 1902.06720, eqs. 9-10, with our 1/n).
Finite ``t`` uses the eigendecomposition ``Theta = V diag(lambda) V^T`` and
``P_t = V diag(-expm1(-eta t lambda / n) / lambda) V^T`` (limit ``eta t / n`` at ``lambda = 0``);
``t = None`` (infinity) solves with ``Theta`` by Cholesky (:func:`solve_psd`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from tangentlab.predict.solve import PSD_TOL, SolveInfo, psd_eigh, solve_psd

Time = float | None


def parse_times(t: Any) -> tuple[list[Time], bool]:
    """``t`` as a list of times (None = infinity) and whether it was a sequence.

    Raises:
        ValueError: for a negative or NaN time, or an empty sequence.
    """
    if t is None:
        return [None], False
    if isinstance(t, torch.Tensor | np.ndarray):
        if t.ndim == 0:
            return parse_times(float(t))
        t = [float(v) for v in t.reshape(-1).tolist()]
    if isinstance(t, Sequence) and not isinstance(t, str):
        if len(t) == 0:
            raise ValueError(
                "t: expected a time, None, or a non-empty sequence of times, got an empty sequence"
            )
        times = [parse_times(v)[0][0] for v in t]
        return times, True
    if isinstance(t, bool) or not isinstance(t, int | float):
        raise TypeError(
            f"t: expected a number >= 0, None (infinity) or a sequence of them, got {type(t).__name__}"
        )
    v = float(t)
    if math.isnan(v) or v < 0:
        raise ValueError(f"t: expected a time >= 0 (or None for infinity), got {t!r}")
    return [None if math.isinf(v) else v], False


class GradientFlow:
    """Applies ``P_t`` for a fixed training kernel at any number of times, decomposing the kernel once.

    Args:
        ntk_train_train: (n, n) symmetric PSD training kernel.
        learning_rate: step size ``eta``; time is counted in steps.
        ridge: added to the kernel's diagonal.
        psd_tol: relative PSD tolerance.
        name: argument name for error messages.
        n_points: number of training points ``n`` in ``exp(-eta t Theta / n)`` (default: the kernel's size; give
            it for a flattened full kernel of size ``n O``).
    """

    def __init__(
        self,
        ntk_train_train: torch.Tensor,
        *,
        learning_rate: float,
        ridge: float,
        psd_tol: float = PSD_TOL,
        name: str = "ntk_train_train",
        n_points: int | None = None,
    ) -> None:
        self.kernel = ntk_train_train
        self.n = ntk_train_train.shape[0] if n_points is None else n_points
        self.learning_rate = learning_rate
        self.ridge = ridge
        self.psd_tol = psd_tol
        self.name = name
        self._eig: tuple[torch.Tensor, torch.Tensor, SolveInfo] | None = None

    def apply(self, rhs: torch.Tensor, t: Time) -> tuple[torch.Tensor, SolveInfo]:
        """``P_t @ rhs`` for an (n, k) right-hand side, and how it was computed."""
        if t is None:
            return solve_psd(self.name, self.kernel, rhs, ridge=self.ridge, psd_tol=self.psd_tol)
        if self._eig is None:
            self._eig = psd_eigh(self.name, self.kernel, ridge=self.ridge, psd_tol=self.psd_tol)
        evals, evecs, info = self._eig
        rate = self.learning_rate * t / self.n
        positive = evals > 0
        safe = torch.where(positive, evals, torch.ones_like(evals))
        gain = torch.where(positive, -torch.expm1(-rate * safe) / safe, torch.full_like(evals, rate))
        return evecs @ (gain[:, None] * (evecs.T @ rhs)), info
