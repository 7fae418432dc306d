"""A model as a function of (some of) its parameters, for torch.func, and per-example output flattening."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.func import functional_call

Params = dict[str, torch.Tensor]


def trainable_params(model: nn.Module) -> Params:
    """Named trainable parameters (shared parameters appear once, under their first name)."""
    return {name: p for name, p in model.named_parameters() if p.requires_grad}


def flat_output(out: torch.Tensor, n: int) -> torch.Tensor:
    """A model's output for ``n`` examples as ``(n, O)``: scalar outputs get ``O = 1``, tensors are flattened."""
    if out.ndim == 0 or out.shape[0] != n:
        raise ValueError(
            f"model: expected an output with the {n} examples along dim 0, got shape {tuple(out.shape)}"
        )
    return out.reshape(n, -1)


def model_fn(model: nn.Module) -> Callable[[Params, torch.Tensor], torch.Tensor]:
    """``f(params, x) -> (n, O)`` with ``params`` replacing any subset of the model's own parameters."""

    def f(params: Params, x: torch.Tensor) -> torch.Tensor:
        return flat_output(functional_call(model, params, (x,), strict=False), x.shape[0])

    return f


def single_example_fn(model: nn.Module) -> Callable[[Params, torch.Tensor], torch.Tensor]:
    """``f(params, x) -> (O,)`` for one example ``x`` (without batch dim), for use under ``vmap``."""
    f = model_fn(model)

    def g(params: Params, x: torch.Tensor) -> torch.Tensor:
        return f(params, x.unsqueeze(0))[0]

    return g


def num_outputs(model: nn.Module, x: torch.Tensor) -> int:
    with torch.no_grad():
        return int(flat_output(model(x[:1]), 1).shape[1])
