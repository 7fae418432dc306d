"""Metrics on hand-made cases with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tangentlab.metrics import (
    accuracy,
    expected_calibration_error,
    function_gap,
    gaussian_nll,
    interval_coverage,
    kernel_distance,
    kernel_target_alignment,
    kernel_velocity,
    mean_squared_error,
    nll,
    relative_frobenius_change,
    relative_param_change,
)

T = lambda *a: torch.tensor(*a, dtype=torch.float64)  # noqa: E731


def test_kernel_distance_and_velocity() -> None:
    k = T([[2.0, 1.0], [1.0, 2.0]])
    assert kernel_distance(k, 3.0 * k) == pytest.approx(0.0, abs=1e-15)
    assert kernel_distance(T([[1.0, 0.0], [0.0, 0.0]]), T([[0.0, 0.0], [0.0, 1.0]])) == pytest.approx(1.0)
    # <I, J>_F = 2, ||I|| = sqrt 2, ||J|| = 2 (J all ones, 2x2): S = 1 - 2 / (2 sqrt 2)
    assert kernel_distance(
        torch.eye(2, dtype=torch.float64), torch.ones(2, 2, dtype=torch.float64)
    ) == pytest.approx(1 - 1 / math.sqrt(2))
    v = kernel_velocity([k, k, torch.eye(2, dtype=torch.float64)], [0, 1, 3])
    s = kernel_distance(k, torch.eye(2, dtype=torch.float64))
    torch.testing.assert_close(v, T([0.0, math.acos(1 - s) / 2]), atol=1e-15, rtol=1e-12)
    with pytest.raises(ValueError, match="times: expected strictly increasing"):
        kernel_velocity([k, k], [1, 1])
    with pytest.raises(ValueError, match=r"kernel_b: expected shape \(2, 2\) like kernel_a"):
        kernel_distance(k, torch.eye(3))


def test_alignment_and_relative_changes() -> None:
    y = T([1.0, -1.0, 1.0])
    assert kernel_target_alignment(torch.outer(y, y), y) == pytest.approx(1.0)
    assert kernel_target_alignment(torch.eye(3, dtype=torch.float64), y) == pytest.approx(
        3 / (math.sqrt(3) * 3)
    )
    assert kernel_target_alignment(torch.outer(y, y) + 5.0, y, centered=True) == pytest.approx(1.0)
    k0 = T([[3.0, 0.0], [0.0, 4.0]])
    assert relative_frobenius_change(k0 + T([[0.0, 1.0], [1.0, 0.0]]), k0) == pytest.approx(math.sqrt(2) / 5)
    assert relative_param_change([T([3.0]), T([4.0])], [T([0.0]), T([5.0])]) == pytest.approx(
        math.sqrt(10) / 5
    )
    assert function_gap(T([1.0, 2.0]), T([1.0, 0.0])) == pytest.approx(2.0)
    assert function_gap(T([1.0, 2.0]), T([1.0, 0.0]), relative=False) == pytest.approx(2.0)


def test_accuracy_mse_nll() -> None:
    logits = T([[2.0, 0.0], [0.0, 1.0], [3.0, 1.0], [0.0, 5.0]])
    labels = torch.tensor([0, 1, 1, 1])
    assert accuracy(logits, labels) == 0.75
    assert accuracy(logits, torch.nn.functional.one_hot(labels).double()) == 0.75
    assert accuracy(T([0.3, -2.0, 1.0]), T([1.0, -1.0, -1.0])) == pytest.approx(2 / 3)
    assert mean_squared_error(T([[1.0, 2.0], [0.0, 0.0]]), T([[0.0, 0.0], [0.0, 1.0]])) == pytest.approx(3.0)
    probs = T([[0.5, 0.5], [0.25, 0.75]])
    assert nll(probs, torch.tensor([0, 1]), from_logits=False) == pytest.approx(
        -(math.log(0.5) + math.log(0.75)) / 2
    )
    assert nll(torch.log(probs), torch.tensor([0, 1])) == pytest.approx(-(math.log(0.5) + math.log(0.75)) / 2)
    assert gaussian_nll(T([0.0]), T([1.0]), T([1.0])) == pytest.approx(0.5 * math.log(2 * math.pi) + 0.5)


def test_expected_calibration_error_known_cases() -> None:
    labels = torch.tensor([0, 0, 0, 1])
    # all confidences 0.75, accuracy 3/4: perfectly calibrated
    p = T([[0.75, 0.25]] * 4)
    assert expected_calibration_error(p, labels, n_bins=10) == pytest.approx(0.0, abs=1e-12)
    # always 100 % confident, 75 % accurate: ECE = 0.25
    assert expected_calibration_error(T([[1.0, 0.0]] * 4), labels) == pytest.approx(0.25)
    # two bins with one point each: conf 0.9 correct (|1 - 0.9|), conf 0.6 wrong (|0 - 0.6|) -> (0.1 + 0.6) / 2
    two = T([[0.9, 0.1], [0.4, 0.6]])
    assert expected_calibration_error(two, torch.tensor([0, 0]), n_bins=10) == pytest.approx(0.35)
    # one bin: mean conf 0.75, accuracy 0.5 -> 0.25
    assert expected_calibration_error(two, torch.tensor([0, 0]), n_bins=1) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="probabilities: expected non-negative rows summing to 1"):
        expected_calibration_error(T([[2.0, 0.0]]), torch.tensor([0]))


def test_interval_coverage_known_cases() -> None:
    mean, var = torch.zeros(4, dtype=torch.float64), torch.ones(4, dtype=torch.float64)
    targets = T([0.0, 1.9, 1.97, -3.0])  # z(0.95) = 1.95996
    assert interval_coverage(mean, var, targets) == pytest.approx(0.5)
    assert interval_coverage(mean, 4.0 * var, targets) == pytest.approx(1.0)
    assert interval_coverage(mean, var, targets, level=0.5) == pytest.approx(0.25)  # z(0.5) = 0.674
    g = np.random.default_rng(0).standard_normal(200_000)
    assert interval_coverage(
        torch.zeros(len(g)), torch.ones(len(g)), torch.from_numpy(g), level=0.9
    ) == pytest.approx(0.9, abs=0.005)
    with pytest.raises(ValueError, match=r"level: expected a probability in \(0, 1\), got 1.5"):
        interval_coverage(mean, var, targets, level=1.5)
    m2 = torch.zeros(2, 3, dtype=torch.float64)
    assert interval_coverage(m2, T([1.0, 100.0]), T([[3.0, 0.0, 0.0], [15.0, 0.0, 0.0]])) == pytest.approx(
        5 / 6
    )
