"""Figures for papers: one shared style, PNG (200 dpi) + PDF, and the plotted numbers beside them as CSV.

Every study draws with :func:`figure_style` active and saves with :func:`save_figure`::

    with figure_style():
        fig, ax = plt.subplots()
        ax.plot(widths, change, "o-", label=r"$\\|\\Theta_T - \\Theta_0\\|_F / \\|\\Theta_0\\|_F$")
    png = save_figure(fig, figures_dir / "lazy_change_vs_width.png")

``save_figure`` writes ``NAME.png`` (``PNG_DPI`` dots per inch), ``NAME.pdf`` (vector) and ``NAME.csv``: every
line, marker set, bar and image of every panel as rows ``panel, panel_title, series, kind, x, y, value`` (what
:func:`plotted_data` reads back from the figure, so the CSV holds exactly what was drawn). Library code never
selects a matplotlib backend; the ``tangentlab`` command selects the non-interactive ``Agg`` in its own process.
"""

from __future__ import annotations

import csv
import functools
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ParamSpec, TypeVar, cast

import numpy as np

P = ParamSpec("P")
R = TypeVar("R")
PNG_DPI = 200
#: The shared look: readable at a column's width in a paper, mathtext in Computer Modern, light grids.
STYLE: dict[str, Any] = {
    "figure.dpi": 100,
    "savefig.dpi": PNG_DPI,
    "savefig.bbox": "tight",
    "font.size": 10,
    "axes.titlesize": 10,
    "axes.labelsize": 10,
    "legend.fontsize": 8,
    "legend.framealpha": 0.85,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.6,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "lines.linewidth": 1.5,
    "lines.markersize": 4,
    "mathtext.fontset": "cm",
    "pdf.fonttype": 42,  # TrueType in PDFs: editable text, accepted by publishers
    "figure.constrained_layout.use": False,
}
CSV_HEADER = ("panel", "panel_title", "series", "kind", "x", "y", "value")


@contextmanager
def figure_style() -> Iterator[None]:
    """Apply :data:`STYLE` for the figures drawn inside the ``with`` block (matplotlib's ``rc_context``)."""
    import matplotlib as mpl

    with mpl.rc_context(cast(Any, STYLE)):
        yield


def styled(draw: Callable[P, R]) -> Callable[P, R]:
    """Decorator: run a drawing function under :func:`figure_style` (the figures it creates take the style)."""

    @functools.wraps(draw)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with figure_style():
            return draw(*args, **kwargs)

    return wrapper


def _label(artist: Any, fallback: str) -> str:
    label = str(artist.get_label() or "")
    return fallback if not label or label.startswith("_") else label


def plotted_data(fig: Any) -> list[tuple[Any, ...]]:
    """The numbers drawn in ``fig``, one row per point (see :data:`CSV_HEADER`).

    Reads lines (``kind="line"``), scatter/marker collections (``"points"``), bars (``"bar"``: x = left edge +
    half width, y = height), filled bands (``"area"``: the outline's vertices), error-bar segments (``"errorbar"``: x, and y = the segment's two ends as ``y`` and
    ``value``) and images (``"image"``: x = column, y = row, value = pixel).
    """
    from matplotlib.collections import LineCollection, PathCollection, PolyCollection
    from matplotlib.container import BarContainer
    from matplotlib.image import AxesImage

    rows: list[tuple[Any, ...]] = []
    for p, ax in enumerate(fig.axes):
        if ax.get_label() == "<colorbar>":
            continue
        title = ax.get_title()
        for i, line in enumerate(ax.get_lines()):
            xs, ys = (np.asarray(v, dtype=float).reshape(-1) for v in line.get_data())
            name = _label(line, f"line {i}")
            rows.extend((p, title, name, "line", x, y, "") for x, y in zip(xs, ys, strict=False))
        for i, coll in enumerate(ax.collections):
            if isinstance(coll, PathCollection):
                name = _label(coll, f"points {i}")
                rows.extend((p, title, name, "points", x, y, "") for x, y in np.asarray(coll.get_offsets()))
            elif isinstance(coll, PolyCollection):  # fill_between bands: the outline, lower edge then upper
                name = _label(coll, f"area {i}")
                for path in coll.get_paths():
                    rows.extend(
                        (p, title, name, "area", x, y, "") for x, y in np.asarray(path.vertices, dtype=float)
                    )
            elif isinstance(coll, LineCollection):
                name = _label(coll, f"errorbar {i}")
                for seg in coll.get_segments():
                    if len(seg) == 2:
                        rows.append((p, title, name, "errorbar", seg[0][0], seg[0][1], seg[1][1]))
        for i, container in enumerate(ax.containers):
            if isinstance(container, BarContainer):
                name = _label(container, f"bars {i}")
                rows.extend(
                    (p, title, name, "bar", bar.get_x() + bar.get_width() / 2, bar.get_height(), "")
                    for bar in container.patches
                )
        for i, image in enumerate(ax.get_images()):
            if isinstance(image, AxesImage):
                data: np.ndarray = np.ma.filled(np.ma.asarray(image.get_array(), dtype=float), np.nan)
                name = _label(image, f"image {i}")
                rows.extend(
                    (p, title, name, "image", c, r, data[r, c])
                    for r in range(data.shape[0])
                    for c in range(data.shape[1])
                )
    return rows


