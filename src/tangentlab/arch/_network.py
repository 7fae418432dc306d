"""Network-level entry points of a description: :func:`build` (finite net) and :func:`kernel` (its limit)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import torch
from torch import nn

from tangentlab.arch._base import PARAMETRIZATIONS, Context, KernelState, Layer, Shape, check_choice, fail
from tangentlab.arch._record import Kernel

BLOCK_ENTRIES = 2**18
"""Target entries of one block's (block, block, P, P) covariance: small enough that a block's few temporaries
stay in the CPU caches (the kernel maps are elementwise and memory-bound), large enough that per-operation
overhead is negligible. The memory budget caps the block further."""


class BuiltNetwork(nn.Sequential):
    """The finite network built from a description (an ``nn.Sequential``).

    Attributes:
        description: the layer description it was built from.
        in_shape: shape of one input example.
        parametrization: ``"ntk"``, ``"standard"`` or ``"mup"``.
        seed: the seed of its parameters.
        nngp_gain, nngp_offset: the readout layer's ``m_w^2 v_w fan_in`` and ``m_b^2 v_b``, so that the output
            covariance given the readout features is ``nngp_gain * empirical_nngp + nngp_offset``.
    """

    def __init__(
        self,
        modules: Sequence[nn.Module],
        description: Layer,
        in_shape: Shape,
        parametrization: str,
        seed: int,
        nngp_gain: float,
        nngp_offset: float,
    ) -> None:
        super().__init__(*modules)
        self.description = description
        self.in_shape = in_shape
        self.parametrization = parametrization
        self.seed = seed
        self.nngp_gain = nngp_gain
        self.nngp_offset = nngp_offset


def _check_net(net: Layer, in_shape: Shape) -> int:
    """Validate shapes and the readout; return the number of weight layers."""
    if not isinstance(net, Layer):
        raise fail("net", "net", net, "a layer description such as serial(Dense(512), ReLU(), Dense(1))")
    net.out_shape(in_shape)
    final: Layer = net
    while type(final).layer_name == "Serial":
        final = final.layers[-1]  # type: ignore[attr-defined]
    if final.layer_name != "Dense":
        raise fail(
            type(net).layer_name, "last layer", final, "a Dense layer: its outputs are the net's outputs"
        )
    return sum(leaf.layer_name in ("Dense", "Conv") for leaf in net.leaves())


def build(
    net: Layer,
    in_shape: Shape | int,
    *,
    parametrization: str = "ntk",
    seed: int = 0,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> BuiltNetwork:
    """The finite network of a description, parameters drawn from ``torch.Generator().manual_seed(seed)``.

    Args:
        net: the description; its last layer must be a Dense (its outputs are the network's).
        in_shape: shape of one input example, ``(d,)`` or ``(channels, length)`` or ``(channels, h, w)``.
        parametrization: ``"ntk"``, ``"standard"`` or ``"mup"`` (:mod:`tangentlab.arch._parametrization`).
        seed: parameters are a deterministic function of the seed (drawn on CPU in float64, then cast).
        dtype: parameter dtype (torch's default when None).
        device: parameter device.
    """
    check_choice(type(net).layer_name, "parametrization", parametrization, PARAMETRIZATIONS)
    shape = (in_shape,) if isinstance(in_shape, int) else tuple(in_shape)
    if not shape or not all(isinstance(s, int) and s >= 1 for s in shape):
        raise fail(
            type(net).layer_name, "in_shape", in_shape, "a tuple of positive ints (one example's shape)"
        )
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise fail(type(net).layer_name, "seed", seed, "an int")
    n_weights = _check_net(net, shape)
    generator = torch.Generator().manual_seed(seed)
    ctx = Context(parametrization, n_weights, generator, dtype or torch.get_default_dtype(), device)
    body = net.module(shape, ctx)
    modules = list(body) if isinstance(body, nn.Sequential) and type(body) is nn.Sequential else [body]
    return BuiltNetwork(modules, net, shape, parametrization, seed, ctx.readout_gain, ctx.readout_offset)


def input_state(x1: torch.Tensor, x2: torch.Tensor | None) -> KernelState:
    """Kernels of the raw inputs, averaged over input channels (features): ``K = <x1, x2> / C``."""
    same = x2 is None
    b = x1 if x2 is None else x2
    if x1.ndim == 2:
        d = x1.shape[1]
        var1 = (x1 * x1).sum(1) / d
        var2 = var1 if same else (b * b).sum(1) / d
        nngp = x1 @ b.T / d
        spatial: Shape = ()
    else:
        c = x1.shape[1]
        spatial = tuple(x1.shape[2:])
        f1, f2 = x1.reshape(x1.shape[0], c, -1), b.reshape(b.shape[0], c, -1)
        var1 = torch.einsum("icp,icq->ipq", f1, f1) / c
        var2 = var1 if same else torch.einsum("icp,icq->ipq", f2, f2) / c
        nngp = torch.einsum("icp,jcq->ijpq", f1, f2) / c
    return KernelState(nngp=nngp, ntk=torch.zeros_like(nngp), var1=var1, var2=var2, spatial=spatial)


def kernel(
    net: Layer,
    x1: torch.Tensor,
    x2: torch.Tensor | None = None,
    *,
    parametrization: str = "ntk",
    memory_budget: int = 2**30,
) -> Kernel:
    """The NNGP and NTK of one network output: the limit, as widths grow, of the seed-average of
    the empirical kernels of ``build(..., parametrization=p, seed=s)``; under ``"standard"`` and ``"mup"``
    (whose NTK scales with the widths) the same Gaussian recursion evaluated at the description's widths.

    Computed in float64 on ``x1``'s device, in blocks of inputs sized so that one block's temporaries stay within
    ``memory_budget`` bytes (feature maps with ``P`` positions carry (block, block, P, P) covariances).

    Args:
        net: the description (last layer Dense).
        x1: (n1, *in_shape) inputs.
        x2: (n2, *in_shape) inputs; None means ``x1``.
        parametrization: ``"ntk"``, ``"standard"`` or ``"mup"``.
        memory_budget: bytes for one block's working set.

    Returns:
        :class:`Kernel` with (n1, n2) float64 ``nngp`` (output covariance) and ``ntk``.
    """
    name = type(net).layer_name
    check_choice(name, "parametrization", parametrization, PARAMETRIZATIONS)
    if not isinstance(x1, torch.Tensor) or x1.ndim < 2:
        raise fail(name, "x1", type(x1).__name__, "a tensor of shape (n, *in_shape)")
    in_shape = tuple(x1.shape[1:])
    if x2 is not None and (not isinstance(x2, torch.Tensor) or tuple(x2.shape[1:]) != in_shape):
        raise fail(name, "x2 shape", getattr(x2, "shape", x2), f"(n2, {', '.join(map(str, in_shape))})")
    n_weights = _check_net(net, in_shape)
    a = x1.detach().to(torch.float64)
    b = a if x2 is None else x2.detach().to(dtype=torch.float64, device=a.device)
    for arg, t in (("x1", a), ("x2", b)):
        bad = int((~torch.isfinite(t)).sum())
        if bad:
            raise ValueError(
                f"{arg}: expected finite inputs, got {bad} NaN/inf value(s) (the kernel would be NaN)"
            )
    positions = math.prod(in_shape[1:]) if len(in_shape) > 1 else 1
    factor = max(leaf.work_factor() for leaf in net.leaves()) + 4
    by_budget = math.isqrt(max(1, memory_budget // (8 * positions * positions * factor)))
    by_cache = math.isqrt(max(1, BLOCK_ENTRIES // (positions * positions)))
    block = max(1, min(by_budget, by_cache))
    n1, n2 = a.shape[0], b.shape[0]
    nngp = torch.empty((n1, n2), dtype=torch.float64, device=a.device)
    ntk = torch.empty_like(nngp)

    def run_block(i: int, j: int) -> None:
        same = x2 is None and i == j
        state = input_state(a[i : i + block], None if same else b[j : j + block])
        out = net.kernel_map(state, in_shape, Context(parametrization, n_weights))
        nngp[i : i + block, j : j + block] = out.nngp
        ntk[i : i + block, j : j + block] = out.ntk

    tasks = [
        (i, j)
        for i in range(0, n1, block)
        for j in range(0, n2, block)
        if x2 is not None or j >= i  # by symmetry, the lower blocks are copied below
    ]
    threads = torch.get_num_threads()
    if a.device.type == "cpu" and threads > 1 and len(tasks) > 1:
        # One block per thread, each single-threaded: the blocks are small (cache-sized), where intra-op
        # parallelism would pay a barrier per operation; the blocks write disjoint parts of the output.
        torch.set_num_threads(1)
        try:
            with ThreadPoolExecutor(threads) as pool:
                for _ in pool.map(lambda task: run_block(*task), tasks):
                    pass
        finally:
            torch.set_num_threads(threads)
    else:
        for i, j in tasks:
            run_block(i, j)
    if x2 is None:
        for i in range(0, n1, block):
            for j in range(0, i, block):
                nngp[i : i + block, j : j + block] = nngp[j : j + block, i : i + block].T
                ntk[i : i + block, j : j + block] = ntk[j : j + block, i : i + block].T
    return Kernel(nngp=nngp, ntk=ntk)
