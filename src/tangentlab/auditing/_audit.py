"""``audit``: is a user's own model in the kernel regime? Measure it, judge each criterion, return the record."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from tangentlab.auditing._criteria import Criterion, RegimeVerdict, Thresholds, judge, overall
from tangentlab.auditing._factory import (
    FactoryError,
    ModelFactory,
    call_factory,
    factory_name,
    forward_error,
    resolve_factory,
    shape_error,
)
from tangentlab.auditing._measure import Measurements, Setup, json_ready, measure
from tangentlab.data import Dataset, load
from tangentlab.train.loop import OPTIMIZERS, OptimizerName

Layout = Literal["auto", "flat", "image"]
LAYOUTS: tuple[str, ...] = ("auto", "flat", "image")


@dataclass(frozen=True)
class AuditResult:
    """What :func:`audit` found.

    Attributes:
        factory: the factory's name (its spec string, or ``module:qualname``).
        data: the dataset's name.
        settings: how the audit was run (data sizes, input layout, optimizer, learning rate and its rule, steps,
            NTK-regression time, seeds, dtype, number of parameters).
        measurements: every measured number and trajectory (:class:`Measurements`).
        criteria: one :class:`Criterion` per threshold, in a fixed order.
        model: the trained network.
    """

    factory: str
    data: str
    settings: dict[str, Any]
    measurements: Measurements
    criteria: tuple[Criterion, ...]
    model: nn.Module = field(repr=False)

    @property
    def verdict(self) -> RegimeVerdict:
        """``"kernel regime"`` iff every criterion passes, else ``"not kernel regime"``."""
        return overall(self.criteria)

    @property
    def failing(self) -> tuple[str, ...]:
        """Names of the criteria that fail."""
        return tuple(c.name for c in self.criteria if not c.passed)

    def criterion(self, name: str) -> Criterion:
        """The criterion called ``name``."""
        for c in self.criteria:
            if c.name == name:
                return c
        raise ValueError(f"name: expected one of {tuple(c.name for c in self.criteria)}, got {name!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record: verdict, failing criteria, criteria, settings, measurements."""
        return {
            "factory": self.factory,
            "data": self.data,
            "verdict": self.verdict,
            "failing": list(self.failing),
            "criteria": [c.to_dict() for c in self.criteria],
            "settings": json_ready(self.settings),
            "measurements": self.measurements.to_dict(),
        }


