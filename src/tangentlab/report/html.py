"""The static HTML report: one self-contained page, ``OUT/report/index.html``, built from the studies' sections.

Figures live under ``OUT/report/figures/`` and are referenced relative to the page, so the folder can be moved or
served as it is. Every piece of text from a section is HTML-escaped. No JavaScript, no external resources.
"""

from __future__ import annotations

import html
import json
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

from tangentlab.report.figures import plain_math, stored_caption
from tangentlab.report.section import StudySection, Table

VERDICT_COLOURS: dict[str, str] = {
    "supported": "#1a7f37",
    "not supported": "#cf222e",
    "mixed": "#9a6700",
    "inconclusive": "#6e7781",
}

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 1100px; margin: 2em auto;
       padding: 0 1em; color: #1f2328; line-height: 1.5; }
h1 { border-bottom: 2px solid #d0d7de; padding-bottom: .3em; }
h2 { margin-top: 2em; border-bottom: 1px solid #d0d7de; padding-bottom: .2em; }
.meta { font-size: .9em; color: #57606a; border-collapse: collapse; }
.meta td { padding: .1em 1em .1em 0; vertical-align: top; }
.meta code, .settings code { background: #f6f8fa; padding: 0 .3em; }
.citation { color: #57606a; font-style: italic; }
.claim { background: #f6f8fa; border-left: 4px solid #0969da; padding: .5em 1em; }
.badge { display: inline-block; color: white; border-radius: 1em; padding: .1em .8em; font-weight: 600;
         font-size: .9em; }
figure { margin: 1em 0; } figure img { max-width: 100%; height: auto; border: 1px solid #d0d7de; }
table.data { border-collapse: collapse; font-size: .9em; margin: 1em 0; }
table.data th, table.data td { border: 1px solid #d0d7de; padding: .25em .6em; text-align: left; }
table.data th { background: #f6f8fa; }
caption { caption-side: top; text-align: left; font-weight: 600; padding-bottom: .3em; }
.settings { font-size: .9em; color: #57606a; }
figcaption { font-size: .9em; color: #1f2328; margin-top: .3em; }
figcaption a { color: #0969da; }
pre.yaml { background: #f6f8fa; padding: .6em 1em; font-size: .85em; overflow-x: auto; border: 1px solid #d0d7de; }
.evidence { font-size: .9em; color: #57606a; margin: .2em 0 1em 0; }
.reproduce code { background: #f6f8fa; padding: .1em .4em; }
table.findings { width: 100%; table-layout: auto; }
table.findings td { overflow-wrap: anywhere; }
table.findings td.about { white-space: nowrap; color: #57606a; width: 1%; }
nav ul { padding-left: 1.2em; }
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in name) or "study"


def _place_figure(figure: Path, report_dir: Path, figures_dir: Path) -> str:
    """Path of ``figure`` relative to ``report_dir``; figures outside the report folder are copied into it."""
    path = figure if figure.is_absolute() else report_dir / figure
    path = path.resolve()
    if not path.is_file():
        raise FileNotFoundError(f"figures: {figure} does not exist (looked at {path})")
    root = report_dir.resolve()
    if not path.is_relative_to(root):
        target = figures_dir / path.name
        if target.exists() and target.resolve() != path:
            target = figures_dir / f"{path.parent.name}_{path.name}"
        shutil.copy2(path, target)
        path = target.resolve()
    return path.relative_to(root).as_posix()


def _table(table: Table) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in table.header)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in table.rows)
    return (
        f'<table class="data"><caption>{_e(table.caption)}</caption>'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    )


def _findings(findings: tuple[str, ...]) -> str:
    """Findings as a short two-column table: what a finding is about (the text before its first ": ") and
    what was measured; a finding without such a lead-in spans both columns."""
    rows = []
    for text in findings:
        about, sep, result = text.partition(": ")
        if sep and 0 < len(about) <= 60 and ". " not in about:
            rows.append(f'<tr><td class="about">{_e(about)}</td><td>{_e(result)}</td></tr>')
        else:
            rows.append(f'<tr><td colspan="2">{_e(text)}</td></tr>')
    return '<h3>Findings</h3><table class="data findings"><tbody>' + "".join(rows) + "</tbody></table>"


def _display_width(png: Path) -> int | None:
    """CSS pixels to show a figure at its drawn size (PNGs are saved at 200 dpi, a screen shows ~100)."""
    try:
        from PIL import Image

        with Image.open(png) as image:
            dpi = float(image.info.get("dpi", (100, 100))[0]) or 100.0
            return max(1, round(image.size[0] * 100 / dpi))
    except (OSError, ImportError, ValueError, TypeError):
        return None


def _figure(number: int, src: str, png: Path, caption: str) -> str:
    """A numbered figure with its caption and links to its vector (PDF) and data (CSV) versions, when present."""
    text = plain_math(caption or stored_caption(png) or png.stem.replace("_", " "))
    links = [
        f'<a href="{_e(Path(src).with_suffix(suffix).as_posix())}">{label}</a>'
        for suffix, label in ((".pdf", "PDF"), (".csv", "data (CSV)"))
        if png.with_suffix(suffix).is_file()
    ]
    extra = f" [{' · '.join(links)}]" if links else ""
    width = _display_width(png)
    size = f' width="{width}"' if width else ""
    return (
        f'<figure id="figure-{number}"><img src="{_e(src)}"{size} alt="Figure {number}: {_e(text)}">'
        f"<figcaption><strong>Figure {number}.</strong> {_e(text)}{extra}</figcaption></figure>"
    )


def _section(section: StudySection, report_dir: Path, figures_dir: Path, first_figure: int = 1) -> str:
    colour = VERDICT_COLOURS.get(section.verdict, "#6e7781")
    parts = [
        f'<section id="{_e(_slug(section.study))}">',
        f"<h2>{_e(section.title)}</h2>",
        f'<p class="citation">{_e(section.citation)}</p>',
        f'<p>Verdict: <span class="badge verdict" style="background:{colour}">{_e(section.verdict)}</span></p>',
    ]
    if section.evidence:
        parts.append(f'<p class="evidence">{_e(section.evidence)}</p>')
    parts.append(f'<div class="claim"><strong>Claim tested.</strong> {_e(section.claim)}</div>')
    if section.findings:
        parts.append(_findings(section.findings))
    for i, fig in enumerate(section.figures):
        src = _place_figure(Path(fig), report_dir, figures_dir)
        caption = section.captions[i] if i < len(section.captions) else ""
        parts.append(_figure(first_figure + i, src, report_dir / src, caption))
    parts.extend(_table(t) for t in section.tables)
    if section.settings_yaml or section.settings:
        parts.append("<h3>Settings</h3>")
    if section.settings_yaml:
        parts.append(f'<pre class="yaml">{_e(section.settings_yaml)}</pre>')
    if section.settings:
        parts.append(
            '<ul class="settings">' + "".join(f"<li>{_e(s)}</li>" for s in section.settings) + "</ul>"
        )
    if section.reproduce:
        parts.append(
            f'<p class="reproduce"><strong>How to reproduce:</strong> <code>{_e(section.reproduce)}</code></p>'
        )
    parts.append("</section>")
    return "\n".join(parts)


def render_html(
    sections: Sequence[StudySection], *, title: str, metadata: Mapping[str, str], report_dir: Path
) -> str:
    """The page's HTML text (figures are resolved against, and copied into, ``report_dir``)."""
    figures_dir = report_dir / "figures"
    figures_dir.mkdir(parents=True, exist_ok=True)
    meta = "".join(f"<tr><td>{_e(k)}</td><td><code>{_e(v)}</code></td></tr>" for k, v in metadata.items())
    nav = "".join(
        f'<li><a href="#{_e(_slug(s.study))}">{_e(s.title)}</a> — {_e(s.verdict)}</li>' for s in sections
    )
    starts = [1 + sum(len(s.figures) for s in sections[:i]) for i in range(len(sections))]
    body = "\n".join(_section(s, report_dir, figures_dir, n) for s, n in zip(sections, starts, strict=True))
    if not sections:
        body = "<p>No study results in this folder.</p>"
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{_e(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
        f'<header><h1>{_e(title)}</h1><table class="meta">{meta}</table></header>\n'
        f"<nav><ul>{nav}</ul></nav>\n{body}\n</body>\n</html>\n"
    )


def write_report(
    out_dir: Path, sections: list[StudySection], *, title: str, metadata: dict[str, str]
) -> Path:
    """Write ``out_dir/report/index.html`` and ``out_dir/report/findings.json``; return the page's path.

    ``findings.json`` holds ``metadata`` and, per study, its claim, verdict, findings, the numbers they quote
    (:attr:`StudySection.numbers`), the runs they come from, settings and tables: the report as data.

    Args:
        out_dir: the sweep's output folder; the page goes to ``out_dir/report/``, figures under
            ``out_dir/report/figures/`` (a section's figures elsewhere are copied there).
        sections: the studies' sections, in page order.
        title: the page heading.
        metadata: shown in the header (e.g. tangentlab and torch versions, date, the command).

    Raises:
        FileNotFoundError: if a section names a figure that does not exist.
    """
    report_dir = Path(out_dir) / "report"
    report_dir.mkdir(parents=True, exist_ok=True)
    text = render_html(sections, title=title, metadata=metadata, report_dir=report_dir)
    path = report_dir / "index.html"
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    data = {"metadata": dict(metadata), "studies": [s.to_dict() for s in sections]}
    json_path = report_dir / "findings.json"
    tmp_json = json_path.with_suffix(".json.tmp")
    tmp_json.write_text(
        json.dumps(data, indent=1, ensure_ascii=False, allow_nan=False) + "\n", encoding="utf-8"
    )
    tmp_json.replace(json_path)
    return path
