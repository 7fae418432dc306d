"""Study ``equivalence``: does adding a layer change a trained net's error the way it changes NTK regression's?

Claim tested (Liu, Tai, Crandall & Huang 2025, arXiv 2501.10929): when a network is deepened one layer at a time,
the change in the trained network's test error does not match the change in the test error of regression with its
neural tangent kernel; and regression with the NNGP kernel (a Gaussian-process kernel that ignores training) errs
almost exactly as NTK regression does. The paper's datasets and widths were not recovered; ours are stated in the
configs and the report.

One run (one grid point: ``depth``, ``width``, ``parametrization``, ``train.optimizer``, ``data.name``, seed):

1. Data from :func:`tangentlab.data.load` (flat, float64), a classification set with one-hot or centred targets
   regressed with MSE ``L = (1/(2n)) sum_i ||f(x_i) - y_i||^2``.
2. Model: a ReLU MLP with ``depth`` hidden ``Dense(width, sigma_w, sigma_b)`` + ``ReLU`` layers and a ``Dense``
   readout with one unit per target column, built in float64 with the run's seed under ``params.parametrization``.
3. Four predictions on the test inputs, each scored by test error ``1 - accuracy`` (argmax) and test MSE:

   * ``net``: the finite net trained by :func:`tangentlab.train.fit` for ``train.steps`` steps. With
     ``params.center`` (the default) the trained function is ``f(x; theta) - f(x; theta_0)``: the net minus a
     frozen copy of itself at init, so it starts from the zero function as kernel regression does, and its
     linearization converges to eNTK regression exactly (the centring of Chizat, Oyallon & Bach 2019, arXiv
     1812.07956, and Hu et al. 2020, arXiv 1905.11368); without it the random O(1) initial outputs stay in the
     trained net's predictions. GD uses
     ``eta = lr_fraction * n / lambda_max(Theta_0)`` (``Theta_0``: per-output eNTK on the training inputs; stable
     for ``lr_fraction < 2``); Adam uses ``train.learning_rate``.
   * ``ntk``: kernel regression with the infinite NTK ``net.kernel(...).ntk`` — the ``t = inf`` limit of
     :func:`tangentlab.predict.gradient_descent_mse` with zero initial outputs,
     ``f(x*) = Theta(x*, X) (Theta(X, X) + ridge I)^{-1} Y`` (Jacot et al. 2018; Lee et al. 2019).
   * ``entk``: the same with the empirical NTK of the initial net (trace eNTK / #outputs).
   * ``nngp``: the posterior mean of :func:`tangentlab.predict.gp_inference` with the infinite NNGP kernel
     ``K`` (Lee et al. 2018, arXiv 1711.00165), ``f(x*) = K(x*, X) (K(X, X) + ridge I)^{-1} Y``.

   Also ``lin``: the linearized initial net trained to convergence, i.e. ``gradient_descent_mse`` with the eNTK,
   ``t = inf`` and the initial outputs ``f_0`` (what NTK theory predicts the trained net converges to; with
   ``center`` the initial outputs are zero and ``lin`` equals ``entk``).
   ``ridge`` is ``params.ridge`` times the mean diagonal of each training kernel (0 = interpolation); every solve
   records its solver (Cholesky with a jitter ladder, or eigh), jitter, absolute ridge and condition number.
4. A run whose net diverges ends ``status: diverged`` with null net metrics; the kernel metrics are still kept.

The report (:mod:`tangentlab.studies.equivalence.report`) plots error against depth, tabulates the change each
added layer brings per method, correlates the net's changes with the NTK's, and measures the NNGP–NTK gap.
"""

from __future__ import annotations

import copy
import math
from typing import ClassVar, Literal, cast

import torch
from pydantic import BaseModel, ConfigDict, NonNegativeFloat, PositiveFloat, PositiveInt

from tangentlab import arch, empirical_ntk, metrics, predict, train
from tangentlab.runner.config import RunConfig
from tangentlab.studies import register
from tangentlab.studies._base import MetricValue, RunOutput, Study
from tangentlab.studies._sections import finite_or_none, needs_mse, no_model

#: The four predictions compared across depth (the report's methods), and the linearized net at convergence.
METHODS: tuple[str, ...] = ("net", "ntk", "entk", "nngp")
KERNEL_METHODS: tuple[str, ...] = ("ntk", "entk", "nngp", "lin")


