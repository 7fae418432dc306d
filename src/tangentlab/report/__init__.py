"""The HTML report: one static page per output folder, built from the studies' sections.

* :class:`StudySection`, :class:`Table`, :data:`Verdict` — what a study contributes;
* :func:`write_report` — ``OUT/report/index.html`` with figures under ``OUT/report/figures/``;
* :func:`fit_power_law` — log–log least squares with the slope's standard error (scaling-law figures).
"""

from tangentlab.report.fits import PowerLawFit, fit_power_law
from tangentlab.report.html import write_report
from tangentlab.report.section import StudySection, Table, Verdict

__all__ = ["PowerLawFit", "StudySection", "Table", "Verdict", "fit_power_law", "write_report"]
