"""Cost model for the empirical NTK methods: FLOPs and memory from the shapes, and block sizes under a budget.

Notation: ``n1, n2`` examples, ``O`` outputs, ``P`` trainable parameters, ``F`` forward FLOPs per example, ``A``
activations per example, ``m = O`` for ``trace``/``diagonal`` and ``O²`` for ``full``. Per method:

- ``jacobian``: Jacobians ``(n1 + r·n2)·(1 + 2O)·F``; contraction ``2·n1·n2·m·P``; memory ``2·O·P`` per example.
- ``ntvp``: one VJP per (x2 example, output) and a JVP of the x1 block along it:
  ``n2·O·(n1/b1)·3F + n1·n2·O·3F``; memory ``3·c·(P + b1·A)`` for a vmap chunk of ``c`` columns.
- ``structured``: a forward and a reverse pass for input gradients per output, ``(n1 + r·n2)·(1 + O)·F``; per
  dense layer and pair of examples ``2·(m·C + I)``; a layer with ``T`` positions either ``2·T²·(O·C + I)`` per pair (Gram) or
  ``2·O·T·C·I`` per example plus ``2·m·C·I`` per pair (per-layer Jacobian), whichever is cheaper; the remaining
  parameters as in ``jacobian``.

Each method's estimate is its ``cost`` (:mod:`tangentlab.kernels.methods`); this module holds the shared pieces.
``r`` is 1 when the x2 features of all blocks fit in half the budget (they are cached), else the number of x1
blocks (they are recomputed for each). ``auto`` takes the cheapest method in FLOPs among those whose blocks fit the memory budget. The estimates are
meant to rank methods, not to predict seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tangentlab.kernels._probe import ModelShape

DEFAULT_MEMORY_BUDGET = 2 * 1024**3  # bytes for the working set of one pair of blocks
MAX_BLOCK = 4096


@dataclass(frozen=True)
class Cost:
    """Estimated cost of one method: total FLOPs, the block size it would use, and whether that fits memory."""

    method: str
    flops: float
    batch_size: int
    bytes_per_example: int
    feasible: bool


def block_size(n: int, per_example: float, per_pair: float, budget: float, batch_size: int | None) -> int:
    """Largest ``b`` with ``2·b·per_example + b²·per_pair ≤ budget`` (at least 1, at most ``n``)."""
    if batch_size is not None:
        return min(batch_size, n)
    if per_pair > 0:
        disc = per_example**2 + per_pair * budget
        b = (-per_example + math.sqrt(disc)) / per_pair
    else:
        b = budget / (2 * per_example)
    return int(max(1, min(n, MAX_BLOCK, math.floor(b))))


def recomputes(n1: int, n2: int, per_example: float, block: int, budget: float) -> float:
    """How many times the x2 features are computed: once if they fit the cache (half the budget), else per x1 block."""
    return 1.0 if n2 * per_example <= budget / 2 else float(math.ceil(n1 / block))


def pair_bytes(outputs: str, num_outputs: int, itemsize: int) -> int:
    """Bytes of one pair of examples' result entries, twice (the block and a temporary)."""
    o = num_outputs
    return (o * o if outputs == "full" else (o if outputs == "diagonal" else 1)) * itemsize * 2


def layer_strategies(shape: ModelShape, n1: int, n2: int, outputs: str) -> dict[str, str]:
    """Per structured layer: ``"gram"`` or ``"jacobian"``, whichever costs fewer FLOPs for these sizes."""
    o = shape.num_outputs
    m = o * o if outputs == "full" else o
    out = {}
    for s in shape.layers:
        t, c, i = s.positions, s.out_features, s.in_features
        if t == 1:
            out[s.name] = "gram"
            continue
        gram = n1 * n2 * 2.0 * t * t * (o * c + i) if outputs == "trace" else math.inf
        jac = (n1 + n2) * 2.0 * o * t * c * i + n1 * n2 * 2.0 * m * s.num_params
        out[s.name] = "gram" if gram < jac else "jacobian"
    return out
