"""The ``jacobian`` method: per-example Jacobians with torch.func, contracted block by block."""

from __future__ import annotations

import torch
from torch import nn
from torch.func import jacrev, vmap

from tangentlab.kernels._blocks import BlockEngine
from tangentlab.kernels._contract import contract
from tangentlab.kernels._cost import Cost, block_size, pair_bytes, recomputes
from tangentlab.kernels._functional import Params, single_example_fn
from tangentlab.kernels._probe import ModelShape
from tangentlab.kernels.methods._base import NtkMethod, detached, register


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


@register
class JacobianMethod(NtkMethod):
    """Jacobians ``(n1 + r·n2)·(1 + 2O)·F``; contraction ``2·n1·n2·m·P``; memory ``2·O·(P + A)`` per example."""

    name = "jacobian"
    priority = 1

    def cost(
        self,
        shape: ModelShape,
        n1: int,
        n2: int,
        outputs: str,
        itemsize: int,
        budget: float,
        batch_size: int | None,
    ) -> Cost:
        o, p, f, a = shape.num_outputs, shape.num_params, shape.forward_flops, shape.activations
        m = o * o if outputs == "full" else o
        per_pass = (1 + 2 * o) * f
        per = 2 * o * p * itemsize + 2 * o * a * itemsize
        b = block_size(max(n1, n2), per, pair_bytes(outputs, o, itemsize), budget, batch_size)
        passes = (n1 + n2 * recomputes(n1, n2, per, b, budget)) * per_pass
        return Cost(self.name, passes + 2.0 * n1 * n2 * m * p, b, per, 2 * b * per <= budget)

    def engine(
        self,
        model: nn.Module,
        params: Params,
        shape: ModelShape,
        outputs: str,
        cost: Cost,
        n1: int,
        n2: int,
        budget: float,
        itemsize: int,
    ) -> BlockEngine:
        return JacobianBlocks(model, detached(params), outputs)
