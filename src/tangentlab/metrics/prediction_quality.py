"""Accuracy, mean squared error and negative log-likelihoods of predictions."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch.nn import functional as F

from tangentlab.metrics._checks import as_tensor, same_shape


def predicted_classes(outputs: torch.Tensor) -> torch.Tensor:
    """argmax over the last dim of (n, C) outputs; for scalar outputs (n,) or (n, 1): 1 where > 0, else 0."""
    if outputs.ndim == 2 and outputs.shape[1] > 1:
        return outputs.argmax(dim=1)
    return (outputs.reshape(-1) > 0).long()


def target_classes(targets: torch.Tensor, n: int) -> torch.Tensor:
    """Class indices from indices (n,), one-hot/probability rows (n, C), or ±1 scalars (n,)/(n, 1)."""
    if targets.shape[0] != n:
        raise ValueError(f"targets: expected {n} rows to match outputs, got shape {tuple(targets.shape)}")
    if not targets.is_floating_point():
        return targets.reshape(-1).long()
    if targets.ndim == 2 and targets.shape[1] > 1:
        return targets.argmax(dim=1)
    return (targets.reshape(-1) > 0).long()


def accuracy(outputs: Any, targets: Any) -> float:
    """Fraction of examples whose predicted class is the target class.

    Outputs (n, C) are scored by argmax; scalar outputs (n,) or (n, 1) by their sign (class 1 if > 0), against
    ±1 targets (or {0, 1} integer labels). Targets may be integer indices (n,), one-hot rows (n, C) or ±1 scalars.
    """
    out = as_tensor("outputs", outputs)
    tgt = as_tensor("targets", targets)
    pred = predicted_classes(out)
    return float((pred == target_classes(tgt, out.shape[0])).double().mean())


def mean_squared_error(predictions: Any, targets: Any) -> float:
    """``(1/n) sum_i ||f(x_i) - y_i||^2`` — twice the training loss ``L`` of :mod:`tangentlab.train` (n = rows)."""
    p, y = as_tensor("predictions", predictions), as_tensor("targets", targets)
    if p.ndim == 2 and p.shape[1] == 1 and y.ndim == 1:
        y = y[:, None]
    same_shape("predictions", p, "targets", y)
    return float((p - y).pow(2).sum()) / p.shape[0]


def nll(outputs: Any, labels: Any, *, from_logits: bool = True) -> float:
    """Mean categorical negative log-likelihood ``-(1/n) sum_i log p_i[y_i]`` (natural log).

    Args:
        outputs: (n, C) logits (``from_logits=True``) or probabilities (rows summing to 1).
        labels: (n,) integer class indices.
    """
    out = as_tensor("outputs", outputs)
    lab = as_tensor("labels", labels)
    if out.ndim != 2:
        raise ValueError(f"outputs: expected (n, C) logits or probabilities, got shape {tuple(out.shape)}")
    if lab.is_floating_point() or lab.shape != (out.shape[0],):
        raise ValueError(
            f"labels: expected ({out.shape[0]},) integer class indices, got {lab.dtype} {tuple(lab.shape)}"
        )
    logp = F.log_softmax(out, dim=1) if from_logits else torch.log(out)
    return float(-logp.gather(1, lab.long()[:, None]).mean())


def gaussian_nll(mean: Any, variance: Any, targets: Any) -> float:
    """Mean Gaussian negative log-likelihood ``(1/N) sum [log(2 pi s^2)/2 + (y - m)^2 / (2 s^2)]`` over all entries.

    ``variance`` broadcasts against ``mean`` (e.g. one variance per test point for (m, k) means).
    """
    m, v, y = as_tensor("mean", mean), as_tensor("variance", variance), as_tensor("targets", targets)
    same_shape("mean", m, "targets", y)
    if v.ndim == 1 and m.ndim == 2:
        v = v[:, None]
    if bool((v <= 0).any()):
        raise ValueError("variance: expected positive variances")
    v = v.expand_as(m)
    return float((0.5 * torch.log(2 * math.pi * v) + (y - m).pow(2) / (2 * v)).mean())
