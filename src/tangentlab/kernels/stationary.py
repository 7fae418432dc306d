"""Classical stationary kernels — RBF (Gaussian) and Laplace — and the median-heuristic bandwidth.

They are the "alternative kernels" that Liu, Tai, Crandall & Huang 2025 (arXiv 2501.10929) set beside the NTK and the
NNGP, and that Geifman et al. 2020 ("On the similarity between the Laplace and neural tangent kernels", arXiv
2007.01580) and Belkin, Ma & Mandal 2018 (arXiv 1802.01396) compare with networks:

* RBF: ``k(x, x') = exp(-||x - x'||_2^2 / (2 l^2))``;
* Laplace: ``k(x, x') = exp(-||x - x'|| / l)`` with the Euclidean norm (the kernel of Geifman et al.) or, with
  ``norm="l1"``, the Manhattan norm (scikit-learn's ``laplacian_kernel``, ``gamma = 1 / l``).

The median heuristic (Gretton et al. 2012, "A kernel two-sample test", JMLR 13) sets ``l`` to the median distance
between distinct pairs of training inputs. Inputs of any shape are flattened per example; kernels are float64.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

Norm = Literal["l2", "l1"]
StationaryKind = Literal["rbf", "laplace"]
KINDS: tuple[str, ...] = ("rbf", "laplace")


def _flat(name: str, x: torch.Tensor) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.ndim < 1 or x.shape[0] == 0:
        raise ValueError(f"{name}: expected a non-empty tensor of examples (n, ...), got {x!r:.60}")
    flat = x.reshape(x.shape[0], -1).to(torch.float64)
    if not torch.isfinite(flat).all():
        raise ValueError(f"{name}: expected finite values")
    return flat


def pairwise_distances(
    x1: torch.Tensor, x2: torch.Tensor | None = None, *, norm: Norm = "l2"
) -> torch.Tensor:
    """(n1, n2) distances ``||x1_i - x2_j||`` (Euclidean or Manhattan), float64; ``x2=None`` means ``x1``.

    Raises:
        ValueError: for empty or non-finite inputs, inputs of different feature sizes, or an unknown norm.
    """
    if norm not in ("l2", "l1"):
        raise ValueError(f"norm: expected 'l2' or 'l1', got {norm!r}")
    a = _flat("x1", x1)
    b = a if x2 is None else _flat("x2", x2)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"x2: expected {a.shape[1]} features per example like x1, got {b.shape[1]}")
    return torch.cdist(a, b, p=2.0 if norm == "l2" else 1.0, compute_mode="donot_use_mm_for_euclid_dist")


def _check_bandwidth(bandwidth: float) -> float:
    if isinstance(bandwidth, bool) or not isinstance(bandwidth, int | float) or not bandwidth > 0:
        raise ValueError(f"bandwidth: expected a positive number, got {bandwidth!r}")
    if bandwidth == float("inf"):
        raise ValueError("bandwidth: expected a finite number, got inf")
    return float(bandwidth)


def rbf_kernel(x1: torch.Tensor, x2: torch.Tensor | None = None, *, bandwidth: float) -> torch.Tensor:
    """``exp(-||x - x'||^2 / (2 bandwidth^2))`` between the rows of ``x1`` and ``x2`` (float64, (n1, n2)).

    Raises:
        ValueError: for a non-positive bandwidth or bad inputs (:func:`pairwise_distances`).
    """
    ell = _check_bandwidth(bandwidth)
    return torch.exp(-pairwise_distances(x1, x2).pow(2) / (2 * ell**2))


def laplace_kernel(
    x1: torch.Tensor, x2: torch.Tensor | None = None, *, bandwidth: float, norm: Norm = "l2"
) -> torch.Tensor:
    """``exp(-||x - x'|| / bandwidth)`` (Euclidean norm, or Manhattan with ``norm="l1"``), float64, (n1, n2).

    Raises:
        ValueError: for a non-positive bandwidth, an unknown norm or bad inputs.
    """
    ell = _check_bandwidth(bandwidth)
    return torch.exp(-pairwise_distances(x1, x2, norm=norm) / ell)


def stationary_kernel(
    kind: StationaryKind,
    x1: torch.Tensor,
    x2: torch.Tensor | None = None,
    *,
    bandwidth: float,
    norm: Norm = "l2",
) -> torch.Tensor:
    """:func:`rbf_kernel` (``kind="rbf"``; Euclidean only) or :func:`laplace_kernel` (``kind="laplace"``)."""
    if kind == "rbf":
        if norm != "l2":
            raise ValueError(f"norm: the RBF kernel is defined with the Euclidean norm 'l2', got {norm!r}")
        return rbf_kernel(x1, x2, bandwidth=bandwidth)
    if kind == "laplace":
        return laplace_kernel(x1, x2, bandwidth=bandwidth, norm=norm)
    raise ValueError(f"kind: expected one of {KINDS}, got {kind!r}")


def median_bandwidth(x: torch.Tensor, *, norm: Norm = "l2") -> float:
    """The median heuristic: the median distance between distinct pairs of rows of ``x`` (upper triangle; the mean
    of the two middle values for an even count, as ``numpy.median``).

    Raises:
        ValueError: for fewer than two examples or when every pair coincides (median 0).
    """
    d = pairwise_distances(x, norm=norm)
    n = d.shape[0]
    if n < 2:
        raise ValueError(f"x: expected at least two examples for the median heuristic, got {n}")
    iu = torch.triu_indices(n, n, offset=1)
    med = float(np.median(d[iu[0], iu[1]].numpy()))
    if not med > 0:
        raise ValueError("x: the median pairwise distance is 0 (most examples coincide); give a bandwidth")
    return med


__all__ = [
    "KINDS",
    "Norm",
    "StationaryKind",
    "laplace_kernel",
    "median_bandwidth",
    "pairwise_distances",
    "rbf_kernel",
    "stationary_kernel",
]
