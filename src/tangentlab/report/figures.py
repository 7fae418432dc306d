"""Figures for the report, drawn without pyplot: no backend is selected and no global state is touched.

A :class:`matplotlib.figure.Figure` made directly (not through ``pyplot``) is not registered with any GUI backend
and renders to PNG with the Agg canvas when saved, so library code never needs ``matplotlib.use`` and figures can be
drawn from worker threads; the figure is freed when it goes out of scope (there is no ``plt.close`` to forget).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.figure import Figure


def subplots(
    nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float], squeeze: bool = True, **kwargs: Any
) -> tuple[Figure, Any]:
    """A new figure and its grid of axes, as ``pyplot.subplots`` returns them (``kwargs`` go to ``Figure.subplots``)."""
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols, squeeze=squeeze, **kwargs)


def save(fig: Figure, path: Path, *, dpi: int = 110) -> Path:
    """Write ``fig`` to ``path`` (format from the suffix) and return the path."""
    fig.savefig(path, dpi=dpi)
    return path


__all__ = ["save", "subplots"]
