"""tangentlab: does this finite neural network behave as neural tangent kernel theory predicts?

The public surface is exactly what this module re-exports (and the documented subpackages).
"""

from tangentlab._version import __version__

# --- kernel engine: empirical kernels of any nn.Module (issue 2)
from tangentlab.kernels import empirical_nngp, empirical_ntk

# --- architecture descriptions, infinite-width kernels, Monte Carlo kernels (issue 3)

# --- data, training, predictions, metrics (issue 4)

__all__ = ["__version__", "empirical_nngp", "empirical_ntk"]
