"""Scale-free comparisons of kernels: distance, velocity, and alignment with the targets."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import torch

from tangentlab.metrics._checks import as_tensor, frobenius, same_shape


def kernel_distance(kernel_a: Any, kernel_b: Any) -> float:
    """Kernel distance ``S(K_a, K_b) = 1 - <K_a, K_b>_F / (||K_a||_F ||K_b||_F)``.

    Zero for kernels equal up to a positive scale; in [0, 2] in general and [0, 1] for entrywise non-negative ones
    (Fort et al. 2020, "Deep learning versus kernel learning", arXiv 2010.15110, eq. 3).

    Args:
        kernel_a: kernel of any shape (e.g. (n, n) or (n, n, O, O)).
        kernel_b: kernel of the same shape.

    Raises:
        ValueError: for different shapes or a zero kernel.
    """
    a, b = as_tensor("kernel_a", kernel_a), as_tensor("kernel_b", kernel_b)
    same_shape("kernel_a", a, "kernel_b", b)
    na, nb = frobenius(a), frobenius(b)
    if na == 0 or nb == 0:
        raise ValueError(f"kernel_a, kernel_b: expected non-zero kernels, got norms {na:g} and {nb:g}")
    return 1.0 - float((a * b).sum()) / (na * nb)


def kernel_velocity(kernels: Sequence[Any], times: Sequence[float]) -> torch.Tensor:
    """Kernel velocity ``v(t_i) = S(K_{t_i}, K_{t_{i+1}}) / (t_{i+1} - t_i)`` between consecutive snapshots.

    Fort et al. 2020 (arXiv 2010.15110, Sec. 3): the rate at which the (normalised) kernel moves during training.

    Args:
        kernels: T kernels of one shape, in time order.
        times: their T times (steps or epochs), strictly increasing.

    Returns:
        (T - 1,) float64 tensor of velocities.

    Raises:
        ValueError: for fewer than two kernels, mismatched lengths or non-increasing times.
    """
    if len(kernels) != len(times):
        raise ValueError(f"times: expected {len(kernels)} times, one per kernel, got {len(times)}")
    if len(kernels) < 2:
        raise ValueError(f"kernels: expected at least 2 kernels, got {len(kernels)}")
    t = [float(v) for v in times]
    if any(t1 <= t0 for t0, t1 in itertools.pairwise(t)):
        raise ValueError(f"times: expected strictly increasing times, got {t}")
    out = [kernel_distance(kernels[i], kernels[i + 1]) / (t[i + 1] - t[i]) for i in range(len(kernels) - 1)]
    return torch.tensor(out, dtype=torch.float64)


def kernel_target_alignment(kernel: Any, targets: Any, *, centered: bool = False) -> float:
    """Kernel-target alignment ``A(K, Y) = <K, Y Y^T>_F / (||K||_F ||Y Y^T||_F)``.

    Cristianini et al. 2002 ("On kernel-target alignment"); with ``centered=True`` both ``K`` and ``Y Y^T`` are
    centred by ``H = I - 11^T/n`` first (Cortes, Mohri & Rostamizadeh 2012, "Algorithms for learning kernels based
    on centered alignment").

    Args:
        kernel: (n, n) kernel.
        targets: (n,) or (n, k) targets (e.g. one-hot labels).
        centered: centre kernel and targets' Gram matrix.
    """
    k = as_tensor("kernel", kernel)
    y = as_tensor("targets", targets).to(torch.float64)
    if k.ndim != 2 or k.shape[0] != k.shape[1]:
        raise ValueError(f"kernel: expected a square (n, n) kernel, got shape {tuple(k.shape)}")
    y = y[:, None] if y.ndim == 1 else y
    if y.shape[0] != k.shape[0]:
        raise ValueError(
            f"targets: expected {k.shape[0]} rows to match the kernel, got shape {tuple(y.shape)}"
        )
    g = y @ y.T
    if centered:
        h = torch.eye(k.shape[0], dtype=torch.float64) - 1.0 / k.shape[0]
        k, g = h @ k @ h, h @ g @ h
    nk, ng = frobenius(k), frobenius(g)
    if nk == 0 or ng == 0:
        raise ValueError("kernel, targets: alignment is undefined for a zero kernel or zero targets")
    return float((k * g).sum()) / (nk * ng)
