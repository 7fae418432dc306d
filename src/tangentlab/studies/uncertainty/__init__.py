"""Study ``uncertainty``: is the NTK-GP's predictive uncertainty reliable, next to Laplace and deep ensembles?

Claim tested (Wenger, Dangel & Kristiadi 2023, "On the disconnect between theory and practice of neural networks",
arXiv 2310.00137, Sec. 4): the uncertainty that NTK theory attaches to a network — the NTK-GP, the distribution over
random inits of infinitely wide nets trained by gradient flow (Lee et al. 2019, arXiv 1902.06720) — is not a reliable
description of nets of practical width; methods built on the trained net itself (linearized Laplace with
marginal-likelihood tuning; deep ensembles) give better uncertainty. The paper shows this on neural bandits; here
the same question is asked of predictive distributions directly, on regression and classification.

One run (one grid point: dataset, ``width``, seed):

1. Data from :func:`tangentlab.data.load` with a validation split (``data.n_val`` > 0); regression targets are
   z-scored with the training mean and std (metrics are in those units); classification targets one-hot. At most
   ``max_test`` test points. Shifted inputs (``params.shift``): ``"gap"`` (gap1d: test points inside the training
   gap are the shifted set, the rest in-distribution), ``"rotate"`` (square images rotated by ``shift_scale``
   degrees), ``"roll"`` (MNIST-1D signals circularly shifted), ``"noise"`` (Gaussian noise of std ``shift_scale``);
   ``"auto"`` picks gap for gap1d, rotate for digits/MNIST, roll for MNIST-1D, noise otherwise.
2. ``ensemble_size`` nets (``config.model`` or a one-hidden-layer ReLU MLP with biases, σ_w = σ_b = 1 — without
   biases a ReLU net of a 1-D input can only bend at 0; hidden Dense layers get ``width`` units; ``parametrization``), seeds ``1000 * seed + k``, each trained with ``config.train`` on MSE with early stopping on
   the validation MSE (``patience``; the practice the claim is about) — one-hot targets for classification, so that the kernel methods, which are regressions, predict the same quantity.
3. Predictive distributions over the network outputs (:mod:`tangentlab.studies.uncertainty.methods`):
   ``ntk_gp`` — :func:`tangentlab.predict.gradient_descent_mse_ensemble` at ``t = ∞`` with the infinite NNGP/NTK of
   the same description (it does not depend on width under NTK parametrization); ``nngp`` — the NNGP posterior
   (:func:`tangentlab.predict.gp_inference`) with amplitude and noise by GP evidence; ``laplace`` —
   :class:`tangentlab.predict.LinearizedLaplace` at the first trained net, α and σ by evidence maximisation, prior
   mean at init (``laplace_prior_mean: init``) or 0; ``ensemble`` — the members' mean and variance; ``net`` — the
   first net alone (no function uncertainty), as a baseline.
4. Observation noise (regression): Laplace and NNGP use their evidence-tuned σ²; ``ntk_gp``, ``ensemble`` and ``net``
   have no likelihood, so one noise variance is fitted by validation NLL. Probabilities (classification):
   ``E softmax(f / T)`` by the probit approximation ``softmax(mean / sqrt(T² + π var / 8))`` for the Gaussians
   (exact averaging over members for the ensemble; Monte Carlo with a small T gave zero probabilities), ``T`` by
   validation NLL for every method (temperature scaling, Guo et al. 2017) — outputs fitted to one-hot targets need
   it. Both choices give every method the same post-hoc calibration; what remains differs in the shape of the
   uncertainty, which is what the claim is about.
5. Metrics per method: test NLL, RMSE (regression) or accuracy and ECE (classification), 90 % interval coverage
   (regression), mean predictive entropy on in-distribution test inputs and on shifted inputs (Gaussian
   differential entropy for regression), and for ``"gap"`` the same metrics inside the gap.
"""

from __future__ import annotations

import itertools
import time
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, PositiveFloat, PositiveInt

