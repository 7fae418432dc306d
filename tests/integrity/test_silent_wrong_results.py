"""Issue 15, items 1-3 and 14, through the real CLI: no stale, blown-up or pooled result reaches a report."""

from __future__ import annotations

import csv
import io
import json
import re
import textwrap
from pathlib import Path

import numpy as np
import yaml

from tests.integrity.conftest import TOY, tangentlab

USER_STUDY = """
from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from tangentlab.report import StudySection
from tangentlab.studies import RunOutput, Study


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MeanStudy(Study):
    name: ClassVar[str] = "mean"
    title: ClassVar[str] = "Mean of the training targets"
    citation: ClassVar[str] = "-"
    claim: ClassVar[str] = "-"
    Params: ClassVar[type[BaseModel]] = Params

    def run(self, config, *, device="cpu"):
        ds = config.data.load()
        return RunOutput({"mean_y": SCALE * float(ds.y_train.mean())})

    def report(self, rows, figures_dir: Path) -> StudySection:
        return StudySection(self.name, self.title, self.citation, self.claim, "inconclusive", ())


SCALE = 1.0
"""


def _write_npz(path: Path, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    arrays = {
        "x_train": rng.standard_normal((20, 3)),
        "y_train": rng.standard_normal(20),
        "x_test": rng.standard_normal((5, 3)),
        "y_test": rng.standard_normal(5),
    }
    np.savez(path, **arrays)
    return arrays["y_train"]


def _metric(out: Path, cwd: Path, env: dict[str, str], name: str) -> list[float]:
    result = tangentlab("results", str(out), "--format", "json", cwd=cwd, env=env)
    assert result.returncode == 0, result.stderr
    return [r["metrics"][name] for r in json.loads(result.stdout)]


def test_edited_npz_or_study_code_is_recomputed_not_served_stale(tmp_path, env):
    """Item 1: the run id covers the npz file's contents and the user study's source."""
    (tmp_path / "userstudy.py").write_text(USER_STUDY)
    data = tmp_path / "data.npz"
    y = _write_npz(data, seed=0)
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(
        yaml.safe_dump(
            {"study": "userstudy:MeanStudy", "data": {"name": f"npz:{data}", "n_train": 20, "n_test": 5}}
        )
    )
    out = tmp_path / "out"
    first = tangentlab("run", str(sweep), "--out", str(out), "--no-progress", cwd=tmp_path, env=env)
    assert first.returncode == 0, first.stderr
    assert np.isclose(_metric(out, tmp_path, env, "mean_y")[0], y.mean())

    y2 = _write_npz(data, seed=1)  # same shapes, new contents
    second = tangentlab("run", str(sweep), "--out", str(out), "--no-progress", cwd=tmp_path, env=env)
    assert second.returncode == 0 and "0 already finished, 1 done now" in second.stdout, second.stdout
    assert sorted(_metric(out, tmp_path, env, "mean_y")) == sorted([y.mean(), y2.mean()])
    config = json.loads(tangentlab("results", str(out), "--format", "json", cwd=tmp_path, env=env).stdout)[
        -1
    ]["config"]
    assert set(config["inputs"]) == {"data", "study"} and len(config["inputs"]["data"]) == 64  # sha256 stored

    same = tangentlab("run", str(sweep), "--out", str(out), "--no-progress", cwd=tmp_path, env=env)
    assert "1 already finished, 0 done now" in same.stdout  # unchanged inputs: still skipped

    source = tmp_path / "userstudy.py"
    source.write_text(source.read_text().replace("SCALE = 1.0", "SCALE = 2.0"))
    edited = tangentlab("run", str(sweep), "--out", str(out), "--no-progress", cwd=tmp_path, env=env)
    assert "0 already finished, 1 done now" in edited.stdout, edited.stdout
    values = _metric(out, tmp_path, env, "mean_y")
    assert len(values) == 3 and any(np.isclose(v, 2 * y2.mean()) for v in values)


def test_blown_up_lazy_run_is_diverged_named_in_report_and_one_status_column(tmp_path, env):
    """Items 2 and 14: lr_fraction 2.1 (above 2/lambda_max) ends ``diverged``; the report names it; the results
    table has one status column."""
    sweep = tmp_path / "lazy.yaml"
    sweep.write_text(
        textwrap.dedent(
            """
            study: lazy
            data: {name: synthetic, n_train: 16, n_test: 16, target: scalar, options: {input_dim: 4}}
            train: {optimizer: gd, steps: 80}
            params: {width: 64, probe_size: 8, eval_every: 10}
            grid: {lr_fraction: [0.5, 2.1]}
            seeds: 1
            """
        )
    )
    out = tmp_path / "out"
    run = tangentlab("run", str(sweep), "--out", str(out), "--no-progress", cwd=tmp_path, env=env)
    assert run.returncode == 0, run.stderr
    table = list(
        csv.reader(
            io.StringIO(tangentlab("results", str(out), "--format", "csv", cwd=tmp_path, env=env).stdout)
        )
    )
    header, rows = table[0], table[1:]
    assert header.count("status") == 1
    by_lr = {row[header.index("params.lr_fraction")]: row[header.index("status")] for row in rows}
    assert by_lr == {"0.5": "done", "2.1": "diverged"}
    records = json.loads(tangentlab("results", str(out), "--format", "json", cwd=tmp_path, env=env).stdout)
    bad = next(r for r in records if r["config"]["params"]["lr_fraction"] == 2.1)
    assert "exceeded 1000 x the initial loss" in bad["metrics"]["message"]
    # metrics kept: the finite ones are recorded (the training stopped early, so the final-step kernel is not)
    kept = bad["metrics"]
    assert kept["rel_param_change"] is not None and kept["rel_param_change"] > 0
    assert kept["test_mse_net"] is not None and kept["train_loss_net"] is not None

    report = tangentlab("report", str(out), cwd=tmp_path, env=env)
    assert report.returncode == 0, report.stderr
    page = (out / "report" / "index.html").read_text()
    assert "diverged (kept out of fits)" in page and bad["run_id"] in page


def test_report_uses_the_last_config_revision_unless_all(tmp_path, env):
    """Item 3: an edited sweep run into the same folder is not pooled with the old one."""
    base = {"study": TOY, "data": {"name": "synthetic", "n_train": 8, "n_test": 8}, "seeds": 1}
    old, new = tmp_path / "old.yaml", tmp_path / "new.yaml"
    old.write_text(yaml.safe_dump({**base, "grid": {"width": [2, 3]}}))
    new.write_text(yaml.safe_dump({**base, "grid": {"width": [4]}}))
    out = tmp_path / "out"
    for config in (old, new):
        assert (
            tangentlab(
                "run", str(config), "--out", str(out), "--no-progress", cwd=tmp_path, env=env
            ).returncode
            == 0
        )
    records = json.loads(tangentlab("results", str(out), "--format", "json", cwd=tmp_path, env=env).stdout)
    old_ids = [r["run_id"] for r in records if r["config"]["params"]["width"] != 4]

    report = tangentlab("report", str(out), cwd=tmp_path, env=env)
    assert report.returncode == 0, report.stderr
    assert "other config revisions, not used: 2 run(s)" in report.stderr
    page = (out / "report" / "index.html").read_text()
    assert all(run_id in page for run_id in old_ids)
    assert page.count("<tr><td>4</td>") == 1 and "<tr><td>2</td>" not in page  # the toy table: width 4 only

    pooled = tangentlab("report", str(out), "--all", cwd=tmp_path, env=env)
    assert pooled.returncode == 0 and "other config revisions" not in pooled.stderr
    page = (out / "report" / "index.html").read_text()
    assert "<tr><td>2</td>" in page and "<tr><td>3</td>" in page and "<tr><td>4</td>" in page


def test_report_study_filter_pools_one_study_only(tmp_path, env):
    """A study swept by two files into one folder (full/scaling + full/scaling_cnn): ``--study S --all`` pools
    that study's revisions and leaves every other study out, instead of pooling the whole folder."""
    (tmp_path / "userstudy.py").write_text(USER_STUDY)
    base = {"study": TOY, "data": {"name": "synthetic", "n_train": 8, "n_test": 8}, "seeds": 1}
    sweeps = {
        "a.yaml": {**base, "grid": {"width": [2]}},
        "b.yaml": {**base, "grid": {"width": [3]}},
        "mean.yaml": {
            "study": "userstudy:MeanStudy",
            "data": {"name": "synthetic", "n_train": 8, "n_test": 8},
        },
    }
    out = tmp_path / "out"
    for name, sweep in sweeps.items():
        (tmp_path / name).write_text(yaml.safe_dump(sweep))
        ran = tangentlab("run", name, "--out", str(out), "--no-progress", cwd=tmp_path, env=env)
        assert ran.returncode == 0, ran.stderr

    both = tangentlab("report", str(out), "--study", "toy", "--all", cwd=tmp_path, env=env)
    assert both.returncode == 0, both.stderr
    page = (out / "report" / "index.html").read_text()
    assert "<tr><td>2</td>" in page and "<tr><td>3</td>" in page  # both toy sweep files
    assert "Mean of the training targets" not in page  # the other study is left out
    assert "--study toy" in page  # the command that regenerates it

    last = tangentlab("report", str(out), "--study", "toy", cwd=tmp_path, env=env)
    assert last.returncode == 0 and "other config revisions, not used: 1 run(s)" in last.stderr
    page = (out / "report" / "index.html").read_text()
    assert "<tr><td>3</td>" in page and "<tr><td>2</td>" not in page

    unknown = tangentlab("report", str(out), "--study", "lazy", cwd=tmp_path, env=env)
    assert unknown.returncode == 2
    assert "--study: lazy has no runs" in unknown.stderr and "mean, toy" in unknown.stderr


def test_report_stderr_names_at_most_ten_unused_runs(tmp_path, env):
    """A folder with hundreds of superseded runs (full/dispersion: 336) gets a one-line note, not 336 ids."""
    base = {"study": TOY, "data": {"name": "synthetic", "n_train": 8, "n_test": 8}, "seeds": 1}
    old, new = tmp_path / "old.yaml", tmp_path / "new.yaml"
    old.write_text(yaml.safe_dump({**base, "grid": {"width": list(range(2, 14))}}))
    new.write_text(yaml.safe_dump({**base, "grid": {"width": [20]}}))
    out = tmp_path / "out"
    for config in (old, new):
        ran = tangentlab("run", str(config), "--out", str(out), "--no-progress", cwd=tmp_path, env=env)
        assert ran.returncode == 0, ran.stderr
    report = tangentlab("report", str(out), cwd=tmp_path, env=env)
    assert report.returncode == 0, report.stderr
    line = next(x for x in report.stderr.splitlines() if "other config revisions" in x)
    assert "12 run(s)" in line and "(2 more; all in the report's header)" in line
    assert len(re.findall(r"\b[0-9a-f]{16}\b", line)) == 10
    records = json.loads(tangentlab("results", str(out), "--format", "json", cwd=tmp_path, env=env).stdout)
    page = (out / "report" / "index.html").read_text()
    old_ids = [r["run_id"] for r in records if r["config"]["params"]["width"] != 20]
    assert len(old_ids) == 12 and all(run_id in page for run_id in old_ids)
