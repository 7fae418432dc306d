"""Named image networks built from the layer descriptions: a Myrtle CNN and a small constant-width ResNet.

Both are plain :func:`~tangentlab.arch.serial` compositions of ``Conv``, ``ReLU``, ``AvgPool``, ``GlobalAvgPool``,
``residual`` and ``Dense``, so each gives its finite ``nn.Module`` and its infinite-width kernel like any other
description (the layers' kernel maps are each tested against Monte Carlo averages of finite nets).

- :func:`myrtle`: the Myrtle CNN of Shankar et al. 2020 ("Neural kernels without tangents", arXiv 2003.02237), as
  Lee et al. 2020 (arXiv 2007.15801) use it for CIFAR-10 kernels: three stages of 3x3 ``same`` convolutions with
  ReLU — (2, 1, 1) convolutions per stage at depth 5, (2, 2, 2) at depth 7, (3, 3, 3) at depth 10 — a 2x2 average
  pool after the first two stages and three after the last (32x32 -> 1x1 on CIFAR), then a ``Dense`` readout. Every
  convolution has ``channels`` output channels; He scale ``sigma_w = sqrt 2`` on hidden layers, no bias noise.
- :func:`resnet`: a small pre-activation ResNet of constant width (our choice of Fort et al. 2020's "small ResNet"
  at a size kernels can follow; their exact nets were ResNet-18/WRNs): a 3x3 stem ``Conv(channels)``, ``stages``
  stages of ``blocks`` residual blocks ``x + Conv(ReLU(Conv(ReLU(x))))`` each, a 2x2 average pool between stages,
  then ReLU, global average pooling and a ``Dense`` readout. The width stays constant, so no projection shortcut
  is needed (``residual`` keeps the shape). ``branch_sigma_w`` scales the second convolution of every branch
  (below 1 keeps the variance growth of deep residual stacks, K' = K + K_branch, in check).
"""

from __future__ import annotations

import math

from tangentlab.arch._base import Layer
from tangentlab.arch.arccos import ReLU
from tangentlab.arch.combinators import Serial, residual, serial
from tangentlab.arch.conv import Conv
from tangentlab.arch.dense import Dense
from tangentlab.arch.pooling import AvgPool, Flatten, GlobalAvgPool

#: Convolutions per stage of the Myrtle CNN, by depth (Shankar et al. 2020).
MYRTLE_STAGES: dict[int, tuple[int, int, int]] = {5: (2, 1, 1), 7: (2, 2, 2), 10: (3, 3, 3)}
HE = math.sqrt(2.0)


def _positive(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}: expected an integer >= 1, got {value!r}")
    return value


def myrtle(
    depth: int = 5,
    channels: int = 64,
    out_dim: int = 10,
    *,
    sigma_w: float = HE,
    sigma_b: float = 0.0,
    readout_sigma_w: float = 1.0,
) -> Serial:
    """The Myrtle CNN of depth 5, 7 or 10 (module docstring) for 32x32 inputs (any size divisible by 32 works).

    Raises:
        ValueError: a depth other than 5, 7, 10, or a non-positive width.
    """
    if depth not in MYRTLE_STAGES:
        raise ValueError(f"depth: expected one of {sorted(MYRTLE_STAGES)}, got {depth!r}")
    _positive("channels", channels)
    _positive("out_dim", out_dim)
    convs = MYRTLE_STAGES[depth]
    layers: list[Layer] = []
    for stage, n_conv in enumerate(convs):
        for _ in range(n_conv):
            layers += [Conv(channels, 3, sigma_w=sigma_w, sigma_b=sigma_b), ReLU()]
        layers += [AvgPool(2)] * (1 if stage < 2 else 3)
    return serial(*layers, Flatten(), Dense(out_dim, sigma_w=readout_sigma_w, sigma_b=sigma_b))


def resnet(
    blocks: int = 2,
    channels: int = 16,
    out_dim: int = 10,
    *,
    stages: int = 3,
    sigma_w: float = HE,
    branch_sigma_w: float = 1.0,
    readout_sigma_w: float = 1.0,
) -> Serial:
    """A small constant-width pre-activation ResNet (module docstring): ``stages`` x ``blocks`` residual blocks.

    Raises:
        ValueError: a non-positive number of blocks, stages or channels.
    """
    for name, value in (("blocks", blocks), ("channels", channels), ("out_dim", out_dim), ("stages", stages)):
        _positive(name, value)
    layers: list[Layer] = [Conv(channels, 3, sigma_w=sigma_w)]
    for stage in range(stages):
        for _ in range(blocks):
            layers.append(
                residual(
                    ReLU(),
                    Conv(channels, 3, sigma_w=sigma_w),
                    ReLU(),
                    Conv(channels, 3, sigma_w=branch_sigma_w),
                )
            )
        if stage < stages - 1:
            layers.append(AvgPool(2))
    return serial(*layers, ReLU(), GlobalAvgPool(), Dense(out_dim, sigma_w=readout_sigma_w))


__all__ = ["MYRTLE_STAGES", "myrtle", "resnet"]
