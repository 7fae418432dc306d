"""Study ``fort``: Fort et al. 2020's three probes of how far training is from the kernel regime.

Fort, Dziugaite, Paul, Kharaghani, Roy & Ganguli 2020, "Deep learning versus kernel learning: an empirical study of
loss landscape geometry and the time evolution of the Neural Tangent Kernel" (arXiv 2010.15110). Claims tested:

1. *Kernel velocity at a fixed dt*: the eNTK turns fast in an early chaotic transient, then at a roughly constant
   speed. Snapshots at equal spacing ``dt`` (``n_equal`` of them) make the velocities comparable across time; the
   velocity is the angle ``arccos(1 - S(t, t + dt)) / dt`` (:func:`tangentlab.metrics.kernel_velocity`; ``S`` is
   quadratic in the angle). Log-spaced snapshots (``n_log``) show the early steps in detail.
2. *The linearized model trained from theta_t* ("after kernel by training"): the first-order Taylor model around
   the parameters at step ``t`` (:func:`tangentlab.train.linearize`, ``torch.func.jvp``), trained for the remaining
   ``T - t`` steps with the same optimizer, rate and minibatch order as the net it is compared with, ends close to
   the net once ``t`` passes the early phase; from ``t = 0`` it is much worse.
3. *Parent-child spawning*: a parent trained to step ``t``; two children copied from it at ``t`` train to ``T`` on
   different minibatch orders. The loss barrier on the straight line between the two children
   (:func:`~tangentlab.studies.fort.numerics.loss_barrier`, on ``n_alpha`` points of ``[0, 1]``) is large for
   ``t = 0`` and drops to about 0 once ``t`` passes the chaotic transient. With full-batch GD
   (``train.optimizer: gd``) the two children are the same computation and coincide exactly (barrier 0 at every
   ``t``): the claim is about SGD noise, and a GD run (``batch: full``) only checks that determinism.

One run (``data.name``, ``model_kind``, ``batch``, seed):

1. Data from :func:`tangentlab.data.load` (float64 classification; class indices for cross-entropy, one-hot targets
   for MSE); flat inputs, image inputs for ``cnn``.
2. Model (standard parametrization unless ``parametrization`` says otherwise; ReLU, ``sigma_w = sqrt(sigma_w2)``):
   ``mlp``: ``depth`` hidden ``Dense(width)``; ``cnn``: ``depth`` ``Conv(channels, 3, stride=2)``, ``Flatten``;
   positive controls: ``linear`` (one ``Dense`` layer: its loss is convex in the parameters, so every barrier is 0,
   and its linearization is itself, so every gap is 0) and ``wide_ntk`` (one hidden layer of ``control_width``
   units in NTK parametrization: lazy training, so the net linearized at ``theta_0`` already matches the net).
3. The parent is trained with :func:`tangentlab.train.fit` and the config's ``train`` section (minibatch order seeded
   by the run's seed) for ``T = train.steps`` steps; snapshots (:class:`tangentlab.train.Snapshots`) record the
   trace eNTK on a class-balanced probe (``probe_per_class`` training examples per class) at the equal and log
   schedules and keep a copy of the parent at each spawn step (``spawn_steps``, or step 0 and ``n_spawn - 1``
   log-spaced steps up to ``spawn_last_fraction * T``).
4. At each spawn step ``t``: children ``a`` and ``b`` (minibatch seeds ``1000 seed + 1`` and ``+ 2``) and the
   linearization at ``theta_t`` (seed of child ``a``: the same batches) are trained for ``T - t`` steps. Recorded:
   their test loss and error, the train and test loss and test error along the path ``a -> b``, the barriers and
   ``||theta_a - theta_b||``.

Curves (artifacts): ``equal_step``/``velocity_equal`` (one per interval, ``velocity_equal_t0`` its start),
``log_step``/``velocity_log``/``velocity_log_t0``, ``kernel_distance_equal`` ``S(0, t)``; per spawn step
(``spawn_step``): ``barrier_train_loss``, ``barrier_test_loss``, ``barrier_test_error``, ``child_distance``,
``child_test_loss``/``child_test_error`` (child ``a``), ``lin_test_loss``/``lin_test_error``, ``gap_test_loss``/
``gap_test_error`` (linearized minus child ``a``), ``path_train_loss`` (spawn step x ``n_alpha``) and ``alphas``.
The report is :mod:`tangentlab.studies.fort.report`.
"""

from __future__ import annotations

import copy
import math
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt

from tangentlab import arch, metrics, train
from tangentlab.runner.config import RunConfig
from tangentlab.studies import register
from tangentlab.studies._base import MetricValue, RunOutput, Study
from tangentlab.studies._sections import finite_or_none, no_model
from tangentlab.studies.evolution.kernels import balanced_probe
from tangentlab.studies.fort.numerics import (
    equal_schedule,
    fixed_dt_summary,
    log_schedule,
    loss_barrier,
    parameter_distance,
    path_losses,
)

