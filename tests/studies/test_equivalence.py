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


def test_centered_reuses_the_frozen_output_only_for_the_same_unmodified_input():
    from tangentlab.studies.equivalence import Centered

    description = arch.serial(arch.Dense(WIDTH), arch.ReLU(), arch.Dense(3))
    net = description.build((5,), seed=2, dtype=torch.float64)
    centered = Centered(net)
    x = torch.randn(6, 5, dtype=torch.float64)
    calls = []
    centered.initial.register_forward_hook(lambda *_: calls.append(1))
    with torch.no_grad():
        next(net.parameters()).add_(0.2)
    first = centered(x)
    second = centered(x)
    assert len(calls) == 1  # the same tensor again: the frozen output is reused
    torch.testing.assert_close(second, net(x) - description.build((5,), seed=2, dtype=torch.float64)(x))
    assert torch.equal(first, second)
    x.mul_(2.0)  # modified in place: recomputed, and right for the new values
    torch.testing.assert_close(centered(x), net(x) - description.build((5,), seed=2, dtype=torch.float64)(x))
    assert len(calls) == 2
    y = x.clone()  # equal values, another tensor: recomputed
    centered(y)
    assert len(calls) == 3
    # an input that requires grad gets a fresh graph every call, and its input gradient is right
    z = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    (g1,) = torch.autograd.grad(centered(z).sum(), z)
    (g2,) = torch.autograd.grad(centered(z).sum(), z)
    torch.testing.assert_close(g1, g2)
    assert len(calls) == 5


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


def _synthetic_rows(net_delta: float, noise: float, seeds: int, net_follows: bool = False) -> list[ResultRow]:
    """Rows at depths 1..4: NTK regression's test MSE changes by 0.01, 0.03, 0.05 per added layer; the net's by
    ``net_delta`` a layer (plus the NTK's changes when ``net_follows``) plus seed noise ``noise``. NNGP errs as the
    NTK does."""
    import numpy as np

    rng = np.random.default_rng(0)
    rows = []
    for depth in (1, 2, 3, 4):
        for seed in range(seeds):
            config = _config(depth=depth, seed=seed)
            mse_ntk = 0.5 - 0.02 * depth + 0.01 * depth**2
            mse_net = (mse_ntk if net_follows else 0.5) + net_delta * depth + noise * rng.standard_normal()
            m = {
                "status": "completed",
                "test_mse_net": mse_net,
                "test_err_net": 0.2 + rng.integers(0, 3) / 100,
                "test_mse_ntk": mse_ntk,
                "test_err_ntk": 0.2,
                "test_mse_nngp": mse_ntk + 0.001,
                "test_mse_entk": mse_ntk + 0.0005 * rng.standard_normal(),
                "test_err_nngp": 0.205,
            }
            rows.append(ResultRow(config.run_id, config, "done", m))
    return rows


def test_claim_is_judged_on_mse_against_the_seed_noise_floor(tmp_path):
    study = EquivalenceStudy()
    # the net's MSE falls a layer while the NTK's rises, well above the noise: the changes differ -> supported
    differ = study.report(_synthetic_rows(net_delta=-0.03, noise=0.002, seeds=3), tmp_path / "a")
    assert differ.verdict == "supported", differ.findings[0]
    assert "do not match" in differ.findings[0] and "noise floor F = " in differ.findings[0]
    assert "3 of 3 differ from the NTK's change by more than 2 standard errors" in differ.findings[1]
    numbers = differ.to_dict()["numbers"]  # findings.json
    assert numbers["claim1"] == "differ" and numbers["seeds"] == 3 and numbers["calls"] == {"differ": 3}
    assert numbers["mismatch_mse"] == pytest.approx(0.06, abs=0.005)  # |-0.03 - (0.01, 0.03, 0.05)|
    assert f"M = mean |Δ_net − Δ_NTK| = {numbers['mismatch_mse']:.4g}" in differ.findings[0]
    # the positive control (eNTK regression = the NTK's changes + small seed noise) says "match"
    assert numbers["positive_control"]["claim1"] == "match"
    assert any(f.startswith("Positive control: ") and "changes match (" in f for f in differ.findings)
    # the same changes as the NTK's up to a seed noise larger than any layer's effect: indistinguishable
    noisy = study.report(
        _synthetic_rows(net_delta=0.0, noise=0.15, seeds=3, net_follows=True), tmp_path / "b"
    )
    assert noisy.verdict == "inconclusive", noisy.findings[0]
    assert "indistinguishable, no verdict" in noisy.findings[0]
    # the same changes as the NTK's with little noise: they match, NNGP ~ NTK -> mixed
    match = study.report(
        _synthetic_rows(net_delta=0.0005, noise=0.0001, seeds=3, net_follows=True), tmp_path / "c"
    )
    assert match.verdict == "mixed" and "match (" in match.findings[0], match.findings[0]
    # the NTK's changes plus seed noise well below a layer's effect: within the noise, and it could have told
    follow = study.report(
        _synthetic_rows(net_delta=0.0, noise=0.002, seeds=3, net_follows=True), tmp_path / "e"
    )
    assert follow.verdict == "mixed" and "match (" in follow.findings[0], follow.findings[0]
    # one seed: no noise floor, no verdict, and the report says why
    one = study.report(_synthetic_rows(net_delta=-0.03, noise=0.002, seeds=1), tmp_path / "d")
    assert one.verdict == "inconclusive"
    assert "fewer than 3 seeds" in one.findings[0] and "— fewer than 3" in one.findings[1]
