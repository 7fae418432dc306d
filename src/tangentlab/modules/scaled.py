"""Linear and convolution layers with fixed multipliers on their weight and bias.

A layer computes ``z = weight_scale * W * a + bias_scale * b`` where ``W`` and ``b`` are the trainable tensors.
With ``W, b ~ N(0, 1)``, ``weight_scale = sigma_w / sqrt(fan_in)`` and ``bias_scale = sigma_b`` this is the NTK
parametrization of Jacot et al. (2018); with unit scales it is PyTorch's own layer. The gradient with respect to
``W`` is ``weight_scale * delta a^T`` and with respect to ``b`` is ``bias_scale * delta``, which is what the
structured empirical NTK uses (:func:`layer_scales`).
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn
from torch.nn import functional as F


class ScaledLinear(nn.Linear):
    """``nn.Linear`` computing ``weight_scale * x W^T + bias_scale * b``."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        bias: bool = True,
        weight_scale: float = 1.0,
        bias_scale: float = 1.0,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)
        self.weight_scale = float(weight_scale)
        self.bias_scale = float(bias_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = None if self.bias is None else self.bias * self.bias_scale
        return F.linear(x, self.weight * self.weight_scale, bias)

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, weight_scale={self.weight_scale:.6g}, bias_scale={self.bias_scale:.6g}"
        )


class ScaledConv1d(nn.Conv1d):
    """``nn.Conv1d`` computing ``weight_scale * conv(x, W) + bias_scale * b``. Takes ``nn.Conv1d``'s arguments."""

    def __init__(
        self, *args: object, weight_scale: float = 1.0, bias_scale: float = 1.0, **kwargs: object
    ) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.weight_scale = float(weight_scale)
        self.bias_scale = float(bias_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = None if self.bias is None else self.bias * self.bias_scale
        return cast(torch.Tensor, self._conv_forward(x, self.weight * self.weight_scale, bias))

    def extra_repr(self) -> str:
        base: str = super().extra_repr()  # type: ignore[no-untyped-call]
        return f"{base}, weight_scale={self.weight_scale:.6g}, bias_scale={self.bias_scale:.6g}"


class ScaledConv2d(nn.Conv2d):
    """``nn.Conv2d`` computing ``weight_scale * conv(x, W) + bias_scale * b``. Takes ``nn.Conv2d``'s arguments."""

    def __init__(
        self, *args: object, weight_scale: float = 1.0, bias_scale: float = 1.0, **kwargs: object
    ) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.weight_scale = float(weight_scale)
        self.bias_scale = float(bias_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = None if self.bias is None else self.bias * self.bias_scale
        return cast(torch.Tensor, self._conv_forward(x, self.weight * self.weight_scale, bias))

    def extra_repr(self) -> str:
        base: str = super().extra_repr()  # type: ignore[no-untyped-call]
        return f"{base}, weight_scale={self.weight_scale:.6g}, bias_scale={self.bias_scale:.6g}"


_EXACT = (nn.Linear, nn.Conv1d, nn.Conv2d)
_SCALED = (ScaledLinear, ScaledConv1d, ScaledConv2d)


def layer_scales(module: nn.Module) -> tuple[float, float] | None:
    """``(weight_scale, bias_scale)`` if ``module`` is a layer whose gradients have the linear-layer structure.

    Exactly ``nn.Linear``/``nn.Conv1d``/``nn.Conv2d`` (scales 1) or tangentlab's scaled versions. Subclasses of
    the torch layers are *not* recognised: they may override ``forward``, and then the structure would not hold.
    """
    if type(module) in _SCALED:
        return module.weight_scale, module.bias_scale  # type: ignore[return-value]
    if type(module) in _EXACT:
        return 1.0, 1.0
    return None
