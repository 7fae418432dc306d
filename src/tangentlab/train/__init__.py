"""Training real and linearized networks with one loop and one snapshot mechanism.

* :func:`fit` — full-batch GD, minibatch SGD or Adam on MSE (``(1/(2n)) sum ||f - y||^2``) or cross-entropy, with
  early stopping and divergence recorded in the :class:`TrainResult`.
* :class:`Snapshots` / :class:`Snapshot` — eNTK on a probe set, distance from init, losses at chosen steps.
* :func:`linearize` — the first-order Taylor model ``f_0 + J (theta - theta_0)`` as a trainable module.
* :func:`fit_beside_linearization` — a network and its linearization at init trained with the same settings.
* :func:`spectral_learning_rate` — ``fraction * n / lambda_max(Theta)``, the GD step size relative to the linearized
  dynamics' stability limit ``2 n / lambda_max``.
* :func:`gauss_newton_step` / :func:`fit_gauss_newton` — damped Gauss–Newton (natural-gradient) steps on MSE,
  ``-eta J^T (Theta + lambda I)^{-1} (f - y)``, computed in function space through the eNTK.
"""

from tangentlab.train.beside import BesideLinearization, fit_beside_linearization
from tangentlab.train.gauss_newton import (
    GaussNewtonResult,
    GaussNewtonStep,
    fit_gauss_newton,
    gauss_newton_step,
    ntk_gram,
)
from tangentlab.train.linearize import LinearizedModel, linearize
from tangentlab.train.loop import EarlyStopping, History, TrainResult, fit
from tangentlab.train.losses import cross_entropy_loss, mse_loss
from tangentlab.train.rates import spectral_learning_rate
from tangentlab.train.snapshots import Snapshot, SnapshotHook, Snapshots, trainable_vector

__all__ = [
    "BesideLinearization",
    "EarlyStopping",
    "GaussNewtonResult",
    "GaussNewtonStep",
    "History",
    "LinearizedModel",
    "Snapshot",
    "SnapshotHook",
    "Snapshots",
    "TrainResult",
    "cross_entropy_loss",
    "fit",
    "fit_beside_linearization",
    "fit_gauss_newton",
    "gauss_newton_step",
    "linearize",
    "mse_loss",
    "ntk_gram",
    "spectral_learning_rate",
    "trainable_vector",
]
