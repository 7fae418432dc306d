"""The example study a newcomer copies (examples/studies/minimal, CONTRIBUTING.md), end to end through the CLI:
run its quick config, list the results, write the report; its metric recomputed from the stored kernels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tangentlab import arch
from tests.studies._cli import ROOT, cli

EXAMPLE = ROOT / "examples" / "studies" / "minimal"


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("minimal")
    config = out / "quick.yaml"  # the example's config, shrunk: 3 widths x 2 seeds
    config.write_text(
        (EXAMPLE / "quick.yaml")
        .read_text()
        .replace("[64, 256, 1024, 4096]", "[64, 256, 1024]")
        .replace("seeds: 3", "seeds: 2")
    )
    done = cli(
        "run", str(config), "--out", str(out / "runs"), "--workers", "1", extra_paths=(EXAMPLE.parent,)
    )
    assert done.returncode == 0, done.stderr
    return out / "runs"


def test_the_example_is_a_package_with_a_report_module():
    assert {p.name for p in EXAMPLE.iterdir()} >= {"__init__.py", "report.py", "quick.yaml"}


def test_runs_store_the_metric_that_the_kernels_give(sweep: Path):
    listed = cli("results", str(sweep), "--format", "json", extra_paths=(EXAMPLE.parent,))
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert len(rows) == 6 and {r["status"] for r in rows} == {"done"}
    for row in rows:
        folder = sweep / "artifacts" / row["run_id"]
        finite, limit = np.load(folder / "ntk_empirical.npy"), np.load(folder / "ntk_limit.npy")
        want = np.linalg.norm(finite - limit) / np.linalg.norm(limit)
        assert row["metrics"]["relative_error"] == pytest.approx(want, rel=1e-12)
    # the stored limit is the arch kernel of the run's own description on its inputs (independent rebuild)
    row = rows[0]
    description = arch.from_dict(row["config"]["model"])
    from tangentlab.data import load

    data = row["config"]["data"]
    ds = load(
        data["name"], n_train=data["n_train"], n_test=data["n_test"], seed=data["seed"], **data["options"]
    )
    x = ds.x_train[: row["config"]["params"]["n_inputs"]].to(torch.float64)
    limit = np.load(sweep / "artifacts" / row["run_id"] / "ntk_limit.npy")
    np.testing.assert_allclose(description.kernel(x).ntk.numpy(), limit, rtol=1e-12)


def test_the_report_says_what_was_measured(sweep: Path):
    written = cli("report", str(sweep), extra_paths=(EXAMPLE.parent,))
    assert written.returncode == 0, written.stderr
    page = (sweep / "report" / "index.html").read_text()
    assert "Minimal example" in page and "Relative eNTK error ∝ width^" in page
    assert (sweep / "report" / "figures" / "minimal_error_vs_width.png").stat().st_size > 5_000


def test_a_field_the_example_does_not_read_is_a_config_error(tmp_path: Path):
    config = tmp_path / "bad.yaml"
    config.write_text((EXAMPLE / "quick.yaml").read_text() + "train: {steps: 3}\n")
    done = cli("run", str(config), "--out", str(tmp_path / "runs"), extra_paths=(EXAMPLE.parent,))
    assert done.returncode == 2
    assert "field 'train.steps'" in done.stderr and "does not read train" in done.stderr
