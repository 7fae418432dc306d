"""Validation of training inputs, done before the model is touched (so a bad call changes nothing)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import torch
from torch import nn


def check_choice(name: str, value: Any, choices: Sequence[str]) -> None:
    """Raise ``ValueError`` naming the argument, the value and the choices unless ``value`` is a choice."""
    if value not in choices:
        raise ValueError(f"{name}: expected one of {tuple(choices)}, got {value!r}")


def param_dtype(model: nn.Module) -> torch.dtype:
    """dtype of the model's first floating parameter."""
    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    raise ValueError("model: expected at least one floating-point parameter, got none")


def check_inputs(name: str, x: Any, dtype: torch.dtype) -> torch.Tensor:
    """Inputs as a non-empty, finite tensor in the parameters' dtype."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if x.ndim == 0 or x.shape[0] == 0:
        raise ValueError(f"{name}: expected a non-empty batch (n, ...), got shape {tuple(x.shape)}")
    if x.is_floating_point():
        if not bool(torch.isfinite(x).all()):
            raise ValueError(
                f"{name}: expected finite values, got {int((~torch.isfinite(x)).sum())} NaN/inf entries"
            )
        x = x.to(dtype)
    return cast(torch.Tensor, x)


def check_targets(name: str, y: Any, n: int, x_name: str, dtype: torch.dtype) -> torch.Tensor:
    """Targets with ``n`` rows, finite; floating targets cast to the parameters' dtype."""
    if not isinstance(y, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(y).__name__}")
    if y.ndim == 0 or y.shape[0] != n:
        raise ValueError(f"{name}: expected {n} rows to match {x_name}, got shape {tuple(y.shape)}")
    if y.is_floating_point():
        if not bool(torch.isfinite(y).all()):
            raise ValueError(
                f"{name}: expected finite values, got {int((~torch.isfinite(y)).sum())} NaN/inf entries"
            )
        y = y.to(dtype)
    return cast(torch.Tensor, y)


def match_outputs(loss: str, outputs: torch.Tensor, y: torch.Tensor, name: str) -> torch.Tensor:
    """Check targets against the model's outputs for ``loss``; a vector target for a (n, 1) output is reshaped."""
    if loss == "mse":
        if not y.is_floating_point():
            raise TypeError(f"{name}: expected floating targets for loss='mse', got dtype {y.dtype}")
        if y.ndim == 1 and outputs.ndim == 2 and outputs.shape[1] == 1:
            y = y[:, None]
        if y.shape[1:] != outputs.shape[1:]:
            raise ValueError(
                f"{name}: expected per-example shape {tuple(outputs.shape[1:])} to match the model's outputs, "
                f"got {tuple(y.shape[1:])}"
            )
        return y
    if outputs.ndim != 2:
        raise ValueError(
            f"model: expected (n, C) logits for loss='cross_entropy', got shape {tuple(outputs.shape)}"
        )
    c = outputs.shape[1]
    if y.is_floating_point():
        if y.shape[1:] != (c,):
            raise ValueError(
                f"{name}: expected (n, {c}) class probabilities or (n,) indices, got {tuple(y.shape)}"
            )
        return y
    if y.ndim != 1:
        raise ValueError(f"{name}: expected (n,) class indices, got shape {tuple(y.shape)}")
    lo, hi = int(y.min()), int(y.max())
    if lo < 0 or hi >= c:
        raise ValueError(f"{name}: expected class indices in [0, {c}), got values in [{lo}, {hi}]")
    return y.long()
