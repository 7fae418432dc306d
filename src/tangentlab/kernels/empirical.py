"""Empirical neural tangent kernel of any ``torch.nn.Module``.

``Θ^{oo'}(x, x') = Σ_p ∂f_o(x)/∂θ_p · ∂f_{o'}(x')/∂θ_p`` over all trainable parameters ``θ`` (Jacot et al. 2018).
Three exact algorithms (cross-checked in the tests) and a cost model that picks between them.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

from tangentlab.kernels._blocks import assemble
from tangentlab.kernels._budget import memory_budget as default_budget
from tangentlab.kernels._cache import memo
from tangentlab.kernels._checks import (
    OUTPUTS,
    Method,
    Outputs,
    as_inputs,
    check_choice,
    check_module,
    check_pair,
    check_per_example,
    check_positive_int,
    reference_tensor,
)
from tangentlab.kernels._cost import Cost
from tangentlab.kernels._functional import trainable_params
from tangentlab.kernels._probe import ModelShape, probe
from tangentlab.kernels.methods import choose, estimate, load


def _prepare(
    model: object,
    x1: object,
    x2: object,
    outputs: str,
    method: str,
    batch_size: object,
    memory_budget: object,
) -> tuple[nn.Module, torch.Tensor, torch.Tensor | None, int | None, float]:
    model = check_module(model)
    check_choice("outputs", outputs, OUTPUTS)
    check_choice("method", method, ("auto", *sorted(load())))
    batch = check_positive_int("batch_size", batch_size)
    budget = check_positive_int("memory_budget", memory_budget)
    ref = reference_tensor(model)
    a = as_inputs("x1", x1, ref)
    b = None if x2 is None else as_inputs("x2", x2, ref)
    if b is not None:
        check_pair(a, b)
    if budget is None:  # on CUDA: from the free GPU memory, once the (n1, n2) result is set aside
        result = a.shape[0] * (a.shape[0] if b is None else b.shape[0]) * ref.element_size()
        budget = default_budget(ref.device, reserve=result)
    return model, a, b, batch, float(budget)


def ntk_cost(
    model: nn.Module,
    x1: torch.Tensor,
    x2: torch.Tensor | None = None,
    *,
    outputs: Outputs = "trace",
    batch_size: int | None = None,
    memory_budget: int | None = None,
) -> dict[str, Cost]:
    """The cost model's estimate for every method (FLOPs, block size, bytes per example, fits the budget)."""
    model, a, b, batch, budget = _prepare(model, x1, x2, outputs, "auto", batch_size, memory_budget)
    shape = _probe(model, a)
    n2 = a.shape[0] if b is None else b.shape[0]
    return estimate(
        shape,
        a.shape[0],
        n2,
        _engine_outputs(outputs),
        a.element_size() if a.is_floating_point() else 4,
        budget,
        batch,
    )


