"""Executors: where a sweep's runs are computed. Workers compute and return; the driver alone writes the store.

- ``local``: with ``workers=1`` runs execute one after another in the driver process (no start-up cost, and the
  study sees the driver's environment); with ``workers > 1`` in a process pool (``spawn`` context, one torch
  thread per worker; :mod:`tangentlab.runner._pool`: a worker killed by a signal fails only its own run and is
  replaced, and stopping the driver ends every worker at once).
- ``ray``: one Ray task per run, asking for ``study.resources["num_cpus"]`` and, for a run on ``cuda``,
  ``num_gpus`` (``gpus_per_run``, fractional allowed; :func:`tangentlab.runner.devices.ray_request`; a CPU run asks
  for no GPU). Connects to ``address`` when given, reuses a Ray already initialised in this process, or starts a
  local one with ``workers`` CPUs (shut down again at the end). Results come back to the driver through Ray's
  object store; only the driver writes the store.

Every run computes on :func:`tangentlab.runner.devices.run_device` (``cpu`` for a study that declares
``cpu_only``), and that device is what its environment records.

A run that raises comes back as a failure carrying its traceback; the other runs go on.
"""

from __future__ import annotations

import functools
import os
import platform
import re
import signal
import socket
import time
import traceback
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from tangentlab.runner._pool import run_pool
from tangentlab.runner.config import RunConfig, StudyLike
from tangentlab.runner.devices import describe_device, ray_device, ray_request, run_device
from tangentlab.runner.store import now

ExecutorName = Literal["local", "ray"]
EXECUTORS: tuple[str, ...] = ("local", "ray")


@dataclass(frozen=True)
class RunResult:
    """What a worker sends back for one run."""

    run_id: str
    ok: bool
    started: str
    seconds: float
    environment: dict[str, Any]
    metrics: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, np.ndarray] = field(default_factory=dict)
    error: str | None = None


class Interrupted(KeyboardInterrupt):
    """Raised in the driver by SIGINT / SIGTERM while a sweep runs (see :func:`tangentlab.runner.run_sweep`).

    A study that raises ``KeyboardInterrupt`` or ``SystemExit`` itself fails only its run; this one stops the sweep.
    """

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(signal.Signals(signum).name)


_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*")


def execute_run(study: StudyLike, config: RunConfig, device: str) -> RunResult:
    """Run one grid point where this function is called; an exception becomes a failed result.

    Besides exceptions, a run fails (with a one-line reason first in ``error``) when the study raises
    ``SystemExit`` or ``KeyboardInterrupt``, returns a metric that is not a number, string, bool or None (numpy
    scalars are converted), or an artifact with a name that is not a plain file name or an object array.
    """
    started, t0 = now(), time.perf_counter()
    device = run_device(study, device)
    environment = worker_environment(device)

    def failed(reason: str) -> RunResult:
        return RunResult(config.run_id, False, started, time.perf_counter() - t0, environment, error=reason)

    try:
        output = study.run(config, device=device)
        metrics = _checked_metrics(output.metrics)
        artifacts = _checked_artifacts(output.artifacts)
    except Interrupted:
        raise
    except (SystemExit, KeyboardInterrupt) as err:
        kind = type(err).__name__
        return failed(f"the study raised {kind}({', '.join(map(repr, err.args))}) inside run\n\n{_trace()}")
    except _OutputError as err:
        return failed(str(err))
    except Exception as err:
        return failed(f"{type(err).__name__}: {err}\n\n{_trace()}")
    return RunResult(config.run_id, True, started, time.perf_counter() - t0, environment, metrics, artifacts)


class _OutputError(ValueError):
    """A run's output that cannot be stored."""


def _checked_metrics(metrics: Any) -> dict[str, Any]:
    if not isinstance(metrics, Mapping):
        raise _OutputError(f"metrics: expected a dict of name -> value, got {type(metrics).__name__}")
    out: dict[str, Any] = {}
    for name, value in metrics.items():
        if not isinstance(name, str):
            raise _OutputError(f"metrics: expected string names, got {name!r}")
        if isinstance(value, np.generic) and value.ndim == 0 and value.dtype.kind in "biufU":
            value = value.item()
        if value is not None and not isinstance(value, bool | int | float | str):
            raise _OutputError(
                f"metric {name!r}: expected a number, string, bool or None, got {type(value).__name__}"
            )
        out[name] = value
    return out


