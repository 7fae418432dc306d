"""Study ``output_variance``: does NTK theory predict how much a trained net's output varies from init to init?

Claim tested (Seleznova & Kutyniok 2021, "Analyzing finite neural networks: can we trust neural tangent kernel
theory?", MSML 2021, arXiv 2012.04477, Sec. 5): in the NTK regime the output of a net trained by gradient descent on
MSE is a Gaussian process over random inits whose variance follows from the NNGP ``K`` and the NTK ``Theta``
(the NTK-GP of Lee et al. 2019, :func:`tangentlab.predict.gradient_descent_mse_ensemble`):

    Var[f_t(x)] = K(x, x) + M_t K_XX M_t^T - 2 M_t K_Xx,     M_t = Theta_xX Theta^-1 (I - exp(-eta t Theta / n)),

and this framework describes finite nets where NTK theory holds, the ordered phase (and shallow nets), but not deep
nets at the edge of chaos (EOC) or in the chaotic phase, where the NTK is random at init and moves in training.
Operationalised: the ratio of the ensemble's variance of test outputs after ``steps`` of full-batch GD to the
NTK-GP's at the same step, per depth and phase (:mod:`tangentlab.studies.output_variance.report`).

One run (one grid point: ``activation``, ``sigma_w2``, ``depth``; one seed = one ensemble):

1. Data from :func:`tangentlab.data.load` (float64; a scalar regression target, z-scored with the training mean and
   std).
2. Nets (:func:`description`): ``depth`` hidden ``Dense`` layers with the activation, a ``Dense(1)`` readout, every
   layer ``sigma_w^2 = sigma_w2``, ``sigma_b^2 = sigma_b2``, in ``parametrization`` (NTK by default). Hidden width
   ``width``; at ``depth: 1`` it is ``control_width`` instead — these runs are the positive control (one hidden layer,
   wide: the NTK-GP must describe them; a one-hidden-layer net has no ``width x width`` weight, so a wide one is
   cheap) and are left out of the depth fits.
3. The infinite-width NNGP and NTK of the description on (test, train), one GD step
   ``eta = lr_fraction * n / lambda_max(Theta)`` for all members, and the NTK-GP for *discrete* GD at ``steps`` and at
   convergence (:func:`tangentlab.studies.ensemble.numerics.discrete_gd_kernels`: exact for ``t`` steps of GD).
4. ``ensemble_size`` nets (seeds ``1000 * seed + k``, built by :mod:`tangentlab.arch`) trained together by
   full-batch GD for ``steps`` steps (:func:`tangentlab.studies.output_variance.training.train_stack`: batched
   matrix products, tested against :func:`tangentlab.train.fit`).
5. Metrics: ``var_ratio`` = mean over test points of ``Var_k f_T`` over mean of the NTK-GP variance; its paired
   (control-variate) version ``var_ratio_paired`` (each member paired with the infinite-NTK linearized prediction
   from its own init outputs, :func:`~tangentlab.studies.ensemble.numerics.distances`; exact in law, with a Monte
   Carlo error that vanishes as the net approaches its infinite-width linearization); ``init_var_ratio`` (the same
   at init against the NNGP, a check of the init law); ``pred_var_ratio_inf`` (the NTK-GP variance at ``steps`` over
   that at convergence); ``train_loss_ratio``; ``chi`` (the phase, as in the ``dispersion`` study). Members that
   diverge are dropped and counted (``n_diverged``). Artifacts ``f`` (K, m) final test outputs, ``g``, ``c`` (their
   pairing terms), ``sigma2`` (m,) the NTK-GP variance, for the report's bootstrap over members.
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat, PositiveFloat, PositiveInt

from tangentlab import arch, empirical_nngp, predict
from tangentlab.runner.config import RunConfig
from tangentlab.studies import register
from tangentlab.studies._base import MetricValue, RunOutput, Study
from tangentlab.studies._sections import finite_or_none
from tangentlab.studies.dispersion import ACTIVATIONS
from tangentlab.studies.dispersion.kernels import gradient_gain
from tangentlab.studies.ensemble import numerics
from tangentlab.studies.output_variance.training import stack_dense, train_stack

CONTROL_DEPTH = 1


class OutputVarianceParams(BaseModel):
    """Parameters of the ``output_variance`` study.

    Attributes:
        activation: ``"relu"``, ``"tanh"``, ``"erf"`` or ``"sigmoid"``.
        sigma_w2: weight variance of every layer (ReLU, sigma_b = 0: ordered < 2 = EOC < chaotic).
        sigma_b2: bias variance of every layer.
        depth: hidden layers (1: the positive control at ``control_width``).
        width: hidden units per layer for ``depth >= 2``.
        control_width: hidden units of the one-hidden-layer control nets.
        parametrization: ``"ntk"`` (the NTK-GP's) or ``"standard"`` (Seleznova & Kutyniok's nets).
        ensemble_size: nets per ensemble.
        steps: full-batch GD steps ("the end of training").
        lr_fraction: GD step as a fraction of ``n / lambda_max`` of the infinite NTK, in (0, 1).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    activation: Literal["relu", "tanh", "erf", "sigmoid"] = "relu"
    sigma_w2: PositiveFloat = 2.0
    sigma_b2: NonNegativeFloat = 0.0
    depth: PositiveInt = 2
    width: PositiveInt = 128
    control_width: PositiveInt = 2048
    parametrization: Literal["ntk", "standard"] = "ntk"
    ensemble_size: int = Field(default=32, ge=4)
    steps: PositiveInt = 200
    lr_fraction: float = Field(default=0.5, gt=0.0, lt=1.0)


