"""The evolution report on the rows of a tiny real run: figures written, findings from the numbers, a verdict."""

import math
from pathlib import Path

import numpy as np
import pytest

from tangentlab.studies import ResultRow
from tangentlab.studies.evolution import EvolutionStudy

from .test_evolution import tiny_config


def _row(tmp_path: Path, i: int, **params) -> ResultRow:
    config = tiny_config(**params)
    out = EvolutionStudy().run(config)
    folder = tmp_path / "artifacts" / f"run{i}"
    folder.mkdir(parents=True)
    for name, arr in out.artifacts.items():
        np.save(folder / f"{name}.npy", arr)
    return ResultRow(
        run_id=f"run{i}", config=config, status="done", metrics=out.metrics, artifacts_dir=folder
    )


@pytest.fixture(scope="module")
def rows(tmp_path_factory) -> list[ResultRow]:
    tmp = tmp_path_factory.mktemp("evo")
    settings = [
        {"model_kind": kind, "sigma_w2": s2} for kind in ("mlp", "cnn", "deep_mlp") for s2 in (1.0, 2.0, 2.2)
    ]
    return [_row(tmp, i, **s) for i, s in enumerate(settings)]


def test_report_writes_figures_and_findings(rows, tmp_path):
    result = EvolutionStudy().report(rows, tmp_path / "figures")
    assert result.study == "evolution"
    assert result.verdict in ("supported", "not supported", "mixed", "inconclusive")
    names = sorted(p.name for p in result.figures)
    assert names == [
        "evolution_after_kernel.png",
        "evolution_dynamics_digits.png",
        "evolution_heatmaps.png",
    ]
    for p in result.figures:
        assert p.is_file() and p.stat().st_size > 10_000
    text = "\n".join(result.findings)
    assert text.startswith("Verdict: ")
    assert "Ordered phase moves least" in text and "deep MLP" in text
    assert "After kernel beats the init kernel" in text
    # a number in the findings is the measured one
    deep_ordered = next(
        r for r in rows if r.config.params["model_kind"] == "deep_mlp" and r.config.params["sigma_w2"] == 1.0
    )
    assert f"{deep_ordered.metrics['kernel_distance_centered_final']:.3g} (σ_w²=1, ordered)" in text
    assert f"uncentred S(0,T) = {deep_ordered.metrics['kernel_distance_final']:.3g} (σ_w²=1)" in text
    assert len(result.tables[0].rows) == 9
    assert any("seeds [0] — fewer than 3" in s for s in result.settings)
    # findings.json: the same numbers as data
    numbers = result.to_dict()["numbers"]
    assert numbers["ordered_claim_metric"] == "kernel_distance_centered_final"
    deep = numbers["settings"]["digits/deep_mlp/1"]
    assert deep["phase"] == "ordered" and deep["seeds"] == 1
    assert deep["kernel_distance_centered_final"] == deep_ordered.metrics["kernel_distance_centered_final"]
    assert set(numbers["sub_verdicts"].values()) <= {"supported", "not supported", "mixed", "inconclusive"}
    assert result.to_dict()["runs"] == [r.run_id for r in rows]


def test_report_without_completed_runs(tmp_path, rows):
    failed = [ResultRow(run_id="x", config=rows[0].config, status="failed", metrics={})]
    result = EvolutionStudy().report(failed, tmp_path)
    assert result.verdict == "inconclusive" and result.figures == ()


