"""Sweeps: configuration, run identity, the result store and the executors (orchestration layer)."""

from tangentlab.runner.config import DataConfig, RunConfig, SweepConfig, TrainConfig

__all__ = ["DataConfig", "RunConfig", "SweepConfig", "TrainConfig"]
