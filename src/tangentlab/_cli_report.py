"""``tangentlab report DIR``: which runs each study's section uses, and the notes on the runs it does not use."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tangentlab import studies
from tangentlab._sweep_yaml import with_provenance
from tangentlab.runner import StoredRun, SweepRecord
from tangentlab.runner.selection import select
from tangentlab.studies import ResultRow

#: Run ids a report note prints on stderr (the HTML header lists every one).
STDERR_IDS = 10


def only_studies(rows: list[StoredRun], only: Sequence[str], out_dir: Path) -> list[StoredRun]:
    """The rows of the studies ``only`` names, by registered name (``scaling``) or as stored (``module:Class``).

    Raises:
        ValueError: a name with no runs in the folder (the message lists the studies there).
    """
    names: dict[str, set[str]] = {}
    for stored in dict.fromkeys(row.study for row in rows):
        try:
            names[stored] = {stored, studies.get_study(stored).name}
        except ValueError:
            names[stored] = {stored}
    unknown = [name for name in dict.fromkeys(only) if not any(name in aliases for aliases in names.values())]
    if unknown:
        present = ", ".join(sorted(min(a, key=len) for a in names.values())) or "none"
        raise ValueError(f"--study: {', '.join(unknown)} has no runs in {out_dir} (studies there: {present})")
    return [row for row in rows if names[row.study] & set(only)]


@dataclass
class Sections:
    """The report's study sections, the runs left out by kind, and the stderr lines that name them."""

    sections: list[Any] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)


def build_sections(
    rows: list[StoredRun],
    sweeps: dict[str, list[SweepRecord]],
    *,
    use_all: bool,
    figures_dir: Path,
    out_dir: Path,
    target: Path,
) -> Sections:
    """Each study's section from the runs :func:`~tangentlab.runner.selection.select` gives it.

    Raises:
        ValueError: a stored study that cannot be loaded.
    """
    out = Sections()
    not_used: list[StoredRun] = []
    missing: list[StoredRun] = []
    diverged: list[StoredRun] = []
    for study_name in dict.fromkeys(row.study for row in rows):
        try:
            study = studies.get_study(study_name)
        except ValueError as err:
            raise ValueError(f"{out_dir}: {err}") from None
        chosen = select(
            [r for r in rows if r.study == study_name], sweeps.get(study_name, []), use_all=use_all
        )
        not_used += chosen.other_revisions
        missing += chosen.missing_artifacts
        diverged += chosen.diverged
        done = [
            ResultRow(r.run_id, r.config, r.status, r.metrics, r.artifacts_dir)
            for r in chosen.used
            if r.status == "done"
        ]
        if not done:
            out.messages.append(f"tangentlab: {study_name}: no finished runs; left out of the report")
            continue
        section = study.report(done, figures_dir)
        out.sections.append(with_provenance(section, study, chosen.used, out_dir, target))
    for label, group in (
        ("other config revisions, not used", not_used),
        ("artifacts missing, left out", missing),
        ("diverged (kept out of fits)", diverged),
    ):
        if group:
            out.notes[label] = f"{len(group)} run(s): " + ", ".join(r.run_id for r in group)
            hint = " (tangentlab report --all pools them)" if group is not_used else ""
            shown = ", ".join(r.run_id for r in group[:STDERR_IDS])
            more = (
                f", ... ({len(group) - STDERR_IDS} more; all in the report's header)"
                if len(group) > STDERR_IDS
                else ""
            )
            out.messages.append(f"tangentlab: {label}: {len(group)} run(s): {shown}{more}{hint}")
    return out
