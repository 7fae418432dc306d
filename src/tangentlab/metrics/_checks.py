"""Argument checks shared by the metrics."""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import torch


def as_tensor(name: str, value: Any) -> torch.Tensor:
    """``value`` as a detached, non-empty tensor (numpy arrays accepted); floats become float64."""
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(value)
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor or numpy.ndarray, got {type(value).__name__}")
    if value.numel() == 0:
        raise ValueError(f"{name}: expected a non-empty tensor, got shape {tuple(value.shape)}")
    value = value.detach()
    return cast(torch.Tensor, value.to(torch.float64) if value.is_floating_point() else value)


def same_shape(name_a: str, a: torch.Tensor, name_b: str, b: torch.Tensor) -> None:
    """Raise unless ``a`` and ``b`` have the same shape."""
    if a.shape != b.shape:
        raise ValueError(f"{name_b}: expected shape {tuple(a.shape)} like {name_a}, got {tuple(b.shape)}")


def frobenius(x: torch.Tensor) -> float:
    """Frobenius (entrywise L2) norm as a float."""
    return float(torch.linalg.vector_norm(x.to(torch.float64)))
