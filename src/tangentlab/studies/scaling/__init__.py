"""Study ``scaling``: do trained nets have better data-scaling exponents than their kernels?

Claim tested (Vyas, Nakkiran & Bansal 2022, "Limitations of the NTK for understanding generalization in deep
learning", arXiv 2206.10012; TMLR 2023 as "Empirical limitations of the NTK for understanding scaling laws in deep
learning"): the test loss of a trained network falls with the number of training samples ``n`` as a power law
``L(n) ~ a n^(-alpha)`` whose exponent is larger than that of kernel regression with the empirical NTK (eNTK) at
init and with the infinite-width NTK; and the eNTK taken after the net has been trained on a fixed number ``m`` of
samples, used as a kernel for regression on ``n`` samples, improves on the eNTK at init but does not catch up with
the net's exponent. Their exact datasets, architectures and fit ranges were not recovered: the sweep uses MNIST,
MNIST-1D and digits, small MLPs and CNNs, and the report states the fit range (every ``n`` of the sweep).

One run (one grid point: ``n_train``, ``model_kind``, ``pretrain_m``, ``data.name``, seed):

1. Data from :func:`tangentlab.data.load` (float64) with ``shape="image"`` for the CNN and ``"flat"`` for the MLP;
   ``data.n_train`` is the pool (None: the dataset's standard size), drawn with data seed ``data.seed + seed`` so
   that seeds vary the training set too (the infinite NTK has no other randomness). The run trains on the first
   ``params.n_train`` examples of the pool (the pool is a seeded permutation, so the training sets of one sweep are
   nested) and tests on the first ``params.test_size`` test examples. A run whose ``n_train`` (or ``pretrain_m``)
   exceeds the pool ends with ``status: skipped`` (so one grid can span datasets of different sizes). Targets are
   regressed with MSE; classification data must be one-hot or centred (the default target of a classification
   dataset is one-hot).
2. Model (``model_kind``; ``config.model`` is not used): ``mlp`` is ``depth`` x [``Dense(width)``, ReLU] and a
   ``Dense`` readout; ``cnn`` is ``depth`` x [``Conv(channels, 3, stride=2)``, ReLU], ``Flatten`` and a ``Dense``
   readout; ``myrtle`` is the Myrtle CNN of ``depth`` 5, 7 or 10 with ``channels`` channels
   (:func:`tangentlab.arch.myrtle`; Shankar et al. 2020, for 32x32 images); ``linear`` is the readout alone, ``f(x) = W x + b`` — the **positive control**: a model linear in its
   parameters is its own eNTK (constant in training: eNTK at init = after m samples = infinite NTK), so trained to
   its optimum it *is* kernel regression with that kernel, and the report's comparison must find the net's exponent
   indistinguishable from the kernel's. It is trained to its least-squares optimum by one undamped Gauss-Newton
   step (:func:`least_squares_step`; ``trained_by: gauss_newton``; where GD converges, without its optimization
   error; ``config.train`` is not used for it); ``sigma_w = sqrt(2)`` on hidden layers, ``readout_sigma_w`` (default 0.1) on the readout, no bias
   noise; built in float64 under ``params.parametrization`` (default ``"standard"``, as nets are trained in
   practice; the infinite NTK is then the Gaussian recursion at the built widths) with the run's seed.
3. Four predictors, each scored by test MSE ``(1/n_test) sum_i ||f(x_i) - y_i||^2`` and test error
   ``1 - accuracy`` (classification data):

   a. ``net``: the net trained by :func:`tangentlab.train.fit` with ``config.train`` (optimizer, rate, steps as
      written; MSE; a ``batch_size`` larger than the training set means full batch).
   b. ``entk0``: kernel regression ``f(x) = Theta_{xX} (Theta_{XX} + r I)^{-1} Y`` with the per-output eNTK of the
      same net at init (trace eNTK / number of outputs; :func:`tangentlab.empirical_ntk`).
   c. ``ntk``: the same with the infinite-width NTK of the description (``arch ... .kernel(...).ntk``; the CNN's
      Flatten readout needs only the position diagonal of its covariances, so MNIST's 784 positions are in reach);
      skipped (null) only for a CNN on inputs with more than ``ntk_max_positions`` positions when that is set.
   d. ``entk_m``: the same with the eNTK of a second net (same architecture, seed ``seed + 1``) trained with
      ``config.train`` on the first ``pretrain_m`` examples of the pool (Vyas et al.'s "eNTK after training on m
      samples"); null when ``pretrain_m = 0``.

   Kernel regression is converged gradient flow from a zero function (:func:`tangentlab.predict.gradient_descent_mse`
   with ``t=None``, no ``f0``: kernel regression proper, not the linearized net, so a–d differ only in the kernel)
   with ridge ``r = ridge * mean(diag Theta_{XX})``. The solver and condition number of each solve are recorded.
4. Metrics: ``test_mse_<method>``, ``test_err_<method>``, ``solver_<kernel>``, ``cond_<kernel>``,
   ``train_loss_net``, ``train_loss_pre``, ``n_params`` and ``trained_by``. A diverged net leaves its own metrics null.

The report (:mod:`tangentlab.studies.scaling.report`) fits ``L(n) = a n^(-alpha)`` per method on a log-log scale
over every ``n`` of the sweep, with a bootstrap over seeds for the CI (:mod:`tangentlab.report.bootstrap`).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, PositiveFloat, PositiveInt

from tangentlab import arch, empirical_ntk, metrics, predict, train
from tangentlab.runner.config import RunConfig
from tangentlab.studies import register
from tangentlab.studies._base import MetricValue, RunOutput, Study
from tangentlab.studies._sections import finite_or_none, needs_mse, no_model

ModelKind = Literal["mlp", "cnn", "myrtle", "linear"]
IMAGE_KINDS: tuple[str, ...] = ("cnn", "myrtle")
METHODS: tuple[str, ...] = ("net", "entk0", "ntk", "entk_m")
KERNELS: tuple[str, ...] = ("entk0", "ntk", "entk_m")


class ScalingParams(BaseModel):
    """Parameters of the ``scaling`` study.

    Attributes:
        n_train: training examples (the first ``n_train`` of the data pool).
        model_kind: ``"mlp"``, ``"cnn"``, ``"myrtle"`` or ``"linear"`` (the positive control; see the module
            docstring).
        pretrain_m: examples the second net is trained on before its eNTK is taken (0: no ``entk_m`` method).
        test_size: at most this many test examples (the first of the test split).
        width: units of every hidden ``Dense`` (MLP).
        channels: channels of every hidden ``Conv`` (CNN).
        depth: hidden layers (``myrtle``: its depth, 5, 7 or 10).
        parametrization: ``"ntk"``, ``"standard"`` or ``"mup"`` (see :mod:`tangentlab.arch`).
        readout_sigma_w: ``sigma_w`` of the readout. A small readout keeps the net's random function at init from
            adding to its test loss (the kernel regressors start from zero); it scales every NTK by
            ``readout_sigma_w^2``, which kernel regression (with a relative ridge) does not see.
        ridge: kernel-regression ridge as a fraction of the mean diagonal of the training kernel.
        ntk_max_positions: skip the infinite NTK of the CNN (metrics null, ``ntk_skipped`` true) when its input has
            more spatial positions than this. None (the default) never skips: the kernel carries only (n, n, P)
            position diagonals through the convolutions (:class:`tangentlab.arch.Flatten` readout).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    n_train: PositiveInt = 256
    model_kind: ModelKind = "mlp"
    pretrain_m: NonNegativeInt = 0
    test_size: PositiveInt = 1000
    width: PositiveInt = 256
    channels: PositiveInt = 16
    depth: PositiveInt = 2
    parametrization: Literal["ntk", "standard", "mup"] = "standard"
    readout_sigma_w: PositiveFloat = 0.1
    ridge: float = Field(default=1e-6, ge=0)
    ntk_max_positions: PositiveInt | None = None


