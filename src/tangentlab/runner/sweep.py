"""Running a sweep: skip what is done, compute the rest on an executor, record every result in the store."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from tangentlab._version import __version__
from tangentlab.runner.config import RunConfig, StudyLike
from tangentlab.runner.executors import EXECUTORS, execute
from tangentlab.runner.store import ResultStore


@dataclass(frozen=True)
class SweepSummary:
    """What a call of :func:`run_sweep` did.

    Attributes:
        total: runs in the sweep.
        skipped: runs already ``done`` (or ``failed`` and not retried) before the call.
        done: runs completed by this call.
        failed: run ids that failed in this call.
        failed_before: run ids left ``failed`` from earlier calls (skipped without ``retry_failed``).
    """

    total: int
    skipped: int
    done: int
    failed: tuple[str, ...]
    failed_before: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """Whether every run of the sweep is now done."""
        return not self.failed and not self.failed_before


def run_sweep(
    study: StudyLike,
    runs: Sequence[RunConfig],
    out_dir: str | Path,
    *,
    executor: str = "local",
    workers: int = 1,
    address: str | None = None,
    retry_failed: bool = False,
    device: str = "cpu",
    progress: bool = True,
) -> SweepSummary:
    """Compute the runs of a sweep that are not done yet and store their results in ``out_dir``.

    Runs already ``done`` are skipped; runs left ``running`` (a killed driver) are run again; ``failed`` runs
    are skipped unless ``retry_failed``. A run that raises is stored as ``failed`` with its traceback and the
    sweep goes on. Neither ``workers``, ``executor`` nor ``out_dir`` is part of a run's identity.

    Args:
        study: the study whose ``run`` computes a grid point.
        runs: the resolved runs (:func:`tangentlab.runner.load_sweep`).
        out_dir: the output folder (``results.sqlite``, ``artifacts/``).
        executor: ``"local"`` or ``"ray"`` (see :mod:`tangentlab.runner.executors`).
        workers: parallel runs (local processes, or CPUs of a local Ray).
        address: a Ray cluster's address (``executor="ray"`` only).
        retry_failed: run ``failed`` runs again.
        device: the torch device passed to ``study.run``.
        progress: show a progress bar (with ETA) on stderr.

    Returns:
        A :class:`SweepSummary`.
    """
    if executor not in EXECUTORS:
        raise ValueError(f"executor: expected one of {', '.join(EXECUTORS)}, got {executor!r}")
    if address is not None and executor != "ray":
        raise ValueError(f"address: only used with executor='ray', got executor={executor!r}")
    with ResultStore(out_dir, writable=True) as store:
        statuses = store.statuses()
        todo, failed_before, seen = [], [], set()
        for run in runs:
            if run.run_id in seen:
                continue
            seen.add(run.run_id)
            status = statuses.get(run.run_id)
            if status == "done" or (status == "failed" and not retry_failed):
                if status == "failed":
                    failed_before.append(run.run_id)
                continue
            todo.append(run)
        skipped = len(seen) - len(todo)
        driver_env = driver_environment()
        store.mark_running(todo)
        done, failed = 0, []
        # In a log file (stderr not a terminal) redraw at most every 30 s instead of on every tick.
        interval = 0.1 if sys.stderr.isatty() else 30.0
        bar = tqdm(
            total=len(seen),
            initial=skipped,
            desc=study.name,
            unit="run",
            disable=not progress,
            mininterval=interval,
        )
        try:
            results = execute(study, todo, executor=executor, workers=workers, address=address, device=device)
            for result in results:
                environment = {**result.environment, **driver_env}
                if result.ok:
                    store.mark_done(
                        result.run_id,
                        metrics=result.metrics,
                        artifacts=result.artifacts,
                        started=result.started,
                        seconds=result.seconds,
                        environment=environment,
                    )
                    done += 1
                else:
                    store.mark_failed(
                        result.run_id,
                        error=result.error or "",
                        started=result.started,
                        seconds=result.seconds,
                        environment=environment,
                    )
                    failed.append(result.run_id)
                bar.update(1)
                bar.set_postfix(failed=len(failed) + len(failed_before), refresh=False)
        finally:
            bar.close()
    return SweepSummary(len(seen), skipped, done, tuple(failed), tuple(failed_before))


def driver_environment() -> dict[str, Any]:
    """The tangentlab version and the git commit of the working tree the driver runs in (if any)."""
    return {"tangentlab": __version__, "git_commit": _git_commit(Path.cwd())}


def _git_commit(folder: Path) -> str | None:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, timeout=10, check=False
        )
        if head.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
