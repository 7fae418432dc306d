"""The one training loop: full-batch gradient descent, minibatch SGD or Adam on MSE or cross-entropy.

Divergence (the shared rule of :mod:`tangentlab.train.divergence`: a NaN/inf loss, a loss above
``divergence_factor`` times the first one, or a loss still doubling over the last evaluations) ends the run and is
recorded in the :class:`TrainResult` (``status="diverged"``), not raised. Bad arguments raise before the model is
touched. Snapshots (eNTK on a probe, distance from init, losses) are taken by :mod:`tangentlab.train.snapshots`.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn

from tangentlab.metrics import accuracy
from tangentlab.train import divergence
from tangentlab.train._checks import check_choice, check_inputs, check_targets, match_outputs, param_dtype
from tangentlab.train.losses import LOSSES, LossName, compute_loss
from tangentlab.train.snapshots import Snapshot, Snapshots, take_snapshot, trainable_vector

OptimizerName = Literal["gd", "sgd", "adam"]
OPTIMIZERS: tuple[str, ...] = ("gd", "sgd", "adam")
Status = Literal["completed", "early_stopped", "diverged"]
ValMetric = Literal["loss", "accuracy"]


@dataclass(frozen=True)
class EarlyStopping:
    """Stop when the validation metric has not improved for ``patience`` evaluations.

    Attributes:
        metric: ``"loss"`` (lower is better) or ``"accuracy"`` (higher is better), on ``(x_val, y_val)``.
        patience: evaluations without an improvement larger than ``min_delta`` before stopping.
        min_delta: smallest change that counts as an improvement.
        restore_best: load the parameters of the best evaluation when stopping or finishing.
    """

    metric: ValMetric = "loss"
    patience: int = 10
    min_delta: float = 0.0
    restore_best: bool = True

    def __post_init__(self) -> None:
        check_choice("metric", self.metric, ("loss", "accuracy"))
        if self.patience < 1:
            raise ValueError(f"patience: expected an integer >= 1, got {self.patience!r}")


@dataclass
class History:
    """Per-step and per-evaluation records.

    Attributes:
        batch_loss: loss of the batch used at each update (the full training loss for ``"gd"``).
        eval_step: steps at which the evaluations below were taken.
        train_loss: full training loss at each evaluation.
        val_loss: validation loss at each evaluation (empty without validation data).
        val_accuracy: validation accuracy at each evaluation (classification only; else empty).
    """

    batch_loss: list[float] = field(default_factory=list)
    eval_step: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)


@dataclass
class TrainResult:
    """Outcome of :func:`fit`.

    Attributes:
        status: ``"completed"``, ``"early_stopped"`` or ``"diverged"``.
        steps_run: updates applied (for a diverged run: up to the step whose loss was bad).
        message: human-readable reason for the status.
        history: losses and validation metrics.
        snapshots: records taken at the requested steps.
        final_train_loss: full training loss at the end (NaN/inf if diverged).
        best_step: step of the best validation evaluation (None without early stopping).
        best_val: best validation metric (None without early stopping).
    """

    status: Status
    steps_run: int
    message: str
    history: History
    snapshots: list[Snapshot]
    final_train_loss: float
    best_step: int | None = None
    best_val: float | None = None

    @property
    def diverged(self) -> bool:
        """Whether the run ended by divergence."""
        return self.status == "diverged"


def _make_optimizer(
    name: str, params: list[nn.Parameter], lr: float, momentum: float, weight_decay: float
) -> torch.optim.Optimizer:
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)


def _full_loss(model: nn.Module, loss: LossName, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float(compute_loss(loss, model(x), y))


def fit(
    model: nn.Module,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    *,
    steps: int,
    learning_rate: float,
    loss: LossName = "mse",
    optimizer: OptimizerName = "gd",
    batch_size: int | None = None,
    momentum: float = 0.0,
    weight_decay: float = 0.0,
    seed: int = 0,
    x_val: torch.Tensor | None = None,
    y_val: torch.Tensor | None = None,
    eval_every: int = 10,
    early_stopping: EarlyStopping | None = None,
    snapshots: Snapshots | None = None,
    divergence_factor: float = divergence.FACTOR,
) -> TrainResult:
    """Train ``model`` in place and return what happened.

    ``"gd"`` is full-batch gradient descent ``theta <- theta - eta grad L`` (with ``loss="mse"`` exactly the dynamics
    that :func:`tangentlab.predict.gradient_descent_mse` describes for the linearized network); ``"sgd"`` draws
    minibatches of ``batch_size`` from a per-epoch permutation seeded by ``seed``; ``"adam"`` is
    ``torch.optim.Adam`` (full batch unless ``batch_size`` is given).

    Args:
        model: any module mapping (n, ...) inputs to (n, ...) outputs.
        x_train: training inputs; cast to the parameters' dtype.
        y_train: targets: floats shaped like the outputs for MSE ((n,) allowed for (n, 1) outputs); class
            indices (n,) or probabilities (n, C) for cross-entropy.
        steps: number of updates.
        learning_rate: step size.
        loss: ``"mse"`` (``(1/(2n)) sum ||f - y||^2``) or ``"cross_entropy"``.
        optimizer: ``"gd"``, ``"sgd"`` or ``"adam"``.
        batch_size: minibatch size; required for ``"sgd"``, must be None for ``"gd"``.
        momentum: SGD/GD momentum.
        weight_decay: L2 weight decay of the torch optimizer.
        seed: seed of the minibatch order.
        x_val: validation inputs (needed for early stopping).
        y_val: validation targets.
        eval_every: evaluate training/validation losses every this many steps (and at the end).
        early_stopping: stopping rule on the validation metric, or None.
        snapshots: what to record at which steps, or None.
        divergence_factor: a loss above this multiple of the first loss counts as divergence (default
            :data:`tangentlab.train.divergence.FACTOR`; the whole rule is in :mod:`tangentlab.train.divergence`).

    Returns:
        A :class:`TrainResult`; a divergent run has ``status="diverged"`` and the reason in ``message`` (the model
        keeps the parameters it reached; the history stops at the bad step). Nothing is raised for divergence.

    Raises:
        ValueError / TypeError: for bad options, empty or non-finite data, or targets that do not match the
            model's outputs — raised before any parameter changes.
    """
    check_choice("loss", loss, LOSSES)
    check_choice("optimizer", optimizer, OPTIMIZERS)
    if int(steps) != steps or steps < 0:
        raise ValueError(f"steps: expected an integer >= 0, got {steps!r}")
    if not (learning_rate > 0 and math.isfinite(learning_rate)):
        raise ValueError(f"learning_rate: expected a finite number > 0, got {learning_rate!r}")
    if not divergence_factor > 1:
        raise ValueError(f"divergence_factor: expected a number > 1, got {divergence_factor!r}")
    if eval_every < 1:
        raise ValueError(f"eval_every: expected an integer >= 1, got {eval_every!r}")
    dtype = param_dtype(model)
    x = check_inputs("x_train", x_train, dtype)
    n = x.shape[0]
    y = check_targets("y_train", y_train, n, "x_train", dtype)
    if optimizer == "sgd" and batch_size is None:
        raise ValueError("batch_size: required for optimizer='sgd' (use optimizer='gd' for full batches)")
    if optimizer == "gd" and batch_size is not None:
        raise ValueError(f"batch_size: must be None for optimizer='gd' (full batch), got {batch_size!r}")
    if batch_size is not None and not 1 <= batch_size <= n:
        raise ValueError(f"batch_size: expected an integer in [1, {n}], got {batch_size!r}")
    with torch.no_grad():
        y = match_outputs(loss, model(x[: min(n, 4)]), y, "y_train")
    xv = yv = None
    if (x_val is None) != (y_val is None):
        raise ValueError("x_val, y_val: give both or neither")
    if x_val is not None:
        xv = check_inputs("x_val", x_val, dtype)
        yv = check_targets("y_val", y_val, xv.shape[0], "x_val", dtype)
        with torch.no_grad():
            yv = match_outputs(loss, model(xv[:4]), yv, "y_val")
    if early_stopping is not None and xv is None:
        raise ValueError("early_stopping: needs validation data; pass x_val and y_val")
    want_acc = loss == "cross_entropy" or (early_stopping is not None and early_stopping.metric == "accuracy")

    params = [p for p in model.parameters() if p.requires_grad]
    theta0 = trainable_vector(model)
    opt = _make_optimizer(optimizer, params, learning_rate, momentum, weight_decay)
    gen = torch.Generator().manual_seed(seed)
    history = History()
    snaps: list[Snapshot] = []
    snap_steps = set(snapshots.steps) if snapshots is not None else set()
    best_val: float | None = None
    best_step: int | None = None
    best_state: dict[str, torch.Tensor] | None = None
    since_best = 0
    order = torch.empty(0, dtype=torch.long)
    cursor = 0
    reference = math.nan
    status: Status = "completed"
    message = f"completed {steps} steps"
    step = 0

    def evaluate(at: int) -> bool:
        """Record losses at step ``at``; return True to stop early."""
        nonlocal best_val, best_step, best_state, since_best
        history.eval_step.append(at)
        history.train_loss.append(_full_loss(model, loss, x, y))
        if xv is None or yv is None:
            return False
        with torch.no_grad():
            out = model(xv)
            history.val_loss.append(float(compute_loss(loss, out, yv)))
            if want_acc:
                history.val_accuracy.append(accuracy(out, yv))
        if early_stopping is None:
            return False
        higher = early_stopping.metric == "accuracy"
        value = history.val_accuracy[-1] if higher else history.val_loss[-1]
        sign = 1.0 if higher else -1.0
        if best_val is None or sign * (value - best_val) > early_stopping.min_delta:
            best_val, best_step, since_best = value, at, 0
            if early_stopping.restore_best:
                best_state = copy.deepcopy(model.state_dict())
            return False
        since_best += 1
        return since_best >= early_stopping.patience

    for step in range(steps + 1):
        if step in snap_steps and snapshots is not None:
            snaps.append(take_snapshot(snapshots, model, step, _full_loss(model, loss, x, y), theta0))
        if step == steps:
            break
        if step % eval_every == 0 and evaluate(step):
            patience = early_stopping.patience if early_stopping is not None else 0
            status, message = "early_stopped", f"no validation improvement for {patience} evaluations"
            break
        if batch_size is None:
            xb, yb = x, y
        else:
            if cursor + batch_size > order.numel():
                order, cursor = torch.randperm(n, generator=gen), 0
            idx = order[cursor : cursor + batch_size]
            cursor += batch_size
            xb, yb = x[idx], y[idx]
        opt.zero_grad(set_to_none=True)
        batch_loss = compute_loss(loss, model(xb), yb)
        value = float(batch_loss.detach())
        if step == 0:
            reference = value
        history.batch_loss.append(value)
        reason = divergence.reason([value], reference, factor=divergence_factor)
        if reason is not None:
            status, message = "diverged", f"diverged at step {step}: {reason}"
            break
        batch_loss.backward()
        opt.step()

    final = _full_loss(model, loss, x, y)
    if status != "diverged":
        initial = reference if math.isfinite(reference) else final
        evaluated = bool(history.eval_step) and history.eval_step[-1] == step
        losses = history.train_loss if evaluated else [*history.train_loss, final]
        reason = divergence.reason(losses, initial, factor=divergence_factor)
        if reason is not None:
            status, message = "diverged", f"diverged at step {step}: {reason}"
        else:
            if not history.eval_step or history.eval_step[-1] != step:
                evaluate(step)
            if best_state is not None:
                model.load_state_dict(best_state)
                final = _full_loss(model, loss, x, y)
                message += f"; restored the parameters of step {best_step}"
    return TrainResult(status, step, message, history, snaps, final, best_step, best_val)