def build_description(
    kind: ModelKind, width: int, channels: int, depth: int, out_dim: int, readout_sigma_w: float = 1.0
) -> arch.Layer:
    """The arch description of ``model_kind``: He-scaled hidden layers (``sigma_w = sqrt 2``), then the readout."""
    if kind == "linear":
        return arch.serial(arch.Dense(out_dim, sigma_w=readout_sigma_w))
    s = math.sqrt(2.0)
    if kind == "myrtle":
        return arch.myrtle(depth, channels, out_dim, sigma_w=s, readout_sigma_w=readout_sigma_w)
    layers: list[arch.Layer] = []
    for _ in range(depth):
        if kind == "cnn":
            layers += [arch.Conv(channels, 3, stride=2, sigma_w=s), arch.ReLU()]
        else:
            layers += [arch.Dense(width, sigma_w=s), arch.ReLU()]
    if kind == "cnn":
        layers.append(arch.Flatten())
    return arch.serial(*layers, arch.Dense(out_dim, sigma_w=readout_sigma_w))


def _per_output_ntk(model: torch.nn.Module, x1: torch.Tensor, x2: torch.Tensor, n_out: int) -> torch.Tensor:
    return empirical_ntk(model, x1, x2, outputs="trace").to(torch.float64) / n_out


