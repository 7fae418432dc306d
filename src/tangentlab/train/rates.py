"""The spectral learning rate: a gradient-descent step size set as a fraction of the linearized dynamics' limit.

For MSE ``L = (1/(2n)) sum_i ||f(x_i) - y_i||^2``, one full-batch GD step of a network linearized at init moves its
training outputs by ``f <- f - (eta / n) Theta (f - y)`` (``Theta``: the NTK on the ``n`` training inputs, one
output's kernel, or the full ``(nO, nO)`` kernel). The map contracts every eigendirection iff
``eta < 2 n / lambda_max(Theta)``; Lee et al. 2019 (arXiv 1902.06720, Thm. 2.1) assume the stricter
``eta < 2 n / (lambda_min + lambda_max)``, which ``fraction < 1`` meets. ``eta = fraction * n / lambda_max`` puts every
width and parametrization equally far from the edge of stability (in standard parametrization ``Theta`` grows with
width, and so the rate shrinks with it).
"""

from __future__ import annotations

import math

import torch


def spectral_learning_rate(
    ntk: torch.Tensor,
    fraction: float = 0.5,
    *,
    n: int | None = None,
    eigenvalues: torch.Tensor | None = None,
) -> float:
    """``fraction * n / lambda_max(ntk)``: the GD step size as a fraction of ``n / lambda_max`` (stable below 2).

    Args:
        ntk: symmetric NTK on the training inputs: the per-output (n, n) kernel, or the full (nO, nO) one.
        fraction: the rate as a fraction of ``n / lambda_max``; GD on the linearized net is stable for ``< 2``.
        n: the number of training examples (the loss's ``1/n``); default ``ntk.shape[0]``, right for the per-output
            kernel; pass it for the full (nO, nO) kernel.
        eigenvalues: ``torch.linalg.eigvalsh(ntk)`` when the caller has it already (ascending), to skip the
            decomposition.

    Raises:
        ValueError: a kernel that is not square, a non-positive ``fraction`` or ``n``, or a largest eigenvalue that
            is not a positive finite number.
    """
    if (
        not isinstance(ntk, torch.Tensor)
        or ntk.ndim != 2
        or ntk.shape[0] != ntk.shape[1]
        or ntk.shape[0] == 0
    ):
        raise ValueError(
            f"ntk: expected a non-empty square (n, n) tensor, got shape {tuple(getattr(ntk, 'shape', ()))}"
        )
    if not (isinstance(fraction, int | float) and math.isfinite(fraction) and fraction > 0):
        raise ValueError(f"fraction: expected a positive finite number, got {fraction!r}")
    n_train = ntk.shape[0] if n is None else n
    if isinstance(n_train, bool) or not isinstance(n_train, int) or n_train < 1:
        raise ValueError(f"n: expected a positive int, got {n!r}")
    evals = torch.linalg.eigvalsh(ntk) if eigenvalues is None else eigenvalues
    lam_max = float(evals[-1])
    if not (math.isfinite(lam_max) and lam_max > 0):
        raise ValueError(f"ntk: expected a positive largest eigenvalue, got {lam_max!r}")
    return fraction * n_train / lam_max


__all__ = ["spectral_learning_rate"]
