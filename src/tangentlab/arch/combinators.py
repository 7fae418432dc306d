"""Combinators: ``serial`` (composition) and ``residual`` (``x + f(x)``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, cast

import torch
from torch import nn

from tangentlab.arch._base import Context, KernelState, Layer, Shape, fail


def _check_layers(owner: str, layers: tuple[Any, ...]) -> tuple[Layer, ...]:
    if not layers:
        raise fail(owner, "layers", layers, "at least one layer description")
    for i, layer in enumerate(layers):
        if not isinstance(layer, Layer):
            hint = f" (did you mean {layer.__name__}()?)" if isinstance(layer, type) else ""
            raise fail(
                owner, f"layers[{i}]", layer, "a layer description such as Dense(512) or ReLU()" + hint
            )
    return tuple(layers)


@dataclass(frozen=True)
class Serial(Layer):
    """Layers applied one after the other; build with :func:`serial`."""

    layer_name: ClassVar[str] = "Serial"
    layers: tuple[Layer, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", _check_layers(self.layer_name, tuple(self.layers)))

    def out_shape(self, in_shape: Shape) -> Shape:
        for layer in self.layers:
            in_shape = layer.out_shape(in_shape)
        return in_shape

    def module(self, in_shape: Shape, ctx: Context) -> nn.Module:
        modules = []
        for layer in self.layers:
            modules.append(layer.module(in_shape, ctx))
            in_shape = layer.out_shape(in_shape)
        return nn.Sequential(*modules)

    def kernel_map(self, state: KernelState, in_shape: Shape, ctx: Context) -> KernelState:
        outer = ctx.mixing_after
        mixing = [layer.mixes_positions() for layer in self.layers]
        try:
            for index, layer in enumerate(self.layers):
                later = outer or any(mixing[index + 1 :])
                if ctx.positions == "auto" and not later and not mixing[index]:
                    state = state.to_diagonal()  # nothing ahead reads off-diagonal positions
                ctx.mixing_after = later
                state = layer.kernel_map(state, in_shape, ctx)
                in_shape = layer.out_shape(in_shape)
        finally:
            ctx.mixing_after = outer
        return state

    def leaves(self) -> tuple[Layer, ...]:
        return tuple(leaf for layer in self.layers for leaf in layer.leaves())

    def mixes_positions(self) -> bool:
        return any(layer.mixes_positions() for layer in self.layers)

    def to_dict(self) -> dict[str, Any]:
        return {"layer": self.layer_name, "layers": [layer.to_dict() for layer in self.layers]}


def serial(*layers: Layer) -> Serial:
    """Compose layer descriptions: ``serial(Dense(512), ReLU(), Dense(1))``."""
    return Serial(layers)


class ResidualModule(nn.Module):
    """``x -> x + branch(x)``."""

    def __init__(self, branch: nn.Module) -> None:
        super().__init__()
        self.branch = branch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return cast(torch.Tensor, x + self.branch(x))


@dataclass(frozen=True)
class Residual(Serial):
    """``x + f(x)`` with ``f = serial(*layers)``; build with :func:`residual`.

    The branch must end with a Dense or Conv (zero-mean weights independent of ``x``) and keep the shape. Then
    ``x`` and ``f(x)`` are uncorrelated, and so are their parameter gradients, in expectation over the branch's
    last weights, so ``K' = K + K_f`` and ``Θ' = Θ + Θ_f`` with ``(K_f, Θ_f)`` the branch's kernels propagated
    from ``(K, Θ)`` (the backward pass through ``f`` is part of ``Θ_f``); Yang 2019 / Huang et al. 2020 for
    residual NTKs. A branch ending in an activation would correlate with ``x`` through the activation's mean.
    """

    layer_name: ClassVar[str] = "Residual"

    def __post_init__(self) -> None:
        super().__post_init__()
        last = self.leaves()[-1]
        if not last.has_weights:
            raise fail("Residual", "layers[-1]", last, "a branch that ends with Dense or Conv")

    def out_shape(self, in_shape: Shape) -> Shape:
        out = super().out_shape(in_shape)
        if out != in_shape:
            raise fail("Residual", "branch output shape", out, f"the branch input shape {in_shape}")
        return out

    def module(self, in_shape: Shape, ctx: Context) -> nn.Module:
        return ResidualModule(super().module(in_shape, ctx))

    def kernel_map(self, state: KernelState, in_shape: Shape, ctx: Context) -> KernelState:
        branch = super().kernel_map(state, in_shape, ctx)
        if branch.diagonal:
            state = state.to_diagonal()
        var1 = state.var1 + branch.var1
        var2 = var1 if state.var2 is state.var1 else state.var2 + branch.var2
        return KernelState(
            nngp=state.nngp + branch.nngp,
            ntk=state.ntk + branch.ntk,
            var1=var1,
            var2=var2,
            spatial=state.spatial,
            diagonal=branch.diagonal,
            pairs=state.pairs,
        )


def residual(*layers: Layer) -> Residual:
    """The residual block ``x + serial(*layers)(x)``, e.g. ``residual(ReLU(), Conv(64, 3), ReLU(), Conv(64, 3))``."""
    return Residual(layers)
