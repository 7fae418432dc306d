"""Explicit eNTK features: the per-example parameter gradients of a scalar-output network.

For a model with one output, ``phi(x) = grad_theta f(x; theta)`` (flattened over the trainable parameters) are the
features of its empirical NTK: ``phi(x1) @ phi(x2).T = empirical_ntk(model, x1, x2)``. Keeping the features instead of
the kernel pays when the number of parameters ``P`` is small against the number of inputs, or when a kernel grows
one input at a time (a bandit's history): ``(n, P)`` memory, and each new kernel row is one product.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from tangentlab.kernels._checks import as_inputs, check_module, reference_tensor


def ntk_features(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Per-example gradients ``grad_theta f(x_i; theta)`` of a scalar-output model, flattened: (n, P).

    ``ntk_features(m, x1) @ ntk_features(m, x2).T`` is :func:`tangentlab.empirical_ntk` of ``m`` (one output, so
    every ``outputs`` mode agrees). Computed by ``torch.func.vmap`` over ``torch.func.grad`` of one example at a
    time, in the parameters' dtype; parameters with ``requires_grad=False`` are left out, buffers are used as they
    are.

    Raises:
        TypeError: ``model`` is not an ``nn.Module``.
        ValueError: the model has more than one output per example, or ``x`` is not a batch of inputs.
    """
    module = check_module(model)
    x = as_inputs("x", x, reference_tensor(module))
    params = {k: v.detach() for k, v in module.named_parameters() if v.requires_grad}
    buffers = {k: v.detach() for k, v in module.named_buffers()}
    with torch.no_grad():
        n_out = functional_call(module, (params, buffers), (x[:1],)).numel()
    if n_out != 1:
        raise ValueError(
            f"model: expected one output per example, got {n_out}; use empirical_ntk for several"
        )

    def f(p: dict[str, torch.Tensor], xi: torch.Tensor) -> torch.Tensor:
        return cast(torch.Tensor, functional_call(module, (p, buffers), (xi[None],)).reshape(()))

    grads = vmap(grad(f), in_dims=(None, 0))(params, x)
    return torch.cat([grads[k].reshape(x.shape[0], -1) for k in params], dim=1)


__all__ = ["ntk_features"]
