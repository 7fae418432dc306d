"""The ``ntk_update`` study's numerics: the NTK of many deep ReLU nets at one input, its exact change after one SGD
step, and the fit of that change against ``beta = depth / width``.

The nets (Hanin & Nica 2020, arXiv 1909.05989, Sec. 2): ``depth`` hidden ReLU layers of ``width`` units and a scalar
readout, ``z^l = sqrt(2 / n_{l-1}) W^l h^{l-1} + b^l`` with ``W^l ~ N(0, 1)`` (He initialisation in NTK
parametrization) and biases ``b^l = 0`` at init, trainable with unit-scale gradients, ``h^l = ReLU(z^l)``,
``f = z^{depth+1}``. The NTK at ``x`` is ``K = ||grad_theta f(x)||^2`` over all weights and biases.

One SGD step with batch ``{(x, y)}`` on ``(1/2) (f(x) - y)^2`` with step ``lambda`` moves
``theta -> theta - lambda (f(x) - y) grad_theta f(x)``; the kernel's change ``Delta K = K(theta') - K(theta)`` is
computed exactly (both gradients by autograd, not a first-order expansion). For ``N`` nets the parameters are
batched tensors ``(N, n_out, n_in)``; since the nets are independent, ``grad`` of ``sum_k f_k`` gives every net's
own gradient.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch


class Nets(NamedTuple):
    """``N`` independent nets as batched parameters.

    Attributes:
        weights: per layer (N, n_out, n_in), standard normal at init.
        biases: per layer (N, n_out), zero at init.
    """

    weights: list[torch.Tensor]
    biases: list[torch.Tensor]


def sample_nets(
    n_nets: int,
    input_dim: int,
    width: int,
    depth: int,
    generator: torch.Generator,
    dtype: torch.dtype = torch.float64,
) -> Nets:
    """``n_nets`` nets with ``depth`` hidden layers of ``width`` units (module docstring), drawn from ``generator``."""
    dims = [input_dim, *([width] * depth), 1]
    weights = [
        torch.randn(n_nets, d_out, d_in, generator=generator, dtype=dtype)
        for d_in, d_out in itertools.pairwise(dims)
    ]
    biases = [torch.zeros(n_nets, d_out, dtype=dtype) for d_out in dims[1:]]
    return Nets(weights, biases)


def outputs(nets: Nets, x: torch.Tensor) -> torch.Tensor:
    """``f(x)`` of every net, shape (N,), for one input ``x`` of shape (input_dim,)."""
    h = x.to(nets.weights[0].dtype).expand(nets.weights[0].shape[0], -1)
    last = len(nets.weights) - 1
    for i, (w, b) in enumerate(zip(nets.weights, nets.biases, strict=True)):
        z = math.sqrt(2.0 / w.shape[2]) * torch.einsum("noi,ni->no", w, h) + b
        h = z if i == last else torch.relu(z)
    return h[:, 0]


def kernel_and_gradient(nets: Nets, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """``(f(x), K(x, x), grad_theta f(x))`` of every net: (N,), (N,), gradients shaped like the parameters."""
    params = [p.detach().requires_grad_(True) for p in (*nets.weights, *nets.biases)]
    k = len(nets.weights)
    f = outputs(Nets(params[:k], params[k:]), x)
    grads = list(torch.autograd.grad(f.sum(), params))
    kernel = sum(g.reshape(g.shape[0], -1).pow(2).sum(dim=1) for g in grads)
    assert isinstance(kernel, torch.Tensor)
    return f.detach(), kernel.detach(), grads


def one_step_kernel_change(
    nets: Nets, x: torch.Tensor, y: float, learning_rate: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(K, Delta K)`` of every net: the NTK at ``x`` and its exact change after one SGD step on ``(x, y)``.

    Args:
        nets: the nets at init.
        x: (input_dim,) the input (the step's batch and the kernel's argument).
        y: the target.
        learning_rate: the step ``lambda``.
    """
    f, kernel, grads = kernel_and_gradient(nets, x)
    k = len(nets.weights)
    scale = (learning_rate * (f - y)).reshape(-1)
    moved = [
        p.detach() - scale.reshape(-1, *([1] * (p.ndim - 1))) * g
        for p, g in zip((*nets.weights, *nets.biases), grads, strict=True)
    ]
    _, after, _ = kernel_and_gradient(Nets(moved[:k], moved[k:]), x)
    return kernel, after - kernel


