"""The ``ntvp`` method: NTK-vector products, a vector-Jacobian product then a Jacobian-vector product.

Column ``(b, o')`` of the NTK block is ``J(x1) J(x2_b)^T e_{o'}``: the VJP of the single example ``x2_b`` with the
unit cotangent ``e_{o'}`` gives a parameter-shaped vector ``g`` (never a whole Jacobian), and the JVP of the x1
block along ``g`` gives the column. The ``b2·O`` columns of a block are vectorised with ``vmap`` in chunks sized
to the memory budget. Cost per pair of examples: about ``O`` VJPs and JVPs, i.e. ``≈ 3·O`` forward passes.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.func import jvp, vjp, vmap

from tangentlab.kernels._contract import reduce_full
from tangentlab.kernels._functional import Params, model_fn, single_example_fn


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