def empirical_ntk(
    model: nn.Module,
    x1: torch.Tensor,
    x2: torch.Tensor | None = None,
    *,
    outputs: Outputs = "trace",
    method: Method = "auto",
    batch_size: int | None = None,
    memory_budget: int | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """Empirical NTK ``Θ(x1, x2)`` of ``model`` with respect to all its trainable parameters.

    Args:
        model: any module mapping a batch (examples along dim 0) to outputs (n,) or (n, ...); outputs are
            flattened to ``O`` numbers per example. It must treat examples independently: BatchNorm or dropout in
            train mode raise a ValueError (call ``model.eval()``). Buffers are used as they are.
        x1: inputs (n1, ...). Floating inputs are cast to the parameters' dtype and device; integer inputs (token
            ids) keep their dtype.
        x2: inputs (n2, ...) with the same feature shape, or None for ``x1`` against itself (computed on the upper
            triangle of blocks and mirrored).
        outputs: ``"trace"`` → (n1, n2), ``Σ_o Θ^{oo}``; ``"mean"`` → (n1, n2), ``(1/O) Σ_o Θ^{oo}`` (neural-tangents'
            ``trace_axes=(-1,)`` convention); ``"full"`` → (n1, n2, O, O); ``"diagonal"`` → (n1, n2, O).
        method: ``"jacobian"`` (per-example Jacobians with torch.func, contracted block by block), ``"ntvp"``
            (NTK-vector products: VJP then JVP, never a whole Jacobian), ``"structured"`` (per-layer Gram products
            for ``nn.Linear``/``nn.Conv1d``/``nn.Conv2d`` and tangentlab's scaled versions; autodiff for the rest),
            or ``"auto"`` (cheapest by the methods' cost estimates, :mod:`tangentlab.kernels.methods`; see :func:`ntk_cost`); any registered method's name.
        batch_size: examples per block; None sizes blocks from ``memory_budget``.
        memory_budget: bytes the computation may hold at once besides its result: the working set of one block of
            inputs (a pair of blocks for ``empirical_ntk``); None means :func:`tangentlab.kernels.memory_budget` of
            the parameters' device: :data:`tangentlab.kernels.DEFAULT_MEMORY_BUDGET` (2 GiB) on a CPU, half the free
            GPU memory (after the result) on CUDA.
        progress: show a progress bar over blocks.

    Returns:
        The kernel in the parameters' dtype on their device.
    """
    model, a, b, batch, budget = _prepare(model, x1, x2, outputs, method, batch_size, memory_budget)
    mean = outputs == "mean"
    outputs = _engine_outputs(outputs)
    pair = a if b is None else torch.cat([a[:1], b[:1]])
    if (
        pair.shape[0] >= 2
    ):  # passed once for this model and input shape: not repeated (tangentlab.kernels._cache)
        memo(model, pair, "per-example", lambda: check_per_example(model, pair))
    else:
        check_per_example(model, pair)
    params = trainable_params(model)
    shape = _probe(model, a)
    n1 = a.shape[0]
    n2 = n1 if b is None else b.shape[0]
    itemsize = a.element_size() if a.is_floating_point() else params[next(iter(params))].element_size()
    costs = estimate(shape, n1, n2, outputs, itemsize, budget, batch)
    chosen = choose(costs) if method == "auto" else method
    algorithm, cost = load()[chosen], costs[chosen]
    engine = algorithm.engine(model, params, shape, outputs, cost, n1, n2, budget, itemsize)
    block, block2 = cost.batch_size, algorithm.x2_block(cost, n2, batch)
    cache = algorithm.caches_x2(cost, n2, budget)
    if b is None and batch is None and cache and block >= n1:
        block = block2 = _symmetric_block(n1)
    dtype = reference_tensor(model).dtype
    kernel = assemble(
        engine,
        a,
        b,
        outputs=outputs,
        num_outputs=shape.num_outputs,
        block1=block,
        block2=block2,
        cache_x2=cache,
        dtype=dtype,
        progress=progress,
    )
    return kernel / shape.num_outputs if mean else kernel


SYMMETRIC_SPLIT = 256
"""x1 against itself in one block computes the whole (n, n) product; split into up to 4 blocks of at least this
many examples, only the upper triangle of blocks is computed: 10 of 16 block products with 4 blocks (the features
of every block are computed once and cached)."""


def _symmetric_block(n: int) -> int:
    parts = max(1, min(4, n // SYMMETRIC_SPLIT))
    return -(-n // parts)


def _probe(model: nn.Module, x: torch.Tensor) -> ModelShape:
    """:func:`probe`, once per model and input shape (:mod:`tangentlab.kernels._cache`)."""
    return memo(
        model,
        x,
        "probe",
        lambda: probe(model, x, trainable_params(model)),
        lambda shape: all(s.module is not model for s in shape.layers),
    )


def _engine_outputs(outputs: str) -> Outputs:
    """What the block engines compute: ``"mean"`` is the trace divided by the number of outputs afterwards."""
    return "trace" if outputs == "mean" else cast(Outputs, outputs)
