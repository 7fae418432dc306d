"""``Dense``: a fully connected layer, its finite module and its infinite-width kernel map."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from tangentlab.arch._base import (
    Context,
    KernelState,
    Shape,
    WeightLayer,
    check_positive_int,
    check_real,
    fail,
)
from tangentlab.arch._parametrization import Scales
from tangentlab.modules import ScaledLinear


def init_weight_layer(module: nn.Module, scales: Scales, ctx: Context) -> None:
    """Draw ``W ~ N(0, v_w)`` and ``b ~ N(0, v_b)`` (weights first, then bias) from the pass's generator."""
    weight, bias = module.weight, module.bias
    assert isinstance(weight, torch.Tensor) and isinstance(bias, torch.Tensor)
    with torch.no_grad():
        weight.copy_(ctx.normal(tuple(weight.shape), scales.v_w**0.5))
        bias.copy_(ctx.normal(tuple(bias.shape), scales.v_b**0.5))


def affine_kernel_map(state: KernelState, scales: Scales, window_mean: object = None) -> KernelState:
    """``K -> g A(K) + o`` and ``Θ -> g A(Θ) + m_w^2 n A(K) + m_b^2`` (see :mod:`._parametrization`).

    ``A`` (``window_mean``, identity when None) returns a new tensor, which is then updated in place.
    """
    g, o = scales.forward_gain, scales.forward_offset
    if window_mean is None:
        k = state.nngp
        ntk = torch.mul(state.ntk, g)
    else:
        k = window_mean(state.nngp)  # type: ignore[operator]
        ntk = window_mean(state.ntk).mul_(g)  # type: ignore[operator]
    ntk.add_(k, alpha=scales.gradient_gain).add_(scales.gradient_offset)
    nngp = torch.mul(k, g) if window_mean is None else k.mul_(g)
    nngp.add_(o)
    avg = (lambda t: t) if window_mean is None else window_mean
    var1 = g * avg(state.var1) + o  # type: ignore[operator]
    var2 = var1 if state.var2 is state.var1 else g * avg(state.var2) + o  # type: ignore[operator]
    return state.replace(nngp=nngp, ntk=ntk, var1=var1, var2=var2)


@dataclass(frozen=True)
class Dense(WeightLayer):
    """Fully connected layer ``z = m_w W a + m_b b`` on feature vectors (the last Dense of a net is its output).

    Args:
        width: number of output units.
        sigma_w: weight standard deviation (times ``1/sqrt(fan_in)``), see :mod:`tangentlab.arch` for the
            parametrizations.
        sigma_b: bias standard deviation.

    Kernel map (Lee et al. 2018, "Deep neural networks as Gaussian processes"; Jacot et al. 2018), in NTK
    parametrization ``K' = sigma_w^2 K + sigma_b^2`` and ``Θ' = sigma_w^2 (Θ + K) + sigma_b^2``; the general
    abc form is in :mod:`tangentlab.arch._parametrization`.
    """

    layer_name: ClassVar[str] = "Dense"
    width: int
    sigma_w: float = 1.0
    sigma_b: float = 0.0

    def __post_init__(self) -> None:
        check_positive_int("Dense", "width", self.width)
        object.__setattr__(self, "sigma_w", check_real("Dense", "sigma_w", self.sigma_w, nonnegative=True))
        object.__setattr__(self, "sigma_b", check_real("Dense", "sigma_b", self.sigma_b, nonnegative=True))

    def out_shape(self, in_shape: Shape) -> Shape:
        if len(in_shape) != 1:
            raise fail(
                "Dense",
                "input shape",
                in_shape,
                "feature vectors (d,); put Flatten() or GlobalAvgPool() first",
            )
        return (self.width,)

    def fan_in(self, in_shape: Shape) -> int:
        return in_shape[0]

    def fan_out(self) -> int:
        return self.width

    def module(self, in_shape: Shape, ctx: Context) -> nn.Module:
        scales = self.next_scales(in_shape, ctx)
        layer = ScaledLinear(
            in_shape[0],
            self.width,
            weight_scale=scales.m_w,
            bias_scale=scales.m_b,
            dtype=ctx.dtype,
            device=ctx.device,
        )
        init_weight_layer(layer, scales, ctx)
        return layer

    def kernel_map(self, state: KernelState, in_shape: Shape, ctx: Context) -> KernelState:
        return affine_kernel_map(state, self.next_scales(in_shape, ctx))
