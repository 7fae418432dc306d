"""What every study declares: its parameters, its run function, its report section and the claim it tests."""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, cast

import numpy as np
from pydantic import BaseModel
from typing_extensions import TypeVar

from tangentlab.report.section import StudySection
from tangentlab.runner.config import RunConfig, TrainConfig

MetricValue = float | int | str | bool | None


@dataclass(frozen=True)
class RunOutput:
    """What one grid point produces: JSON-serialisable scalar metrics and small named arrays.

    A run that trains may end ``diverged``: report it in ``metrics`` (e.g. ``{"status": "diverged"}``) rather than
    raising; raising marks the run ``failed`` with its traceback.
    """

    metrics: dict[str, MetricValue]
    artifacts: dict[str, np.ndarray] = field(default_factory=dict)


P = TypeVar("P", bound=BaseModel, default=BaseModel, covariant=True)
Q = TypeVar("Q", bound=BaseModel)


@dataclass(frozen=True)
class ResultRow(Generic[P]):
    """A finished run as the store gives it back to the study's report.

    A report receives its rows typed (``ResultRow[MyParams]``, through :meth:`Study.report`): ``row.params`` is the
    validated ``Params`` object of the run (defaults filled when the sweep was expanded, so a report never restates
    them) and ``row.train`` its :class:`~tangentlab.runner.TrainConfig`.
    """

    run_id: str
    config: RunConfig
    status: str  # "done" | "failed" | ...
    metrics: dict[str, MetricValue]
    artifacts_dir: Path | None = None
    validated_params: P | None = None

    @property
    def params(self) -> P:
        """The run's validated study parameters; ValueError if the row was not typed (:meth:`typed`)."""
        if self.validated_params is None:
            raise ValueError(
                f"run {self.run_id}: params not validated; type the rows with row.typed(study.Params) "
                "(Study.report does)"
            )
        return self.validated_params

    @property
    def train(self) -> TrainConfig:
        """The run's training settings (``config.train``)."""
        return self.config.train

    def typed(self, params_model: type[Q]) -> ResultRow[Q]:
        """This row with ``params`` validated by the study's ``Params`` model."""
        validated = params_model.model_validate(self.config.params)
        return ResultRow(self.run_id, self.config, self.status, self.metrics, self.artifacts_dir, validated)

    def artifact(self, name: str) -> np.ndarray:
        if self.artifacts_dir is None:
            raise FileNotFoundError(f"run {self.run_id} has no artifacts folder")
        return cast(np.ndarray, np.load(self.artifacts_dir / f"{name}.npy"))


class Study(ABC):
    """A paper's experiment as a sweep. Subclasses are stateless and picklable (workers receive them)."""

    name: ClassVar[str]
    title: ClassVar[str]
    citation: ClassVar[str]
    claim: ClassVar[str]
    Params: ClassVar[type[BaseModel]]  # the study's own parameters; grid axes without a dot name these fields
    default_model: ClassVar[dict[str, Any] | None] = None  # an arch description used when the config has none
    resources: ClassVar[dict[str, float]] = {"num_cpus": 1}  # what one run asks of a Ray cluster
    # True: ``run`` computes on the CPU whatever ``--device`` says; the runner then passes and records ``cpu`` (and a
    # Ray task asks for no GPU). False: ``run`` must place every tensor it computes with on ``device``.
    cpu_only: ClassVar[bool] = False
    # The config sections ``run`` reads besides ``params``: "data", "model", "train", or "train.FIELD" for a section
    # read only in part. A sweep that sets anything else fails to load with a config error naming the field.
    sections: ClassVar[frozenset[str]] = frozenset({"data", "model", "train"})

    @abstractmethod
    def run(self, config: RunConfig, *, device: str = "cpu") -> RunOutput:
        """Run one grid point (``config.params`` already validated by ``Params``)."""

    def report(self, rows: list[ResultRow], figures_dir: Path) -> StudySection:
        """Figures (written into ``figures_dir``), tables and findings from the finished runs.

        By default a study in its own package (``mypkg/mystudy/__init__.py``) is reported by the function
        ``section(study, rows, figures_dir)`` of the module ``report`` beside it (``mypkg/mystudy/report.py``), which
        is imported only when a report is written (runs never load matplotlib) and may import the study's package
        freely. A study kept in a single module overrides this method instead.
        """
        package = type(self).__module__
        try:
            module = importlib.import_module(f"{package}.report")
        except ModuleNotFoundError as err:
            if err.name != f"{package}.report":
                raise
            raise NotImplementedError(
                f"study {self.name!r}: expected a module {package}.report with section(study, rows, figures_dir), "
                f"or a report() method on {type(self).__name__}"
            ) from None
        section: Callable[[Study, list[ResultRow], Path], StudySection] = module.section
        return section(self, [row.typed(self.Params) for row in rows], Path(figures_dir))
