"""Training real and linearized networks with one loop and one snapshot mechanism.

* :func:`fit` — full-batch GD, minibatch SGD or Adam on MSE (``(1/(2n)) sum ||f - y||^2``) or cross-entropy, with
  early stopping and divergence recorded in the :class:`TrainResult`.
* :class:`Snapshots` / :class:`Snapshot` — eNTK on a probe set, distance from init, losses at chosen steps.
* :func:`linearize` — the first-order Taylor model ``f_0 + J (theta - theta_0)`` as a trainable module.
* :func:`gauss_newton_step` / :func:`fit_gauss_newton` — damped Gauss–Newton (natural-gradient) steps on MSE,
  ``-eta J^T (Theta + lambda I)^{-1} (f - y)``, computed in function space through the eNTK.
"""

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
from tangentlab.train.snapshots import Snapshot, SnapshotHook, Snapshots, trainable_vector

__all__ = [
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
    "fit_gauss_newton",
    "gauss_newton_step",
    "linearize",
    "mse_loss",
    "ntk_gram",
    "trainable_vector",
]
