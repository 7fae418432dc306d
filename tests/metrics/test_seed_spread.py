"""Seed spread and the noise floor, against hand computations and a Monte Carlo of the standard error."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tangentlab.metrics import SeedSpread, distinguish, seed_spread


def test_seed_spread_matches_hand_computation() -> None:
    s = seed_spread([1.0, 2.0, 4.0])
    mean = 7 / 3
    std = math.sqrt(((1 - mean) ** 2 + (2 - mean) ** 2 + (4 - mean) ** 2) / 2)
    assert (s.mean, s.std, s.stderr, s.n) == pytest.approx((mean, std, std / math.sqrt(3), 3), rel=1e-14)
    one = seed_spread([0.5])
    assert one.mean == 0.5 and one.n == 1 and math.isnan(one.std) and math.isnan(one.stderr)
    with pytest.raises(ValueError, match="at least one value"):
        seed_spread([])
    with pytest.raises(ValueError, match="finite"):
        seed_spread([1.0, math.nan])


def test_stderr_is_the_spread_of_the_mean_over_repeated_experiments() -> None:
    """Monte Carlo: the std of many 5-seed means equals the typical stderr (sigma / sqrt 5)."""
    rng = np.random.default_rng(0)
    draws = rng.normal(0.3, 2.0, size=(20_000, 5))
    means = draws.mean(axis=1)
    stderrs = [seed_spread(d).stderr for d in draws[:2000]]
    assert float(means.std()) == pytest.approx(2.0 / math.sqrt(5), rel=0.02)
    assert float(np.sqrt(np.mean(np.square(stderrs)))) == pytest.approx(2.0 / math.sqrt(5), rel=0.05)


def test_distinguish_against_the_noise_floor() -> None:
    assert distinguish(SeedSpread(mean=0.5, std=0.1, stderr=0.1, n=3)) == "differ"
    assert distinguish(SeedSpread(mean=-0.5, std=0.1, stderr=0.1, n=3)) == "differ"
    assert distinguish(SeedSpread(mean=0.15, std=0.1, stderr=0.1, n=3)) == "indistinguishable"
    assert distinguish(SeedSpread(mean=5.0, std=0.1, stderr=0.1, n=2)) == "no noise floor"
    assert distinguish(seed_spread([5.0])) == "no noise floor"
    # a false-alarm rate near 5 % for z = 2 when there is no difference (t with 9 d.o.f.: 7.6 %)
    rng = np.random.default_rng(1)
    calls = [distinguish(seed_spread(rng.normal(0.0, 1.0, 10))) for _ in range(4000)]
    assert calls.count("differ") / len(calls) == pytest.approx(0.076, abs=0.015)
