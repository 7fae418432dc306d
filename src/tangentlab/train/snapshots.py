"""The one kernel-snapshot mechanism: at chosen steps, record the eNTK on a probe set, the distance of the
parameters from init, the loss and the probe outputs, plus whatever user hooks return.

A :class:`Snapshots` spec is handed to :func:`tangentlab.train.fit`; each recorded :class:`Snapshot` is taken at
the parameters *before* the update of that step (step 0 = init; step ``steps`` = the end of training).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from tangentlab.kernels import empirical_ntk

#: A user hook: called as ``hook(model, step)``; returns named values stored in :attr:`Snapshot.extras`.
SnapshotHook = Callable[[nn.Module, int], Mapping[str, Any]]


@dataclass(frozen=True)
class Snapshots:
    """What to record, and when.

    Attributes:
        steps: steps at which to record (0 = init; values above the run's last step are ignored).
        probe: inputs (p, ...) on which the eNTK and the outputs are recorded; None records neither.
        ntk: record ``empirical_ntk(model, probe, outputs="trace")`` (p, p) — summed over outputs.
        outputs: record the model's outputs on the probe.

    The eNTK and probe outputs are taken with the model in ``eval()`` mode; its mode is restored afterwards.
        hooks: extra callables ``hook(model, step) -> mapping``, merged into ``extras``.
    """

    steps: Sequence[int]
    probe: torch.Tensor | None = None
    ntk: bool = True
    outputs: bool = True
    hooks: Sequence[SnapshotHook] = ()

    def __post_init__(self) -> None:
        steps = tuple(int(s) for s in self.steps)
        if any(s < 0 for s in steps):
            raise ValueError(f"steps: expected non-negative step numbers, got {list(self.steps)}")
        object.__setattr__(self, "steps", tuple(sorted(set(steps))))
        if self.probe is not None and (not isinstance(self.probe, torch.Tensor) or self.probe.shape[0] == 0):
            raise ValueError("probe: expected a non-empty tensor of inputs (p, ...) or None")


@dataclass(frozen=True)
class Snapshot:
    """One record of the state of training.

    Attributes:
        step: number of updates applied so far.
        train_loss: loss on the whole training set at this step.
        param_distance: ``||theta_step - theta_0||_2`` over all trainable parameters.
        relative_param_distance: ``||theta_step - theta_0|| / ||theta_0||`` (Lee et al. 2019's relative change).
        ntk: (p, p) trace eNTK on the probe, float64, or None.
        probe_outputs: model outputs on the probe (detached), or None.
        extras: values returned by the hooks.
    """

    step: int
    train_loss: float
    param_distance: float
    relative_param_distance: float
    ntk: torch.Tensor | None = None
    probe_outputs: torch.Tensor | None = None
    extras: dict[str, Any] = field(default_factory=dict)


def trainable_vector(model: nn.Module) -> torch.Tensor:
    """All trainable parameters, flattened and concatenated (detached copy)."""
    params = [p.detach().reshape(-1) for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model: expected at least one trainable parameter, got none")
    return torch.cat(params).clone()


def take_snapshot(
    spec: Snapshots, model: nn.Module, step: int, train_loss: float, theta0: torch.Tensor
) -> Snapshot:
    """Record a :class:`Snapshot` of ``model`` at ``step`` according to ``spec``."""
    theta = trainable_vector(model)
    dist = float(torch.linalg.vector_norm(theta - theta0))
    norm0 = float(torch.linalg.vector_norm(theta0))
    ntk = outputs = None
    if spec.probe is not None:
        probe = spec.probe.to(theta0.dtype) if spec.probe.is_floating_point() else spec.probe
        was_training = model.training
        model.eval()  # kernels and probe outputs in evaluation mode (dropout off, BatchNorm running stats)
        try:
            if spec.ntk:
                ntk = empirical_ntk(model, probe, outputs="trace").detach().to(torch.float64)
            if spec.outputs:
                with torch.no_grad():
                    outputs = model(probe).detach().clone()
        finally:
            model.train(was_training)
    extras: dict[str, Any] = {}
    for hook in spec.hooks:
        extras.update(hook(model, step))
    return Snapshot(step, train_loss, dist, dist / norm0 if norm0 > 0 else float("nan"), ntk, outputs, extras)