def figure_title(fig: Any) -> str:
    """The figure's suptitle, else its panels' distinct titles joined by "; " (mathtext as it was written)."""
    suptitle = getattr(fig, "_suptitle", None)
    if suptitle is not None and suptitle.get_text():
        return str(suptitle.get_text())
    titles = [ax.get_title() for ax in fig.axes if ax.get_title() and ax.get_label() != "<colorbar>"]
    return "; ".join(dict.fromkeys(titles))


def save_figure(fig: Any, path: str | Path, *, dpi: int = PNG_DPI, caption: str | None = None) -> Path:
    """Write ``fig`` as PNG (``dpi`` >= 200), PDF and CSV of its plotted numbers; close it; return the PNG path.

    Args:
        fig: a matplotlib figure.
        path: the PNG path (``.png`` is added when it has another suffix or none); the PDF and CSV take the same
            stem in the same folder.
        dpi: PNG resolution.
        caption: stored in the PNG (``Description``) for the report's figure caption; default
            :func:`figure_title`.

    Raises:
        ValueError: for ``dpi < 200``.
    """
    import matplotlib.pyplot as plt

    if dpi < PNG_DPI:
        raise ValueError(f"dpi: expected at least {PNG_DPI} for print, got {dpi}")
    png = Path(path).with_suffix(".png")
    png.parent.mkdir(parents=True, exist_ok=True)
    try:
        description = figure_title(fig) if caption is None else caption
        fig.savefig(png, dpi=dpi, metadata={"Description": description})
        with _quiet_font_subsetting():
            fig.savefig(png.with_suffix(".pdf"), metadata={"Title": description})
        with png.with_suffix(".csv").open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(CSV_HEADER)
            writer.writerows(tuple(_csv_value(v) for v in row) for row in plotted_data(fig))
    finally:
        plt.close(fig)
    return png


@contextmanager
def _quiet_font_subsetting() -> Iterator[None]:
    """Silence fontTools' warnings about the old timestamps of matplotlib's bundled fonts while a PDF embeds them."""
    logger = logging.getLogger("fontTools")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def stored_caption(png: Path) -> str:
    """The caption :func:`save_figure` stored in a PNG ("" if none, or not a PNG it wrote)."""
    try:
        from PIL import Image

        with Image.open(png) as image:
            return str(getattr(image, "text", {}).get("Description", ""))
    except (OSError, ImportError, ValueError):
        return ""


_TEX = {
    r"\sigma": "σ",
    r"\Theta": "Θ",
    r"\theta": "θ",
    r"\lambda": "λ",
    r"\beta": "β",
    r"\Delta": "Δ",
    r"\angle": "∠",
    r"\|": "‖",
    r"\top": "ᵀ",
    r"\min": "min",
    r"\max": "max",
    r"\log": "log",
    r"\cos": "cos",
    r"\mathbb{E}": "E",
    r"\mathrm": "",
    r"\,": " ",
    r"\!": "",
    "^{2}": "²",
    "^2": "²",
    "^{-1/2}": "^(−1/2)",
}


def plain_math(text: str) -> str:
    r"""Mathtext (``$\sigma_w^2$``) as plain Unicode-ish text for HTML captions (``σ_w^2``)."""
    for tex, plain in _TEX.items():
        text = text.replace(tex, plain)
    return text.replace("$", "").replace("{", "").replace("}", "")


def _csv_value(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return "" if not np.isfinite(value) else repr(value)
    return value