ModelKind = Literal["mlp", "cnn", "linear", "wide_ntk"]
CONTROLS: tuple[str, ...] = ("linear", "wide_ntk")
CHILD_SEED_OFFSET = 1000
SPAWN_CURVES: tuple[str, ...] = (
    "spawn_step",
    "barrier_train_loss",
    "barrier_test_loss",
    "barrier_test_error",
    "child_distance",
    "child_test_loss",
    "child_test_error",
    "child_b_test_error",
    "lin_test_loss",
    "lin_test_error",
    "gap_test_loss",
    "gap_test_error",
)


class FortParams(BaseModel):
    """Parameters of the ``fort`` study.

    Attributes:
        model_kind: ``"mlp"``, ``"cnn"``, or a positive control ``"linear"`` / ``"wide_ntk"`` (module docstring).
        batch: ``"minibatch"`` (the config's ``train`` section as written) or ``"full"``: full-batch GD
            (``optimizer: gd``, no ``batch_size``, momentum 0) at the config's learning rate, where the two
            children must coincide.
        width: hidden units of the MLP.
        depth: hidden (conv) layers of ``mlp`` and ``cnn``.
        channels: channels of every CNN layer.
        sigma_w2: weight variance ``sigma_w^2`` of every layer (2: He initialisation for ReLU).
        parametrization: ``"standard"``, ``"ntk"`` or ``"mup"`` (``wide_ntk`` is always ``"ntk"``).
        control_width: hidden units of the ``wide_ntk`` control.
        control_learning_rate: the ``wide_ntk`` control's learning rate (None: ``train.learning_rate``); in NTK
            parametrization a wide net's kernel is O(1), so it can take (and needs) a larger step than the
            standard-parametrized nets to train in the same number of steps.
        probe_per_class: training examples per class in the eNTK probe.
        n_equal: equally spaced eNTK snapshots (step 0, dt, ..., dt = T // (n_equal - 1)).
        n_log: log-spaced eNTK snapshots (step 0 and ``n_log - 1`` steps in [1, T]).
        spawn_steps: explicit spawn steps (each below ``T``), or None for the schedule below.
        n_spawn: spawn steps: 0 and ``n_spawn - 1`` log-spaced steps up to ``spawn_last_fraction * T``.
        spawn_last_fraction: the last spawn step as a fraction of ``T``.
        n_alpha: points of the interpolation grid on [0, 1] for the barrier.
        late_fraction: fixed-dt velocity intervals starting after this fraction of ``T`` count as "late".
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    model_kind: ModelKind = "mlp"
    batch: Literal["minibatch", "full"] = "minibatch"
    width: PositiveInt = 64
    depth: PositiveInt = 2
    channels: PositiveInt = 8
    sigma_w2: PositiveFloat = 2.0
    parametrization: Literal["ntk", "standard", "mup"] = "standard"
    control_width: PositiveInt = 2048
    control_learning_rate: PositiveFloat | None = None
    probe_per_class: PositiveInt = 5
    n_equal: int = Field(default=21, ge=3)
    n_log: int = Field(default=8, ge=2)
    spawn_steps: tuple[int, ...] | None = None
    n_spawn: int = Field(default=5, ge=2)
    spawn_last_fraction: float = Field(default=0.5, gt=0, lt=1)
    n_alpha: int = Field(default=11, ge=3)
    late_fraction: float = Field(default=0.3, ge=0, lt=1)


def build_description(p: FortParams, out_dim: int) -> arch.Layer:
    """The arch description of ``p.model_kind`` (ReLU, ``sigma_w = sqrt(sigma_w2)``, no bias noise)."""
    s = math.sqrt(p.sigma_w2)
    if p.model_kind == "linear":
        return arch.serial(arch.Dense(out_dim, sigma_w=1.0))
    if p.model_kind == "wide_ntk":
        return arch.serial(arch.Dense(p.control_width, sigma_w=s), arch.ReLU(), arch.Dense(out_dim))
    layers: list[arch.Layer] = []
    for _ in range(p.depth):
        if p.model_kind == "cnn":
            layers += [arch.Conv(p.channels, 3, stride=2, sigma_w=s), arch.ReLU()]
        else:
            layers += [arch.Dense(p.width, sigma_w=s), arch.ReLU()]
    if p.model_kind == "cnn":
        layers.append(arch.Flatten())
    return arch.serial(*layers, arch.Dense(out_dim, sigma_w=1.0))


def spawn_schedule(p: FortParams, steps: int) -> tuple[int, ...]:
    """The spawn steps: ``p.spawn_steps`` (validated to lie in [0, T)) or 0 and log-spaced steps up to the
    ``spawn_last_fraction`` of ``T``."""
    if p.spawn_steps is not None:
        bad = [s for s in p.spawn_steps if not 0 <= s < steps]
        if bad or not p.spawn_steps:
            raise ValueError(f"params.spawn_steps: expected steps in [0, {steps}), got {list(p.spawn_steps)}")
        return tuple(sorted(set(p.spawn_steps)))
    last = max(1, int(p.spawn_last_fraction * steps))
    return log_schedule(steps, p.n_spawn, last=last)


def _test_scores(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, loss: str) -> tuple[float, float]:
    fn = train.mse_loss if loss == "mse" else train.cross_entropy_loss
    with torch.no_grad():
        out = model(x)
        if not bool(torch.isfinite(out).all()):
            return math.nan, math.nan
        return float(fn(out, y)), 1.0 - metrics.accuracy(out, y)


def spawn(
    parent: torch.nn.Module,
    train_data: tuple[torch.Tensor, torch.Tensor],
    test_data: tuple[torch.Tensor, torch.Tensor],
    fit_args: dict[str, Any],
    seeds: tuple[int, int],
    alphas: np.ndarray,
) -> tuple[dict[str, float], np.ndarray]:
    """Two children of ``parent`` trained with :func:`tangentlab.train.fit` (``fit_args``) on the minibatch orders of
    ``seeds``, and the linearization at the parent trained on the first child's order; returns the barriers,
    distances, test scores and gaps of one spawn step (keys of ``SPAWN_CURVES`` but ``spawn_step``) and the train
    loss along the path between the children. ``parent`` itself is not changed."""
    (x, y), (xt, yt) = train_data, test_data
    loss = str(fit_args.get("loss", "mse"))
    kids = []
    for seed in seeds:
        kid = copy.deepcopy(parent)
        train.fit(kid, x, y, **{**fit_args, "seed": seed})
        kids.append(kid)
    lin = train.linearize(parent)
    train.fit(lin, x, y, **{**fit_args, "seed": seeds[0]})
    tr_loss, _ = path_losses(kids[0], kids[1], x, y, alphas, loss)
    te_loss, te_err = path_losses(kids[0], kids[1], xt, yt, alphas, loss)
    c_loss, c_err = _test_scores(kids[0], xt, yt, loss)
    l_loss, l_err = _test_scores(lin, xt, yt, loss)
    row = {
        "barrier_train_loss": loss_barrier(tr_loss, alphas),
        "barrier_test_loss": loss_barrier(te_loss, alphas),
        "barrier_test_error": loss_barrier(te_err, alphas),
        "child_distance": parameter_distance(kids[0], kids[1]),
        "child_test_loss": c_loss,
        "child_test_error": c_err,
        "child_b_test_error": _test_scores(kids[1], xt, yt, loss)[1],
        "lin_test_loss": l_loss,
        "lin_test_error": l_err,
        "gap_test_loss": l_loss - c_loss,
        "gap_test_error": l_err - c_err,
    }
    return row, tr_loss


@register
class FortStudy(Study):
    """Fixed-dt kernel velocity, the linearized model trained from theta_t, parent-child spawning (Fort et al.)."""

    name: ClassVar[str] = "fort"
    title: ClassVar[str] = (
        "Deep learning vs kernel learning: kernel velocity, linearization from θ_t, spawning"
    )
    citation: ClassVar[str] = (
        "Fort, Dziugaite, Paul, Kharaghani, Roy & Ganguli 2020, Deep learning versus kernel learning: an empirical "
        "study of loss landscape geometry and the time evolution of the Neural Tangent Kernel (arXiv 2010.15110)"
    )
    claim: ClassVar[str] = (
        "After an early chaotic transient (i) the kernel moves at a roughly constant velocity (fixed dt), "
        "(ii) the network linearized at θ_t and trained onward ends as well as the network itself, and (iii) two "
        "children spawned from the parent at step t and trained on different SGD noise end in one linearly "
        "connected basin (loss barrier ≈ 0); from t = 0 the linearization is worse and the barrier is large."
    )
    Params: ClassVar[type[BaseModel]] = FortParams
    sections: ClassVar[frozenset[str]] = frozenset({"data", "train"})

    def run(self, config: RunConfig, *, device: str = "cpu") -> RunOutput:
        """Train a parent with eNTK snapshots, then children and linearizations from each spawn step."""
        p = FortParams.model_validate(config.params)
        tc = config.train
        no_model(config.model, self.name, "params.model_kind")
        ds = config.data.load(shape="image" if p.model_kind == "cnn" else "flat")
        if ds.task != "classification" or ds.labels_train is None or ds.labels_test is None:
            raise ValueError(
                f"data.name: the fort study needs a classification dataset, got {config.data.name!r}"
            )
        k = int(ds.n_classes or 0)
        x, xt = ds.x_train.to(device), ds.x_test.to(device)
        lab, lab_t = ds.labels_train.to(device), ds.labels_test.to(device)
        if tc.loss == "mse":
            y = torch.nn.functional.one_hot(lab, k).to(torch.float64)
            yt = torch.nn.functional.one_hot(lab_t, k).to(torch.float64)
        else:
            y, yt = lab, lab_t
        steps = tc.steps
        spawns = spawn_schedule(p, steps)
        equal = equal_schedule(steps, p.n_equal)
        logs = log_schedule(steps, p.n_log)
        parametrization = "ntk" if p.model_kind == "wide_ntk" else p.parametrization
        net = build_description(p, k).build(
            ds.input_shape,
            parametrization=parametrization,
            seed=config.seed,
            dtype=torch.float64,
            device=device,
        )
        probe = x[balanced_probe(ds.labels_train, p.probe_per_class).to(device)]
        parents: dict[int, torch.nn.Module] = {}

        def keep(model: torch.nn.Module, step: int) -> dict[str, float]:
            if step in spawns:
                parents[step] = copy.deepcopy(model)
            return {}

        args = tc.fit_kwargs(seed=config.seed, eval_every=max(1, steps // 10))
        if p.batch == "full":
            args.update(optimizer="gd", batch_size=None, momentum=0.0)
        if p.model_kind == "wide_ntk" and p.control_learning_rate is not None:
            args["learning_rate"] = p.control_learning_rate
        snaps = train.Snapshots(steps=(*equal, *logs, *spawns), probe=probe, outputs=False, hooks=(keep,))
        res = train.fit(net, x, y, **{**args, "snapshots": snaps})
        kernels = {
            s.step: s.ntk for s in res.snapshots if s.ntk is not None and bool(torch.isfinite(s.ntk).all())
        }
        m: dict[str, MetricValue] = {
            "status": "diverged" if res.diverged else "completed",
            "message": res.message,
            "n_params": int(train.trainable_vector(net).numel()),
            "train_loss_final": finite_or_none(res.final_train_loss),
            "steps": steps,
            "n_test": int(xt.shape[0]),
            "optimizer": str(args["optimizer"]),
            "learning_rate": float(args["learning_rate"]),
        }
        m["test_loss_final"], m["test_error_final"] = (
            finite_or_none(v) for v in _test_scores(net, xt, yt, tc.loss)
        )
        art: dict[str, np.ndarray] = {}
        for name, sched in (("equal", equal), ("log", logs)):
            taken = [s for s in sched if s in kernels]
            vel = (
                metrics.kernel_velocity([kernels[s] for s in taken], taken).numpy()
                if len(taken) >= 2
                else np.zeros(0)
            )
            art[f"{name}_step"] = np.asarray(taken, dtype=np.float64)
            art[f"velocity_{name}"] = np.asarray(vel, dtype=np.float64)
            art[f"velocity_{name}_t0"] = np.asarray(taken[:-1], dtype=np.float64)
        if kernels:
            k0 = kernels[min(kernels)]
            art["kernel_distance_equal"] = np.asarray(
                [metrics.kernel_distance(k0, kernels[int(s)]) for s in art["equal_step"]], dtype=np.float64
            )
        summary = fixed_dt_summary(art["velocity_equal"], art["velocity_equal_t0"], steps, p.late_fraction)
        m.update({f"velocity_{key}": finite_or_none(v) for key, v in summary.items()})
        if res.diverged:
            return RunOutput(metrics=m, artifacts=art)

        alphas = np.linspace(0.0, 1.0, p.n_alpha)
        curves: dict[str, list[float]] = {c: [] for c in SPAWN_CURVES}
        paths = []
        seeds = (CHILD_SEED_OFFSET * config.seed + 1, CHILD_SEED_OFFSET * config.seed + 2)
        for t_spawn in sorted(parents):
            fit_args = {**args, "steps": steps - t_spawn}
            row, path = spawn(parents[t_spawn], (x, y), (xt, yt), fit_args, seeds, alphas)
            paths.append(path)
            row["spawn_step"] = float(t_spawn)
            for key, v in row.items():
                curves[key].append(v)
        art.update({c: np.asarray(v, dtype=np.float64) for c, v in curves.items()})
        art["alphas"] = alphas
        art["path_train_loss"] = np.asarray(paths, dtype=np.float64)
        for key in (
            "barrier_train_loss",
            "barrier_test_error",
            "gap_test_loss",
            "gap_test_error",
            "child_distance",
        ):
            m[f"{key}_first"] = finite_or_none(curves[key][0])
            m[f"{key}_last"] = finite_or_none(curves[key][-1])
        m["n_spawn"] = len(curves["spawn_step"])
        return RunOutput(metrics=m, artifacts=art)


__all__ = ["FortParams", "FortStudy", "build_description", "spawn_schedule"]
