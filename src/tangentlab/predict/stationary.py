"""Kernel ridge regression with the classical RBF and Laplace kernels on raw inputs, the bandwidth fixed, set by the
median heuristic, or chosen on a validation set: the "alternative kernels" beside NTK and NNGP regression
(Liu, Tai, Crandall & Huang 2025, arXiv 2501.10929)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch

from tangentlab.kernels.stationary import KINDS, Norm, StationaryKind, median_bandwidth, stationary_kernel
from tangentlab.predict._checks import as_targets, check_nonnegative
from tangentlab.predict.regressor import KernelRegressor, NotFittedError
from tangentlab.predict.solve import PSD_TOL, SolveInfo

Bandwidth = float | Literal["median", "validation"]
#: Multiples of the median distance tried when the bandwidth is chosen on a validation set.
DEFAULT_GRID: tuple[float, ...] = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)


class StationaryRegressor:
    """``f(x) = k(x, X) (k(X, X) + ridge I)^{-1} Y`` with ``k`` an RBF or Laplace kernel
    (:mod:`tangentlab.kernels.stationary`).

    Args:
        kind: ``"rbf"`` or ``"laplace"``.
        bandwidth: a positive number; ``"median"`` (the median distance between training inputs); or
            ``"validation"`` (the multiple ``c`` of the median in ``grid`` whose fit on the training set has the
            lowest mean squared error on ``(x_val, y_val)``; ties go to the first).
        ridge: added to the training kernel's diagonal (the kernels have unit diagonal, so it is also relative).
        norm: ``"l2"`` (Euclidean) or ``"l1"`` (Manhattan; Laplace only).
        grid: the multiples of the median tried by ``"validation"``.
        psd_tol: relative tolerance of the PSD check of every solve.

    Attributes:
        bandwidth_: the bandwidth used.
        median_: the median distance between training inputs (None for a fixed bandwidth).
        validation_mse_: ``{bandwidth: validation MSE}`` for ``"validation"`` (else empty).
        solve_info_: :class:`SolveInfo` of the final fit.
    """

    def __init__(
        self,
        kind: StationaryKind = "rbf",
        *,
        bandwidth: Bandwidth = "median",
        ridge: float = 0.0,
        norm: Norm = "l2",
        grid: Sequence[float] = DEFAULT_GRID,
        psd_tol: float = PSD_TOL,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind: expected one of {KINDS}, got {kind!r}")
        if not (
            bandwidth in ("median", "validation") or (isinstance(bandwidth, int | float) and bandwidth > 0)
        ):
            raise ValueError(
                f"bandwidth: expected a positive number, 'median' or 'validation', got {bandwidth!r}"
            )
        if not grid or any(not (isinstance(c, int | float) and c > 0) for c in grid):
            raise ValueError(f"grid: expected positive multiples of the median, got {list(grid)!r}")
        self.kind: StationaryKind = kind
        self.bandwidth = bandwidth
        self.ridge = check_nonnegative("ridge", ridge)
        self.norm: Norm = norm
        self.grid = tuple(float(c) for c in grid)
        self.psd_tol = psd_tol

    def _kernel(self, x1: torch.Tensor, x2: torch.Tensor | None, bandwidth: float) -> torch.Tensor:
        return stationary_kernel(self.kind, x1, x2, bandwidth=bandwidth, norm=self.norm)

    def _fit_at(self, x: torch.Tensor, y: Any, bandwidth: float) -> KernelRegressor:
        return KernelRegressor(self.ridge, psd_tol=self.psd_tol).fit(self._kernel(x, None, bandwidth), y)

    def fit(
        self, x: torch.Tensor, y: Any, *, x_val: torch.Tensor | None = None, y_val: Any = None
    ) -> StationaryRegressor:
        """Choose the bandwidth and fit on ``(x, y)``; returns ``self``.

        Raises:
            ValueError: for bad inputs, or ``bandwidth="validation"`` without ``x_val`` and ``y_val``.
        """
        self.validation_mse_: dict[float, float] = {}
        self.median_: float | None = None
        if self.bandwidth in ("median", "validation"):
            self.median_ = median_bandwidth(x, norm=self.norm)
        if self.bandwidth == "validation":
            if x_val is None or y_val is None:
                raise ValueError("x_val, y_val: required when bandwidth='validation'")
            assert self.median_ is not None
            target, _ = as_targets("y_val", y_val, x_val.shape[0])
            for c in self.grid:
                bw = c * self.median_
                pred = self._fit_at(x, y, bw).predict(self._kernel(x_val, x, bw))
                pred = pred.reshape(target.shape)
                self.validation_mse_[bw] = float((pred - target).pow(2).sum(dim=1).mean())
            self.bandwidth_ = min(self.validation_mse_, key=lambda bw: self.validation_mse_[bw])
        elif self.bandwidth == "median":
            assert self.median_ is not None
            self.bandwidth_ = self.median_
        else:
            self.bandwidth_ = float(self.bandwidth)
        self._x = x
        self._model = self._fit_at(x, y, self.bandwidth_)
        self.solve_info_: SolveInfo = self._model.solve_info_
        return self

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Predictions at ``x`` (m, ...): (m,) or (m, k) like the training targets.

        Raises:
            NotFittedError: before :meth:`fit`.
        """
        if not hasattr(self, "_model"):
            raise NotFittedError("This StationaryRegressor instance is not fitted yet; call fit(x, y) first")
        out: torch.Tensor = self._model.predict(self._kernel(x, self._x, self.bandwidth_))
        return out

    def __repr__(self) -> str:
        return f"StationaryRegressor(kind={self.kind!r}, bandwidth={self.bandwidth!r}, ridge={self.ridge!r})"


__all__ = ["DEFAULT_GRID", "Bandwidth", "StationaryRegressor"]
