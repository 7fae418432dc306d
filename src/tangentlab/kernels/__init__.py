"""Kernels of finite networks (empirical NTK and NNGP) and the classical RBF and Laplace kernels — the numerics layer;
imports only torch/numpy/scipy."""

from tangentlab.kernels._budget import memory_budget
from tangentlab.kernels._cost import DEFAULT_MEMORY_BUDGET, Cost
from tangentlab.kernels.empirical import empirical_ntk, ntk_cost
from tangentlab.kernels.features import ntk_features
from tangentlab.kernels.nngp import empirical_nngp
from tangentlab.kernels.stationary import laplace_kernel, median_bandwidth, rbf_kernel, stationary_kernel

__all__ = [
    "DEFAULT_MEMORY_BUDGET",
    "Cost",
    "empirical_nngp",
    "empirical_ntk",
    "laplace_kernel",
    "median_bandwidth",
    "memory_budget",
    "ntk_cost",
    "ntk_features",
    "rbf_kernel",
    "stationary_kernel",
]
