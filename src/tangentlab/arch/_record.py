"""The kernel record returned by :meth:`tangentlab.arch.Layer.kernel`."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Kernel:
    """Scalar-per-output kernels of a network (outputs are i.i.d. in the infinite-width limit).

    Attributes:
        nngp: (n1, n2) float64 covariance ``E[f(x1_i) f(x2_j)]`` of one network output at initialisation.
        ntk: (n1, n2) float64 tangent kernel ``E[<df(x1_i)/dθ, df(x2_j)/dθ>]`` of one output.
    """

    nngp: torch.Tensor
    ntk: torch.Tensor
