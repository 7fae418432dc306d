"""Statistics of the ``scaling_arms`` report: paired exponent differences and means with bootstrap CIs over seeds.

Runs of one seed share their data draw and their init, so two methods measured in the same runs are compared
*paired*: each bootstrap replicate resamples seeds with replacement, keeps every point of each drawn seed and refits
both exponents on the same replicate (Efron & Tibshirani 1993, ch. 13, percentile interval). Exponents are decay
exponents ``alpha`` of ``L(x) = a x^(-alpha)``, fitted by least squares of ``log L`` on ``log x``
(:func:`tangentlab.report.bootstrap.fit_decay_exponent`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from tangentlab.report.bootstrap import fit_decay_exponent

N_BOOT = 500
LEVEL = 0.95


class Interval(NamedTuple):
    """A point estimate with its bootstrap percentile interval."""

    value: float
    lo: float
    hi: float

    def text(self, digits: int = 3) -> str:
        return f"{self.value:.{digits}f} [{self.lo:.{digits}f}, {self.hi:.{digits}f}]"


def _percentile(samples: list[float], value: float) -> Interval:
    if not samples:
        return Interval(value, value, value)
    lo, hi = np.quantile(samples, [(1 - LEVEL) / 2, (1 + LEVEL) / 2])
    return Interval(value, float(lo), float(hi))


def decay_exponent(x: np.ndarray, y: np.ndarray) -> float | None:
    """``alpha`` of ``y = a x^(-alpha)`` (None with fewer than two distinct ``x`` or a non-positive ``y``)."""
    if np.unique(x).size < 2 or not np.all(y > 0) or not np.all(np.isfinite(y)):
        return None
    return fit_decay_exponent(x, y)[0]


def paired_exponents(
    x: np.ndarray, a: np.ndarray, b: np.ndarray, seeds: np.ndarray, *, n_boot: int = N_BOOT, seed: int = 0
) -> tuple[Interval, Interval, Interval] | None:
    """Decay exponents of ``a`` and ``b`` against ``x`` (the same points, paired by ``seeds``) and of their
    difference ``alpha_a - alpha_b``, each with a percentile CI from one seed bootstrap; None when either fit is
    impossible on all points."""
    x, a, b, seeds = (np.asarray(v, dtype=float).reshape(-1) for v in (x, a, b, seeds))
    alpha_a, alpha_b = decay_exponent(x, a), decay_exponent(x, b)
    if alpha_a is None or alpha_b is None:
        return None
    groups = np.unique(seeds)
    members = [np.flatnonzero(seeds == g) for g in groups]
    rng = np.random.default_rng(seed)
    reps: list[tuple[float, float]] = []
    for _ in range(n_boot if groups.size > 1 else 0):
        idx = np.concatenate([members[i] for i in rng.integers(0, groups.size, groups.size)])
        ra, rb = decay_exponent(x[idx], a[idx]), decay_exponent(x[idx], b[idx])
        if ra is not None and rb is not None:
            reps.append((ra, rb))
    return (
        _percentile([r[0] for r in reps], alpha_a),
        _percentile([r[1] for r in reps], alpha_b),
        _percentile([r[0] - r[1] for r in reps], alpha_a - alpha_b),
    )


def exponent(
    x: np.ndarray, y: np.ndarray, seeds: np.ndarray, *, n_boot: int = N_BOOT, seed: int = 0
) -> Interval | None:
    """Decay exponent of ``y`` against ``x`` with its seed-bootstrap CI (None when the fit is impossible)."""
    out = paired_exponents(x, y, y, seeds, n_boot=n_boot, seed=seed)
    return None if out is None else out[0]


def mean_interval(values: np.ndarray, *, n_boot: int = N_BOOT, seed: int = 0) -> Interval | None:
    """The mean of per-seed ``values`` with a bootstrap percentile CI (None for no values)."""
    v = np.asarray(values, dtype=float).reshape(-1)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return None
    rng = np.random.default_rng(seed)
    reps = [float(v[rng.integers(0, v.size, v.size)].mean()) for _ in range(n_boot if v.size > 1 else 0)]
    return _percentile(reps, float(v.mean()))


def decades(x: np.ndarray) -> float:
    """Decades spanned by the positive values ``x``."""
    x = np.asarray(x, dtype=float)
    return float(np.log10(x.max() / x.min())) if x.size else 0.0


__all__ = [
    "LEVEL",
    "N_BOOT",
    "Interval",
    "decades",
    "decay_exponent",
    "exponent",
    "mean_interval",
    "paired_exponents",
]
