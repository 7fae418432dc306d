"""The audit's measurements: the eNTK at init over seeds, training beside the linearized model, and predictions.

1. **Spread at init.** The trace eNTK on the probe inputs for ``k`` seeds, ``Theta_s`` (p, p). Reported: the
   relative seed-to-seed standard deviation ``sqrt(sum_s ||Theta_s - mean||_F^2 / (k - 1)) / ||mean||_F``; Hanin &
   Nica 2020's per-input dispersion ``mean_x std_s Theta_s(x, x) / mean_s Theta_s(x, x)``; and the mean pairwise
   kernel distance ``S(Theta_s, Theta_s')`` (Fort et al. 2020, eq. 3).
2. **Training.** The net (first seed) and its linearization ``f_0 + J_0 (theta - theta_0)`` (Lee et al. 2019,
   eq. 5; :func:`tangentlab.train.linearize`) are trained with the same optimizer, rate and steps on MSE
   ``L = (1/(2n)) sum_i ||f(x_i) - y_i||^2`` by :func:`tangentlab.train.fit`. At evenly spaced checkpoints
   (:class:`tangentlab.train.Snapshots`): the probe eNTK of the net, the relative parameter change, and both
   models' test outputs. From them: ``S(0, t)``, the velocity ``v = phi(t_i, t_{i+1}) / (t_{i+1} - t_i)``, the angle
   the kernel turns per step (Fort et al. 2020's velocity, as an angle) and the gap ``||f_t - f_t^lin||_F / ||f_t^lin||_F`` on the test inputs (Lee et al. 2019).
3. **Predictions.** Test error and MSE of the trained net, the trained linearized model, and NTK regression with the
   init eNTK from :func:`tangentlab.predict.gradient_descent_mse` with ``f_0``: at time ``t = steps`` in steps of
   the learning rate for GD/SGD (the linearized GD trajectory as gradient flow), and at ``t = inf`` (the kernel
   interpolant) for Adam, which has no kernel-regression counterpart. At finite ``t`` the kernel is the full eNTK
   (n, n, O, O), which couples the outputs exactly as the linearized network does, when
   ``n * O <= FULL_KERNEL_MAX``; otherwise (and always at ``t = inf``) the per-output kernel trace / O (exact for
   i.i.d. outputs, the infinite-width case). At ``t = inf`` the full kernel of a net with not many more parameters
   than ``n * O`` is near-singular and its interpolant is dominated by rounding. ``kernel`` says which was used;
   the solver and condition number are recorded (``solve``).

Default learning rate: for GD/SGD ``0.5 n / lambda_max(Theta_0)`` of that train eNTK (as an (nO, nO) matrix for the
full kernel), half the stability limit ``2 n / lambda_max`` of the linearized dynamics and below Lee et al.'s
``2 n / (lambda_min + lambda_max)``; for Adam ``1e-3``.
"""

from __future__ import annotations

import itertools
import math
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import torch
from torch import nn
from tqdm.auto import tqdm

from tangentlab import metrics, predict, train
from tangentlab.kernels import empirical_ntk
from tangentlab.train.loop import OptimizerName

GD_LR_FRACTION = 0.5
ADAM_LR = 1e-3
#: Largest ``n_train * outputs`` for which NTK regression uses the full (n, n, O, O) eNTK.
FULL_KERNEL_MAX = 4096


