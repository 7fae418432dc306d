"""Training losses with tangentlab's conventions.

* ``"mse"``: ``L = (1/(2n)) sum_i ||f(x_i) - y_i||^2`` — the convention of :mod:`tangentlab.predict`, under which
  gradient descent with step ``eta`` on a linearized network gives ``f_t - y = (I - eta Theta / n)^t (f_0 - y)``.
* ``"cross_entropy"``: mean over examples of ``-log softmax(f(x_i))[y_i]``; targets are class indices (n,) or
  class probabilities / one-hot rows (n, C).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch.nn import functional as F

LossName = Literal["mse", "cross_entropy"]
LOSSES: tuple[str, ...] = ("mse", "cross_entropy")


def mse_loss(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``(1/(2n)) sum_i ||f(x_i) - y_i||^2`` over the first dimension."""
    return 0.5 * (outputs - targets).pow(2).sum() / outputs.shape[0]


def cross_entropy_loss(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of logits (n, C) against indices (n,) or probabilities (n, C)."""
    return F.cross_entropy(outputs, targets)


def compute_loss(name: LossName, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The loss called ``name`` (``"mse"`` or ``"cross_entropy"``)."""
    if name == "mse":
        return mse_loss(outputs, targets)
    if name == "cross_entropy":
        return cross_entropy_loss(outputs, targets)
    raise ValueError(f"loss: expected one of {LOSSES}, got {name!r}")