def hidden_width(p: OutputVarianceParams) -> int:
    """``control_width`` for the one-hidden-layer control, else ``width``."""
    return p.control_width if p.depth == CONTROL_DEPTH else p.width


def description(p: OutputVarianceParams) -> arch.Layer:
    """The net of a run: ``depth`` x (Dense(width) + activation) + Dense(1), every layer at ``sigma_w2``,
    ``sigma_b2``."""
    sw, sb = math.sqrt(p.sigma_w2), math.sqrt(p.sigma_b2)
    layers: list[arch.Layer] = []
    for _ in range(p.depth):
        layers += [arch.Dense(hidden_width(p), sigma_w=sw, sigma_b=sb), ACTIVATIONS[p.activation]()]
    return arch.serial(*layers, arch.Dense(1, sigma_w=sw, sigma_b=sb))


def variance_ratios(f: np.ndarray, g: np.ndarray, c: np.ndarray, sigma2: np.ndarray) -> tuple[float, float]:
    """``(raw, paired)`` ratios of the ensemble's output variance to the NTK-GP's, averaged over test points.

    Args:
        f: (K, m) members' test outputs.
        g: (K, m) their paired infinite-NTK linearized predictions.
        c: (K, m) the variance of ``g`` under each member's conditional init covariance.
        sigma2: (m,) the NTK-GP variance.

    ``raw = mean_i Var_k f / mean_i sigma2``; ``paired = mean_i (Var_k f - Var_k g + mean_k c) / mean_i sigma2``
    (``E[mean_k c] = Var g``, so the paired estimate has the law of ``Var f`` and the noise of ``Var f - Var g``).
    """
    var_f = np.var(f, axis=0, ddof=1)
    paired = var_f - np.var(g, axis=0, ddof=1) + np.mean(c, axis=0)
    scale = float(np.mean(sigma2))
    return float(np.mean(var_f)) / scale, float(np.mean(paired)) / scale


