"""The ``minimal`` study's report: relative eNTK error against width, its fitted power law and a verdict.

``section(study, rows, figures_dir)`` is what :meth:`tangentlab.studies.Study.report` calls for a study kept in its
own package. The slope of ``log relative_error = slope · log width + c`` (least squares over every run) counts as
consistent with −1/2 when ``|slope + 1/2| <= max(0.15, 2 · stderr)``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tangentlab.report import StudySection, Table, fit_power_law
from tangentlab.report.figures import figure_style, save_figure
from tangentlab.studies import ResultRow, Study, empty_section, finite_values, header, tally

THEORY_SLOPE = -0.5
TOLERANCE = 0.15


def section(study: Study, rows: list[ResultRow], figures_dir: Path) -> StudySection:
    """Figure, table, findings and verdict from the finished runs."""
    runs = tally(rows)
    widths = sorted({int(r.config.params["width"]) for r in runs.completed})
    if len(widths) < 2:
        return empty_section(study, runs)
    by_width = {
        w: finite_values([r for r in runs.completed if r.config.params["width"] == w], "relative_error")
        for w in widths
    }
    x = np.array([w for w in widths for _ in by_width[w]], dtype=float)
    y = np.array([v for w in widths for v in by_width[w]], dtype=float)
    fit = fit_power_law(x, y)
    consistent = abs(fit.slope - THEORY_SLOPE) <= max(TOLERANCE, 2 * fit.stderr)

    figures_dir.mkdir(parents=True, exist_ok=True)
    with figure_style():
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5.5, 4.0))
        ax.loglog(x, y, "o", alpha=0.6, label="runs")
        fitted = np.exp(fit.intercept) * np.asarray(widths, dtype=float) ** fit.slope
        ax.loglog(widths, fitted, "-", label=f"fit, slope {fit.slope:+.2f}")
        ax.set_xlabel("width")
        ax.set_ylabel("‖Θ̂ − Θ‖_F / ‖Θ‖_F")
        ax.legend()
        path = save_figure(fig, figures_dir / "minimal_error_vs_width.png")

    table = Table(
        "Relative error of the empirical NTK at init (mean over seeds)",
        ("width", "runs", "mean relative error"),
        tuple((str(w), str(len(by_width[w])), f"{np.mean(by_width[w]):.3g}") for w in widths),
    )
    finding = (
        f"Relative eNTK error ∝ width^{fit.slope:+.2f} ± {fit.stderr:.2f} over widths {widths[0]}–{widths[-1]} "
        f"({len(y)} runs; {runs.summary()}); theory −0.50: {'consistent' if consistent else 'not consistent'}."
    )
    return StudySection(
        **header(study),
        verdict="supported" if consistent else "not supported",
        findings=(finding,),
        figures=(path,),
        tables=(table,),
    )
