"""Fitting scaling laws: least squares on a log–log scale, with the slope's standard error.

A power law ``y = C x^a`` is a line ``log y = a log x + log C``. Lee et al. 2019 (arXiv 1902.06720, Fig. 1) read
the exponent ``a = -1/2`` off such a line for training-induced changes against width.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np


class PowerLawFit(NamedTuple):
    """``log y = slope * log x + intercept`` (natural logs); ``stderr`` is the slope's standard error.

    Attributes:
        slope: fitted exponent ``a``.
        intercept: ``log C``.
        stderr: ``sqrt(s^2 / sum_i (u_i - mean u)^2)`` with ``u = log x`` and ``s^2`` the residual variance with
            ``m - 2`` degrees of freedom (NaN for two points, where the line fits exactly).
    """

    slope: float
    intercept: float
    stderr: float


def fit_power_law(x: Any, y: Any) -> PowerLawFit:
    """Ordinary least squares of ``log y`` on ``log x``.

    Args:
        x: positive abscissae (e.g. widths); repeated values (several seeds per width) are allowed.
        y: positive ordinates of the same length.

    Returns:
        A :class:`PowerLawFit` (unpacks as ``slope, intercept, stderr``).

    Raises:
        ValueError: for different lengths, fewer than two points, fewer than two distinct ``x``, or values that are
            not finite and positive.
    """
    xs = np.asarray(x, dtype=np.float64).reshape(-1)
    ys = np.asarray(y, dtype=np.float64).reshape(-1)
    if xs.shape != ys.shape:
        raise ValueError(f"x, y: expected the same length, got {xs.size} and {ys.size}")
    for name, v in (("x", xs), ("y", ys)):
        if not (np.all(np.isfinite(v)) and np.all(v > 0)):
            raise ValueError(f"{name}: expected finite positive values for a log–log fit, got {v.tolist()}")
    if xs.size < 2 or np.unique(xs).size < 2:
        raise ValueError(f"x: expected at least two distinct values, got {np.unique(xs).tolist()}")
    u, v = np.log(xs), np.log(ys)
    du = u - u.mean()
    sxx = float(du @ du)
    slope = float(du @ (v - v.mean())) / sxx
    intercept = float(v.mean() - slope * u.mean())
    dof = xs.size - 2
    if dof <= 0:
        return PowerLawFit(slope, intercept, math.nan)
    resid = v - (slope * u + intercept)
    stderr = math.sqrt(float(resid @ resid) / dof / sxx)
    return PowerLawFit(slope, intercept, stderr)
