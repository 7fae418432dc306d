"""Input validation shared by the prediction functions: float64 conversion, shapes, finiteness."""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import torch

ArrayLike = torch.Tensor | np.ndarray


def as_float64(name: str, value: Any, *, ndim: tuple[int, ...] | None = None) -> torch.Tensor:
    """``value`` as a float64 tensor, checked to be finite and of an allowed rank.

    Raises:
        TypeError: if ``value`` is not a tensor or array.
        ValueError: if its rank is not in ``ndim``, it is empty, or it holds NaN/inf.
    """
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(value)
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor or numpy.ndarray, got {type(value).__name__}")
    if ndim is not None and value.ndim not in ndim:
        raise ValueError(
            f"{name}: expected a tensor with {' or '.join(map(str, ndim))} dims, got shape {tuple(value.shape)}"
        )
    if value.numel() == 0:
        raise ValueError(f"{name}: expected a non-empty tensor, got shape {tuple(value.shape)}")
    value = value.detach().to(torch.float64)
    if not bool(torch.isfinite(value).all()):
        bad = int((~torch.isfinite(value)).sum())
        raise ValueError(f"{name}: expected finite values, got {bad} NaN/inf entries")
    return cast(torch.Tensor, value)


def as_targets(name: str, value: Any, n: int) -> tuple[torch.Tensor, bool]:
    """Targets as an (n, k) float64 tensor, and whether they came in as a vector (n,)."""
    y = as_float64(name, value, ndim=(1, 2))
    if y.shape[0] != n:
        raise ValueError(f"{name}: expected {n} rows to match the kernel, got shape {tuple(y.shape)}")
    return (y[:, None], True) if y.ndim == 1 else (y, False)


def as_kernel(name: str, value: Any, rows: int | None = None, cols: int | None = None) -> torch.Tensor:
    """A scalar-per-output kernel block of shape (rows, cols), float64 and finite."""
    k = as_float64(name, value, ndim=(2,))
    if (rows is not None and k.shape[0] != rows) or (cols is not None and k.shape[1] != cols):
        want = f"({'?' if rows is None else rows}, {'?' if cols is None else cols})"
        raise ValueError(f"{name}: expected shape {want}, got {tuple(k.shape)}")
    return k


def as_square_kernel(name: str, value: Any) -> torch.Tensor:
    """A square kernel, symmetric up to round-off of its input dtype (``max(1e-8, 100 eps)`` relative), symmetrised."""
    dtype = value.dtype if isinstance(value, torch.Tensor) else torch.float64
    eps = torch.finfo(dtype).eps if dtype.is_floating_point else 0.0
    k = as_kernel(name, value)
    if k.shape[0] != k.shape[1]:
        raise ValueError(f"{name}: expected a square (n, n) kernel, got shape {tuple(k.shape)}")
    scale = float(k.abs().max())
    asym = float((k - k.T).abs().max())
    if asym > max(1e-8, 100 * eps) * max(scale, 1e-300):
        raise ValueError(
            f"{name}: expected a symmetric kernel, got max |K - K^T| = {asym:.3e} (max |K| = {scale:.3e})"
        )
    return 0.5 * (k + k.T)


def check_nonnegative(name: str, value: float) -> float:
    """``value`` as a float, checked finite and >= 0."""
    v = float(value)
    if not np.isfinite(v) or v < 0:
        raise ValueError(f"{name}: expected a finite number >= 0, got {value!r}")
    return v


def check_positive(name: str, value: float) -> float:
    """``value`` as a float, checked finite and > 0."""
    v = float(value)
    if not np.isfinite(v) or v <= 0:
        raise ValueError(f"{name}: expected a finite number > 0, got {value!r}")
    return v


def flatten_full_kernel(
    name: str, value: Any, rows: int | None = None, outputs: int | None = None
) -> torch.Tensor:
    """A full kernel (n1, n2, O, O) as an (n1 O, n2 O) matrix, row index ``i * O + o`` (float64, finite)."""
    k = as_float64(name, value, ndim=(4,))
    n1, n2, o1, o2 = k.shape
    if o1 != o2 or (outputs is not None and o1 != outputs):
        want = "(n1, n2, O, O)" if outputs is None else f"(n1, n2, {outputs}, {outputs})"
        raise ValueError(f"{name}: expected a full kernel of shape {want}, got {tuple(k.shape)}")
    if rows is not None and n2 != rows:
        raise ValueError(
            f"{name}: expected second dimension {rows} (training points), got shape {tuple(k.shape)}"
        )
    return k.permute(0, 2, 1, 3).reshape(n1 * o1, n2 * o2)
