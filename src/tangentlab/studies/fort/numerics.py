"""Pure computations of the ``fort`` study: snapshot schedules, the loss on the straight line between two nets and
its barrier, and summaries of the kernel velocity at a fixed ``dt``. Inputs are modules and tensors; nothing here
trains.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, cast

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from tangentlab import train


def equal_schedule(steps: int, n_snapshots: int) -> tuple[int, ...]:
    """``0, dt, 2 dt, ..., (n_snapshots - 1) dt`` with ``dt = steps // (n_snapshots - 1)`` (the fixed ``dt`` of
    Fort et al. 2020's velocity; the last snapshot is at or just below ``steps``).

    Raises:
        ValueError: if ``steps < n_snapshots - 1`` (no integer ``dt >= 1``) or ``n_snapshots < 2``.
    """
    if n_snapshots < 2 or steps < n_snapshots - 1:
        raise ValueError(
            f"params.n_equal: expected 2 <= n_equal <= steps + 1 = {steps + 1}, got {n_snapshots} (steps {steps})"
        )
    dt = steps // (n_snapshots - 1)
    return tuple(i * dt for i in range(n_snapshots))


def log_schedule(steps: int, n_snapshots: int, *, last: int | None = None) -> tuple[int, ...]:
    """Step 0 and about ``n_snapshots - 1`` steps log-spaced in ``[1, last]`` (``last`` defaults to ``steps``)."""
    top = steps if last is None else last
    if top < 1 or n_snapshots < 2:
        raise ValueError(f"expected a last step >= 1 and n_snapshots >= 2, got {top} and {n_snapshots}")
    grid = np.unique(np.round(np.geomspace(1, top, n_snapshots - 1)).astype(int))
    return (0, *(int(s) for s in grid if 1 <= s <= top))


def interpolated_parameters(model_a: nn.Module, model_b: nn.Module, alpha: float) -> dict[str, torch.Tensor]:
    """``(1 - alpha) theta_a + alpha theta_b`` for every parameter and floating buffer of two nets of one shape.

    Raises:
        ValueError: if the two nets do not have the same parameter names and shapes.
    """
    sa = dict(model_a.named_parameters()) | dict(model_a.named_buffers())
    sb = dict(model_b.named_parameters()) | dict(model_b.named_buffers())
    if sa.keys() != sb.keys() or any(sa[k].shape != sb[k].shape for k in sa):
        raise ValueError("model_a, model_b: expected two nets with the same parameter names and shapes")
    out = {}
    for k, a in sa.items():
        b = sb[k]
        out[k] = ((1.0 - alpha) * a + alpha * b).detach() if a.is_floating_point() else a.detach()
    return out


def path_losses(
    model_a: nn.Module,
    model_b: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    alphas: Sequence[float] | np.ndarray,
    loss: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Loss and error (1 - accuracy) of the net with parameters ``(1 - a) theta_a + a theta_b`` for each ``a``.

    ``loss`` is ``"mse"`` (``(1/(2n)) sum ||f - y||^2``, ``y`` one-hot) or ``"cross_entropy"`` (``y`` class indices
    or probabilities), the losses of :mod:`tangentlab.train`.
    """
    fn = train.mse_loss if loss == "mse" else train.cross_entropy_loss
    losses, errors = [], []
    with torch.no_grad():
        for a in alphas:
            out = cast(
                torch.Tensor, functional_call(model_a, interpolated_parameters(model_a, model_b, a), (x,))
            )
            losses.append(float(fn(out, y)))
            pred = out.argmax(dim=1)
            target = y.argmax(dim=1) if y.ndim == 2 else y.long()
            errors.append(float((pred != target).double().mean()))
    return np.asarray(losses, dtype=np.float64), np.asarray(errors, dtype=np.float64)


def loss_barrier(values: Any, alphas: Any) -> float:
    """``max_a [L(a) - ((1 - a) L(0) + a L(1))]`` on a grid of ``a`` that starts at 0 and ends at 1.

    The loss barrier of Frankle et al. 2020 and Fort et al. 2020 (arXiv 2010.15110, Sec. 5): the largest rise of the
    loss on the straight line between two solutions above the straight line between their losses. The endpoints
    give 0, so the barrier is >= 0; it is exactly 0 for a loss convex in the parameters.

    Raises:
        ValueError: for mismatched lengths, fewer than 2 points, or a grid that is not 0 ... 1 increasing.
    """
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    a = np.asarray(alphas, dtype=np.float64).reshape(-1)
    if v.size != a.size or a.size < 2:
        raise ValueError(f"values, alphas: expected two arrays of one length >= 2, got {v.size} and {a.size}")
    if a[0] != 0.0 or a[-1] != 1.0 or np.any(np.diff(a) <= 0):
        raise ValueError(f"alphas: expected an increasing grid from 0 to 1, got {a.tolist()}")
    line = (1.0 - a) * v[0] + a * v[-1]
    return float(np.max(v - line))


def parameter_distance(model_a: nn.Module, model_b: nn.Module) -> float:
    """``||theta_a - theta_b||_2`` over the trainable parameters."""
    return float(torch.linalg.vector_norm(train.trainable_vector(model_a) - train.trainable_vector(model_b)))


def fixed_dt_summary(velocity: Any, t_start: Any, steps: int, late_from: float) -> dict[str, float]:
    """Fort et al. 2020's two phases from velocities over equal intervals starting at ``t_start``.

    Returns ``first`` (the first interval's velocity), ``late_median``, ``late_cv`` (standard deviation over mean of
    the late velocities: 0 for a constant speed) and ``transient_ratio`` (first / late median); late: intervals
    starting at or after ``late_from * steps``. NaN where undefined.
    """
    v = np.asarray(velocity, dtype=np.float64)
    t = np.asarray(t_start, dtype=np.float64)
    keys = ("first", "late_median", "late_cv", "transient_ratio")
    if v.size == 0:
        return dict.fromkeys(keys, math.nan)
    late = v[t >= late_from * steps]
    med = float(np.median(late)) if late.size else math.nan
    mean = float(np.mean(late)) if late.size else math.nan
    cv = float(np.std(late) / mean) if late.size >= 2 and mean > 0 else math.nan
    first = float(v[0])
    ratio = first / med if math.isfinite(med) and med > 0 else math.nan
    return {"first": first, "late_median": med, "late_cv": cv, "transient_ratio": ratio}
