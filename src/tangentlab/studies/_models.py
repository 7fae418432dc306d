"""Building a study's net from the config's (or the study's default) arch description at a grid point's width."""

from __future__ import annotations

import copy
from typing import Any

import torch

from tangentlab import arch
from tangentlab.runner.config import RunConfig
from tangentlab.studies._base import Study

# One hidden ReLU layer of 256 units and a scalar readout, sigma_w = sigma_b = 1 (the arch layers' defaults otherwise):
# the regression net of the studies that compare a finite net's predictive distribution with a Gaussian process
# (ensemble, uncertainty). Read-only: set_hidden_width returns a deep copy.
SCALAR_RELU_NET: dict[str, Any] = {
    "layer": "Serial",
    "layers": [
        {"layer": "Dense", "width": 256, "sigma_w": 1.0, "sigma_b": 1.0},
        {"layer": "ReLU"},
        {"layer": "Dense", "width": 1, "sigma_w": 1.0, "sigma_b": 1.0},
    ],
}


def set_hidden_width(description: dict[str, Any], width: int, out_dim: int | None = None) -> dict[str, Any]:
    """A copy of an arch description dict with every ``Dense`` but the last (the readout) set to ``width`` units,
    and the readout set to ``out_dim`` units when given.

    Raises:
        ValueError: if the description has no hidden ``Dense`` layer to widen.
    """
    out = copy.deepcopy(description)
    dense: list[dict[str, Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("layer") == "Dense":
                dense.append(node)
            for layer in node.get("layers", ()):
                walk(layer)

    walk(out)
    if len(dense) < 2:
        raise ValueError(
            f"model: expected at least one hidden Dense layer before the readout, got {len(dense)} Dense"
        )
    for node in dense[:-1]:
        node["width"] = int(width)
    if out_dim is not None:
        dense[-1]["width"] = int(out_dim)
    return out


def widened_net(
    study: Study,
    config: RunConfig,
    width: int,
    out_dim: int,
    input_shape: tuple[int, ...],
    parametrization: arch.Parametrization,
    device: str = "cpu",
) -> torch.nn.Module:
    """The run's net in float64: ``config.model`` (else ``study.default_model``) with every hidden ``Dense``
    ``width`` units wide and the readout ``out_dim`` wide (:func:`set_hidden_width`), built with the run's seed."""
    description = set_hidden_width(config.model or dict(study.default_model or {}), width, out_dim)
    return arch.from_dict(description).build(
        input_shape, parametrization=parametrization, seed=config.seed, dtype=torch.float64, device=device
    )


__all__ = ["set_hidden_width", "widened_net"]
