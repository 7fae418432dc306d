"""One point of a ``scaling_arms`` run: build the net, solve its kernel regressions, train it with snapshots.

The building blocks are ``scaling``'s (:func:`tangentlab.studies.scaling.build_description`,
:func:`~tangentlab.studies.scaling.kernel_regression`, :func:`~tangentlab.studies.scaling.least_squares_step`), so
the two studies compute the net, the eNTK at init and the infinite NTK the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import torch

from tangentlab import empirical_ntk, metrics, train
from tangentlab.data import Dataset
from tangentlab.studies._base import MetricValue
from tangentlab.studies._sections import finite_or_none
from tangentlab.studies.scaling import ModelKind, build_description, kernel_regression, least_squares_step


@dataclass(frozen=True)
class PointSpec:
    """What one point computes.

    Attributes:
        tag: the metric suffix (``n<n>`` or ``w<width>``).
        n: training examples (the first ``n`` of the pool).
        width: hidden width.
        depth: hidden layers.
        model_kind: ``"mlp"`` or ``"linear"``.
        parametrization: ``"ntk"``, ``"standard"`` or ``"mup"``.
        readout_sigma_w: readout scale.
        ridge: relative kernel-regression ridge.
        test_size: at most this many test examples.
        linearized: also train the linearized net (``lin``).
        snapshots: steps at which the after-kernel is taken (empty: none).
    """

    tag: str
    n: int
    width: int
    depth: int
    model_kind: ModelKind
    parametrization: Literal["ntk", "standard", "mup"]
    readout_sigma_w: float
    ridge: float
    test_size: int
    linearized: bool = False
    snapshots: tuple[int, ...] = ()


def snapshot_steps(steps: int, count: int) -> tuple[int, ...]:
    """``count`` evenly spaced steps from 0 to ``steps`` (both included, rounded, distinct); () for ``count = 0``."""
    if count == 0:
        return ()
    return tuple(sorted({round(k * steps / (count - 1)) for k in range(count)}))


def per_output_entk(model: torch.nn.Module, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
    """The per-output eNTK ``Theta(x1, x2)`` (float64): the trace eNTK over the outputs divided by their number.

    For a net with i.i.d. outputs this is the scalar kernel that the infinite NTK (``arch ... .kernel().ntk``) is the
    limit of, and the kernel that ``scaling`` regresses with.
    """
    with torch.no_grad():
        n_out = int(model(x1[:1]).reshape(1, -1).shape[1])
    return empirical_ntk(model, x1, x2, outputs="trace").to(torch.float64) / n_out


def _scores(
    out: torch.Tensor | None, yt: torch.Tensor, classification: bool
) -> tuple[float | None, float | None]:
    """(test MSE, test error) of ``out``; None for a missing or non-finite prediction."""
    if out is None or not bool(torch.isfinite(out).all()):
        return None, None
    out = out.reshape(yt.shape)
    err = 1.0 - metrics.accuracy(out, yt) if classification else None
    return metrics.mean_squared_error(out, yt), err


def _put(m: dict[str, MetricValue], key: str, scores: tuple[float | None, float | None]) -> None:
    m[f"mse_{key}"], m[f"err_{key}"] = scores


def run_point(
    spec: PointSpec, ds: Dataset, fit_args: dict[str, Any], *, seed: int, device: str = "cpu"
) -> dict[str, MetricValue]:
    """Every method at one point; keys end in ``_<tag>`` (snapshot keys in ``_s<step>``); see the package docstring.

    A diverged net leaves its own metrics (and its snapshots after the divergence) null and sets
    ``diverged_<tag>``; the kernels at init are still scored.
    """
    tag, n = spec.tag, spec.n
    nt = min(spec.test_size, ds.x_test.shape[0])
    x, y = ds.x_train[:n].to(device), ds.y_train[:n].to(device)
    xt, yt = ds.x_test[:nt].to(device), ds.y_test[:nt].to(device)
    x_all = torch.cat([x, xt])
    classification = ds.task == "classification"
    out_dim = 1 if y.ndim == 1 else int(y[0].numel())
    desc = build_description(spec.model_kind, spec.width, 1, spec.depth, out_dim, spec.readout_sigma_w)
    net = desc.build(
        ds.input_shape, parametrization=spec.parametrization, seed=seed, dtype=torch.float64, device=device
    )
    m: dict[str, MetricValue] = {}

    k0 = per_output_entk(net, x_all, x)
    out0, info0 = kernel_regression(k0, n, y, spec.ridge)
    _put(m, f"entk0_{tag}", _scores(out0, yt, classification))
    m[f"cond_entk0_{tag}"] = finite_or_none(info0.condition_number)
    k_inf = desc.kernel(x_all, x, parametrization=spec.parametrization).ntk.to(torch.float64)
    out_inf, _ = kernel_regression(k_inf, n, y, spec.ridge)
    _put(m, f"ntk_{tag}", _scores(out_inf, yt, classification))
    m[f"kdist_{tag}"] = float(torch.linalg.norm(k0[:n] - k_inf[:n]) / torch.linalg.norm(k_inf[:n]))

    if spec.linearized:
        lin = train.linearize(net)
        res_lin = train.fit(lin, x, y, **fit_args)
        with torch.no_grad():
            out_lin = None if res_lin.diverged else lin(xt)
        _put(m, f"lin_{tag}", _scores(out_lin, yt, classification))

    kernels: dict[int, torch.Tensor] = {}

    def hook(model: torch.nn.Module, step: int) -> dict[str, Any]:
        k = k0 if step == 0 else per_output_entk(model, x_all, x)
        kernels[step] = k[:n]
        out_k = out0 if step == 0 else kernel_regression(k, n, y, spec.ridge)[0]
        _put(m, f"entkt_s{step}", _scores(out_k, yt, classification))
        with torch.no_grad():
            _put(m, f"nett_s{step}", _scores(model(xt), yt, classification))
        return {}

    diverged = False
    if spec.model_kind == "linear":
        least_squares_step(net, x, y, spec.ridge)
    else:
        snaps = train.Snapshots(steps=spec.snapshots, probe=None, hooks=(hook,)) if spec.snapshots else None
        diverged = train.fit(net, x, y, snapshots=snaps, **fit_args).diverged
    with torch.no_grad():
        out_net = None if diverged else net(xt)
    _put(m, f"net_{tag}", _scores(out_net, yt, classification))
    if diverged:
        m[f"diverged_{tag}"] = True
    if spec.snapshots:
        last = max(kernels)
        for step in spec.snapshots:
            on = step in kernels
            m[f"kdist0_s{step}"] = metrics.kernel_distance(kernels[0], kernels[step]) if on else None
            m[f"kdistT_s{step}"] = metrics.kernel_distance(kernels[step], kernels[last]) if on else None
            for key in (f"entkt_s{step}", f"nett_s{step}"):
                m.setdefault(f"mse_{key}", None)
                m.setdefault(f"err_{key}", None)
    return m


def finite(value: MetricValue) -> bool:
    """Whether a stored metric is a finite number."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


__all__ = ["PointSpec", "finite", "per_output_entk", "run_point", "snapshot_steps"]
