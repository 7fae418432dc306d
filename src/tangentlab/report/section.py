"""What a study contributes to the report: its claim, figures, tables and findings in words."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Verdict = Literal["supported", "not supported", "mixed", "inconclusive"]


@dataclass(frozen=True)
class Table:
    caption: str
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class StudySection:
    """One study's part of the HTML report.

    Attributes:
        study: the study's name.
        title: a heading.
        citation: the paper(s) whose claim is tested.
        claim: the paper's claim that the figures test, in the paper's terms.
        verdict: whether our runs show the claim.
        findings: sentences generated from the measured numbers (never fixed text about results).
        figures: PNG files (paths relative to the report folder or absolute).
        tables: tables of measured numbers.
        settings: how the runs were made (data, model, training, grid), in words.
        settings_yaml: the sweep file(s) that give exactly these runs (filled in by ``tangentlab report``).
        reproduce: the command that reruns (or resumes) the runs (filled in by ``tangentlab report``).
        evidence: runs and seeds behind the verdict, and what that allows (filled in by ``tangentlab report``).
        captions: one caption per figure; a figure without one takes the title stored in its PNG by
            :func:`tangentlab.report.figures.save_figure`.
        numbers: the numbers the verdict and findings quote, as JSON-ready data (floats, ints, strings, lists and
            dicts of them; NaN is written as null): what tests and the README read instead of parsing sentences.
        runs: the ids of the runs the numbers come from.
    """

    study: str
    title: str
    citation: str
    claim: str
    verdict: Verdict
    findings: tuple[str, ...]
    figures: tuple[Path, ...] = ()
    tables: tuple[Table, ...] = ()
    settings: tuple[str, ...] = field(default_factory=tuple)
    settings_yaml: str = ""
    reproduce: str = ""
    evidence: str = ""
    captions: tuple[str, ...] = ()
    numbers: Mapping[str, Any] = field(default_factory=dict)
    runs: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The section as JSON-ready data (figures as file names; non-finite floats as None)."""
        return {
            "study": self.study,
            "title": self.title,
            "citation": self.citation,
            "claim": self.claim,
            "verdict": self.verdict,
            "findings": list(self.findings),
            "numbers": json_ready(self.numbers),
            "runs": list(self.runs),
            "settings": list(self.settings),
            "tables": [
                {"caption": t.caption, "header": list(t.header), "rows": [list(r) for r in t.rows]}
                for t in self.tables
            ],
            "figures": [Path(f).name for f in self.figures],
        }


def json_ready(value: Any) -> Any:
    """``value`` with tuples as lists, numpy scalars as Python numbers and NaN/inf as None."""
    if isinstance(value, Mapping):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"numbers: expected JSON-ready data, got {type(value).__name__}: {value!r}")
