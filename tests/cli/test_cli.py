"""The command line: run / results / report / studies, exit codes, config errors, and resuming a killed sweep."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tangentlab.cli import app
from tangentlab.runner import ResultStore, load_sweep
from tangentlab.studies import get_study
from tests.runner.conftest import REPO, write_sweep
from tests.runner.toy_study import ToyStudy

runner = CliRunner()


def test_studies_lists_the_builtin_studies():
    result = runner.invoke(app, ["studies"])
    assert result.exit_code == 0
    assert "lazy" in result.output


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"train": {"optimizr": "gd"}}, "train.optimizr"),
        ({"study": "no_such_study"}, "study"),
        ({"data": {"name": "cifar"}}, "data.name"),
        ({"grid": {"width": [4, -1]}}, "grid.width[1]"),
        ({"grid": {"depth": [1, 2]}}, "grid.depth"),
    ],
)
def test_bad_config_exits_2_naming_file_and_field(tmp_path, fields, field):
    path = write_sweep(tmp_path, **fields)
    result = runner.invoke(app, ["run", str(path), "--out", str(tmp_path / "out"), "--no-progress"])
    assert result.exit_code == 2
    assert str(path) in result.output and f"'{field}'" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "out").exists()


def test_failed_runs_exit_1_then_retry_failed_succeeds(tmp_path):
    marker = tmp_path / "fail-while-here"
    marker.write_text("")
    path = write_sweep(tmp_path, grid={"width": [2, 3], "fail_marker": ["", str(marker)]}, seeds=1)
    args = ["run", str(path), "--out", str(tmp_path / "out"), "--no-progress"]
    first = runner.invoke(app, args)
    assert first.exit_code == 1 and "2 done now, 2 failed now" in first.output
    marker.unlink()
    assert runner.invoke(app, args).exit_code == 1  # failed runs are not retried by default
    retry = runner.invoke(app, [*args, "--retry-failed"])
    assert retry.exit_code == 0 and "2 already finished, 2 done now, 0 failed" in retry.output


def test_results_formats_and_report(tmp_path):
    path = write_sweep(tmp_path)
    out = tmp_path / "out"
    assert runner.invoke(app, ["run", str(path), "--out", str(out), "--no-progress"]).exit_code == 0

    table = runner.invoke(app, ["results", str(out)])
    lines = table.output.splitlines()
    assert table.exit_code == 0 and len(lines) == 5
    assert lines[0].split() == [
        "run_id",
        "study",
        "status",
        "seed",
        "params.width",
        "train_mse",
        "weight_norm",
    ]
    records = json.loads(runner.invoke(app, ["results", str(out), "--format", "json"]).output)
    assert [r["status"] for r in records] == ["done"] * 4
    assert {(r["grid"]["params.width"], r["grid"]["seed"]) for r in records} == {
        (2, 0),
        (2, 1),
        (3, 0),
        (3, 1),
    }
    csv_lines = runner.invoke(app, ["results", str(out), "--format", "csv"]).output.splitlines()
    assert (
        csv_lines[0] == "run_id,study,status,seed,params.width,train_mse,weight_norm" and len(csv_lines) == 5
    )

    result = runner.invoke(app, ["report", str(out)])
    index = out / "report" / "index.html"
    assert result.exit_code == 0 and result.output.strip() == str(index)
    page = index.read_text()
    assert ToyStudy.claim in page and "4 done" in page
    assert page.count("<tr>") >= 5  # the toy study's table: a header and one row per run
    assert 'src="figures/toy_weights.png"' in page


def test_report_of_a_relative_output_folder(tmp_path, monkeypatch):
    """`make run` passes `results/quick`: figure paths must resolve wherever the command runs."""
    path = write_sweep(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert runner.invoke(app, ["run", str(path), "--out", "out", "--no-progress"]).exit_code == 0
    result = runner.invoke(app, ["report", "out"])
    assert result.exit_code == 0, result.output
    page = (tmp_path / "out" / "report" / "index.html").read_text()
    assert 'src="figures/toy_weights.png"' in page
    assert (tmp_path / "out" / "report" / "figures" / "toy_weights.png").is_file()


def test_results_of_a_folder_without_store_exits_2(tmp_path):
    result = runner.invoke(app, ["results", str(tmp_path)])
    assert result.exit_code == 2 and "results.sqlite" in result.output


def count_done(db):
    if not db.exists():
        return 0
    with sqlite3.connect(db, timeout=5) as con:
        try:
            return con.execute("SELECT COUNT(*) FROM runs WHERE status='done'").fetchone()[0]
        except sqlite3.OperationalError:  # table not created yet
            return 0


def test_killed_sweep_resumes_to_exactly_one_complete_row_per_run(tmp_path):
    path = write_sweep(tmp_path, grid={"width": [1, 2, 3, 4, 5]}, params={"sleep": 0.25}, seeds=2)
    _, _, runs = load_sweep(path, get_study)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "tangentlab", "run", str(path), "--out", str(out), "--no-progress"]
    proc = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not 1 <= count_done(out / "results.sqlite") < len(runs):
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stderr.close()  # type: ignore[union-attr]
    with ResultStore(out) as store:
        assert 1 <= sum(row.status == "done" for row in store.runs()) < len(runs)

    rerun = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert rerun.returncode == 0, rerun.stderr

    with sqlite3.connect(out / "results.sqlite") as con:
        ids = [run_id for (run_id,) in con.execute("SELECT run_id FROM runs")]
    assert sorted(ids) == sorted(r.run_id for r in runs)  # every grid point exactly once
    with ResultStore(out) as store:
        stored = {row.run_id: row for row in store.runs()}
    for run in runs:
        row, want = (
            stored[run.run_id],
            ToyStudy().run(run.model_copy(update={"params": {**run.params, "sleep": 0}})),
        )
        assert row.status == "done" and row.metrics == want.metrics
        assert row.artifacts_dir is not None and sorted(p.name for p in row.artifacts_dir.iterdir()) == [
            "weights.npy"
        ]
        np.testing.assert_array_equal(np.load(row.artifacts_dir / "weights.npy"), want.artifacts["weights"])
    assert sorted(p.name for p in (out / "artifacts").iterdir()) == sorted(ids)  # no temporary folders left


def _children(pid):
    """PIDs whose parent is ``pid`` (Linux /proc)."""
    out = []
    for stat in os.listdir("/proc"):
        if stat.isdigit():
            try:
                with open(f"/proc/{stat}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(stat))
    return out


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(sys.platform != "linux", reason="the kernel's parent-death signal is Linux only")
def test_killed_driver_leaves_no_worker_computing(tmp_path):
    """A SIGKILLed driver cannot shut its pool down: its workers must end too, not finish runs nobody stores."""
    path = write_sweep(tmp_path, grid={"width": [1, 2, 3, 4]}, params={"sleep": 60.0}, seeds=1)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "tangentlab", "run", str(path), "--out", str(tmp_path / "out")]
    proc = subprocess.Popen(
        [*command, "--workers", "2", "--no-progress"], cwd=tmp_path, env=env, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 60
    workers = []
    while len(workers) < 2:  # spawn: the pool's two workers plus a resource tracker
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.2)
        workers = [p for p in _children(proc.pid) if b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes()]
    time.sleep(2.0)  # let the workers get past their initializer and into a run
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 20
    while any(_alive(p) for p in workers):
        assert time.monotonic() < deadline, (
            f"workers {workers} still running 20 s after the driver was killed"
        )
        time.sleep(0.2)
