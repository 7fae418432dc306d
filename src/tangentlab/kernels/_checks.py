"""Validation shared by the empirical kernels: arguments, inputs, and models that mix examples in a batch."""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np
import torch
from torch import nn

Outputs = Literal["trace", "mean", "full", "diagonal"]  # "mean": neural-tangents' trace_axes convention
Method = Literal["auto", "jacobian", "ntvp", "structured"]
OUTPUTS: tuple[str, ...] = get_args(Outputs)
METHODS: tuple[str, ...] = get_args(Method)


def check_choice(name: str, value: object, choices: tuple[str, ...]) -> str:
    """Return ``value`` if it is one of ``choices``; otherwise raise a ValueError naming all three."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name}: expected one of {', '.join(map(repr, choices))}; got {value!r}")
    return value


def check_module(model: object) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    return model


def check_positive_int(name: str, value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}: expected a positive integer or None, got {value!r}")
    return value


def reference_tensor(model: nn.Module) -> torch.Tensor:
    """A trainable parameter of ``model`` that fixes the dtype and device of the computation."""
    for p in model.parameters():
        if p.requires_grad:
            return p
    raise ValueError(
        f"model: {type(model).__name__} has no trainable parameters (requires_grad=True); "
        "its neural tangent kernel is zero"
    )


def as_inputs(name: str, x: object, like: torch.Tensor) -> torch.Tensor:
    """``x`` as a tensor on ``like``'s device; floating inputs take ``like``'s dtype, integer ones (token ids) stay."""
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor or numpy array, got {type(x).__name__}")
    if x.ndim < 1:
        raise ValueError(f"{name}: expected a batch with examples along dim 0, got a 0-d tensor")
    if x.shape[0] == 0:
        raise ValueError(f"{name}: expected at least one example, got shape {tuple(x.shape)}")
    if x.is_floating_point() or x.is_complex():
        # One reduction first: a NaN/inf anywhere makes the sum non-finite (so does overflow of a finite sum, and
        # then the exact count decides); the elementwise check costs 30x more on a clean batch.
        bad = 0 if bool(torch.isfinite(x.sum())) else int((~torch.isfinite(x)).sum())
        if bad:
            raise ValueError(
                f"{name}: expected finite inputs, got {bad} NaN/inf value(s) (the kernel would be NaN)"
            )
        return x.to(device=like.device, dtype=like.dtype)
    return x.to(device=like.device)


def check_pair(x1: torch.Tensor, x2: torch.Tensor) -> None:
    if x1.shape[1:] != x2.shape[1:]:
        raise ValueError(
            f"x2: expected examples of the same feature shape as x1, {tuple(x1.shape[1:])}; "
            f"got {tuple(x2.shape[1:])} (x1 shape {tuple(x1.shape)}, x2 shape {tuple(x2.shape)})"
        )


_RANDOM_IN_TRAINING = (
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.AlphaDropout,
    nn.FeatureAlphaDropout,
)


def check_per_example(model: nn.Module, x: torch.Tensor) -> None:
    """Raise if ``model``'s output for one example depends on the rest of its batch (or on chance).

    A kernel is a function of a pair of inputs; it is defined only when the network maps each example on its own.
    Known offenders (BatchNorm in train mode, dropout in train mode) are named; anything else is caught by
    comparing a batch of two examples with the examples one by one.
    """
    for name, module in model.named_modules():
        label = name or type(model).__name__
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.training:
            raise ValueError(
                f"model: layer {label!r} ({type(module).__name__}) is in train mode and mixes the examples of a "
                "batch through its batch statistics, so the NTK is not defined; call model.eval() first"
            )
        if isinstance(module, _RANDOM_IN_TRAINING) and module.training and module.p > 0:
            raise ValueError(
                f"model: layer {label!r} ({type(module).__name__}) is in train mode and random; "
                "call model.eval() first"
            )
    if x.shape[0] < 2:
        return
    probe = x[:2]
    with torch.no_grad():
        together = model(probe)
        alone = torch.cat([model(probe[:1]), model(probe[1:2])])
    if together.shape != alone.shape:
        raise ValueError(
            f"model: expected outputs with the batch along dim 0; a batch of 2 gave shape {tuple(together.shape)}"
        )
    scale = float(together.abs().max()) + 1e-12
    tol = 1e-4 if together.dtype in (torch.float16, torch.bfloat16, torch.float32) else 1e-9
    if float((together - alone).abs().max()) > tol * scale:
        raise ValueError(
            "model: the output for an example changes with the other examples in its batch (a layer mixes "
            "examples, or the forward pass is random), so the NTK is not defined"
        )
