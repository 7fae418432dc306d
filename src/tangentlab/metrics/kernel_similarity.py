"""Scale-free comparisons of kernels: distance, angle, velocity, and alignment with the targets."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import torch

from tangentlab.metrics._checks import as_tensor, frobenius, same_shape


def _centred(name: str, k: torch.Tensor) -> torch.Tensor:
    """``H K H`` with ``H = I - 11^T/n`` over the two sample axes (the first two) of an (n, n, ...) kernel."""
    if k.ndim < 2 or k.shape[0] != k.shape[1]:
        raise ValueError(
            f"{name}: centered=True expects an (n, n) or (n, n, O, O) kernel, got shape {tuple(k.shape)}"
        )
    return k - k.mean(dim=0, keepdim=True) - k.mean(dim=1, keepdim=True) + k.mean(dim=(0, 1), keepdim=True)


def _unit_pair(kernel_a: Any, kernel_b: Any, centered: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Both kernels (centred if asked) divided by their Frobenius norms."""
    a, b = as_tensor("kernel_a", kernel_a), as_tensor("kernel_b", kernel_b)
    same_shape("kernel_a", a, "kernel_b", b)
    if centered:
        a, b = _centred("kernel_a", a), _centred("kernel_b", b)
    na, nb = frobenius(a), frobenius(b)
    if na == 0 or nb == 0:
        after = " after centring" if centered else ""
        raise ValueError(
            f"kernel_a, kernel_b: expected non-zero kernels, got norms {na:g} and {nb:g} (a zero kernel{after})"
        )
    return a / na, b / nb


def kernel_distance(kernel_a: Any, kernel_b: Any, *, centered: bool = False) -> float:
    """Kernel distance ``S(K_a, K_b) = 1 - <K_a, K_b>_F / (||K_a||_F ||K_b||_F)``.

    Zero for kernels equal up to a positive scale; in [0, 2] in general and [0, 1] for entrywise non-negative ones
    (Fort et al. 2020, "Deep learning versus kernel learning", arXiv 2010.15110, eq. 3). ``S = 1 - cos(phi)`` with
    ``phi`` the angle between the kernels (:func:`kernel_angle`), so ``S ~ phi^2 / 2`` for small turns.

    With ``centered=True`` both kernels are centred over the samples first, ``K -> H K H`` with ``H = I - 11^T/n``
    (as in centred kernel alignment, Cortes, Mohri & Rostamizadeh 2012). A large constant block shared by both
    kernels (in deep ordered-phase ReLU nets the trace eNTK is dominated by one, from the bias-like
    directions) makes the plain distance say "barely moved" whatever happens to the rest; the centred distance
    measures how the kernel's structure across samples moved.

    Args:
        kernel_a: kernel of any shape (e.g. (n, n) or (n, n, O, O)); (n, n, ...) when ``centered``.
        kernel_b: kernel of the same shape.
        centered: centre both kernels over their two sample axes first.

    Raises:
        ValueError: for different shapes, a zero kernel (after centring), or a non-square kernel with
            ``centered=True``.
    """
    a, b = _unit_pair(kernel_a, kernel_b, centered)
    return 1.0 - float((a * b).sum())


def kernel_angle(kernel_a: Any, kernel_b: Any, *, centered: bool = False) -> float:
    """Angle ``phi = arccos(<K_a, K_b>_F / (||K_a||_F ||K_b||_F))`` between two kernels, in radians, in [0, pi].

    Computed in the stable chord form ``phi = 2 asin(||K_a/||K_a|| - K_b/||K_b|| ||_F / 2)``, which keeps its
    digits for small turns where ``arccos(1 - S)`` loses them (``S = 1 - cos phi`` is :func:`kernel_distance`).
    ``centered`` as in :func:`kernel_distance`.

    Raises:
        ValueError: as :func:`kernel_distance`.
    """
    a, b = _unit_pair(kernel_a, kernel_b, centered)
    chord = float(torch.linalg.vector_norm(a - b))
    return 2.0 * math.asin(min(1.0, chord / 2.0))


def kernel_velocity(
    kernels: Sequence[Any], times: Sequence[float], *, centered: bool = False
) -> torch.Tensor:
    """Kernel velocity ``v(t_i) = phi(K_{t_i}, K_{t_{i+1}}) / (t_{i+1} - t_i)``: angle turned per unit time.

    Fort et al. 2020 (arXiv 2010.15110, Sec. 3) define the velocity as ``S(t, t + dt) / dt`` with a fixed ``dt``.
    ``S = 1 - cos(phi)`` is quadratic in the angle ``phi``, so on unequal snapshot intervals (log-spaced steps)
    ``S / dt`` of a kernel turning at a constant angular speed ``omega`` is ``omega^2 dt / 2``: it grows with the
    interval, and a constant speed looks like a 1000x "transient". The angle per unit time
    (:func:`kernel_angle`) is ``omega`` on any spacing, and a k-fold speed-up shows as k-fold.

    Args:
        kernels: T kernels of one shape, in time order.
        times: their T times (steps or epochs), strictly increasing.
        centered: measure the angle between centred kernels (see :func:`kernel_distance`).

    Returns:
        (T - 1,) float64 tensor of velocities, in radians per unit of ``times``.

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
    out = [
        kernel_angle(kernels[i], kernels[i + 1], centered=centered) / (t[i + 1] - t[i])
        for i in range(len(kernels) - 1)
    ]
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
