"""The ``jacobian`` method: per-example Jacobians with torch.func, contracted block by block."""

from __future__ import annotations

import torch
from torch import nn
from torch.func import jacrev, vmap

from tangentlab.kernels._contract import contract
from tangentlab.kernels._functional import Params, single_example_fn


class JacobianBlocks:
    """Per-example Jacobians ``∂f_o(x)/∂θ`` of ``params`` (all trainable ones, or a subset), flattened to (b, O, P).

    Cost per example: one forward and ``O`` reverse passes (``jacrev`` under ``vmap``); memory ``O·P`` numbers.
    """

    def __init__(self, model: nn.Module, params: Params, outputs: str) -> None:
        self.params = params
        self.outputs = outputs
        self._jac = vmap(jacrev(single_example_fn(model)), in_dims=(None, 0))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        jac = self._jac(self.params, x)
        b = x.shape[0]
        return torch.cat([j.reshape(b, j.shape[1], -1) for j in jac.values()], dim=2)

    def pair(self, f1: torch.Tensor, f2: torch.Tensor) -> torch.Tensor:
        return contract(f1, f2, self.outputs)
