"""tangentlab: does this finite neural network behave as neural tangent kernel theory predicts?

The public surface is exactly what this module re-exports (and the documented subpackages):

- kernel engine: ``empirical_ntk``, ``empirical_nngp`` (any ``nn.Module``), ``monte_carlo_kernel``;
- ``arch``: one description → finite ``nn.Module`` (``build``) and infinite-width ``Kernel`` (``kernel``);
- ``data``, ``train``, ``predict``, ``metrics``: datasets, the training loop, kernel predictions, measures;
- ``audit``: is a user's own model in the kernel regime? (the function ``tangentlab.audit``; its result and
  threshold types in ``tangentlab.auditing``; CLI ``tangentlab audit``).
"""

from tangentlab import arch, auditing, data, metrics, predict, train
from tangentlab._version import __version__
from tangentlab.arch import Kernel
from tangentlab.auditing import audit
from tangentlab.kernels import empirical_nngp, empirical_ntk
from tangentlab.kernels.monte_carlo import MonteCarloKernel, monte_carlo_kernel

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
    "metrics",
    "monte_carlo_kernel",
    "predict",
    "train",
]
