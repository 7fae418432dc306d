"""A sweep's results as data: one row per run, with its grid values, metrics, status, seed, run id and times.

* :func:`load_results` — a pandas ``DataFrame`` (pandas comes with ``pip install "tangentlab[data]"``);
* :func:`run_table` — the same rows as plain dicts (what ``tangentlab results`` prints), with
  :func:`filter_rows` (``--where 'width>=1024'``) and :func:`mean_over` (``--mean-over seed``: means with
  standard errors).

Column names: ``run_id``, ``study``, ``status``, ``seed``, then the resolved config as ``section.field``
(``model`` as one JSON string, ``data.name``, ``train.steps``, ``params.width``, ...), then the metrics by their own
names (a metric whose name is taken is called ``metrics.NAME``), then ``started``, ``finished``, ``seconds`` and
``error``. Wherever a column is named on the command line, its last part is enough when it is unique
(``width`` for ``params.width``).
"""

from __future__ import annotations

import difflib
import json
import math
import operator
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tangentlab.runner import ResultStore, RunConfig, StoredRun
from tangentlab.runner.selection import outcome

if TYPE_CHECKING:
    import pandas as pd

LEADING = ("run_id", "study", "status", "seed")
TRAILING = ("started", "finished", "seconds", "error")


@dataclass(frozen=True)
class RunTable:
    """Rows of a sweep, one dict per run, and which columns are config values and which are metrics."""

    rows: list[dict[str, Any]]
    config_columns: list[str]
    metric_columns: list[str]

    @property
    def columns(self) -> list[str]:
        return [*LEADING, *self.config_columns, *self.metric_columns, *TRAILING]

    def varying(self) -> list[str]:
        """The config columns whose values differ between runs (the grid axes), in config order."""
        return [c for c in self.config_columns if len({_key(r.get(c)) for r in self.rows}) > 1]


def flat_config(config: RunConfig) -> dict[str, Any]:
    """The resolved config as ``section.field`` → value (``seed``; the model as one JSON string)."""
    dumped = config.model_dump(mode="json")
    flat: dict[str, Any] = {"seed": dumped["seed"], "model": json.dumps(dumped["model"], sort_keys=True)}
    for section in ("data", "train", "params"):
        for key, value in dumped[section].items():
            if isinstance(value, dict):
                flat.update({f"{section}.{key}.{k}": v for k, v in value.items()})
            else:
                flat[f"{section}.{key}"] = value
    return flat


def run_table(runs: Sequence[StoredRun]) -> RunTable:
    """The runs as rows of named values (see the module docstring for the column names)."""
    flats = [flat_config(run.config) for run in runs]
    config_columns = [c for c in dict.fromkeys(k for f in flats for k in f) if c != "seed"]
    taken = set(LEADING) | set(TRAILING) | set(config_columns)
    # one status column: a study's own "status" metric is merged into it (runner.selection.outcome)
    metric_names = list(dict.fromkeys(name for run in runs for name in run.metrics if name != "status"))
    metric_column = {name: f"metrics.{name}" if name in taken else name for name in metric_names}
    rows = []
    for run, flat in zip(runs, flats, strict=True):
        row: dict[str, Any] = {"run_id": run.run_id, "study": run.study, "status": outcome(run), **flat}
        row.update({metric_column[k]: v for k, v in run.metrics.items() if k != "status"})
        row.update(started=run.started, finished=run.finished, seconds=run.seconds, error=run.error)
        rows.append(row)
    return RunTable(rows, config_columns, list(metric_column.values()))


def load_results(out_dir: str | Path, *, study: str | None = None) -> pd.DataFrame:
    """The runs stored in a sweep's output folder as a ``pandas.DataFrame``, one row per run.

    Args:
        out_dir: the folder given to ``tangentlab run --out`` (it holds ``results.sqlite``).
        study: only this study's runs (default: all).

    Returns:
        A DataFrame with the columns described in the module docstring; metrics a run did not record are NaN.

    Raises:
        FileNotFoundError: if the folder has no result store.
        ImportError: if pandas is not installed (``pip install "tangentlab[data]"``).

    Example:
        >>> df = tangentlab.load_results("results/quick")  # doctest: +SKIP
        >>> df[df.study == "lazy"].groupby("params.width")["kernel_change"].mean()  # doctest: +SKIP
    """
    try:
        import pandas as pd
    except ImportError as err:  # pragma: no cover - exercised only without the extra
        raise ImportError('load_results needs pandas: pip install "tangentlab[data]"') from err
    with ResultStore(Path(out_dir)) as store:
        runs = store.runs(study)
    table = run_table(runs)
    return pd.DataFrame(table.rows, columns=table.columns)


