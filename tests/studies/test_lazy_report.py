"""The lazy report on synthetic rows with known exponents: figures written, slopes measured, verdict."""

import numpy as np
import pytest

from tangentlab.runner.config import RunConfig
from tangentlab.studies import ResultRow, get_study

WIDTHS = (64, 256, 1024, 4096)


def _power(rng: np.random.Generator, c: float, width: int, a: float, noise: float) -> float:
    return float(c * width**a * np.exp(noise * rng.standard_normal()))


def _rows(
    exponents: dict[tuple[str, ...], float],
    noise: float = 0.02,
    per_metric: dict[str, float] | None = None,
) -> list[ResultRow]:
    """Rows whose change metrics go as width^a (``per_metric`` overrides a for the metrics it names); a key is
    (parametrization, optimizer) for ReLU or (activation, parametrization, optimizer)."""
    rng = np.random.default_rng(0)
    rows = []
    for setting, a in exponents.items():
        act, param, opt = setting if len(setting) == 3 else ("relu", *setting)
        ex = {m: a for m in ("rel_ntk_change", "rel_param_change", "kernel_distance", "function_gap")}
        ex.update(per_metric or {})
        for width in WIDTHS:
            for seed in (0, 1):
                config = RunConfig(
                    study="lazy",
                    data={"name": "synthetic", "n_train": 64, "n_test": 64},
                    train={"optimizer": opt, "steps": 300},
                    params={
                        "width": width,
                        "activation": act,
                        "parametrization": param,
                        "probe_size": 32,
                        "lr_fraction": 0.5,
                    },
                    seed=seed,
                )
                metrics = {
                    "status": "completed",
                    "rel_ntk_change": _power(rng, 1.0, width, ex["rel_ntk_change"], noise),
                    "rel_param_change": _power(rng, 2.0, width, ex["rel_param_change"], noise),
                    "kernel_distance": _power(rng, 0.1, width, ex["kernel_distance"], noise) ** 2,
                    "function_gap": _power(rng, 0.5, width, ex["function_gap"], noise),
                    "test_mse_net": 0.1,
                    "test_mse_lin": 0.11,
                    "test_mse_ntk": 0.11,
                }
                rows.append(
                    ResultRow(
                        run_id=f"{act}{param}{opt}{width}{seed}",
                        config=config,
                        status="done",
                        metrics=metrics,
                    )
                )
    return rows


def test_report_fits_known_slopes_and_writes_figures(tmp_path):
    rows = _rows({("ntk", "gd"): -0.5, ("mup", "adam"): 0.0})
    rows.append(
        ResultRow(
            run_id="div",
            config=rows[0].config,
            status="done",
            metrics={"status": "diverged", "rel_ntk_change": None},
        )
    )
    section = get_study("lazy").report(rows, tmp_path / "figures")
    assert section.verdict == "supported"
    assert len(section.figures) == 2
    for fig in section.figures:
        assert fig.is_file() and fig.stat().st_size > 1000
    text = " ".join(section.findings)
    ntk_line = next(
        f for f in section.findings if f.startswith("ReLU, NTK parametrization, GD: relative eNTK")
    )
    slope = float(ntk_line.split("width^")[1].split()[0])
    assert slope == pytest.approx(-0.5, abs=0.05)
    assert "at the rate of Lee et al. 2019's bound width^(−1/2): within the bound" in ntk_line
    assert "does not shrink with width" in text  # the μP/Adam setting, exponent 0
    # no erf arm: the positive control falls back to the ReLU parameter change under NTK/GD
    assert section.findings[1].startswith("Controls: positive control (relu/ntk/gd, rel_param_change")
    numbers = section.to_dict()["numbers"]
    assert numbers["positive_control"]["verdict"] == "match"
    assert [c["verdict"] for c in numbers["negative_controls"]] == ["no match"]
    assert "NOT as it must be" not in section.findings[1]
    assert "1 run(s) diverged" in text
    table = section.tables[0]
    assert table.rows[0][0] == "ReLU, NTK parametrization, GD"
    assert table.rows[0][3].startswith("-0.5")


def test_verdict_not_supported_and_inconclusive(tmp_path):
    study = get_study("lazy")
    assert study.report(_rows({("ntk", "gd"): -0.1}), tmp_path).verdict == "not supported"
    assert study.report(_rows({("standard", "gd"): -0.5}), tmp_path).verdict == "inconclusive"
    assert study.report([], tmp_path).verdict == "inconclusive"


@pytest.mark.parametrize("slope", [-0.5, -0.6, -0.83, -1.0, -1.5, -0.4])
def test_slopes_at_or_below_minus_one_half_are_within_the_upper_bound(tmp_path, slope):
    """Lee et al.'s width^(-1/2) is an upper bound: a steeper slope supports it (-0.4 is within the 0.15 floor)."""
    section = get_study("lazy").report(_rows({("ntk", "gd"): slope}), tmp_path)
    assert section.verdict == "supported", section.findings[0]
    assert "ReLU: all within the bound" in section.findings[0]
    if slope <= -0.7:
        ntk_line = next(f for f in section.findings if "relative eNTK" in f)
        assert "shrinks faster than width^(−1/2): within Lee et al. 2019's bound" in ntk_line
        assert "Dyer & Gur-Ari" in ntk_line


