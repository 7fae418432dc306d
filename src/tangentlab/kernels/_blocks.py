"""Assemble a kernel matrix block by block from per-block features and a pairwise contraction."""

from __future__ import annotations

from typing import Any, Protocol

import torch
from tqdm.auto import tqdm

from tangentlab.kernels._contract import transpose_block


class BlockEngine(Protocol):
    def features(self, x: torch.Tensor) -> Any: ...

    def pair(self, f1: Any, f2: Any) -> torch.Tensor: ...


def assemble(
    engine: BlockEngine,
    x1: torch.Tensor,
    x2: torch.Tensor | None,
    *,
    outputs: str,
    num_outputs: int,
    block1: int,
    block2: int,
    cache_x2: bool,
    dtype: torch.dtype,
    progress: bool,
) -> torch.Tensor:
    """The (n1, n2, ...) kernel; ``x2 is None`` computes the upper triangle of x1 against itself and mirrors it."""
    symmetric = x2 is None
    other = x1 if x2 is None else x2
    n1, n2 = x1.shape[0], other.shape[0]
    if symmetric:
        block2 = block1
    tail = {"trace": (), "diagonal": (num_outputs,), "full": (num_outputs, num_outputs)}[outputs]
    out = torch.empty((n1, n2, *tail), dtype=dtype, device=x1.device)
    starts1 = list(range(0, n1, block1))
    starts2 = list(range(0, n2, block2))
    pairs = [(i, j) for i in starts1 for j in starts2 if not (symmetric and j < i)]
    cache: dict[int, Any] = {}
    # no tqdm object unless asked for: building a disabled one cost 0.1 ms a call, 1 % of a small eNTK
    bar = tqdm(total=len(pairs), desc="empirical NTK blocks", leave=False) if progress else None
    for i in starts1:
        s1 = slice(i, min(i + block1, n1))
        # x1 against itself: a block's features were cached when it was the second of a pair (row 0 computes all)
        f1 = cache.pop(i) if symmetric and i in cache else engine.features(x1[s1])
        for j in starts2:
            if symmetric and j < i:
                continue
            s2 = slice(j, min(j + block2, n2))
            if symmetric and j == i:
                f2 = f1
            elif j in cache:
                f2 = cache[j]
            else:
                f2 = engine.features(other[s2])
                if cache_x2:
                    cache[j] = f2
            block = engine.pair(f1, f2).detach()
            if symmetric and j == i:  # exact symmetry, whatever the method's rounding
                block = (block + transpose_block(block, outputs)) / 2
            out[s1, s2] = block
            if symmetric and j != i:
                out[s2, s1] = transpose_block(block, outputs)
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    return out
