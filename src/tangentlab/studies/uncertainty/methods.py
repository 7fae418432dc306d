"""Predictive distributions compared by the ``uncertainty`` study, the input shifts, and post-hoc calibration.

Every method gives, on a set of evaluation inputs, a per-output Gaussian over the network function (``mean`` and
``variance``, (m, O)) and, for the deep ensemble, its members' outputs. Regression adds an observation-noise variance;
classification maps outputs to probabilities with ``p = E_f softmax(f / T)`` (the probit approximation for a
Gaussian, the average over ensemble members), the temperature ``T`` fitted on the validation split (temperature scaling, Guo et al.
2017, arXiv 1706.04599).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from tangentlab import metrics, predict

ShiftKind = Literal["noise", "rotate", "roll", "gap"]
#: Default size of each shift: noise std (standardised input units), rotation degrees, roll positions, gap half-width.
SHIFT_SCALE: dict[str, float] = {"noise": 1.0, "rotate": 45.0, "roll": 20.0, "gap": 0.3}
#: Grid of temperatures (classification) searched on validation NLL.
TEMPERATURES: tuple[float, ...] = tuple(float(10.0**e) for e in np.linspace(-4, 1, 101))
#: Grid of noise variances, relative to the training-target variance, searched on validation NLL.
NOISE_GRID: tuple[float, ...] = tuple(float(10.0**e) for e in np.linspace(-5, 1, 121))
#: Evidence grid for the NNGP amplitude 1/α (the prior is K/α) — same as Laplace's default.
EVIDENCE_GRID: tuple[float, ...] = tuple(float(10.0**e) for e in np.linspace(-4, 4, 65))


@dataclass(frozen=True)
class Predictive:
    """One method's marginal predictive on the evaluation inputs.

    Attributes:
        mean: (m, O) predictive mean of the network outputs.
        variance: (m, O) variance of the network outputs (function uncertainty; 0 for a single net).
        members: (M, m, O) outputs of the ensemble members, or None for Gaussian methods.
        noise: observation-noise variance from the method itself (evidence), or None to fit it on validation.
    """

    mean: torch.Tensor
    variance: torch.Tensor
    members: torch.Tensor | None = None
    noise: float | None = None

    def take(self, idx: torch.Tensor) -> Predictive:
        """The predictive on a subset of the evaluation inputs."""
        members = None if self.members is None else self.members[:, idx]
        return Predictive(self.mean[idx], self.variance[idx], members, self.noise)


def shifted_inputs(kind: str, x: torch.Tensor, scale: float, seed: int) -> torch.Tensor:
    """Inputs moved off the training distribution.

    ``"noise"``: ``x + scale * eps`` with ``eps ~ N(0, I)`` from ``seed``; ``"rotate"``: square images (flattened
    d = s²) rotated by ``scale`` degrees (bilinear, border padding); ``"roll"``: circular shift by ``scale``
    positions along the last axis (MNIST-1D signals). ``"gap"`` is not handled here (it splits the test set).

    Raises:
        ValueError: for an unknown kind, or ``"rotate"`` on inputs that are not square images.
    """
    if kind == "noise":
        g = torch.Generator().manual_seed(seed)
        return x + scale * torch.randn(x.shape, generator=g, dtype=x.dtype)
    if kind == "roll":
        return torch.roll(x, shifts=round(scale), dims=-1)
    if kind == "rotate":
        d = x[0].numel()
        side = round(math.sqrt(d))
        if side * side != d:
            raise ValueError(f"params.shift: 'rotate' needs square images, got inputs of {d} features")
        theta = math.radians(scale)
        rot = torch.tensor(
            [[math.cos(theta), -math.sin(theta), 0.0], [math.sin(theta), math.cos(theta), 0.0]], dtype=x.dtype
        )
        img = x.reshape(x.shape[0], 1, side, side)
        grid = torch.nn.functional.affine_grid(
            rot.expand(x.shape[0], 2, 3), list(img.shape), align_corners=False
        )
        out = torch.nn.functional.grid_sample(img, grid, padding_mode="border", align_corners=False)
        return out.reshape(x.shape)
    raise ValueError(f"params.shift: expected one of noise, rotate, roll, gap, got {kind!r}")


def ntk_gp(nngp: torch.Tensor, ntk: torch.Tensor, y: torch.Tensor, tr: slice, ev: slice) -> Predictive:
    """NTK-GP at ``t = ∞``: the distribution over random inits of infinitely wide nets trained to convergence by
    gradient flow on MSE (Lee et al. 2019, arXiv 1902.06720, eqs. 15-16)."""
    pred = predict.gradient_descent_mse_ensemble(
        y,
        nngp_train_train=nngp[tr, tr],
        ntk_train_train=ntk[tr, tr],
        nngp_test_train=nngp[ev, tr],
        ntk_test_train=ntk[ev, tr],
        nngp_test_test=nngp[ev, ev],
    )
    assert pred.variance is not None
    var = pred.variance.clamp_min(0)[:, None].expand_as(pred.mean)
    return Predictive(pred.mean, var)


def nngp_posterior(nngp: torch.Tensor, y: torch.Tensor, tr: slice, ev: slice) -> tuple[Predictive, float]:
    """NNGP posterior (Lee et al. 2018, arXiv 1711.00165) with amplitude ``1/α`` and noise ``σ²`` chosen by the GP
    evidence ``Σ_o log N(y_o; 0, K/α + σ² I)`` (type-II maximum likelihood); returns it and the amplitude."""
    k = nngp[tr, tr]
    evals, evecs = torch.linalg.eigh(k)
    evals = evals.clamp_min(0)
    proj = (evecs.T @ y).T ** 2
    rms = float(y.pow(2).mean().sqrt()) or 1.0
    a_grid = torch.tensor(EVIDENCE_GRID, dtype=torch.float64)
    s_grid = rms * torch.tensor([10.0**e for e in np.linspace(-3, 1, 49)], dtype=torch.float64)
    a, s = predict.maximize_evidence(
        lambda aa, ss: predict.function_space_evidence(evals, proj, aa, ss), a_grid, s_grid
    )
    pred = predict.gp_inference(k / a, y, nngp[ev, tr] / a, nngp[ev, ev] / a, noise=s * s)
    assert pred.variance is not None
    var = pred.variance.clamp_min(0)[:, None].expand_as(pred.mean)
    return Predictive(pred.mean, var, noise=s * s), 1.0 / a


def laplace(
    net: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    x_eval: torch.Tensor,
    prior_mean: dict[str, torch.Tensor] | None,
) -> tuple[Predictive, predict.LinearizedLaplace]:
    """Linearized Laplace at the trained net, α and σ by evidence maximisation (grid, then L-BFGS)."""
    la = predict.LinearizedLaplace(net, prior_mean=prior_mean).fit(x, y)
    la.optimize_prior_precision(method="gradient")
    pred = la.predict(x_eval)
    assert pred.variance is not None
    mean = pred.mean.reshape(x_eval.shape[0], -1)
    var = pred.variance.clamp_min(0)[:, None].expand_as(mean)
    return Predictive(mean, var, noise=la.sigma_noise_**2), la


def ensemble(outputs: torch.Tensor) -> Predictive:
    """Deep ensemble (Lakshminarayanan et al. 2017, arXiv 1612.01474) from members' outputs (M, m, O)."""
    var = outputs.var(0, unbiased=False) if outputs.shape[0] > 1 else torch.zeros_like(outputs[0])
    return Predictive(outputs.mean(0), var, members=outputs)


