"""Plumbing shared by every layer description: the kernel state that flows between layers, the context of a
build or kernel pass, and argument checks that name the layer, the argument, the value and the choices."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

import torch

from tangentlab.arch._parametrization import Role

Shape = tuple[int, ...]
Positions = Literal["auto", "full"]


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

    ``diagonal=True`` (feature maps only): only the position diagonal ``p = q`` is carried, ``nngp``/``ntk``
    (n1, n2, P) and ``var1``/``var2`` (n1, P)/(n2, P). Convolutions and elementwise activations map the diagonal
    to the diagonal (a conv's ``(p, p)`` entry reads only ``(p + k, p + k)`` entries, an activation's ``(p, p)``
    entry only its own and the variances at ``p``), and ``Flatten`` reads only the diagonal, so a stack that never
    pools carries O(P) numbers per pair of inputs instead of O(P²) (Novak et al. 2019, section on the
    vectorisation readout; neural-tangents tracks the same per layer).

    ``pairs=(first, second)`` (x1 against itself, diagonal states and the vectors after them): the leading (n1, n2)
    axes of ``nngp``/``ntk`` are packed into one axis of the pairs ``(first[m], second[m])`` (the upper triangle,
    half the work); ``var1 is var2`` holds the variances of all n inputs.
    """

    nngp: torch.Tensor
    ntk: torch.Tensor
    var1: torch.Tensor
    var2: torch.Tensor
    spatial: Shape
    diagonal: bool = False
    pairs: tuple[torch.Tensor, torch.Tensor] | None = None

    def replace(self, **changes: Any) -> KernelState:
        return dataclasses.replace(self, **changes)

    def map_all(self, fn: Any) -> KernelState:
        """Apply one linear map to the four tensors (keeping ``var2 is var1``)."""
        var1 = fn(self.var1)
        var2 = var1 if self.var2 is self.var1 else fn(self.var2)
        return self.replace(nngp=fn(self.nngp), ntk=fn(self.ntk), var1=var1, var2=var2)

    def to_diagonal(self) -> KernelState:
        """The position diagonal of a full feature-map state (a no-op on vectors and diagonal states)."""
        if self.diagonal or self.spatial == ():
            return self

        def diag(t: torch.Tensor) -> torch.Tensor:
            return torch.diagonal(t, dim1=-2, dim2=-1).contiguous()

        return self.map_all(diag).replace(diagonal=True)


@dataclass
class Context:
    """State of one build or kernel pass: parametrization, position among weight layers, random generator.

    ``positions``: ``"auto"`` lets a kernel pass carry only the position diagonal of feature-map covariances from
    the point where no later layer mixes positions (:meth:`Layer.mixes_positions`); ``"full"`` always carries
    all position pairs (the reference the diagonal path is tested against). ``mixing_after`` tells a nested
    ``Serial`` that a layer after it (in an enclosing ``Serial``) mixes positions.
    """

    parametrization: str
    n_weight_layers: int
    generator: torch.Generator | None = None
    dtype: torch.dtype = torch.float64
    device: torch.device | str | None = None
    weight_index: int = 0
    positions: Positions = "auto"
    mixing_after: bool = False

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
