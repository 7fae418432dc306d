"""Report scaffolding shared by every study: counting runs by outcome and the section's fixed header."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic

import numpy as np
from pydantic import BaseModel
from typing_extensions import TypeVar

from tangentlab.report.section import StudySection
from tangentlab.studies._base import ResultRow, Study

P = TypeVar("P", bound=BaseModel, default=BaseModel)


@dataclass(frozen=True)
class RunTally(Generic[P]):
    """Finished runs split by outcome.

    Attributes:
        completed: runs that finished with ``metrics["status"] == "completed"`` (or no status at all).
        n_failed: runs that raised (store status other than ``"done"``).
        n_diverged: runs that finished but report ``metrics["status"] == "diverged"``.
        n_other: runs that finished with another status (e.g. ``"skipped"``).
    """

    completed: list[ResultRow[P]]
    n_failed: int
    n_diverged: int
    n_other: int

    def summary(self) -> str:
        """``"12 completed, 1 diverged, 0 failed"`` (other outcomes only when there are some)."""
        text = f"{len(self.completed)} completed, {self.n_diverged} diverged, {self.n_failed} failed"
        return text + (f", {self.n_other} other" if self.n_other else "")


def tally(rows: list[ResultRow[P]]) -> RunTally[P]:
    """Split ``rows`` by outcome (see :class:`RunTally`)."""
    completed: list[ResultRow[P]] = []
    n_failed = n_diverged = n_other = 0
    for r in rows:
        status = r.metrics.get("status", "completed")
        if r.status != "done":
            n_failed += 1
        elif status == "completed":
            completed.append(r)
        elif status == "diverged":
            n_diverged += 1
        else:
            n_other += 1
    return RunTally(completed, n_failed, n_diverged, n_other)


def finite_or_none(value: float) -> float | None:
    """A run's metric as stored: the value when finite, else None (JSON null)."""
    return value if math.isfinite(value) else None


def finite_values(rows: Sequence[ResultRow], key: str) -> list[float]:
    """The finite numeric values of metric ``key`` over ``rows`` (missing, null, boolean and non-finite left out)."""
    out = []
    for r in rows:
        v = r.metrics.get(key)
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v):
            out.append(float(v))
    return out


def finite_mean(rows: Sequence[ResultRow], key: str) -> float:
    """Mean of :func:`finite_values` (NaN when there is none)."""
    vals = finite_values(rows, key)
    return float(np.mean(vals)) if vals else math.nan


def header(study: Study) -> dict[str, Any]:
    """The fields of a :class:`StudySection` that come from the study class itself."""
    return {"study": study.name, "title": study.title, "citation": study.citation, "claim": study.claim}


def empty_section(study: Study, runs: RunTally[Any]) -> StudySection:
    """The section of a study with no completed run: verdict ``inconclusive`` and the outcome counts."""
    return StudySection(
        **header(study),
        verdict="inconclusive",
        findings=(f"No completed runs ({runs.summary()}): nothing to report.",),
    )


def no_model(config_model: object, study: str, built_from: str) -> None:
    """Raise ValueError if a config sets ``model`` for a study that builds its own nets from ``built_from``."""
    if config_model is not None:
        raise ValueError(
            f"model: the {study} study builds its nets from {built_from}; expected no model, got {config_model!r}"
        )


def needs_mse(loss: str, study: str, why: str) -> None:
    """Raise ValueError unless ``train.loss`` is ``"mse"``, the loss the study's kernel theory is stated for (``why``)."""
    if loss != "mse":
        raise ValueError(f"train.loss: the {study} study needs 'mse' ({why}), got {loss!r}")


def scope_line(operationalised: str, deviations: str, seeds: int) -> str:
    """The finding that states how a verdict's claim is tested here: the claim as operationalised, the deviations
    from the paper's setup, and the seeds behind it (with fewer than 3, said next to it)."""
    few = " — fewer than 3: intervals over seeds are rough or absent" if seeds < 3 else ""
    return (
        f"As tested here: {operationalised} Deviations from the paper: {deviations} "
        f"Seeds per setting: {seeds}{few}."
    )
