"""How far training moved things: kernels, parameters and functions, relative to where they started.

Lee et al. 2019 (arXiv 1902.06720, Fig. 1) track ``||Theta_t - Theta_0||_F / ||Theta_0||_F``,
``||theta_t - theta_0|| / ||theta_0||`` and ``||f_t - f_t^lin||``: in NTK parametrization each shrinks like
``width^(-1/2)``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from tangentlab.metrics._checks import as_tensor, frobenius, same_shape


def relative_frobenius_change(kernel_t: Any, kernel_0: Any) -> float:
    """``||K_t - K_0||_F / ||K_0||_F`` (Lee et al. 2019, Fig. 1).

    Raises:
        ValueError: for different shapes or a zero reference kernel.
    """
    kt, k0 = as_tensor("kernel_t", kernel_t), as_tensor("kernel_0", kernel_0)
    same_shape("kernel_0", k0, "kernel_t", kt)
    n0 = frobenius(k0)
    if n0 == 0:
        raise ValueError("kernel_0: expected a non-zero reference kernel")
    return frobenius(kt - k0) / n0


def _flat(name: str, params: Any) -> torch.Tensor:
    if isinstance(params, nn.Module):
        params = [p for p in params.parameters() if p.requires_grad]
    if isinstance(params, torch.Tensor):
        return as_tensor(name, params).reshape(-1).to(torch.float64)
    if isinstance(params, Iterable):
        parts = [as_tensor(name, p).reshape(-1).to(torch.float64) for p in params]
        if not parts:
            raise ValueError(f"{name}: expected at least one parameter tensor, got none")
        return torch.cat(parts)
    raise TypeError(f"{name}: expected an nn.Module, a tensor or tensors, got {type(params).__name__}")


def relative_param_change(params_t: Any, params_0: Any) -> float:
    """``||theta_t - theta_0||_2 / ||theta_0||_2`` over all (trainable) parameters.

    Args:
        params_t: an ``nn.Module`` (its trainable parameters), a flat tensor, or a sequence of tensors.
        params_0: the reference, in the same form and order.
    """
    a, b = _flat("params_t", params_t), _flat("params_0", params_0)
    same_shape("params_0", b, "params_t", a)
    n0 = frobenius(b)
    if n0 == 0:
        raise ValueError("params_0: expected non-zero reference parameters")
    return frobenius(a - b) / n0


def function_gap(outputs_net: Any, outputs_lin: Any, *, relative: bool = True) -> float:
    """Gap between a network's outputs and its linearization's: ``||f - f_lin||_F`` (over all points and outputs),
    divided by ``||f_lin||_F`` when ``relative`` (Lee et al. 2019, Fig. 1 and Thm. 2.1).
    """
    a, b = as_tensor("outputs_net", outputs_net), as_tensor("outputs_lin", outputs_lin)
    same_shape("outputs_lin", b, "outputs_net", a)
    gap = frobenius(a - b)
    if not relative:
        return gap
    nb = frobenius(b)
    if nb == 0:
        raise ValueError("outputs_lin: relative gap is undefined for all-zero reference outputs")
    return gap / nb
