"""Sweep configuration: the YAML a user writes, and the fully resolved config of one run (its identity).

A sweep file::

    study: lazy                      # a registered study (``tangentlab studies`` lists them)
    data: {name: synthetic, n_train: 64, n_test: 64, options: {input_dim: 8}}
    model: {layer: Serial, layers: [{layer: Dense, width: 256}, ReLU, {layer: Dense, width: 1}]}
    train: {optimizer: gd, learning_rate: 1.0, steps: 500}
    params: {probe_size: 32}         # the study's own parameters (its ``Params`` model); defaults fill the rest
    grid:                            # axes; the sweep is their cartesian product × seeds
      width: [64, 256, 1024]         # a bare name is a study parameter (params.width)
      train.optimizer: [gd, adam]    # a dotted name sets a field of data / train / params; `model` swaps the net
    seeds: 3                         # 0, 1, 2 (or an explicit list)

Every run is a :class:`RunConfig`: the sweep with one value per axis substituted and one seed. Its ``run_id`` is a
hash of that resolved config and the tangentlab version; worker counts and output folders are not part of it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt

from tangentlab._version import __version__


class DataConfig(BaseModel):
    """Arguments of :func:`tangentlab.data.load` (``options`` holds the dataset-specific ones)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    n_train: PositiveInt | None = None
    n_test: PositiveInt | None = None
    classes: tuple[NonNegativeInt, ...] | None = None
    seed: NonNegativeInt = 0
    n_val: NonNegativeInt = 0
    shape: Literal["flat", "image"] = "flat"
    standardize: Literal["global", "feature", "none"] = "global"
    target: Literal["onehot", "centered", "scalar", "index"] | None = None
    options: dict[str, Any] = Field(default_factory=dict)


class TrainConfig(BaseModel):
    """Arguments of :func:`tangentlab.train.fit`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    optimizer: Literal["gd", "sgd", "adam"] = "gd"
    loss: Literal["mse", "cross_entropy"] = "mse"
    learning_rate: PositiveFloat = 1.0
    steps: PositiveInt = 500
    batch_size: PositiveInt | None = None
    momentum: NonNegativeFloat = 0.0
    weight_decay: NonNegativeFloat = 0.0


class RunConfig(BaseModel):
    """One run, fully resolved: what a study's ``run`` receives, and what its identity is computed from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    study: str
    data: DataConfig
    model: dict[str, Any] | None = None  # an arch description as tangentlab.arch.from_dict reads it
    train: TrainConfig = TrainConfig()
    params: dict[str, Any] = Field(default_factory=dict)  # validated against the study's Params, defaults filled
    seed: NonNegativeInt = 0

    def canonical_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))

    @property
    def run_id(self) -> str:
        """16 hex digits of sha256(resolved config + tangentlab version)."""
        payload = json.dumps({"config": json.loads(self.canonical_json()), "tangentlab": __version__}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


class SweepConfig(BaseModel):
    """A sweep file as written (before the grid is expanded)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    study: str
    data: DataConfig
    model: dict[str, Any] | None = None
    train: TrainConfig = TrainConfig()
    params: dict[str, Any] = Field(default_factory=dict)
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    seeds: PositiveInt | list[NonNegativeInt] = 1
