"""The result store: ``results.sqlite`` (one row per run) and ``artifacts/<run-id>/*.npy`` in an output folder.

Only the sweep's driver process writes. A run's artifacts are written into a temporary folder that is renamed
into place (``os.replace``) before its row is marked ``done``, so a ``done`` row always has complete artifacts;
leftover temporary folders (a killed driver) are removed when the store is opened for writing.

Columns: ``run_id`` (primary key), ``study``, ``config`` (JSON of the resolved :class:`RunConfig`), ``status``
(``running`` / ``done`` / ``failed``), ``started`` / ``finished`` (ISO 8601, UTC), ``seconds``, ``error`` (the
traceback of a failed run), ``metrics`` (JSON) and ``environment`` (JSON: python, torch, device, hostname, git
commit, tangentlab version).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np

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
    environment TEXT
)
"""


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
        if writable:
            self.artifacts_root.mkdir(parents=True, exist_ok=True)
            for leftover in self.artifacts_root.glob(f"{_TMP_PREFIX}*"):
                shutil.rmtree(leftover, ignore_errors=True)
        elif not self.path.is_file():
            raise FileNotFoundError(
                f"out_dir: no {DB_NAME} in {self.out_dir} (is it a sweep's output folder?)"
            )
        self._db = sqlite3.connect(self.path, timeout=30.0)
        if writable:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(_SCHEMA)
            self._db.commit()

    def close(self) -> None:
        self._db.close()

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
        )

    # --- writing (driver only) --------------------------------------------------------------------------
    def mark_running(self, runs: Iterable[RunConfig]) -> None:
        """Insert or reset ``runs`` as ``running`` (results of an earlier attempt are cleared)."""
        stamp = now()
        rows = [(r.run_id, r.study, r.canonical_json(), stamp) for r in runs]
        with self._db:
            self._db.executemany(
                "INSERT INTO runs (run_id, study, config, status, started) VALUES (?, ?, ?, 'running', ?) "
                "ON CONFLICT(run_id) DO UPDATE SET status='running', started=excluded.started, finished=NULL, "
                "seconds=NULL, error=NULL, metrics=NULL, environment=NULL",
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
        self._finish(run_id, "done", started, seconds, environment, metrics=json.dumps(dict(metrics)))

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
    ) -> None:
        with self._db:
            cursor = self._db.execute(
                "UPDATE runs SET status=?, started=?, finished=?, seconds=?, error=?, metrics=?, environment=? "
                "WHERE run_id=?",
                (status, started, now(), seconds, error, metrics, json.dumps(dict(environment)), run_id),
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
