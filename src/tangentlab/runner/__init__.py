"""Sweeps: configuration, run identity, the result store and the executors (orchestration layer).

The runner uses only tangentlab's public numerics API (``arch``, ``data``); it never imports
:mod:`tangentlab.studies` — callers hand it a study object (see :class:`StudyLike`).
"""

from tangentlab.runner._lock import FolderInUseError
from tangentlab.runner.config import (
    ConfigError,
    DataConfig,
    RunConfig,
    StudyLike,
    SweepConfig,
    TrainConfig,
    expand_sweep,
    load_sweep,
    read_sweep,
)
from tangentlab.runner.devices import check_device, ray_request, run_device
from tangentlab.runner.executors import EXECUTORS, Interrupted, RunResult, execute, execute_run
from tangentlab.runner.store import ResultStore, StoredRun, StoreError, SweepRecord
from tangentlab.runner.sweep import SweepSummary, run_sweep

__all__ = [
    "EXECUTORS",
    "ConfigError",
    "DataConfig",
    "FolderInUseError",
    "Interrupted",
    "ResultStore",
    "RunConfig",
    "RunResult",
    "StoreError",
    "StoredRun",
    "StudyLike",
    "SweepConfig",
    "SweepRecord",
    "SweepSummary",
    "TrainConfig",
    "check_device",
    "execute",
    "execute_run",
    "expand_sweep",
    "load_sweep",
    "ray_request",
    "read_sweep",
    "run_device",
    "run_sweep",
]