def kernel_regression(
    k_all: torch.Tensor, n: int, y: torch.Tensor, ridge: float
) -> tuple[torch.Tensor, predict.SolveInfo]:
    """Test predictions of kernel regression from ``k_all`` = K([X; X_test], X) of shape (n + n_test, n).

    ``f(x) = K_{xX} (K_{XX} + r I)^{-1} Y`` with ``r = ridge * mean(diag K_{XX})`` (converged gradient flow from a
    zero function, :func:`tangentlab.predict.gradient_descent_mse` with ``t=None``).
    """
    k_xx, k_tx = k_all[:n], k_all[n:]
    r = ridge * float(torch.diagonal(k_xx).mean())
    return predict.gradient_descent_mse(k_xx, y, k_tx, t=None, ridge=r, return_info=True)


def _train(
    net: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    fit_args: dict[str, Any],
    linear: bool,
    ridge: float = 0.0,
) -> tuple[bool, str, float]:
    """Train ``net`` in place: ``(diverged, message, final training loss (1/(2n)) ||f - y||^2)``.

    Every net but the linear model is trained by :func:`tangentlab.train.fit`. The linear model (the positive
    control) is moved to its least-squares optimum by one undamped Gauss-Newton step ``theta += J^T G^+ (y - f)``
    (:func:`least_squares_step`, with the kernel regressions' relative ``ridge``) — where gradient descent converges,
    without its optimization error.
    """
    if linear:
        least_squares_step(net, x, y, ridge)
    else:
        res = train.fit(net, x, y, **fit_args)
        if res.diverged:
            return True, res.message, res.final_train_loss
    with torch.no_grad():
        loss = 0.5 * float(((net(x).reshape(y.shape) - y) ** 2).sum()) / x.shape[0]
    ok = math.isfinite(loss)
    message = (
        ("least squares by one Gauss-Newton step" if linear else res.message) if ok else "non-finite loss"
    )
    return not ok, message, loss


