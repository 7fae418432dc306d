"""The result store: ``results.sqlite`` (one row per run) and ``artifacts/<run-id>/*.npy`` in an output folder.

Only the sweep's driver process writes, and only one driver per folder: opening the store for writing takes an
exclusive lock (:mod:`tangentlab.runner._lock`); a second driver gets :class:`FolderInUseError` at once. A run's
artifacts are written into a temporary folder that is renamed into place (``os.replace``) before its row is marked
``done``, so a ``done`` row always has complete artifacts; leftover temporary folders (a killed driver) are removed
when the store is opened for writing, under the lock, so never another live driver's. The write-ahead log is
checkpointed into ``results.sqlite`` when a sweep ends (:meth:`ResultStore.checkpoint`): the file alone is complete.
Reading needs no write access: the database is opened read-only (``mode=ro``; ``immutable=1`` when the folder
or the file is not writable, e.g. an archived or shared folder).

Table ``runs``: ``run_id`` (primary key), ``study``, ``config`` (JSON of the resolved :class:`RunConfig`, with the
content hashes of its input files), ``status`` (``running`` / ``done`` / ``failed``), ``started`` / ``finished``
(ISO 8601, UTC), ``seconds``, ``error`` (the traceback of a failed run), ``metrics`` (JSON; non-finite numbers as
``null``), ``environment`` (JSON: python, torch, device, hostname, git commit, tangentlab version) and
``artifacts`` (JSON list of the artifact names a done run wrote). Table ``sweeps``: one row per ``tangentlab run``
invocation with the sweep file's resolved form and its run ids (the report uses a study's last one).
"""

from __future__ import annotations

import errno
import json
import math
import os
import shutil
import sqlite3
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import numpy as np

from tangentlab.runner._lock import FolderInUseError, FolderLock
from tangentlab.runner.config import RunConfig

Status = Literal["running", "done", "failed"]
DB_NAME = "results.sqlite"
ARTIFACTS = "artifacts"
_TMP_PREFIX = ".tmp-"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    study TEXT NOT NULL,
    config TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('running', 'done', 'failed')),
    started TEXT,
    finished TEXT,
    seconds REAL,
    error TEXT,
    metrics TEXT,
    environment TEXT,
    artifacts TEXT
);
CREATE TABLE IF NOT EXISTS sweeps (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started TEXT NOT NULL,
    study TEXT NOT NULL,
    source TEXT,
    config TEXT NOT NULL,
    run_ids TEXT NOT NULL
);
"""


class StoreError(RuntimeError):
    """The store cannot be used: a corrupt database, a full disk, an unreadable folder (the message says what
    to do)."""


@dataclass(frozen=True)
class SweepRecord:
    """One ``tangentlab run`` invocation as the store recorded it."""

    id: int
    started: str
    study: str
    source: str | None
    config: dict[str, Any]
    run_ids: tuple[str, ...]


@dataclass(frozen=True)
class StoredRun:
    """One row of the store."""

    run_id: str
    study: str
    config: RunConfig
    status: Status
    started: str | None
    finished: str | None
    seconds: float | None
    error: str | None
    metrics: dict[str, Any]
    environment: dict[str, Any]
    artifacts_dir: Path | None
    artifact_names: tuple[str, ...] | None = (
        None  # what a done run wrote (None: a store from before this record)
    )

    @property
    def missing_artifacts(self) -> tuple[str, ...]:
        """Names of this done run's artifacts that are no longer on disk (deleted by hand, a partial copy)."""
        if self.status != "done" or not self.artifact_names:
            return ()
        folder = self.artifacts_dir
        return tuple(n for n in self.artifact_names if folder is None or not (folder / f"{n}.npy").is_file())


