"""Study ``evolution``: how the empirical NTK moves through training, by initialisation phase and architecture.

Claims tested:

* Seleznova & Kutyniok 2022 (arXiv 2012.04477, 2202.00553; their Fig. 4): for deep ReLU nets in standard
  parametrization the NTK can stay (nearly) constant in training only in the ordered phase (sigma_w^2 < 2); at the
  edge of chaos (sigma_w^2 = 2) and in the chaotic phase (sigma_w^2 > 2) it moves and grows a class structure
  (within-class blocks rise above between-class blocks).
* Fort et al. 2020 (arXiv 2010.15110): the kernel velocity is large in an early, chaotic transient and then
  roughly constant. Fort et al. use ``S(t, t+dt)/dt`` at a fixed ``dt``; the snapshots here are log-spaced, and ``S``
  is quadratic in the angle turned, so the velocity is the angle per step
  (:func:`tangentlab.metrics.kernel_velocity`), which is constant for a constant speed on any spacing; the "after kernel" (the eNTK at a checkpoint, used for kernel regression)
  beats the kernel at initialisation.

One run (one grid point: ``data.name``, ``model_kind``, ``sigma_w2``, ``width``/``channels``, seed):

1. Data from :func:`tangentlab.data.load` (float64, classification, one-hot targets unless ``data.target`` says
   otherwise); inputs are loaded with ``shape="image"`` for the CNN and ``"flat"`` for the MLPs (``data.shape`` is
   not used).
2. Model (``model_kind``; every weight layer ``sigma_w = sqrt(sigma_w2)``, ``sigma_b = 0``, readout included, as in
   Seleznova & Kutyniok; built in float64 under ``parametrization``, standard by default):
   ``mlp``: ``depth`` (default 2) hidden ``Dense(width)`` + ReLU; ``deep_mlp``: ``deep_depth`` (default 20) of them
   (their 784 -> [300] x 20 -> 10, scaled down); ``cnn``: ``depth`` ``Conv(channels, 3, stride=2)`` + ReLU,
   ``Flatten``, ``Dense`` readout; ``resnet``: the small constant-width ResNet of :func:`tangentlab.arch.resnet`
   with ``depth`` residual blocks per stage and ``channels`` channels (Fort et al. 2020's setting, scaled down). ``config.model`` is not used (``model_kind`` names the net).
3. Training by :func:`tangentlab.train.fit` with the config's ``train`` section (Seleznova & Kutyniok: full-batch
   Adam on MSE ``(1/2n) sum ||f - y||^2`` with one-hot targets). A step of full-batch training is one epoch.
4. Snapshots (:class:`tangentlab.train.Snapshots`, the one snapshot mechanism) at step 0 and ``n_snapshots - 1``
   log-spaced steps (or ``snapshot_steps``): the trace eNTK ``Theta_t`` on a class-balanced probe
   (``probe_per_class`` training examples of each class, grouped by class), and, through a snapshot hook, the net's
   test accuracy and the test accuracy of the after kernel: kernel regression
   (:func:`~tangentlab.studies.evolution.kernels.kernel_regression_accuracy`, relative ridge ``ridge``) with the
   eNTK at step t on the first ``after_kernel_train`` training examples.
5. Curves (artifacts, one value per snapshot): ``snap_step``, ``kernel_distance`` ``S(0, t)``,
   ``kernel_distance_centered`` (``S`` between the kernels centred over the probe, ``H K H`` with
   ``H = I - 11^T/n``: in deep ordered-phase nets a near-constant block dominates the trace eNTK and hides how its
   structure moves),
   ``within_ratio``/``between_ratio`` (block means over the mean diagonal, :func:`block_ratios`), ``alignment``
   (centred kernel-target alignment with the probe's one-hot labels), ``after_kernel_acc``, ``net_acc``,
   ``train_loss``; ``velocity`` ``angle(t_i, t_{i+1}) / (t_{i+1} - t_i)`` (radians per step) with ``velocity_t0``/``velocity_t1``;
   ``ntk0_probe``/``ntkT_probe`` and ``probe_labels``. Scalars (metrics): their values at init and at the end, and
   :func:`velocity_summary` (late = intervals starting after ``late_fraction * steps``).

The report is :mod:`tangentlab.studies.evolution.report`.
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt

from tangentlab import arch, empirical_ntk, metrics, train
from tangentlab.runner.config import RunConfig
from tangentlab.studies import register
from tangentlab.studies._base import MetricValue, RunOutput, Study
from tangentlab.studies._sections import finite_or_none, no_model
from tangentlab.studies.evolution.kernels import (
    balanced_probe,
    block_ratios,
    kernel_regression_accuracy,
    snapshot_schedule,
    velocity_summary,
)

ModelKind = Literal["mlp", "cnn", "deep_mlp", "lazy_control", "resnet"]
IMAGE_KINDS: tuple[str, ...] = ("cnn", "resnet")
CURVES: tuple[str, ...] = (
    "snap_step",
    "kernel_distance",
    "kernel_distance_centered",
    "within_ratio",
    "between_ratio",
    "alignment",
    "after_kernel_acc",
    "net_acc",
    "train_loss",
)


class EvolutionParams(BaseModel):
    """Parameters of the ``evolution`` study.

    Attributes:
        model_kind: ``"mlp"``, ``"cnn"``, ``"deep_mlp"`` or ``"resnet"`` (see the module docstring).
        sigma_w2: weight variance ``sigma_w^2`` of every layer (ReLU phases: < 2 ordered, 2 edge of chaos, > 2
            chaotic).
        width: hidden units of both MLPs.
        channels: channels of every CNN / ResNet layer.
        depth: hidden (conv) layers of ``mlp`` and ``cnn``; residual blocks per stage of ``resnet``.
        deep_depth: hidden layers of ``deep_mlp`` (Seleznova & Kutyniok: 20).
        parametrization: ``"standard"`` (Seleznova & Kutyniok), ``"ntk"`` or ``"mup"``.
        probe_per_class: training examples per class in the eNTK probe.
        n_snapshots: snapshots: step 0 and ``n_snapshots - 1`` log-spaced steps (when ``snapshot_steps`` is None).
        snapshot_steps: explicit snapshot steps (0 is always added).
        after_kernel_train: training examples (the first ones) on which the after kernel is regressed.
        ridge: kernel-regression ridge relative to the mean diagonal of the training kernel.
        late_fraction: velocity intervals starting after this fraction of training count as "late".
        control_width: hidden units of the ``lazy_control`` net.
        control_lr_fraction: its GD rate as a fraction of ``n / lambda_max(Theta_0)`` (stable below 2).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    model_kind: ModelKind = "mlp"
    sigma_w2: PositiveFloat = 2.0
    width: PositiveInt = 128
    channels: PositiveInt = 16
    depth: PositiveInt = 2
    deep_depth: PositiveInt = 20
    parametrization: Literal["ntk", "standard", "mup"] = "standard"
    probe_per_class: PositiveInt = 10
    n_snapshots: int = Field(default=12, ge=2)
    snapshot_steps: tuple[int, ...] | None = None
    after_kernel_train: PositiveInt = 200
    ridge: float = Field(default=1e-6, ge=0)
    late_fraction: float = Field(default=0.1, ge=0, lt=1)
    control_width: PositiveInt = 256
    control_lr_fraction: float = Field(default=0.5, gt=0, lt=2)


