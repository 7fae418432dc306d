"""The equivalence study: complete finite metrics, kernel regressions equal to direct float64 solves, and its report."""

import math

import pytest
import torch

from tangentlab import arch, data, empirical_ntk
from tangentlab.runner.config import RunConfig
from tangentlab.studies import ResultRow
from tangentlab.studies.equivalence import METHODS, EquivalenceParams, EquivalenceStudy

DATA = {"name": "digits", "n_train": 30, "n_test": 20, "target": "onehot"}
WIDTH = 16


def _config(depth: int = 2, parametrization: str = "ntk", optimizer: str = "gd", seed: int = 0) -> RunConfig:
    return RunConfig(
        study="equivalence",
        data=DATA,
        train={"optimizer": optimizer, "steps": 30, "learning_rate": 1e-2},
        params=EquivalenceParams(depth=depth, width=WIDTH, parametrization=parametrization).model_dump(),
        seed=seed,
    )


@pytest.mark.parametrize("parametrization", ["ntk", "standard"])
@pytest.mark.parametrize("optimizer", ["gd", "adam"])
def test_run_returns_complete_finite_metrics(parametrization, optimizer):
    m = EquivalenceStudy().run(_config(parametrization=parametrization, optimizer=optimizer)).metrics
    assert m["status"] == "completed"
    for method in (*METHODS, "lin"):
        for kind in ("err", "mse"):
            value = m[f"test_{kind}_{method}"]
            assert isinstance(value, float) and math.isfinite(value), (method, kind, value)
        assert 0.0 <= m[f"test_err_{method}"] <= 1.0
    for method in ("ntk", "entk", "nngp", "lin"):
        assert m[f"solver_{method}"] in ("cholesky", "eigh")
        assert m[f"ridge_{method}"] == 0.0
        assert math.isfinite(m[f"cond_{method}"])


def _direct(k_xx: torch.Tensor, k_tx: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return k_tx @ torch.linalg.solve(k_xx, y)


@pytest.mark.parametrize("parametrization", ["ntk", "standard"])
def test_kernel_regression_equals_direct_solve(parametrization):
    """Rebuild the same net and kernels by hand (brute-force Jacobian eNTK), solve with torch.linalg.solve."""
    depth = 2
    m = EquivalenceStudy().run(_config(depth=depth, parametrization=parametrization)).metrics
    ds = data.load("digits", n_train=30, n_test=20, target="onehot", dtype=torch.float64)
    x, y, xt, yt = ds.x_train, ds.y_train, ds.x_test, ds.y_test
    s = math.sqrt(2.0)
    net = arch.serial(
        arch.Dense(WIDTH, sigma_w=s),
        arch.ReLU(),
        arch.Dense(WIDTH, sigma_w=s),
        arch.ReLU(),
        arch.Dense(10, sigma_w=s),
    )
    k_xx = net.kernel(x, parametrization=parametrization)
    k_tx = net.kernel(xt, x, parametrization=parametrization)
    model = net.build(ds.input_shape, parametrization=parametrization, seed=0, dtype=torch.float64)
    e_xx = empirical_ntk(model, x, outputs="trace", method="jacobian") / 10
    e_tx = empirical_ntk(model, xt, x, outputs="trace", method="jacobian") / 10
    for method, (kxx, ktx) in {
        "ntk": (k_xx.ntk, k_tx.ntk),
        "nngp": (k_xx.nngp, k_tx.nngp),
        "entk": (e_xx, e_tx),
    }.items():
        pred = _direct(kxx.double(), ktx.double(), y)
        mse = float((pred - yt).pow(2).sum()) / yt.shape[0]
        err = float((pred.argmax(1) != yt.argmax(1)).double().mean())
        assert m[f"test_mse_{method}"] == pytest.approx(mse, rel=1e-8), method
        assert m[f"test_err_{method}"] == pytest.approx(err, abs=1e-12), method


def test_report_writes_figure_table_and_gap(tmp_path):
    study = EquivalenceStudy()
    rows = []
    for depth in (1, 2, 3):
        for optimizer in ("gd", "adam"):
            config = _config(depth=depth, optimizer=optimizer)
            rows.append(ResultRow(config.run_id, config, "done", study.run(config).metrics))
    section = study.report(rows, tmp_path)
    assert section.figures and section.figures[0].exists() and section.figures[0].stat().st_size > 0
    table = section.tables[0]
    assert table.header[-2:] == ("1→2", "2→3")
    assert {row[2] for row in table.rows} >= {"trained net", "NTK regression (infinite)", "NNGP regression"}
    by_depth = {r.config.params["depth"]: r.metrics for r in rows if r.config.train.optimizer == "gd"}
    gap = sum(abs(m["test_err_nngp"] - m["test_err_ntk"]) for m in by_depth.values()) / len(by_depth)
    assert any(f"mean |err_NNGP − err_NTK| = {gap:.4f}" in f for f in section.findings), section.findings
    assert section.verdict in ("supported", "mixed", "not supported", "inconclusive")


def test_centered_net_starts_at_zero_with_the_same_entk():
    from tangentlab.studies.equivalence import Centered

    description = arch.serial(arch.Dense(WIDTH), arch.ReLU(), arch.Dense(3))
    net = description.build((5,), seed=1, dtype=torch.float64)
    x = torch.randn(7, 5, dtype=torch.float64)
    plain = empirical_ntk(net, x, outputs="full", method="jacobian")
    centered = Centered(net)
    assert torch.equal(centered(x), torch.zeros(7, 3, dtype=torch.float64))
    torch.testing.assert_close(empirical_ntk(centered, x, outputs="full", method="jacobian"), plain)
    with torch.no_grad():  # moving the trained copy moves the output; the frozen copy stays put
        next(net.parameters()).add_(0.1)
    assert centered(x).abs().max() > 1e-3
    assert all(not p.requires_grad for p in centered.initial.parameters())


def test_centering_makes_the_converged_linearization_equal_entk_regression():
    centered = EquivalenceStudy().run(_config()).metrics
    assert centered["centered"] is True
    assert centered["test_mse_lin"] == pytest.approx(centered["test_mse_entk"], rel=1e-9)
    raw = (
        EquivalenceStudy()
        .run(_config().model_copy(update={"params": {**_config().params, "center": False}}))
        .metrics
    )
    assert raw["test_mse_entk"] == pytest.approx(centered["test_mse_entk"], rel=1e-9)  # same kernel
    assert abs(raw["test_mse_lin"] - raw["test_mse_entk"]) > 1e-3  # the initial outputs stay in
