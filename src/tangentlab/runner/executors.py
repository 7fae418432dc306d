"""Executors: where a sweep's runs are computed. Workers compute and return; the driver alone writes the store.

- ``local``: with ``workers=1`` runs execute one after another in the driver process (no start-up cost, and the
  study sees the driver's environment); with ``workers > 1`` in a process pool (``spawn`` context, one torch
  thread per worker).
- ``ray``: one Ray task per run, asking for ``study.resources`` (``num_cpus``, ``num_gpus``). Connects to
  ``address`` when given, reuses a Ray already initialised in this process, or starts a local one with
  ``workers`` CPUs (shut down again at the end).

A run that raises comes back as a failure carrying its traceback; the other runs go on.
"""

from __future__ import annotations

import multiprocessing
import os
import platform
import signal
import socket
import sys
import time
import traceback
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from tangentlab.runner.config import RunConfig, StudyLike
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


def execute_run(study: StudyLike, config: RunConfig, device: str) -> RunResult:
    """Run one grid point where this function is called; an exception becomes a failed result."""
    started, t0 = now(), time.perf_counter()
    environment = worker_environment(device)
    try:
        output = study.run(config, device=device)
        metrics = dict(output.metrics)
        artifacts = {name: np.asarray(value) for name, value in output.artifacts.items()}
    except Exception:
        return RunResult(config.run_id, False, started, time.perf_counter() - t0, environment, error=_trace())
    return RunResult(config.run_id, True, started, time.perf_counter() - t0, environment, metrics, artifacts)


def worker_environment(device: str) -> dict[str, Any]:
    """Python and torch versions, the device and the host of the process running a study."""
    import torch

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": device,
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
) -> Iterator[RunResult]:
    """Compute ``runs``, yielding each result as it completes (the order may differ from ``runs``).

    Raises:
        ValueError: an unknown ``executor`` or ``workers < 1``.
        ImportError: ``executor="ray"`` without Ray installed (the message gives the pip command).
    """
    if executor not in EXECUTORS:
        raise ValueError(f"executor: expected one of {', '.join(EXECUTORS)}, got {executor!r}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers: expected an int >= 1, got {workers!r}")
    if executor == "ray":
        return _execute_ray(study, runs, workers=workers, address=address, device=device)
    if workers == 1:
        return (execute_run(study, run, device) for run in runs)
    return _execute_pool(study, runs, workers=workers, device=device)


def _init_worker(driver_pid: int) -> None:
    import torch

    torch.set_num_threads(1)
    _die_with_driver(driver_pid)


def _die_with_driver(driver_pid: int) -> None:
    """On Linux, have the kernel send this worker SIGTERM when the driver dies.

    A driver killed mid-sweep (SIGKILL, out of memory) cannot shut its pool down; without this its workers would go
    on computing runs that nobody will store. Elsewhere a worker notices only when it next talks to the driver.
    """
    if sys.platform != "linux":
        return
    import ctypes

    pr_set_pdeathsig = 1  # from <sys/prctl.h>
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    if os.getppid() != driver_pid:  # the driver died before prctl took effect
        os._exit(1)


def _execute_pool(
    study: StudyLike, runs: Sequence[RunConfig], *, workers: int, device: str
) -> Iterator[RunResult]:
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=_init_worker, initargs=(os.getpid(),)
    ) as pool:
        futures: dict[Future[RunResult], RunConfig] = {
            pool.submit(execute_run, study, run, device): run for run in runs
        }
        for future in as_completed(futures):
            try:
                yield future.result()
            except Exception:  # the worker died (or the result did not pickle): a failure of this run
                run = futures[future]
                yield RunResult(run.run_id, False, now(), 0.0, worker_environment(device), error=_trace())


def _execute_ray(
    study: StudyLike, runs: Sequence[RunConfig], *, workers: int, address: str | None, device: str
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
        resources = dict(study.resources)
        remote = ray.remote(
            num_cpus=float(resources.get("num_cpus", 1)), num_gpus=float(resources.get("num_gpus", 0))
        )(execute_run)
        study_ref = ray.put(study)
        pending = {remote.remote(study_ref, run, device): run for run in runs}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                run = pending.pop(ref)
                try:
                    yield ray.get(ref)
                except Exception:  # the worker died or the task could not be run
                    yield RunResult(run.run_id, False, now(), 0.0, {"device": device}, error=_trace())
    finally:
        if started_here:
            ray.shutdown()


def _trace() -> str:
    return traceback.format_exc()