_CONDITION = re.compile(r"^\s*([\w.]+)\s*(>=|<=|==|!=|=|>|<)\s*(.*?)\s*$")
_OPS: dict[str, Callable[[Any, Any], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    "==": operator.eq,
    "=": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    "<": operator.lt,
}


def resolve_column(name: str, columns: Iterable[str]) -> str:
    """``name`` itself, or the one column whose last dotted part is ``name``; ValueError otherwise."""
    columns = list(columns)
    if name in columns:
        return name
    matches = [c for c in columns if c.rsplit(".", 1)[-1] == name]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise ValueError(f"column {name!r} is ambiguous: {', '.join(matches)}")
    close = difflib.get_close_matches(name, columns, n=5, cutoff=0.5)
    close += [c for c in columns if name in c and c not in close][: 5 - len(close)]
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise ValueError(f"no column {name!r}; {hint}({len(columns)} columns: --format csv shows them all)")


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text.strip("'\"")


def filter_rows(table: RunTable, conditions: Sequence[str]) -> RunTable:
    """The rows meeting every condition ``NAME OP VALUE`` (OP one of ``>= <= == = != > <``).

    VALUE is read as JSON when it can be (numbers, ``true``, ``null``), else as a string. A row whose value
    cannot be compared with VALUE (missing, or a string against a number) does not match.

    Raises:
        ValueError: a condition that does not parse, or names no column (or several).
    """
    rows = table.rows
    for text in conditions:
        match = _CONDITION.match(text)
        if not match:
            raise ValueError(f"--where: expected NAME OP VALUE with OP in >= <= == != > <, got {text!r}")
        column = resolve_column(match[1], table.columns)
        op, value = _OPS[match[2]], _value(match[3])

        def keep(row: dict[str, Any], column: str = column, op: Any = op, value: Any = value) -> bool:
            try:
                return row.get(column) is not None and bool(op(row[column], value))
            except TypeError:
                return False

        rows = [row for row in rows if keep(row)]
    return RunTable(rows, table.config_columns, table.metric_columns)


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def mean_over(
    table: RunTable, over: Sequence[str], keys: Sequence[str]
) -> tuple[list[str], list[dict[str, Any]]]:
    """Means and standard errors of the numeric metrics over the columns ``over`` (e.g. ``seed``).

    Rows are grouped by ``keys`` (without the ``over`` columns); only finished runs (``status == "done"``) count.
    For each metric with finite values in a group: ``METRIC`` the mean, ``METRIC_se`` the standard error
    ``s / sqrt(k)`` (``s`` the sample standard deviation of its ``k`` values; None when ``k < 2``); ``n`` is the
    number of runs in the group.

    Returns:
        The column names and one dict per group, in order of first appearance.
    """
    over_columns = {resolve_column(name, table.columns) for name in over}
    group_by = [k for k in keys if k not in over_columns]
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in table.rows:
        if row["status"] == "done":
            groups.setdefault(_key([row.get(k) for k in group_by]), []).append(row)
    numeric = [m for m in table.metric_columns if any(_number(r.get(m)) is not None for r in table.rows)]
    columns = [*group_by, "n", *(c for m in numeric for c in (m, f"{m}_se"))]
    out = []
    for members in groups.values():
        record: dict[str, Any] = {k: members[0].get(k) for k in group_by}
        record["n"] = len(members)
        for metric in numeric:
            values = [v for v in (_number(r.get(metric)) for r in members) if v is not None]
            mean = sum(values) / len(values) if values else None
            se = None
            if len(values) >= 2 and mean is not None:
                var = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
                se = math.sqrt(var / len(values))
            record[metric], record[f"{metric}_se"] = mean, se
        out.append(record)
    return columns, out


def json_safe(value: Any) -> Any:
    """``value`` with every NaN or infinity replaced by None (JSON has no such tokens)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value
