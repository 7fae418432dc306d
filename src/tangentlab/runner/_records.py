"""The config records: a sweep as written (:class:`SweepConfig`), one resolved run (:class:`RunConfig`, whose hash is
the run's identity) with its data and training sections, and what the runner needs of a study (:class:`StudyLike`).
Reading, validating and expanding sweep files is :mod:`tangentlab.runner.config`."""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any, Literal, Protocol

import torch
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
)

from tangentlab._version import __version__
from tangentlab.data import Dataset
from tangentlab.data import load as load_dataset


class StudyLike(Protocol):
    """The parts of :class:`tangentlab.studies.Study` that configs, executors and sweeps use."""

    @property
    def name(self) -> str: ...

    @property
    def Params(self) -> type[BaseModel]: ...

    @property
    def default_model(self) -> dict[str, Any] | None: ...

    @property
    def resources(self) -> dict[str, float]: ...

    @property
    def sections(self) -> frozenset[str]:
        """The config sections the study reads besides ``params``: ``"data"``, ``"model"``, ``"train"``, or
        ``"train.FIELD"`` for single fields of a section it reads only in part."""
        ...

    def run(self, config: RunConfig, *, device: str = "cpu") -> Any:
        """One grid point: returns an object with ``metrics`` (dict) and ``artifacts`` (name → array)."""
        ...


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

    def load(
        self, *, shape: Literal["flat", "image"] | None = None, dtype: torch.dtype = torch.float64
    ) -> Dataset:
        """The dataset these settings describe (:func:`tangentlab.data.load`); ``shape`` overrides ``self.shape``."""
        return load_dataset(
            self.name,
            n_train=self.n_train,
            n_test=self.n_test,
            classes=self.classes,
            seed=self.seed,
            n_val=self.n_val,
            shape=shape or self.shape,
            standardize=self.standardize,
            target=self.target,
            dtype=dtype,
            **self.options,
        )


class TrainConfig(BaseModel):
    """Arguments of :func:`tangentlab.train.fit` (finite numbers only: ``learning_rate: .inf`` is refused)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    optimizer: Literal["gd", "sgd", "adam"] = "gd"
    loss: Literal["mse", "cross_entropy"] = "mse"
    learning_rate: PositiveFloat = 1.0
    steps: PositiveInt = 500
    batch_size: PositiveInt | None = None
    momentum: NonNegativeFloat = 0.0
    weight_decay: NonNegativeFloat = 0.0

    def fit_kwargs(self, **overrides: Any) -> dict[str, Any]:
        """Keyword arguments of :func:`tangentlab.train.fit` for these settings (every field above), with
        ``overrides`` replacing or adding any (e.g. a spectral ``learning_rate``, ``seed``, ``snapshots``)."""
        return {**self.model_dump(), **overrides}


class RunConfig(BaseModel):
    """One run, fully resolved: what a study's ``run`` receives, and what its identity is computed from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    study: str
    data: DataConfig
    model: dict[str, Any] | None = None  # an arch description as tangentlab.arch.from_dict reads it
    train: TrainConfig = TrainConfig()
    params: dict[str, Any] = Field(
        default_factory=dict
    )  # validated against the study's Params, defaults filled
    seed: NonNegativeInt = 0
    # sha256 of the files the run reads ("data": an npz file, "study": a user study's source; see
    # tangentlab.runner.inputs): part of the identity, so edited data or code never returns a stale result
    inputs: dict[str, str] = Field(default_factory=dict)
    # the kind of device the run computes on ("cpu", "cuda", "mps"; tangentlab.runner.devices): set by run_sweep
    # from --device (a CPU-only study stays "cpu"); part of the identity only when it is not "cpu"
    device: Literal["cpu", "cuda", "mps"] = "cpu"

    def canonical_json(self) -> str:
        # no inputs (built-in data and study) and a CPU run: left out, so those runs keep the ids they always had
        exclude = set() if self.inputs else {"inputs"}
        if self.device == "cpu":
            exclude.add("device")
        dumped = self.model_dump(mode="json", exclude=exclude)
        return json.dumps(dumped, sort_keys=True, separators=(",", ":"))

    @property
    def run_id(self) -> str:
        """16 hex digits of sha256(resolved config incl. input file hashes and a non-CPU device kind + tangentlab
        version)."""
        payload = json.dumps(
            {"config": json.loads(self.canonical_json()), "tangentlab": __version__}, sort_keys=True
        )
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
    seeds: PositiveInt | Annotated[list[NonNegativeInt], Field(min_length=1)] = 1


__all__ = ["DataConfig", "RunConfig", "StudyLike", "SweepConfig", "TrainConfig"]