def single_net(outputs: torch.Tensor) -> Predictive:
    """One trained net: its outputs with no function uncertainty."""
    return Predictive(outputs, torch.zeros_like(outputs))


def probabilities(p: Predictive, temperature: float) -> torch.Tensor:
    """Class probabilities at temperature ``T``: the average of ``softmax(f_k / T)`` over ensemble members, else the
    probit approximation of ``E softmax(f / T)`` under ``f ~ N(mean, var)``,
    ``softmax(mean / sqrt(T² + π var / 8))`` (MacKay 1992; Gibbs 1997; the ``probit`` link of laplace-torch)."""
    if p.members is not None:
        return torch.softmax(p.members / temperature, -1).mean(0)
    return torch.softmax(p.mean / torch.sqrt(temperature**2 + math.pi / 8 * p.variance), -1)


def fit_temperature(p: Predictive, labels: torch.Tensor) -> float:
    """The temperature of :data:`TEMPERATURES` with the lowest categorical NLL on ``labels``."""
    scores = [_safe_nll(probabilities(p, t), labels) for t in TEMPERATURES]
    return TEMPERATURES[int(np.argmin(scores))]


def _safe_nll(probs: torch.Tensor, labels: torch.Tensor) -> float:
    picked = probs.gather(1, labels[:, None].long())[:, 0]
    return float(-torch.log(picked.clamp_min(1e-300)).mean())


def fit_noise(p: Predictive, y: torch.Tensor) -> float:
    """The noise variance of :data:`NOISE_GRID` (times the target variance) with the lowest Gaussian NLL on ``y``."""
    scale = float(y.var()) or 1.0
    scores = [metrics.gaussian_nll(p.mean, p.variance + s * scale, y) for s in NOISE_GRID]
    return NOISE_GRID[int(np.argmin(scores))] * scale
