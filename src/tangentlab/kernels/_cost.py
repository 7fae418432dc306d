"""Cost model for the empirical NTK methods: FLOPs and memory from the shapes, and block sizes under a budget.

Notation: ``n1, n2`` examples, ``O`` outputs, ``P`` trainable parameters, ``F`` forward FLOPs per example, ``A``
activations per example, ``m = O`` for ``trace``/``diagonal`` and ``O²`` for ``full``. Per method:

- ``jacobian``: Jacobians ``(n1 + r·n2)·(1 + 2O)·F``; contraction ``2·n1·n2·m·P``; memory ``2·O·P`` per example.
- ``ntvp``: one VJP per (x2 example, output) and a JVP of the x1 block along it:
  ``n2·O·(n1/b1)·3F + n1·n2·O·3F``; memory ``3·c·(P + b1·A)`` for a vmap chunk of ``c`` columns.
- ``structured``: a forward and a reverse pass for input gradients, ``(n1 + r·n2)·(1 + O)·F`` (``2·O·F`` when
  the batch is repeated per output, for conv nets); per dense layer and pair of
  examples ``2·(m·C + I)``; a layer with ``T`` positions either ``2·T²·(O·C + I)`` per pair (Gram) or
  ``2·O·T·C·I`` per example plus ``2·m·C·I`` per pair (per-layer Jacobian), whichever is cheaper; the remaining
  parameters as in ``jacobian``.

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


def _block_size(n: int, per_example: float, per_pair: float, budget: float, batch_size: int | None) -> int:
    """Largest ``b`` with ``2·b·per_example + b²·per_pair ≤ budget`` (at least 1, at most ``n``)."""
    if batch_size is not None:
        return min(batch_size, n)
    if per_pair > 0:
        disc = per_example**2 + per_pair * budget
        b = (-per_example + math.sqrt(disc)) / per_pair
    else:
        b = budget / (2 * per_example)
    return int(max(1, min(n, MAX_BLOCK, math.floor(b))))


def _recomputes(n1: int, n2: int, per_example: float, block: int, budget: float) -> float:
    """How many times the x2 features are computed: once if they fit the cache (half the budget), else per x1 block."""
    return 1.0 if n2 * per_example <= budget / 2 else float(math.ceil(n1 / block))


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


def estimate(
    shape: ModelShape,
    n1: int,
    n2: int,
    outputs: str,
    itemsize: int,
    budget: float = DEFAULT_MEMORY_BUDGET,
    batch_size: int | None = None,
) -> dict[str, Cost]:
    """Cost of every method for these shapes (see the module docstring for the formulas)."""
    o, p, f, a = shape.num_outputs, shape.num_params, shape.forward_flops, shape.activations
    m = o * o if outputs == "full" else o
    out_numbers = m if outputs == "full" else (o if outputs == "diagonal" else 1)
    pair_out = out_numbers * itemsize * 2
    per_pass = (1 + 2 * o) * f  # a forward and O reverse passes, per example
    costs: dict[str, Cost] = {}

    jac_per = 2 * o * p * itemsize + 2 * o * a * itemsize
    b = _block_size(max(n1, n2), jac_per, pair_out, budget, batch_size)
    passes = (n1 + n2 * _recomputes(n1, n2, jac_per, b, budget)) * per_pass
    jac_flops = passes + 2.0 * n1 * n2 * m * p
    costs["jacobian"] = Cost("jacobian", jac_flops, b, jac_per, 2 * b * jac_per <= budget)

    b1 = min(n1, batch_size or 256)
    chunk_bytes = 3 * (p + b1 * a) * itemsize
    flops = n2 * o * math.ceil(n1 / b1) * 3.0 * f + n1 * n2 * o * 3.0 * f
    costs["ntvp"] = Cost("ntvp", flops, b1, chunk_bytes, chunk_bytes <= budget)

    strategies = layer_strategies(shape, n1, n2, outputs)
    per, pair = 0.0, float(pair_out)
    # forward and input-gradient reverse passes only (weight gradients are the per-layer terms below); the batch
    # is repeated O times when some layer has several positions (see _structured._acts_and_deltas)
    expand = o > 1 and any(s.positions > 1 for s in shape.layers)
    flops_per_example = (2.0 * o if expand else 1.0 + o) * f + (per_pass if shape.num_other_params else 0.0)
    flops = 0.0
    jac_params = shape.num_other_params
    for s in shape.layers:
        t, c, i = s.positions, s.out_features, s.in_features
        if strategies[s.name] == "gram":
            per += (t * i + o * t * c) * itemsize * 2
            pair += (t * t * 3 + (m if t == 1 else 0)) * itemsize
            flops += n1 * n2 * 2.0 * (t * t * (o * c + i) if t > 1 else m * c + i)
        else:
            jac_params += s.num_params
            per += (t * i + o * t * c) * itemsize * 2
            flops_per_example += 2.0 * o * t * c * i
    per += 2 * o * jac_params * itemsize + 2 * o * a * itemsize
    flops += 2.0 * n1 * n2 * m * jac_params
    b = _block_size(max(n1, n2), per, pair, budget, batch_size)
    flops += (n1 + n2 * _recomputes(n1, n2, per, b, budget)) * flops_per_example
    costs["structured"] = Cost("structured", flops, b, int(per), 2 * b * per + b * b * pair <= budget)
    return costs


def choose(costs: dict[str, Cost]) -> str:
    """The feasible method with the fewest FLOPs (``structured`` on ties; the least memory if none fits)."""
    order = ["structured", "jacobian", "ntvp"]
    feasible = [costs[k] for k in order if costs[k].feasible]
    if not feasible:
        return min((costs[k] for k in order), key=lambda c: c.bytes_per_example).method
    return min(feasible, key=lambda c: c.flops).method
