"""Kernel ridge regression on precomputed kernels, in the scikit-learn estimator style."""

from __future__ import annotations

from typing import Any

import numpy as np

from tangentlab.predict._checks import as_kernel, as_square_kernel, as_targets, check_nonnegative
from tangentlab.predict.solve import PSD_TOL, SolveInfo, solve_psd


class NotFittedError(RuntimeError):
    """Raised when an estimator is used before ``fit``."""


class KernelRegressor:
    """Kernel (ridge) regression with a precomputed kernel: ``f(x) = K_{xX} (K_{XX} + ridge I)^{-1} Y``.

    The infinite-time limit of :func:`gradient_descent_mse` with zero outputs at init. Like scikit-learn's
    ``KernelRidge(kernel="precomputed")``, ``fit`` takes the (n, n) training Gram matrix and ``predict`` the (m, n)
    test-train block; learned state lives in attributes ending in ``_``. Solves go through :func:`solve_psd`
    (Cholesky with a jitter ladder, then eigh) and the record is kept in ``solve_info_``.

    Args:
        ridge: added to the training kernel's diagonal (>= 0).
        psd_tol: relative tolerance of the PSD check.

    Attributes:
        dual_coef_: (n, k) or (n,) coefficients ``(K + ridge I)^{-1} Y`` (float64 tensor).
        n_train_: number of training points.
        solve_info_: :class:`SolveInfo` of the fit.
    """

    def __init__(self, ridge: float = 0.0, *, psd_tol: float = PSD_TOL) -> None:
        self.ridge = ridge
        self.psd_tol = psd_tol

    def fit(self, kernel_train_train: Any, y_train: Any) -> KernelRegressor:
        """Fit on an (n, n) training kernel and (n,) or (n, k) targets; returns ``self``.

        Raises:
            ValueError: for a negative ridge, mismatched shapes, NaN/inf, or a kernel that is not PSD.
        """
        ridge = check_nonnegative("ridge", self.ridge)
        k = as_square_kernel("kernel_train_train", kernel_train_train)
        y, was_vector = as_targets("y_train", y_train, k.shape[0])
        coef, info = solve_psd("kernel_train_train", k, y, ridge=ridge, psd_tol=self.psd_tol)
        self.dual_coef_ = coef[:, 0] if was_vector else coef
        self.n_train_ = k.shape[0]
        self.solve_info_: SolveInfo = info
        return self

    def predict(self, kernel_test_train: Any) -> Any:
        """Predictions for an (m, n) test-train kernel; a numpy array in gives a numpy array out.

        Raises:
            NotFittedError: before :meth:`fit`.
            ValueError: if the kernel's second dimension is not the number of training points.
        """
        if not hasattr(self, "dual_coef_"):
            raise NotFittedError("This KernelRegressor instance is not fitted yet; call fit(kernel, y) first")
        k = as_kernel("kernel_test_train", kernel_test_train, cols=self.n_train_)
        out = k @ self.dual_coef_
        return out.numpy() if isinstance(kernel_test_train, np.ndarray) else out

    def __repr__(self) -> str:
        return f"KernelRegressor(ridge={self.ridge!r})"


__all__ = ["KernelRegressor", "NotFittedError"]
