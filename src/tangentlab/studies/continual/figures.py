"""Figures of the ``continual`` study: a metric against width per (task type, regime), net / linearized / NTK."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from tangentlab.report.figures import save_figure, styled
from tangentlab.studies._base import ResultRow
from tangentlab.studies.continual import ContinualParams

MODEL_NAMES: dict[str, str] = {"net": "network", "lin": "linearized net", "ntk": "NTK (∞ width, closed form)"}
STYLES: dict[str, str] = {"net": "-", "lin": "--", "ntk": ":"}
REGIMES: tuple[str, ...] = ("early_stopped", "converged", "fixed_budget")
Setting = tuple[str, str, str]  # task type, parametrization, regime


def run_width(row: ResultRow[ContinualParams]) -> int:
    """The run's hidden width."""
    return int(row.params.width)


def points(rows: list[ResultRow[ContinualParams]], metric: str) -> tuple[np.ndarray, np.ndarray]:
    """(widths, values) of the runs whose metric ``metric`` is a finite number."""
    pairs = [(run_width(r), r.metrics.get(metric)) for r in rows]
    good = [(w, float(v)) for w, v in pairs if isinstance(v, int | float) and math.isfinite(v)]
    return np.array([w for w, _ in good], dtype=float), np.array([v for _, v in good], dtype=float)


@styled
def plot_against_width(
    groups: Mapping[Setting, list[ResultRow[ContinualParams]]],
    metric: str,
    ylabel: str,
    path: Path,
    keys: tuple[str, ...],
) -> None:
    """One panel per (task type, regime): ``metric`` of each model in ``keys`` against width, mean and min–max."""
    import matplotlib.pyplot as plt

    types = sorted({s[0] for s in groups}) or ["no completed"]
    params = sorted({s[1] for s in groups})
    regimes = [r for r in REGIMES if any(s[2] == r for s in groups)] or list(REGIMES)
    fig, axes = plt.subplots(
        len(types), len(regimes), figsize=(6 * len(regimes), 4.2 * len(types)), squeeze=False, sharey="row"
    )
    for i, tt in enumerate(types):
        for j, regime in enumerate(regimes):
            ax = axes[i][j]
            for c, par in enumerate(params):
                rows = groups.get((tt, par, regime), [])
                for key in keys:
                    w, v = points(rows, f"{metric}_{key}")
                    if w.size == 0:
                        continue
                    ws = np.unique(w)
                    mean = np.array([v[w == x].mean() for x in ws])
                    lo = np.array([v[w == x].min() for x in ws])
                    hi = np.array([v[w == x].max() for x in ws])
                    label = MODEL_NAMES[key] + (f" ({par} param.)" if len(params) > 1 else "")
                    ax.plot(
                        ws, mean, STYLES[key], color=f"C{c}", marker="o" if key == "net" else ".", label=label
                    )
                    ax.fill_between(ws, lo, hi, color=f"C{c}", alpha=0.15 if key == "net" else 0.07)
            ax.set_xscale("log", base=2)
            ax.set_xlabel("width")
            ax.set_ylabel(ylabel)
            ax.set_title(f"{tt} tasks, {regime.replace('_', '-')}", fontsize=10)
            ax.grid(True, which="both", alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7)
    fig.suptitle(f"{ylabel} against width (mean over seeds; bands: min–max)")
    fig.tight_layout()
    save_figure(fig, path)
