"""The uncertainty study: shifts and probability maps against references, run() metrics against an independent
NTK-GP computation, and the report's verdict on hand-made rows."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tangentlab import arch
from tangentlab.runner.config import RunConfig
from tangentlab.studies import ResultRow
from tangentlab.studies.lazy import set_hidden_width
from tangentlab.studies.uncertainty import METHODS, UncertaintyStudy
from tangentlab.studies.uncertainty import methods as um
from tangentlab.studies.uncertainty.report import judge

DT = torch.float64


def test_shifts_match_torch_references() -> None:
    x = torch.randn(5, 16, dtype=DT, generator=torch.Generator().manual_seed(0))
    rotated = um.shifted_inputs("rotate", x, 90.0, 0).reshape(5, 4, 4)
    # a quarter turn on the pixel-centre grid is an exact permutation of pixels
    img = x.reshape(5, 4, 4)
    assert any(torch.allclose(rotated, torch.rot90(img, k, dims=(1, 2)), atol=1e-12) for k in (1, 3))
    torch.testing.assert_close(um.shifted_inputs("rotate", x, 0.0, 0), x, atol=1e-12, rtol=0)
    torch.testing.assert_close(um.shifted_inputs("roll", x, 3.0, 0), torch.roll(x, 3, dims=-1))
    noisy = um.shifted_inputs("noise", x, 0.5, 7)
    torch.testing.assert_close(noisy, um.shifted_inputs("noise", x, 0.5, 7))
    assert float((noisy - x).std()) == pytest.approx(0.5, rel=0.25)
    with pytest.raises(ValueError, match="square images"):
        um.shifted_inputs("rotate", torch.zeros(2, 10, dtype=DT), 45.0, 0)
    with pytest.raises(ValueError, match=r"params\.shift"):
        um.shifted_inputs("blur", x, 1.0, 0)


def test_probabilities_probit_against_monte_carlo_and_ensemble_average() -> None:
    g = torch.Generator().manual_seed(1)
    mean = torch.randn(6, 3, dtype=DT, generator=g)
    var = torch.rand(6, 1, dtype=DT, generator=g).expand(6, 3) * 2
    pred = um.Predictive(mean, var)
    probs = um.probabilities(pred, 0.7)
    eps = torch.randn(200_000, 1, 3, dtype=DT, generator=g)
    mc = torch.softmax((mean + var.sqrt() * eps) / 0.7, -1).mean(0)
    # the probit approximation of E softmax is close, not exact (at most ~0.06 off here); it keeps the ranking
    assert float((probs - mc).abs().max()) < 0.08
    assert torch.equal(probs.argmax(1), mc.argmax(1))
    # two classes with the variance on their difference: softmax is a sigmoid, where the probit map is tight
    two = um.Predictive(
        torch.stack([mean[:, 0], torch.zeros(6, dtype=DT)], 1),
        torch.stack([var[:, 0], torch.zeros(6, dtype=DT)], 1),
    )
    mc2 = torch.sigmoid((mean[None, :, 0] + var[None, :, 0].sqrt() * eps[:, :, 0]) / 0.7).mean(0)
    assert float((um.probabilities(two, 0.7)[:, 0] - mc2).abs().max()) < 0.02
    sharp = um.Predictive(mean, torch.zeros_like(mean))
    torch.testing.assert_close(um.probabilities(sharp, 0.5), torch.softmax(mean / 0.5, -1))
    members = torch.randn(4, 6, 3, dtype=DT, generator=g)
    ens = um.ensemble(members)
    torch.testing.assert_close(um.probabilities(ens, 2.0), torch.softmax(members / 2.0, -1).mean(0))
    torch.testing.assert_close(ens.variance, members.var(0, unbiased=False))


def test_fit_noise_and_temperature_recover_known_values() -> None:
    g = torch.Generator().manual_seed(2)
    y = torch.randn(4000, 1, dtype=DT, generator=g)
    target = 0.3 * torch.randn(4000, 1, dtype=DT, generator=g)
    noise = um.fit_noise(um.Predictive(y + target, torch.zeros_like(y)), y)
    assert noise == pytest.approx(0.09, rel=0.15)
    # labels drawn from softmax(logits / 0.5): the fitted temperature is close to 0.5
    logits = 3 * torch.randn(4000, 4, dtype=DT, generator=g)
    labels = torch.multinomial(torch.softmax(logits / 0.5, -1), 1, generator=g)[:, 0]
    temp = um.fit_temperature(um.Predictive(logits, torch.zeros_like(logits)), labels)
    assert temp == pytest.approx(0.5, rel=0.15)


def _config(name: str, **params: object) -> RunConfig:
    return RunConfig(
        study="uncertainty",
        data={"name": name, "n_train": 24, "n_val": 12, "n_test": 40},
        train={"optimizer": "adam", "learning_rate": 0.01, "steps": 40},
        params={"width": 16, "ensemble_size": 2, "max_test": 30, **params},
        seed=1,
    )


def test_regression_run_matches_independent_ntk_gp_and_is_complete() -> None:
    config = _config("gap1d")
    out = UncertaintyStudy().run(config)
    m = out.metrics
    assert m["status"] == "completed" and m["shift"] == "gap"
    for method in METHODS:
        for key in ("nll", "rmse", "cov90", "entropy", "nll_shift", "cov90_shift", "entropy_shift", "noise"):
            value = m[f"{method}_{key}"]
            assert isinstance(value, float) and math.isfinite(value), (method, key, value)
        assert 0 <= m[f"{method}_cov90"] <= 1
        assert out.artifacts[f"{method}_grid_std"].shape == (161,)
    assert m["n_test"] + m["n_shift"] == 30
    # single net and Laplace share the mean (the MAP); their RMSEs agree
    assert m["laplace_rmse"] == pytest.approx(m["net_rmse"], abs=1e-12)
    # NTK-GP mean at t = inf is kernel regression with the infinite NTK: recompute it independently
    ds = config.data.load()
    y = ds.y_train
    mu, sd = y.mean(0), y.std(0)
    yt = (ds.y_test[:30] - mu) / sd
    raw = ds.x_test[:30, 0] * float(ds.meta["std"][0]) + float(ds.meta["mean"][0])
    keep = raw.abs() >= 0.3
    desc = arch.from_dict(set_hidden_width(UncertaintyStudy.default_model or {}, 16, 1))
    k_xx = desc.kernel(ds.x_train).ntk
    k_tx = desc.kernel(ds.x_test[:30][keep], ds.x_train).ntk
    mean = k_tx @ torch.linalg.solve(k_xx, (y - mu) / sd)
    rmse = float(((mean - yt[keep]) ** 2).mean().sqrt())
    assert m["ntk_gp_rmse"] == pytest.approx(rmse, rel=1e-8)


def test_classification_run_reports_calibration_and_shift() -> None:
    out = UncertaintyStudy().run(_config("digits", shift="rotate", shift_scale=60.0))
    m = out.metrics
    assert m["status"] == "completed" and m["shift"] == "rotate" and m["shift_scale"] == 60.0
    for method in METHODS:
        for key in ("nll", "acc", "ece", "entropy", "entropy_shift", "acc_shift", "temperature"):
            assert math.isfinite(m[f"{method}_{key}"]), (method, key)
        assert 0 <= m[f"{method}_ece"] <= 1 and 0 <= m[f"{method}_entropy"] <= math.log(10) + 1e-12
    assert m["laplace_acc"] == m["net_acc"]  # the probit map keeps the argmax of the MAP outputs


def test_run_rejects_missing_validation_and_cross_entropy() -> None:
    bad = _config("gap1d").model_copy(update={"data": _config("gap1d").data.model_copy(update={"n_val": 0})})
    with pytest.raises(ValueError, match=r"data\.n_val"):
        UncertaintyStudy().run(bad)
    ce = _config("gap1d")
    ce = ce.model_copy(update={"train": ce.train.model_copy(update={"loss": "cross_entropy"})})
    with pytest.raises(ValueError, match=r"train\.loss"):
        UncertaintyStudy().run(ce)


def test_verdict_rule_on_hand_made_cells() -> None:
    good = {"ntk_gp": 1.0, "laplace": 0.5, "ensemble": 0.6, "nngp": 0.9, "net": 1.1}
    bad = {**good, "laplace": 1.2, "ensemble": 1.3}
    assert judge({("a", 1): good, ("a", 2): good, ("b", 1): good, ("b", 2): good})[0] == "supported"
    assert judge({("a", 1): bad, ("a", 2): bad, ("b", 1): bad, ("b", 2): bad})[0] == "not supported"
    assert judge({("a", 1): good, ("a", 2): bad})[0] == "mixed"
    assert judge({("a", 1): {**good, "laplace": math.nan}})[0] == "inconclusive"


def test_report_writes_figures_tables_and_verdict(tmp_path) -> None:
    rng = np.random.default_rng(0)
    rows = []
    for name, cls in (("gap1d", False), ("digits", True)):
        for width in (16, 64):
            metrics: dict[str, object] = {"status": "completed", "shift": "gap" if not cls else "rotate"}
            for method in METHODS:
                base = {"ntk_gp": 1.0, "laplace": 0.5, "ensemble": 0.6}.get(method, 0.8)
                metrics[f"{method}_nll"] = base + 0.01 * rng.standard_normal()
                metrics[f"{method}_nll_shift"] = base + 1
                metrics[f"{method}_entropy"] = 0.2
                metrics[f"{method}_entropy_shift"] = 0.5
                for key in ("acc", "ece") if cls else ("rmse", "cov90"):
                    metrics[f"{method}_{key}"] = 0.9
            config = RunConfig(
                study="uncertainty",
                data={"name": name, "n_train": 24, "n_val": 12},
                params={"width": width},
            )
            rows.append(ResultRow(run_id=f"{name}{width}", config=config, status="done", metrics=metrics))
    section = UncertaintyStudy().report(rows, tmp_path / "figures")
    assert section.verdict == "supported"
    assert len(section.figures) == 2 and all(f.is_file() for f in section.figures)
    assert len(section.tables) == 2 and len(section.tables[0].rows) == 2 * len(METHODS)
    assert any("4 of 4" in f for f in section.findings)
    assert any("rises for 5 of 5" in f for f in section.findings)
    numbers = section.to_dict()["numbers"]  # findings.json
    digits16 = next(r for r in rows if r.run_id == "digits16").metrics
    assert numbers["test_nll"]["digits/16"]["laplace"] == pytest.approx(digits16["laplace_nll"])


def test_report_labels_the_study_an_extension():
    """Issue 17: the study compares methods at practical sizes; it does not test the NTK limit, and says so."""
    from tangentlab.studies import get_study

    study = get_study("uncertainty")
    assert study.title.startswith("Uncertainty (extension)")
    assert "not a test of the infinite-width limit" in study.claim


# ---------------------------------------------------------------- positive control: targets from the NNGP prior
def test_prior_targets_have_the_nngp_covariance_plus_noise() -> None:
    """Monte Carlo over seeds: the empirical covariance of the draws is K + noise^2 I."""
    from tangentlab.studies.uncertainty import prior_targets

    x = torch.linspace(-1, 1, 5, dtype=DT)[:, None]
    k = arch.from_dict(set_hidden_width(UncertaintyStudy.default_model or {}, 16, 1)).kernel(x).nngp
    draws = torch.stack([prior_targets(k, seed, 0.1)[:, 0] for seed in range(4000)])
    cov = draws.T @ draws / draws.shape[0]
    expected = k + 0.01 * torch.eye(5, dtype=DT)
    assert torch.allclose(cov, expected, atol=0.06 * float(expected.diagonal().max()))
    assert torch.equal(prior_targets(k, 3, 0.1), prior_targets(k, 3, 0.1))


def test_positive_control_matches_on_prior_targets_and_fails_when_built_to(tmp_path) -> None:
    """A real regression run: on targets drawn from the NNGP prior the NNGP posterior covers ~90 % and its NLL is
    (within noise) the best: "match". The same logic on a run whose coverage is 0.6 says "no match"."""
    config = _config("gap1d", ensemble_size=2, max_test=200).model_copy(
        update={"data": _config("gap1d").data.model_copy(update={"n_train": 80, "n_test": 200, "n_val": 40})}
    )
    out = UncertaintyStudy().run(config)
    m = out.metrics
    assert m["prior_noise_std"] == 0.1 and "prior_ntk_gp_nll" in m and "prior_laplace_cov90" in m
    row = ResultRow(run_id="r", config=config, status="done", metrics=m)
    section = UncertaintyStudy().report([row], tmp_path / "a")
    entry = section.to_dict()["numbers"]["positive_control"]  # findings.json
    assert entry["verdict"] == "match", entry
    (measured,) = entry["measured"]
    assert measured["nngp_cov90"] == m["prior_nngp_cov90"] and abs(measured["nngp_cov90"] - 0.9) < 0.1
    assert section.findings[1].startswith("Positive control (targets drawn from the NNGP prior")
    assert "1 seed(s) — fewer than 3" in section.findings[0]
    # built to fail: an over-confident predictive (coverage 0.6), and one whose NLL is far above the best
    for i, bad in enumerate(
        ({"prior_nngp_cov90": 0.6}, {"prior_nngp_nll_gap": 0.5, "prior_nngp_nll_gap_se": 0.01})
    ):
        wrong = ResultRow(run_id="w", config=config, status="done", metrics={**m, **bad})
        again = UncertaintyStudy().report([wrong], tmp_path / f"b{i}")
        assert again.to_dict()["numbers"]["positive_control"]["verdict"] == "no match"