def _check(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return value


def _datasets(
    data: str | Dataset, layout: str, n_train: int, n_test: int, seed: int, dtype: torch.dtype
) -> Iterator[Dataset]:
    """Yield the candidate datasets in the order their input layouts are tried."""
    if isinstance(data, Dataset):
        yield data
        return
    for shape in ("flat", "image") if layout == "auto" else (layout,):
        yield load(data, n_train=n_train, n_test=n_test, seed=seed, shape=shape, dtype=dtype)


def audit(
    factory: ModelFactory | str,
    data: str | Dataset,
    *,
    steps: int = 200,
    optimizer: OptimizerName = "gd",
    learning_rate: float | None = None,
    batch_size: int | None = None,
    n_train: int = 256,
    n_test: int = 256,
    probe_size: int = 64,
    seeds: int = 3,
    seed: int = 0,
    data_seed: int = 0,
    checkpoints: int = 20,
    shape: Layout = "auto",
    dtype: torch.dtype = torch.float64,
    thresholds: Thresholds | None = None,
    progress: bool = False,
    device: str | torch.device = "cpu",
) -> AuditResult:
    """Audit whether a model trains in the kernel (lazy) regime, criterion by criterion.

    Measures the eNTK at init on ``probe_size`` training inputs for ``seeds`` seeds, trains the model and its
    linearization with ``optimizer`` on MSE for ``steps`` steps while tracking the kernel distance from init
    ``S(0, t)`` and velocity (Fort et al. 2020), the relative parameter change and the net-vs-linearized gap
    (Lee et al. 2019), and compares the test error of the trained net with NTK regression with the init eNTK and
    with the trained linearized model (see :mod:`tangentlab.auditing._measure`). Each criterion of
    :class:`Thresholds` is then judged (:mod:`tangentlab.auditing._criteria`); the verdict is ``"kernel regime"`` iff
    all pass.

    Args:
        factory: a callable returning an ``nn.Module`` (called with ``seed=`` if it takes one, always under
            ``torch.manual_seed(seed)``), or its spec ``"package.module:attr"`` / ``"path/to/file.py:attr"``.
        data: a dataset name for :func:`tangentlab.data.load` (``"digits"``, ``"mnist1d"``, ``"npz:PATH"``, ...)
            or a loaded :class:`tangentlab.data.Dataset` with float targets.
        steps: training steps.
        optimizer: ``"gd"`` (full batch), ``"sgd"`` (needs ``batch_size``) or ``"adam"``.
        learning_rate: step size; None: ``0.5 n / lambda_max(Theta_0)`` for GD/SGD, ``1e-3`` for Adam.
        batch_size: minibatch size for SGD/Adam; None for full batches.
        n_train, n_test: examples loaded (when ``data`` is a name).
        probe_size: training inputs on which the eNTK is tracked (the first ones).
        seeds: init seeds for the spread at init (``seed, seed + 1, ...``); at least 2.
        seed: the trained net's init seed (also the minibatch order's).
        data_seed: the subsampling seed of :func:`tangentlab.data.load`.
        checkpoints: number of evenly spaced intervals at which the eNTK and outputs are recorded.
        shape: input layout: ``"flat"`` (n, d), ``"image"`` (n, C, H, W) / (n, C, L), or ``"auto"`` (flat if the
            model accepts it, else image).
        dtype: floating dtype of the model and data (float64 by default: kernels are compared).
        thresholds: the criteria's thresholds (defaults in :class:`Thresholds`).
        progress: show tqdm bars on stderr.
        device: where the model (moved there after the factory builds it) and the data compute; the recorded
            kernels and outputs come back on the CPU.

    Returns:
        An :class:`AuditResult`.

    Raises:
        FactoryError: (a ValueError) the factory cannot be imported or called, does not return an ``nn.Module``,
            or its model does not fit the data's input or target shape — one line saying which.
        ValueError: bad options or data.
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer: expected one of {OPTIMIZERS}, got {optimizer!r}")
    if shape not in LAYOUTS:
        raise ValueError(f"shape: expected one of {LAYOUTS}, got {shape!r}")
    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise ValueError(f"dtype: expected a floating torch dtype, got {dtype!r}")
    if learning_rate is not None and not (math.isfinite(learning_rate) and learning_rate > 0):
        raise ValueError(f"learning_rate: expected a finite number > 0 or None, got {learning_rate!r}")
    steps, seeds = _check("steps", steps, 1), _check("seeds", seeds, 2)
    probe_size, checkpoints = _check("probe_size", probe_size, 1), _check("checkpoints", checkpoints, 1)
    thresholds = thresholds if thresholds is not None else Thresholds()
    name = factory_name(factory)
    fn = resolve_factory(factory) if isinstance(factory, str) else factory
    if not callable(fn):
        raise FactoryError(f"factory: expected a callable or 'module:attr', got a {type(fn).__name__}")

    try:
        where = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise ValueError(f"device: expected a torch device such as 'cpu' or 'cuda', got {device!r}") from None

    def build(s: int) -> nn.Module:
        return call_factory(fn, s, name=name, dtype=dtype).to(where)

    model = build(seed)
    failures: list[str] = []
    chosen: Dataset | None = None
    data_name = data.name if isinstance(data, Dataset) else str(data)
    for ds in _datasets(data, shape, n_train, n_test, data_seed, dtype):
        if not ds.y_train.is_floating_point():
            raise ValueError(
                f"data: the audit regresses targets with MSE; got {ds.y_train.dtype} class indices"
            )
        x2, y2 = ds.x_train[:2].to(device=where, dtype=dtype), ds.y_train[:2].to(where)
        error = forward_error(model, x2, y2, name=name, data=data_name)
        if error is None:
            chosen = ds
            break
        failures.append(error)
    if chosen is None:
        raise shape_error(name, data_name, failures)
    ds = chosen
    if probe_size > ds.n_train:
        raise ValueError(f"probe_size: expected at most n_train = {ds.n_train}, got {probe_size}")
    setup = Setup(
        steps,
        optimizer,
        learning_rate,
        batch_size,
        checkpoints,
        probe_size,
        tuple(seed + i for i in range(seeds)),
    )
    x, y, xt, yt = (t.to(device=where, dtype=dtype) for t in (ds.x_train, ds.y_train, ds.x_test, ds.y_test))
    classification = ds.task == "classification"
    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    found, trained = measure(
        model, build, x, y, xt, yt, setup, classification=classification, progress=progress
    )
    settings: dict[str, Any] = {
        "data": data_name,
        "task": ds.task,
        "input_shape": list(ds.input_shape),
        "n_train": ds.n_train,
        "n_test": ds.n_test,
        "probe_size": probe_size,
        "seeds": list(setup.seeds),
        "loss": "mse",
        "optimizer": optimizer,
        "learning_rate": found.learning_rate,
        "learning_rate_rule": found.lr_rule,
        "batch_size": batch_size,
        "steps": steps,
        "checkpoints": len(found.steps),
        "ntk_regression_time": "infinity" if found.ntk_time is None else found.ntk_time,
        "ntk_regression_kernel": found.kernel,
        "ntk_regression_solve": found.solve,
        "dtype": str(dtype).removeprefix("torch."),
        "device": str(where),
        "n_params": n_params,
        "thresholds": {c.name: c.threshold for c in judge({}, thresholds)},
    }
    criteria = judge(found.criteria_values(steps, classification), thresholds)
    return AuditResult(name, data_name, settings, found, criteria, trained)
