"""``Conv``: a 1-D or 2-D convolution, its finite module and its infinite-width kernel map."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from tangentlab.arch._base import (
    Context,
    KernelState,
    Layer,
    Shape,
    check_choice,
    check_ints,
    check_positive_int,
    check_real,
    fail,
    per_axis,
)
from tangentlab.arch._parametrization import layer_scales
from tangentlab.arch.dense import affine_kernel_map, init_weight_layer
from tangentlab.modules import ScaledConv1d, ScaledConv2d

PADDINGS = ("same", "valid", "circular")


class Pad(nn.Module):
    """Pad the spatial axes of ``(n, C, *spatial)`` by ``pads = ((left, right) per axis)``, zeros or circular."""

    def __init__(self, pads: tuple[tuple[int, int], ...], circular: bool) -> None:
        super().__init__()
        self.pads = pads
        self.circular = circular

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = [p for pair in reversed(self.pads) for p in pair]  # F.pad wants the last axis first
        return F.pad(x, flat, mode="circular" if self.circular else "constant")

    def extra_repr(self) -> str:
        return f"pads={self.pads}, circular={self.circular}"


def _pad_axis(x: torch.Tensor, axis: int, left: int, right: int, circular: bool) -> torch.Tensor:
    if left == right == 0:
        return x
    size = x.shape[axis]
    if circular:
        parts = [x.narrow(axis, size - left, left), x, x.narrow(axis, 0, right)]
    else:
        shape = list(x.shape)
        parts = []
        for n in (left, None, right):
            if n is None:
                parts.append(x)
            else:
                shape[axis] = n
                parts.append(x.new_zeros(shape))
    return torch.cat(parts, dim=axis)


def window_mean(
    t: torch.Tensor,
    spatial: Shape,
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    pads: tuple[tuple[int, int], ...],
    circular: bool,
) -> torch.Tensor:
    """``A(t)[p, q] = mean_k t[s p + k - pad, s q + k - pad]`` over the kernel window, on position pairs.

    ``t`` has shape (*batch, P, P) with ``P = prod(spatial)``; the result (*batch, P_out, P_out). Out-of-range
    positions are zero ("same"/"valid") or wrap around ("circular"), as in the finite layer.
    """
    d = len(spatial)
    batch = t.shape[:-2]
    x = t.reshape(-1, *spatial, *spatial)
    for axis in range(d):
        for offset in (1, 1 + d):
            x = _pad_axis(x, offset + axis, *pads[axis], circular)
    out = [(spatial[a] + sum(pads[a]) - kernel[a]) // stride[a] + 1 for a in range(d)]
    acc = torch.zeros((x.shape[0], *out, *out), dtype=t.dtype, device=t.device)
    for shift in itertools.product(*(range(k) for k in kernel)):
        window = tuple(slice(shift[a], shift[a] + stride[a] * (out[a] - 1) + 1, stride[a]) for a in range(d))
        acc += x[(slice(None), *window, *window)]
    acc /= math.prod(kernel)
    n_out = math.prod(out)
    return acc.reshape(*batch, n_out, n_out)


@dataclass(frozen=True)
class Conv(Layer):
    """Convolution over ``(channels, length)`` or ``(channels, height, width)`` inputs (PyTorch layout).

    Args:
        channels: output channels.
        kernel_size: window size, an int or one int per spatial axis.
        stride: an int or one per axis.
        padding: ``"same"`` (zeros, output length ``ceil(L / stride)``; left pad ``(k - 1) // 2``),
            ``"valid"`` (none) or ``"circular"`` (wrap around, same amounts as "same").
        sigma_w: weight standard deviation (times ``1/sqrt(fan_in)``, fan_in = channels_in × kernel area).
        sigma_b: bias standard deviation.

    Kernel map (Novak et al. 2019, "Bayesian deep CNNs with many channels are GPs"; Arora et al. 2019,
    "On exact computation with an infinitely wide neural net", CNTK): on position pairs,
    ``K'[p, q] = sigma_w^2 A(K)[p, q] + sigma_b^2`` and ``Θ'[p, q] = sigma_w^2 A(Θ + K)[p, q] + sigma_b^2``
    in NTK parametrization, ``A`` the mean over the window offsets ``k`` of ``K[s p + k, s q + k]``
    (:func:`window_mean`); other parametrizations as in :mod:`tangentlab.arch._parametrization`.
    """

    layer_name: ClassVar[str] = "Conv"
    channels: int
    kernel_size: int | tuple[int, ...]
    stride: int | tuple[int, ...] = 1
    padding: str = "same"
    sigma_w: float = 1.0
    sigma_b: float = 0.0

    def __post_init__(self) -> None:
        check_positive_int("Conv", "channels", self.channels)
        object.__setattr__(self, "kernel_size", check_ints("Conv", "kernel_size", self.kernel_size))
        object.__setattr__(self, "stride", check_ints("Conv", "stride", self.stride))
        check_choice("Conv", "padding", self.padding, PADDINGS)
        object.__setattr__(self, "sigma_w", check_real("Conv", "sigma_w", self.sigma_w, nonnegative=True))
        object.__setattr__(self, "sigma_b", check_real("Conv", "sigma_b", self.sigma_b, nonnegative=True))

    def _geometry(
        self, in_shape: Shape
    ) -> tuple[tuple[int, ...], tuple[int, ...], tuple[tuple[int, int], ...]]:
        if len(in_shape) not in (2, 3):
            raise fail(
                "Conv",
                "input shape",
                in_shape,
                "feature maps (channels, length) or (channels, height, width); feature vectors (d,) need Dense",
            )
        d = len(in_shape) - 1
        kernel = per_axis("Conv", "kernel_size", self.kernel_size, d)
        stride = per_axis("Conv", "stride", self.stride, d)
        if self.padding == "valid":
            pads = tuple((0, 0) for _ in kernel)
        else:
            pads = tuple(((k - 1) // 2, k - 1 - (k - 1) // 2) for k in kernel)
        for size, k, (left, right) in zip(in_shape[1:], kernel, pads, strict=True):
            if size + left + right < k or (self.padding == "circular" and max(left, right) > size):
                raise fail(
                    "Conv", "kernel_size", self.kernel_size, f"a window that fits the input {in_shape}"
                )
        return kernel, stride, pads

    def out_shape(self, in_shape: Shape) -> Shape:
        kernel, stride, pads = self._geometry(in_shape)
        out = tuple(
            (size + sum(pad) - k) // s + 1
            for size, k, s, pad in zip(in_shape[1:], kernel, stride, pads, strict=True)
        )
        return (self.channels, *out)

    def module(self, in_shape: Shape, ctx: Context) -> nn.Module:
        kernel, stride, pads = self._geometry(in_shape)
        scales = layer_scales(
            ctx.parametrization,
            ctx.next_role(),
            self.sigma_w,
            self.sigma_b,
            in_shape[0] * math.prod(kernel),
            self.channels,
        )
        cls = ScaledConv1d if len(kernel) == 1 else ScaledConv2d
        conv = cls(
            in_shape[0],
            self.channels,
            kernel,
            stride=stride,
            padding=0,
            weight_scale=scales.m_w,
            bias_scale=scales.m_b,
            dtype=ctx.dtype,
            device=ctx.device,
        )
        init_weight_layer(conv, scales, ctx)
        if all(p == (0, 0) for p in pads):
            return conv
        return nn.Sequential(Pad(pads, self.padding == "circular"), conv)

    def kernel_map(self, state: KernelState, in_shape: Shape, ctx: Context) -> KernelState:
        kernel, stride, pads = self._geometry(in_shape)
        scales = layer_scales(
            ctx.parametrization,
            ctx.next_role(),
            self.sigma_w,
            self.sigma_b,
            in_shape[0] * math.prod(kernel),
            self.channels,
        )
        circular = self.padding == "circular"

        def avg(t: torch.Tensor) -> torch.Tensor:
            return window_mean(t, state.spatial, kernel, stride, pads, circular)

        return affine_kernel_map(state, scales, avg).replace(spatial=self.out_shape(in_shape)[1:])
