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
import math
import time
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, cast

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, PositiveFloat, PositiveInt

from tangentlab import arch, metrics, train
from tangentlab.data import Dataset
from tangentlab.runner.config import RunConfig
from tangentlab.studies import register
from tangentlab.studies._base import MetricValue, RunOutput, Study
from tangentlab.studies._models import SCALAR_RELU_NET, set_hidden_width
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
        prior_control: on regression data, also score every method on targets drawn from the NNGP prior of the
            run's own net at the same inputs, plus noise (metrics ``prior_*``): the positive control.
        prior_noise: standard deviation of that draw's observation noise.
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
    prior_control: bool = True
    prior_noise: PositiveFloat = 0.1


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


def prior_targets(nngp: torch.Tensor, seed: int, noise: float) -> torch.Tensor:
    """One draw ``f + noise * eps`` (N, 1) with ``f ~ N(0, K)``, ``K`` the NNGP kernel ``nngp`` (N, N), from ``seed``
    (a Cholesky factor; jitter ``1e-10 * mean diag`` doubled until it factors)."""
    k = 0.5 * (nngp + nngp.T).to(torch.float64)
    g = torch.Generator().manual_seed(int(seed) + 104729)
    z = torch.randn(k.shape[0], 1, generator=g, dtype=torch.float64)
    eps = torch.randn(k.shape[0], 1, generator=g, dtype=torch.float64)
    jitter = 1e-10 * float(k.diagonal().mean())
    eye = torch.eye(k.shape[0], dtype=torch.float64)
    while True:
        chol, info = torch.linalg.cholesky_ex(k + jitter * eye)
        if int(info) == 0:
            return cast(torch.Tensor, chol @ z + noise * eps)
        jitter *= 2


@dataclass(frozen=True)
class _Setup:
    """What scoring one set of targets needs besides the targets (built once per run)."""

    p: UncertaintyParams
    config: RunConfig
    ds: Dataset
    net_desc: arch.Layer
    x_all: torch.Tensor
    bounds: np.ndarray
    nngp: torch.Tensor
    ntk: torch.Tensor
    grid: bool


