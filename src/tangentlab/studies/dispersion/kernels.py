"""Per-network NTKs of many small fully connected nets at once, and the dispersion statistics of the ``dispersion``
study.

A scalar-output fully connected net with ``L = depth`` hidden layers computes, for ``l = 1, ..., L + 1``,

    z^l = m_w W^l h^{l-1} + m_b b^l,    h^0 = x,    h^l = phi(z^l),    f = z^{L+1},

with ``W^l ~ N(0, v_w)``. Its empirical NTK splits into a weight part and a bias part (Jacot et al. 2018; Hanin &
Nica 2020, arXiv 1909.05989, eq. (5)): with the backward signals ``delta^{L+1} = 1``,
``delta^l = phi'(z^l) * (m_w W^{l+1})^T delta^{l+1}``,

    K_w(x, x') = sum_l m_w^2 <delta^l(x), delta^l(x')> <h^{l-1}(x), h^{l-1}(x')>,
    K_b(x, x') = sum_l <delta^l(x), delta^l(x')>                  (bias gradients with unit scale),

and the parametrization's own NTK is ``K_w + m_b^2 K_b``. :func:`batched_dense_ntk` computes ``K_w`` and ``K_b``
for a batch of ``N`` independent nets with batched matrix products (``O(N m^2 + N m n^2)`` per layer for ``m``
inputs of width ``n``), which is what makes thousands of inits per grid point cheap; it is tested against
:func:`tangentlab.empirical_ntk` on nets built by :mod:`tangentlab.arch`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
import torch

from tangentlab import arch

Fn = Callable[[torch.Tensor], torch.Tensor]


class DenseNTK(NamedTuple):
    """Parts of the per-net NTK of N nets on m inputs.

    Attributes:
        weight_layers: (N, L + 1, m, m): ``<delta^l(x), delta^l(x')> <h^{l-1}(x), h^{l-1}(x')>`` per weight layer
            (``K_w = sum_l m_w(l)^2 weight_layers[:, l]``; :meth:`weight`).
        bias: (N, m, m): ``K_b`` with unit-scale bias gradients.
    """

    weight_layers: torch.Tensor
    bias: torch.Tensor

    def weight(self, scales: Sequence[float]) -> torch.Tensor:
        """``K_w = sum_l scales[l]^2 weight_layers[:, l]`` (``scales``: the multipliers ``m_w`` per layer)."""
        s = torch.as_tensor([float(v) ** 2 for v in scales], dtype=self.weight_layers.dtype)
        return torch.einsum("l,nlab->nab", s, self.weight_layers)


def batched_dense_ntk(
    weights: Sequence[torch.Tensor],
    biases: Sequence[torch.Tensor],
    x: torch.Tensor,
    *,
    weight_scale: Sequence[float],
    bias_scale: Sequence[float],
    phi: Fn,
    dphi: Fn,
) -> DenseNTK:
    """Per-layer weight terms and ``K_b`` (module docstring) of ``N`` fully connected scalar-output nets on ``x``.

    Args:
        weights: ``W^1, ..., W^{L+1}``, each (N, n_out, n_in) (the raw trainable tensors); the last has n_out = 1.
        biases: ``b^1, ..., b^{L+1}``, each (N, n_out).
        x: (m, n_0) inputs, shared by all nets.
        weight_scale: the multipliers ``m_w`` per layer.
        bias_scale: the multipliers ``m_b`` per layer (they enter the forward pass; ``K_b`` has unit scale).
        phi: the activation.
        dphi: its derivative.

    Returns:
        :class:`DenseNTK`; ``.weight(weight_scale)`` is ``K_w`` and ``.bias`` is ``K_b``.

    Raises:
        ValueError: for inconsistent layer counts or a readout with more than one output.
    """
    n_layers = len(weights)
    if not (len(biases) == len(weight_scale) == len(bias_scale) == n_layers) or n_layers < 1:
        raise ValueError(
            "batched_dense_ntk: expected as many biases and scales as weights (>= 1), got "
            f"{len(weights)}, {len(biases)}, {len(weight_scale)}, {len(bias_scale)}"
        )
    if weights[-1].shape[1] != 1:
        raise ValueError(f"weights: expected a scalar readout (n_out = 1), got {weights[-1].shape[1]}")
    n_nets = weights[0].shape[0]
    h = x.to(weights[0].dtype).expand(n_nets, *x.shape)  # (N, m, n_0)
    inputs: list[torch.Tensor] = []
    slopes: list[torch.Tensor] = []
    for w, b, mw, mb in zip(weights, biases, weight_scale, bias_scale, strict=True):
        inputs.append(h)
        z = torch.baddbmm((mb * b).unsqueeze(1), h, w.transpose(1, 2), alpha=mw)  # (N, m, n_out)
        slopes.append(dphi(z))
        h = phi(z)
    delta = torch.ones(n_nets, x.shape[0], 1, dtype=h.dtype, device=h.device)
    k_w = torch.zeros(n_nets, n_layers, x.shape[0], x.shape[0], dtype=h.dtype, device=h.device)
    k_b = torch.zeros(n_nets, x.shape[0], x.shape[0], dtype=h.dtype, device=h.device)
    for layer in range(n_layers - 1, -1, -1):
        dd = delta @ delta.transpose(1, 2)
        k_b += dd
        k_w[:, layer] = dd * (inputs[layer] @ inputs[layer].transpose(1, 2))
        if layer > 0:
            delta = (delta @ weights[layer]) * (weight_scale[layer] * slopes[layer - 1])
    return DenseNTK(k_w, k_b)


def layer_scales(
    parametrization: str, sigma_w2: float, sigma_b2: float, dims: Sequence[int]
) -> list[arch.Scales]:
    """The multipliers and init variances of the net ``dims[0] -> dims[1] -> ... -> dims[-1]`` (every layer with
    ``sigma_w2``, ``sigma_b2``) from :func:`tangentlab.arch.layer_scales`, the one parametrization table: the first
    layer has the role ``"input"``, the last ``"readout"``, the others ``"hidden"``. In law the forward pass is the
    same under every parametrization; the gradients (and so the NTK) differ."""
    last = len(dims) - 2
    return [
        arch.layer_scales(
            parametrization,
            "input" if i == 0 else "readout" if i == last else "hidden",
            sigma_w2**0.5,
            sigma_b2**0.5,
            fan_in,
            fan_out,
        )
        for i, (fan_in, fan_out) in enumerate(itertools.pairwise(dims))
    ]


def sample_dense_ntk(
    widths: Sequence[int],
    x: torch.Tensor,
    *,
    n_nets: int,
    sigma_w2: float,
    sigma_b2: float,
    parametrization: str,
    phi: Fn,
    dphi: Fn,
    generator: torch.Generator,
    chunk_bytes: int = 2**27,
) -> DenseNTK:
    """:class:`DenseNTK` of ``n_nets`` fresh nets ``x.shape[1] -> widths[0] -> ... -> widths[-1] -> 1``.

    Every layer (the readout too) has ``sigma_w2``, ``sigma_b2``. Nets are drawn in chunks of at most about
    ``chunk_bytes`` of weights, in a fixed order from ``generator``, so the result depends only on the arguments.
    """
    dims = [int(x.shape[1]), *(int(w) for w in widths), 1]
    per_net = 8 * sum(a * b for a, b in itertools.pairwise(dims))
    chunk = max(1, min(n_nets, chunk_bytes // per_net))
    scales = layer_scales(parametrization, sigma_w2, sigma_b2, dims)
    parts_w, parts_b = [], []
    for start in range(0, n_nets, chunk):
        n = min(chunk, n_nets - start)
        ws, bs = [], []
        for s, (fan_in, fan_out) in zip(scales, itertools.pairwise(dims), strict=True):
            sd_w = s.v_w**0.5
            sd_b = s.v_b**0.5 if s.m_b > 0 else 0.0
            ws.append(sd_w * torch.randn(n, fan_out, fan_in, generator=generator, dtype=torch.float64))
            bs.append(sd_b * torch.randn(n, fan_out, generator=generator, dtype=torch.float64))
        part = batched_dense_ntk(
            ws,
            bs,
            x,
            weight_scale=[s.m_w for s in scales],
            bias_scale=[s.m_b for s in scales],
            phi=phi,
            dphi=dphi,
        )
        parts_w.append(part.weight_layers)
        parts_b.append(part.bias)
    return DenseNTK(torch.cat(parts_w), torch.cat(parts_b))


class Dispersion(NamedTuple):
    """Statistics over inits (axis 0) of kernel values.

    Attributes:
        mean: ``E[K]``.
        ratio: ``E[K^2] / E[K]^2`` (Hanin & Nica 2020); ``= 1 + rel_std^2``.
        rel_std: ``std(K) / |E[K]|`` with the population (ddof = 0) standard deviation (Seleznova & Kutyniok 2022).
    """

    mean: np.ndarray
    ratio: np.ndarray
    rel_std: np.ndarray


def dispersion(samples: np.ndarray) -> Dispersion:
    """:class:`Dispersion` of ``samples`` (n_inits, ...) over its first axis (empirical moments)."""
    s = np.asarray(samples, dtype=np.float64)
    if s.ndim < 1 or s.shape[0] < 2:
        raise ValueError(f"samples: expected at least 2 inits along axis 0, got shape {s.shape}")
    mean = s.mean(axis=0)
    second = (s**2).mean(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = second / mean**2
        rel_std = s.std(axis=0) / np.abs(mean)
    return Dispersion(mean, ratio, rel_std)


def gaussian_mean(fn: Fn, q: float, *, width: float = 12.0, panel_nodes: int = 8) -> float:
    """``E[fn(sqrt(q) u)]`` for ``u ~ N(0, 1)`` by composite Gauss–Legendre quadrature in ``u`` on
    ``[-width, width]`` (the Gaussian tail beyond is < 1e-32).

    Panels are ``min(0.5, 0.5 / sqrt(q))`` wide in ``u`` (so half a unit or less in ``z = sqrt(q) u``, where
    sigmoid/tanh/erf change) with ``panel_nodes`` nodes each, and 0 is a panel edge (ReLU's kink). A global
    Gauss–Hermite rule with a fixed node count misses features of ``fn`` narrower than its node spacing once
    ``sqrt(q)`` is large: with 80 nodes it gave ``chi = 0.61`` instead of 1.93 for sigmoid at ``sigma_w^2 = 400``.
    """
    if q <= 0:
        return float(fn(torch.zeros(1, dtype=torch.float64))[0])
    per_side = math.ceil(width / min(0.5, 0.5 / math.sqrt(q)))
    x, w = np.polynomial.legendre.leggauss(panel_nodes)
    h = width / per_side
    left = np.arange(per_side) * h  # panels on [0, width]; mirrored for [-width, 0]
    u = (left[:, None] + h * (x[None, :] + 1) / 2).ravel()
    u = np.concatenate([-u, u])
    wu = np.tile(np.repeat(w[None, :] * h / 2, per_side, axis=0).ravel(), 2)
    dens = np.exp(-0.5 * u * u) / math.sqrt(2 * math.pi)
    vals = fn(torch.as_tensor(math.sqrt(q) * u, dtype=torch.float64))
    return float(torch.as_tensor(wu * dens, dtype=torch.float64) @ vals)


def gradient_gain(
    phi: Fn, dphi: Fn, sigma_w2: float, sigma_b2: float, *, q0: float = 1.0, q_max: float = 1e6
) -> tuple[float, float]:
    """``(q*, chi)``: the fixed point of ``q <- sigma_w2 E[phi(sqrt(q) u)^2] + sigma_b2`` (u ~ N(0, 1)) reached from
    ``q0``, and ``chi = sigma_w2 E[phi'(sqrt(q*) u)^2]`` (Poole et al. 2016; Schoenholz et al. 2017).

    ``chi < 1``: ordered phase; ``chi = 1``: edge of chaos; ``chi > 1``: chaotic. For ReLU, ``chi = sigma_w2 / 2``
    for every q; for sigmoid ``chi <= sigma_w2 / 16`` (``phi' <= 1/4``), and at ``sigma_b = 0`` the edge of chaos
    lies at ``sigma_w2 ~ 103`` (tested against an independent adaptive integral). Expectations by
    :func:`gaussian_mean`; at most 2000 iterations (q is capped at ``q_max``).
    """
    q = float(q0)
    for _ in range(2000):
        new = min(sigma_w2 * gaussian_mean(lambda z: phi(z) ** 2, q) + sigma_b2, q_max)
        done = abs(new - q) <= 1e-12 * max(1.0, q)
        q = new
        if done:
            break
    chi = sigma_w2 * gaussian_mean(lambda z: dphi(z) ** 2, q)
    return q, chi


KERNELS: tuple[str, ...] = ("ntk", "standard", "ntk_unit_bias", "bias")


def kernel_variants(
    parts: DenseNTK, fan_ins: Sequence[int], sigma_w2: float, sigma_b2: float
) -> dict[str, torch.Tensor]:
    """The NTKs the study records, from one set of nets (each (N, m, m)):

    - ``"ntk"``: NTK parametrization's own NTK, ``K_w^ntk + sigma_b2 K_b`` with ``K_w^ntk = sum_l (sigma_w2 /
      fan_in_l) weight_layers[l]`` (at ``sigma_b = 0`` just the weight part, Hanin & Nica's ``K_w``);
    - ``"standard"``: standard parametrization's own NTK, ``sum_l weight_layers[l] + K_b`` (its biases are trained
      even at ``sigma_b = 0``; Seleznova & Kutyniok's code);
    - ``"ntk_unit_bias"``: ``K_w^ntk + K_b``, bias gradients with unit scale (Hanin & Nica's ``K = K_w + K_b``);
    - ``"bias"``: ``K_b`` alone.
    """
    dims = [*fan_ins, 1]
    k_ntk_w = parts.weight([s.m_w for s in layer_scales("ntk", sigma_w2, sigma_b2, dims)])
    return {
        "ntk": k_ntk_w + sigma_b2 * parts.bias,
        "standard": parts.weight([s.m_w for s in layer_scales("standard", sigma_w2, sigma_b2, dims)])
        + parts.bias,
        "ntk_unit_bias": k_ntk_w + parts.bias,
        "bias": parts.bias,
    }
