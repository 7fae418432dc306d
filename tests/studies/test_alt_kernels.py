"""The ``alt_kernels`` study: its decision rule on known numbers, and a small sweep through the CLI whose stored RBF
and Laplace test errors are recomputed with scikit-learn's KernelRidge on the same draw of the data."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.distance import cdist
from sklearn.kernel_ridge import KernelRidge

from tangentlab.data import load
from tangentlab.runner.config import RunConfig
from tangentlab.studies import ResultRow
from tangentlab.studies.alt_kernels import AltKernelsParams
from tangentlab.studies.alt_kernels.report import RIVAL_TOL, call, paired
from tests.studies._cli import cli


def _row(seed: int, ntk: float, alt: float) -> ResultRow[AltKernelsParams]:
    config = RunConfig(study="alt_kernels", data={"name": "digits", "n_val": 10}, seed=seed)
    metrics = {"test_mse_ntk_d1": ntk, "test_mse_rbf_validation": alt}
    return ResultRow(f"r{seed}", config, "done", metrics).typed(AltKernelsParams)  # type: ignore[arg-type]


def test_the_paired_rule_on_known_numbers():
    rows = [_row(s, 1.0, a) for s, a in enumerate((0.90, 0.92, 0.94))]
    mean, lo, hi, n = paired(rows, "rbf_validation", "ntk_d1")
    assert n == 3 and math.isclose(mean, -0.08, abs_tol=1e-12)
    half = 4.302652729911275 * 0.02 / math.sqrt(3)  # t(0.975, 2) * sd / sqrt(3)
    assert math.isclose(lo, -0.08 - half, rel_tol=1e-9) and math.isclose(hi, -0.08 + half, rel_tol=1e-9)
    assert call(lo, hi) == "rivals"
    assert call(RIVAL_TOL + 0.01, RIVAL_TOL + 0.2) == "worse"
    assert call(-0.1, RIVAL_TOL + 0.01) == "undecided"
    assert call(math.nan, math.nan) == "undecided"


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("alt_kernels")
    config = out / "alt_kernels.yaml"
    config.write_text(
        "study: alt_kernels\n"
        "data: {name: digits, n_train: 40, n_val: 20, n_test: 50, target: onehot}\n"
        "params: {depths: [1, 2], ridge: 0.001}\n"
        "seeds: 2\n"
    )
    done = cli("run", str(config), "--out", str(out / "runs"), "--workers", "1")
    assert done.returncode == 0, done.stderr
    return out / "runs"


def test_stored_rbf_and_laplace_errors_equal_kernel_ridge_on_the_same_draw(sweep: Path):
    rows = json.loads(cli("results", str(sweep), "--format", "json").stdout)
    assert len(rows) == 2
    for row in rows:
        seed = row["config"]["seed"]
        ds = load("digits", n_train=40, n_val=20, n_test=50, target="onehot", seed=seed)
        x, y, xt, yt = (t.numpy() for t in (ds.x_train, ds.y_train, ds.x_test, ds.y_test))
        med = float(np.median(cdist(x, x)[np.triu_indices(len(x), k=1)]))
        m = row["metrics"]
        rbf = KernelRidge(alpha=1e-3, kernel="rbf", gamma=1 / (2 * med**2)).fit(x, y).predict(xt)
        assert math.isclose(
            m["test_mse_rbf_median"], float(((rbf - yt) ** 2).sum(axis=1).mean()), rel_tol=1e-8
        )
        bw = m["bandwidth_laplace_validation"]
        lap = KernelRidge(alpha=1e-3, kernel="precomputed").fit(np.exp(-cdist(x, x) / bw), y)
        pred = lap.predict(np.exp(-cdist(xt, x) / bw))
        assert math.isclose(
            m["test_mse_laplace_validation"], float(((pred - yt) ** 2).sum(axis=1).mean()), rel_tol=1e-8
        )
        err = float(np.mean(pred.argmax(axis=1) != yt.argmax(axis=1)))
        assert math.isclose(m["test_err_laplace_validation"], err, abs_tol=1e-12)
        assert {"test_mse_ntk_d1", "test_mse_ntk_d2", "test_mse_nngp_d2"} <= set(m)


def test_the_report_writes_its_comparison_as_data(sweep: Path):
    assert cli("report", str(sweep)).returncode == 0
    findings = json.loads((sweep / "report" / "findings.json").read_text())
    studies = findings["studies"]
    section = studies["alt_kernels"] if isinstance(studies, dict) else studies[0]
    entry = section["numbers"]["datasets"]["digits"]
    assert entry["best_ntk_depth"] in (1, 2) and entry["relative_difference"]["seeds"] == 2
    assert entry["relative_difference"]["call"] in ("rivals", "worse", "undecided")
    assert section["verdict"] in ("supported", "mixed", "not supported")
    assert "alt_kernels_mse_vs_depth.png" in section["figures"]


def test_a_sweep_without_a_validation_split_is_refused(tmp_path: Path):
    config = tmp_path / "alt.yaml"
    config.write_text("study: alt_kernels\ndata: {name: digits, n_train: 20, n_test: 20}\nseeds: 1\n")
    done = cli("run", str(config), "--out", str(tmp_path / "runs"), "--workers", "1")
    listed = cli("results", str(tmp_path / "runs"), "--format", "json")
    assert "n_val" in (done.stderr + done.stdout + listed.stdout)
