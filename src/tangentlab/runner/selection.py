"""Which stored runs a report may use, and the one status a results table shows per run.

A folder can hold runs of several revisions of a sweep file (``steps: 5`` then ``steps: 50`` into the same
``--out``). Pooling them would average different experiments, so a study's report uses the runs of its **last**
``tangentlab run`` invocation (recorded in the store with the sweep file's resolved form); the rest are listed as
"other config revisions, not used" unless the caller asks for all of them. Runs whose artifacts are gone and runs
that diverged are named too, so no number in a report comes from a run the reader cannot see.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tangentlab.runner.store import StoredRun, SweepRecord


@dataclass(frozen=True)
class Selection:
    """The runs of one study, split by what the report does with them.

    Attributes:
        used: runs the report uses (done, of the last revision unless ``use_all``, with their artifacts).
        other_revisions: runs of earlier config revisions of the study, not used.
        missing_artifacts: done runs whose artifact files are gone, left out.
        diverged: used runs whose study outcome is ``diverged`` (the study keeps them out of its fits).
    """

    used: list[StoredRun]
    other_revisions: list[StoredRun]
    missing_artifacts: list[StoredRun]
    diverged: list[StoredRun]


def select(rows: Sequence[StoredRun], sweeps: Sequence[SweepRecord], *, use_all: bool = False) -> Selection:
    """Split one study's stored ``rows`` (see :class:`Selection`); ``sweeps`` are that study's invocations.

    Without any recorded invocation (a store written before they were recorded) every run counts as current.
    """
    current = set(sweeps[-1].run_ids) if sweeps and not use_all else None
    used, other, missing = [], [], []
    for row in rows:
        if current is not None and row.run_id not in current:
            other.append(row)
        elif row.missing_artifacts:
            missing.append(row)
        else:
            used.append(row)
    diverged = [r for r in used if r.status == "done" and r.metrics.get("status") == "diverged"]
    return Selection(used, other, missing, diverged)


def outcome(row: StoredRun) -> str:
    """One status per run: the store's (``running``/``failed``), or for a done run the study's own outcome when
    it is not plain success (``diverged``, ``skipped``, ...), else ``done``."""
    if row.status != "done":
        return row.status
    study_status = row.metrics.get("status")
    if isinstance(study_status, str) and study_status not in ("completed", "done", ""):
        return study_status
    return "done"
