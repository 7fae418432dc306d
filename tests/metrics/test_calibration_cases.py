"""Calibration and uncertainty metrics on hand-made cases and against brute-force references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from tangentlab.metrics import (
    expected_calibration_error,
    gaussian_entropy,
    gaussian_nll,
    interval_coverage,
    nll,
    predictive_entropy,
)


def T(values: object) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def test_ece_all_confident_all_wrong_is_one_and_perfect_bins_are_zero() -> None:
    assert expected_calibration_error(
        T([[1.0, 0.0, 0.0]] * 5), torch.tensor([1, 2, 1, 2, 1])
    ) == pytest.approx(1.0)
    # two bins, each perfectly calibrated: conf 0.6 with 3/5 right, conf 0.9 with 9/10 right
    probs = T([[0.6, 0.4]] * 5 + [[0.1, 0.9]] * 10)
    labels = torch.tensor([0, 0, 0, 1, 1] + [1] * 9 + [0])
    assert expected_calibration_error(probs, labels, n_bins=10) == pytest.approx(0.0, abs=1e-12)
    # one bin: mean confidence (5 * 0.6 + 10 * 0.9) / 15 = 0.8 equals the accuracy 12/15
    assert expected_calibration_error(probs, labels, n_bins=1) == pytest.approx(0.0, abs=1e-12)


def _ece_reference(p: np.ndarray, labels: np.ndarray, n_bins: int) -> float:
    conf, pred = p.max(1), p.argmax(1)
    total = 0.0
    for b in range(n_bins):
        lo, hi = b / n_bins, (b + 1) / n_bins
        mask = (conf > lo) & (conf <= hi)
        if mask.any():
            total += mask.mean() * abs((pred[mask] == labels[mask]).mean() - conf[mask].mean())
    return total


def test_ece_matches_a_loop_over_bins_and_vanishes_for_sampled_labels() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4000, 4)) * 2
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    labels = rng.integers(0, 4, 4000)
    for n_bins in (1, 7, 15):
        assert expected_calibration_error(torch.from_numpy(p), torch.from_numpy(labels), n_bins=n_bins) == (
            pytest.approx(_ece_reference(p, labels, n_bins), abs=1e-12)
        )
    # labels drawn from the predicted probabilities: calibrated by construction, ECE -> 0 (sampling noise ~0.02)
    sampled = np.array([rng.choice(4, p=row) for row in p])
    assert expected_calibration_error(torch.from_numpy(p), torch.from_numpy(sampled)) < 0.04
    assert expected_calibration_error(torch.from_numpy(p), torch.from_numpy(labels)) > 0.2


def test_interval_coverage_of_exact_intervals() -> None:
    rng = np.random.default_rng(1)
    mean = rng.normal(size=50_000)
    var = rng.uniform(0.1, 3.0, size=50_000)
    y = mean + np.sqrt(var) * rng.normal(size=50_000)
    for level in (0.5, 0.9, 0.99):
        cov = interval_coverage(
            torch.from_numpy(mean), torch.from_numpy(var), torch.from_numpy(y), level=level
        )
        assert cov == pytest.approx(level, abs=4 * math.sqrt(level * (1 - level) / 50_000))
    # variance too small by 4x: coverage of the 90 % interval is P(|Z| <= z_0.95 / 2)
    cov = interval_coverage(torch.from_numpy(mean), torch.from_numpy(var / 4), torch.from_numpy(y), level=0.9)
    assert cov == pytest.approx(2 * stats.norm.cdf(stats.norm.ppf(0.95) / 2) - 1, abs=0.01)


def test_gaussian_nll_and_categorical_nll_against_scipy() -> None:
    rng = np.random.default_rng(2)
    m, v, y = rng.normal(size=(6, 2)), rng.uniform(0.2, 2, size=(6, 2)), rng.normal(size=(6, 2))
    ref = -stats.norm.logpdf(y, loc=m, scale=np.sqrt(v)).mean()
    assert gaussian_nll(torch.from_numpy(m), torch.from_numpy(v), torch.from_numpy(y)) == pytest.approx(ref)
    with pytest.raises(ValueError, match="variance"):
        gaussian_nll(T([0.0]), T([0.0]), T([1.0]))
    logits = rng.normal(size=(5, 3))
    labels = rng.integers(0, 3, 5)
    ref_cat = -np.mean([logits[i, labels[i]] - np.log(np.exp(logits[i]).sum()) for i in range(5)])
    assert nll(torch.from_numpy(logits), torch.from_numpy(labels)) == pytest.approx(ref_cat)


def test_predictive_entropy_cases() -> None:
    assert predictive_entropy(T([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])) == 0.0
    assert predictive_entropy(T([[0.25] * 4])) == pytest.approx(math.log(4))
    p = T([[0.5, 0.5, 0.0], [0.7, 0.2, 0.1]])
    ref = (math.log(2) + stats.entropy([0.7, 0.2, 0.1])) / 2
    assert predictive_entropy(p) == pytest.approx(ref)
    with pytest.raises(ValueError, match="probabilities"):
        predictive_entropy(T([[0.5, 0.6]]))


def test_gaussian_entropy_against_scipy() -> None:
    v = T([0.1, 1.0, 4.0])
    ref = np.mean([stats.norm(scale=math.sqrt(s)).entropy() for s in (0.1, 1.0, 4.0)])
    assert gaussian_entropy(v) == pytest.approx(ref)
    with pytest.raises(ValueError, match="variance"):
        gaussian_entropy(T([1.0, 0.0]))
