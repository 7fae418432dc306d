"""Study ``ntk_update``: does the NTK's first SGD update grow exponentially in depth/width (Hanin & Nica 2020)?

Claim tested (Hanin & Nica 2020, "Finite depth and width corrections to the neural tangent kernel", ICLR 2020,
arXiv 1909.05989, Theorem 2 and abstract): for deep ReLU nets of depth ``d`` and hidden width ``n``, the mean of the
NTK's change after one SGD step, relative to the mean NTK, ``E[Delta K(x, x)] / E[K(x, x)]``, grows exponentially in
``beta = d / n`` — as we read Theorem 2, ``≃ (d beta / n_0) exp(5 beta)`` up to universal constants — so deep and
wide nets are not frozen even when very wide, unlike nets of fixed depth, whose kernel freezes as width grows.
Operationalised here: ``R = E[D] / E[K]`` with ``D = d Delta K / d lambda`` at ``lambda = 0`` (the update per unit
step; ``Delta K = lambda D + O(lambda^2)``), fitted as ``log |R| - log(d beta) = a beta + c`` over every
(width, depth) point; the claim holds when ``a`` is positive with its bootstrap interval and consistent with 5.
A second fit frees the polynomial prefactor (``|R| = C d^p n^q exp(a beta)``). The exact prefactor and learning-rate
normalisation of Theorem 2 were not recovered here (/work/shared/PAPERS.md records only the NTK's second moment): the
exponent is the claim. Kept apart from the ``dispersion`` study so that its runs keep their identities.

One run (one grid point: ``width``, ``beta``, seed):

1. ``depth = max(1, round(beta * width))`` hidden ReLU layers of ``width`` units, scalar readout, He initialisation in
   NTK parametrization (``z = sqrt(2 / fan_in) W h + b``, ``W ~ N(0, 1)``, ``b = 0`` at init with unit-scale
   gradients; :mod:`tangentlab.studies.ntk_update.numerics`); ``n_nets`` nets from the run's seed.
2. The input: the first training input of ``config.data``, rescaled to ``||x||^2 = input dim``; target ``y = 0``
   (the part of ``D`` linear in ``y`` has zero mean by the readout's sign symmetry).
3. Per net: ``K = ||grad_theta f(x)||^2`` and ``D = -2 (f(x) - y) g^T H g`` (a Hessian-vector product), exact to
   first order in the step; tested against the eNTK of an :mod:`tangentlab.arch` net recomputed after an explicit
   :func:`tangentlab.train.fit` SGD step.
4. Metrics: ``beta`` and ``depth`` as built, ``mean_K``, ``mean_D``, ``ratio = mean_D / mean_K`` (negative: on
   average one step shrinks the kernel at the input it was taken on), ``second_moment_ratio`` ``E[K^2]/E[K]^2`` of
   the same nets (the dispersion that Theorem 1 puts at ``exp(5 beta)``). Artifacts: ``K`` and ``D`` per net, for
   the report's bootstrap.
"""

from __future__ import annotations

import math
import time
from typing import ClassVar

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt

from tangentlab.runner.config import RunConfig
from tangentlab.studies import register
from tangentlab.studies._base import MetricValue, RunOutput, Study
from tangentlab.studies.ntk_update import numerics

#: Parameters per chunk of nets (weights x nets) held at once; the double backward keeps a few copies.
CHUNK_PARAMS = 4_000_000


class NtkUpdateParams(BaseModel):
    """Parameters of the ``ntk_update`` study.

    Attributes:
        width: units of every hidden layer (n).
        beta: depth / width; the net has ``max(1, round(beta * width))`` hidden layers.
        n_nets: independent inits per run (seeds are pooled by the report).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    width: PositiveInt = 32
    beta: PositiveFloat = 0.25
    n_nets: int = Field(default=1000, ge=2)


def depth_of(p: NtkUpdateParams) -> int:
    """Hidden layers of a grid point: ``max(1, round(beta * width))``."""
    return max(1, round(p.beta * p.width))


@register
class NtkUpdateStudy(Study):
    """The NTK's first SGD update against beta = depth / width (Hanin & Nica 2020); see the module docstring."""

    name: ClassVar[str] = "ntk_update"
    title: ClassVar[str] = "The NTK's first SGD update: exponential in depth/width?"
    citation: ClassVar[str] = (
        "Hanin & Nica 2020, Finite Depth and Width Corrections to the Neural Tangent Kernel (ICLR 2020, "
        "arXiv 1909.05989)"
    )
    claim: ClassVar[str] = (
        "For ReLU nets of depth d and width n (He initialisation, NTK parametrization), the mean of the NTK's change "
        "after one SGD step relative to the mean NTK, E[ΔK(x,x)]/E[K(x,x)], grows exponentially in β = d/n — "
        "≃ (dβ/n₀)·exp(5β) up to universal constants (Theorem 2, as read here) — while at fixed depth it vanishes "
        "as width grows. Tested as: log|R| − log(dβ) = aβ + c with a > 0, compared with 5."
    )
    Params: ClassVar[type[BaseModel]] = NtkUpdateParams
    # its nets are sampled in batches by its own float64 recursion on the CPU (studies/ntk_update)
    cpu_only: ClassVar[bool] = True
    sections: ClassVar[frozenset[str]] = frozenset({"data"})

    def run(self, config: RunConfig, *, device: str = "cpu") -> RunOutput:
        """Sample ``n_nets`` nets at one (width, beta) and measure their NTK and its first-order SGD update."""
        start = time.perf_counter()
        p = NtkUpdateParams.model_validate(config.params)
        depth = depth_of(p)
        x = config.data.load().x_train[0].reshape(-1).to(torch.float64)
        if float(x.norm()) == 0:
            raise ValueError("data: the first training input is zero; the study needs a non-zero input")
        x = x / x.norm() * math.sqrt(x.numel())
        generator = torch.Generator().manual_seed(int(config.seed))
        chunk = max(1, CHUNK_PARAMS // (depth * p.width * p.width + x.numel() * p.width))
        kernels, updates = [], []
        for begin in range(0, p.n_nets, chunk):
            nets = numerics.sample_nets(min(chunk, p.n_nets - begin), x.numel(), p.width, depth, generator)
            k, d = numerics.first_order_kernel_change(nets, x, 0.0)
            kernels.append(k)
            updates.append(d)
        kern = torch.cat(kernels).numpy()
        upd = torch.cat(updates).numpy()
        mean_k, mean_d = float(kern.mean()), float(upd.mean())
        metrics: dict[str, MetricValue] = {
            "depth": depth,
            "beta_built": depth / p.width,
            "mean_K": mean_k,
            "mean_D": mean_d,
            "ratio": mean_d / mean_k,
            "second_moment_ratio": float(np.mean(kern**2) / mean_k**2),
            "seconds": time.perf_counter() - start,
        }
        return RunOutput(metrics=metrics, artifacts={"K": kern, "D": upd})


__all__ = ["NtkUpdateParams", "NtkUpdateStudy", "depth_of"]
