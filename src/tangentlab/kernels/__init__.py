"""Kernels of finite networks (empirical NTK and NNGP) — the numerics layer; imports only torch/numpy/scipy."""

from tangentlab.kernels._cost import Cost
from tangentlab.kernels.empirical import empirical_ntk, ntk_cost
from tangentlab.kernels.nngp import empirical_nngp

__all__ = ["Cost", "empirical_nngp", "empirical_ntk", "ntk_cost"]
