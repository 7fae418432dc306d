"""Contraction of per-example Jacobian blocks into NTK blocks, for each ``outputs`` mode."""

from __future__ import annotations

import torch


def contract(j1: torch.Tensor, j2: torch.Tensor, outputs: str) -> torch.Tensor:
    """NTK block from Jacobians ``j1`` (b1, O, P) and ``j2`` (b2, O, P).

    ``trace``: Σ_o ⟨J1[a,o], J2[b,o]⟩ → (b1, b2); ``full``: ⟨J1[a,o], J2[b,o']⟩ → (b1, b2, O, O);
    ``diagonal``: ⟨J1[a,o], J2[b,o]⟩ → (b1, b2, O).
    """
    b1, o, p = j1.shape
    b2 = j2.shape[0]
    if outputs == "trace":
        return j1.reshape(b1, o * p) @ j2.reshape(b2, o * p).T
    if outputs == "full":
        return (j1.reshape(b1 * o, p) @ j2.reshape(b2 * o, p).T).reshape(b1, o, b2, o).permute(0, 2, 1, 3)
    return torch.bmm(j1.transpose(0, 1), j2.permute(1, 2, 0)).permute(1, 2, 0)


def reduce_full(block: torch.Tensor, outputs: str) -> torch.Tensor:
    """A ``full`` block (b1, b2, O, O) reduced to the requested ``outputs`` mode."""
    if outputs == "full":
        return block
    diag = torch.diagonal(block, dim1=2, dim2=3)
    return diag.sum(-1) if outputs == "trace" else diag


def transpose_block(block: torch.Tensor, outputs: str) -> torch.Tensor:
    """The block for (x2, x1) from the block for (x1, x2): swap the example axes (and the output axes if full)."""
    return block.permute(1, 0, 3, 2) if outputs == "full" else block.transpose(0, 1)
