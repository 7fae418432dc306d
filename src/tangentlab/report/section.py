"""What a study contributes to the report: its claim, figures, tables and findings in words."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

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
