"""The empirical-NTK methods, one module each, registered by name (:data:`METHODS`).

* ``jacobian`` — per-example Jacobians with ``torch.func``, contracted block by block;
* ``ntvp`` — NTK-vector products (a VJP then a JVP), never a whole Jacobian;
* ``structured`` — per-layer Gram products for linear and convolution layers, autodiff for the rest.

Each is an :class:`NtkMethod`: a cost estimate and a block engine (a :class:`BlockEngine`: features of a block of
examples, then the kernel block of two). A module added to this folder registers its method when the package is
imported (:func:`load`); ``empirical_ntk(method="auto")`` ranks them all by cost. What a method sees of a model is
its :class:`ModelShape` (:func:`probe`: outputs, parameters, FLOPs, and the :class:`LayerShape` of each linear or
convolution layer), over the parameters :func:`trainable_params` returns.
"""

from __future__ import annotations

import importlib
import pkgutil

from tangentlab.kernels._blocks import BlockEngine
from tangentlab.kernels._cost import Cost
from tangentlab.kernels._functional import trainable_params
from tangentlab.kernels._probe import LayerShape, ModelShape, probe
from tangentlab.kernels.methods._base import METHODS, NtkMethod, register

_LOADED: list[bool] = []


def load() -> dict[str, NtkMethod]:
    """Import every method module in this folder (each registers itself) and return :data:`METHODS`.

    The folder is scanned once per process (it was a directory listing per call, three per ``empirical_ntk``).
    """
    if not _LOADED:
        for info in pkgutil.iter_modules(__path__):
            if not info.name.startswith("_"):
                importlib.import_module(f"{__name__}.{info.name}")
        _LOADED.append(True)
    return METHODS


def estimate(
    shape: ModelShape, n1: int, n2: int, outputs: str, itemsize: int, budget: float, batch_size: int | None
) -> dict[str, Cost]:
    """Every registered method's :class:`Cost` for these sizes (formulas in :mod:`tangentlab.kernels._cost`)."""
    return {
        name: method.cost(shape, n1, n2, outputs, itemsize, budget, batch_size)
        for name, method in load().items()
    }


def choose(costs: dict[str, Cost]) -> str:
    """The feasible method with the fewest FLOPs (ties by priority; the least memory if none fits)."""
    order = sorted(costs, key=lambda name: (METHODS[name].priority, name))
    feasible = [costs[k] for k in order if costs[k].feasible]
    if not feasible:
        return min((costs[k] for k in order), key=lambda c: c.bytes_per_example).method
    return min(feasible, key=lambda c: c.flops).method


__all__ = [
    "METHODS",
    "BlockEngine",
    "Cost",
    "LayerShape",
    "ModelShape",
    "NtkMethod",
    "choose",
    "estimate",
    "load",
    "probe",
    "register",
    "trainable_params",
]
