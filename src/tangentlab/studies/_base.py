"""What every study declares: its parameters, its run function, its report section and the claim it tests."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel

from tangentlab.report.section import StudySection
from tangentlab.runner.config import RunConfig

MetricValue = float | int | str | bool | None


@dataclass(frozen=True)
class RunOutput:
    """What one grid point produces: JSON-serialisable scalar metrics and small named arrays.

    A run that trains may end ``diverged``: report it in ``metrics`` (e.g. ``{"status": "diverged"}``) rather than
    raising; raising marks the run ``failed`` with its traceback.
    """

    metrics: dict[str, MetricValue]
    artifacts: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class ResultRow:
    """A finished run as the store gives it back to the study's report."""

    run_id: str
    config: RunConfig
    status: str  # "done" | "failed" | ...
    metrics: dict[str, MetricValue]
    artifacts_dir: Path | None = None

    def artifact(self, name: str) -> np.ndarray:
        if self.artifacts_dir is None:
            raise FileNotFoundError(f"run {self.run_id} has no artifacts folder")
        return np.load(self.artifacts_dir / f"{name}.npy")


class Study(ABC):
    """A paper's experiment as a sweep. Subclasses are stateless and picklable (workers receive them)."""

    name: ClassVar[str]
    title: ClassVar[str]
    citation: ClassVar[str]
    claim: ClassVar[str]
    Params: ClassVar[type[BaseModel]]  # the study's own parameters; grid axes without a dot name these fields
    default_model: ClassVar[dict[str, Any] | None] = None  # an arch description used when the config has none
    resources: ClassVar[dict[str, float]] = {"num_cpus": 1}  # what one run asks of a Ray cluster

    @abstractmethod
    def run(self, config: RunConfig, *, device: str = "cpu") -> RunOutput:
        """Run one grid point (``config.params`` already validated by ``Params``)."""

    @abstractmethod
    def report(self, rows: list[ResultRow], figures_dir: Path) -> StudySection:
        """Figures (written into ``figures_dir``), tables and findings from the finished runs."""
