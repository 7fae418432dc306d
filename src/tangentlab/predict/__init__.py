"""Predictions of kernel theory: linearized gradient-descent dynamics on MSE, NTK-GP ensembles, GP posteriors.

Public surface:

* :func:`gradient_descent_mse` — outputs of one linearized network after gradient flow for time ``t``.
* :func:`gradient_descent_mse_ensemble` — mean and covariance over random inits (NTK or NNGP mode).
* :func:`gp_inference` — GP posterior with a precomputed NNGP or NTK kernel.
* :class:`LinearizedLaplace` — linearized Laplace posterior of a trained network (eNTK, evidence-tuned α, σ);
  :func:`laplace_evidence`, :func:`function_space_evidence`, :func:`maximize_evidence` — its evidence pieces, also
  usable to tune a GP's amplitude and noise.
* :class:`KernelRegressor` — fit/predict kernel ridge regression on precomputed kernels.
* :class:`StationaryRegressor` — kernel ridge regression with an RBF or Laplace kernel on raw inputs, bandwidth by
  the median heuristic or by validation (the "alternative kernels" beside NTK and NNGP).
* :func:`solve_psd`, :class:`SolveInfo`, :class:`GaussianPrediction` — the solver and its records.

All computation is float64; the loss convention is ``L = (1/(2n)) sum_i ||f(x_i) - y_i||^2``.
"""

from tangentlab.predict.gp import GaussianPrediction, gp_inference
from tangentlab.predict.gradient_descent import gradient_descent_mse, gradient_descent_mse_ensemble
from tangentlab.predict.laplace import (
    LinearizedLaplace,
    function_space_evidence,
    laplace_evidence,
    maximize_evidence,
)
from tangentlab.predict.regressor import KernelRegressor, NotFittedError
from tangentlab.predict.solve import (
    JITTER_LADDER,
    JITTER_LADDER_FLOAT32,
    PSD_TOL,
    SolveInfo,
    default_jitter_ladder,
    solve_psd,
)
from tangentlab.predict.stationary import StationaryRegressor

__all__ = [
    "JITTER_LADDER",
    "JITTER_LADDER_FLOAT32",
    "PSD_TOL",
    "GaussianPrediction",
    "KernelRegressor",
    "LinearizedLaplace",
    "NotFittedError",
    "SolveInfo",
    "StationaryRegressor",
    "default_jitter_ladder",
    "function_space_evidence",
    "gp_inference",
    "gradient_descent_mse",
    "gradient_descent_mse_ensemble",
    "laplace_evidence",
    "maximize_evidence",
    "solve_psd",
]
