"""Study ``conditioning``: are the conditions for fast natural-gradient convergence met by networks of practical width?

Claim tested (Wenger, Dangel & Kristiadi 2023, "On the disconnect between theory and practice of neural networks",
arXiv 2310.00137, Sec. on optimization): Zhang, Martens & Grosse 2019 ("Fast convergence of natural gradient
descent for overparameterized neural networks", arXiv 1905.10961) prove that natural gradient descent (NGD) — for
MSE the damped Gauss–Newton step ``Delta theta = -eta J^T (J J^T + lambda I)^{-1} (f - y)`` — converges linearly at a
rate independent of the conditioning when

1. **Condition 1 (full row rank):** the Gram matrix ``G_0 = J(theta_0) J(theta_0)^T`` (the full ``n O x n O``
   empirical NTK on the training set) has ``lambda_0 = lambda_min(G_0) > 0``; and
2. **Condition 2 (stable Jacobian):** there is ``0 <= C < 1/2`` with
   ``||J(theta) - J(theta_0)||_2 <= (C / 3) sqrt(lambda_0)`` for every ``theta`` with
   ``||theta - theta_0||_2 <= R = 3 ||y - f(theta_0)||_2 / sqrt(lambda_0)``.

   Then NGD with step size ``eta <= (1 - 2C) / (1 + C)^2`` satisfies
   ``||y - f(theta_k)||^2 <= (1 - eta)^k ||y - f(theta_0)||^2`` (their Thm. 1). This is our reading of the paper
   (the full text was not available offline to re-check the constants; the abstract confirms the two conditions).

Wenger et al. measure ``lambda_0`` and the stability constant against width and find practical widths do not meet
the stability condition. **Stability constant used here:** ``C = 3 max_theta ||J(theta) - J(theta_0)||_2 /
sqrt(lambda_0)`` with the max over the parameters visited at the checkpoints of the Gauss–Newton and the
gradient-descent trajectories that lie inside the ball of radius ``R`` — the smallest constant Condition 2 could hold
with, restricted to points we visited. It is therefore a **lower bound** on the constant the condition needs: a
measured ``C >= 1/2`` shows the condition fails; ``C < 1/2`` is necessary, not sufficient. Per-trajectory values
(without the ball restriction) are recorded too. ``J`` is the Jacobian of all ``n O`` training outputs (or, with
``probe_rows``, of the first inputs' outputs: a row subset can only lower ``||J_t - J_0||_2``, so ``C`` stays a lower
bound, and ``lambda_0`` is always that of the whole training set); its change is never formed: ``(J_t - J_0)(J_t - J_0)^T`` is the eNTK of the map ``phi -> f(theta_t + phi) - f(theta_0 + phi)``
at ``phi = 0`` (:func:`jacobian_change_gram`), whose Frobenius norm is ``sqrt(trace)`` and spectral norm
``sqrt(lambda_max)``. The constant is scale-free (``J -> cJ`` leaves it unchanged), so the loss normalisation
``1/(2n)`` does not matter.

One run (one grid point: ``width``, ``parametrization``, data, seed):

1. Data from :func:`tangentlab.data.load` (float64), MSE ``L = (1/(2n)) sum_i ||f(x_i) - y_i||^2`` (classification
   data: one-hot or centred targets). Model: ``config.model`` or the default one-hidden-layer ReLU MLP, every
   ``Dense`` but the readout ``width`` units wide (:func:`tangentlab.studies._models.set_hidden_width`).
2. At init: ``lambda_min``, ``lambda_max`` and ``condition_number`` of ``G_0`` (:func:`tangentlab.train.ntk_gram`).
3. Gradient descent (:func:`tangentlab.train.fit`, full batch) for ``train.steps`` steps with
   ``eta = lr_fraction * n / lambda_max(G_0)`` (on the train outputs GD is ``f <- f - (eta / n) G (f - y)``, stable
   for ``lr_fraction < 2``); Jacobian change at ``checkpoints`` geometrically spaced steps (snapshot hooks).
4. Damped Gauss–Newton (:func:`tangentlab.train.fit_gauss_newton`) from the same init with ``lambda = gn_damping *
   trace(Theta_t) / (n O)`` and step ``gn_learning_rate``, for at most ``gn_steps`` steps, stopping at the target;
   Jacobian change at the same kind of checkpoints.
5. Convergence: the loss target is ``loss_target * L(theta_0)``; steps to reach it and wall time (GN: the measured
   time of its steps; GD: steps times the measured seconds per GD step, checkpoint time excluded). A run that misses
   the target within its budget records None.

Positive control (``params.linearized: true``): the same run on the net's linearization ``f_0 + J_0 (theta -
theta_0)``, a model linear in its parameters. Its Jacobian is constant, so the measured ``C`` must be 0 (below 1/2:
the condition holds) and Gauss–Newton must reach the target in one step; the report checks both and shows them apart
from the verdict (``positive_control`` in findings.json). The control runs no gradient descent (``gd_*`` metrics of
step 0 only): on a linear model GD is the map ``f <- f - (eta/n) G_0 (f - y)``, whose speed the spectrum at init
already gives, and its forward-mode steps would cost ten times the net's.
"""

