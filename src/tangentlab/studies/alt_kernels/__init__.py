"""Study ``alt_kernels``: can classical kernels (RBF, Laplace) rival NTK and NNGP regression on the data of
``equivalence``?

Claim tested (Liu, Tai, Crandall & Huang 2025, arXiv 2501.10929, as summarised: "alternative kernels can rival
NTK-based predictions"): kernel regression with an RBF or a Laplace kernel, whose only setting is a bandwidth,
predicts about as well as regression with the infinite NTK (or NNGP) of the ReLU MLPs that ``equivalence`` deepens
one layer at a time. Operationalised here: on each dataset the better of RBF and Laplace (bandwidth chosen on a
validation split) reaches a test MSE within ``RIVAL_TOL`` (relative) of the NTK's at its best depth, judged on the
mean over seeds with a paired interval (:mod:`tangentlab.studies.alt_kernels.report`). Kept apart from
``equivalence`` so that its run ids and parameters stay as they are; the data, depths and kernel setup are the same
(``equivalence``'s :func:`~tangentlab.studies.equivalence.mlp`: ``depth`` hidden ``Dense(sigma_w, sigma_b)`` +
``ReLU`` layers, NTK parametrization, whose infinite kernels do not depend on width).

One run (one grid point: dataset, seed) evaluates every method on one subsample of the data:

1. Data from :func:`tangentlab.data.load` with ``data.seed + seed`` as the subsampling seed (so seeds give
   independent train/validation/test draws), flat float64 inputs, one-hot (or any float) targets; ``data.n_val > 0``
   is required (the validation bandwidth).
2. NTK and NNGP regression for every depth in ``depths``: ``f(x*) = k(x*, X) (k(X, X) + ridge I)^{-1} Y`` with the
   infinite kernels (``ridge = params.ridge`` times the mean diagonal; 0 = interpolation, as in ``equivalence``).
3. RBF and Laplace (Euclidean) regression (:class:`tangentlab.predict.StationaryRegressor`) with the same relative
   ridge, the bandwidth set by the median heuristic (``*_median``) and chosen on the validation split among
   ``median * grid`` (``*_validation``); the chosen bandwidths are recorded.
4. Metrics per method (``ntk_d<depth>``, ``nngp_d<depth>``, ``rbf_median``, ``rbf_validation``,
   ``laplace_median``, ``laplace_validation``): ``test_mse_<method>`` and, for classification, ``test_err_<method>``
   (1 - argmax accuracy).
"""

from __future__ import annotations

import time
from typing import ClassVar

import torch
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    PositiveFloat,
    PositiveInt,
    field_validator,
)

from tangentlab import metrics, predict
from tangentlab.predict.stationary import DEFAULT_GRID
from tangentlab.runner.config import RunConfig
from tangentlab.studies import register
from tangentlab.studies._base import MetricValue, RunOutput, Study
from tangentlab.studies.equivalence import mlp

STATIONARY: tuple[str, ...] = ("rbf_median", "rbf_validation", "laplace_median", "laplace_validation")


