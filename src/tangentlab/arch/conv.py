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
    Shape,
    WeightLayer,
    check_choice,
    check_ints,
    check_positive_int,
    check_real,
    fail,
    per_axis,
)
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


def _pad_pairs(
    x: torch.Tensor, spatial: Shape, pads: tuple[tuple[int, int], ...], circular: bool
) -> torch.Tensor:
    """Pad both copies of every spatial axis of ``x`` (shape (B, *spatial, *spatial)) in one allocation."""
    d = len(spatial)
    if all(pad == (0, 0) for pad in pads):
        return x
    full = [s + sum(pad) for s, pad in zip(spatial, pads, strict=True)]
    out = x.new_empty((x.shape[0], *full, *full)) if circular else x.new_zeros((x.shape[0], *full, *full))
    inner = tuple(slice(left, left + s) for s, (left, _) in zip(spatial, pads, strict=True))
    out[(slice(None), *inner, *inner)] = x
    if circular:  # fill the wrap-around margins axis by axis from the (already filled) interior
        for axis in range(d):
            (left, right), size = pads[axis], spatial[axis]
            for dim in (1 + axis, 1 + d + axis):
                if left:
                    out.narrow(dim, 0, left).copy_(out.narrow(dim, size, left))
                if right:
                    out.narrow(dim, left + size, right).copy_(out.narrow(dim, left, right))
    return out


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
    positions are zero ("same"/"valid") or wrap around ("circular"), as in the finite layer. Computed as a sum of
    strided views of one padded copy (``prod(kernel)`` additions into one output buffer).
    """
    d = len(spatial)
    batch = t.shape[:-2]
    x = _pad_pairs(t.reshape(-1, *spatial, *spatial), spatial, pads, circular)
    out = [(spatial[a] + sum(pads[a]) - kernel[a]) // stride[a] + 1 for a in range(d)]
    acc: torch.Tensor | None = None
    for shift in itertools.product(*(range(k) for k in kernel)):
        window = tuple(slice(shift[a], shift[a] + stride[a] * (out[a] - 1) + 1, stride[a]) for a in range(d))
        view = x[(slice(None), *window, *window)]
        acc = view.clone(memory_format=torch.contiguous_format) if acc is None else acc.add_(view)
    assert acc is not None
    acc.div_(math.prod(kernel))
    n_out = math.prod(out)
    return acc.reshape(*batch, n_out, n_out)


def window_mean_diagonal(
    t: torch.Tensor,
    spatial: Shape,
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    pads: tuple[tuple[int, int], ...],
    circular: bool,
) -> torch.Tensor:
    """:func:`window_mean` on the position diagonal: ``A(t)[p] = mean_k t[s p + k - pad]``.

    ``t`` has shape (*batch, P) (the diagonal ``t[p, p]``); the result (*batch, P_out). This is an average pooling
    of the padded diagonal map (the ``(p, p)`` entry of the window mean reads only diagonal entries).
    """
    d = len(spatial)
    batch = t.shape[:-1]
    x = t.reshape(-1, 1, *spatial)
    if any(pad != (0, 0) for pad in pads):
        flat = [p for pair in reversed(pads) for p in pair]  # F.pad wants the last axis first
        x = F.pad(x, flat, mode="circular" if circular else "constant")
    pool = F.avg_pool1d if d == 1 else F.avg_pool2d
    out = pool(x, kernel, stride)
    return out.reshape(*batch, -1)


def same_pads(size: int, k: int, s: int) -> tuple[int, int]:
    """TF/JAX "SAME" padding of one axis: total ``max((ceil(size / s) - 1) s + k - size, 0)``, the odd one at the
    end (right/bottom), so that the output has ``ceil(size / s)`` positions."""
    total = max((-(-size // s) - 1) * s + k - size, 0)
    return total // 2, total - total // 2


@dataclass(frozen=True)
class Conv(WeightLayer):
    """Convolution over ``(channels, length)`` or ``(channels, height, width)`` inputs (PyTorch layout).

    Args:
        channels: output channels.
        kernel_size: window size, an int or one int per spatial axis.
        stride: an int or one per axis.
        padding: ``"same"`` (zeros, output length ``ceil(L / stride)``, TF/JAX/neural-tangents convention: total
            padding ``max((ceil(L / stride) - 1) stride + k - L, 0)``, the odd pixel at the end; with stride 1 the
            left pad is ``(k - 1) // 2``), ``"valid"`` (none) or ``"circular"`` (wrap around, same amounts as
            "same").
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
            pads = tuple(same_pads(n, k, s) for n, k, s in zip(in_shape[1:], kernel, stride, strict=True))
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

    def fan_in(self, in_shape: Shape) -> int:
        kernel, _, _ = self._geometry(in_shape)
        return in_shape[0] * math.prod(kernel)

    def fan_out(self) -> int:
        return self.channels

    def module(self, in_shape: Shape, ctx: Context) -> nn.Module:
        kernel, stride, pads = self._geometry(in_shape)
        scales = self.next_scales(in_shape, ctx)
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
        scales = self.next_scales(in_shape, ctx)
        circular = self.padding == "circular"

        mean = window_mean_diagonal if state.diagonal else window_mean

        def avg(t: torch.Tensor) -> torch.Tensor:
            return mean(t, state.spatial, kernel, stride, pads, circular)

        return affine_kernel_map(state, scales, avg).replace(spatial=self.out_shape(in_shape)[1:])