from __future__ import annotations

import copy
import math
import time
from typing import Any, ClassVar, Literal, cast

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat, PositiveFloat, PositiveInt
from torch import nn
from torch.func import functional_call

from tangentlab import train
from tangentlab.runner.config import RunConfig
from tangentlab.studies import register
from tangentlab.studies._base import MetricValue, RunOutput, Study
from tangentlab.studies._models import widened_net
from tangentlab.studies._sections import finite_or_none
from tangentlab.studies.lazy import LazyStudy
from tangentlab.train import divergence

#: Zhang et al. 2019's Condition 2 needs the stability constant below this value.
STABILITY_THRESHOLD = 0.5


class ConditioningParams(BaseModel):
    """Parameters of the ``conditioning`` study.

    Attributes:
        width: units of every hidden ``Dense`` layer.
        parametrization: ``"ntk"``, ``"standard"`` or ``"mup"`` (see :mod:`tangentlab.arch`).
        lr_fraction: GD learning rate as a fraction of ``n / lambda_max(G_0)``.
        gn_steps: most Gauss–Newton steps.
        gn_learning_rate: Gauss–Newton step size ``eta``.
        gn_damping: ``lambda`` relative to the mean eigenvalue ``trace(Theta_t) / (n O)`` of the current eNTK.
        loss_target: target loss as a fraction of the initial training loss.
        checkpoints: Jacobian checkpoints per trajectory (step 0 plus geometrically spaced steps up to the budget).
        probe_rows: track the Jacobian on at most this many rows (inputs x outputs): the first
            ``max(1, probe_rows // O)`` training inputs (None: all of them). A row subset can only lower
            ``||J_t - J_0||_2``, so the stability constant stays a lower bound.
        linearized: train the net's linearization ``f_0 + J_0 (theta - theta_0)`` (Lee et al. 2019, eq. 5;
            :func:`tangentlab.train.linearize`) instead of the net — the **positive control**: a model linear in
            its parameters has a constant Jacobian, so ``C = 0 < 1/2`` wherever ``lambda_min > 0``, and one undamped
            Gauss–Newton step reaches the least-squares optimum.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    width: PositiveInt = 256
    parametrization: Literal["ntk", "standard", "mup"] = "ntk"
    lr_fraction: PositiveFloat = Field(default=1.0, lt=2.0)
    gn_steps: PositiveInt = 20
    gn_learning_rate: PositiveFloat = Field(default=1.0, le=2.0)
    gn_damping: NonNegativeFloat = 1e-6
    loss_target: PositiveFloat = Field(default=1e-3, lt=1.0)
    checkpoints: int = Field(default=8, ge=2)
    probe_rows: PositiveInt | None = None
    linearized: bool = False


class _Difference(nn.Module):
    """``phi -> f(x; theta_t + phi) - f(x; theta_0 + phi)``; its Jacobian at ``phi = 0`` is ``J_t - J_0``."""

    _model: nn.Module

    def __init__(self, model: nn.Module, theta_t: dict[str, torch.Tensor], theta_0: dict[str, torch.Tensor]):
        super().__init__()
        object.__setattr__(self, "_model", model)  # not a submodule: only ``phi`` is differentiated
        self._names = tuple(theta_0)
        self._t, self._0 = theta_t, theta_0
        self.phi = nn.ParameterList(nn.Parameter(torch.zeros_like(v)) for v in theta_0.values())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        phi = dict(zip(self._names, self.phi, strict=True))
        f_t = functional_call(self._model, {k: self._t[k] + phi[k] for k in phi}, (x,), strict=False)
        f_0 = functional_call(self._model, {k: self._0[k] + phi[k] for k in phi}, (x,), strict=False)
        return cast(torch.Tensor, f_t - f_0)


def jacobian_change_gram(model: nn.Module, theta_0: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """``(J_t - J_0)(J_t - J_0)^T`` as an ``(n O, n O)`` float64 matrix, without forming either Jacobian.

    ``J_t`` is the Jacobian of ``model``'s outputs on ``x`` at its current trainable parameters, ``J_0`` at
    ``theta_0`` (by name). Computed as the eNTK (:func:`tangentlab.empirical_ntk`) of :class:`_Difference`, rows
    ordered (example, output) as in :func:`tangentlab.train.ntk_gram`. ``||J_t - J_0||_F^2`` is its trace and
    ``||J_t - J_0||_2^2`` its largest eigenvalue.
    """
    theta_t = {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}
    diff = _Difference(model, theta_t, {k: v.detach() for k, v in theta_0.items()})
    # per-example Jacobians: the eNTK cost model cannot see the network inside the wrapper and would pick ntvp
    return train.ntk_gram(diff, x, method="jacobian")


class _JacobianTracker:
    """A snapshot hook: the Jacobian's change from ``theta_0`` on the probe inputs ``x``, timing itself."""

    def __init__(self, x: torch.Tensor, theta_0: dict[str, torch.Tensor]) -> None:
        self.x, self.theta_0, self.seconds = x, theta_0, 0.0

    def __call__(self, model: nn.Module, step: int) -> dict[str, float]:
        start = time.perf_counter()
        evals = torch.linalg.eigvalsh(jacobian_change_gram(model, self.theta_0, self.x))
        self.seconds += time.perf_counter() - start
        return {
            "jac_fro_change": math.sqrt(max(float(evals.sum()), 0.0)),
            "jac_spec_change": math.sqrt(max(float(evals[-1]), 0.0)),
        }


