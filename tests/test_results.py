"""Results as data: ``tangentlab.load_results`` and ``tangentlab results --columns/--where/--mean-over``."""

import json
import math
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import tangentlab
from tangentlab.cli import app
from tangentlab.results import json_safe, resolve_column
from tests.runner.conftest import write_sweep

runner = CliRunner()


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("sweep")
    path = write_sweep(folder, grid={"width": [2, 3, 5]}, seeds=3)
    out = folder / "out"
    result = runner.invoke(app, ["run", str(path), "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    return out


def _strict_json(text: str) -> object:
    def refuse(token: str) -> None:
        raise AssertionError(f"JSON token {token} is not valid JSON")

    return json.loads(text, parse_constant=refuse)


def test_load_results_one_row_per_run_with_grid_metrics_status_seed_id_times(sweep: Path):
    df = tangentlab.load_results(sweep)
    assert isinstance(df, pd.DataFrame) and len(df) == 9
    assert list(df.columns[:4]) == ["run_id", "study", "status", "seed"]
    assert {"params.width", "data.name", "train_mse", "weight_norm", "seconds", "started", "finished"} <= set(
        df
    )
    assert sorted(zip(df["params.width"], df["seed"], strict=True)) == [
        (w, s) for w in (2, 3, 5) for s in range(3)
    ]
    assert (df.status == "done").all() and df.run_id.is_unique and (df.seconds >= 0).all()
    # the metric values are the store's
    from tangentlab.runner import ResultStore

    with ResultStore(sweep) as store:
        stored = {run.run_id: run.metrics["train_mse"] for run in store.runs()}
    assert dict(zip(df.run_id, df.train_mse, strict=True)) == stored


def test_where_filters_and_short_names_resolve(sweep: Path):
    result = runner.invoke(
        app, ["results", str(sweep), "--where", "width>=3", "--where", "seed!=0", "--format", "csv"]
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    header = lines[0].split(",")
    rows = [dict(zip(header, line.split(","), strict=True)) for line in lines[1:]]
    assert sorted((r["params.width"], r["seed"]) for r in rows) == [
        ("3", "1"),
        ("3", "2"),
        ("5", "1"),
        ("5", "2"),
    ]
    bad = runner.invoke(app, ["results", str(sweep), "--where", "depth>3"])
    assert bad.exit_code == 2 and "no column 'depth'" in bad.output
    garbled = runner.invoke(app, ["results", str(sweep), "--where", "width~3"])
    assert garbled.exit_code == 2 and "NAME OP VALUE" in garbled.output


def test_resolve_column_reports_ambiguity():
    assert resolve_column("width", ["params.width", "seed"]) == "params.width"
    with pytest.raises(ValueError, match="ambiguous"):
        resolve_column("name", ["data.name", "train.name"])


def test_mean_over_seed_matches_pandas_mean_and_standard_error(sweep: Path):
    result = runner.invoke(app, ["results", str(sweep), "--mean-over", "seed", "--format", "json"])
    assert result.exit_code == 0, result.output
    groups = _strict_json(result.output)
    assert isinstance(groups, list) and len(groups) == 3
    df = tangentlab.load_results(sweep)
    reference = df.groupby("params.width")["weight_norm"].agg(["mean", "std", "count"])
    for group in groups:
        ref = reference.loc[group["params.width"]]
        assert group["n"] == 3 and "seed" not in group
        assert group["weight_norm"] == pytest.approx(ref["mean"], rel=1e-12)
        assert group["weight_norm_se"] == pytest.approx(ref["std"] / math.sqrt(3), rel=1e-12)


def test_columns_choose_what_is_shown_and_table_fits_the_terminal(sweep: Path):
    result = runner.invoke(app, ["results", str(sweep), "--columns", "width,seed,train_mse"])
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].split() == ["params.width", "seed", "train_mse"] and len(lines) == 10
    narrow = runner.invoke(app, ["results", str(sweep)], env={"COLUMNS": "40"})
    table = [line for line in narrow.output.splitlines() if not line.startswith("(")]
    assert max(len(line) for line in table) <= 40
    assert "more columns" in narrow.output and "--columns" in narrow.output
    averaged = runner.invoke(
        app, ["results", str(sweep), "--columns", "width,train_mse", "--mean-over", "seed"]
    )
    assert averaged.output.splitlines()[0].split() == ["params.width", "n", "train_mse", "train_mse_se"]


def test_json_has_no_nan_tokens(sweep: Path, tmp_path: Path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(sweep, copy)
    with sqlite3.connect(copy / "results.sqlite") as con:
        (run_id,) = con.execute("SELECT run_id FROM runs LIMIT 1").fetchone()
        con.execute(
            "UPDATE runs SET metrics=? WHERE run_id=?",
            ('{"train_mse": NaN, "weight_norm": Infinity}', run_id),
        )
    for args in ([], ["--mean-over", "seed"], ["--columns", "train_mse"]):
        result = runner.invoke(app, ["results", str(copy), "--format", "json", *args])
        assert result.exit_code == 0, result.output
        _strict_json(result.output)
    records = _strict_json(runner.invoke(app, ["results", str(copy), "--format", "json"]).output)
    nan_run = next(r for r in records if r["run_id"] == run_id)
    assert nan_run["metrics"] == {"train_mse": None, "weight_norm": None}
    assert np.isnan(tangentlab.load_results(copy).set_index("run_id").loc[run_id, "train_mse"])
    assert json_safe({"a": [1.0, float("nan")], "b": float("-inf")}) == {"a": [1.0, None], "b": None}
