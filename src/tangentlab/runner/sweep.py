"""Running a sweep: skip what is done, compute the rest on an executor, record every result in the store."""

from __future__ import annotations

import contextlib
import errno
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from tangentlab._version import __version__
from tangentlab.runner.config import RunConfig, StudyLike
from tangentlab.runner.devices import check_device, check_gpus_per_run, device_kind, run_device
from tangentlab.runner.executors import EXECUTORS, Interrupted, RunResult, execute
from tangentlab.runner.store import ResultStore, StoreError


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
    sweep: Mapping[str, Any] | None = None,
    source: str | None = None,
    gpus_per_run: float | None = None,
) -> SweepSummary:
    """Compute the runs of a sweep that are not done yet and store their results in ``out_dir``.

    Runs already ``done`` are skipped (unless artifacts they wrote have gone missing: then they run again); runs
    left ``running`` (a killed or interrupted driver) are run again; ``failed`` runs are skipped unless
    ``retry_failed``. A run that raises is stored as ``failed`` with its traceback and the sweep goes on. Neither
    ``workers``, ``executor`` nor ``out_dir`` is part of a run's identity.

    SIGINT and SIGTERM (when called from the main thread) stop the sweep at once: workers are terminated, runs
    not finished stay ``running`` (a rerun computes them) and :class:`Interrupted` is raised.

    Args:
        study: the study whose ``run`` computes a grid point.
        runs: the resolved runs (:func:`tangentlab.runner.load_sweep`).
        out_dir: the output folder (``results.sqlite``, ``artifacts/``), locked while the sweep runs.
        executor: ``"local"`` or ``"ray"`` (see :mod:`tangentlab.runner.executors`).
        workers: parallel runs (local processes, or CPUs of a local Ray).
        address: a Ray cluster's address (``executor="ray"`` only).
        retry_failed: run ``failed`` runs again.
        device: the torch device passed to ``study.run`` (``cpu`` for a study that declares ``cpu_only``); checked
            before anything runs (on this machine, except for a remote Ray cluster: ``address`` given). Its kind
            becomes the runs' ``device`` field (:func:`placed`): part of their identity unless it is ``cpu``.
        progress: show a progress bar (with ETA) on stderr.
        sweep: the sweep file's resolved form, recorded with this invocation's run ids (the report uses the
            study's last invocation); None records the runs alone.
        source: the sweep file's path, recorded with it.
        gpus_per_run: GPUs one Ray task of a run on ``cuda`` asks for (fractions allowed; None: the study's, else 1).

    Returns:
        A :class:`SweepSummary`.

    Raises:
        FolderInUseError: another driver holds ``out_dir``.
        StoreError: the store cannot be written (full disk, corrupt database).
        Interrupted: SIGINT / SIGTERM.
        ValueError: an unknown executor, ``address`` without Ray, an unavailable ``device``, a bad ``gpus_per_run``.
    """
    if executor not in EXECUTORS:
        raise ValueError(f"executor: expected one of {', '.join(EXECUTORS)}, got {executor!r}")
    if address is not None and executor != "ray":
        raise ValueError(f"address: only used with executor='ray', got executor={executor!r}")
    check_device(device, local=not (executor == "ray" and address))
    check_gpus_per_run(gpus_per_run)
    runs = placed(study, runs, device)
    with _signals_raise_interrupted(), ResultStore(out_dir, writable=True) as store:
        try:
            return _run(
                store,
                study,
                runs,
                (executor, workers, address, device, gpus_per_run),
                retry_failed,
                progress,
                sweep,
                source,
            )
        except sqlite3.OperationalError as err:
            raise StoreError(
                f"cannot write {store.path} ({err}); free space or fix the folder and rerun"
            ) from None
        except OSError as err:
            if err.errno == errno.ENOSPC:
                raise StoreError(
                    f"no space left on the device of {store.out_dir}; free some space and rerun (finished runs "
                    "are kept)"
                ) from None
            raise
        finally:
            with contextlib.suppress(sqlite3.Error):
                store.checkpoint()


def placed(study: StudyLike, runs: Sequence[RunConfig], device: str) -> list[RunConfig]:
    """``runs`` with their ``device`` field set to the kind of device they compute on (``cpu`` for a CPU-only
    study): CPU runs keep their ids; a run on ``cuda`` or ``mps`` gets its own."""
    kind = device_kind(run_device(study, device))
    return [run if run.device == kind else run.model_copy(update={"device": kind}) for run in runs]


def _run(
    store: ResultStore,
    study: StudyLike,
    runs: Sequence[RunConfig],
    where: tuple[str, int, str | None, str, float | None],
    retry_failed: bool,
    progress: bool,
    sweep: Mapping[str, Any] | None,
    source: str | None,
) -> SweepSummary:
    stored = {row.run_id: row for row in store.runs()}
    todo, failed_before, seen = [], [], set()
    for run in runs:
        if run.run_id in seen:
            continue
        seen.add(run.run_id)
        row = stored.get(run.run_id)
        status = row.status if row is not None else None
        if status == "done" and row is not None and row.missing_artifacts:
            status = None  # its artifacts were deleted: compute it again
        if status == "done" or (status == "failed" and not retry_failed):
            if status == "failed":
                failed_before.append(run.run_id)
            continue
        todo.append(run)
    skipped = len(seen) - len(todo)
    key = runs[0].study if runs else study.name  # the store's study column holds the config's study field
    store.record_sweep(key, dict(sweep or {}), list(dict.fromkeys(r.run_id for r in runs)), source)
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
    executor, workers, address, device, gpus_per_run = where
    results = execute(
        study,
        todo,
        executor=executor,
        workers=workers,
        address=address,
        device=device,
        gpus_per_run=gpus_per_run,
    )
    try:
        for result in results:
            environment = {**result.environment, **driver_env}
            if not result.ok:
                store.mark_failed(
                    result.run_id,
                    error=result.error or "",
                    started=result.started,
                    seconds=result.seconds,
                    environment=environment,
                )
                failed.append(result.run_id)
            elif _store_done(store, result, environment):
                done += 1
            else:
                failed.append(result.run_id)
            bar.update(1)
            bar.set_postfix(failed=len(failed) + len(failed_before), refresh=False)
    finally:
        if hasattr(results, "close"):
            results.close()  # terminates pool workers still computing (an interrupt, an error)
        bar.close()
    return SweepSummary(len(seen), skipped, done, tuple(failed), tuple(failed_before))


def _store_done(store: ResultStore, result: RunResult, environment: dict[str, Any]) -> bool:
    """Store a finished run; a result the store refuses marks the run failed with the reason (False)."""
    try:
        store.mark_done(
            result.run_id,
            metrics=result.metrics,
            artifacts=result.artifacts,
            started=result.started,
            seconds=result.seconds,
            environment=environment,
        )
    except (ValueError, TypeError) as err:
        store.mark_failed(
            result.run_id,
            error=f"the run's output cannot be stored: {err}",
            started=result.started,
            seconds=result.seconds,
            environment=environment,
        )
        return False
    return True


@contextlib.contextmanager
def _signals_raise_interrupted() -> Iterator[None]:
    """While a sweep runs, SIGINT and SIGTERM raise :class:`Interrupted` in the driver (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise Interrupted(signum)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


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
