"""Metrics for comparing finite networks with kernel theory.

* kernels: :func:`kernel_distance`, :func:`kernel_angle`, :func:`kernel_velocity` (Fort et al. 2020),
  :func:`kernel_target_alignment` (Cristianini et al. 2002), :func:`relative_frobenius_change`;
* training movement: :func:`relative_param_change`, :func:`function_gap` (Lee et al. 2019);
* predictions: :func:`accuracy`, :func:`mean_squared_error`, :func:`nll`, :func:`gaussian_nll`;
* calibration: :func:`expected_calibration_error` (Guo et al. 2017), :func:`interval_coverage`;
* uncertainty: :func:`predictive_entropy` (categorical), :func:`gaussian_entropy` (differential);
* noise floors: :func:`seed_spread` (mean, std and standard error over seeds), :func:`distinguish`.

Scalar metrics return Python floats, computed in float64.
"""

from tangentlab.metrics.calibration import expected_calibration_error, interval_coverage
from tangentlab.metrics.change import function_gap, relative_frobenius_change, relative_param_change
from tangentlab.metrics.entropy import gaussian_entropy, predictive_entropy
from tangentlab.metrics.kernel_similarity import (
    kernel_angle,
    kernel_distance,
    kernel_target_alignment,
    kernel_velocity,
)
from tangentlab.metrics.prediction_quality import accuracy, gaussian_nll, mean_squared_error, nll
from tangentlab.metrics.seed_spread import SeedSpread, distinguish, seed_spread

__all__ = [
    "SeedSpread",
    "accuracy",
    "distinguish",
    "expected_calibration_error",
    "function_gap",
    "gaussian_entropy",
    "gaussian_nll",
    "interval_coverage",
    "kernel_angle",
    "kernel_distance",
    "kernel_target_alignment",
    "kernel_velocity",
    "mean_squared_error",
    "nll",
    "predictive_entropy",
    "relative_frobenius_change",
    "relative_param_change",
    "seed_spread",
]
