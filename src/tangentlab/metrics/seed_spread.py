"""Seed-to-seed spread of a measured quantity, and whether a difference stands above it (a noise floor)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import numpy as np

Distinction = Literal["differ", "indistinguishable", "no noise floor"]


@dataclass(frozen=True)
class SeedSpread:
    """Mean, spread and standard error of one quantity measured once per seed.

    Attributes:
        mean: the mean over seeds.
        std: the sample standard deviation over seeds (``ddof = 1``; NaN for one seed): how much one seed's value
            scatters, the quantity's own seed-to-seed noise.
        stderr: ``std / sqrt(n)``, the standard error of ``mean`` (NaN for one seed).
        n: the number of seeds.
    """

    mean: float
    std: float
    stderr: float
    n: int


def seed_spread(values: Iterable[float]) -> SeedSpread:
    """:class:`SeedSpread` of ``values`` (one per seed, finite).

    Raises:
        ValueError: for no values or a non-finite one.
    """
    v = np.asarray([float(x) for x in values], dtype=np.float64)
    if v.size == 0:
        raise ValueError("values: expected at least one value, got none")
    if not np.isfinite(v).all():
        raise ValueError(f"values: expected finite values, got {v.tolist()}")
    if v.size < 2:
        return SeedSpread(float(v[0]), math.nan, math.nan, 1)
    std = float(v.std(ddof=1))
    return SeedSpread(float(v.mean()), std, std / math.sqrt(v.size), int(v.size))


def distinguish(spread: SeedSpread, *, z: float = 2.0, min_seeds: int = 3) -> Distinction:
    """Whether the mean of a per-seed difference stands above its own seed-to-seed noise.

    ``"differ"`` when ``|mean| > z * stderr``; ``"indistinguishable"`` when it does not (the difference is within
    the seed-to-seed noise: no verdict either way); ``"no noise floor"`` with fewer than ``min_seeds`` seeds (the
    standard error of two seeds is itself too uncertain to judge against).
    """
    if spread.n < min_seeds or not math.isfinite(spread.stderr):
        return "no noise floor"
    return "differ" if abs(spread.mean) > z * spread.stderr else "indistinguishable"
