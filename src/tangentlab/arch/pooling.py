"""``GlobalAvgPool``, ``AvgPool`` and ``Flatten``: linear maps from feature maps, applied to the kernels.

All three are linear, so they act on the NNGP and the NTK alike (Novak et al. 2019; Arora et al. 2019):
``GlobalAvgPool`` averages ``K[p, q]`` over all position pairs; ``AvgPool`` averages over pairs of windows; and
``Flatten`` followed by a Dense of fan-in ``C × P`` gives the mean of the diagonal ``K[p, p]`` over positions
(the "vectorisation" readout of Novak et al. 2019, which drops the cross-position covariance).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from tangentlab.arch._base import Context, KernelState, Layer, Shape, check_ints, fail, per_axis


def _require_maps(layer: str, in_shape: Shape) -> None:
    if len(in_shape) not in (2, 3):
        raise fail(
            layer, "input shape", in_shape, "feature maps (channels, length) or (channels, height, width)"
        )


class GlobalMean(nn.Module):
    """Mean over all spatial axes of ``(n, C, *spatial)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=tuple(range(2, x.ndim)))


@dataclass(frozen=True)
class GlobalAvgPool(Layer):
    """Average each channel over all positions: ``K' = mean_{p, q} K[p, q]``, same for ``Θ``."""

    layer_name: ClassVar[str] = "GlobalAvgPool"

    def out_shape(self, in_shape: Shape) -> Shape:
        _require_maps("GlobalAvgPool", in_shape)
        return (in_shape[0],)

    def module(self, in_shape: Shape, ctx: Context) -> nn.Module:
        return GlobalMean()

    def kernel_map(self, state: KernelState, in_shape: Shape, ctx: Context) -> KernelState:
        assert not state.diagonal, "pooling needs all position pairs"
        return state.map_all(lambda t: t.mean(dim=(-2, -1))).replace(spatial=())

    def mixes_positions(self) -> bool:
        return True


@dataclass(frozen=True)
class AvgPool(Layer):
    """Non-overlapping average pooling (``nn.AvgPool1d/2d(size)``; trailing positions that do not fill a window
    are dropped): ``K'[P, Q] = mean_{p in P, q in Q} K[p, q]``.

    Args:
        size: window (and stride), an int or one int per spatial axis.
    """

    layer_name: ClassVar[str] = "AvgPool"
    size: int | tuple[int, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "size", check_ints("AvgPool", "size", self.size))

    def _window(self, in_shape: Shape) -> tuple[int, ...]:
        _require_maps("AvgPool", in_shape)
        window = per_axis("AvgPool", "size", self.size, len(in_shape) - 1)
        if any(w > s for w, s in zip(window, in_shape[1:], strict=True)):
            raise fail("AvgPool", "size", self.size, f"windows no larger than the input {in_shape[1:]}")
        return window

    def out_shape(self, in_shape: Shape) -> Shape:
        window = self._window(in_shape)
        return (in_shape[0], *(s // w for s, w in zip(in_shape[1:], window, strict=True)))

    def module(self, in_shape: Shape, ctx: Context) -> nn.Module:
        window = self._window(in_shape)
        return nn.AvgPool1d(window) if len(window) == 1 else nn.AvgPool2d((window[0], window[1]))

    def kernel_map(self, state: KernelState, in_shape: Shape, ctx: Context) -> KernelState:
        assert not state.diagonal, "pooling needs all position pairs"
        window = self._window(in_shape)
        out = self.out_shape(in_shape)[1:]
        d = len(window)

        def pool(t: torch.Tensor) -> torch.Tensor:
            batch = t.shape[:-2]
            x = t.reshape(-1, *state.spatial, *state.spatial)
            crop = tuple(slice(0, o * w) for o, w in zip(out, window, strict=True))
            x = x[(slice(None), *crop, *crop)]
            split = [n for o, w in zip(out, window, strict=True) for n in (o, w)]
            x = x.reshape(x.shape[0], *split, *split)
            x = x.mean(dim=tuple(2 + 2 * a for a in range(2 * d)))
            return x.reshape(*batch, math.prod(out), math.prod(out))

        return state.map_all(pool).replace(spatial=out)

    def mixes_positions(self) -> bool:
        return True


@dataclass(frozen=True)
class Flatten(Layer):
    """``nn.Flatten()``: feature maps to vectors of size ``C × P``; ``K' = mean_p K[p, p]`` (identity on vectors)."""

    layer_name: ClassVar[str] = "Flatten"

    def out_shape(self, in_shape: Shape) -> Shape:
        return (math.prod(in_shape),)

    def module(self, in_shape: Shape, ctx: Context) -> nn.Module:
        return nn.Flatten()

    def kernel_map(self, state: KernelState, in_shape: Shape, ctx: Context) -> KernelState:
        if state.spatial == ():
            return state
        if state.diagonal:
            return state.map_all(lambda t: t.mean(-1)).replace(spatial=(), diagonal=False)
        return state.map_all(lambda t: torch.diagonal(t, dim1=-2, dim2=-1).mean(-1)).replace(spatial=())
