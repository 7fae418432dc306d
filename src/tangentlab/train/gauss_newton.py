"""Damped Gauss–Newton / natural-gradient steps on MSE, computed in function space through the empirical NTK.

For the loss ``L(theta) = (1/(2n)) sum_i ||f(x_i; theta) - y_i||^2`` with the stacked residual
``r = f - y`` (``n O`` numbers) and the Jacobian ``J = d f / d theta`` (``n O x P``), the damped Gauss–Newton
(Levenberg–Marquardt) step is

    ``Delta theta = -eta (J^T J / n + (lambda / n) I)^{-1} J^T r / n = -eta J^T (Theta + lambda I)^{-1} r``,

the second form by the push-through identity ``(J^T J + lambda I)^{-1} J^T = J^T (J J^T + lambda I)^{-1}``, with
``Theta = J J^T`` the full ``(n O) x (n O)`` empirical NTK Gram matrix. For MSE the Gauss–Newton matrix equals the
Fisher of a unit-variance Gaussian likelihood, so this is also the natural-gradient step of Zhang, Martens & Grosse
2019 ("Fast convergence of natural gradient descent for overparameterized neural networks", arXiv 1905.10961,
eq. 5 with ``G = J J^T``), which, for ``lambda -> 0`` and ``eta = 1``, makes a linear model interpolate the targets
in one step when ``Theta`` has full rank.

Here ``Theta`` comes from :func:`tangentlab.empirical_ntk` (``outputs="full"``), the linear system from
:func:`tangentlab.predict.solve_psd` (Cholesky with a recorded jitter ladder, else an eigendecomposition; the solver
and condition number are kept), and ``J^T alpha`` from one vector–Jacobian product (``torch.func.vjp``): the
``n O x P`` Jacobian is never formed. Each step costs one eNTK, one ``(n O)^3`` solve and one backward pass.

* :func:`ntk_gram` — the full ``(n O) x (n O)`` eNTK Gram matrix ``J J^T``;
* :func:`gauss_newton_step` — one step, applied to the model in place or only returned;
* :func:`fit_gauss_newton` — a loop of such steps that records the loss and the wall time of every step, stops at a
  loss target, records divergence and takes :class:`~tangentlab.train.Snapshots` like :func:`tangentlab.train.fit`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Literal, cast

import torch
from torch import nn
from torch.func import functional_call, vjp

from tangentlab.kernels import empirical_ntk
from tangentlab.predict import SolveInfo, solve_psd
from tangentlab.train import divergence
from tangentlab.train._checks import check_inputs, check_targets, match_outputs, param_dtype
from tangentlab.train.losses import mse_loss
from tangentlab.train.snapshots import Snapshot, Snapshots, take_snapshot, trainable_vector

NtkMethod = Literal["auto", "jacobian", "ntvp", "structured"]
GaussNewtonStatus = Literal["completed", "target_reached", "diverged"]


@dataclass(frozen=True)
class GaussNewtonStep:
    """One damped Gauss–Newton step.

    Attributes:
        delta: the parameter update ``-eta J^T (Theta + lambda I)^{-1} r``, flattened in the order of
            :func:`tangentlab.train.trainable_vector` (detached).
        loss: training loss ``(1/(2n)) ||f - y||^2`` before the step.
        damping: the absolute ``lambda`` used (``damping * mean diag Theta`` for relative damping).
        solve: how ``(Theta + lambda I) alpha = r`` was solved, with ``Theta``'s extreme eigenvalues.
    """

    delta: torch.Tensor
    loss: float
    damping: float
    solve: SolveInfo


def _check_number(name: str, value: float, *, positive: bool) -> None:
    ok = math.isfinite(value) and (value > 0 if positive else value >= 0)
    if not ok:
        raise ValueError(f"{name}: expected a finite number {'> 0' if positive else '>= 0'}, got {value!r}")


def ntk_gram(model: nn.Module, x: torch.Tensor, *, method: NtkMethod = "auto") -> torch.Tensor:
    """The full eNTK Gram matrix ``Theta = J J^T`` of ``model`` on ``x`` as an ``(n O, n O)`` float64 matrix.

    Rows and columns are ordered (example, output), the order of ``f(x).reshape(-1)``:
    ``Theta[i O + o, j O + o'] = empirical_ntk(model, x, outputs="full")[i, j, o, o']``.
    """
    full = empirical_ntk(model, x, outputs="full", method=method)
    n, _, o, _ = full.shape
    return full.permute(0, 2, 1, 3).reshape(n * o, n * o).to(torch.float64)


def gauss_newton_step(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    damping: float,
    learning_rate: float = 1.0,
    relative_damping: bool = False,
    apply: bool = True,
    method: NtkMethod = "auto",
) -> GaussNewtonStep:
    """The damped Gauss–Newton step ``Delta theta = -eta J^T (Theta + lambda I)^{-1} (f - y)`` on MSE.

    Args:
        model: any module treating examples independently (see :func:`tangentlab.empirical_ntk`).
        x: training inputs (n, ...); cast to the parameters' dtype.
        y: targets shaped like the outputs ((n,) allowed for (n, 1) outputs).
        damping: ``lambda >= 0`` added to the diagonal of ``Theta`` (absolute, or relative to the mean of
            ``Theta``'s diagonal, i.e. its mean eigenvalue, with ``relative_damping``). ``lambda = 0`` with a
            singular ``Theta`` uses the pseudo-inverse (recorded in ``solve``).
        learning_rate: ``eta > 0``; 1 is the full Gauss–Newton step.
        relative_damping: read ``damping`` relative to ``trace(Theta) / (n O)`` (scale-free across widths and
            parametrizations).
        apply: add the update to the model's trainable parameters in place.
        method: eNTK algorithm passed to :func:`tangentlab.empirical_ntk`.

    Returns:
        A :class:`GaussNewtonStep`.

    Raises:
        ValueError / TypeError: for bad numbers, inputs or targets that do not match the outputs (before any change).
    """
    _check_number("damping", damping, positive=False)
    _check_number("learning_rate", learning_rate, positive=True)
    dtype = param_dtype(model)
    xs = check_inputs("x", x, dtype)
    n = xs.shape[0]
    ys = check_targets("y", y, n, "x", dtype)
    names = [name for name, p in model.named_parameters() if p.requires_grad]
    params = {name: p.detach() for name, p in model.named_parameters() if p.requires_grad}
    if not params:
        raise ValueError("model: expected at least one trainable parameter, got none")

    def outputs(theta: dict[str, torch.Tensor]) -> torch.Tensor:
        return cast(torch.Tensor, functional_call(model, theta, (xs,), strict=False))

    pushed = vjp(outputs, params)
    out, pullback = pushed[0], pushed[1]
    out = out.detach()
    ys = match_outputs("mse", out, ys, "y")
    residual = (out - ys).reshape(n, -1)
    loss = float(mse_loss(residual, torch.zeros_like(residual)))
    theta = ntk_gram(model, xs, method=method)
    lam = damping * float(torch.diagonal(theta).mean()) if relative_damping else damping
    alpha, info = solve_psd("Theta", theta, residual.reshape(-1, 1).to(torch.float64), ridge=lam)
    (grads,) = pullback(alpha.reshape(out.shape).to(out.dtype))
    delta = torch.cat([(-learning_rate * grads[name]).reshape(-1) for name in names]).detach()
    if apply:
        with torch.no_grad():
            for name, p in model.named_parameters():
                if p.requires_grad:
                    p.add_(-learning_rate * grads[name])
    return GaussNewtonStep(delta=delta, loss=loss, damping=lam, solve=info)


@dataclass
class GaussNewtonResult:
    """Outcome of :func:`fit_gauss_newton`.

    Attributes:
        status: ``"target_reached"`` (stopped at ``loss_target``), ``"completed"`` (ran every step) or
            ``"diverged"``.
        steps_run: Gauss–Newton steps applied.
        message: human-readable reason for the status.
        loss: training loss at ``theta_k`` for ``k = 0 .. steps_run`` (length ``steps_run + 1``).
        wall_time: seconds spent computing steps up to ``theta_k`` (0 at ``k = 0``; snapshot time excluded).
        condition_number: condition number of ``Theta + lambda I`` at each step taken.
        snapshots: records taken at the requested steps (and at the stopping step, see :func:`fit_gauss_newton`).
        steps_to_target: first ``k`` with ``loss[k] <= loss_target`` (None without a target or if not reached).
    """

    status: GaussNewtonStatus
    steps_run: int
    message: str
    loss: list[float] = field(default_factory=list)
    wall_time: list[float] = field(default_factory=list)
    condition_number: list[float] = field(default_factory=list)
    snapshots: list[Snapshot] = field(default_factory=list)
    steps_to_target: int | None = None

    @property
    def time_to_target(self) -> float | None:
        """Seconds of Gauss–Newton computation until the loss target was reached (None if it was not)."""
        return None if self.steps_to_target is None else self.wall_time[self.steps_to_target]

    @property
    def final_train_loss(self) -> float:
        """Training loss at the last parameters reached."""
        return self.loss[-1]


def fit_gauss_newton(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    steps: int,
    damping: float,
    learning_rate: float = 1.0,
    relative_damping: bool = False,
    loss_target: float | None = None,
    method: NtkMethod = "auto",
    snapshots: Snapshots | None = None,
    divergence_factor: float = divergence.FACTOR,
) -> GaussNewtonResult:
    """Train ``model`` in place with up to ``steps`` damped Gauss–Newton steps (:func:`gauss_newton_step`).

    The loop stops when the training loss is at most ``loss_target`` (``status="target_reached"``) or is not
    finite / exceeds ``divergence_factor`` times the initial loss (``status="diverged"``; the model keeps the bad
    parameters). Snapshots are taken at the requested steps before that step's update, as in
    :func:`tangentlab.train.fit`; a run that stops early also records one at its last step when a later step was
    requested, so the trajectory's end is always seen. Time spent on snapshots is not counted in ``wall_time``.

    Args:
        model: see :func:`gauss_newton_step`.
        x: training inputs (n, ...).
        y: targets.
        steps: most steps to take (an integer >= 0).
        damping: see :func:`gauss_newton_step`.
        learning_rate: see :func:`gauss_newton_step`.
        relative_damping: see :func:`gauss_newton_step`.
        loss_target: stop once the loss is at most this (absolute) value; None runs every step.
        method: eNTK algorithm.
        snapshots: what to record at which steps, or None.
        divergence_factor: a loss above this multiple of the initial loss counts as divergence (default
            :data:`tangentlab.train.divergence.FACTOR`; see :mod:`tangentlab.train.divergence`).

    Returns:
        A :class:`GaussNewtonResult`.
    """
    if isinstance(steps, bool) or int(steps) != steps or steps < 0:
        raise ValueError(f"steps: expected an integer >= 0, got {steps!r}")
    _check_number("damping", damping, positive=False)
    _check_number("learning_rate", learning_rate, positive=True)
    if loss_target is not None:
        _check_number("loss_target", loss_target, positive=False)
    if not divergence_factor > 1:
        raise ValueError(f"divergence_factor: expected a number > 1, got {divergence_factor!r}")
    dtype = param_dtype(model)
    xs = check_inputs("x", x, dtype)
    ys = check_targets("y", y, xs.shape[0], "x", dtype)
    with torch.no_grad():
        ys = match_outputs("mse", model(xs[:1]), ys, "y")

    def current_loss() -> float:
        with torch.no_grad():
            return float(mse_loss(model(xs).reshape(xs.shape[0], -1), ys.reshape(xs.shape[0], -1)))

    theta0 = trainable_vector(model)
    wanted = set(snapshots.steps) if snapshots is not None else set()
    res = GaussNewtonResult(status="completed", steps_run=0, message=f"completed {steps} steps")
    res.loss.append(current_loss())
    res.wall_time.append(0.0)
    initial = res.loss[0]
    for k in range(steps + 1):
        loss = res.loss[k]
        stop: str | None = None
        # every step: this loss; at the end: the whole history (the "still growing" part of the rule)
        why = divergence.reason(res.loss if k == steps else [loss], initial, factor=divergence_factor)
        if why is not None:
            res.status, stop = "diverged", f"diverged at step {k}: {why}"
        elif loss_target is not None and loss <= loss_target:
            res.status, res.steps_to_target = "target_reached", k
            stop = f"loss {loss:.3e} <= target {loss_target:.3e} after {k} steps"
        last = stop is not None or k == steps
        if snapshots is not None and (k in wanted or (last and any(s > k for s in wanted))):
            res.snapshots.append(take_snapshot(snapshots, model, k, loss, theta0))
        if stop is not None:
            res.message = stop
            break
        if k == steps:
            break
        start = time.perf_counter()
        step = gauss_newton_step(
            model,
            xs,
            ys,
            damping=damping,
            learning_rate=learning_rate,
            relative_damping=relative_damping,
            method=method,
        )
        res.condition_number.append(step.solve.condition_number)
        res.loss.append(current_loss())
        res.wall_time.append(res.wall_time[-1] + time.perf_counter() - start)
        res.steps_run = k + 1
    return res