@register
class OutputVarianceStudy(Study):
    """Output variance over inits after training vs the NTK-GP (Seleznova & Kutyniok 2021); see the docstring."""

    name: ClassVar[str] = "output_variance"
    title: ClassVar[str] = "Output variance over inits after training vs the NTK-GP, by depth and phase"
    citation: ClassVar[str] = (
        "Seleznova & Kutyniok 2021, Analyzing Finite Neural Networks: Can We Trust Neural Tangent Kernel Theory? "
        "(MSML 2021, arXiv 2012.04477); Lee et al. 2019 (arXiv 1902.06720) for the NTK-GP"
    )
    claim: ClassVar[str] = (
        "NTK theory predicts the variance over random inits of a trained network's output (the NTK-GP variance) "
        "where the network is in the NTK regime — the ordered phase and shallow nets — but not for deep nets at the "
        "edge of chaos or in the chaotic phase (Seleznova & Kutyniok 2021, Sec. 5). Tested as: the ratio of the "
        "ensemble's output variance after GD to the NTK-GP's stays near 1 in the ordered phase and departs from 1 "
        "with depth at the EOC and in the chaotic phase."
    )
    Params: ClassVar[type[BaseModel]] = OutputVarianceParams
    sections: ClassVar[frozenset[str]] = frozenset({"data"})

    def run(self, config: RunConfig, *, device: str = "cpu") -> RunOutput:
        """Train one ensemble and compare its output variance with the NTK-GP's (module docstring)."""
        p = OutputVarianceParams.model_validate(config.params)
        ds = config.data.load()
        if ds.task != "regression" or ds.y_train.reshape(len(ds.y_train), -1).shape[1] != 1:
            raise ValueError(
                f"data.name: the output_variance study needs a scalar regression target, got {config.data.name!r} "
                f"({ds.task}, target shape {tuple(ds.y_train.shape)})"
            )
        x, xt = ds.x_train.to(device), ds.x_test.to(device)
        y_raw = ds.y_train.reshape(-1).to(device)
        y = (y_raw - y_raw.mean()) / (y_raw.std() if float(y_raw.std()) > 0 else 1.0)
        n, m = x.shape[0], xt.shape[0]
        desc = description(p)
        kern = desc.kernel(torch.cat([xt, x]), parametrization=p.parametrization)
        nngp, ntk = kern.nngp.to(torch.float64), kern.ntk.to(torch.float64)
        k_ss, k_sx, k_xx = nngp[:m, :m], nngp[:m, m:], nngp[m:, m:]
        lam_max = float(torch.linalg.eigvalsh(ntk[m:, m:])[-1])
        eta = p.lr_fraction * n / lam_max
        th_xx, th_sx = numerics.discrete_gd_kernels(ntk[m:, m:], ntk[:m, m:], eta)
        pred = predict.gradient_descent_mse_ensemble(
            y,
            nngp_train_train=k_xx,
            ntk_train_train=th_xx,
            nngp_test_train=k_sx,
            ntk_test_train=th_sx,
            nngp_test_test=k_ss,
            t=[p.steps, None],
            learning_rate=eta,
        )
        assert pred.covariance is not None
        sigma2_t, sigma2_inf = torch.diagonal(pred.covariance, dim1=-2, dim2=-1)
        gain = predict.gradient_descent_mse(
            th_xx, torch.eye(n, dtype=torch.float64), th_sx, t=[p.steps], learning_rate=eta
        )  # (1, m, n): M_t
        nets = [
            desc.build(
                ds.input_shape,
                parametrization=p.parametrization,
                seed=1000 * config.seed + k,
                dtype=torch.float64,
                device=device,
            )
            for k in range(p.ensemble_size)
        ]
        act = ACTIVATIONS[p.activation]()
        phi = act.phi  # type: ignore[attr-defined]
        trace = train_stack(stack_dense(nets), x, y, xt, phi=phi, learning_rate=eta, record=(0, p.steps))
        keep = ~trace.diverged
        f0_test, f_t = trace.probe[:, 0], trace.probe[:, 1]
        g = numerics.paired_samples(trace.f0_train, f0_test, y, gain)[:, 0]
        sw, sb = math.sqrt(p.sigma_w2), math.sqrt(p.sigma_b2)
        xa = torch.cat([xt, x])
        cov = torch.stack([sw**2 * empirical_nngp(net, xa) + sb**2 for net in nets]).to(torch.float64)
        c = numerics.init_variance_terms(cov, gain, m)[:, 0]
        _, chi = gradient_gain(
            phi,
            act.derivative,  # type: ignore[attr-defined]
            p.sigma_w2,
            p.sigma_b2,
            q0=p.sigma_w2 * float((x**2).sum(1).mean()) / x.shape[1] + p.sigma_b2,
        )
        arrays = {
            "f": f_t[keep].cpu().numpy(),
            "g": g[keep].cpu().numpy(),
            "c": c[keep].cpu().numpy(),
            "f0": f0_test[keep].cpu().numpy(),
            "sigma2": sigma2_t.cpu().numpy(),
            "sigma2_inf": sigma2_inf.cpu().numpy(),
            "nngp_test_diag": torch.diagonal(k_ss).cpu().numpy(),
        }
        n_ok = int(keep.sum())
        metrics: dict[str, MetricValue] = {
            "status": "completed" if n_ok >= 4 else "diverged",
            "n_diverged": int(trace.diverged.sum()),
            "width_used": hidden_width(p),
            "beta": p.depth / hidden_width(p),
            "chi": chi,
            "learning_rate": eta,
            "lambda_max": lam_max,
            "pred_var_ratio_inf": float(sigma2_t.mean() / sigma2_inf.mean()),
        }
        if n_ok >= 4:
            raw, paired = variance_ratios(arrays["f"], arrays["g"], arrays["c"], arrays["sigma2"])
            init = float(np.mean(np.var(arrays["f0"], axis=0, ddof=1)) / np.mean(arrays["nngp_test_diag"]))
            loss0 = float(((trace.f0_train[keep] - y) ** 2).mean()) / 2
            metrics |= {
                "var_ratio": finite_or_none(raw),
                "var_ratio_paired": finite_or_none(paired),
                "log_var_ratio": finite_or_none(math.log(raw)) if raw > 0 else None,
                "init_var_ratio": finite_or_none(init),
                "train_loss_ratio": finite_or_none(float(trace.train_loss[keep].mean()) / loss0),
            }
        return RunOutput(metrics=metrics, artifacts={k: np.asarray(v, np.float64) for k, v in arrays.items()})


__all__ = ["OutputVarianceParams", "OutputVarianceStudy", "description", "hidden_width", "variance_ratios"]
