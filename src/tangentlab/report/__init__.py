"""The HTML report: one static page per output folder, built from the studies' sections."""

from tangentlab.report.section import StudySection, Table, Verdict

__all__ = ["StudySection", "Table", "Verdict"]