from tangentlab import arch, metrics, train
from tangentlab.runner.config import RunConfig
from tangentlab.studies import register
from tangentlab.studies._base import MetricValue, RunOutput, Study
from tangentlab.studies._models import set_hidden_width
from tangentlab.studies.uncertainty import methods as um

METHODS: tuple[str, ...] = ("ntk_gp", "nngp", "laplace", "ensemble", "net")
AUTO_SHIFT: dict[str, str] = {"gap1d": "gap", "digits": "rotate", "mnist5k": "rotate", "mnist": "rotate"}
AUTO_SHIFT_DEFAULT = "noise"
GRID_POINTS = 161  # dense 1-D grid on which gap1d predictives are stored for the figure


class UncertaintyParams(BaseModel):
    """Parameters of the ``uncertainty`` study (see the module docstring).

    Attributes:
        width: units of every hidden Dense layer.
        parametrization: ``"ntk"`` or ``"standard"`` (nets and infinite kernels alike).
        ensemble_size: nets trained per run (the first is also the Laplace and single-net model).
        max_test: at most this many test points (the first of the loaded, already shuffled, test set).
        shift: ``"auto"``, ``"noise"``, ``"rotate"``, ``"roll"`` or ``"gap"``.
        shift_scale: size of the shift (None: the kind's default in ``SHIFT_SCALE``).
        laplace_prior_mean: ``"init"`` (prior centred at the first net's initial parameters) or ``"zero"``.
        patience: early stopping on the validation MSE, evaluated every ``steps // 50`` steps, restoring the best
            parameters (:class:`tangentlab.train.EarlyStopping`); None trains for all ``train.steps``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    width: PositiveInt = 256
    parametrization: Literal["ntk", "standard"] = "ntk"
    ensemble_size: PositiveInt = 5
    max_test: PositiveInt = 500
    shift: Literal["auto", "noise", "rotate", "roll", "gap"] = "auto"
    shift_scale: PositiveFloat | None = None
    laplace_prior_mean: Literal["init", "zero"] = "init"
    patience: PositiveInt | None = 10


def _shift_kind(p: UncertaintyParams, name: str) -> str:
    if p.shift != "auto":
        return p.shift
    return AUTO_SHIFT.get(name, "roll" if name == "mnist1d" else AUTO_SHIFT_DEFAULT)


def _regression_metrics(
    pred: um.Predictive, noise: float, y: torch.Tensor, tag: str
) -> dict[str, MetricValue]:
    var = pred.variance + noise
    return {
        f"nll{tag}": metrics.gaussian_nll(pred.mean, var, y),
        f"rmse{tag}": metrics.mean_squared_error(pred.mean, y) ** 0.5,
        f"cov90{tag}": metrics.interval_coverage(pred.mean, var, y, level=0.9),
        f"entropy{tag}": metrics.gaussian_entropy(var),
    }


def _class_metrics(probs: torch.Tensor, labels: torch.Tensor, tag: str) -> dict[str, MetricValue]:
    probs = probs / probs.sum(1, keepdim=True)
    picked = probs.gather(1, labels[:, None])[:, 0]
    return {
        f"nll{tag}": float(-torch.log(picked.clamp_min(1e-300)).mean()),
        f"acc{tag}": metrics.accuracy(probs, labels),
        f"ece{tag}": metrics.expected_calibration_error(probs, labels),
        f"entropy{tag}": metrics.predictive_entropy(probs),
    }


@register
class UncertaintyStudy(Study):
    """NTK-GP vs NNGP vs linearized Laplace vs deep ensembles (Wenger et al. 2023); see the module docstring."""

    name: ClassVar[str] = "uncertainty"
    title: ClassVar[str] = "Uncertainty (extension): NTK-GP against linearized Laplace and deep ensembles"
    citation: ClassVar[str] = (
        "Wenger, Dangel & Kristiadi 2023, On the Disconnect Between Theory and Practice of Neural Networks "
        "(arXiv 2310.00137); Lee et al. 2019 (arXiv 1902.06720) for the NTK-GP; Immer, Korzepa & Bauer 2021 "
        "(arXiv 2008.08400) for the linearized Laplace; Lakshminarayanan et al. 2017 (arXiv 1612.01474)"
    )
    claim: ClassVar[str] = (
        "The NTK-GP's predictive uncertainty is not reliable for networks of practical width: the linearized Laplace "
        "approximation with marginal-likelihood tuning and deep ensembles give better uncertainty (lower NLL, better "
        "calibration) (Wenger et al. 2023, Sec. 4). An extension, not a test of the infinite-width limit: it "
        "compares methods at one practical data size and a few widths; whether an ensemble of finite nets tends to "
        "the NTK-GP (Lee et al. 2019) is a different experiment."
    )
    Params: ClassVar[type[BaseModel]] = UncertaintyParams
    # its Laplace, GP and calibration steps run on the CPU; the nets are small
    cpu_only: ClassVar[bool] = True
    default_model: ClassVar[dict[str, Any] | None] = {
        "layer": "Serial",
        "layers": [
            {"layer": "Dense", "width": 256, "sigma_w": 1.0, "sigma_b": 1.0},
            {"layer": "ReLU"},
            {"layer": "Dense", "width": 1, "sigma_w": 1.0, "sigma_b": 1.0},
        ],
    }

    def run(self, config: RunConfig, *, device: str = "cpu") -> RunOutput:
        """Train the ensemble, build every predictive distribution and score them (module docstring)."""
        start = time.perf_counter()
        p = UncertaintyParams.model_validate(config.params)
        tc = config.train
        if tc.loss != "mse":
            raise ValueError(f"train.loss: the uncertainty study trains on MSE, got {tc.loss!r}")
        if config.data.n_val == 0:
            raise ValueError(
                "data.n_val: the uncertainty study calibrates on a validation split; expected > 0, got 0"
            )
        if config.data.target not in (None, "onehot", "scalar"):
            raise ValueError(
                f"data.target: expected onehot (classification) or scalar, got {config.data.target!r}"
            )
        ds = config.data.load()
        assert ds.x_val is not None and ds.y_val is not None
        is_class = ds.task == "classification"
        kind = _shift_kind(p, ds.name)
        scale = p.shift_scale if p.shift_scale is not None else um.SHIFT_SCALE[kind]
        x, y, xv, yv = ds.x_train, ds.y_train, ds.x_val, ds.y_val
        xt, yt = ds.x_test[: p.max_test], ds.y_test[: p.max_test]
        if not is_class:
            mu, sd = y.mean(0), y.std(0).clamp_min(1e-12)
            y, yv, yt = (y - mu) / sd, (yv - mu) / sd, (yt - mu) / sd
        extra: list[torch.Tensor] = []
        if kind == "gap":
            if ds.input_shape != (1,):
                raise ValueError(f"params.shift: 'gap' needs 1-D inputs, got input shape {ds.input_shape}")
            raw = xt[:, 0] * float(ds.meta["std"][0]) + float(ds.meta["mean"][0])
            in_gap = raw.abs() < scale
            xs, ys = xt[in_gap], yt[in_gap]
            xt, yt = xt[~in_gap], yt[~in_gap]
            grid_raw = torch.linspace(-1.2, 1.2, GRID_POINTS, dtype=x.dtype)
            extra = [((grid_raw - float(ds.meta["mean"][0])) / float(ds.meta["std"][0]))[:, None]]
        else:
            xs, ys = um.shifted_inputs(kind, xt, scale, config.seed), yt
        parts = [x, xv, xt, xs, *extra]
        bounds = np.cumsum([0, *(len(a) for a in parts)])
        sl = [slice(int(a), int(b)) for a, b in itertools.pairwise(bounds)]
        x_all = torch.cat(parts)
        tr, ev = sl[0], slice(int(bounds[1]), int(bounds[-1]))
        n_out = int(y.shape[1])

        description = set_hidden_width(config.model or dict(self.default_model or {}), p.width, n_out)
        net_desc = arch.from_dict(description)
        nets, outputs, init = [], [], None
        fit_args = tc.fit_kwargs(
            eval_every=max(tc.steps // 50, 1),
            x_val=xv,
            y_val=yv,
            early_stopping=None if p.patience is None else train.EarlyStopping("loss", patience=p.patience),
        )
        for k in range(p.ensemble_size):
            seed = 1000 * config.seed + k
            net = net_desc.build(
                ds.input_shape,
                parametrization=p.parametrization,
                seed=seed,
                dtype=torch.float64,
            )
            if k == 0:
                init = {name: q.detach().clone() for name, q in net.named_parameters()}
            res = train.fit(net, x, y, seed=seed, **fit_args)
            if res.diverged:
                return RunOutput({"status": "diverged", "message": f"member {k}: {res.message}"})
            with torch.no_grad():
                outputs.append(net(x_all[ev]).reshape(-1, n_out))
            nets.append(net)
        t_train = time.perf_counter() - start

        kern = net_desc.kernel(x_all, parametrization=p.parametrization)
        nngp, ntk = kern.nngp.to(torch.float64), kern.ntk.to(torch.float64)
        preds: dict[str, um.Predictive] = {"ntk_gp": um.ntk_gp(nngp, ntk, y, tr, ev)}
        preds["nngp"], amplitude = um.nngp_posterior(nngp, y, tr, ev)
        prior_mean = init if p.laplace_prior_mean == "init" else None
        preds["laplace"], la = um.laplace(nets[0], x, y, x_all[ev], prior_mean)
        members = torch.stack(outputs)
        preds["ensemble"] = um.ensemble(members)
        preds["net"] = um.single_net(members[0])

        def local(i: int) -> torch.Tensor:  # indices of part i inside the evaluation block
            return torch.arange(int(bounds[i] - bounds[1]), int(bounds[i + 1] - bounds[1]))

        iv, it, is_ = local(1), local(2), local(3)
        m: dict[str, MetricValue] = {
            "status": "completed",
            "shift": kind,
            "shift_scale": float(scale),
            "n_train": int(x.shape[0]),
            "n_test": int(xt.shape[0]),
            "n_shift": int(xs.shape[0]),
            "laplace_prior_precision": la.prior_precision_,
            "laplace_sigma": la.sigma_noise_,
            "laplace_condition": la.solve_info_.condition_number,
            "nngp_amplitude": amplitude,
        }
        artifacts: dict[str, np.ndarray] = {}
        for name, pred in preds.items():
            pv, pt, ps = pred.take(iv), pred.take(it), pred.take(is_)
            if is_class:
                assert ds.labels_val is not None and ds.labels_test is not None
                lv, lt = ds.labels_val, ds.labels_test[: p.max_test]
                temp = um.fit_temperature(pv, lv)
                m[f"{name}_temperature"] = temp
                scores = _class_metrics(um.probabilities(pt, temp), lt, "")
                scores.update(_class_metrics(um.probabilities(ps, temp), lt, "_shift"))
            else:
                noise = pred.noise if pred.noise is not None else um.fit_noise(pv, yv)
                m[f"{name}_noise"] = noise
                scores = _regression_metrics(pt, noise, yt, "")
                scores.update(_regression_metrics(ps, noise, ys, "_shift"))
                if extra:
                    pg = pred.take(local(4))
                    artifacts[f"{name}_grid_mean"] = pg.mean[:, 0].numpy()
                    artifacts[f"{name}_grid_std"] = (pg.variance[:, 0] + noise).sqrt().numpy()
            m.update({f"{name}_{k}": v for k, v in scores.items()})
        if extra:
            mean0, std0 = float(ds.meta["mean"][0]), float(ds.meta["std"][0])
            artifacts["grid_x"] = (extra[0][:, 0] * std0 + mean0).numpy()
            artifacts["train_x"] = (x[:, 0] * std0 + mean0).numpy()
            artifacts["train_y"] = y[:, 0].numpy()
        m["seconds_train"] = t_train
        m["seconds"] = time.perf_counter() - start
        return RunOutput(metrics=m, artifacts=artifacts)
