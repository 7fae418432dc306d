"""The ``ntvp`` method: NTK-vector products, a vector-Jacobian product then a Jacobian-vector product.

Column ``(b, o')`` of the NTK block is ``J(x1) J(x2_b)^T e_{o'}``: the VJP of the single example ``x2_b`` with the
unit cotangent ``e_{o'}`` gives a parameter-shaped vector ``g`` (never a whole Jacobian), and the JVP of the x1
block along ``g`` gives the column. The ``b2·O`` columns of a block are vectorised with ``vmap`` in chunks sized
to the memory budget. Cost per pair of examples: about ``O`` VJPs and JVPs, i.e. ``≈ 3·O`` forward passes.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.func import jvp, vjp, vmap

from tangentlab.kernels._blocks import BlockEngine
from tangentlab.kernels._contract import reduce_full
from tangentlab.kernels._cost import Cost
from tangentlab.kernels._functional import Params, model_fn, single_example_fn
from tangentlab.kernels._probe import ModelShape
from tangentlab.kernels.methods._base import NtkMethod, detached, register


class NtvpBlocks:
    def __init__(
        self, model: nn.Module, params: Params, outputs: str, num_outputs: int, chunk_size: int
    ) -> None:
        self.params = params
        self.outputs = outputs
        self.num_outputs = num_outputs
        self.chunk_size = max(1, chunk_size)
        self._f = model_fn(model)
        self._f1 = single_example_fn(model)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def pair(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        params, f, f1 = self.params, self._f, self._f1
        o = self.num_outputs
        b1, b2 = x1.shape[0], x2.shape[0]

        def column(x2_one: torch.Tensor, cotangent: torch.Tensor) -> torch.Tensor:
            vjp_fn = vjp(lambda p: f1(p, x2_one), params)[1]
            (direction,) = vjp_fn(cotangent)
            tangent_out: torch.Tensor = jvp(lambda p: f(p, x1), (params,), (direction,))[1]
            return tangent_out  # (b1, O): Θ[:, :, b, o'] for this (x2_b, e_o')

        basis = torch.eye(o, dtype=self._basis_dtype(), device=x1.device)
        examples = x2.repeat_interleave(o, dim=0)
        cotangents = basis.repeat(b2, 1)
        cols = vmap(column, chunk_size=self.chunk_size)(examples, cotangents)  # (b2*O, b1, O)
        full = cols.reshape(b2, o, b1, o).permute(2, 0, 3, 1)  # (b1, b2, O, O')
        return reduce_full(full, self.outputs)

    def _basis_dtype(self) -> torch.dtype:
        return next(iter(self.params.values())).dtype


@register
class NtvpMethod(NtkMethod):
    """One VJP per (x2 example, output) and a JVP of the x1 block along it: ``n2·O·(n1/b1)·3F + n1·n2·O·3F``;
    memory ``3·c·(P + b1·A)`` for a vmap chunk of ``c`` columns."""

    name = "ntvp"
    priority = 2

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
        b1 = min(n1, batch_size or 256)
        chunk_bytes = 3 * (p + b1 * a) * itemsize
        flops = n2 * o * math.ceil(n1 / b1) * 3.0 * f + n1 * n2 * o * 3.0 * f
        return Cost(self.name, flops, b1, chunk_bytes, chunk_bytes <= budget)

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
        per_column = 3 * (shape.num_params + cost.batch_size * shape.activations) * itemsize
        chunk = int(budget // max(per_column, 1))
        return NtvpBlocks(model, detached(params), outputs, shape.num_outputs, chunk)

    def x2_block(self, cost: Cost, n2: int, batch_size: int | None) -> int:
        return min(n2, batch_size or 256)

    def caches_x2(self, cost: Cost, n2: int, budget: float) -> bool:
        return False  # its features are the inputs themselves