def test_ordered_claim_is_judged_on_the_centred_distance(rows, tmp_path):
    """The plain distance says the ordered kernel moves least; the centred one says it moves most: the centred wins."""
    from dataclasses import replace

    plain = {1.0: 0.01, 2.0: 0.2, 2.2: 0.3}
    centred = {1.0: 0.5, 2.0: 0.2, 2.2: 0.3}
    deep = []
    for r in rows:
        if r.config.params["model_kind"] != "deep_mlp":
            continue
        s2 = r.config.params["sigma_w2"]
        metrics = {
            **r.metrics,
            "kernel_distance_final": plain[s2],
            "kernel_distance_centered_final": centred[s2],
        }
        deep.append(replace(r, metrics=metrics))
    result = EvolutionStudy().report(deep, tmp_path / "figures")
    text = "\n".join(result.findings)
    assert "Ordered phase moves least (Seleznova & Kutyniok): not supported in 0/1 deep MLP group(s)" in text
    assert "S_c(0,T) = 0.5 (σ_w²=1, ordered), 0.2 (σ_w²=2, edge of chaos)" in text
    assert "uncentred S(0,T) = 0.01 (σ_w²=1), 0.2 (σ_w²=2), 0.3 (σ_w²=2.2)" in text
    # and the other way round: centred distances that put the ordered kernel last support the claim
    flipped = [
        replace(
            r, metrics={**r.metrics, "kernel_distance_centered_final": plain[r.config.params["sigma_w2"]]}
        )
        for r in deep
    ]
    result = EvolutionStudy().report(flipped, tmp_path / "figures2")
    assert "Ordered phase moves least (Seleznova & Kutyniok): supported in 1/1" in "\n".join(result.findings)


# ---------------------------------------------------------------- positive control
def _control_rows(tmp_path: Path) -> list[ResultRow]:
    """The control (wide NTK-parametrized net, small-step GD) and a net built to move (standard param., Adam)."""
    data = {"name": "digits", "n_train": 60, "n_test": 60, "classes": (0, 1, 2)}
    lazy = _row(tmp_path, 100, data=data, model_kind="lazy_control", control_width=1024, sigma_w2=2.0)
    moving = _row(tmp_path, 101, data=data, model_kind="mlp", sigma_w2=2.0)
    return [lazy, moving]


def test_positive_control_says_match_on_the_lazy_net_and_moves_on_the_adam_net(tmp_path):
    from tangentlab.studies.evolution.report import FROZEN_DISTANCE, kernel_state

    lazy, moving = _control_rows(tmp_path)
    assert lazy.metrics["optimizer"] == "gd" and lazy.metrics["width"] == 1024
    assert lazy.metrics["kernel_distance_centered_final"] < FROZEN_DISTANCE / 10
    assert moving.metrics["kernel_distance_centered_final"] > FROZEN_DISTANCE
    result = EvolutionStudy().report([lazy, moving], tmp_path / "figures")
    control = result.to_dict()["numbers"]["positive_control"]  # findings.json
    assert control["verdict"] == "match" and (control["frozen_runs"], control["runs"]) == (1, 1)
    assert control["measured"][0]["kernel_distance_centered_final"] == pytest.approx(
        lazy.metrics["kernel_distance_centered_final"]
    )
    # the same test on the run built to move says so: it is not a constant
    assert (control["study_runs_frozen"], control["study_runs"]) == (0, 1)
    assert any(f.startswith("Positive control (wide NTK-parametrized MLP") for f in result.findings)
    # the control is not one of the study's settings: it stays out of the three claims
    assert all(not k.endswith("/lazy_control/2") for k in result.to_dict()["numbers"]["settings"])
    # a control run whose kernel turned far says "no match"
    from dataclasses import replace

    turned = replace(lazy, metrics={**lazy.metrics, "kernel_distance_centered_final": 0.3})
    again = EvolutionStudy().report([turned, moving], tmp_path / "figures2")
    assert again.to_dict()["numbers"]["positive_control"]["verdict"] == "no match"
    assert kernel_state(0.0, 0.5, 0.5, 200) == "frozen"
    assert kernel_state(0.0, 0.5, 0.7, 200) == "moves"  # the after kernel moved by 2.8 binomial s.e.
    assert kernel_state(0.2, 0.5, 0.5, 200) == "moves"


def test_after_kernel_gain_within_two_binomial_standard_errors_is_not_a_gain():
    from tangentlab.studies.evolution.report import accuracy_margin

    assert accuracy_margin(0.5, 200) == pytest.approx(2 * math.sqrt(0.25 / 200))
    assert accuracy_margin(1.0, 200) == pytest.approx(1 / 200)  # floor: one test example
