"""Calibration: expected calibration error of classifiers and coverage of Gaussian predictive intervals."""

from __future__ import annotations

from typing import Any

import torch

from tangentlab.metrics._checks import as_tensor, same_shape


def expected_calibration_error(probabilities: Any, labels: Any, *, n_bins: int = 15) -> float:
    """Expected calibration error with equal-width confidence bins.

    ``ECE = sum_b (|B_b| / n) |acc(B_b) - conf(B_b)|`` where example i goes to bin ``b`` with
    ``conf_i = max_c p_ic`` in ``(b / B, (b + 1) / B]`` (Naeini et al. 2015; Guo et al. 2017, "On calibration of
    modern neural networks", eq. 3).

    Args:
        probabilities: (n, C) predicted class probabilities (apply softmax to logits first).
        labels: (n,) integer class indices.
        n_bins: number of bins B.
    """
    p = as_tensor("probabilities", probabilities)
    lab = as_tensor("labels", labels)
    if p.ndim != 2:
        raise ValueError(f"probabilities: expected (n, C), got shape {tuple(p.shape)}")
    if lab.is_floating_point() or lab.shape != (p.shape[0],):
        raise ValueError(
            f"labels: expected ({p.shape[0]},) integer class indices, got {lab.dtype} {tuple(lab.shape)}"
        )
    if bool((p < 0).any()) or float((p.sum(1) - 1).abs().max()) > 1e-6:
        raise ValueError("probabilities: expected non-negative rows summing to 1 (apply softmax to logits)")
    if n_bins < 1:
        raise ValueError(f"n_bins: expected an integer >= 1, got {n_bins!r}")
    conf, pred = p.max(dim=1)
    correct = (pred == lab.long()).double()
    bins = (torch.ceil(conf * n_bins).long() - 1).clamp(0, n_bins - 1)
    n = p.shape[0]
    ece = 0.0
    for b in range(n_bins):
        mask = bins == b
        count = int(mask.sum())
        if count:
            ece += count / n * abs(float(correct[mask].mean()) - float(conf[mask].mean()))
    return ece


def interval_coverage(mean: Any, variance: Any, targets: Any, *, level: float = 0.95) -> float:
    """Fraction of targets inside the central Gaussian interval ``mean ± z sqrt(variance)``.

    ``z = Phi^{-1}((1 + level) / 2)`` (1.95996 for level 0.95). A calibrated predictor covers a fraction ``level``.

    Args:
        mean: predicted means, any shape.
        variance: predicted variances broadcastable to ``mean`` (e.g. (m,) for (m, k) means).
        targets: true values shaped like ``mean``.
        level: nominal coverage in (0, 1).
    """
    m, v, y = as_tensor("mean", mean), as_tensor("variance", variance), as_tensor("targets", targets)
    same_shape("mean", m, "targets", y)
    if not 0 < level < 1:
        raise ValueError(f"level: expected a probability in (0, 1), got {level!r}")
    if bool((v < 0).any()):
        raise ValueError("variance: expected non-negative variances")
    if v.ndim == 1 and m.ndim == 2:
        v = v[:, None]
    z = float(torch.special.ndtri(torch.tensor((1 + level) / 2, dtype=torch.float64)))
    return float(((y - m).abs() <= z * v.sqrt()).double().mean())