def json_safe(value: Any) -> Any:
    """``value`` with non-finite floats replaced by None, so that it serialises as valid JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def now() -> str:
    """The current time, ISO 8601 in UTC."""
    return datetime.now(UTC).isoformat(timespec="seconds")


class ResultStore:
    """The runs of one output folder.

    Args:
        out_dir: the output folder (created when ``writable``).
        writable: open for the driver (creates the database, removes leftover temporary artifact folders);
            otherwise the database must exist.

    Raises:
        FileNotFoundError: a read-only store whose folder has no ``results.sqlite``.
    """

    def __init__(self, out_dir: str | Path, *, writable: bool = False) -> None:
        self.out_dir = Path(out_dir)
        self.path = self.out_dir / DB_NAME
        self.artifacts_root = self.out_dir / ARTIFACTS
        self.writable = writable
        self._lock: FolderLock | None = None
        if writable:
            try:
                self.artifacts_root.mkdir(parents=True, exist_ok=True)
                self._lock = FolderLock(self.out_dir)
                self._lock.acquire()
            except OSError as err:
                raise StoreError(_os_message(err, self.out_dir)) from None
            for leftover in self.artifacts_root.glob(f"{_TMP_PREFIX}*"):  # we hold the lock: a dead driver's
                shutil.rmtree(leftover, ignore_errors=True)
        elif not self.path.is_file():
            raise FileNotFoundError(
                f"out_dir: no {DB_NAME} in {self.out_dir} (is it a sweep's output folder?)"
            )
        try:
            if writable:
                self._db = sqlite3.connect(self.path, timeout=30.0)
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.executescript(_SCHEMA)
                columns = {name for (_, name, *_rest) in self._db.execute("PRAGMA table_info(runs)")}
                if "artifacts" not in columns:  # a store written before artifact names were recorded
                    self._db.execute("ALTER TABLE runs ADD COLUMN artifacts TEXT")
                self._db.commit()
            else:
                self._db = sqlite3.connect(_read_only_uri(self.out_dir, self.path), uri=True, timeout=30.0)
                self._db.execute("SELECT count(*) FROM runs").fetchone()
        except sqlite3.DatabaseError as err:
            self.close()
            raise StoreError(_db_message(err, self.path)) from None

    def close(self) -> None:
        db = getattr(self, "_db", None)
        if db is not None:
            db.close()
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def checkpoint(self) -> None:
        """Fold the write-ahead log into ``results.sqlite`` (and empty it): the file alone holds every row."""
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- reading ----------------------------------------------------------------------------------------
    def statuses(self) -> dict[str, Status]:
        """run_id → status of every stored run."""
        return dict(self._db.execute("SELECT run_id, status FROM runs").fetchall())

    def runs(self, study: str | None = None) -> list[StoredRun]:
        """All stored runs (of one study if given), ordered by study and start time."""
        query = (
            "SELECT * FROM runs" + (" WHERE study = ?" if study else "") + " ORDER BY study, started, run_id"
        )
        cursor = self._db.execute(query, (study,) if study else ())
        names = [d[0] for d in cursor.description]
        return [self._row(dict(zip(names, values, strict=True))) for values in cursor.fetchall()]

    def sweeps(self, study: str | None = None) -> list[SweepRecord]:
        """The recorded ``tangentlab run`` invocations (of one study if given), oldest first."""
        if not self._has_table("sweeps"):
            return []
        query = "SELECT id, started, study, source, config, run_ids FROM sweeps"
        query += (" WHERE study = ?" if study else "") + " ORDER BY id"
        rows = self._db.execute(query, (study,) if study else ()).fetchall()
        return [
            SweepRecord(i, started, name, source, json.loads(config), tuple(json.loads(ids)))
            for i, started, name, source, config, ids in rows
        ]

    def _has_table(self, name: str) -> bool:
        query = "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?"
        return self._db.execute(query, (name,)).fetchone() is not None

    def studies(self) -> list[str]:
        """The study names that have runs, sorted."""
        return [s for (s,) in self._db.execute("SELECT DISTINCT study FROM runs ORDER BY study")]

    def _row(self, row: dict[str, Any]) -> StoredRun:
        folder = self.artifacts_root / row["run_id"]
        return StoredRun(
            run_id=row["run_id"],
            study=row["study"],
            config=RunConfig.model_validate_json(row["config"]),
            status=row["status"],
            started=row["started"],
            finished=row["finished"],
            seconds=row["seconds"],
            error=row["error"],
            metrics=json.loads(row["metrics"]) if row["metrics"] else {},
            environment=json.loads(row["environment"]) if row["environment"] else {},
            artifacts_dir=folder if folder.is_dir() else None,
            artifact_names=tuple(json.loads(row["artifacts"])) if row.get("artifacts") else None,
        )

    # --- writing (driver only) --------------------------------------------------------------------------
    def record_sweep(
        self, study: str, config: Mapping[str, Any], run_ids: Iterable[str], source: str | None = None
    ) -> None:
        """Record one invocation: the sweep file's resolved form and the ids of its runs."""
        with self._db:
            self._db.execute(
                "INSERT INTO sweeps (started, study, source, config, run_ids) VALUES (?, ?, ?, ?, ?)",
                (
                    now(),
                    study,
                    source,
                    json.dumps(json_safe(dict(config)), sort_keys=True),
                    json.dumps(list(run_ids)),
                ),
            )

    def mark_running(self, runs: Iterable[RunConfig]) -> None:
        """Insert or reset ``runs`` as ``running`` (results of an earlier attempt are cleared)."""
        stamp = now()
        rows = [(r.run_id, r.study, r.canonical_json(), stamp) for r in runs]
        with self._db:
            self._db.executemany(
                "INSERT INTO runs (run_id, study, config, status, started) VALUES (?, ?, ?, 'running', ?) "
                "ON CONFLICT(run_id) DO UPDATE SET status='running', started=excluded.started, finished=NULL, "
                "seconds=NULL, error=NULL, metrics=NULL, environment=NULL, artifacts=NULL",
                rows,
            )

    def mark_done(
        self,
        run_id: str,
        *,
        metrics: Mapping[str, Any],
        artifacts: Mapping[str, np.ndarray],
        started: str,
        seconds: float,
        environment: Mapping[str, Any],
    ) -> None:
        """Write the artifacts (atomically), then mark the run ``done`` with its metrics."""
        self._write_artifacts(run_id, artifacts)
        self._finish(
            run_id,
            "done",
            started,
            seconds,
            environment,
            metrics=json.dumps(json_safe(dict(metrics)), allow_nan=False),
            artifacts=json.dumps(sorted(artifacts)),
        )

    def mark_failed(
        self, run_id: str, *, error: str, started: str, seconds: float, environment: Mapping[str, Any]
    ) -> None:
        """Mark the run ``failed`` with its traceback."""
        self._finish(run_id, "failed", started, seconds, environment, error=error)

    def _finish(
        self,
        run_id: str,
        status: Status,
        started: str,
        seconds: float,
        environment: Mapping[str, Any],
        *,
        metrics: str | None = None,
        error: str | None = None,
        artifacts: str | None = None,
    ) -> None:
        with self._db:
            cursor = self._db.execute(
                "UPDATE runs SET status=?, started=?, finished=?, seconds=?, error=?, metrics=?, environment=?, "
                "artifacts=? WHERE run_id=?",
                (
                    status,
                    started,
                    now(),
                    seconds,
                    error,
                    metrics,
                    json.dumps(json_safe(dict(environment))),
                    artifacts,
                    run_id,
                ),
            )
        if cursor.rowcount != 1:
            raise KeyError(f"run_id: {run_id!r} is not in the store (mark it running first)")

    def _write_artifacts(self, run_id: str, artifacts: Mapping[str, np.ndarray]) -> None:
        target = self.artifacts_root / run_id
        if not artifacts:
            if target.exists():
                shutil.rmtree(target)
            return
        tmp = self.artifacts_root / f"{_TMP_PREFIX}{run_id}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir(parents=True)
        for name, array in artifacts.items():
            if not name or "/" in name or "\\" in name or name.startswith("."):
                raise ValueError(f"artifacts: expected file-safe names, got {name!r}")
            np.save(tmp / f"{name}.npy", np.asarray(array), allow_pickle=False)
        if target.exists():  # an earlier attempt's folder: replace it whole
            old = self.artifacts_root / f"{_TMP_PREFIX}old-{run_id}-{uuid.uuid4().hex[:8]}"
            os.replace(target, old)
            shutil.rmtree(old)
        os.replace(tmp, target)


def _read_only_uri(folder: Path, path: Path) -> str:
    """A read-only SQLite URI; ``immutable=1`` where nothing could change the file (so no lock or -shm needed)."""
    uri = f"file:{quote(str(path.resolve()))}?mode=ro"
    if not (os.access(folder, os.W_OK) and os.access(path, os.W_OK)):
        uri += "&immutable=1"
    return uri


def _db_message(err: sqlite3.DatabaseError, path: Path) -> str:
    text = str(err)
    if "full" in text:
        return f"no space left on the device of {path.parent} ({text}); free some space and rerun"
    return (
        f"{path} is not a readable results database ({text}); move it away (mv {path} {path}.bad) and rerun "
        "the sweep to recompute its runs"
    )


def _os_message(err: OSError, folder: Path) -> str:
    if err.errno == errno.ENOSPC:
        return f"no space left on the device of {folder}; free some space and rerun (finished runs are kept)"
    return f"cannot write to {folder} ({err.strerror or err})"


__all__ = ["FolderInUseError", "ResultStore", "StoreError", "StoredRun", "SweepRecord", "json_safe"]
