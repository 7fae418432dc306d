"""Brute-force reference: the whole Jacobian of the batch with torch.func.jacrev, contracted with einsum."""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call, jacrev


def full_jacobian(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """(n, O, P): ∂ f_o(x_i) / ∂θ over all trainable parameters, by reverse mode on the whole batch."""
    params = {k: v.detach() for k, v in model.named_parameters() if v.requires_grad}
    n = x.shape[0]

    def f(p):
        return functional_call(model, p, (x,), strict=False).reshape(n, -1)

    jac = jacrev(f)(params)
    o = next(iter(jac.values())).shape[1]
    return torch.cat([j.reshape(n, o, -1) for j in jac.values()], dim=2)


def reference_ntk(model: nn.Module, x1: torch.Tensor, x2: torch.Tensor | None, outputs: str) -> torch.Tensor:
    j1 = full_jacobian(model, x1)
    j2 = j1 if x2 is None else full_jacobian(model, x2)
    full = torch.einsum("aop,bqp->abo q".replace(" ", ""), j1, j2)
    if outputs == "full":
        return full
    diag = torch.diagonal(full, dim1=2, dim2=3)
    if outputs == "mean":  # neural-tangents' trace_axes convention
        return diag.mean(-1)
    return diag.sum(-1) if outputs == "trace" else diag