@dataclass(frozen=True)
class Measurements:
    """Everything the audit measured (tensors detached, float64).

    Attributes:
        seeds: init seeds of the spread measurement; the first one is the trained net's.
        kernel_spread: relative seed-to-seed std of the probe eNTK (Frobenius; see the module docstring).
        diagonal_dispersion: mean over probe inputs of ``std_s Theta_s(x,x) / mean_s Theta_s(x,x)``.
        seed_distance: mean pairwise kernel distance between seeds.
        learning_rate: the step size used; lr_rule says how it was chosen.
        lr_rule: ``"given"``, ``"0.5 n / lambda_max(Theta_0)"`` or ``"Adam default 1e-3"``.
        ntk_time: time of the NTK-regression prediction in steps (None = infinity).
        kernel: the eNTK of NTK regression: ``"full (n, n, O, O)"`` or ``"per-output (trace / O)"``.
        solve: how NTK regression solved its kernel (:meth:`tangentlab.predict.SolveInfo.to_dict`).
        status: ``"completed"`` or ``"diverged"``; message: the training loop's message(s).
        steps: checkpoint steps at which the trajectories below were recorded.
        kernel_distance: ``S(0, t)`` at each checkpoint.
        kernel_velocity: velocity between consecutive checkpoints (one fewer).
        param_change: ``||theta_t - theta_0|| / ||theta_0||`` at each checkpoint.
        function_gap: ``||f_t - f_t^lin|| / ||f_t^lin||`` on the test inputs at each checkpoint.
        loss_steps, loss_net, loss_lin: training losses of the net and the linearized model.
        test_error: test error rate (classification) per model ``"net"``, ``"lin"``, ``"ntk"``; empty for
            regression.
        test_mse: test MSE ``(1/n) sum ||f - y||^2`` per model.
        seed_kernels: (k, p, p) probe eNTKs at init; ntk_final: (p, p) probe eNTK of the trained net.
        outputs: final test outputs per model.
    """

    seeds: tuple[int, ...]
    kernel_spread: float
    diagonal_dispersion: float
    seed_distance: float
    learning_rate: float
    lr_rule: str
    ntk_time: float | None
    kernel: str
    solve: dict[str, Any]
    status: str
    message: str
    steps: tuple[int, ...]
    kernel_distance: tuple[float, ...]
    kernel_velocity: tuple[float, ...]
    param_change: tuple[float, ...]
    function_gap: tuple[float, ...]
    loss_steps: tuple[int, ...]
    loss_net: tuple[float, ...]
    loss_lin: tuple[float, ...]
    test_error: dict[str, float]
    test_mse: dict[str, float]
    seed_kernels: torch.Tensor = field(repr=False)
    ntk_final: torch.Tensor | None = field(repr=False)
    outputs: dict[str, torch.Tensor] = field(repr=False)

    def criteria_values(self, steps: int, classification: bool) -> dict[str, float]:
        """The numbers the criteria judge (see :mod:`tangentlab.auditing._criteria`); NaN where not measured."""
        nan = math.nan
        done = self.status == "completed" and bool(self.steps) and self.steps[-1] == steps
        velocity = self.kernel_velocity[-1] * steps if done and self.kernel_velocity else nan
        if classification:
            gap = abs(self.test_error["net"] - self.test_error["ntk"]) if done else nan
        else:
            mse_ntk = self.test_mse["ntk"]
            gap = abs(self.test_mse["net"] - mse_ntk) / mse_ntk if done and mse_ntk > 0 else nan
        return {
            "kernel_spread": self.kernel_spread,
            "kernel_distance": self.kernel_distance[-1] if done else nan,
            "kernel_velocity": velocity,
            "param_change": self.param_change[-1] if done else nan,
            "function_gap": max(self.function_gap) if done else nan,
            "error_gap": gap,
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready numbers (no tensors; NaN/inf become None)."""
        skip = {"seed_kernels", "ntk_final", "outputs"}
        return {k: json_ready(v) for k, v in self.__dict__.items() if k not in skip}


def json_ready(value: Any) -> Any:
    """``value`` with tuples as lists and NaN/inf floats as None (strict JSON)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, tuple | list):
        return [json_ready(v) for v in value]
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    return value


def probe_ntk(
    model: nn.Module,
    x1: torch.Tensor,
    x2: torch.Tensor | None = None,
    *,
    outputs: Literal["trace", "full"] = "trace",
) -> torch.Tensor:
    """eNTK in eval mode (as :class:`tangentlab.train.Snapshots` takes it), float64."""
    was_training = model.training
    model.eval()
    try:
        return empirical_ntk(model, x1, x2, outputs=outputs).detach().to(torch.float64)
    finally:
        model.train(was_training)