@pytest.mark.parametrize("slope", [-0.3, 0.0, 0.3])
def test_slopes_clearly_above_minus_one_half_break_the_bound(tmp_path, slope):
    section = get_study("lazy").report(_rows({("ntk", "gd"): slope}), tmp_path)
    assert section.verdict == "not supported", section.findings[0]


def test_one_slope_outside_the_bound_gives_mixed(tmp_path):
    rows = _rows({("ntk", "gd"): -0.5}, per_metric={"rel_ntk_change": -0.83, "function_gap": -0.2})
    section = get_study("lazy").report(rows, tmp_path)
    assert section.verdict == "mixed"
    assert "ReLU: only rel_ntk_change, rel_param_change within the bound" in section.findings[0]


def test_a_noisy_fit_widens_the_allowance(tmp_path):
    """With a large standard error a slope of -0.3 is not significantly above -1/2: within the bound."""
    rows = _rows({("ntk", "gd"): -0.3}, noise=0.8)
    fit_line = next(
        f
        for f in get_study("lazy").report(rows, tmp_path).findings
        if f.startswith("ReLU, NTK parametrization, GD: relative parameter")
    )
    se = float(fit_line.split("± ")[1].split()[0])
    slope = float(fit_line.split("width^")[1].split()[0])
    assert (slope <= -0.5 + max(0.15, 2 * se)) == (
        "within" in fit_line.split("—")[-1] and "bound" in fit_line
    )


def test_numbers_are_data_for_findings_json(tmp_path):
    section = get_study("lazy").report(_rows({("ntk", "gd"): -0.83}), tmp_path)
    data = section.to_dict()
    assert data["verdict"] == "supported" and len(data["runs"]) == 8
    ntk = data["numbers"]["settings"]["relu/ntk/gd"]
    assert ntk["widths"] == [64, 256, 1024, 4096] and ntk["seeds"] == [0, 1]
    assert ntk["fewer_than_3_seeds"] is True
    assert "fewer than 3" in section.findings[0]
    slope = ntk["slopes"]["rel_ntk_change"]
    assert slope["slope"] == pytest.approx(-0.83, abs=0.05) and slope["within_bound"] is True
    lo, hi = slope["ci95"]
    assert lo < slope["slope"] < hi and hi - lo == pytest.approx(
        2 * 2.4469 * slope["stderr"], rel=1e-3
    )  # t(0.975, 8 - 2)
    # the sentence quotes the same number
    assert f"width^{slope['slope']:.2f} ± {slope['stderr']:.2f}" in " ".join(section.findings)


def test_erf_arm_is_judged_separately_and_its_difference_is_data(tmp_path):
    """ReLU at -3/4 and erf at -1 (Dyer & Gur-Ari): both within the bound; the difference is in findings.json."""
    rows = _rows({("relu", "ntk", "gd"): -0.75, ("erf", "ntk", "gd"): -1.0})
    section = get_study("lazy").report(rows, tmp_path)
    numbers = section.to_dict()["numbers"]
    assert section.verdict == "supported"
    assert numbers["claim_verdicts"] == {"erf": "supported", "relu": "supported"}
    diff = numbers["activation_difference"]
    assert diff["erf"]["slope"] == pytest.approx(-1.0, abs=0.03)
    assert diff["relu"]["slope"] == pytest.approx(-0.75, abs=0.03)
    assert diff["difference_erf_minus_relu"] == pytest.approx(-0.25, abs=0.04)
    assert diff["distinguishable"] is True and diff["erf_within_dyer_gur_ari"] is True
    assert f"difference {diff['difference_erf_minus_relu']:+.2f}" in " ".join(section.findings)


def test_one_activation_outside_the_bound_makes_the_verdict_mixed(tmp_path):
    rows = _rows({("relu", "ntk", "gd"): -0.1, ("erf", "ntk", "gd"): -1.0})
    section = get_study("lazy").report(rows, tmp_path)
    assert section.verdict == "mixed"
    assert section.to_dict()["numbers"]["claim_verdicts"] == {"erf": "supported", "relu": "not supported"}


def test_positive_control_says_match_where_the_theory_holds(tmp_path):
    """erf under NTK/GD at slope -1: the bound test must say 'match'."""
    rows = _rows({("erf", "ntk", "gd"): -1.0, ("erf", "mup", "gd"): 0.0})
    control = get_study("lazy").report(rows, tmp_path).to_dict()["numbers"]["positive_control"]
    assert control["setting"] == "erf/ntk/gd" and control["metric"] == "rel_ntk_change"
    assert control["measured"]["slope"] == pytest.approx(-1.0, abs=0.03)
    assert control["verdict"] == "match" and control["as_it_must_be"] is True


def test_the_same_control_says_no_match_on_a_case_built_to_fail(tmp_path):
    """The same logic on an erf eNTK change that does not shrink: 'no match', flagged as not as it must be."""
    rows = _rows({("erf", "ntk", "gd"): 0.0})
    section = get_study("lazy").report(rows, tmp_path)
    control = section.to_dict()["numbers"]["positive_control"]
    assert control["verdict"] == "no match" and control["as_it_must_be"] is False
    assert "NOT as it must be" in section.findings[1]
