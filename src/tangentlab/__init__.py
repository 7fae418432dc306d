"""tangentlab: does this finite neural network behave as neural tangent kernel theory predicts?

The public surface is exactly what this module re-exports (and the documented subpackages):

- kernel engine: ``empirical_ntk``, ``empirical_nngp`` (any ``nn.Module``), ``monte_carlo_kernel``;
- ``arch``: one description → finite ``nn.Module`` (``build``) and infinite-width ``Kernel`` (``kernel``);
- ``data``, ``train``, ``predict``, ``metrics``: datasets, the training loop, kernel predictions, measures;
- ``audit``: is a user's own model in the kernel regime? (the function ``tangentlab.audit``; its result and
  threshold types in ``tangentlab.auditing``; CLI ``tangentlab audit``);
- ``load_results(DIR)``: a sweep's runs as a pandas DataFrame (``pip install "tangentlab[data]"``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tangentlab import arch, auditing, data, metrics, predict, train
from tangentlab._version import __version__
from tangentlab.arch import Kernel
from tangentlab.auditing import audit
from tangentlab.kernels import empirical_nngp, empirical_ntk
from tangentlab.kernels.monte_carlo import MonteCarloKernel, monte_carlo_kernel

if TYPE_CHECKING:
    from tangentlab.results import load_results


def __getattr__(name: str) -> Any:
    """``load_results`` is imported on first use (it pulls in the runner, which the numerics never need)."""
    if name == "load_results":
        from tangentlab.results import load_results

        return load_results
    raise AttributeError(f"module 'tangentlab' has no attribute {name!r}")


__all__ = [
    "Kernel",
    "MonteCarloKernel",
    "__version__",
    "arch",
    "audit",
    "auditing",
    "data",
    "empirical_nngp",
    "empirical_ntk",
    "load_results",
    "metrics",
    "monte_carlo_kernel",
    "predict",
    "train",
]
