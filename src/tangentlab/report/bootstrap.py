"""Bootstrap confidence intervals for power-law exponents, resampling whole groups (e.g. seeds).

A scaling law ``L(n) = a n^(-alpha)`` is fitted by least squares of ``log L`` on ``log n``
(:func:`tangentlab.report.fits.fit_power_law`); with ``offset=True`` the law ``L(n) = a n^(-alpha) + c`` (``c >= 0``,
an irreducible loss) is fitted instead, by the same log-space least squares over ``a``, ``alpha`` for each ``c`` and
a bounded 1-D search over ``c in [0, min L)``. Runs of one seed are correlated (one data order, one init), so the
bootstrap draws seeds, not points: each replicate resamples the groups with replacement, keeps every point of each
drawn group (duplicates included) and refits. The CI is the percentile interval of the replicate exponents
(Efron & Tibshirani 1993, ch. 13). With few groups the interval is coarse (with ``G`` groups there are at most
``C(2G-1, G)`` distinct replicates).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from tangentlab.report.fits import fit_power_law


class BootstrapFit(NamedTuple):
    """``alpha`` (the point estimate on all points) with the percentile interval ``[lo, hi]``.

    Attributes:
        alpha: fitted decay exponent ``alpha`` of ``L = a n^(-alpha) (+ c)``.
        lo: lower end of the bootstrap interval.
        hi: upper end of the bootstrap interval.
    """

    alpha: float
    lo: float
    hi: float


def fit_decay_exponent(x: Any, y: Any, *, offset: bool = False) -> tuple[float, float, float]:
    """``(alpha, a, c)`` of ``y = a x^(-alpha) + c`` by least squares in log space (``c = 0`` unless ``offset``).

    Raises:
        ValueError: as :func:`tangentlab.report.fits.fit_power_law` (lengths, fewer than two distinct ``x``,
            values that are not finite and positive).
    """
    xs = np.asarray(x, dtype=np.float64).reshape(-1)
    ys = np.asarray(y, dtype=np.float64).reshape(-1)
    fit = fit_power_law(xs, ys)
    if not offset:
        return -fit.slope, float(np.exp(fit.intercept)), 0.0
    from scipy.optimize import minimize_scalar

    y_min = float(ys.min())

    def sse(c: float) -> float:
        f = fit_power_law(xs, ys - c)
        resid = np.log(ys) - np.log(np.exp(f.intercept) * xs**f.slope + c)
        return float(resid @ resid)

    best = minimize_scalar(
        sse, bounds=(0.0, 0.999 * y_min), method="bounded", options={"xatol": 1e-6 * y_min}
    )
    c = float(best.x) if sse(float(best.x)) < sse(0.0) else 0.0
    f = fit_power_law(xs, ys - c)
    return -f.slope, float(np.exp(f.intercept)), c


def bootstrap_power_law(
    x: Any,
    y: Any,
    groups: Any,
    n_boot: int = 1000,
    seed: int = 0,
    *,
    level: float = 0.95,
    offset: bool = False,
) -> BootstrapFit:
    """Exponent ``alpha`` of ``y ~ a x^(-alpha) (+ c)`` with a bootstrap CI that resamples ``groups``.

    Args:
        x: positive abscissae (e.g. training-set sizes).
        y: positive ordinates (e.g. test losses), same length.
        groups: one label per point (e.g. the seed); whole groups are resampled.
        n_boot: bootstrap replicates.
        seed: seed of the resampling (the same inputs and seed give the same interval).
        level: coverage of the percentile interval.
        offset: fit ``a x^(-alpha) + c`` with ``c >= 0`` instead of a pure power law.

    Returns:
        A :class:`BootstrapFit` (unpacks as ``alpha, lo, hi``). Replicates with fewer than two distinct ``x`` are
        skipped; with a single group the interval is ``[alpha, alpha]``.

    Raises:
        ValueError: for mismatched lengths, ``n_boot < 1``, ``level`` outside (0, 1), or data the point fit rejects.
    """
    xs = np.asarray(x, dtype=np.float64).reshape(-1)
    ys = np.asarray(y, dtype=np.float64).reshape(-1)
    gs = np.asarray(groups).reshape(-1)
    if not (xs.size == ys.size == gs.size):
        raise ValueError(f"x, y, groups: expected the same length, got {xs.size}, {ys.size}, {gs.size}")
    if int(n_boot) != n_boot or n_boot < 1:
        raise ValueError(f"n_boot: expected an integer >= 1, got {n_boot!r}")
    if not 0 < level < 1:
        raise ValueError(f"level: expected a number in (0, 1), got {level!r}")
    alpha = fit_decay_exponent(xs, ys, offset=offset)[0]
    labels = np.unique(gs)
    members = [np.flatnonzero(gs == g) for g in labels]
    rng = np.random.default_rng(seed)
    reps: list[float] = []
    for _ in range(int(n_boot)):
        drawn = rng.integers(0, labels.size, size=labels.size)
        idx = np.concatenate([members[i] for i in drawn])
        if np.unique(xs[idx]).size < 2:
            continue
        reps.append(fit_decay_exponent(xs[idx], ys[idx], offset=offset)[0])
    if not reps:
        return BootstrapFit(alpha, alpha, alpha)
    tail = (1 - level) / 2
    lo, hi = np.quantile(reps, [tail, 1 - tail])
    return BootstrapFit(alpha, float(lo), float(hi))
