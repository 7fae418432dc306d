"""Linear solves with positive semi-definite kernels: Cholesky with a recorded jitter ladder, then eigh.

Every solve reports what it did in a :class:`SolveInfo` (solver, jitter, condition number, extreme eigenvalues), so
that results can say how they were computed; nothing falls back silently. A kernel whose lowest eigenvalue is below
``-tol * lambda_max`` is not positive semi-definite and raises, naming that eigenvalue; ``tol`` is ``psd_tol`` or,
when larger, ``n * eps`` of the kernel's dtype (what an eigensolver's rounding can produce: 1e-8 governs float64
up to n = 45 million; float32 at n = 32,768 gets 3.9e-3).

Jitter ladders, relative to the mean diagonal: float64 tries :data:`JITTER_LADDER` (0, 1e-12 ... 1e-6); float32
(and lower) tries :data:`JITTER_LADDER_FLOAT32` (0, 1e-6 ... 1e-2): float32 rounds at 6e-8 relative, so a jitter
below ~1e-6 of the diagonal cannot change which pivots go negative. The jitter that worked is recorded; with
float32 a kernel that needs 1e-3 of its diagonal is regularised by that much — solve in float64 when that matters.

Memory: a solve of an n x n kernel holds the kernel, one working copy (ridge and jitter are added to its diagonal
in place, no identity matrix is formed) and the Cholesky factor: 3 n^2 numbers plus the eigensolver's workspace.
At n = 32,768 in float64 that is 3 x 8 GiB; on one 80 GB+ GPU such a solve fits (``torch.linalg`` dispatches to
cuSOLVER), on a CPU it takes hours.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch

#: Relative tolerance for "positive semi-definite": lowest eigenvalue >= -PSD_TOL * largest eigenvalue.
PSD_TOL = 1e-8
#: Jitter ladder for Cholesky in float64, relative to the mean of the kernel's diagonal; tried in order.
JITTER_LADDER: tuple[float, ...] = (0.0, 1e-12, 1e-10, 1e-8, 1e-6)
#: Jitter ladder for Cholesky in float32 (and lower precisions), relative to the mean diagonal.
JITTER_LADDER_FLOAT32: tuple[float, ...] = (0.0, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2)


def default_jitter_ladder(dtype: torch.dtype) -> tuple[float, ...]:
    """The default ladder for a kernel of ``dtype``: :data:`JITTER_LADDER` for float64, else the float32 one."""
    return JITTER_LADDER if dtype == torch.float64 else JITTER_LADDER_FLOAT32


def psd_tolerance(psd_tol: float, n: int, dtype: torch.dtype) -> float:
    """The relative PSD tolerance used for an n x n kernel of ``dtype``: ``max(psd_tol, n * eps(dtype))``."""
    return max(psd_tol, n * torch.finfo(dtype).eps)


def _shifted(kernel: torch.Tensor, shift: float) -> torch.Tensor:
    """A copy of ``kernel`` with ``shift`` added to its diagonal (no identity matrix is formed)."""
    k = kernel.clone()
    if shift:
        k.diagonal().add_(shift)
    return k


Solver = Literal["cholesky", "eigh"]


@dataclass(frozen=True)
class SolveInfo:
    """How a kernel was solved or diagonalised.

    Attributes:
        solver: ``"cholesky"`` or ``"eigh"`` (eigendecomposition; used for finite training times and when
            Cholesky failed at every jitter of the ladder).
        jitter: absolute value added to the diagonal for the solve that succeeded (0.0 for eigh).
        jitters_tried: absolute jitters tried by Cholesky, in order (empty for a direct eigendecomposition).
        condition_number: ``lambda_max / lambda_min`` of the (ridge-regularised) kernel; ``inf`` if singular.
        min_eigenvalue: lowest eigenvalue of the kernel solved (after ridge, before jitter).
        max_eigenvalue: largest eigenvalue of the kernel solved.
        n_clipped: eigenvalues below the PSD tolerance treated as zero (eigh only).
        ridge: the ridge added to the diagonal before anything else.
    """

    solver: Solver
    jitter: float
    jitters_tried: tuple[float, ...]
    condition_number: float
    min_eigenvalue: float
    max_eigenvalue: float
    n_clipped: int = 0
    ridge: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for result rows (tuples become lists)."""
        d = asdict(self)
        d["jitters_tried"] = list(self.jitters_tried)
        return d


def _condition(lam_min: float, lam_max: float) -> float:
    return lam_max / lam_min if lam_min > 0 else math.inf


