"""Issue 15, items 7-10, through the real CLI: read-only folders, deleted artifacts, misbehaving user studies and
the memory an npz dataset costs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.integrity.conftest import TOY, command, tangentlab


def _toy_sweep(tmp_path: Path) -> Path:
    path = tmp_path / "sweep.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "study": TOY,
                "data": {"name": "synthetic", "n_train": 8, "n_test": 8},
                "grid": {"width": [2, 3]},
                "seeds": 2,
            }
        )
    )
    return path


def _strict_json(text: str) -> object:
    def refuse(token: str) -> None:
        raise ValueError(f"not valid JSON: {token}")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.skipif(sys.platform != "linux", reason="drops privileges with setpriv when run as root")
def test_results_and_report_work_on_a_read_only_copy_of_the_database_alone(tmp_path, env):
    """Item 7: the WAL is checkpointed at the end of a sweep (the .sqlite file alone is complete), and a folder
    nobody may write to is read with SQLite's read-only/immutable URI."""
    out = tmp_path / "out"
    assert (
        tangentlab(
            "run", str(_toy_sweep(tmp_path)), "--out", str(out), "--no-progress", cwd=tmp_path, env=env
        ).returncode
        == 0
    )
    wal = out / "results.sqlite-wal"
    assert not wal.exists() or wal.stat().st_size == 0

    archive = Path(tempfile.mkdtemp(prefix="tangentlab-ro-", dir="/tmp"))
    report_dir = Path(tempfile.mkdtemp(prefix="tangentlab-report-", dir="/tmp"))
    try:
        shutil.copy(out / "results.sqlite", archive / "results.sqlite")  # the database file only
        shutil.copytree(out / "artifacts", archive / "artifacts")
        for path in [archive, *archive.rglob("*")]:
            path.chmod(0o555 if path.is_dir() else 0o444)
        report_dir.chmod(0o777)
        as_other = (
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if os.geteuid() == 0 else []
        )
        other_env = {**env, "HOME": str(report_dir), "MPLCONFIGDIR": str(report_dir / "mpl")}

        def run_as_reader(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run(
                [*as_other, *command(*args)],
                cwd=report_dir,
                env=other_env,
                capture_output=True,
                text=True,
                timeout=300,
            )

        table = run_as_reader("results", str(archive), "--format", "json")
        assert table.returncode == 0, table.stderr
        assert [r["status"] for r in _strict_json(table.stdout)] == ["done"] * 4  # type: ignore[union-attr]
        report = run_as_reader("report", str(archive), "--out", str(report_dir / "r"))
        assert report.returncode == 0, report.stderr
        assert (report_dir / "r" / "report" / "index.html").is_file()
        assert sorted(p.name for p in archive.iterdir()) == ["artifacts", "results.sqlite"]  # nothing written
    finally:
        for path in [archive, *archive.rglob("*")]:
            path.chmod(0o755)
        shutil.rmtree(archive)
        shutil.rmtree(report_dir)


def test_deleted_artifacts_are_named_by_report_and_recomputed_by_run(tmp_path, env):
    """Item 8."""
    sweep, out = _toy_sweep(tmp_path), tmp_path / "out"
    assert (
        tangentlab("run", str(sweep), "--out", str(out), "--no-progress", cwd=tmp_path, env=env).returncode
        == 0
    )
    victim = sorted((out / "artifacts").iterdir())[0]
    shutil.rmtree(victim)
    report = tangentlab("report", str(out), cwd=tmp_path, env=env)
    assert report.returncode == 0, report.stderr
    assert f"artifacts missing, left out: 1 run(s): {victim.name}" in report.stderr
    assert victim.name in (out / "report" / "index.html").read_text()
    rerun = tangentlab("run", str(sweep), "--out", str(out), "--no-progress", cwd=tmp_path, env=env)
    assert rerun.returncode == 0 and "3 already finished, 1 done now" in rerun.stdout, rerun.stdout
    assert (victim / "weights.npy").is_file()


BAD_STUDY = """
import math
import sys
from pathlib import Path
from typing import ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict

from tangentlab.report import StudySection
from tangentlab.studies import RunOutput, Study


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    mode: str = "ok"


class BadStudy(Study):
    name: ClassVar[str] = "bad"
    title: ClassVar[str] = "Misbehaving user study"
    citation: ClassVar[str] = "-"
    claim: ClassVar[str] = "-"
    Params: ClassVar[type[BaseModel]] = Params

    def run(self, config, *, device="cpu"):
        mode = config.params["mode"]
        if mode == "numpy":
            return RunOutput({"value": np.float32(1.5), "count": np.int64(3)})
        if mode == "dotdot":
            return RunOutput({"value": 1.0}, {"../x": np.zeros(2)})
        if mode == "object":
            return RunOutput({"value": 1.0}, {"obj": np.array([{"a": 1}], dtype=object)})
        if mode == "array_metric":
            return RunOutput({"value": np.zeros(3)})
        if mode == "sysexit":
            sys.exit(3)
        if mode == "kbint":
            raise KeyboardInterrupt
        if mode == "nan":
            return RunOutput({"value": math.nan, "big": math.inf})
        return RunOutput({"value": 1.0})

    def report(self, rows, figures_dir: Path) -> StudySection:
        return StudySection(self.name, self.title, self.citation, self.claim, "inconclusive", ())
"""

REASONS = {
    "dotdot": "artifact '../x': expected a plain file name",
    "object": "artifact 'obj': object arrays cannot be stored",
    "array_metric": "metric 'value': expected a number, string, bool or None, got ndarray",
    "sysexit": "the study raised SystemExit(3) inside run",
    "kbint": "the study raised KeyboardInterrupt() inside run",
}


@pytest.mark.parametrize("workers", ["1", "2"])
def test_misbehaving_user_study_fails_only_its_runs_with_one_line_reasons(tmp_path, env, workers):
    """Item 9: in the driver (workers 1) and in a pool (workers 2)."""
    (tmp_path / "badstudy.py").write_text(BAD_STUDY)
    modes = ["ok", "numpy", "dotdot", "object", "array_metric", "sysexit", "kbint", "nan"]
    sweep = tmp_path / "bad.yaml"
    sweep.write_text(
        yaml.safe_dump(
            {
                "study": "badstudy:BadStudy",
                "data": {"name": "synthetic", "n_train": 4, "n_test": 4},
                "grid": {"mode": modes},
            }
        )
    )
    out = tmp_path / "out"
    run = tangentlab(
        "run",
        str(sweep),
        "--out",
        str(out),
        "--workers",
        workers,
        "--no-progress",
        cwd=tmp_path,
        env=env,
        timeout=300,
    )
    assert run.returncode == 1, run.stderr
    assert "3 done now, 5 failed now" in run.stdout, run.stdout
    results = tangentlab("results", str(out), "--format", "json", cwd=tmp_path, env=env)
    records = {r["config"]["params"]["mode"]: r for r in _strict_json(results.stdout)}  # type: ignore[union-attr]
    assert {m: r["status"] for m, r in records.items()} == {
        m: ("done" if m in ("ok", "numpy", "nan") else "failed") for m in modes
    }
    assert records["numpy"]["metrics"] == {"value": 1.5, "count": 3}
    assert records["nan"]["metrics"] == {"value": None, "big": None}
    for mode, reason in REASONS.items():
        assert records[mode]["error"].splitlines()[0].startswith(reason), records[mode]["error"]
    assert not list((out / "artifacts").glob("*/x.npy")) and not (out / "x.npy").exists()


def test_npz_rows_are_read_not_the_whole_file(tmp_path, env):
    """Item 10: a run on a 60,000 x 784 float32 npz (188 MB) with n_train 100 costs well under the file's size
    (before: the whole file read, then converted to float64: +560 MB)."""
    (tmp_path / "userstudy.py").write_text(
        textwrap.dedent(
            """
            from pathlib import Path
            from typing import ClassVar
            from pydantic import BaseModel, ConfigDict
            from tangentlab.report import StudySection
            from tangentlab.studies import RunOutput, Study

            class Params(BaseModel):
                model_config = ConfigDict(extra="forbid", frozen=True)

            class Shape(Study):
                name: ClassVar[str] = "shape"
                title: ClassVar[str] = "-"
                citation: ClassVar[str] = "-"
                claim: ClassVar[str] = "-"
                Params: ClassVar[type[BaseModel]] = Params

                def run(self, config, *, device="cpu"):
                    ds = config.data.load()
                    return RunOutput({"n": int(ds.x_train.shape[0]), "x_sum": float(ds.x_train.sum())})

                def report(self, rows, figures_dir: Path) -> StudySection:
                    return StudySection(self.name, "-", "-", "-", "inconclusive", ())
            """
        )
    )
    peaks = {}
    for rows in (200, 60_000):
        rng = np.random.default_rng(0)
        data = tmp_path / f"data{rows}.npz"
        np.savez(
            data,
            x_train=rng.standard_normal((rows, 784), dtype=np.float32),
            y_train=rng.integers(0, 10, rows),
            x_test=rng.standard_normal((100, 784), dtype=np.float32),
            y_test=rng.integers(0, 10, 100),
        )
        sweep = tmp_path / f"s{rows}.yaml"
        sweep.write_text(
            yaml.safe_dump(
                {"study": "userstudy:Shape", "data": {"name": f"npz:{data}", "n_train": 100, "n_test": 50}}
            )
        )
        # a fresh parent whose only child is the CLI, so RUSAGE_CHILDREN's peak is that run's
        probe = (
            "import resource, subprocess, sys; "
            f"r = subprocess.run({command('run', str(sweep), '--out', str(tmp_path / f'out{rows}'), '--no-progress')!r}); "
            "print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
        )
        done = subprocess.run(
            [sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
        )
        code, peak = done.stdout.split()[-2:]
        assert done.returncode == 0 and code == "0", done.stdout + done.stderr
        peaks[rows] = int(peak) / 1024  # MiB
        records = json.loads(
            tangentlab(
                "results", str(tmp_path / f"out{rows}"), "--format", "json", cwd=tmp_path, env=env
            ).stdout
        )
        assert records[0]["metrics"]["n"] == 100
        data.unlink()
    assert peaks[60_000] - peaks[200] < 60, peaks  # the file is 188 MB; its float64 copy would be 376 MB
