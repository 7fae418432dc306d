"""Monte Carlo kernels: mean and spread of the empirical NNGP and NTK over random initialisations.

This is the finite-width side of the law that ties a description to its kernels (DESIGN.md): for a description
``net`` (anything with ``net.build(in_shape, *, parametrization, seed, dtype, device)``, e.g. a
:mod:`tangentlab.arch` description), ``net.kernel(x1, x2, parametrization=p)`` is the limit, as widths grow, of
``monte_carlo_kernel(net, x1, x2, parametrization=p, ...).ntk`` / ``.nngp``.

Per seed ``s`` the network ``net.build(..., seed=seed + s)`` gives

- ``ntk_s = empirical_ntk(model, x1, x2, outputs="trace") / n_outputs``: the scalar-per-output NTK (the trace over
  the ``n_outputs`` i.i.d. outputs divided by their number, so nets with several outputs can be used too);
- ``nngp_s = nngp_gain * empirical_nngp(model, x1, x2) + nngp_offset``: the covariance of one output given the
  readout features ``a`` (``empirical_nngp`` is their Gram ``<a(x1), a(x2)> / width``; a built network records its
  readout's ``nngp_gain = m_w^2 v_w fan_in`` and ``nngp_offset = m_b^2 v_b``; both default to 1 and 0 for other
  modules). Its expectation over seeds is exactly ``E[f(x1) f(x2)]``, with far less variance than the product of
  outputs (a Rao–Blackwellisation over the readout weights).

The standard deviation is over seeds (``ddof=1``) and the standard error of the mean is ``std / sqrt(n_seeds)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, cast

import torch

from tangentlab.kernels import empirical_nngp, empirical_ntk


@dataclass(frozen=True)
class MonteCarloKernel:
    """Seed statistics of the scalar-per-output empirical kernels; all tensors (n1, n2) float64.

    Attributes:
        nngp: mean over seeds of the output covariance given the readout features.
        ntk: mean over seeds of the empirical NTK (trace over outputs / number of outputs).
        nngp_std, ntk_std: elementwise standard deviations over seeds (``ddof=1``).
        nngp_sem, ntk_sem: standard errors of the means, ``std / sqrt(n_seeds)``.
        n_seeds: number of networks averaged.
    """

    nngp: torch.Tensor
    ntk: torch.Tensor
    nngp_std: torch.Tensor
    ntk_std: torch.Tensor
    nngp_sem: torch.Tensor
    ntk_sem: torch.Tensor
    n_seeds: int


class _Welford:
    """Running mean and sum of squared deviations (Welford 1962), in float64."""

    def __init__(self) -> None:
        self.count = 0
        self.mean: torch.Tensor | None = None
        self.m2: torch.Tensor | None = None

    def add(self, value: torch.Tensor) -> None:
        value = value.detach().to(torch.float64)
        self.count += 1
        if self.mean is None or self.m2 is None:
            self.mean, self.m2 = value.clone(), torch.zeros_like(value)
            return
        delta = value - self.mean
        self.mean += delta / self.count
        self.m2 += delta * (value - self.mean)

    def result(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        assert self.mean is not None and self.m2 is not None
        std = torch.sqrt(self.m2 / max(self.count - 1, 1))
        return self.mean, std, std / math.sqrt(self.count)


def monte_carlo_kernel(
    net: Any,
    x1: torch.Tensor,
    x2: torch.Tensor | None = None,
    *,
    n_seeds: int,
    parametrization: str = "ntk",
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
    method: str = "auto",
    batch_size: int | None = None,
    memory_budget: int | None = None,
) -> MonteCarloKernel:
    """Mean, standard deviation and standard error over seeds of the empirical NNGP and NTK of ``net``'s builds.

    Args:
        net: a description with ``build(in_shape, *, parametrization, seed, dtype, device)`` (e.g.
            ``tangentlab.arch.serial(...)``).
        x1: (n1, *in_shape) inputs.
        x2: (n2, *in_shape) inputs; None means ``x1``.
        n_seeds: number of networks (seeds ``seed, ..., seed + n_seeds - 1``); at least 2.
        parametrization: passed to ``net.build``.
        seed: first seed.
        dtype: dtype of the networks and inputs (float64 by default; statistics are float64 always).
        device: device of the networks and inputs.
        method: ``empirical_ntk``'s algorithm.
        batch_size: ``empirical_ntk``'s batch size.
        memory_budget: bytes the computation may hold at once besides its result: the working set of one block of
            inputs (a pair of blocks for ``empirical_ntk``); None means
            :data:`tangentlab.kernels.DEFAULT_MEMORY_BUDGET` (2 GiB); passed to ``empirical_ntk`` per seed.

    Returns:
        :class:`MonteCarloKernel`.
    """
    if isinstance(n_seeds, bool) or not isinstance(n_seeds, int) or n_seeds < 2:
        raise ValueError(f"monte_carlo_kernel: n_seeds={n_seeds!r} is invalid; expected an int >= 2")
    if not callable(getattr(net, "build", None)):
        raise ValueError(f"monte_carlo_kernel: net={net!r} is invalid; expected a description with .build()")
    a = x1.detach().to(dtype=dtype, device=device)
    b = None if x2 is None else x2.detach().to(dtype=dtype, device=device)
    in_shape = tuple(a.shape[1:])
    nngp_stats, ntk_stats = _Welford(), _Welford()
    for s in range(n_seeds):
        model = net.build(
            in_shape, parametrization=parametrization, seed=seed + s, dtype=dtype, device=device
        )
        with torch.no_grad():
            n_outputs = int(model(a[:1]).shape[-1])
        ntk = empirical_ntk(
            model,
            a,
            b,
            outputs="trace",
            method=cast(Any, method),
            batch_size=batch_size,
            memory_budget=memory_budget,
        )
        ntk_stats.add(ntk / n_outputs)
        gain = float(getattr(model, "nngp_gain", 1.0))
        offset = float(getattr(model, "nngp_offset", 0.0))
        nngp_stats.add(gain * empirical_nngp(model, a, b) + offset)
    nngp, nngp_std, nngp_sem = nngp_stats.result()
    ntk, ntk_std, ntk_sem = ntk_stats.result()
    return MonteCarloKernel(nngp, ntk, nngp_std, ntk_std, nngp_sem, ntk_sem, n_seeds)
