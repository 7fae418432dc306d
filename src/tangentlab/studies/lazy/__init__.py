"""Study ``lazy``: do wide networks train lazily, staying close to their linearization, as NTK theory predicts?

Claim tested (Lee et al. 2019, "Wide neural networks of any depth evolve as linear models under gradient descent",
arXiv 1902.06720, Thm. 2.1 and Fig. 1): under NTK parametrization and full-batch gradient descent with a learning
rate below ``2 / (lambda_min + lambda_max)`` of ``Theta / n``, the relative parameter change
``||theta_T - theta_0|| / ||theta_0||``, the relative eNTK change ``||Theta_T - Theta_0||_F / ||Theta_0||_F`` and the
gap between the network and its linearization ``||f_T - f_T^lin||`` all shrink like ``width^(-1/2)``. Wenger,
Dangel & Kristiadi 2023 ("On the disconnect between theory and practice of neural networks", arXiv 2310.00137)
argue that the conditions behind such results are not met in practice: the grid therefore also runs standard and
maximal-update (muP) parametrization, and Adam, and reports what it measures there without asserting anything.

One run (one grid point: ``width``, ``parametrization``, ``train.optimizer``, seed):

1. Data from :func:`tangentlab.data.load` (float64); the targets are regressed with MSE
   ``L = (1/(2n)) sum_i ||f(x_i) - y_i||^2`` (classification data: one-hot or centred targets, as loaded).
2. Model: ``config.model`` or :attr:`LazyStudy.default_model` (a ReLU MLP with one hidden layer); with
   ``params.activation: erf`` every ``ReLU`` layer becomes an ``Erf`` (a smooth activation, as Lee et al.'s theorem
   assumes; Dyer & Gur-Ari 2020, arXiv 1909.11304, predict an eNTK change of order ``1/width`` for it). Every ``Dense`` except the last (the
   readout) gets ``width`` units, the readout as many units as the targets have columns; other layers are kept as
   written. Built in float64 with the run's seed under ``params.parametrization``.
3. Learning rate. For ``gd``/``sgd`` with ``params.lr_fraction`` set (the default), ``eta = lr_fraction * n /
   lambda_max(Theta_0)`` where ``Theta_0`` is the per-output eNTK on the training inputs (trace eNTK / O; for
   i.i.d. outputs the full kernel is ``Theta_0 (x) I_O``). On the train outputs GD is the map
   ``f <- f - (eta / n) Theta (f - y)``, stable for ``eta < 2 n / lambda_max``; the theory's condition
   ``eta < 2 n / (lambda_min + lambda_max)`` holds for ``lr_fraction < 1``. The rule rescales eta with width in
   standard parametrization (whose NTK grows like width) so every setting is equally far from the edge of
   stability. For ``adam`` (and for GD with ``lr_fraction: null``) ``train.learning_rate`` is used as written.
   The rate used is recorded as ``learning_rate``; the spectral GD rate as ``gd_learning_rate``.
4. The network and its linearization ``f_0 + J_0 (theta - theta_0)`` (:func:`tangentlab.train.linearize`) are
   trained with the same optimizer, rate and number of steps by :func:`tangentlab.train.fit`.
5. Metrics at the end of training: ``rel_param_change``; ``rel_ntk_change`` and ``kernel_distance``
   ``1 - <Theta_0, Theta_T>_F / (||Theta_0||_F ||Theta_T||_F)`` (Fort et al. 2020, arXiv 2010.15110) of the trace
   eNTK on the probe set (the first ``probe_size`` training inputs, where the theory bounds the change);
   ``function_gap`` ``||f_T - f_T^lin||_F / ||f_T^lin||_F`` on the test inputs; test MSE of the net, of the
   linearized net and of NTK regression (:func:`tangentlab.predict.gradient_descent_mse` with ``Theta_0`` and
   ``f_0``, at time ``t = steps`` in steps of the spectral GD rate — the theory's prediction for GD; for Adam it is
   the same GD prediction, as Adam has no kernel-regression counterpart); test accuracy for classification.
   A run whose net or linearization diverges ends with ``status: diverged`` and keeps the metrics that are still
   finite (the others null); the report leaves it out of the fits and names it.
6. Artifacts: ``loss_net``, ``loss_lin`` (training loss at ``eval_step``), ``eval_step``, ``ntk0_probe`` and
   ``ntkT_probe`` (the probe kernels), so every change metric can be recomputed.

The report (:mod:`tangentlab.studies.lazy.report`) fits ``log metric = slope * log width + c`` per
(parametrization, optimizer) and compares the slope with -1/2.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, PositiveFloat, PositiveInt

from tangentlab import empirical_ntk, metrics, predict, train
from tangentlab.runner.config import RunConfig
from tangentlab.studies import register
from tangentlab.studies._base import MetricValue, RunOutput, Study
from tangentlab.studies._models import set_hidden_width, widened_net
from tangentlab.studies._sections import finite_or_none, needs_mse

CHANGE_METRICS: tuple[str, ...] = ("rel_ntk_change", "rel_param_change", "kernel_distance", "function_gap")


class LazyParams(BaseModel):
    """Parameters of the ``lazy`` study.

    Attributes:
        width: units of every hidden ``Dense`` layer.
        activation: ``"relu"`` (the model as written) or ``"erf"``: every ``ReLU`` layer of the model becomes an
            ``Erf`` (a smooth activation, as Lee et al.'s theorem assumes).
        parametrization: ``"ntk"``, ``"standard"`` or ``"mup"`` (see :mod:`tangentlab.arch`).
        probe_size: number of training inputs on which the eNTK change is measured (at most ``n_train``).
        lr_fraction: GD/SGD learning rate as a fraction of ``n / lambda_max(Theta_0)``; None uses
            ``train.learning_rate``.
        eval_every: record the training losses every this many steps.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    width: PositiveInt = 256
    activation: Literal["relu", "erf"] = "relu"
    parametrization: Literal["ntk", "standard", "mup"] = "ntk"
    probe_size: PositiveInt = 32
    lr_fraction: PositiveFloat | None = 0.5
    eval_every: PositiveInt = 10


ACTIVATION_LAYERS: dict[str, str] = {"relu": "ReLU", "erf": "Erf"}


def default_model(activation: str) -> dict[str, Any]:
    """The study's default model: ``Dense(256)``, the activation (``"relu"`` or ``"erf"``), ``Dense(1)``."""
    return {
        "layer": "Serial",
        "layers": [
            {"layer": "Dense", "width": 256},
            {"layer": ACTIVATION_LAYERS[activation]},
            {"layer": "Dense", "width": 1},
        ],
    }


def with_activation(description: dict[str, Any], activation: str) -> dict[str, Any]:
    """A copy of an arch description dict with every ``ReLU`` layer replaced by ``activation``'s layer."""
    out = copy.deepcopy(description)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("layer") == "ReLU":
                node.clear()
                node["layer"] = ACTIVATION_LAYERS[activation]
            for layer in node.get("layers", ()):
                walk(layer)

    walk(out)
    return out


def _per_output_ntk(
    model: torch.nn.Module, x1: torch.Tensor, x2: torch.Tensor | None, n_out: int
) -> torch.Tensor:
    return empirical_ntk(model, x1, x2, outputs="trace").to(torch.float64) / n_out


def _kept(compute: Callable[[], float]) -> float | None:
    """A metric of a possibly diverged run: its value when finite, else None (a metric that refuses non-finite
    inputs counts as not finite)."""
    try:
        return finite_or_none(float(compute()))
    except (ValueError, ArithmeticError):
        return None


@register
class LazyStudy(Study):
    """Lazy training vs width (Lee et al. 2019; Wenger, Dangel & Kristiadi 2023); see the module docstring."""

    name: ClassVar[str] = "lazy"
    title: ClassVar[str] = "Lazy training: do wide networks stay close to their linearization?"
    citation: ClassVar[str] = (
        "Lee et al. 2019, Wide Neural Networks of Any Depth Evolve as Linear Models Under Gradient Descent "
        "(arXiv 1902.06720); Wenger, Dangel & Kristiadi 2023, On the Disconnect Between Theory and Practice of "
        "Neural Networks (arXiv 2310.00137)"
    )
    claim: ClassVar[str] = (
        "Under NTK parametrization and full-batch gradient descent with a learning rate below "
        "2/(λ_min+λ_max) of Θ/n, the relative change of the parameters, the relative change of the empirical NTK "
        "and the gap between the network and its linearization all shrink like width^(−1/2) (Lee et al. 2019, "
        "Thm. 2.1, Fig. 1). Other parametrizations and optimizers are measured, not asserted (Wenger et al. 2023)."
    )
    Params: ClassVar[type[BaseModel]] = LazyParams
    default_model: ClassVar[dict[str, Any] | None] = default_model("relu")

    def run(self, config: RunConfig, *, device: str = "cpu") -> RunOutput:
        """Train the net and its linearization at one grid point and measure how far each moved."""
        p = LazyParams.model_validate(config.params)
        tc = config.train
        needs_mse(tc.loss, self.name, "the theory's loss")
        ds = config.data.load()
        if ds.y_train.dtype == torch.int64:
            raise ValueError(
                "data.target: the lazy study regresses targets with MSE; use 'onehot' or 'centered'"
            )
        x, y, xt, yt = (t.to(device) for t in (ds.x_train, ds.y_train, ds.x_test, ds.y_test))
        n = x.shape[0]
        if p.probe_size > n:
            raise ValueError(f"params.probe_size: expected at most n_train = {n}, got {p.probe_size}")
        out_dim = 1 if y.ndim == 1 else int(y[0].numel())
        if p.activation != "relu":
            config = config.model_copy(
                update={"model": with_activation(config.model or default_model("relu"), p.activation)}
            )
        net = widened_net(self, config, p.width, out_dim, ds.input_shape, p.parametrization, device)
        with torch.no_grad():
            f0_train, f0_test = net(x), net(xt)
        n_out = f0_train[0].numel()
        theta_xx = _per_output_ntk(net, x, None, n_out)
        theta_tx = _per_output_ntk(net, xt, x, n_out)
        eig = torch.linalg.eigvalsh(theta_xx)
        lam_min, lam_max = float(eig[0]), float(eig[-1])
        gd_lr = train.spectral_learning_rate(theta_xx, p.lr_fraction or 1.0, eigenvalues=eig)
        use_spectral = tc.optimizer in ("gd", "sgd") and p.lr_fraction is not None
        lr = gd_lr if use_spectral else tc.learning_rate

        probe = x[: p.probe_size]
        snaps = train.Snapshots(steps=(0, tc.steps), probe=probe, ntk=True, outputs=False)
        both = train.fit_beside_linearization(
            net,
            x,
            y,
            snapshots=snaps,
            **tc.fit_kwargs(learning_rate=lr, seed=config.seed, eval_every=p.eval_every),
        )
        res_net, res_lin, lin, theta0 = both.net, both.linearized, both.linearized_model, both.theta_0
        diverged = both.diverged
        ntk0 = res_net.snapshots[0].ntk
        ntk_t = res_net.snapshots[-1].ntk if res_net.snapshots[-1].step == tc.steps else None

        with torch.no_grad():
            out_net, out_lin = net(xt), lin(xt)
        out_ntk = predict.gradient_descent_mse(
            theta_xx, y, theta_tx, t=float(tc.steps), learning_rate=gd_lr, f0_train=f0_train, f0_test=f0_test
        ).reshape(out_net.shape)

        m: dict[str, MetricValue] = {
            "status": "diverged" if diverged else "completed",
            "message": both.message,
            "learning_rate": lr,
            "gd_learning_rate": gd_lr,
            "lambda_max": lam_max,
            "lambda_min": lam_min,
            "n_params": int(theta0.numel()),
            "steps_run": res_net.steps_run,
            "train_loss_net": finite_or_none(res_net.final_train_loss),
            "train_loss_lin": finite_or_none(res_lin.final_train_loss),
        }
        # A diverged run keeps every metric it can still compute (non-finite values become null); the report
        # leaves diverged runs out of the fits and names them.
        m.update(dict.fromkeys(CHANGE_METRICS))
        m["rel_param_change"] = _kept(
            lambda: metrics.relative_param_change(train.trainable_vector(net), theta0)
        )
        if ntk0 is not None and ntk_t is not None:
            m["rel_ntk_change"] = _kept(lambda: metrics.relative_frobenius_change(ntk_t, ntk0))
            m["kernel_distance"] = _kept(lambda: metrics.kernel_distance(ntk_t, ntk0))
        m["function_gap"] = _kept(lambda: metrics.function_gap(out_net, out_lin))
        m["test_mse_net"] = _kept(lambda: metrics.mean_squared_error(out_net, yt))
        m["test_mse_lin"] = _kept(lambda: metrics.mean_squared_error(out_lin, yt))
        m["test_mse_ntk"] = metrics.mean_squared_error(out_ntk, yt)
        if ds.task == "classification":
            for key, out in (("net", out_net), ("lin", out_lin), ("ntk", out_ntk)):
                ok = bool(torch.isfinite(out).all())
                m[f"test_acc_{key}"] = metrics.accuracy(out, yt) if ok else None

        def arr(values: Any) -> np.ndarray:
            return np.asarray(values, dtype=np.float64)

        artifacts = {
            "eval_step": arr(res_net.history.eval_step),
            "loss_net": arr(res_net.history.train_loss),
            "loss_lin": arr(res_lin.history.train_loss),
        }
        if ntk0 is not None:
            artifacts["ntk0_probe"] = ntk0.detach().cpu().numpy().astype(np.float64)
        if ntk_t is not None:
            artifacts["ntkT_probe"] = ntk_t.detach().cpu().numpy().astype(np.float64)
        return RunOutput(metrics=m, artifacts=artifacts)


__all__ = [
    "CHANGE_METRICS",
    "LazyParams",
    "LazyStudy",
    "default_model",
    "set_hidden_width",
    "with_activation",
]