def _eval_outputs(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return cast(torch.Tensor, model(x).detach().to(torch.float64).clone())
    finally:
        model.train(was_training)


def seed_spread(kernels: torch.Tensor) -> tuple[float, float, float]:
    """``(relative std, diagonal dispersion, mean pairwise distance)`` of (k, p, p) kernels, k >= 2."""
    k = kernels.shape[0]
    mean = kernels.mean(0)
    rel_std = math.sqrt(float((kernels - mean).pow(2).sum()) / (k - 1)) / float(torch.linalg.norm(mean))
    diag = torch.diagonal(kernels, dim1=1, dim2=2)  # (k, p)
    dispersion = float((diag.std(0, unbiased=True) / diag.mean(0)).mean())
    pairs = [metrics.kernel_distance(kernels[i], kernels[j]) for i, j in itertools.combinations(range(k), 2)]
    return rel_std, dispersion, sum(pairs) / len(pairs)


def checkpoint_steps(steps: int, n: int) -> tuple[int, ...]:
    """``n + 1`` evenly spaced integer steps from 0 to ``steps`` (fewer if ``steps < n``), ends included."""
    return tuple(sorted({round(i * steps / n) for i in range(n + 1)}))


class _TestOutputs:
    """Snapshot hook: the model's test outputs (in ``extras["test_outputs"]``), and progress-bar ticks."""

    def __init__(self, x_test: torch.Tensor, bar: Any) -> None:
        self.x_test, self.bar, self.last = x_test, bar, 0

    def __call__(self, model: nn.Module, step: int) -> Mapping[str, Any]:
        self.bar.update(step - self.last)
        self.last = step
        return {"test_outputs": _eval_outputs(model, self.x_test)}


def _bar(total: int, desc: str, progress: bool, unit: str) -> Any:
    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, disable=not progress, leave=False)


@dataclass(frozen=True)
class Setup:
    """How to train: optimizer, learning rate (None: the default rule), minibatch, steps, checkpoints."""

    steps: int
    optimizer: OptimizerName
    learning_rate: float | None
    batch_size: int | None
    checkpoints: int
    probe_size: int
    seeds: tuple[int, ...]