def least_squares_step(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, ridge: float = 0.0) -> None:
    """One Gauss-Newton step on MSE for a model linear in its parameters with i.i.d. outputs (a linear readout):
    ``theta += J^T alpha``, ``alpha = (K + r I)^-1 (y - f)`` per output column, with ``K`` the per-output eNTK
    (trace eNTK / O; the full eNTK is ``K (x) I_O``), ``r = ridge * mean(diag K)`` — the relative ridge of
    :func:`kernel_regression` — and the solve :func:`tangentlab.predict.solve_psd`. ``J^T alpha`` is one
    vector-Jacobian product, so neither ``J`` nor the ``(nO)^2`` Gram is formed. With ``ridge = 0`` the step lands on
    the least-squares optimum nearest ``theta`` (the limit of gradient descent); with the study's ridge it lands on
    the ridge solution nearest ``theta``, i.e. the net predicts ``f_0(x) + K_xX (K + r I)^-1 (y - f_0(X))``, the
    eNTK regression of the study plus the part of the small initial function ``f_0`` the data do not pin down.

    Why the ridge (issue 17, the full scaling sweep's control on MNIST): with more examples than features the Gram
    ``K = A A^T`` (``A`` = [x, 1]) is singular and, near n = 785 features, ridgeless least squares is at its
    interpolation peak; pixels that are almost always 0 give singular values down to 1e-80 of the largest. The
    exact least-squares fit then has test MSE ~3e5 (summed over the 10 outputs) at n = 1024, and a pseudo-inverse
    keeps or drops rounding-level eigenvalues by its cutoff: the former ridgeless step (``torch.linalg.pinv``) gave
    2.6 against 4.18 for the study's eNTK regression, and the control said "no match" on numerics, not on the
    theory."""
    with torch.no_grad():
        f = net(x)
    n_out = f[0].numel()
    k = empirical_ntk(net, x, outputs="trace").to(f.dtype) / n_out
    residual = (y.reshape(f.shape) - f).reshape(x.shape[0], -1)
    r = ridge * float(torch.diagonal(k).mean())
    # With a ridge: the very solve of kernel_regression (Cholesky), so that the control's net is the study's eNTK
    # regression even where K + r I is ill-conditioned (an eigendecomposition would drop eigenvalues below
    # 1e-8 lambda_max, above r = 1e-6 mean(diag K) on MNIST, and answer a different problem). Without one: the
    # eigendecomposition, i.e. the pseudo-inverse without rounding-level eigenvalues (Cholesky with a jitter would
    # regularise a singular K instead of projecting).
    ladder = None if r > 0 else ()
    alpha, _ = predict.solve_psd("the linear control's eNTK", k, residual, ridge=r, jitter_ladder=ladder)
    params = [q for q in net.parameters() if q.requires_grad]
    grads = torch.autograd.grad((net(x).reshape(alpha.shape) * alpha).sum(), params)
    with torch.no_grad():
        for q, g in zip(params, grads, strict=True):
            q.add_(g)


