"""The lazy report on synthetic rows with known exponents: figures written, slopes measured, verdict."""

import numpy as np
import pytest

from tangentlab.runner.config import RunConfig
from tangentlab.studies import ResultRow, get_study

WIDTHS = (64, 256, 1024, 4096)


def _power(rng: np.random.Generator, c: float, width: int, a: float, noise: float) -> float:
    return float(c * width**a * np.exp(noise * rng.standard_normal()))


def _rows(exponents: dict[tuple[str, str], float], noise: float = 0.02) -> list[ResultRow]:
    rng = np.random.default_rng(0)
    rows = []
    for (param, opt), a in exponents.items():
        for width in WIDTHS:
            for seed in (0, 1):
                config = RunConfig(
                    study="lazy",
                    data={"name": "synthetic", "n_train": 64, "n_test": 64},
                    train={"optimizer": opt, "steps": 300},
                    params={"width": width, "parametrization": param, "probe_size": 32, "lr_fraction": 0.5},
                    seed=seed,
                )
                metrics = {
                    "status": "completed",
                    "rel_ntk_change": _power(rng, 1.0, width, a, noise),
                    "rel_param_change": _power(rng, 2.0, width, a, noise),
                    "kernel_distance": _power(rng, 0.1, width, a, noise) ** 2,
                    "function_gap": _power(rng, 0.5, width, a, noise),
                    "test_mse_net": 0.1,
                    "test_mse_lin": 0.11,
                    "test_mse_ntk": 0.11,
                }
                rows.append(
                    ResultRow(
                        run_id=f"{param}{opt}{width}{seed}", config=config, status="done", metrics=metrics
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
    ntk_line = next(f for f in section.findings if f.startswith("NTK parametrization, GD: relative eNTK"))
    slope = float(ntk_line.split("width^")[1].split()[0])
    assert slope == pytest.approx(-0.5, abs=0.05)
    assert "consistent with Lee et al." in ntk_line
    assert "does not shrink with width" in text  # the μP/Adam setting, exponent 0
    assert "1 run(s) diverged" in text
    table = section.tables[0]
    assert table.rows[0][0] == "NTK parametrization, GD"
    assert table.rows[0][3].startswith("-0.5")


def test_verdict_not_supported_and_inconclusive(tmp_path):
    study = get_study("lazy")
    assert study.report(_rows({("ntk", "gd"): -0.1}), tmp_path).verdict == "not supported"
    assert study.report(_rows({("standard", "gd"): -0.5}), tmp_path).verdict == "inconclusive"
    assert study.report([], tmp_path).verdict == "inconclusive"
