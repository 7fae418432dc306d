"""Report scaffolding shared by the studies: run tallies, the empty section, the `model` guard."""

import math
import re

import pytest

from tangentlab.runner.config import RunConfig
from tangentlab.studies import ResultRow, empty_section, get_study, header, tally


def _row(status: str, outcome: str | None) -> ResultRow:
    metrics = {} if outcome is None else {"status": outcome}
    return ResultRow(
        run_id="r", config=RunConfig(study="lazy", data={"name": "digits"}), status=status, metrics=metrics
    )


def test_tally_splits_rows_by_outcome():
    rows = [
        _row("done", "completed"),
        _row("done", None),  # no status metric counts as completed
        _row("done", "diverged"),
        _row("done", "skipped"),
        _row("failed", None),
        _row("failed", "completed"),  # the store's status wins
    ]
    runs = tally(rows)
    assert len(runs.completed) == 2 and (runs.n_failed, runs.n_diverged, runs.n_other) == (2, 1, 1)
    assert runs.summary() == "2 completed, 1 diverged, 2 failed, 1 other"


def test_empty_section_is_inconclusive_and_counts_the_runs():
    study = get_study("lazy")
    section = empty_section(study, tally([_row("failed", None)]))
    assert section.verdict == "inconclusive" and section.study == "lazy" and section.claim == study.claim
    assert section.findings == ("No completed runs (0 completed, 0 diverged, 1 failed): nothing to report.",)
    assert header(study) == {
        "study": "lazy",
        "title": study.title,
        "citation": study.citation,
        "claim": study.claim,
    }


@pytest.mark.parametrize(
    ("name", "source"),
    [("equivalence", "params.depth"), ("evolution", "params.model_kind"), ("scaling", "params.model_kind")],
)
def test_studies_that_build_their_own_nets_refuse_a_model(name, source):
    config = RunConfig(study=name, data={"name": "digits"}, model={"layer": "Dense", "width": 3})
    with pytest.raises(
        ValueError, match=rf"^model: the {name} study builds its nets from {source}.*expected no model"
    ):
        get_study(name).run(config)


def test_finite_values_and_mean_skip_missing_null_boolean_and_non_finite():
    from tangentlab.studies import finite_mean, finite_values

    metrics = [
        {"m": 1},
        {"m": 2.5},
        {"m": None},
        {},
        {"m": True},
        {"m": float("nan")},
        {"m": float("inf")},
        {"m": "x"},
    ]
    rows = [
        ResultRow(
            run_id=str(i), config=RunConfig(study="lazy", data={"name": "digits"}), status="done", metrics=m
        )
        for i, m in enumerate(metrics)
    ]
    assert finite_values(rows, "m") == [1.0, 2.5]
    assert finite_mean(rows, "m") == pytest.approx(1.75)
    assert math.isnan(finite_mean(rows, "other"))


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("lazy", "the theory's loss"),
        ("continual", "the kernel theory's loss"),
        ("equivalence", "kernel regression's loss"),
        ("scaling", "kernel regression's loss"),
    ],
)
def test_kernel_studies_refuse_a_loss_other_than_mse(name, why):
    config = RunConfig(study=name, data={"name": "digits"}, train={"loss": "cross_entropy"})
    expected = f"train.loss: the {name} study needs 'mse' ({why}), got 'cross_entropy'"
    with pytest.raises(ValueError, match=f"^{re.escape(expected)}$"):
        get_study(name).run(config)