def _checked_artifacts(artifacts: Any) -> dict[str, np.ndarray]:
    if not isinstance(artifacts, Mapping):
        raise _OutputError(f"artifacts: expected a dict of name -> array, got {type(artifacts).__name__}")
    out: dict[str, np.ndarray] = {}
    for name, value in artifacts.items():
        if not isinstance(name, str) or not _NAME.fullmatch(name) or ".." in name:
            raise _OutputError(
                f"artifact {name!r}: expected a plain file name (letters, digits, _ . + -; not starting with '.')"
            )
        array = np.asarray(value)
        if array.dtype.hasobject:
            raise _OutputError(
                f"artifact {name!r}: object arrays cannot be stored (no pickles); got dtype object"
            )
        out[name] = array
    return out


def worker_environment(device: str) -> dict[str, Any]:
    """Python and torch versions, the device (and the GPU's name on CUDA) and the host of the process running a
    study."""
    import torch

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        **describe_device(device),
        "hostname": socket.gethostname(),
        "torch_threads": torch.get_num_threads(),
    }


def execute(
    study: StudyLike,
    runs: Sequence[RunConfig],
    *,
    executor: str = "local",
    workers: int = 1,
    address: str | None = None,
    device: str = "cpu",
    gpus_per_run: float | None = None,
) -> Iterator[RunResult]:
    """Compute ``runs``, yielding each result as it completes (the order may differ from ``runs``).

    ``gpus_per_run``: GPUs one Ray task of a run on ``cuda`` asks for (None: the study's, else 1).

    Raises:
        ValueError: an unknown ``executor`` or ``workers < 1``.
        ImportError: ``executor="ray"`` without Ray installed (the message gives the pip command).
    """
    if executor not in EXECUTORS:
        raise ValueError(f"executor: expected one of {', '.join(EXECUTORS)}, got {executor!r}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers: expected an int >= 1, got {workers!r}")
    if not runs:  # nothing to compute: do not start (or connect to) anything
        return iter(())
    if executor == "ray":
        return _execute_ray(
            study, runs, workers=workers, address=address, device=device, gpus_per_run=gpus_per_run
        )
    if workers == 1:
        return (execute_run(study, run, device) for run in runs)
    return _execute_pool(study, runs, workers=workers, device=device)


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)


def _execute_pool(
    study: StudyLike, runs: Sequence[RunConfig], *, workers: int, device: str
) -> Iterator[RunResult]:
    def on_death(run: RunConfig, cause: str) -> RunResult:
        return RunResult(run.run_id, False, now(), 0.0, {"device": run_device(study, device)}, error=cause)

    work = functools.partial(_pool_task, study, device)
    args = (os.getpid(), _init_worker, work, _unsendable)
    return run_pool(runs, workers=min(workers, max(len(runs), 1)), args=args, on_death=on_death)


def _pool_task(study: StudyLike, device: str, run: RunConfig) -> RunResult:
    return execute_run(study, run, device)


def _unsendable(run: RunConfig, trace: str) -> RunResult:
    reason = f"the run's result cannot be sent back to the driver (it does not pickle)\n\n{trace}"
    return RunResult(run.run_id, False, now(), 0.0, {}, error=reason)


def _execute_ray(
    study: StudyLike,
    runs: Sequence[RunConfig],
    *,
    workers: int,
    address: str | None,
    device: str,
    gpus_per_run: float | None = None,
) -> Iterator[RunResult]:
    try:
        import ray
    except ImportError:
        raise ImportError(
            "executor='ray' needs Ray: pip install 'tangentlab[ray]' (or pip install 'ray>=2.9')"
        ) from None
    started_here = not ray.is_initialized()
    if started_here:
        if address:
            ray.init(address=address)
        else:
            ray.init(num_cpus=workers, include_dashboard=False)
    try:
        request = ray_request(study, device, gpus_per_run)
        remote = ray.remote(num_cpus=request["num_cpus"], num_gpus=request["num_gpus"])(execute_run)
        study_ref = ray.put(study)
        task_device = ray_device(device)
        pending = {remote.remote(study_ref, run, task_device): run for run in runs}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                run = pending.pop(ref)
                try:
                    yield ray.get(ref)
                except Exception:  # the worker died or the task could not be run
                    failed_env = {"device": run_device(study, task_device)}
                    yield RunResult(run.run_id, False, now(), 0.0, failed_env, error=_trace())
    finally:
        if started_here:
            ray.shutdown()


def _trace() -> str:
    return traceback.format_exc()
