"""The scaling_arms study: its kernels and regressions against independent float64 references, its exponent fits on
synthetic power laws, its variants, and its report rules on tiny real rows and on rows built to pass or fail."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tangentlab import train
from tangentlab.runner.config import RunConfig
from tangentlab.studies import ResultRow
from tangentlab.studies.scaling import build_description, kernel_regression
from tangentlab.studies.scaling_arms import ScalingArmsParams, ScalingArmsStudy, resolved
from tangentlab.studies.scaling_arms.numerics import PointSpec, per_output_entk, run_point, snapshot_steps
from tangentlab.studies.scaling_arms.stats import decay_exponent, exponent, mean_interval, paired_exponents
from tests.kernels.reference import reference_ntk

DATA = {"name": "digits", "n_train": 48, "n_test": 16}
TRAIN = {"optimizer": "adam", "learning_rate": 1e-2, "steps": 8}
VARIANTS = {
    "base": {},
    "sgd": {"optimizer": "sgd", "learning_rate": 0.05, "batch_size": 8, "momentum": 0.9},
    "linear": {"model_kind": "linear", "control": True},
    "lazy": {"control": True, "parametrization": "ntk", "optimizer": "gd", "learning_rate": 1.0, "width": 64},
    "base_w": {"arm": "width"},
}


def _config(variant: str = "base", seed: int = 0, **params) -> RunConfig:
    p = {
        "variant": variant,
        "variants": VARIANTS,
        "n_values": (8, 16, 32),
        "widths": (8, 32),
        "n_width": 16,
        "test_size": 16,
        "width": 16,
        "depth": 1,
        "n_snapshots": 3,
        **params,
    }
    return RunConfig(
        study="scaling_arms", data=DATA, train=TRAIN, params=ScalingArmsParams(**p).model_dump(), seed=seed
    )


def _digits(n: int = 24, nt: int = 12):
    ds = RunConfig(study="scaling_arms", data={"name": "digits", "n_train": n, "n_test": nt}).data.load(
        shape="flat"
    )
    return ds


def _net(width: int = 12, seed: int = 0, parametrization: str = "standard"):
    return build_description("mlp", width, 1, 2, 10, 0.1).build(
        (64,), parametrization=parametrization, seed=seed, dtype=torch.float64
    )


def test_per_output_entk_equals_brute_force_jacobians():
    """trace eNTK / outputs against torch.func.jacrev Jacobians contracted by einsum, at init and after training."""
    ds = _digits()
    x1, x2 = ds.x_train[:10], ds.x_train[10:16]
    net = _net()
    torch.testing.assert_close(per_output_entk(net, x1, x2), reference_ntk(net, x1, x2, "trace") / 10)
    train.fit(net, ds.x_train, ds.y_train, optimizer="adam", learning_rate=0.05, steps=5)
    torch.testing.assert_close(per_output_entk(net, x1, x2), reference_ntk(net, x1, x2, "trace") / 10)


def test_kernel_regression_equals_a_direct_solve():
    """K_tX (K_XX + r I)^-1 Y by torch.linalg.solve, on the per-output eNTK of a net on digits (float64)."""
    ds = _digits()
    x, y, xt = ds.x_train, ds.y_train, ds.x_test
    k_all = per_output_entk(_net(), torch.cat([x, xt]), x)
    n = x.shape[0]
    for ridge in (1e-6, 1e-2):
        out, info = kernel_regression(k_all, n, y, ridge)
        r = ridge * float(torch.diagonal(k_all[:n]).mean())
        direct = k_all[n:] @ torch.linalg.solve(k_all[:n] + r * torch.eye(n, dtype=torch.float64), y)
        torch.testing.assert_close(out.reshape(direct.shape), direct, rtol=1e-7, atol=1e-9)
        assert info.solver in ("cholesky", "eigh")


def test_after_kernel_snapshot_equals_brute_force_regression_on_the_trained_net():
    """The stored after-kernel MSE at the last step = kernel regression (direct solve) with the jacrev eNTK of the
    same net trained again with the same deterministic settings; the step-0 snapshot = the eNTK at init."""
    ds = _digits(24, 12)
    spec = PointSpec("n24", 24, 12, 2, "mlp", "standard", 0.1, 1e-6, 12, snapshots=(0, 3, 6))
    fit_args = {"steps": 6, "learning_rate": 0.02, "optimizer": "adam", "eval_every": 6}
    m = run_point(spec, ds, fit_args, seed=3)
    assert m["mse_entkt_s0"] == pytest.approx(m["mse_entk0_n24"], rel=1e-12)
    assert m["mse_nett_s6"] == pytest.approx(m["mse_net_n24"], rel=1e-12)
    net = _net(12, seed=3)
    train.fit(net, ds.x_train, ds.y_train, **fit_args)
    x, xt = ds.x_train, ds.x_test
    k_xx = reference_ntk(net, x, x, "trace") / 10
    k_tx = reference_ntk(net, xt, x, "trace") / 10
    r = 1e-6 * float(torch.diagonal(k_xx).mean())
    pred = k_tx @ torch.linalg.solve(k_xx + r * torch.eye(24, dtype=torch.float64), ds.y_train)
    mse = float(((pred - ds.y_test) ** 2).sum(1).mean())
    assert m["mse_entkt_s6"] == pytest.approx(mse, rel=1e-6)
    assert 0 < m["kdist0_s6"] < 1 and m["kdistT_s6"] == pytest.approx(0.0, abs=1e-12)


def test_exponent_fits_recover_a_synthetic_power_law():
    """L = a x^-alpha exactly: the fit returns alpha; with per-seed noise the paired CI covers the true values."""
    x = np.array([16.0, 32, 64, 128, 256])
    assert decay_exponent(x, 3.0 * x**-0.7) == pytest.approx(0.7, abs=1e-12)
    rng = np.random.default_rng(1)
    xs, a, b, seeds = [], [], [], []
    for s in range(6):
        noise = np.exp(0.05 * rng.standard_normal(x.size))
        xs += list(x)
        a += list(2.0 * x**-0.7 * noise)
        b += list(1.5 * x**-0.3 * noise * np.exp(0.02 * rng.standard_normal(x.size)))
        seeds += [s] * x.size
    out = paired_exponents(np.array(xs), np.array(a), np.array(b), np.array(seeds))
    assert out is not None
    ia, ib, diff = out
    assert ia.lo <= 0.7 <= ia.hi and ib.lo <= 0.3 <= ib.hi and diff.lo <= 0.4 <= diff.hi
    assert diff.value == pytest.approx(ia.value - ib.value)
    assert diff.lo > 0.3  # clearly resolved
    single = exponent(np.array(xs), np.array(a), np.array(seeds))
    assert single is not None and single.value == pytest.approx(ia.value)
    iv = mean_interval(np.array([1.0, 2.0, 3.0]))
    assert iv is not None and iv.value == 2.0 and 1.0 <= iv.lo <= 2.0 <= iv.hi <= 3.0


def test_variants_override_training_and_model_and_bad_ones_name_the_field():
    v, p, tc = resolved(
        ScalingArmsParams.model_validate(_config("sgd").params),
        RunConfig(study="scaling_arms", data=DATA, train=TRAIN).train,
    )
    assert (tc.optimizer, tc.learning_rate, tc.batch_size, tc.momentum, tc.steps) == ("sgd", 0.05, 8, 0.9, 8)
    assert v.arm == "data" and p.width == 16
    _, p, tc = resolved(
        ScalingArmsParams.model_validate(_config("lazy").params),
        RunConfig(study="scaling_arms", data=DATA, train=TRAIN).train,
    )
    assert (p.parametrization, p.width, tc.optimizer) == ("ntk", 64, "gd")
    with pytest.raises(ValueError, match="variant: 'nope' is not a key of variants"):
        ScalingArmsParams(variant="nope")
    with pytest.raises(ValueError, match="n_snapshots"):
        ScalingArmsParams(n_snapshots=1)
    assert snapshot_steps(300, 5) == (0, 75, 150, 225, 300) and snapshot_steps(7, 0) == ()


@pytest.mark.parametrize("variant", ["base", "sgd", "linear", "base_w"])
def test_run_returns_finite_metrics_for_every_point(variant):
    m = ScalingArmsStudy().run(_config(variant)).metrics
    assert m["status"] == "completed" and m["points_skipped"] == 0
    tags = ["w8", "w32"] if variant == "base_w" else ["n8", "n16", "n32"]
    methods = ["net", "entk0", "ntk"] + (["lin"] if variant == "base_w" else [])
    for tag in tags:
        for method in methods:
            v = m[f"mse_{method}_{tag}"]
            assert isinstance(v, float) and math.isfinite(v) and v > 0, (method, tag, v)
        assert m[f"kdist_{tag}"] >= 0
    if variant in ("base", "sgd"):
        assert m["snapshot_n"] == 32
        for step in (0, 4, 8):
            assert math.isfinite(m[f"mse_entkt_s{step}"]) and math.isfinite(m[f"kdist0_s{step}"])
    if variant == "linear":
        assert m["snapshot_n"] is None and m["kdist_n32"] == pytest.approx(0.0, abs=1e-12)
    big = ScalingArmsStudy().run(_config(n_values=(16, 64))).metrics  # 64 > the pool of 48
    assert big["points_skipped"] == 1 and "mse_net_n64" not in big and math.isfinite(big["mse_net_n16"])


def _rows(variants, seeds=(0, 1, 2)):
    study = ScalingArmsStudy()
    rows = []
    for v in variants:
        for s in seeds:
            c = _config(v, seed=s)
            rows.append(ResultRow(run_id=c.run_id, config=c, status="done", metrics=study.run(c).metrics))
    return rows


def test_report_on_tiny_real_rows_writes_three_figures_and_findings(tmp_path):
    section = ScalingArmsStudy().report(_rows(["base", "linear", "base_w"]), tmp_path)
    assert section.verdict in ("supported", "not supported", "mixed", "inconclusive")
    assert len(section.figures) == 3 and all(f.stat().st_size > 10_000 for f in section.figures)
    numbers = section.to_dict()["numbers"]
    assert numbers["seeds"] == 3 and not numbers["fewer_than_3_seeds"]
    base = numbers["arms"]["robustness"]["groups"]["digits/base"]
    assert base["fit_range_n"] == [8, 32] and base["decades"] == pytest.approx(math.log10(4))
    assert numbers["positive_control"]["robustness"]["verdict"] == "match"  # the linear model is its own eNTK
    assert "digits/base" in numbers["arms"]["evolution"]["groups"]
    assert numbers["arms"]["width"]["groups"]["digits/base_w"]["fit_range_width"] == [8, 32]
    assert any(f.startswith("Positive control (b) robustness") for f in section.findings)


def _synthetic(variant: str, seed: int, values: dict[str, float]) -> ResultRow:
    c = _config(variant, seed=seed)
    return ResultRow(
        run_id=f"{variant}-{seed}", config=c, status="done", metrics={"status": "completed", **values}
    )


def test_robustness_rule_on_rows_built_to_pass_and_to_fail(tmp_path):
    """net n^-0.6 vs eNTK n^-0.3 under every variant: supported; reversed: not supported; the linear control whose
    net and eNTK agree: match, and one built to disagree: no match."""
    rng = np.random.default_rng(0)

    def rows(a_net, a_k, variants):
        out = []
        for v in variants:
            for s in range(4):
                noise = {n: float(np.exp(0.02 * rng.standard_normal())) for n in (8, 16, 32)}
                vals = {f"mse_net_n{n}": n**-a_net * noise[n] for n in (8, 16, 32)}
                vals |= {f"mse_entk0_n{n}": n**-a_k * noise[n] for n in (8, 16, 32)}
                out.append(_synthetic(v, s, vals))
        return out

    good = ScalingArmsStudy().report(rows(0.6, 0.3, ["base", "sgd"]) + rows(0.5, 0.5, ["linear"]), tmp_path)
    assert good.to_dict()["numbers"]["arms"]["robustness"]["verdict"] == "supported"
    assert good.to_dict()["numbers"]["positive_control"]["robustness"]["verdict"] == "match"
    bad = ScalingArmsStudy().report(rows(0.3, 0.6, ["base", "sgd"]) + rows(0.8, 0.2, ["linear"]), tmp_path)
    assert bad.to_dict()["numbers"]["arms"]["robustness"]["verdict"] == "not supported"
    assert bad.to_dict()["numbers"]["positive_control"]["robustness"]["verdict"] == "no match"


def test_evolution_rule_reads_the_late_share_of_the_after_kernel_gain(tmp_path):
    """Snapshots at steps 0, 4, 8: L_K = 1, 0.5, 0.25 gives a late share of 1/2 (supported); 1, 0.25, 0.25 gives 0
    (not supported)."""

    def rows(curve):
        out = []
        for s in range(3):
            vals = {"snapshot_n": 32, **{f"mse_net_n{n}": 1.0 / n for n in (8, 16, 32)}}
            vals |= {f"mse_entk0_n{n}": 1.0 / n for n in (8, 16, 32)}
            for step, lk in zip((0, 4, 8), curve, strict=True):
                vals |= {
                    f"mse_entkt_s{step}": lk * (1 + 0.01 * s),
                    f"mse_nett_s{step}": 0.2,
                    f"kdist0_s{step}": 0.1,
                }
            out.append(_synthetic("base", s, vals))
        return out

    up = ScalingArmsStudy().report(rows((1.0, 0.5, 0.25)), tmp_path).to_dict()["numbers"]["arms"]["evolution"]
    assert up["verdict"] == "supported"
    assert up["groups"]["digits/base"]["late_share"]["value"] == pytest.approx(0.5, abs=1e-6)
    flat = (
        ScalingArmsStudy().report(rows((1.0, 0.25, 0.25)), tmp_path).to_dict()["numbers"]["arms"]["evolution"]
    )
    assert flat["verdict"] == "not supported"
    assert flat["groups"]["digits/base"]["late_share"]["value"] == pytest.approx(0.0, abs=1e-6)