def first_order_kernel_change(nets: Nets, x: torch.Tensor, y: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(K, D)`` of every net with ``D = d Delta K / d lambda`` at ``lambda = 0``: the first SGD update per unit step.

    ``Delta K(lambda) = ||g(theta - lambda r g)||^2 - ||g||^2`` with ``g = grad_theta f(x)`` and ``r = f(x) - y``, so
    ``D = -2 r g^T H g`` with ``H`` the Hessian of ``f(x)`` in the parameters, computed as a Hessian-vector product
    (double backward). Exact for small steps: ``Delta K = lambda D + O(lambda^2)``; the ``O(lambda^2)`` part is
    dominated by the rare nets with huge kernels, so the mean of the exact ``Delta K`` at a finite step is not linear
    in the step.
    """
    params = [p.detach().requires_grad_(True) for p in (*nets.weights, *nets.biases)]
    k = len(nets.weights)
    f = outputs(Nets(params[:k], params[k:]), x)
    grads = torch.autograd.grad(f.sum(), params, create_graph=True)
    v = [g.detach() for g in grads]
    kernel = sum(g.reshape(g.shape[0], -1).pow(2).sum(dim=1) for g in v)
    directional = sum((g * u).sum() for g, u in zip(grads, v, strict=True))  # sum_k g_k . v_k
    assert isinstance(directional, torch.Tensor) and isinstance(kernel, torch.Tensor)
    hv = torch.autograd.grad(directional, params, allow_unused=True)
    ghg = sum((h * u).reshape(u.shape[0], -1).sum(dim=1) for h, u in zip(hv, v, strict=True) if h is not None)
    assert isinstance(ghg, torch.Tensor)
    return kernel, (-2.0 * (f.detach() - y) * ghg).detach()


class BetaFit(NamedTuple):
    """``log R = p log d + q log n + a beta + c`` (natural logs), ``R = E[Delta K] / E[K]``, ``beta = d / n``.

    Attributes:
        rate: ``a``, the exponential rate in ``beta``.
        depth_power: ``p`` (None when fixed by the model).
        width_power: ``q`` (None when fixed by the model).
        intercept: ``c``.
    """

    rate: float
    depth_power: float | None
    width_power: float | None
    intercept: float


def fit_beta(
    depth: Sequence[float] | np.ndarray,
    width: Sequence[float] | np.ndarray,
    ratio: Sequence[float] | np.ndarray,
    *,
    prefactor: str = "theorem",
    log_se: Sequence[float] | np.ndarray | None = None,
) -> BetaFit:
    """Least squares of ``log R`` against ``beta`` with a polynomial prefactor.

    Args:
        depth: hidden layers ``d`` of each point.
        width: widths ``n`` of each point.
        ratio: ``R = E[Delta K] / E[K]`` of each point (positive).
        prefactor: ``"theorem"``: ``R = C d beta exp(a beta)`` (Hanin & Nica's Theorem 2 as read here, with the
            input dimension fixed), fitting ``log R - log(d beta) = a beta + c``; ``"free"``: ``R = C d^p n^q
            exp(a beta)``, fitting ``p``, ``q``, ``a`` and ``c`` (needs two or more widths and depths).
        log_se: standard errors of ``log R`` per point: weighted least squares with weights ``1 / log_se``
            (the mean of a heavy-tailed update is far noisier at large ``beta``); None weighs points equally.

    Raises:
        ValueError: for non-positive ratios, mismatched lengths, too few points or an unknown prefactor.
    """
    d, n, r = (np.asarray(v, dtype=np.float64) for v in (depth, width, ratio))
    if not (d.shape == n.shape == r.shape):
        raise ValueError(f"depth, width, ratio: expected the same length, got {d.size}, {n.size}, {r.size}")
    if not np.all(np.isfinite(r) & (r > 0)):
        raise ValueError(f"ratio: expected finite positive values for a log fit, got {r.tolist()}")
    beta = d / n
    w = np.ones_like(r) if log_se is None else 1.0 / np.asarray(log_se, dtype=np.float64)
    if w.shape != r.shape or not np.all(np.isfinite(w) & (w > 0)):
        raise ValueError(f"log_se: expected one finite positive value per point, got {log_se!r}")
    if prefactor == "theorem":
        if np.unique(beta).size < 2:
            raise ValueError("depth, width: expected at least two distinct beta = depth / width")
        a, c = np.polyfit(beta, np.log(r) - np.log(d * beta), 1, w=w)
        return BetaFit(float(a), None, None, float(c))
    if prefactor == "free":
        design = np.stack([np.log(d), np.log(n), beta, np.ones_like(beta)], axis=1)
        if np.linalg.matrix_rank(design) < 4:
            raise ValueError("depth, width: the free fit needs points that separate log d, log n and beta")
        p, q, a, c = np.linalg.lstsq(design * w[:, None], np.log(r) * w, rcond=None)[0]
        return BetaFit(float(a), float(p), float(q), float(c))
    raise ValueError(f"prefactor: expected 'theorem' or 'free', got {prefactor!r}")


__all__ = [
    "BetaFit",
    "Nets",
    "first_order_kernel_change",
    "fit_beta",
    "kernel_and_gradient",
    "one_step_kernel_change",
    "outputs",
    "sample_nets",
]