def build_description(kind: ModelKind, width: int, depth: int, sigma_w2: float, out_dim: int) -> arch.Layer:
    """The arch description of ``model_kind`` (every weight layer ``sigma_w = sqrt(sigma_w2)``, no bias noise)."""
    s = math.sqrt(sigma_w2)
    if kind == "resnet":
        return arch.resnet(depth, width, out_dim, sigma_w=s, readout_sigma_w=s)
    layers: list[arch.Layer] = []
    for _ in range(depth):
        if kind == "cnn":
            layers += [arch.Conv(width, 3, stride=2, sigma_w=s), arch.ReLU()]
        else:
            layers += [arch.Dense(width, sigma_w=s), arch.ReLU()]
    if kind == "cnn":
        layers.append(arch.Flatten())
    return arch.serial(*layers, arch.Dense(out_dim, sigma_w=s))


@register
class EvolutionStudy(Study):
    """eNTK snapshots through training (Seleznova & Kutyniok 2022; Fort et al. 2020); see the module docstring."""

    name: ClassVar[str] = "evolution"
    title: ClassVar[str] = "Kernel evolution: how the empirical NTK moves through training, by init phase"
    citation: ClassVar[str] = (
        "Seleznova & Kutyniok 2022, Analyzing Finite Neural Networks: Can We Trust Neural Tangent Kernel Theory? "
        "(arXiv 2012.04477) and Neural Tangent Kernel Beyond the Infinite-Width Limit (arXiv 2202.00553); Fort et al. "
        "2020, Deep learning versus kernel learning (arXiv 2010.15110)"
    )
    claim: ClassVar[str] = (
        "The NTK of a deep ReLU net can stay (nearly) constant during training only in the ordered phase "
        "σ_w² < 2; at the edge of chaos and in the chaotic phase it moves (Seleznova & Kutyniok 2022, Fig. 4). "
        "The kernel moves fast in an early chaotic transient, then at a roughly constant velocity, and the "
        "after kernel (the eNTK at a checkpoint) classifies better than the kernel at init (Fort et al. 2020)."
    )
    Params: ClassVar[type[BaseModel]] = EvolutionParams
    sections: ClassVar[frozenset[str]] = frozenset({"data", "train"})

    def run(self, config: RunConfig, *, device: str = "cpu") -> RunOutput:
        """Train one net, taking eNTK snapshots, and return the curves and their summaries."""
        p = EvolutionParams.model_validate(config.params)
        tc, d = config.train, config.data
        no_model(config.model, self.name, "params.model_kind")
        ds = config.data.load(shape="image" if p.model_kind in IMAGE_KINDS else "flat")
        if ds.task != "classification" or ds.labels_train is None or ds.labels_test is None:
            raise ValueError(f"data.name: the evolution study needs a classification dataset, got {d.name!r}")
        n_classes = int(ds.n_classes or 0)
        x, y, xt = (t.to(device) for t in (ds.x_train, ds.y_train, ds.x_test))
        lab, lab_t = ds.labels_train, ds.labels_test
        n = x.shape[0]
        if p.after_kernel_train > n:
            raise ValueError(
                f"params.after_kernel_train: expected at most n_train = {n}, got {p.after_kernel_train}"
            )
        probe_idx = balanced_probe(lab, p.probe_per_class)
        probe, probe_lab = x[probe_idx], lab[probe_idx]
        probe_y = torch.nn.functional.one_hot(probe_lab, n_classes).to(torch.float64)
        out_dim = 1 if y.ndim == 1 else int(y[0].numel())
        if y.ndim == 1 and tc.loss == "mse":
            raise ValueError("data.target: MSE needs one-hot or centred targets; use 'onehot' or 'centered'")
        control = p.model_kind == "lazy_control"
        depth = {"deep_mlp": p.deep_depth, "lazy_control": 1}.get(p.model_kind, p.depth)
        width = {"cnn": p.channels, "resnet": p.channels, "lazy_control": p.control_width}.get(
            p.model_kind, p.width
        )
        net = build_description(
            p.model_kind, width, depth, p.sigma_w2, out_dim if y.ndim > 1 else n_classes
        ).build(
            ds.input_shape,
            parametrization="ntk" if control else p.parametrization,
            seed=config.seed,
            dtype=torch.float64,
            device=device,
        )
        train_args = tc.fit_kwargs(seed=config.seed, eval_every=max(1, tc.steps // 10))
        if control:  # Lee et al.'s setting: full-batch GD below the stability limit (module docstring)
            ntk0 = empirical_ntk(net, x, outputs="trace").to(torch.float64) / float(y[0].numel())
            train_args.update(
                optimizer="gd",
                momentum=0.0,
                batch_size=None,
                learning_rate=train.spectral_learning_rate(ntk0, p.control_lr_fraction, n=n),
            )
        ak_x, ak_lab = x[: p.after_kernel_train], lab[: p.after_kernel_train]
        m_ak = ak_x.shape[0]

        def hook(model: torch.nn.Module, step: int) -> dict[str, float]:
            was = model.training
            model.eval()
            try:
                k = empirical_ntk(model, torch.cat([ak_x, xt]), ak_x, outputs="trace").to(torch.float64).cpu()
                with torch.no_grad():
                    out = model(xt)
            finally:
                model.train(was)
            acc = kernel_regression_accuracy(k[:m_ak], k[m_ak:], ak_lab, lab_t, n_classes, ridge=p.ridge)
            net_acc = (
                metrics.accuracy(out, lab_t.to(out.device)) if bool(torch.isfinite(out).all()) else math.nan
            )
            return {"after_kernel_acc": acc, "net_acc": net_acc}

        steps = tuple(p.snapshot_steps) if p.snapshot_steps else snapshot_schedule(tc.steps, p.n_snapshots)
        if control:
            steps = (0, tc.steps)
        steps = tuple(sorted({0, *(s for s in steps if 0 <= s <= tc.steps)}))
        snaps = train.Snapshots(steps=steps, probe=probe, ntk=True, outputs=False, hooks=(hook,))
        res = train.fit(net, x, y, **{**train_args, "snapshots": snaps})
        good = [s for s in res.snapshots if s.ntk is not None and bool(torch.isfinite(s.ntk).all())]
        kernels = [s.ntk for s in good if s.ntk is not None]
        k0 = kernels[0]
        curves: dict[str, list[float]] = {c: [] for c in CURVES}
        for s, k in zip(good, kernels, strict=True):
            within, between = block_ratios(k, probe_lab)
            curves["snap_step"].append(float(s.step))
            curves["kernel_distance"].append(metrics.kernel_distance(k0, k))
            curves["kernel_distance_centered"].append(metrics.kernel_distance(k0, k, centered=True))
            curves["within_ratio"].append(within)
            curves["between_ratio"].append(between)
            curves["alignment"].append(metrics.kernel_target_alignment(k, probe_y, centered=True))
            curves["after_kernel_acc"].append(float(s.extras["after_kernel_acc"]))
            curves["net_acc"].append(float(s.extras["net_acc"]))
            curves["train_loss"].append(float(s.train_loss))
        t = np.asarray(curves["snap_step"])
        velocity = (
            metrics.kernel_velocity(kernels, t.tolist()).numpy()
            if len(kernels) >= 2
            else np.zeros(0, np.float64)
        )

        m: dict[str, MetricValue] = {
            "status": "diverged" if res.diverged else "completed",
            "message": res.message,
            "steps_run": res.steps_run,
            "n_params": int(train.trainable_vector(net).numel()),
            "depth": depth,
            "width": width,
            "learning_rate": float(train_args["learning_rate"]),
            "optimizer": str(train_args["optimizer"]),
            "n_probe": int(probe.shape[0]),
            "n_test": int(xt.shape[0]),
            "n_snapshots": len(good),
            "train_loss_final": finite_or_none(res.final_train_loss),
            "final_step": int(t[-1]),
            "kernel_distance_final": finite_or_none(curves["kernel_distance"][-1]),
            "kernel_distance_centered_final": finite_or_none(curves["kernel_distance_centered"][-1]),
        }
        for key in (
            "within_ratio",
            "between_ratio",
            "alignment",
            "after_kernel_acc",
            "net_acc",
        ):
            m[f"{key}_init"] = finite_or_none(curves[key][0])
            m[f"{key}_final"] = finite_or_none(curves[key][-1])
        m["after_kernel_acc_best"] = finite_or_none(max(curves["after_kernel_acc"]))
        m.update(
            {
                k: finite_or_none(v)
                for k, v in velocity_summary(velocity, t[:-1], tc.steps, p.late_fraction).items()
            }
        )

        artifacts: dict[str, np.ndarray] = {c: np.asarray(v, dtype=np.float64) for c, v in curves.items()}
        artifacts["velocity"] = np.asarray(velocity, dtype=np.float64)
        artifacts["velocity_t0"] = t[:-1].astype(np.float64)
        artifacts["velocity_t1"] = t[1:].astype(np.float64)
        artifacts["ntk0_probe"] = k0.cpu().numpy().astype(np.float64)
        artifacts["ntkT_probe"] = kernels[-1].cpu().numpy().astype(np.float64)
        artifacts["probe_labels"] = probe_lab.cpu().numpy().astype(np.float64)
        return RunOutput(metrics=m, artifacts=artifacts)


__all__ = [
    "EvolutionParams",
    "EvolutionStudy",
    "block_ratios",
    "build_description",
    "kernel_regression_accuracy",
]