def _fit_and_score(
    s: _Setup,
    x: torch.Tensor,
    y: torch.Tensor,
    xv: torch.Tensor,
    yv: torch.Tensor,
    yt: torch.Tensor,
    ys: torch.Tensor,
    *,
    with_artifacts: bool = True,
) -> tuple[dict[str, MetricValue], dict[str, np.ndarray]]:
    """Train the ensemble on ``(x, y)``, build every method's predictive and score it on the test (``yt``) and
    shifted (``ys``) targets (module docstring, steps 2-5)."""
    start = time.perf_counter()
    p, tc, ds, bounds = s.p, s.config.train, s.ds, s.bounds
    is_class = ds.task == "classification"
    n_out = int(y.shape[1])
    ev = slice(int(bounds[1]), int(bounds[-1]))
    tr = slice(int(bounds[0]), int(bounds[1]))
    nets, outputs, init = [], [], None
    fit_args = tc.fit_kwargs(
        eval_every=max(tc.steps // 50, 1),
        x_val=xv,
        y_val=yv,
        early_stopping=None if p.patience is None else train.EarlyStopping("loss", patience=p.patience),
    )
    for k in range(p.ensemble_size):
        seed = 1000 * s.config.seed + k
        net = s.net_desc.build(
            ds.input_shape, parametrization=p.parametrization, seed=seed, dtype=torch.float64
        )
        if k == 0:
            init = {name: q.detach().clone() for name, q in net.named_parameters()}
        res = train.fit(net, x, y, seed=seed, **fit_args)
        if res.diverged:
            return {"status": "diverged", "message": f"member {k}: {res.message}"}, {}
        with torch.no_grad():
            outputs.append(net(s.x_all[ev]).reshape(-1, n_out))
        nets.append(net)
    t_train = time.perf_counter() - start
    preds: dict[str, um.Predictive] = {"ntk_gp": um.ntk_gp(s.nngp, s.ntk, y, tr, ev)}
    preds["nngp"], amplitude = um.nngp_posterior(s.nngp, y, tr, ev)
    prior_mean = init if p.laplace_prior_mean == "init" else None
    preds["laplace"], la = um.laplace(nets[0], x, y, s.x_all[ev], prior_mean)
    members = torch.stack(outputs)
    preds["ensemble"] = um.ensemble(members)
    preds["net"] = um.single_net(members[0])

    def local(i: int) -> torch.Tensor:  # indices of part i inside the evaluation block
        return torch.arange(int(bounds[i] - bounds[1]), int(bounds[i + 1] - bounds[1]))

    iv, it, is_ = local(1), local(2), local(3)
    m: dict[str, MetricValue] = {
        "status": "completed",
        "laplace_prior_precision": la.prior_precision_,
        "laplace_sigma": la.sigma_noise_,
        "laplace_condition": la.solve_info_.condition_number,
        "nngp_amplitude": amplitude,
        "seconds_train": t_train,
    }
    artifacts: dict[str, np.ndarray] = {}
    pointwise: dict[str, torch.Tensor] = {}  # per-test-point Gaussian NLL (regression)
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
            var = pt.variance + noise
            pointwise[name] = (0.5 * torch.log(2 * math.pi * var) + (yt - pt.mean) ** 2 / (2 * var)).mean(1)
            if s.grid and with_artifacts:
                pg = pred.take(local(4))
                artifacts[f"{name}_grid_mean"] = pg.mean[:, 0].numpy()
                artifacts[f"{name}_grid_std"] = (pg.variance[:, 0] + noise).sqrt().numpy()
        m.update({f"{name}_{k}": v for k, v in scores.items()})
    if pointwise:  # the NNGP posterior against the best other method, paired over test points
        best = min((k for k in pointwise if k != "nngp"), key=lambda k: float(pointwise[k].mean()))
        d = pointwise["nngp"] - pointwise[best]
        m["nngp_nll_gap"] = float(d.mean())
        m["nngp_nll_gap_se"] = float(d.std() / math.sqrt(d.numel())) if d.numel() > 1 else None
        m["nngp_nll_gap_to"] = best
    return m, artifacts


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
    default_model: ClassVar[dict[str, Any] | None] = SCALAR_RELU_NET

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
        x_all = torch.cat(parts)
        n_out = int(y.shape[1])

        description = set_hidden_width(config.model or dict(self.default_model or {}), p.width, n_out)
        net_desc = arch.from_dict(description)
        kern = net_desc.kernel(x_all, parametrization=p.parametrization)
        nngp, ntk = kern.nngp.to(torch.float64), kern.ntk.to(torch.float64)
        setup = _Setup(p, config, ds, net_desc, x_all, bounds, nngp, ntk, bool(extra))
        targets = None if is_class else torch.cat([y, yv, yt, ys])
        m, artifacts = _fit_and_score(setup, x, y, xv, yv, yt, ys)
        if m.get("status") == "diverged":
            return RunOutput(m)
        m.update(
            {
                "shift": kind,
                "shift_scale": float(scale),
                "n_train": int(x.shape[0]),
                "n_test": int(xt.shape[0]),
                "n_shift": int(xs.shape[0]),
            }
        )
        if p.prior_control and targets is not None:
            # positive control: the same methods on targets drawn from the NNGP prior of this very net at the same
            # inputs (the NNGP posterior is then the exact Bayesian predictive)
            n_eval = int(bounds[4])  # train, validation, test and shifted inputs (not the figure's grid)
            py = prior_targets(nngp[:n_eval, :n_eval], config.seed, p.prior_noise)
            n_tr, n_va, n_te = len(y), len(yv), len(yt)
            cut = np.cumsum([0, n_tr, n_va, n_te, len(ys)])
            pt = [py[int(a) : int(b)] for a, b in itertools.pairwise(cut)]
            mc, _ = _fit_and_score(setup, x, pt[0], xv, pt[1], pt[2], pt[3], with_artifacts=False)
            m.update({f"prior_{k}": v for k, v in mc.items() if k != "status"})
            m["prior_noise_std"] = p.prior_noise
        if extra:
            mean0, std0 = float(ds.meta["mean"][0]), float(ds.meta["std"][0])
            artifacts["grid_x"] = (extra[0][:, 0] * std0 + mean0).numpy()
            artifacts["train_x"] = (x[:, 0] * std0 + mean0).numpy()
            artifacts["train_y"] = y[:, 0].numpy()
        m["seconds"] = time.perf_counter() - start
        return RunOutput(metrics=m, artifacts=artifacts)
