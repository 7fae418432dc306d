"""What the runner needs of a study (structural, so the runner never imports :mod:`tangentlab.studies`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel

if TYPE_CHECKING:
    from tangentlab.runner.config import RunConfig


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

    def run(self, config: RunConfig, *, device: str = "cpu") -> Any:
        """One grid point: returns an object with ``metrics`` (dict) and ``artifacts`` (name → array)."""
        ...
