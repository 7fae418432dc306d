"""Plain ``torch.nn`` building blocks that tangentlab's numerics know how to treat exactly.

``ScaledLinear`` / ``ScaledConv1d`` / ``ScaledConv2d`` compute ``weight_scale * W x + bias_scale * b``; the NTK and
standard parametrizations of :mod:`tangentlab.arch` are built from them, and the ``structured`` empirical NTK
handles them with per-layer Gram products (the scales enter as ``weight_scale**2`` and ``bias_scale**2``).
"""

from tangentlab.modules.scaled import ScaledConv1d, ScaledConv2d, ScaledLinear, layer_scales

__all__ = ["ScaledConv1d", "ScaledConv2d", "ScaledLinear", "layer_scales"]
