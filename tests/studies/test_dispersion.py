"""Tests of the ``dispersion`` study's numerics: batched per-net NTKs, dispersion statistics, the claims' trends."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tangentlab import arch, empirical_ntk
from tangentlab.runner.config import RunConfig
from tangentlab.studies import ResultRow, get_study
from tangentlab.studies.dispersion import seleznova_inputs
from tangentlab.studies.dispersion.control import closed_form_ratio, ratio_test
from tangentlab.studies.dispersion.kernels import (
    batched_dense_ntk,
    dispersion,
    gradient_gain,
    kernel_variants,
    sample_dense_ntk,
)
from tangentlab.studies.dispersion.report import beta_fit

RELU = arch.ReLU()


@pytest.mark.parametrize("parametrization", ["ntk", "standard"])
@pytest.mark.parametrize("act", [arch.ReLU(), arch.Tanh(), arch.Erf(), arch.Sigmoid()], ids=str)
def test_batched_ntk_matches_empirical_ntk(parametrization, act):
    sw, sb = 1.3, 0.4
    layers = [arch.Dense(7, sigma_w=sw, sigma_b=sb), act, arch.Dense(5, sigma_w=sw, sigma_b=sb), act]
    net = arch.serial(*layers, arch.Dense(1, sigma_w=sw, sigma_b=sb))
    model = net.build((4,), parametrization=parametrization, seed=3, dtype=torch.float64)
    lins = [m for m in model.modules() if hasattr(m, "weight_scale")]
    x = torch.randn(6, 4, dtype=torch.float64)
    parts = batched_dense_ntk(
        [m.weight.detach()[None] for m in lins],
        [m.bias.detach()[None] for m in lins],
        x,
        weight_scale=[m.weight_scale for m in lins],
        bias_scale=[m.bias_scale for m in lins],
        phi=act.phi,
        dphi=act.derivative,
    )
    mine = parts.weight([m.weight_scale for m in lins]) + lins[0].bias_scale ** 2 * parts.bias
    ref = empirical_ntk(model, x, outputs="trace")
    torch.testing.assert_close(mine[0], ref, rtol=1e-10, atol=1e-12)


def test_dispersion_known_answer():
    st = dispersion(np.array([1.0, 3.0]))
    assert st.mean == pytest.approx(2.0)
    assert st.ratio == pytest.approx(5 / 4)  # E[K^2] = (1 + 9) / 2 = 5, E[K]^2 = 4
    assert st.rel_std == pytest.approx(0.5)


def test_dispersion_lognormal():
    rng = np.random.default_rng(0)
    s = np.exp(0.5 * rng.standard_normal(400_000))
    st = dispersion(s)
    assert st.ratio == pytest.approx(math.exp(0.25), rel=5e-3)
    assert st.rel_std == pytest.approx(math.sqrt(math.exp(0.25) - 1), rel=1e-2)
    assert st.ratio == pytest.approx(1 + st.rel_std**2)


def test_gradient_gain_relu():
    assert gradient_gain(RELU.phi, RELU.derivative, 3.0, 0.0)[1] == pytest.approx(1.5, rel=1e-6)


def test_mean_matches_infinite_width_kernel():
    gen = torch.Generator().manual_seed(0)
    xs = seleznova_inputs(20, 1.0, gen)
    parts = sample_dense_ntk(
        [256] * 3,
        xs,
        n_nets=200,
        sigma_w2=2.0,
        sigma_b2=0.1,
        parametrization="ntk",
        phi=RELU.phi,
        dphi=RELU.derivative,
        generator=gen,
    )
    k = kernel_variants(parts, [20, 256, 256, 256], 2.0, 0.1)["ntk"].mean(0)
    net = arch.serial(
        *[arch.Dense(256, sigma_w=2**0.5, sigma_b=0.1**0.5), arch.ReLU()] * 3,
        arch.Dense(1, sigma_w=2**0.5, sigma_b=0.1**0.5),
    )
    torch.testing.assert_close(k, net.kernel(xs).ntk, rtol=0.05, atol=0.02)


def _diag(width, depth, sw2, n, kernel, seed):
    gen = torch.Generator().manual_seed(seed)
    xs = seleznova_inputs(100, 1.0, gen)[:1]
    parts = sample_dense_ntk(
        [width] * depth,
        xs,
        n_nets=n,
        sigma_w2=sw2,
        sigma_b2=0.0,
        parametrization="ntk",
        phi=RELU.phi,
        dphi=RELU.derivative,
        generator=gen,
    )
    return kernel_variants(parts, [100] + [width] * depth, sw2, 0.0)[kernel][:, 0, 0].numpy()


def test_hanin_nica_exponent():
    """ReLU, He init, NTK parametrization: log E[K^2]/E[K]^2 grows like 5 beta (band [3.5, 6])."""
    points = [(d / 32, _diag(32, d, 2.0, 4000, "ntk", 100 + d)) for d in (2, 4, 6, 8, 10)]
    slope, lo, hi, _, _ = beta_fit(points, n_boot=100)
    assert 3.5 <= slope <= 6.0, (slope, lo, hi)
    assert lo < slope < hi
    # the robust estimator Var[log K] measures the same growth (log-normal limit: both are Var[log K])
    v_slope, v_lo, v_hi, _, logs = beta_fit(points, n_boot=50, estimator="var_log")
    assert 3.5 <= v_slope <= 6.0 and v_lo < v_slope < v_hi, (v_slope, v_lo, v_hi)
    assert logs[0] == pytest.approx(float(np.var(np.log(points[0][1]), ddof=1)), rel=1e-12)


def test_phase_trend_standard_parametrization():
    """Seleznova & Kutyniok: dispersion grows with depth when chaotic, stays flat when ordered."""

    def log_ratio(sw2, d):
        return math.log(float(dispersion(_diag(32, d, sw2, 800, "standard", 7)).ratio))

    assert log_ratio(3.0, 12) - log_ratio(3.0, 2) > 0.5
    assert abs(log_ratio(1.0, 12) - log_ratio(1.0, 2)) < 0.05


@pytest.mark.parametrize("sw2", [2.0, 0.7])
def test_one_hidden_layer_ratio_is_one_plus_three_over_width(sw2):
    """The positive control's closed form E[K²]/E[K]² = 1 + 3/n (any σ_w) against a Monte Carlo of 40,000 nets
    (the study's batched NTK); the same test on a three-hidden-layer net says "no match"."""
    samples = _diag(16, 1, sw2, 40_000, "ntk", 3)
    test = ratio_test(samples, closed_form_ratio(16), n_boot=200)
    assert test["verdict"] == "match", test
    assert test["measured"] == pytest.approx(1 + 3 / 16, abs=0.01)
    deeper = ratio_test(_diag(16, 3, sw2, 4000, "ntk", 4), closed_form_ratio(16), n_boot=200)
    assert deeper["verdict"] == "no match" and deeper["ci"][0] > 1 + 3 / 16, deeper


def _stored_row(tmp_path, depth: int, seed: int, activation: str = "relu") -> ResultRow:
    """A real run (small) with its artifacts written as the store writes them."""
    config = RunConfig(
        study="dispersion",
        data={"name": "synthetic", "n_train": 8, "n_test": 4, "options": {"input_dim": 10}},
        train={"steps": 1},
        params={"width": 16, "depth": depth, "activation": activation, "n_inits": 3000, "input_dim": 10}
        | {"trainability": False},
        seed=seed,
    )
    out = get_study("dispersion").run(config)
    folder = tmp_path / config.run_id
    folder.mkdir()
    for name, arr in out.artifacts.items():
        np.save(folder / f"{name}.npy", arr)
    return ResultRow(config.run_id, config, "done", out.metrics, folder)


def test_positive_control_runs_and_the_report_says_match(tmp_path):
    """Depth-1 ReLU runs beside deeper ones: the report's control says "match", and the depth-1 runs stay out of
    the Hanin & Nica fit."""
    rows = [_stored_row(tmp_path, d, s) for d in (1, 2, 4) for s in (0, 1)]
    section = get_study("dispersion").report(rows, tmp_path / "figures")
    numbers = section.to_dict()["numbers"]
    control = numbers["positive_control"]
    assert control["verdict"] == "match", control
    assert control["measured"]["16"]["expected"] == pytest.approx(1 + 3 / 16)
    assert control["measured"]["16"]["inits"] == 6000
    assert section.findings[1].startswith("Positive control") and "→ match" in section.findings[1]
    assert numbers["hanin_nica"]["points"] == 2  # depths 2 and 4 only


def test_the_same_control_says_no_match_on_a_case_built_to_fail(tmp_path):
    """Depth-3 samples labelled as depth 1: the control's test must say "no match"."""
    rows = [_stored_row(tmp_path, 3, s) for s in (0, 1)]
    fake = [
        ResultRow(
            f"fake{r.run_id}",
            r.config.model_copy(update={"params": {**r.config.params, "depth": 1}}),
            "done",
            r.metrics,
            r.artifacts_dir,
        )
        for r in rows
    ]
    section = get_study("dispersion").report([*fake, _stored_row(tmp_path, 2, 0)], tmp_path / "figures")
    control = section.to_dict()["numbers"]["positive_control"]
    assert control["verdict"] == "no match"
    assert "the test is suspect" in section.findings[1]
