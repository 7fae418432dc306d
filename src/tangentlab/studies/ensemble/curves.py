"""Distances of the ``ensemble`` study against width: bootstrap over members, fitted slopes, match calls.

The rules are stated in :mod:`tangentlab.studies.ensemble.report`.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Literal

import numpy as np

from tangentlab.report.fits import fit_power_law
from tangentlab.studies._base import ResultRow
from tangentlab.studies.ensemble import EnsembleParams, numerics

THEORY_SLOPE = -0.5
TOLERANCE = 0.15
MATCH_TOL = 0.1
N_BOOT = 500
LEVEL = 0.95
Z = 1.96  # normal interval: point ± Z bootstrap standard errors
STATS: tuple[str, ...] = ("mean", "variance")
Match = Literal["match", "no match", "undecided"]


@dataclass(frozen=True)
class Curve:
    """One statistic at one time over the widths of one dataset.

    Attributes:
        widths: (R,) width of each run.
        values: (R,) point distances.
        boot: (N_BOOT, R) bootstrap replicates.
        slope, lo, hi: fitted log-log slope and its interval (NaN with fewer than two widths).
    """

    widths: np.ndarray
    values: np.ndarray
    boot: np.ndarray
    slope: float
    lo: float
    hi: float

    def interval(self, width: int) -> tuple[float, float, float]:
        """(mean over the runs at ``width`` of the point distance, interval lo, hi) of that width."""
        sel = self.widths == width
        value = float(self.values[sel].mean())
        half = Z * float(np.std(self.boot[:, sel].mean(axis=1), ddof=1))
        return value, value - half, value + half


def match_call(lo: float, hi: float) -> Match:
    """``"match"`` when the distance's interval lies below ``MATCH_TOL``, ``"no match"`` above, else undecided."""
    if hi < MATCH_TOL:
        return "match"
    if lo > MATCH_TOL:
        return "no match"
    return "undecided"


def within_bound(curve: Curve) -> bool:
    """Whether a slope is not significantly above ``-1/2`` (module docstring)."""
    if not math.isfinite(curve.slope):
        return False
    margin = max(TOLERANCE, curve.slope - curve.lo) if math.isfinite(curve.lo) else TOLERANCE
    return curve.slope <= THEORY_SLOPE + margin


def local_slope(curve: Curve) -> float:
    """The log-log slope between the two widest widths (mean distance at each): the trend where it ends."""
    ws = np.unique(curve.widths)
    if ws.size < 2:
        return math.nan
    (a, va), (b, vb) = ((w, curve.interval(int(w))[0]) for w in ws[-2:])
    return math.log(vb / va) / math.log(b / a) if va > 0 and vb > 0 else math.nan


def _slope(widths: np.ndarray, values: np.ndarray) -> float:
    good = np.isfinite(values) & (values > 0)
    if np.unique(widths[good]).size < 2:
        return math.nan
    return fit_power_law(widths[good], values[good]).slope


def curves(rows: list[ResultRow[EnsembleParams]], times: tuple[int, ...]) -> dict[tuple[str, int], Curve]:
    """``(statistic, t) -> Curve`` for the runs of one dataset (bootstrap over members, fixed seeds)."""
    widths = np.array([r.params.width for r in rows], dtype=float)
    point: dict[str, list[np.ndarray]] = defaultdict(list)
    boots: dict[str, list[np.ndarray]] = defaultdict(list)
    for i, r in enumerate(rows):
        run_times = [int(t) for t in r.artifact("times")]
        cols = [run_times.index(t) for t in times]
        f, g, c = (r.artifact(name)[:, cols] for name in ("f", "g", "c"))
        mu, sigma2 = (r.artifact(name)[cols] for name in ("mu", "sigma2"))
        d = numerics.distances(f, g, c, mu, sigma2)
        bm, bv = numerics.bootstrap_distances(f, g, c, mu, sigma2, n_boot=N_BOOT, seed=i)
        point["mean"].append(d.mean)
        point["variance"].append(d.variance)
        boots["mean"].append(bm)
        boots["variance"].append(bv)
    out: dict[tuple[str, int], Curve] = {}
    for stat in STATS:
        values = np.stack(point[stat])  # (R, T)
        boot = np.stack(boots[stat], axis=1)  # (N_BOOT, R, T)
        for j, t in enumerate(times):
            slope = _slope(widths, values[:, j])
            reps = np.array([_slope(widths, boot[b, :, j]) for b in range(boot.shape[0])])
            reps = reps[np.isfinite(reps)]
            half = Z * float(np.std(reps, ddof=1)) if reps.size > 1 else math.nan
            lo, hi = slope - half, slope + half
            out[(stat, t)] = Curve(widths, values[:, j], boot[:, :, j], slope, lo, hi)
    return out