class AltKernelsParams(BaseModel):
    """Parameters of the ``alt_kernels`` study.

    Attributes:
        depths: hidden-layer counts of the MLPs whose NTK and NNGP are compared (equivalence's depth axis).
        sigma_w: weight scale of every Dense of the MLPs (sqrt 2, as equivalence).
        sigma_b: bias scale of every Dense of the MLPs.
        ridge: ridge of every kernel solve, relative to the mean diagonal of the training kernel.
        grid: multiples of the median distance tried for the validation bandwidth.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    depths: tuple[PositiveInt, ...] = (1, 2, 3, 4)
    sigma_w: PositiveFloat = 2**0.5
    sigma_b: NonNegativeFloat = 0.0
    ridge: NonNegativeFloat = 0.0
    grid: tuple[PositiveFloat, ...] = Field(default=DEFAULT_GRID, min_length=1)

    @field_validator("depths")
    @classmethod
    def _sorted(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value:
            raise ValueError("expected at least one depth")
        return tuple(sorted(set(value)))


def _scores(key: str, out: torch.Tensor, yt: torch.Tensor, classification: bool) -> dict[str, MetricValue]:
    out = out.reshape(yt.shape)
    if not bool(torch.isfinite(out).all()):
        return {f"test_mse_{key}": None, **({f"test_err_{key}": None} if classification else {})}
    m: dict[str, MetricValue] = {f"test_mse_{key}": metrics.mean_squared_error(out, yt)}
    if classification:
        m[f"test_err_{key}"] = 1.0 - metrics.accuracy(out, yt)
    return m


@register
class AltKernelsStudy(Study):
    """RBF and Laplace kernel regression beside NTK and NNGP regression (Liu et al. 2025); see the module docstring."""

    name: ClassVar[str] = "alt_kernels"
    title: ClassVar[str] = "Alternative kernels: do RBF and Laplace regression rival the NTK and the NNGP?"
    citation: ClassVar[str] = (
        "Liu, Tai, Crandall & Huang 2025, arXiv 2501.10929; Geifman et al. 2020, On the Similarity between the "
        "Laplace and Neural Tangent Kernels (arXiv 2007.01580)"
    )
    claim: ClassVar[str] = (
        "Kernel regression with classical kernels (RBF, Laplace; one bandwidth) predicts about as well as regression "
        'with the infinite NTK or NNGP of ReLU MLPs at any depth ("alternative kernels can rival NTK-based '
        'predictions", Liu et al. 2025). Tested as: the better of RBF and Laplace, bandwidth chosen on validation '
        "data, is within 5 % of the NTK's test MSE at its best depth."
    )
    Params: ClassVar[type[BaseModel]] = AltKernelsParams
    sections: ClassVar[frozenset[str]] = frozenset({"data"})

    def run(self, config: RunConfig, *, device: str = "cpu") -> RunOutput:
        """Every kernel regression on one subsample of the data."""
        start = time.perf_counter()
        p = AltKernelsParams.model_validate(config.params)
        if config.data.n_val < 2:
            raise ValueError(
                f"data.n_val: the alt_kernels study chooses bandwidths on a validation split; expected >= 2, got "
                f"{config.data.n_val}"
            )
        ds = config.data.model_copy(update={"seed": config.data.seed + config.seed}).load()
        if ds.y_train.dtype == torch.int64:
            raise ValueError("data.target: kernel regression needs float targets; use 'onehot' or 'centered'")
        x, y, xt, yt = (t.to(device) for t in (ds.x_train, ds.y_train, ds.x_test, ds.y_test))
        assert ds.x_val is not None and ds.y_val is not None
        xv, yv = ds.x_val.to(device), ds.y_val.to(device)
        x, xt, xv = (t.reshape(t.shape[0], -1) for t in (x, xt, xv))
        classification = ds.task == "classification"
        out_dim = 1 if y.ndim == 1 else int(y.shape[1])
        m: dict[str, MetricValue] = {
            "n_train": int(x.shape[0]),
            "n_val": int(xv.shape[0]),
            "n_test": int(xt.shape[0]),
        }

        for depth in p.depths:
            description = mlp(
                depth, 1, out_dim, p.sigma_w, p.sigma_b
            )  # infinite kernels: the width is unused
            k_train, k_test = description.kernel(x), description.kernel(xt, x)
            for key, kxx, ktx in (("ntk", k_train.ntk, k_test.ntk), ("nngp", k_train.nngp, k_test.nngp)):
                kxx, ktx = kxx.to(torch.float64), ktx.to(torch.float64)
                ridge = p.ridge * float(torch.diagonal(kxx).mean())
                model = predict.KernelRegressor(ridge).fit(kxx, y)
                m.update(_scores(f"{key}_d{depth}", model.predict(ktx), yt, classification))
                m[f"cond_{key}_d{depth}"] = model.solve_info_.condition_number

        for kind in ("rbf", "laplace"):
            for how in ("median", "validation"):
                reg = predict.StationaryRegressor(kind, bandwidth=how, ridge=p.ridge, grid=p.grid)
                reg.fit(x, y, x_val=xv, y_val=yv)
                key = f"{kind}_{how}"
                m.update(_scores(key, reg.predict(xt), yt, classification))
                m[f"bandwidth_{key}"] = reg.bandwidth_
                m[f"bandwidth_over_median_{key}"] = reg.bandwidth_ / (reg.median_ or reg.bandwidth_)
        m["seconds"] = time.perf_counter() - start
        return RunOutput(metrics=m)


__all__ = ["STATIONARY", "AltKernelsParams", "AltKernelsStudy"]