def checkpoint_steps(budget: int, count: int) -> tuple[int, ...]:
    """Step 0 and ``count - 1`` geometrically spaced steps in ``[1, budget]`` (duplicates merged)."""
    if budget < 1:
        return (0,)
    spaced = np.geomspace(1, budget, max(count - 1, 1))
    return tuple(sorted({0, budget, *(int(v) for v in np.rint(spaced))}))


def _trajectory(snaps: list[train.Snapshot], jac0_fro: float) -> dict[str, np.ndarray]:
    return {
        "step": np.array([s.step for s in snaps], dtype=np.float64),
        "jac_rel_change": np.array([s.extras["jac_fro_change"] / jac0_fro for s in snaps], dtype=np.float64),
        "jac_spec_change": np.array([s.extras["jac_spec_change"] for s in snaps], dtype=np.float64),
        "param_distance": np.array([s.param_distance for s in snaps], dtype=np.float64),
    }


def _first_below(losses: list[float], target: float) -> int | None:
    return next((k for k, v in enumerate(losses) if math.isfinite(v) and v <= target), None)


@register
class ConditioningStudy(Study):
    """eNTK conditioning, Jacobian stability and Gauss–Newton vs GD against width; see the module docstring."""

    name: ClassVar[str] = "conditioning"
    title: ClassVar[str] = (
        "Conditioning: do practical widths meet the conditions for fast natural-gradient descent?"
    )
    citation: ClassVar[str] = (
        "Wenger, Dangel & Kristiadi 2023, On the Disconnect Between Theory and Practice of Neural Networks "
        "(arXiv 2310.00137); Zhang, Martens & Grosse 2019, Fast Convergence of Natural Gradient Descent for "
        "Overparameterized Neural Networks (arXiv 1905.10961)"
    )
    claim: ClassVar[str] = (
        "Natural gradient / Gauss–Newton descent provably converges fast when the Gram matrix JJᵀ is well conditioned "
        "(λ_min > 0) and the Jacobian is stable near init: ‖J(θ)−J(θ_0)‖₂ ≤ (C/3)·√λ_min(G_0) with C < 1/2 "
        "(Zhang et al. 2019, Conditions 1–2); networks of practical width do not meet the stability condition "
        "(Wenger et al. 2023)."
    )
    Params: ClassVar[type[BaseModel]] = ConditioningParams
    default_model: ClassVar[dict[str, Any] | None] = LazyStudy.default_model  # one-hidden-layer ReLU MLP

    def run(self, config: RunConfig, *, device: str = "cpu") -> RunOutput:
        """Measure the spectrum at init, train by GD and by Gauss–Newton, and track the Jacobian."""
        p = ConditioningParams.model_validate(config.params)
        tc = config.train
        if tc.loss != "mse" or tc.optimizer != "gd" or tc.batch_size is not None:
            raise ValueError(
                "train: the conditioning study needs loss 'mse', optimizer 'gd' and no batch_size (the theory's "
                f"full-batch setting), got loss={tc.loss!r}, optimizer={tc.optimizer!r}, batch_size={tc.batch_size!r}"
            )
        ds = config.data.load()
        if ds.y_train.dtype == torch.int64:
            raise ValueError(
                "data.target: the conditioning study regresses with MSE; use 'onehot' or 'centered'"
            )
        x, y = ds.x_train.to(device), ds.y_train.to(device)
        n = x.shape[0]
        out_dim = 1 if y.ndim == 1 else int(y[0].numel())
        net = widened_net(self, config, p.width, out_dim, ds.input_shape, p.parametrization, device)
        if p.linearized:
            net = train.linearize(net)
        gram0 = train.ntk_gram(net, x)
        evals = torch.linalg.eigvalsh(gram0)
        lam_min, lam_max = float(evals[0]), float(evals[-1])
        with torch.no_grad():
            f0 = net(x)
        residual0 = float(torch.linalg.vector_norm(f0 - y.reshape(f0.shape)))
        loss0 = residual0**2 / (2 * n)
        target = p.loss_target * loss0
        radius = 3 * residual0 / math.sqrt(lam_min) if lam_min > 0 else math.inf
        n_out = gram0.shape[0] // n
        probe = x[: n if p.probe_rows is None else max(1, min(n, p.probe_rows // n_out))]
        jac0_fro = math.sqrt(float(torch.diagonal(gram0)[: probe.shape[0] * n_out].sum()))
        theta_0 = {name: q.detach().clone() for name, q in net.named_parameters() if q.requires_grad}
        gn_net = copy.deepcopy(net)

        gd_lr = train.spectral_learning_rate(gram0, p.lr_fraction, n=n, eigenvalues=evals)
        gd_budget = 0 if p.linearized else tc.steps  # the control runs no GD (module docstring)
        gd_hook = _JacobianTracker(probe, theta_0)
        gd_snaps = train.Snapshots(
            checkpoint_steps(gd_budget, p.checkpoints), ntk=False, outputs=False, hooks=(gd_hook,)
        )
        start = time.perf_counter()
        gd = train.fit(
            net,
            x,
            y,
            **tc.fit_kwargs(
                steps=gd_budget,
                learning_rate=gd_lr,
                seed=config.seed,
                eval_every=max(gd_budget, 1),
                snapshots=gd_snaps,
            ),
        )
        gd_seconds = time.perf_counter() - start - gd_hook.seconds
        gd_losses = (
            [*gd.history.batch_loss, gd.final_train_loss] if not gd.diverged else gd.history.batch_loss
        )
        gd_per_step = gd_seconds / max(gd.steps_run, 1)
        gd_k = _first_below(gd_losses, target)

        gn_hook = _JacobianTracker(probe, theta_0)
        gn_snaps = train.Snapshots(
            checkpoint_steps(p.gn_steps, p.checkpoints), ntk=False, outputs=False, hooks=(gn_hook,)
        )
        gn = train.fit_gauss_newton(
            gn_net,
            x,
            y,
            steps=p.gn_steps,
            damping=p.gn_damping,
            relative_damping=True,
            learning_rate=p.gn_learning_rate,
            loss_target=target,
            snapshots=gn_snaps,
        )
        traj = {"gd": _trajectory(gd.snapshots, jac0_fro), "gn": _trajectory(gn.snapshots, jac0_fro)}
        scale = 3.0 / math.sqrt(lam_min) if lam_min > 0 else math.inf

        def constant(key: str, inside: bool) -> float:
            t = traj[key]
            keep = t["param_distance"] <= radius if inside else np.ones_like(t["step"], dtype=bool)
            return scale * float(t["jac_spec_change"][keep].max()) if keep.any() else 0.0

        c_ball = max(constant("gd", True), constant("gn", True))
        m: dict[str, MetricValue] = {
            "status": divergence.status(gd.diverged, gn.status == "diverged"),
            "n_params": int(sum(v.numel() for v in theta_0.values())),
            "n_rows": int(gram0.shape[0]),
            "lambda_min": lam_min,
            "lambda_max": lam_max,
            "condition_number": lam_max / lam_min if lam_min > 0 else None,
            "lambda_min_rel": lam_min / float(evals.mean()),
            "initial_loss": loss0,
            "loss_target": target,
            "ball_radius": finite_or_none(radius),
            "gd_learning_rate": gd_lr,
            "gd_status": gd.status,
            "gd_steps_to_target": gd_k,
            "gd_time_to_target": None if gd_k is None else gd_k * gd_per_step,
            "gd_seconds_per_step": gd_per_step,
            "gd_final_loss_ratio": finite_or_none(gd_losses[-1] / loss0) if gd_losses else None,
            "gn_status": gn.status,
            "gn_steps_to_target": gn.steps_to_target,
            "gn_time_to_target": gn.time_to_target,
            "gn_seconds_per_step": gn.wall_time[-1] / max(gn.steps_run, 1),
            "gn_final_loss_ratio": finite_or_none(gn.final_train_loss / loss0),
            "gn_max_condition": finite_or_none(max(gn.condition_number, default=math.nan)),
            "jac_change_gd": float(traj["gd"]["jac_rel_change"][-1]),
            "jac_change_gn": float(traj["gn"]["jac_rel_change"][-1]),
            "stability_constant": finite_or_none(c_ball),
            "stability_constant_gd": finite_or_none(constant("gd", False)),
            "stability_constant_gn": finite_or_none(constant("gn", False)),
            "gd_distance_ratio": finite_or_none(float(traj["gd"]["param_distance"].max()) / radius),
            "gn_distance_ratio": finite_or_none(float(traj["gn"]["param_distance"].max()) / radius),
            "meets_stability": bool(c_ball < STABILITY_THRESHOLD),
            "ngd_rate_bound": (1 - 2 * c_ball) / (1 + c_ball) ** 2 if c_ball < STABILITY_THRESHOLD else None,
        }
        artifacts = {
            "gram0_eigenvalues": evals.cpu().numpy(),
            "gd_loss": np.asarray(gd_losses, dtype=np.float64),
            "gn_loss": np.asarray(gn.loss, dtype=np.float64),
            "gn_wall_time": np.asarray(gn.wall_time, dtype=np.float64),
        }
        for key, t in traj.items():
            artifacts.update({f"{key}_{name}": values for name, values in t.items()})
        return RunOutput(metrics=m, artifacts=artifacts)
