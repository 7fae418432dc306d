"""Pure computations of the ``evolution`` study: probe selection, snapshot schedule, block ratios, the
after-kernel's accuracy and summaries of the kernel velocity. Inputs are tensors/arrays; nothing here trains.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from tangentlab import predict


def balanced_probe(labels: torch.Tensor, per_class: int) -> torch.Tensor:
    """Indices of the first ``per_class`` examples of every class, grouped by class (class 0 first).

    Raises:
        ValueError: if a class has fewer than ``per_class`` examples.
    """
    lab = labels.reshape(-1).long()
    out = []
    for c in torch.unique(lab).tolist():
        idx = torch.nonzero(lab == c).reshape(-1)
        if idx.numel() < per_class:
            raise ValueError(
                f"params.probe_per_class: expected at most {idx.numel()} (the examples of class {c} in the "
                f"training set), got {per_class}"
            )
        out.append(idx[:per_class])
    return torch.cat(out)


def snapshot_schedule(steps: int, n_snapshots: int) -> tuple[int, ...]:
    """Step 0 and about ``n_snapshots - 1`` steps log-spaced in ``[1, steps]`` (always including ``steps``)."""
    if steps < 1 or n_snapshots < 2:
        raise ValueError(f"expected steps >= 1 and n_snapshots >= 2, got {steps} and {n_snapshots}")
    grid = np.unique(np.round(np.geomspace(1, steps, n_snapshots - 1)).astype(int))
    return (0, *(int(s) for s in grid if 1 <= s <= steps))


def block_ratios(kernel: Any, labels: Any) -> tuple[float, float]:
    """Within- and between-class block means of a kernel over its mean diagonal (Seleznova & Kutyniok 2022).

    ``within = mean_{i != j, y_i = y_j} K_ij / mean_i K_ii``; ``between = mean_{y_i != y_j} K_ij / mean_i K_ii``.
    The diagonal is left out of the within-class mean, so a kernel proportional to the identity gives (0, 0) and
    the label kernel ``Y Y^T`` gives (1, 0).

    Raises:
        ValueError: for a non-square kernel, a label count that does not match, a zero mean diagonal, or labels
            with no within-class pair or no between-class pair.
    """
    k = torch.as_tensor(kernel, dtype=torch.float64)
    y = torch.as_tensor(labels).reshape(-1)
    if k.ndim != 2 or k.shape[0] != k.shape[1] or k.shape[0] != y.numel():
        raise ValueError(
            f"kernel, labels: expected an (n, n) kernel and n labels, got {tuple(k.shape)}, {y.numel()}"
        )
    same = y[:, None] == y[None, :]
    off = ~torch.eye(y.numel(), dtype=torch.bool)
    within, between = same & off, ~same
    if not within.any() or not between.any():
        raise ValueError("labels: expected at least two classes, each with two or more examples")
    diag = float(torch.diagonal(k).mean())
    if diag == 0:
        raise ValueError("kernel: the mean diagonal is zero")
    return float(k[within].mean()) / diag, float(k[between].mean()) / diag


def kernel_regression_accuracy(
    kernel_train: Any,
    kernel_test_train: Any,
    labels_train: Any,
    labels_test: Any,
    n_classes: int,
    *,
    ridge: float = 1e-6,
) -> float:
    """Test accuracy of kernel regression on one-hot targets: ``argmax K_*X (K_XX + r I)^{-1} Y``.

    ``r = ridge * mean(diag K_XX)`` (a ridge relative to the kernel's scale, so the answer does not depend on it);
    the solve goes through :class:`tangentlab.predict.KernelRegressor` (Cholesky with a recorded jitter ladder).
    Fort et al. 2020 (arXiv 2010.15110) score the "after kernel" (the eNTK at a checkpoint) in this way.
    """
    k = torch.as_tensor(kernel_train, dtype=torch.float64)
    kt = torch.as_tensor(kernel_test_train, dtype=torch.float64)
    y = torch.nn.functional.one_hot(torch.as_tensor(labels_train).reshape(-1).long(), n_classes).to(
        torch.float64
    )
    scale = float(torch.diagonal(k).mean())
    reg = predict.KernelRegressor(ridge=ridge * scale if scale > 0 else ridge).fit(k, y)
    pred = torch.as_tensor(reg.predict(kt)).argmax(dim=1)
    return float((pred == torch.as_tensor(labels_test).reshape(-1).long()).double().mean())


def velocity_summary(
    velocity: np.ndarray, t_start: np.ndarray, steps: int, late_from: float
) -> dict[str, float]:
    """Fort et al. 2020's two phases in numbers, from velocities over intervals starting at ``t_start``.

    Returns ``velocity_first`` (the first interval), ``velocity_late_median`` and ``velocity_late_spread`` (max/min)
    over intervals starting at or after ``late_from * steps``, and ``velocity_transient_ratio`` (first / late
    median). NaN where undefined.
    """
    v = np.asarray(velocity, dtype=np.float64)
    t = np.asarray(t_start, dtype=np.float64)
    nan = math.nan
    if v.size == 0:
        return dict.fromkeys(
            ("velocity_first", "velocity_late_median", "velocity_late_spread", "velocity_transient_ratio"),
            nan,
        )
    late = v[(t >= late_from * steps) & (v > 0)]
    med = float(np.median(late)) if late.size else nan
    spread = float(late.max() / late.min()) if late.size >= 2 else nan
    first = float(v[0])
    return {
        "velocity_first": first,
        "velocity_late_median": med,
        "velocity_late_spread": spread,
        "velocity_transient_ratio": first / med if med and math.isfinite(med) and med > 0 else nan,
    }
