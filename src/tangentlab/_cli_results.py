"""``tangentlab results DIR``: the runs as a table that fits the terminal, CSV or JSON (no NaN tokens)."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import sys
from collections.abc import Sequence
from typing import Any

import typer

from tangentlab.results import RunTable, filter_rows, json_safe, mean_over, resolve_column, run_table
from tangentlab.runner import StoredRun


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if value is None:
        return ""
    return json.dumps(value) if isinstance(value, list | dict) else str(value)


def _fit(
    header: list[str], lines: list[list[str]], width: int
) -> tuple[list[str], list[list[str]], list[str]]:
    """Keep leading columns while the table fits ``width`` characters; return the kept and the hidden names."""
    widths = [max(len(line[i]) for line in [header, *lines]) for i in range(len(header))]
    used, keep = 0, 0
    for i, w in enumerate(widths):
        if keep and used + w > width:
            break
        used, keep = used + w + 2, i + 1
    return header[:keep], [line[:keep] for line in lines], header[keep:]


def show_results(
    runs: Sequence[StoredRun],
    fmt: str,
    *,
    columns: str | None = None,
    where: Sequence[str] = (),
    over: Sequence[str] = (),
) -> None:
    """Print the runs (``fmt``: table, csv or json); raises ValueError for a bad column or condition."""
    table: RunTable = filter_rows(run_table(runs), where)
    if columns:
        chosen = [resolve_column(c.strip(), table.columns) for c in columns.split(",") if c.strip()]
    else:
        chosen = ["run_id", "study", "status", "seed", *table.varying(), *table.metric_columns]
    if over:
        keys = [c for c in chosen if c not in table.metric_columns and c not in ("run_id", "status")]
        chosen, rows = mean_over(table, over, keys)
        if columns:  # metrics asked for by name: keep them with their standard errors
            wanted = {resolve_column(c.strip(), table.columns) for c in columns.split(",") if c.strip()}
            chosen = [c for c in chosen if c in keys or c == "n" or c.removesuffix("_se") in wanted]
    else:
        rows = table.rows
    if fmt == "json":
        if over or columns:
            records: list[dict[str, Any]] = [{c: row.get(c) for c in chosen} for row in rows]
        else:
            by_id = {run.run_id: run for run in runs}
            records = [
                {
                    "run_id": row["run_id"],
                    "study": row["study"],
                    "status": row["status"],
                    "grid": {c: row.get(c) for c in ["seed", *table.varying()]},
                    "metrics": {c: row[c] for c in table.metric_columns if c in row},
                    "seconds": row["seconds"],
                    "error": row["error"],
                    "config": by_id[row["run_id"]].config.model_dump(mode="json"),
                }
                for row in rows
            ]
        typer.echo(json.dumps(json_safe(records), indent=2, allow_nan=False))
        return
    lines = [[_cell(row.get(c)) for c in chosen] for row in rows]
    if fmt == "csv":
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows([chosen, *lines])
        typer.echo(buffer.getvalue(), nl=False)
        return
    hidden: list[str] = []
    header = chosen
    if sys.stdout.isatty() or "COLUMNS" in os.environ:  # a terminal: keep the columns that fit it
        header, lines, hidden = _fit(chosen, lines, shutil.get_terminal_size().columns)
    widths = [max(len(line[i]) for line in [header, *lines]) for i in range(len(header))]
    for line in [header, *lines]:
        typer.echo("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())
    if hidden:
        typer.echo(
            f"({len(hidden)} more columns: {', '.join(hidden)}; pick them with --columns, or use --format csv)",
            err=True,
        )