def check_psd(name: str, eigenvalues: torch.Tensor, psd_tol: float = PSD_TOL) -> tuple[float, float]:
    """Raise unless ``eigenvalues`` (ascending) belong to a PSD matrix up to ``psd_tol``; return (min, max).

    Raises:
        ValueError: if the lowest eigenvalue is below ``-psd_tol * max(|lambda_max|, tiny)``.
    """
    lam_min, lam_max = float(eigenvalues[0]), float(eigenvalues[-1])
    if lam_min < -psd_tol * max(abs(lam_max), 1e-300):
        raise ValueError(
            f"{name}: kernel is not positive semi-definite: lowest eigenvalue {lam_min:.6e}, largest "
            f"{lam_max:.6e} (tolerance {psd_tol:g} relative to the largest)"
        )
    return lam_min, lam_max


def psd_eigh(
    name: str, kernel: torch.Tensor, *, ridge: float = 0.0, psd_tol: float = PSD_TOL
) -> tuple[torch.Tensor, torch.Tensor, SolveInfo]:
    """Eigendecomposition of ``kernel + ridge * I`` with eigenvalues within tolerance of 0 clipped to 0.

    Returns:
        ``(eigenvalues, eigenvectors, info)``, eigenvalues ascending and >= 0.

    Raises:
        ValueError: if the kernel is not PSD beyond ``psd_tol`` (the message gives the lowest eigenvalue).
    """
    psd_tol = psd_tolerance(psd_tol, kernel.shape[0], kernel.dtype)
    evals, evecs = torch.linalg.eigh(_shifted(kernel, ridge))
    lam_min, lam_max = check_psd(name, evals, psd_tol)
    cutoff = psd_tol * max(abs(lam_max), 1e-300)
    small = evals <= cutoff
    evals = torch.where(small, torch.zeros_like(evals), evals)
    info = SolveInfo(
        solver="eigh",
        jitter=0.0,
        jitters_tried=(),
        condition_number=_condition(lam_min, lam_max),
        min_eigenvalue=lam_min,
        max_eigenvalue=lam_max,
        n_clipped=int(small.sum()),
        ridge=ridge,
    )
    return evals, evecs, info


def solve_psd(
    name: str,
    kernel: torch.Tensor,
    rhs: torch.Tensor,
    *,
    ridge: float = 0.0,
    psd_tol: float = PSD_TOL,
    jitter_ladder: tuple[float, ...] | None = None,
) -> tuple[torch.Tensor, SolveInfo]:
    """Solve ``(kernel + ridge * I) X = rhs`` for a PSD kernel.

    The kernel is first checked to be PSD up to ``psd_tol`` (its eigenvalues also give the condition number).
    Cholesky is tried with each jitter of ``jitter_ladder`` (relative to the mean diagonal); if all fail, the
    eigendecomposition is used with eigenvalues below the tolerance treated as zero (a pseudo-inverse). Which one ran
    is in the returned :class:`SolveInfo`.

    Args:
        name: argument name used in error messages.
        kernel: (n, n) symmetric kernel (float64; float32 uses the float32 ladder and tolerance).
        rhs: (n, k) right-hand side.
        ridge: added to the diagonal before solving (part of the problem, not a numerical device).
        psd_tol: relative tolerance for the PSD check (raised to ``n * eps`` of the dtype when that is larger).
        jitter_ladder: relative jitters tried in order; None: :func:`default_jitter_ladder` of the kernel's dtype.

    Returns:
        ``(solution, info)``.

    Raises:
        ValueError: if the kernel is not PSD beyond ``psd_tol``.
    """
    ladder = default_jitter_ladder(kernel.dtype) if jitter_ladder is None else jitter_ladder
    psd_tol = psd_tolerance(psd_tol, kernel.shape[0], kernel.dtype)
    k = _shifted(kernel, ridge)
    evals = torch.linalg.eigvalsh(k)
    lam_min, lam_max = check_psd(name, evals, psd_tol)
    del evals
    scale = float(torch.diagonal(k).mean())
    scale = scale if scale > 0 else 1.0
    tried: list[float] = []
    base = k.diagonal().clone()
    for rel in ladder:
        jitter = rel * scale
        tried.append(jitter)
        k.diagonal().copy_(base + jitter)  # in place: the working copy is kernel + ridge + this jitter
        chol, status = torch.linalg.cholesky_ex(k)
        if int(status) == 0:
            sol = torch.cholesky_solve(rhs, chol)
            info = SolveInfo(
                "cholesky", jitter, tuple(tried), _condition(lam_min, lam_max), lam_min, lam_max, 0, ridge
            )
            return sol, info
        del chol
    del k
    evals_c, evecs, info_e = psd_eigh(name, kernel, ridge=ridge, psd_tol=psd_tol)
    inv = torch.where(evals_c > 0, 1.0 / torch.where(evals_c > 0, evals_c, torch.ones_like(evals_c)), 0.0)
    sol = evecs @ (inv[:, None] * (evecs.T @ rhs))
    info = SolveInfo(
        "eigh", 0.0, tuple(tried), info_e.condition_number, lam_min, lam_max, info_e.n_clipped, ridge
    )
    return sol, info
