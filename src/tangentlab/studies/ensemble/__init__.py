"""Study ``ensemble``: does the NTK-GP describe an ensemble of finite networks trained by gradient descent?

Claim tested (Lee et al. 2019, "Wide neural networks of any depth evolve as linear models under gradient descent",
arXiv 1902.06720, Sec. 2.3-2.4 and Fig. 4): over random inits, NTK-parametrized networks trained by full-batch
gradient descent on MSE have outputs whose distribution at every training time ``t`` approaches, as width grows,
the Gaussian process of the infinite-width linearized network, the "NTK-GP": mean
``Theta_{*X} Theta^{-1} A_t Y`` and covariance ``K_{**} + M K M^T - (M K_{X*} + K_{*X} M^T)`` with
``M = Theta_{*X} Theta^{-1} A_t`` (:func:`tangentlab.predict.gradient_descent_mse_ensemble`). Operationalised here:
the distance between the ensemble's mean (and variance) of test outputs and the NTK-GP's shrinks with width at least
like ``width^(-1/2)`` (a finite net's deviation from its linearization is ``O(width^(-1/2))``, Lee et al. Thm. 2.1;
the ensemble statistics inherit that bound), and at the widest width the two agree within ``MATCH_TOL``
(:mod:`tangentlab.studies.ensemble.report`). Deviations from the paper: small regression tasks (1-D ``gap1d`` and
scikit-learn's diabetes) instead of CIFAR-10, one-hidden-layer ReLU MLPs by default, 20 or more nets per width.

One run (one grid point: dataset, ``width``, seed) trains one ensemble:

1. Data from :func:`tangentlab.data.load` (float64); the scalar regression target is z-scored with the training
   mean and std (distances are relative, so units do not matter; the GD rate does).
2. Model: ``config.model`` or :attr:`EnsembleStudy.default_model` (one hidden ReLU layer with biases,
   ``sigma_w = sigma_b = 1``: without biases a ReLU net of a 1-D input bends only at 0); every hidden ``Dense`` gets
   ``width`` units, the readout one. NTK parametrization (the claim's), float64.
3. The infinite-width NNGP ``K`` and NTK ``Theta`` of the same description on (test, train) inputs
   (:meth:`tangentlab.arch.Layer.kernel`), and one GD step for every width and member:
   ``eta = lr_fraction * n / lambda_max(Theta)``.
4. ``ensemble_size`` nets, seeds ``1000 * seed + k``, trained together by full-batch GD for ``max(times)`` steps
   (:func:`tangentlab.studies.ensemble.numerics.train_ensemble`, the update of :func:`tangentlab.train.fit`); their
   test outputs are recorded at init and at each of ``times``.
5. The NTK-GP at the same ``times`` for *discrete* GD with step ``eta`` (exact, through
   :func:`tangentlab.studies.ensemble.numerics.discrete_gd_kernels`), in NTK mode (all layers trained: the claim)
   and in NNGP mode (readout only: a reference that trains the wrong layers, which the ensemble should not match).
6. Distances per time (:mod:`tangentlab.studies.ensemble.numerics`): the paired (control-variate) distances
   ``mean_distance`` (the ensemble mean's deviation in units of the NTK-GP's predictive std) and
   ``var_distance`` (the variance's deviation relative to the NTK-GP variance), whose Monte Carlo error shrinks with
   width; the unpaired ``raw_mean_distance`` (about ``1/sqrt(K)`` even for an exact match) and
   ``raw_var_ratio``; ``nngp_mean_distance`` (to the NNGP-mode GP). Metric names end in ``_t<steps>``.
   A run in which any member diverges ends ``status: diverged`` with the distances null.
7. Artifacts (for the report's bootstrap over members and its figures): ``times``, ``f`` and ``g`` (K, T, m) member
   outputs and their paired infinite-width predictions, ``c`` (K, T, m) the init-variance terms, ``mu``,
   ``sigma2``, ``mu_nngp``, ``sigma2_nngp`` (T, m), ``x_test``, ``y_test``, ``x_train``, ``y_train``.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, PositiveInt, field_validator

from tangentlab import arch, empirical_nngp, predict
from tangentlab.runner.config import RunConfig
from tangentlab.studies import register
from tangentlab.studies._base import MetricValue, RunOutput, Study
from tangentlab.studies._models import SCALAR_RELU_NET, set_hidden_width
from tangentlab.studies._sections import finite_or_none
from tangentlab.studies.ensemble import numerics

#: Metrics recorded at every time ``t`` (as ``<name>_t<t>``).
TIME_METRICS: tuple[str, ...] = (
    "mean_distance",
    "var_distance",
    "raw_mean_distance",
    "raw_var_ratio",
    "nngp_mean_distance",
)


class EnsembleParams(BaseModel):
    """Parameters of the ``ensemble`` study.

    Attributes:
        width: units of every hidden ``Dense`` layer.
        ensemble_size: nets in the ensemble (Lee et al. compare ensembles of many nets; at least 2).
        times: GD steps at which the ensemble is compared with the NTK-GP (each >= 1; training runs to the largest).
        lr_fraction: GD step as a fraction of ``n / lambda_max`` of the infinite NTK, in (0, 1).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    width: PositiveInt = 256
    ensemble_size: int = Field(default=20, ge=2)
    times: tuple[PositiveInt, ...] = (10, 100, 1000)
    lr_fraction: float = Field(default=0.5, gt=0.0, lt=1.0)

    @field_validator("times")
    @classmethod
    def _sorted_unique(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value:
            raise ValueError("expected at least one time")
        return tuple(sorted(set(value)))


def readout_scales(description: arch.Layer) -> tuple[float, float]:
    """``(sigma_w, sigma_b)`` of the last ``Dense`` layer (the readout) of a description.

    Raises:
        ValueError: if the description has no ``Dense`` layer.
    """
    dense = [layer for layer in description.leaves() if isinstance(layer, arch.Dense)]
    if not dense:
        raise ValueError("model: expected a Dense readout layer")
    return float(dense[-1].sigma_w), float(dense[-1].sigma_b)


def _z_scored(y: torch.Tensor, yt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mean, std = y.mean(), y.std()
    scale = std if float(std) > 0 else torch.ones_like(std)
    return (y - mean) / scale, (yt - mean) / scale


@register
class EnsembleStudy(Study):
    """An ensemble of finite nets against the NTK-GP (Lee et al. 2019); see the module docstring."""

    name: ClassVar[str] = "ensemble"
    title: ClassVar[str] = "Ensembles of finite nets vs the NTK-GP: does the infinite-width GP describe them?"
    citation: ClassVar[str] = (
        "Lee et al. 2019, Wide Neural Networks of Any Depth Evolve as Linear Models Under Gradient Descent "
        "(arXiv 1902.06720)"
    )
    claim: ClassVar[str] = (
        "Over random inits, NTK-parametrized nets trained by full-batch gradient descent on MSE have test outputs "
        "whose mean and variance at every training time t converge, as width grows, to those of the NTK-GP, the "
        "Gaussian process of the infinite-width linearized network (Lee et al. 2019, Sec. 2.3–2.4, Fig. 4). "
        "Tested as: the distance of the ensemble's mean and variance from the NTK-GP's shrinks at least like "
        "width^(−1/2), and the widest ensembles match the NTK-GP."
    )
    Params: ClassVar[type[BaseModel]] = EnsembleParams
    sections: ClassVar[frozenset[str]] = frozenset({"data", "model"})
    default_model: ClassVar[dict[str, Any] | None] = SCALAR_RELU_NET

    def run(self, config: RunConfig, *, device: str = "cpu") -> RunOutput:
        """Train one ensemble and compare its test-output statistics with the NTK-GP at each time."""
        start = time.perf_counter()
        p = EnsembleParams.model_validate(config.params)
        ds = config.data.load()
        if ds.task != "regression" or ds.y_train.reshape(len(ds.y_train), -1).shape[1] != 1:
            raise ValueError(
                f"data.name: the ensemble study needs a scalar regression target, got {config.data.name!r} "
                f"({ds.task}, target shape {tuple(ds.y_train.shape)})"
            )
        x, xt = ds.x_train.to(device), ds.x_test.to(device)
        y, yt = _z_scored(ds.y_train.reshape(-1).to(device), ds.y_test.reshape(-1).to(device))
        n, m = x.shape[0], xt.shape[0]
        description = arch.from_dict(
            set_hidden_width(config.model or dict(self.default_model or {}), p.width, 1)
        )
        sigma_w, sigma_b = readout_scales(description)

        kern = description.kernel(torch.cat([xt, x]))
        nngp, ntk = kern.nngp.to(torch.float64), kern.ntk.to(torch.float64)
        k_ss, k_sx, k_xx = nngp[:m, :m], nngp[:m, m:], nngp[m:, m:]
        th_sx, th_xx = ntk[:m, m:], ntk[m:, m:]
        lam_max = float(torch.linalg.eigvalsh(th_xx)[-1])
        eta = p.lr_fraction * n / lam_max
        times = list(p.times)
        thp_xx, thp_sx = numerics.discrete_gd_kernels(th_xx, th_sx, eta)
        kp_xx, kp_sx = numerics.discrete_gd_kernels(k_xx, k_sx, eta)

        def gp(train_kernel: torch.Tensor, test_kernel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            pred = predict.gradient_descent_mse_ensemble(
                y,
                nngp_train_train=k_xx,
                ntk_train_train=train_kernel,
                nngp_test_train=k_sx,
                ntk_test_train=test_kernel,
                nngp_test_test=k_ss,
                t=times,
                learning_rate=eta,
            )
            assert pred.covariance is not None
            return pred.mean, torch.diagonal(pred.covariance, dim1=-2, dim2=-1)

        mu, sigma2 = gp(thp_xx, thp_sx)  # NTK mode: every layer trained
        mu_nngp, sigma2_nngp = gp(kp_xx, kp_sx)  # NNGP mode: Theta -> K (readout only)
        gain = predict.gradient_descent_mse(
            thp_xx, torch.eye(n, dtype=torch.float64), thp_sx, t=times, learning_rate=eta
        )  # (T, m, n): M_t

        nets = [
            description.build(ds.input_shape, seed=1000 * config.seed + k, dtype=torch.float64, device=device)
            for k in range(p.ensemble_size)
        ]
        trace = numerics.train_ensemble(nets, x, y, xt, learning_rate=eta, record=(0, *times))
        f0_test, f = trace.probe[:, 0], trace.probe[:, 1:]
        g = numerics.paired_samples(trace.f0_train, f0_test, y, gain)
        xa = torch.cat([xt, x])
        cov = torch.stack([sigma_w**2 * empirical_nngp(net, xa) + sigma_b**2 for net in nets])
        c = numerics.init_variance_terms(cov.to(torch.float64), gain, m)

        diverged = int(trace.diverged.sum())
        metrics: dict[str, MetricValue] = {
            "status": "diverged" if diverged else "completed",
            "n_diverged": diverged,
            "learning_rate": eta,
            "lambda_max": lam_max,
            "train_mse_final": finite_or_none(float(trace.train_loss.mean()) * 2),
        }
        arrays = {
            "f": f.cpu().numpy(),
            "g": g.cpu().numpy(),
            "c": c.cpu().numpy(),
            "mu": mu.cpu().numpy(),
            "sigma2": sigma2.cpu().numpy(),
            "mu_nngp": mu_nngp.cpu().numpy(),
            "sigma2_nngp": sigma2_nngp.cpu().numpy(),
        }
        if diverged:
            metrics.update({f"{name}_t{t}": None for name in TIME_METRICS for t in times})
        else:
            d = numerics.distances(arrays["f"], arrays["g"], arrays["c"], arrays["mu"], arrays["sigma2"])
            shifted = np.mean(arrays["f"] - arrays["g"], axis=0) + arrays["mu"] - arrays["mu_nngp"]
            to_nngp = np.sqrt(np.mean(shifted**2, axis=-1) / np.mean(arrays["sigma2_nngp"], axis=-1))
            for j, t in enumerate(times):
                values = (d.mean[j], d.variance[j], d.raw_mean[j], d.raw_variance_ratio[j], to_nngp[j])
                for name, value in zip(TIME_METRICS, values, strict=True):
                    metrics[f"{name}_t{t}"] = finite_or_none(float(value))
        metrics["seconds"] = time.perf_counter() - start
        artifacts = {
            **arrays,
            "times": np.asarray(times, dtype=np.int64),
            "x_test": xt.cpu().numpy(),
            "y_test": yt.cpu().numpy(),
            "x_train": x.cpu().numpy(),
            "y_train": y.cpu().numpy(),
        }
        return RunOutput(metrics=metrics, artifacts=artifacts)


__all__ = ["TIME_METRICS", "EnsembleParams", "EnsembleStudy", "readout_scales"]
