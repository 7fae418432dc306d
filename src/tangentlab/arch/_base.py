"""The base of every layer description and the network-level entry points of a description: :func:`build`
(finite net) and :func:`kernel` (its limit). The kernel state, the pass context and the argument checks are in
:mod:`._state` (re-exported here)."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from typing import Any, ClassVar, Literal, cast

import torch
from torch import nn

from tangentlab.arch._parametrization import Role, Scales, layer_scales
from tangentlab.arch._record import Kernel
from tangentlab.arch._state import (
    Context,
    KernelState,
    Positions,
    Shape,
    check_choice,
    check_ints,
    check_positive_int,
    check_real,
    fail,
    per_axis,
)
from tangentlab.kernels import memory_budget as default_budget

Parametrization = Literal["ntk", "standard", "mup"]
PARAMETRIZATIONS: tuple[str, ...] = ("ntk", "standard", "mup")
__all__ = [
    "PARAMETRIZATIONS",
    "BuiltNetwork",
    "Context",
    "KernelState",
    "Layer",
    "Parametrization",
    "Positions",
    "Shape",
    "WeightLayer",
    "build",
    "check_choice",
    "check_ints",
    "check_positive_int",
    "check_real",
    "fail",
    "input_state",
    "kernel",
    "per_axis",
]


LAYERS: dict[str, type[Layer]] = {}
"""Every layer description class by its ``layer_name`` (each registers itself when its module is imported)."""


class Layer:
    """Base of every layer description (subclasses are frozen dataclasses).

    A layer knows its output shape, its finite ``torch.nn`` module and its infinite-width kernel map; the
    network-level entry points :meth:`build` and :meth:`kernel` work on any layer (a single ``Dense`` is a net).
    """

    layer_name: ClassVar[str] = "Layer"
    has_weights: ClassVar[bool] = False  # Dense, Conv: the layers the parametrization scales (WeightLayer)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A subclass that names itself (``layer_name`` in its own body) registers itself for :func:`from_dict`."""
        super().__init_subclass__(**kwargs)
        name = cls.__dict__.get("layer_name")
        if name is not None:
            if name in LAYERS and LAYERS[name].__qualname__ != cls.__qualname__:
                raise ValueError(
                    f"layer_name: {name!r} is taken by {LAYERS[name].__module__}.{LAYERS[name].__qualname__}"
                )
            LAYERS[name] = cls

    # --- per-layer protocol -----------------------------------------------------------------------------
    def out_shape(self, in_shape: Shape) -> Shape:
        """Shape of one output example (without the batch axis); raises ValueError if ``in_shape`` is wrong."""
        raise NotImplementedError

    def module(self, in_shape: Shape, ctx: Context) -> nn.Module:
        """The finite module, parameters drawn from ``ctx``."""
        raise NotImplementedError

    def kernel_map(self, state: KernelState, in_shape: Shape, ctx: Context) -> KernelState:
        """The infinite-width map of the kernels through this layer (``in_shape``: one input example's)."""
        raise NotImplementedError

    def leaves(self) -> tuple[Layer, ...]:
        """The non-combinator layers in order."""
        return (self,)

    def work_factor(self) -> int:
        """Temporaries (in units of the state size) the kernel map needs at its peak; sets the block size."""
        return 6

    def mixes_positions(self) -> bool:
        """Whether the kernel map reads covariances of different positions (``K[p, q]``, ``p != q``) to produce the
        diagonal ``K'[p, p]`` (pooling does; convolutions, activations, Dense and Flatten do not)."""
        return False

    # --- network-level entry points ------------------------------------------------------------------------
    def build(
        self,
        in_shape: Shape | int,
        *,
        parametrization: Parametrization = "ntk",
        seed: int = 0,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> BuiltNetwork:
        """The finite network; see :func:`tangentlab.arch.build`."""
        return build(self, in_shape, parametrization=parametrization, seed=seed, dtype=dtype, device=device)

    def kernel(
        self,
        x1: torch.Tensor,
        x2: torch.Tensor | None = None,
        *,
        parametrization: Parametrization = "ntk",
        memory_budget: int | None = None,
        positions: Positions = "auto",
    ) -> Kernel:
        """The infinite-width NNGP and NTK; see :func:`tangentlab.arch.kernel`."""
        return kernel(
            self, x1, x2, parametrization=parametrization, memory_budget=memory_budget, positions=positions
        )

    # --- serialisation -------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """``{"layer": <name>, <field>: <value>, ...}``; JSON- and YAML-safe."""
        out: dict[str, Any] = {"layer": self.layer_name}
        for field in dataclasses.fields(cast(Any, self)):
            value = getattr(self, field.name)
            out[field.name] = list(value) if isinstance(value, tuple) else value
        return out

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    def to_yaml(self) -> str:
        import yaml

        return str(yaml.safe_dump(self.to_dict(), sort_keys=False))


class WeightLayer(Layer):
    """Base of the layers with weights and biases (``Dense``, ``Conv``): the ones a parametrization scales.

    A subclass is a frozen dataclass with the fields ``sigma_w`` and ``sigma_b`` and says its fan-in and fan-out;
    :meth:`scales` then reads the one parametrization table (:func:`tangentlab.arch.layer_scales`).
    """

    has_weights: ClassVar[bool] = True
    sigma_w: float
    sigma_b: float

    def fan_in(self, in_shape: Shape) -> int:
        """Inputs feeding one output unit (channels_in × kernel area for a conv)."""
        raise NotImplementedError

    def fan_out(self) -> int:
        """Output units (width or channels)."""
        raise NotImplementedError

    def scales(self, in_shape: Shape, parametrization: str, role: Role) -> Scales:
        """Multipliers and init variances of this layer in ``parametrization`` at ``role``."""
        return layer_scales(
            parametrization, role, self.sigma_w, self.sigma_b, self.fan_in(in_shape), self.fan_out()
        )

    def next_scales(self, in_shape: Shape, ctx: Context) -> Scales:
        """:meth:`scales` at the role of the pass's next weight layer (``module`` and ``kernel_map`` use this)."""
        return self.scales(in_shape, ctx.parametrization, ctx.next_role())


BLOCK_ENTRIES = 2**18
"""Target entries of one block's (block, block, P, P) covariance: small enough that a block's few temporaries
stay in the CPU caches (the kernel maps are elementwise and memory-bound), large enough that per-operation
overhead is negligible. The memory budget caps the block further. On CUDA only the budget (from the free GPU
memory, :func:`tangentlab.kernels.memory_budget`) sets the block."""


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
    final, _ = _readout(net, in_shape)
    if final.layer_name != "Dense":
        raise fail(
            type(net).layer_name, "last layer", final, "a Dense layer: its outputs are the net's outputs"
        )
    return sum(leaf.has_weights for leaf in net.leaves())


def _readout(net: Layer, in_shape: Shape) -> tuple[Layer, Shape]:
    """The net's last layer (down nested ``Serial``) and the shape of its input."""
    layer, shape = net, in_shape
    while type(layer).layer_name == "Serial":
        inner: tuple[Layer, ...] = layer.layers  # type: ignore[attr-defined]
        for part in inner[:-1]:
            shape = part.out_shape(shape)
        layer = inner[-1]
    return layer, shape


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
    readout, readout_in = _readout(net, shape)
    assert isinstance(readout, WeightLayer)
    scales = readout.scales(readout_in, parametrization, "input" if n_weights == 1 else "readout")
    return BuiltNetwork(
        modules, net, shape, parametrization, seed, scales.forward_gain, scales.forward_offset
    )


def input_state(x1: torch.Tensor, x2: torch.Tensor | None, *, diagonal: bool = False) -> KernelState:
    """Kernels of the raw inputs, averaged over input channels (features): ``K = <x1, x2> / C``.

    ``diagonal``: for feature maps, only the position diagonal (:class:`KernelState`).
    """
    same = x2 is None
    b = x1 if x2 is None else x2
    if x1.ndim == 2:
        d = x1.shape[1]
        var1 = (x1 * x1).sum(1) / d
        var2 = var1 if same else (b * b).sum(1) / d
        nngp = x1 @ b.T / d
        spatial: Shape = ()
        diagonal = False
    else:
        c = x1.shape[1]
        spatial = tuple(x1.shape[2:])
        f1, f2 = x1.reshape(x1.shape[0], c, -1), b.reshape(b.shape[0], c, -1)
        if diagonal:
            nngp = torch.einsum("icp,jcp->ijp", f1, f2) / c
            var1 = (f1 * f1).sum(1) / c
            var2 = var1 if same else (f2 * f2).sum(1) / c
        else:
            nngp = torch.einsum("icp,jcq->ijpq", f1, f2) / c
            var1 = torch.einsum("icp,icq->ipq", f1, f1) / c
            var2 = var1 if same else torch.einsum("icp,icq->ipq", f2, f2) / c
        if (
            same
        ):  # the variances bit for bit equal to the kernel's i = j entries (correlation exactly 1 there)
            var1 = var2 = torch.diagonal(nngp, dim1=0, dim2=1).movedim(-1, 0).contiguous()
    return KernelState(
        nngp=nngp, ntk=torch.zeros_like(nngp), var1=var1, var2=var2, spatial=spatial, diagonal=diagonal
    )


def kernel(
    net: Layer,
    x1: torch.Tensor,
    x2: torch.Tensor | None = None,
    *,
    parametrization: str = "ntk",
    memory_budget: int | None = None,
    positions: Positions = "auto",
) -> Kernel:
    """The NNGP and NTK of one network output: the limit, as widths grow, of the seed-average of
    the empirical kernels of ``build(..., parametrization=p, seed=s)``; under ``"standard"`` and ``"mup"``
    (whose NTK scales with the widths) the same Gaussian recursion evaluated at the description's widths.

    Computed in float64 on ``x1``'s device, in blocks of inputs sized so that one block's temporaries stay within
    ``memory_budget`` bytes (feature maps with ``P`` positions carry (block, block, P, P) covariances, or only their
    (block, block, P) position diagonal when no layer pools, e.g. convolutions and a ``Flatten`` readout).

    Args:
        net: the description (last layer Dense).
        x1: (n1, *in_shape) inputs.
        x2: (n2, *in_shape) inputs; None means ``x1``.
        parametrization: ``"ntk"``, ``"standard"`` or ``"mup"``.
        memory_budget: bytes the computation may hold at once besides its result: the working set of one block of
            inputs; None means :func:`tangentlab.kernels.memory_budget` of ``x1``'s device (2 GiB on a CPU, half
            the free GPU memory after the two float64 results on CUDA).
        positions: ``"auto"`` carries the position diagonal of feature-map covariances wherever no later layer
            mixes positions (:class:`KernelState`), ``"full"`` all position pairs everywhere (same numbers up to
            rounding, at O(P) times the cost; the reference the diagonal path is tested against).

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
    check_choice(name, "positions", positions, ("auto", "full"))
    n_weights = _check_net(net, in_shape)
    a = x1.detach().to(torch.float64)
    b = a if x2 is None else x2.detach().to(dtype=torch.float64, device=a.device)
    for arg, t in (("x1", a), ("x2", b)):
        bad = int((~torch.isfinite(t)).sum())
        if bad:
            raise ValueError(
                f"{arg}: expected finite inputs, got {bad} NaN/inf value(s) (the kernel would be NaN)"
            )
    n_positions = math.prod(in_shape[1:]) if len(in_shape) > 1 else 1
    n1, n2 = a.shape[0], b.shape[0]
    # Only the position diagonal is carried when no layer pools (a Flatten readout): O(P) per pair, not O(P^2).
    # A net that pools carries all pairs from its input; Serial switches to the diagonal after its last pooling.
    diagonal = positions == "auto" and len(in_shape) > 1 and not net.mixes_positions()
    entries = n_positions if diagonal else n_positions * n_positions
    factor = max(leaf.work_factor() for leaf in net.leaves()) + 4
    budget = memory_budget if memory_budget is not None else default_budget(a.device, reserve=16 * n1 * n2)
    by_budget = math.isqrt(max(1, budget // (8 * entries * factor)))
    by_cache = math.isqrt(max(1, BLOCK_ENTRIES // entries))
    by_cache = (
        by_budget if a.device.type == "cuda" else by_cache
    )  # a GPU wants large blocks: its memory decides
    block = max(1, min(by_budget, by_cache))
    nngp = torch.empty((n1, n2), dtype=torch.float64, device=a.device)
    ntk = torch.empty_like(nngp)

    def run_block(i: int, j: int) -> None:
        same = x2 is None and i == j
        state = input_state(a[i : i + block], None if same else b[j : j + block], diagonal=diagonal)
        out = net.kernel_map(state, in_shape, Context(parametrization, n_weights, positions=positions))
        nngp[i : i + block, j : j + block] = out.nngp
        ntk[i : i + block, j : j + block] = out.ntk

    if diagonal and x2 is None and n1 > 1 and n1 * (n1 + 1) // 2 <= block * block:
        # x1 against itself within one block's capacity: only the n1 (n1 + 1) / 2 pairs i <= j, packed
        first, second = torch.triu_indices(n1, n1, device=a.device)
        state = input_state(a, None, diagonal=True)
        state = state.replace(
            nngp=state.nngp[first, second], ntk=state.ntk[first, second], pairs=(first, second)
        )
        out = net.kernel_map(state, in_shape, Context(parametrization, n_weights, positions=positions))
        for full, packed in ((nngp, out.nngp), (ntk, out.ntk)):
            full[first, second] = packed
            full[second, first] = packed
        return Kernel(nngp=nngp, ntk=ntk)
    tasks = [
        (i, j)
        for i in range(0, n1, block)
        for j in range(0, n2, block)
        if x2 is not None or j >= i  # by symmetry, the lower blocks are copied below
    ]
    for i, j in tasks:
        run_block(i, j)
    if x2 is None:
        for i in range(0, n1, block):
            for j in range(0, i, block):
                nngp[i : i + block, j : j + block] = nngp[j : j + block, i : i + block].T
                ntk[i : i + block, j : j + block] = ntk[j : j + block, i : i + block].T
    return Kernel(nngp=nngp, ntk=ntk)
