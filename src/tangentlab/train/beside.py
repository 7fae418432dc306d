"""A network trained beside its linearization: the comparison at the heart of lazy training.

Lee et al. 2019 (arXiv 1902.06720, Thm. 2.1): under gradient descent a wide network stays close to its first-order
Taylor model ``f_0 + J_0 (theta - theta_0)`` at init. :func:`fit_beside_linearization` makes that comparison the same
way wherever it is made (the ``lazy`` study, :func:`tangentlab.audit`): the linearization is taken at init, before
any step, and both models are trained by :func:`tangentlab.train.fit` with the same settings (optimizer, rate, steps,
minibatch seed), each with its own snapshots.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from tangentlab.train.linearize import LinearizedModel, linearize
from tangentlab.train.loop import TrainResult, fit
from tangentlab.train.snapshots import Snapshots, trainable_vector


@dataclass(frozen=True)
class BesideLinearization:
    """What :func:`fit_beside_linearization` returns.

    Attributes:
        net: the network's training result (the network itself was trained in place).
        linearized: the linearization's training result.
        linearized_model: the trained linearization (an ``nn.Module``: evaluate it like the network).
        theta_0: the network's trainable parameters at init, flattened (:func:`trainable_vector`).
    """

    net: TrainResult
    linearized: TrainResult
    linearized_model: LinearizedModel
    theta_0: torch.Tensor

    @property
    def diverged(self) -> bool:
        """Whether either model diverged."""
        return self.net.diverged or self.linearized.diverged

    @property
    def message(self) -> str:
        """The network's message if it diverged, else the linearization's."""
        return self.net.message if self.net.diverged else self.linearized.message


def fit_beside_linearization(
    model: nn.Module,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    *,
    snapshots: Snapshots | None = None,
    linearized_snapshots: Snapshots | None = None,
    **fit_kwargs: Any,
) -> BesideLinearization:
    """Linearize ``model`` at its current parameters, then train the model (in place) and the linearization with the
    same :func:`tangentlab.train.fit` arguments.

    Args:
        model: the network, at init.
        x_train, y_train: the training data.
        snapshots: what to record while training the network.
        linearized_snapshots: what to record while training the linearization.
        **fit_kwargs: every other argument of :func:`tangentlab.train.fit` (``steps``, ``learning_rate``, ...;
            e.g. ``TrainConfig.fit_kwargs()``), used for both.
    """
    theta_0 = trainable_vector(model)
    lin = linearize(model)
    res_net = fit(model, x_train, y_train, snapshots=snapshots, **fit_kwargs)
    res_lin = fit(lin, x_train, y_train, snapshots=linearized_snapshots, **fit_kwargs)
    return BesideLinearization(net=res_net, linearized=res_lin, linearized_model=lin, theta_0=theta_0)


__all__ = ["BesideLinearization", "fit_beside_linearization"]
