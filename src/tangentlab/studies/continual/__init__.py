"""Study ``continual``: do wide networks forget less, and only when tasks are not trained to convergence?

Claims tested. Mirzadeh et al. 2022 ("Wide neural networks forget less catastrophically", arXiv 2110.11526) find
that average forgetting falls with width, and explain it by wide nets training lazily: in the kernel (NTK) regime
the change of the function on an earlier task's inputs is set by the cross-task kernel
(:mod:`tangentlab.studies.continual.kernel`). Wenger, Dangel & Kristiadi 2023 ("On the disconnect between theory
and practice of neural networks", arXiv 2310.00137) argue that this holds only when tasks are *not* trained to high
accuracy (early stopping); trained to convergence on each task, width does not reduce forgetting. The study trains
each width in both regimes, beside the linearized net and the infinite-width kernel prediction, and compares the
slopes of forgetting against width.

One run (one grid point: ``width``, ``parametrization``, ``task_type``, ``regime``, seed):

1. Tasks (:mod:`tangentlab.studies.continual.tasks`) from ``config.data`` (flat inputs, float64): ``split``
   (task-incremental, one masked head of ``classes_per_task`` outputs per task, as Mirzadeh et al. do for split
   CIFAR-100) or ``permuted`` (one shared head over all classes, a fixed input permutation per task, seeded by the
   run's seed; as they do for permuted/rotated MNIST).
2. Model: ``config.model`` or the default one-hidden-layer ReLU MLP; every ``Dense`` but the readout gets
   ``width`` units, the readout one output per class. Built with the run's seed under ``parametrization``.
3. Loss and optimizer: MSE ``(1/(2n)) sum_i ||f_head(x_i) - y_i||^2`` on one-hot targets (the loss of the kernel
   theory), with ``train.optimizer``. For GD/SGD with ``lr_fraction`` set, ``eta = lr_fraction * n_0 /
   lambda_max(Theta_0)`` (per-output eNTK at init on task 0's training inputs), so every width is equally far from
   the edge of stability; otherwise ``train.learning_rate``.
4. Regimes, applied to every task: ``converged`` — train until the task's training accuracy reaches
   ``converged_accuracy`` (checked every ``check_every`` steps) or ``train.steps`` steps have run; ``early_stopped``
   — train ``early_steps`` steps (or stop earlier when ``early_accuracy`` is set and reached). Training runs in
   chunks of ``check_every`` steps of :func:`tangentlab.train.fit` (exact for GD; Adam's moments restart per
   chunk). The training accuracy reached and the steps used are recorded per task, so "converged" is verified.
5. The same protocol for the linearized net (:func:`tangentlab.train.linearize` at init, trained by ``fit`` with
   the same optimizer and rate: the finite-width kernel regime) and for the infinite-width NTK in closed form
   (:func:`tangentlab.studies.continual.kernel.task_update`; ``f_0`` one draw of the NNGP prior, or 0 with
   ``kernel_f0: zero``; gradient flow at
   ``eta_inf = (lr_fraction or 0.5) * n_0 / lambda_max(Theta_inf)``, same stopping rule on a time grid; with GD
   momentum ``beta`` the grid's steps count ``1 / (1 - beta)`` times, the heavy-ball effective rate).
6. Metrics, for ``net``, ``lin`` and ``ntk``: the accuracy matrix ``A[i, j]`` (test accuracy on task ``j`` after
   task ``i``), ``forgetting_*`` (average forgetting), ``final_acc_*``, ``learning_acc_*``, ``min_train_acc_*``
   (lowest training accuracy reached on a task), ``mean_steps_*``; artifacts ``acc_*`` (T, T), ``train_acc_*`` and
   ``steps_*`` (T,).

The report (:mod:`tangentlab.studies.continual.report`) fits forgetting against log2(width) per regime and task
type and compares the slopes of the two regimes.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt
from torch import nn

from tangentlab import arch, empirical_ntk, metrics, train
from tangentlab.runner.config import RunConfig
from tangentlab.studies import register
from tangentlab.studies._base import MetricValue, RunOutput, Study
from tangentlab.studies._models import set_hidden_width
from tangentlab.studies._sections import needs_mse
from tangentlab.studies.continual.kernel import sample_prior_outputs, task_update, time_to_accuracy
from tangentlab.studies.continual.tasks import (
    Task,
    TaskHead,
    average_forgetting,
    build_tasks,
    final_accuracy,
    learning_accuracy,
)

MODELS: tuple[str, ...] = ("net", "lin", "ntk")


class ContinualParams(BaseModel):
    """Parameters of the ``continual`` study (see the module docstring).

    Attributes:
        width: units of every hidden ``Dense`` layer.
        parametrization: ``"ntk"``, ``"standard"`` or ``"mup"``.
        task_type: ``"split"`` (multi-head), ``"permuted"`` or ``"rotated"`` (shared head; rotated: square
            single-channel images, 22.5° more per task).
        regime: ``"converged"``, ``"early_stopped"`` or ``"fixed_budget"`` (Mirzadeh et al. 2022's protocol: exactly
            ``budget_steps`` steps per task, the same for every width, whatever accuracy they reach).
        n_tasks: tasks in the sequence (split: None = all; permuted: required, default 3).
        classes_per_task: classes of a split task.
        converged_accuracy: training accuracy at which a task counts as converged (budget: ``train.steps``).
        early_steps: steps per task in the early-stopped regime.
        early_accuracy: stop an early-stopped task at this training accuracy (None: always ``early_steps``).
        budget_steps: steps per task in the fixed-budget regime.
        check_every: steps between training-accuracy checks.
        lr_fraction: GD/SGD rate as a fraction of ``n_0 / lambda_max(Theta_0)``; None uses
            ``train.learning_rate``.
        linearized: also train the linearized net.
        kernel: also compute the infinite-width NTK prediction.
        kernel_f0: outputs at init of the NTK prediction: ``"sample"`` (one draw of the NNGP prior, seeded by the
            run's seed: one infinitely wide net) or ``"zero"`` (the mean over inits).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    width: PositiveInt = 256
    parametrization: Literal["ntk", "standard", "mup"] = "ntk"
    task_type: Literal["split", "permuted", "rotated"] = "split"
    regime: Literal["converged", "early_stopped", "fixed_budget"] = "converged"
    n_tasks: PositiveInt | None = 3
    classes_per_task: PositiveInt = 2
    converged_accuracy: float = Field(default=0.99, gt=0.0, le=1.0)
    early_steps: PositiveInt = 20
    early_accuracy: float | None = Field(default=None, gt=0.0, le=1.0)
    budget_steps: PositiveInt = 20
    check_every: PositiveInt = 10
    lr_fraction: PositiveFloat | None = 0.5
    linearized: bool = True
    kernel: bool = True
    kernel_f0: Literal["sample", "zero"] = "sample"


@dataclass(frozen=True)
class StopRule:
    """Train a task until its training accuracy reaches ``target`` (checked every ``check_every`` steps, and
    before the first step) or ``budget`` steps have run; ``target=None`` trains exactly ``budget`` steps."""

    target: float | None
    budget: int
    check_every: int

    def times(self) -> list[float]:
        """The check points 0, c, 2c, ..., budget (just ``[budget]`` without a target)."""
        if self.target is None:
            return [float(self.budget)]
        grid = [*range(0, self.budget, self.check_every), self.budget]
        return [float(t) for t in grid]


@dataclass
class SequenceResult:
    """What training one model on the task sequence gives."""

    acc: np.ndarray  # (T, T) test accuracies
    train_acc: np.ndarray  # (T,) training accuracy reached on each task
    steps: np.ndarray  # (T,) steps used on each task
    diverged: str | None = None  # the divergence message, if any


def _accuracy(model: nn.Module, task: Task, split: str = "test") -> float:
    x, y = (task.x_test, task.y_test) if split == "test" else (task.x_train, task.y_train)
    with torch.no_grad():
        return metrics.accuracy(TaskHead(model, task.columns)(x), y)


def train_sequence(
    model: nn.Module, tasks: list[Task], rule: StopRule, fit_args: dict[str, Any]
) -> SequenceResult:
    """Train ``model`` in place on ``tasks`` in order under ``rule`` with :func:`tangentlab.train.fit`."""
    n = len(tasks)
    out = SequenceResult(np.full((n, n), np.nan), np.full(n, np.nan), np.zeros(n))
    seed = int(fit_args.get("seed", 0))
    for i, task in enumerate(tasks):
        head = TaskHead(model, task.columns)
        done, chunk = 0, 0
        while done < rule.budget:
            if rule.target is not None and _accuracy(model, task, "train") >= rule.target:
                break
            steps = rule.budget - done if rule.target is None else min(rule.check_every, rule.budget - done)
            args = {**fit_args, "steps": steps, "seed": seed + 7919 * i + chunk, "eval_every": steps}
            res = train.fit(head, task.x_train, task.y_train, **args)
            done, chunk = done + res.steps_run, chunk + 1
            if res.diverged:
                out.diverged = f"task {i}: {res.message}"
                return out
        out.steps[i], out.train_acc[i] = done, _accuracy(model, task, "train")
        out.acc[i] = [_accuracy(model, t) for t in tasks]
    return out


def kernel_sequence(
    theta: torch.Tensor,
    tasks: list[Task],
    rule: StopRule,
    learning_rate: float,
    f0: torch.Tensor,
    time_scale: float = 1.0,
) -> SequenceResult:
    """The same protocol for the infinite-width NTK in closed form, starting from the outputs ``f0`` (N, O).

    ``theta`` is the per-output NTK over every task's training inputs then test inputs, in task order; the
    stopping rule's steps are multiplied by ``time_scale`` (``1 / (1 - momentum)``: heavy-ball GD with momentum
    ``beta`` moves like gradient flow at the rate ``eta / (1 - beta)`` once its velocity has built up). The steps
    recorded are the rule's steps (unscaled).
    """
    n = len(tasks)
    out = SequenceResult(np.full((n, n), np.nan), np.full(n, np.nan), np.zeros(n))
    sizes = [(t.x_train.shape[0], t.x_test.shape[0]) for t in tasks]
    starts = np.cumsum([0] + [a + b for a, b in sizes])
    train_rows = [torch.arange(s, s + a) for s, (a, _) in zip(starts, sizes, strict=False)]
    test_rows = [torch.arange(s + a, s + a + b) for s, (a, b) in zip(starts, sizes, strict=False)]
    f = f0.to(torch.float64)
    times = [t * time_scale for t in rule.times()]
    for i, task in enumerate(tasks):
        target = rule.target if rule.target is not None else math.inf
        t, _ = time_to_accuracy(
            theta,
            f,
            train_rows[i],
            task.columns,
            task.y_train,
            times=times,
            learning_rate=learning_rate,
            target=target,
        )
        f = task_update(theta, f, train_rows[i], task.columns, task.y_train, t=t, learning_rate=learning_rate)
        cols = list(task.columns)
        out.steps[i] = t / time_scale
        out.train_acc[i] = metrics.accuracy(f[train_rows[i]][:, cols], task.y_train)
        out.acc[i] = [
            metrics.accuracy(f[test_rows[j]][:, list(tj.columns)], tj.y_test) for j, tj in enumerate(tasks)
        ]
    return out


def on(task: Task, device: str) -> Task:
    """``task`` with its tensors on ``device``."""
    moved = {f: getattr(task, f).to(device) for f in ("x_train", "y_train", "x_test", "y_test")}
    return dataclasses.replace(task, **moved)


def _summary(key: str, seq: SequenceResult) -> dict[str, MetricValue]:
    if seq.diverged is not None:
        return {
            f"{m}_{key}": None
            for m in ("forgetting", "final_acc", "learning_acc", "min_train_acc", "mean_steps")
        }
    return {
        f"forgetting_{key}": average_forgetting(seq.acc),
        f"final_acc_{key}": final_accuracy(seq.acc),
        f"learning_acc_{key}": learning_accuracy(seq.acc),
        f"min_train_acc_{key}": float(seq.train_acc.min()),
        f"mean_steps_{key}": float(seq.steps.mean()),
    }


@register
class ContinualStudy(Study):
    """Forgetting against width in two training regimes (Mirzadeh et al. 2022; Wenger et al. 2023)."""

    name: ClassVar[str] = "continual"
    title: ClassVar[str] = "Continual learning: do wide networks forget less, trained to convergence or not?"
    citation: ClassVar[str] = (
        "Mirzadeh et al. 2022, Wide Neural Networks Forget Less Catastrophically (arXiv 2110.11526); Wenger, Dangel "
        "& Kristiadi 2023, On the Disconnect Between Theory and Practice of Neural Networks (arXiv 2310.00137)"
    )
    claim: ClassVar[str] = (
        "Wider networks forget less (Mirzadeh et al. 2022), as the kernel regime suggests — but only when tasks are "
        "not trained to high accuracy (early stopping); trained to convergence on each task, width does not reduce "
        "forgetting (Wenger et al. 2023)."
    )
    Params: ClassVar[type[BaseModel]] = ContinualParams
    default_model: ClassVar[dict[str, Any] | None] = {
        "layer": "Serial",
        "layers": [{"layer": "Dense", "width": 256}, {"layer": "ReLU"}, {"layer": "Dense", "width": 10}],
    }

    def run(self, config: RunConfig, *, device: str = "cpu") -> RunOutput:
        """Train the net, its linearization and the kernel on the task sequence and measure forgetting."""
        p = ContinualParams.model_validate(config.params)
        tc = config.train
        needs_mse(tc.loss, self.name, "the kernel theory's loss")
        if tc.momentum >= 1:
            raise ValueError(f"train.momentum: expected a value in [0, 1), got {tc.momentum}")
        if config.data.target not in (None, "onehot"):
            raise ValueError(f"data.target: expected 'onehot' (or unset), got {config.data.target!r}")
        ds = config.data.load()
        tasks = build_tasks(
            ds, p.task_type, n_tasks=p.n_tasks, classes_per_task=p.classes_per_task, seed=config.seed
        )
        n_classes = int(ds.n_classes or 0)
        description = set_hidden_width(config.model or dict(self.default_model or {}), p.width, n_classes)
        net = arch.from_dict(description).build(
            ds.input_shape,
            parametrization=p.parametrization,
            seed=config.seed,
            dtype=torch.float64,
            device=device,
        )
        # the nets train on `device`; the infinite-width prediction below stays on the CPU tensors of `tasks`
        on_device = [on(task, device) for task in tasks]
        x0 = on_device[0].x_train
        n0 = x0.shape[0]
        ntk0 = (empirical_ntk(net, x0, outputs="trace") / n_classes).to(torch.float64)
        eig0 = torch.linalg.eigvalsh(ntk0)
        lam = float(eig0[-1])
        spectral = p.lr_fraction is not None and tc.optimizer in ("gd", "sgd")
        lr = (
            train.spectral_learning_rate(ntk0, p.lr_fraction or 0.5, n=n0, eigenvalues=eig0)
            if spectral
            else tc.learning_rate
        )
        if p.regime == "converged":
            rule = StopRule(p.converged_accuracy, tc.steps, p.check_every)
        elif p.regime == "fixed_budget":
            rule = StopRule(None, p.budget_steps, p.check_every)
        else:
            rule = StopRule(p.early_accuracy, p.early_steps, p.check_every)
        fit_args = tc.fit_kwargs(learning_rate=lr, seed=config.seed)
        lin = train.linearize(net) if p.linearized else None
        results = {"net": train_sequence(net, on_device, rule, fit_args)}
        if lin is not None:
            results["lin"] = train_sequence(lin, on_device, rule, fit_args)
        m: dict[str, MetricValue] = {
            "learning_rate": lr,
            "lambda_max": lam,
            "n_tasks": len(tasks),
            "n_train_per_task": float(np.mean([t.x_train.shape[0] for t in tasks])),
            "target_accuracy": rule.target,
            "step_budget": rule.budget,
        }
        if p.kernel:
            x_all = torch.cat([torch.cat([t.x_train, t.x_test]) for t in tasks])
            kern = arch.from_dict(description).kernel(x_all, parametrization=p.parametrization)
            theta = kern.ntk.to(torch.float64)
            if p.kernel_f0 == "sample":
                f0, m["kernel_f0_jitter"] = sample_prior_outputs(kern.nngp, n_classes, config.seed)
            else:
                f0 = torch.zeros(theta.shape[0], n_classes, dtype=torch.float64)
            lr_inf = train.spectral_learning_rate(theta[:n0, :n0], p.lr_fraction or 0.5, n=n0)
            scale = 1.0 / (1.0 - tc.momentum) if tc.optimizer in ("gd", "sgd") else 1.0
            results["ntk"] = kernel_sequence(theta, tasks, rule, lr_inf, f0, scale)
            m["kernel_learning_rate"] = lr_inf
        bad = [f"{k}: {s.diverged}" for k, s in results.items() if s.diverged is not None]
        m["status"] = "diverged" if bad else "completed"
        m["message"] = "; ".join(bad) if bad else f"{len(tasks)} tasks"
        artifacts: dict[str, np.ndarray] = {}
        for key in MODELS:
            seq = results.get(key)
            if seq is None:
                continue
            m.update(_summary(key, seq))
            artifacts[f"acc_{key}"] = seq.acc
            artifacts[f"train_acc_{key}"] = seq.train_acc
            artifacts[f"steps_{key}"] = seq.steps
            if rule.target is not None and seq.diverged is None:
                m[f"reached_target_{key}"] = bool((seq.train_acc >= rule.target).all())
        return RunOutput(metrics=m, artifacts=artifacts)