@register
class ScalingStudy(Study):
    """Data-scaling exponents of nets vs their kernels (Vyas, Nakkiran & Bansal 2022); see the module docstring."""

    name: ClassVar[str] = "scaling"
    title: ClassVar[str] = "Data scaling: do trained nets scale better with data than their tangent kernels?"
    citation: ClassVar[str] = (
        "Vyas, Nakkiran & Bansal 2022, Limitations of the NTK for Understanding Generalization in Deep Learning "
        "(arXiv 2206.10012; TMLR 2023 as Empirical Limitations of the NTK for Understanding Scaling Laws in Deep "
        "Learning)"
    )
    claim: ClassVar[str] = (
        "The test loss of trained nets falls with the number of samples n as a power law n^(−α) whose exponent α "
        "is larger than that of kernel regression with the empirical NTK at init and with the infinite-width NTK; "
        "the empirical NTK after training on a fixed number m of samples improves but does not catch up with the "
        "net's exponent (Vyas et al. 2022)."
    )
    Params: ClassVar[type[BaseModel]] = ScalingParams
    sections: ClassVar[frozenset[str]] = frozenset({"data", "train"})

    def run(self, config: RunConfig, *, device: str = "cpu") -> RunOutput:
        """Train the net (and the pre-trained net), solve the three kernel regressions, score all four."""
        p = ScalingParams.model_validate(config.params)
        tc = config.train
        no_model(config.model, self.name, "params.model_kind")
        needs_mse(tc.loss, self.name, "kernel regression's loss")
        data = config.data.model_copy(update={"seed": config.data.seed + config.seed})
        ds = data.load(shape="image" if p.model_kind in IMAGE_KINDS else "flat")
        if ds.y_train.dtype == torch.int64:
            raise ValueError(
                "data.target: the scaling study regresses targets with MSE; use 'onehot' or 'centered'"
            )
        pool = ds.x_train.shape[0]
        if max(p.n_train, p.pretrain_m) > pool:
            return RunOutput(
                metrics={
                    "status": "skipped",
                    "message": f"n_train={p.n_train}, pretrain_m={p.pretrain_m} exceed the pool of {pool} examples",
                }
            )
        n, nt = p.n_train, min(p.test_size, ds.x_test.shape[0])
        x, y = ds.x_train[:n].to(device), ds.y_train[:n].to(device)
        xt, yt = ds.x_test[:nt].to(device), ds.y_test[:nt].to(device)
        x_all = torch.cat([x, xt])
        out_dim = 1 if y.ndim == 1 else int(y[0].numel())
        desc = build_description(p.model_kind, p.width, p.channels, p.depth, out_dim, p.readout_sigma_w)

        def build(seed: int) -> torch.nn.Module:
            return desc.build(
                ds.input_shape,
                parametrization=p.parametrization,
                seed=seed,
                dtype=torch.float64,
                device=device,
            )

        fit_args = tc.fit_kwargs(
            batch_size=None if tc.batch_size is None else min(tc.batch_size, n),
            seed=config.seed,
            eval_every=max(tc.steps, 1),
        )
        net = build(config.seed)
        n_out = out_dim
        outputs: dict[str, torch.Tensor | None] = {}
        infos: dict[str, predict.SolveInfo | None] = {}
        outputs["entk0"], infos["entk0"] = kernel_regression(
            _per_output_ntk(net, x_all, x, n_out), n, y, p.ridge
        )
        positions = math.prod(ds.input_shape[1:]) if p.model_kind in IMAGE_KINDS else 1
        ntk_skipped = p.ntk_max_positions is not None and positions > p.ntk_max_positions
        outputs["ntk"], infos["ntk"] = None, None
        if not ntk_skipped:
            k_inf = desc.kernel(x_all, x, parametrization=p.parametrization).ntk.to(torch.float64)
            outputs["ntk"], infos["ntk"] = kernel_regression(k_inf, n, y, p.ridge)

        linear = p.model_kind == "linear"
        diverged, message, loss = _train(net, x, y, fit_args, linear, p.ridge)
        with torch.no_grad():
            outputs["net"] = None if diverged else net(xt)

        m: dict[str, MetricValue] = {
            "status": "diverged" if diverged else "completed",
            "message": message,
            "n_params": int(train.trainable_vector(net).numel()),
            "n_test_used": nt,
            "train_loss_net": finite_or_none(loss),
            "train_loss_pre": None,
            "ntk_skipped": ntk_skipped,
            "trained_by": "gauss_newton" if linear else tc.optimizer,
        }
        outputs["entk_m"], infos["entk_m"] = None, None
        if p.pretrain_m > 0:
            pre = build(config.seed + 1)
            x_pre, y_pre = ds.x_train[: p.pretrain_m].to(device), ds.y_train[: p.pretrain_m].to(device)
            pre_args = {
                **fit_args,
                "batch_size": None if tc.batch_size is None else min(tc.batch_size, p.pretrain_m),
            }
            pre_diverged, _, pre_loss = _train(pre, x_pre, y_pre, pre_args, linear, p.ridge)
            m["train_loss_pre"] = finite_or_none(pre_loss)
            if not pre_diverged:
                outputs["entk_m"], infos["entk_m"] = kernel_regression(
                    _per_output_ntk(pre, x_all, x, n_out), n, y, p.ridge
                )
        for method in METHODS:
            out = outputs[method]
            ok = out is not None and bool(torch.isfinite(out).all())
            out = out.reshape(yt.shape) if ok and out is not None else None
            m[f"test_mse_{method}"] = metrics.mean_squared_error(out, yt) if out is not None else None
            m[f"test_err_{method}"] = (
                1.0 - metrics.accuracy(out, yt) if out is not None and ds.task == "classification" else None
            )
        for kernel in KERNELS:
            info = infos[kernel]
            m[f"solver_{kernel}"] = info.solver if info is not None else None
            m[f"cond_{kernel}"] = finite_or_none(info.condition_number) if info is not None else None
        return RunOutput(metrics=m)
