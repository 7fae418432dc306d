"""Plumbing shared by every layer description: the kernel state that flows between layers, the context of a
build or kernel pass, and argument checks that name the layer, the argument, the value and the choices."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal, cast

import torch
from torch import nn

if TYPE_CHECKING:
    from tangentlab.arch._network import BuiltNetwork
    from tangentlab.arch._record import Kernel

Parametrization = Literal["ntk", "standard", "mup"]
PARAMETRIZATIONS: tuple[str, ...] = ("ntk", "standard", "mup")
Role = Literal["input", "hidden", "readout"]
Shape = tuple[int, ...]


def fail(layer: str, argument: str, value: object, expected: str) -> ValueError:
    """The error every check raises: ``"<layer>: <argument>=<value> is invalid; expected <expected>"``."""
    return ValueError(f"{layer}: {argument}={value!r} is invalid; expected {expected}")


def check_choice(layer: str, argument: str, value: object, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise fail(layer, argument, value, "one of " + ", ".join(repr(c) for c in choices))
    return value


def check_positive_int(layer: str, argument: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise fail(layer, argument, value, "a positive int")
    return value


def check_real(layer: str, argument: str, value: object, *, nonnegative: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise fail(layer, argument, value, "a real number" + (" >= 0" if nonnegative else ""))
    if nonnegative and value < 0:
        raise fail(layer, argument, value, "a real number >= 0")
    return float(value)


def check_ints(layer: str, argument: str, value: object) -> int | tuple[int, ...]:
    """A positive int or a tuple (lists from JSON are turned into tuples) of positive ints."""
    if isinstance(value, list | tuple):
        if not value or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value):
            raise fail(layer, argument, value, "a positive int or a tuple of positive ints")
        return tuple(value)
    return check_positive_int(layer, argument, value)


def per_axis(layer: str, argument: str, value: int | tuple[int, ...], n_axes: int) -> tuple[int, ...]:
    if isinstance(value, int):
        return (value,) * n_axes
    if len(value) != n_axes:
        raise fail(layer, argument, value, f"an int or a tuple of {n_axes} ints for {n_axes}-D inputs")
    return value


@dataclass
class KernelState:
    """Infinite-width kernels of the features at one point of the network, averaged over units (channels).

    Shapes: ``spatial == ()`` for feature vectors, then ``nngp``/``ntk`` are (n1, n2) and ``var1``/``var2``
    (n1,)/(n2,); for feature maps with ``P = prod(spatial)`` positions they are (n1, n2, P, P) and
    (n1, P, P)/(n2, P, P). ``nngp[i, j, p, q]`` is the covariance of a unit at position p for input i with the
    same unit at position q for input j; ``ntk`` the same for the tangent kernel; ``var1``/``var2`` the
    covariances of each input with itself (all position pairs), which activations need for their variances.
    ``var2 is var1`` when the second set of inputs is the first.
    """

    nngp: torch.Tensor
    ntk: torch.Tensor
    var1: torch.Tensor
    var2: torch.Tensor
    spatial: Shape

    def replace(self, **changes: Any) -> KernelState:
        return dataclasses.replace(self, **changes)

    def map_all(self, fn: Any) -> KernelState:
        """Apply one linear map to the four tensors (keeping ``var2 is var1``)."""
        var1 = fn(self.var1)
        var2 = var1 if self.var2 is self.var1 else fn(self.var2)
        return self.replace(nngp=fn(self.nngp), ntk=fn(self.ntk), var1=var1, var2=var2)


@dataclass
class Context:
    """State of one build or kernel pass: parametrization, position among weight layers, random generator."""

    parametrization: str
    n_weight_layers: int
    generator: torch.Generator | None = None
    dtype: torch.dtype = torch.float64
    device: torch.device | str | None = None
    weight_index: int = 0
    readout_gain: float = 1.0
    readout_offset: float = 0.0

    def next_role(self) -> Role:
        """Role of the next Dense/Conv: the first is ``"input"``, the last ``"readout"``, the others hidden."""
        index = self.weight_index
        self.weight_index += 1
        if index == 0:
            return "input"
        return "readout" if index == self.n_weight_layers - 1 else "hidden"

    def normal(self, shape: tuple[int, ...], std: float) -> torch.Tensor:
        """``N(0, std^2)`` draws from the pass's generator (on CPU in float64, then cast: device-independent)."""
        assert self.generator is not None
        draw = torch.randn(shape, generator=self.generator, dtype=torch.float64) * std
        return draw.to(dtype=self.dtype, device=self.device)


class Layer:
    """Base of every layer description (subclasses are frozen dataclasses).

    A layer knows its output shape, its finite ``torch.nn`` module and its infinite-width kernel map; the
    network-level entry points :meth:`build` and :meth:`kernel` work on any layer (a single ``Dense`` is a net).
    """

    layer_name: ClassVar[str] = "Layer"

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
        from tangentlab.arch._network import build

        return build(self, in_shape, parametrization=parametrization, seed=seed, dtype=dtype, device=device)

    def kernel(
        self,
        x1: torch.Tensor,
        x2: torch.Tensor | None = None,
        *,
        parametrization: Parametrization = "ntk",
        memory_budget: int = 2**30,
    ) -> Kernel:
        """The infinite-width NNGP and NTK; see :func:`tangentlab.arch.kernel`."""
        from tangentlab.arch._network import kernel

        return kernel(self, x1, x2, parametrization=parametrization, memory_budget=memory_budget)

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