def measure(
    model: nn.Module,
    build: Callable[[int], nn.Module],
    x: torch.Tensor,
    y: torch.Tensor,
    x_test: torch.Tensor,
    y_test: torch.Tensor,
    setup: Setup,
    *,
    classification: bool,
    progress: bool = False,
) -> tuple[Measurements, nn.Module]:
    """Run every measurement of the audit; return them and the trained net.

    Args:
        model: the net to train, built with ``setup.seeds[0]`` (trained in place).
        build: ``seed -> model`` for the other seeds (the user's factory, already checked).
        x, y: training inputs and float targets (n, k).
        x_test, y_test: test inputs and targets.
        setup: optimizer, learning rate, steps, checkpoints, probe size, seeds.
        classification: score test error rates (targets one-hot) besides MSE.
        progress: tqdm bars on stderr.
    """
    n = x.shape[0]
    probe = x[: setup.probe_size]
    kernels = []
    with _bar(len(setup.seeds), "eNTK at init over seeds", progress, "seed") as bar:
        for i, seed in enumerate(setup.seeds):
            kernels.append(probe_ntk(model if i == 0 else build(seed), probe))
            bar.update(1)
    seed_kernels = torch.stack(kernels)
    spread = seed_spread(seed_kernels)

    f0_train, f0_test = _eval_outputs(model, x), _eval_outputs(model, x_test)
    n_out = f0_train[0].numel()
    ntk_time = float(setup.steps) if setup.optimizer in ("gd", "sgd") else None
    full = ntk_time is not None and n * n_out <= FULL_KERNEL_MAX
    with _bar(2, "eNTK on train and test inputs", progress, "kernel") as bar:
        theta_xx = probe_ntk(model, x, outputs="full") if full else probe_ntk(model, x) / n_out
        bar.update(1)
        theta_tx = (
            probe_ntk(model, x_test, x, outputs="full") if full else probe_ntk(model, x_test, x) / n_out
        )
        bar.update(1)
    if setup.learning_rate is not None:
        lr, rule = setup.learning_rate, "given"
    elif setup.optimizer == "adam":
        lr, rule = ADAM_LR, "Adam default 1e-3"
    else:
        matrix = theta_xx.permute(0, 2, 1, 3).reshape(n * n_out, n * n_out) if full else theta_xx
        lr = train.spectral_learning_rate(matrix, GD_LR_FRACTION, n=n)
        rule = f"{GD_LR_FRACTION:g} n / lambda_max(Theta_0)"

    marks = checkpoint_steps(setup.steps, setup.checkpoints)
    fit_args: dict[str, Any] = {
        "steps": setup.steps,
        "learning_rate": lr,
        "loss": "mse",
        "optimizer": setup.optimizer,
        "batch_size": setup.batch_size,
        "seed": setup.seeds[0],
        "eval_every": max(1, setup.steps // 50),
    }
    with (
        _bar(setup.steps, "training the net", progress, "step") as bar_net,
        _bar(setup.steps, "training the linearized model", progress, "step") as bar_lin,
    ):
        both = train.fit_beside_linearization(
            model,
            x,
            y,
            snapshots=train.Snapshots(
                marks, probe=probe, ntk=True, outputs=False, hooks=(_TestOutputs(x_test, bar_net),)
            ),
            linearized_snapshots=train.Snapshots(marks, probe=None, hooks=(_TestOutputs(x_test, bar_lin),)),
            **fit_args,
        )
    res_net, res_lin, lin = both.net, both.linearized, both.linearized_model

    recorded = min(len(res_net.snapshots), len(res_lin.snapshots))
    net_snaps, lin_snaps = res_net.snapshots[:recorded], res_lin.snapshots[:recorded]
    ntks = [s.ntk for s in net_snaps if s.ntk is not None]
    steps = tuple(s.step for s in net_snaps)
    distance = tuple(metrics.kernel_distance(ntks[0], k) for k in ntks)
    velocity = tuple(float(v) for v in metrics.kernel_velocity(ntks, steps)) if len(ntks) > 1 else ()
    gap = tuple(
        metrics.function_gap(a.extras["test_outputs"], b.extras["test_outputs"])
        for a, b in zip(net_snaps, lin_snaps, strict=True)
    )

    out_ntk, info = predict.gradient_descent_mse(
        theta_xx,
        y.to(torch.float64),
        theta_tx,
        t=ntk_time,
        learning_rate=lr,
        f0_train=f0_train,
        f0_test=f0_test,
        return_info=True,
    )
    out_ntk = out_ntk.reshape(f0_test.shape)
    outputs = {"net": _eval_outputs(model, x_test), "lin": _eval_outputs(lin, x_test), "ntk": out_ntk}
    y64 = y_test.to(torch.float64)
    finite = {k: bool(torch.isfinite(v).all()) for k, v in outputs.items()}
    test_mse = {k: metrics.mean_squared_error(v, y64) if finite[k] else math.nan for k, v in outputs.items()}
    test_error = (
        {k: 1.0 - metrics.accuracy(v, y64) if finite[k] else math.nan for k, v in outputs.items()}
        if classification
        else {}
    )
    diverged = res_net.diverged or res_lin.diverged
    message = f"net: {res_net.message}; linearized: {res_lin.message}"
    final = net_snaps[-1].ntk if net_snaps and net_snaps[-1].step == setup.steps else None
    result = Measurements(
        seeds=setup.seeds,
        kernel_spread=spread[0],
        diagonal_dispersion=spread[1],
        seed_distance=spread[2],
        learning_rate=lr,
        lr_rule=rule,
        ntk_time=ntk_time,
        kernel="full (n, n, O, O)" if full else "per-output (trace / O)",
        solve=info.to_dict(),
        status="diverged" if diverged else "completed",
        message=message,
        steps=steps,
        kernel_distance=distance,
        kernel_velocity=velocity,
        param_change=tuple(s.relative_param_distance for s in net_snaps),
        function_gap=gap,
        loss_steps=tuple(res_net.history.eval_step),
        loss_net=tuple(res_net.history.train_loss),
        loss_lin=tuple(res_lin.history.train_loss),
        test_error=test_error,
        test_mse=test_mse,
        seed_kernels=seed_kernels.cpu(),
        ntk_final=None if final is None else final.cpu(),
        outputs={k: v.cpu() for k, v in outputs.items()},
    )
    return result, model
