"""What an empirical-NTK method is: a cost estimate (to rank it and size its blocks) and a block engine.

Every method registers itself (:func:`register`) under its name, so adding one is one file in this folder; the
cost model's shared pieces (block sizing under the memory budget, x2 caching) are in :mod:`tangentlab.kernels._cost`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import torch
from torch import nn

from tangentlab.kernels._blocks import BlockEngine
from tangentlab.kernels._cost import Cost
from tangentlab.kernels._functional import Params
from tangentlab.kernels._probe import ModelShape


class NtkMethod(ABC):
    """One exact algorithm for ``Θ(x1, x2)``: its cost for given sizes and the engine that computes blocks.

    Attributes:
        name: what ``empirical_ntk(method=...)`` calls it.
        priority: ``auto``'s order among methods of equal cost (lower first).
    """

    name: ClassVar[str]
    priority: ClassVar[int] = 100

    @abstractmethod
    def cost(
        self,
        shape: ModelShape,
        n1: int,
        n2: int,
        outputs: str,
        itemsize: int,
        budget: float,
        batch_size: int | None,
    ) -> Cost:
        """FLOPs, block size and bytes per example for these sizes; ``feasible`` if a pair of blocks fits ``budget``."""

    @abstractmethod
    def engine(
        self,
        model: nn.Module,
        params: Params,
        shape: ModelShape,
        outputs: str,
        cost: Cost,
        n1: int,
        n2: int,
        budget: float,
        itemsize: int,
    ) -> BlockEngine:
        """The engine that computes the kernel's blocks (features of a block of examples, then pairs)."""

    def x2_block(self, cost: Cost, n2: int, batch_size: int | None) -> int:
        """Examples per x2 block (by default the x1 block size)."""
        return cost.batch_size

    def caches_x2(self, cost: Cost, n2: int, budget: float) -> bool:
        """Whether the x2 features of all blocks are kept (when they fit in half the budget)."""
        return n2 * cost.bytes_per_example <= budget / 2


METHODS: dict[str, NtkMethod] = {}
"""The registered methods by name."""


def register(cls: type[NtkMethod]) -> type[NtkMethod]:
    """Class decorator adding a method (one instance) to :data:`METHODS`."""
    if cls.name in METHODS and type(METHODS[cls.name]).__qualname__ != cls.__qualname__:
        raise ValueError(f"method: {cls.name!r} is already registered")
    METHODS[cls.name] = cls()
    return cls


def detached(params: Params) -> dict[str, torch.Tensor]:
    """``params`` without autograd history (torch.func needs none)."""
    return {name: p.detach() for name, p in params.items()}


__all__ = ["METHODS", "NtkMethod", "detached", "register"]
