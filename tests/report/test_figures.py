"""Figures for papers: PNG at 200 dpi + PDF + the plotted numbers as CSV, one shared style, no backend selection."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import pypdf
import pytest
from PIL import Image

from tangentlab.report.figures import CSV_HEADER, PNG_DPI, STYLE, figure_style, save_figure, styled

SRC = Path(__file__).resolve().parents[2] / "src" / "tangentlab"


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_save_figure_writes_png_pdf_and_exactly_the_plotted_numbers(tmp_path: Path):
    with figure_style():
        fig, (a, b) = plt.subplots(1, 2)
        a.plot([1, 2, 4], [0.5, 0.25, 0.125], "o-", label=r"$\|\Theta_T-\Theta_0\|_F$")
        a.errorbar([1, 2], [3.0, 4.0], yerr=[0.5, 1.0], fmt="s", label="with bars")
        a.set_title(r"$\lambda_{\min}$")
        a.legend()
        b.scatter([0.1, 0.2], [5.0, 6.0], label="points")
        b.bar([10, 20], [7.0, 8.0], width=2.0, label="bars")
        b.imshow(np.array([[1.0, 2.0], [3.0, np.nan]]))
        b.fill_between([0.0, 1.0], [0.0, 0.5], [1.0, 1.5], label="band")
    png = save_figure(fig, tmp_path / "sub" / "demo.png")
    assert png == tmp_path / "sub" / "demo.png" and not plt.fignum_exists(fig.number)
    with Image.open(png) as image:
        dpi = image.info["dpi"]
    assert min(dpi) == pytest.approx(PNG_DPI, abs=0.5)
    assert png.with_suffix(".pdf").read_bytes().startswith(b"%PDF")
    rows = _rows(png.with_suffix(".csv"))
    assert tuple(rows[0]) == CSV_HEADER

    def series(name: str, kind: str) -> list[tuple[float, float, str]]:
        return [
            (float(r["x"]), float(r["y"]), r["value"])
            for r in rows
            if r["series"] == name and r["kind"] == kind
        ]

    assert series(r"$\|\Theta_T-\Theta_0\|_F$", "line") == [(1, 0.5, ""), (2, 0.25, ""), (4, 0.125, "")]
    assert {r["panel_title"] for r in rows if r["panel"] == "0"} == {r"$\lambda_{\min}$"}
    assert series("points", "points") == [(0.1, 5.0, ""), (0.2, 6.0, "")]
    assert series("bars", "bar") == [(10.0, 7.0, ""), (20.0, 8.0, "")]
    bars = [(float(r["x"]), float(r["y"]), float(r["value"])) for r in rows if r["kind"] == "errorbar"]
    assert sorted(bars) == [(1.0, 2.5, 3.5), (2.0, 3.0, 5.0)]
    outline = {(float(r["x"]), float(r["y"])) for r in rows if r["series"] == "band" and r["kind"] == "area"}
    assert {(0.0, 0.0), (1.0, 0.5), (1.0, 1.5), (0.0, 1.0)} <= outline
    pixels = {(r["x"], r["y"]): r["value"] for r in rows if r["kind"] == "image"}
    assert pixels == {("0", "0"): "1.0", ("1", "0"): "2.0", ("0", "1"): "3.0", ("1", "1"): ""}


def test_pdf_opens_and_has_one_page(tmp_path: Path):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    ax.set_xlabel(r"$\sigma_w^2$")
    reader = pypdf.PdfReader(save_figure(fig, tmp_path / "f.png").with_suffix(".pdf"))
    assert len(reader.pages) == 1 and float(reader.pages[0].mediabox.width) > 100


def test_low_dpi_is_refused(tmp_path: Path):
    fig, _ = plt.subplots()
    with pytest.raises(ValueError, match="dpi: expected at least 200"):
        save_figure(fig, tmp_path / "f.png", dpi=100)
    plt.close(fig)


def test_style_applies_inside_and_is_restored_after():
    before = mpl.rcParams["mathtext.fontset"]

    @styled
    def inside() -> str:
        return str(mpl.rcParams["mathtext.fontset"])

    assert inside() == STYLE["mathtext.fontset"] == "cm"
    assert mpl.rcParams["mathtext.fontset"] == before


def test_no_library_module_selects_a_backend_and_every_figure_goes_through_save_figure():
    offenders, raw_saves = [], []
    for path in SRC.rglob("*.py"):
        text = path.read_text()
        if re.search(r"matplotlib\.use\(|\bmpl\.use\(", text) and path.name != "cli.py":
            offenders.append(path.name)
        if ".savefig(" in text and path.name != "figures.py":
            raw_saves.append(path.name)
    assert offenders == [] and raw_saves == []