class EquivalenceParams(BaseModel):
    """Parameters of the ``equivalence`` study.

    Attributes:
        depth: number of hidden ``Dense`` + ``ReLU`` layers (the grid's main axis, 1...L).
        width: units of every hidden ``Dense``.
        parametrization: ``"ntk"`` or ``"standard"`` (see :mod:`tangentlab.arch`).
        sigma_w: weight scale of every ``Dense`` (sqrt(2) keeps ReLU activations' scale across depth).
        sigma_b: bias scale of every ``Dense``.
        ridge: ridge of every kernel solve, relative to the mean diagonal of the training kernel.
        lr_fraction: GD/SGD learning rate as a fraction of ``n / lambda_max(Theta_0)``; None uses
            ``train.learning_rate``.
        center: train ``f(x; theta) - f(x; theta_0)`` (zero initial function) instead of the net itself.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    depth: PositiveInt = 1
    width: PositiveInt = 256
    parametrization: Literal["ntk", "standard"] = "ntk"
    sigma_w: PositiveFloat = math.sqrt(2.0)
    sigma_b: NonNegativeFloat = 0.0
    ridge: NonNegativeFloat = 0.0
    lr_fraction: PositiveFloat | None = 0.5
    center: bool = True


class Centered(torch.nn.Module):
    """``f(x; theta) - f(x; theta_0)``: a module minus a frozen copy of itself taken now (zero initial function).

    The copy's parameters do not train, so the eNTK, gradients and dynamics are those of the wrapped module; only the
    initial function is removed.

    Full-batch training calls the net on the same input tensor at every step, and the frozen copy's output on it
    never changes; so the copy's output on the last input is kept and reused while the input is the very same tensor
    object, unmodified in place (same ``_version``), on the same device and dtype. This saves one forward pass of
    the copy a step (about a quarter of a step's work) and changes no number: the reused tensor is the one the copy
    computed on that input.
    """

    def __init__(self, module: torch.nn.Module) -> None:
        super().__init__()
        self.module = module
        self.initial = copy.deepcopy(module).requires_grad_(False)
        self._last: tuple[torch.Tensor, int, torch.Tensor] | None = None

    def _initial_output(self, x: torch.Tensor) -> torch.Tensor:
        last = self._last
        if last is not None and last[0] is x and last[1] == x._version and last[2].device == x.device:
            return last[2]
        out = cast(torch.Tensor, self.initial(x))
        # Plain constants only: inside torch.func transforms the input is a wrapper that must not outlive the call,
        # and an output with a graph (an input that requires grad) must be rebuilt for every backward pass.
        if (
            type(x) is torch.Tensor
            and not out.requires_grad
            and not torch._C._functorch.is_functorch_wrapped_tensor(x)
        ):
            self._last = (x, x._version, out)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return cast(torch.Tensor, self.module(x) - self._initial_output(x))


def mlp(depth: int, width: int, out_dim: int, sigma_w: float, sigma_b: float) -> arch.Layer:
    """``depth`` x [Dense(width) -> ReLU] followed by a Dense readout of ``out_dim`` units."""
    layers: list[arch.Layer] = []
    for _ in range(depth):
        layers += [arch.Dense(width, sigma_w=sigma_w, sigma_b=sigma_b), arch.ReLU()]
    layers.append(arch.Dense(out_dim, sigma_w=sigma_w, sigma_b=sigma_b))
    return arch.serial(*layers)


def _score(prefix: str, out: torch.Tensor | None, yt: torch.Tensor) -> dict[str, MetricValue]:
    if out is None or not bool(torch.isfinite(out).all()):
        return {f"test_err_{prefix}": None, f"test_mse_{prefix}": None}
    return {
        f"test_err_{prefix}": 1.0 - metrics.accuracy(out, yt),
        f"test_mse_{prefix}": metrics.mean_squared_error(out, yt),
    }


def _solve_record(prefix: str, info: predict.SolveInfo) -> dict[str, MetricValue]:
    return {
        f"solver_{prefix}": info.solver,
        f"jitter_{prefix}": info.jitter,
        f"ridge_{prefix}": info.ridge,
        f"cond_{prefix}": finite_or_none(info.condition_number),
    }


def _ridge(kernel: torch.Tensor, relative: float) -> float:
    return relative * float(torch.diagonal(kernel).mean())


@register
class EquivalenceStudy(Study):
    """Trained net vs NTK vs NNGP regression across depth (Liu et al. 2025); see the module docstring."""

    name: ClassVar[str] = "equivalence"
    title: ClassVar[str] = (
        "Depth: does NTK regression track the trained net, and does the NNGP track the NTK?"
    )
    citation: ClassVar[str] = (
        "Liu, Tai, Crandall & Huang 2025, arXiv 2501.10929; kernels: Jacot et al. 2018 (NTK), "
        "Lee et al. 2018 (NNGP, arXiv 1711.00165)"
    )
    claim: ClassVar[str] = (
        "Adding a layer changes the trained network's test error differently from how it changes the test error "
        "of NTK regression (the two per-layer changes do not match), while NNGP regression errs almost exactly as "
        "NTK regression does (Liu et al. 2025)."
    )
    Params: ClassVar[type[BaseModel]] = EquivalenceParams
    sections: ClassVar[frozenset[str]] = frozenset({"data", "train"})

    def run(self, config: RunConfig, *, device: str = "cpu") -> RunOutput:
        """Train the net of this depth and solve the three kernel regressions; score all four on the test set."""
        p = EquivalenceParams.model_validate(config.params)
        tc = config.train
        needs_mse(tc.loss, self.name, "kernel regression's loss")
        no_model(config.model, self.name, "params.depth/width/sigma_w/sigma_b")
        ds = config.data.load(shape="flat", dtype=torch.float64)
        if ds.task != "classification" or ds.y_train.dtype == torch.int64:
            raise ValueError(
                "data: the equivalence study needs a classification set with data.target 'onehot' or 'centered'; "
                f"got task {ds.task!r} with targets of dtype {ds.y_train.dtype}"
            )
        x, y, xt, yt = (t.to(device) for t in (ds.x_train, ds.y_train, ds.x_test, ds.y_test))
        n, out_dim = x.shape[0], int(y.shape[1])
        description = mlp(p.depth, p.width, out_dim, p.sigma_w, p.sigma_b)
        built = description.build(
            ds.input_shape,
            parametrization=p.parametrization,
            seed=config.seed,
            dtype=torch.float64,
            device=device,
        )
        net: torch.nn.Module = Centered(built) if p.center else built
        with torch.no_grad():
            f0_train, f0_test = net(x), net(xt)

        # Infinite kernels (per-output scalars) and the per-output eNTK of the initial net.
        k_train = description.kernel(x, None, parametrization=p.parametrization)
        k_test = description.kernel(xt, x, parametrization=p.parametrization)
        entk_xx = empirical_ntk(net, x, None, outputs="trace").to(torch.float64) / out_dim
        entk_tx = empirical_ntk(net, xt, x, outputs="trace").to(torch.float64) / out_dim

        m: dict[str, MetricValue] = {"n_train": n, "n_test": int(xt.shape[0]), "n_outputs": out_dim}
        preds: dict[str, torch.Tensor | None] = {}
        for key, kxx, ktx in (("ntk", k_train.ntk, k_test.ntk), ("entk", entk_xx, entk_tx)):
            kxx, ktx = kxx.to(torch.float64), ktx.to(torch.float64)
            out, info = predict.gradient_descent_mse(
                kxx, y, ktx, t=None, ridge=_ridge(kxx, p.ridge), return_info=True
            )
            preds[key] = out.reshape(yt.shape)
            m.update(_solve_record(key, info))
        nngp_xx, nngp_tx = k_train.nngp.to(torch.float64), k_test.nngp.to(torch.float64)
        gp = predict.gp_inference(nngp_xx, y, nngp_tx, noise=_ridge(nngp_xx, p.ridge))
        preds["nngp"] = gp.mean.reshape(yt.shape)
        m.update(_solve_record("nngp", gp.info))
        out_lin, info_lin = predict.gradient_descent_mse(
            entk_xx,
            y,
            entk_tx,
            t=None,
            ridge=_ridge(entk_xx, p.ridge),
            f0_train=f0_train,
            f0_test=f0_test,
            return_info=True,
        )
        preds["lin"] = out_lin.reshape(yt.shape)
        m.update(_solve_record("lin", info_lin))

        eig = torch.linalg.eigvalsh(entk_xx)
        lam_max = float(eig[-1])
        gd_lr = train.spectral_learning_rate(entk_xx, p.lr_fraction or 1.0, n=n, eigenvalues=eig)
        use_spectral = tc.optimizer in ("gd", "sgd") and p.lr_fraction is not None
        lr = gd_lr if use_spectral else tc.learning_rate
        res = train.fit(
            net, x, y, **tc.fit_kwargs(learning_rate=lr, seed=config.seed, eval_every=max(1, tc.steps // 10))
        )
        with torch.no_grad():
            preds["net"] = None if res.diverged else net(xt).reshape(yt.shape)
        m.update(
            {
                "status": "diverged" if res.diverged else "completed",
                "message": res.message,
                "learning_rate": lr,
                "gd_learning_rate": gd_lr,
                "lambda_max_entk": lam_max,
                "steps_run": res.steps_run,
                "train_loss_net": finite_or_none(res.final_train_loss),
                "n_params": int(train.trainable_vector(net).numel()),
                "centered": p.center,
            }
        )
        for key in (*METHODS, "lin"):
            m.update(_score(key, preds[key], yt))
        return RunOutput(metrics=m)


__all__ = ["KERNEL_METHODS", "METHODS", "Centered", "EquivalenceParams", "EquivalenceStudy", "mlp"]
