"""Entropy of predictive distributions: categorical (classifiers) and Gaussian (regressors)."""

from __future__ import annotations

import math
from typing import Any

import torch

from tangentlab.metrics._checks import as_tensor


def predictive_entropy(probabilities: Any) -> float:
    """Mean entropy ``-(1/n) sum_i sum_c p_ic log p_ic`` (nats; ``0 log 0 = 0``) of categorical predictions.

    The predictive entropy of a Bayesian classifier's averaged probabilities; it should rise on inputs unlike the
    training data (e.g. Lakshminarayanan et al. 2017, arXiv 1612.01474, Fig. 3). Ranges from 0 (one-hot) to
    ``log C`` (uniform).

    Args:
        probabilities: (n, C) rows that are non-negative and sum to 1.
    """
    p = as_tensor("probabilities", probabilities)
    if p.ndim != 2:
        raise ValueError(f"probabilities: expected (n, C), got shape {tuple(p.shape)}")
    if bool((p < 0).any()) or float((p.sum(1) - 1).abs().max()) > 1e-6:
        raise ValueError("probabilities: expected non-negative rows summing to 1 (apply softmax to logits)")
    terms = torch.where(p > 0, -p * torch.log(torch.where(p > 0, p, torch.ones_like(p))), torch.zeros_like(p))
    return float(terms.sum(1).mean())


def gaussian_entropy(variance: Any) -> float:
    """Mean differential entropy ``(1/N) sum ½ log(2 pi e s²)`` (nats) of Gaussian predictions with variances ``s²``.

    Args:
        variance: positive predictive variances, any shape (one per prediction).
    """
    v = as_tensor("variance", variance)
    if not v.is_floating_point() or bool((v <= 0).any()):
        raise ValueError("variance: expected positive variances")
    return float((0.5 * torch.log(2 * math.pi * math.e * v)).mean())
