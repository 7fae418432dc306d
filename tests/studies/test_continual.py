"""The continual study: forgetting metric, task builder, kernel closed form vs simulated GD, run and report."""

import math

import numpy as np
import pytest
import torch

from tangentlab import arch, data, empirical_ntk, train
from tangentlab.runner.config import RunConfig
from tangentlab.studies import ResultRow
from tangentlab.studies.continual import ContinualParams, ContinualStudy
from tangentlab.studies.continual.kernel import sample_prior_outputs, task_update, time_to_accuracy
from tangentlab.studies.continual.report import LinearFit, effect, fit_log2, matches
from tangentlab.studies.continual.tasks import (
    TaskHead,
    average_forgetting,
    build_tasks,
    final_accuracy,
    input_permutations,
    learning_accuracy,
    split_classes,
)

# --- forgetting metric -------------------------------------------------------------------------------------------


def test_forgetting_on_hand_made_matrix():
    acc = np.array(
        [
            [0.90, 0.99, 0.20],  # A[0, 1] = 0.99 is before task 1 was learned: must not count
            [0.95, 0.85, 0.30],
            [0.60, 0.80, 0.90],
        ]
    )
    # task 0: max(0.90, 0.95) - 0.60 = 0.35; task 1: 0.85 - 0.80 = 0.05
    assert average_forgetting(acc) == pytest.approx(0.20, abs=1e-12)
    assert final_accuracy(acc) == pytest.approx((0.60 + 0.80 + 0.90) / 3, abs=1e-12)
    assert learning_accuracy(acc) == pytest.approx((0.90 + 0.85 + 0.90) / 3, abs=1e-12)
    assert average_forgetting(np.array([[0.7]])) == 0.0
    improving = np.array([[0.5, 0.0], [0.8, 0.9]])  # backward transfer: negative forgetting
    assert average_forgetting(improving) == pytest.approx(-0.3, abs=1e-12)
    with pytest.raises(ValueError, match="acc"):
        average_forgetting(np.zeros((2, 3)))


# --- task builder ------------------------------------------------------------------------------------------------


def test_split_classes_partition_and_errors():
    groups = split_classes(10, 2)
    assert groups == [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9)]
    flat = [c for g in split_classes(6, 3) for c in g]
    assert sorted(flat) == list(range(6)) and len(set(flat)) == 6
    with pytest.raises(ValueError, match="classes_per_task"):
        split_classes(10, 3)


def test_permutations_are_deterministic_permutations():
    perms = input_permutations(40, 4, seed=3)
    assert torch.equal(perms[0], torch.arange(40))
    for p in perms:
        assert torch.equal(torch.sort(p).values, torch.arange(40))
    assert not torch.equal(perms[1], perms[2])
    again = input_permutations(40, 4, seed=3)
    assert all(torch.equal(a, b) for a, b in zip(perms, again, strict=True))
    assert not torch.equal(input_permutations(40, 2, seed=4)[1], perms[1])


def test_build_tasks_split_and_permuted():
    ds = data.load("digits", n_train=200, n_test=100)
    tasks = build_tasks(ds, "split", n_tasks=None, classes_per_task=2, seed=0)
    assert len(tasks) == 5
    assert sum(t.x_train.shape[0] for t in tasks) == 200 and sum(t.x_test.shape[0] for t in tasks) == 100
    for task in tasks:
        assert task.columns == task.classes and len(task.columns) == 2
        # targets are one-hot over the task's own head, matching the labels
        mask = torch.isin(ds.labels_train, torch.tensor(task.classes))
        assert torch.equal(task.x_train, ds.x_train[mask])
        assert torch.equal(task.y_train.argmax(1), ds.labels_train[mask] - task.classes[0])
        assert torch.all(task.y_train.sum(1) == 1)
    perm = build_tasks(ds, "permuted", n_tasks=3, classes_per_task=2, seed=5)
    p = input_permutations(64, 3, seed=5)
    for task, order in zip(perm, p, strict=True):
        assert torch.equal(task.x_train, ds.x_train[:, order]) and torch.equal(
            task.x_test, ds.x_test[:, order]
        )
        assert task.columns == tuple(range(10)) and torch.equal(task.y_train, ds.y_train)
    with pytest.raises(ValueError, match="n_tasks"):
        build_tasks(ds, "permuted", n_tasks=None, classes_per_task=2, seed=0)
    with pytest.raises(ValueError, match="task_type"):
        build_tasks(ds, "shuffled", n_tasks=3, classes_per_task=2, seed=0)


# --- kernel closed form ------------------------------------------------------------------------------------------


def _tiny_problem():
    torch.manual_seed(0)
    net = arch.serial(arch.Dense(24), arch.ReLU(), arch.Dense(3)).build((4,), seed=1, dtype=torch.float64)
    x = torch.randn(14, 4, dtype=torch.float64)
    # task 0: rows 0..4, head (0, 1); task 1: rows 5..9, shared head (0, 1, 2); rows 10..13: held-out points
    tasks = [(torch.arange(0, 5), (0, 1)), (torch.arange(5, 10), (0, 1, 2))]
    eye = torch.eye(3, dtype=torch.float64)
    ys = [eye[:2, :2][torch.tensor([0, 1, 1, 0, 1])], eye[torch.tensor([2, 0, 1, 2, 1])]]
    return net, x, tasks, ys


def _simulated(net, x, tasks, ys, lr, steps):
    lin = train.linearize(net)
    for (rows, cols), y in zip(tasks, ys, strict=True):
        res = train.fit(TaskHead(lin, cols), x[rows], y, steps=steps, learning_rate=lr, optimizer="gd")
        assert res.status == "completed"
    with torch.no_grad():
        return lin(x)


def _closed_form(theta, f0, tasks, ys, lr, steps):
    f = f0
    for (rows, cols), y in zip(tasks, ys, strict=True):
        f = task_update(theta, f, rows, cols, y, t=steps, learning_rate=lr)
    return f


def test_closed_form_matches_gd_of_linearized_net_as_step_size_shrinks():
    """Gradient flow in closed form (full eNTK, coupled outputs) vs full-batch GD of the linearized net: the gap is
    the O(eta) discretisation error, so at fixed time eta * steps it shrinks ~4x when eta shrinks 4x."""
    net, x, tasks, ys = _tiny_problem()
    theta = empirical_ntk(net, x, outputs="full")
    with torch.no_grad():
        f0 = net(x)
    lam = float(torch.linalg.eigvalsh(theta.permute(0, 2, 1, 3).reshape(42, 42)).max())
    time = 40.0 / lam  # eta * steps: the slowest trained modes still move
    errors = []
    for steps in (25, 100):
        lr = time * 5 / steps  # n_t = 5
        closed = _closed_form(theta, f0, tasks, ys, lr, steps)
        gd = _simulated(net, x, tasks, ys, lr, steps)
        errors.append(float((closed - gd).abs().max()))
        change = float((closed - f0).abs().max())
        assert change > 0.1  # training moved the outputs, earlier task's head and held-out points included
    assert errors[1] < 2e-3 * change
    assert 3.0 < errors[0] / errors[1] < 5.0


def test_per_output_kernel_is_full_kernel_times_identity_and_leaves_other_heads():
    net, x, tasks, ys = _tiny_problem()
    k = empirical_ntk(net, x, outputs="trace") / 3
    full = torch.einsum("ij,ab->ijab", k, torch.eye(3, dtype=torch.float64))
    f0 = torch.randn(14, 3, dtype=torch.float64)
    rows, cols = tasks[0]
    a = task_update(k, f0, rows, cols, ys[0], t=30.0, learning_rate=0.5)
    b = task_update(full, f0, rows, cols, ys[0], t=30.0, learning_rate=0.5)
    torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    assert torch.equal(a[:, 2], f0[:, 2])  # output 2 is not in the head: untouched
    # long training fits the task: its training residual vanishes
    c = task_update(k, f0, rows, cols, ys[0], t=1e7, learning_rate=0.5)
    torch.testing.assert_close(c[rows][:, list(cols)], ys[0], rtol=0, atol=1e-6)


def test_time_to_accuracy_is_the_first_time_reaching_target():
    net, x, tasks, ys = _tiny_problem()
    k = empirical_ntk(net, x, outputs="trace") / 3
    f0 = torch.zeros(14, 3, dtype=torch.float64)
    rows, cols = tasks[1]
    times = [0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 1e6]
    t, acc = time_to_accuracy(k, f0, rows, cols, ys[1], times=times, learning_rate=0.1, target=1.0)
    assert acc == 1.0 and t in times
    before = times[times.index(t) - 1]
    f_before = task_update(k, f0, rows, cols, ys[1], t=before, learning_rate=0.1)
    assert (f_before[rows][:, list(cols)].argmax(1) != ys[1].argmax(1)).any()
    t_never, _ = time_to_accuracy(k, f0, rows, cols, ys[1], times=times, learning_rate=0.1, target=math.inf)
    assert t_never == times[-1]


def test_prior_samples_have_the_nngp_covariance():
    x = torch.randn(5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    k = arch.serial(arch.Dense(8), arch.ReLU(), arch.Dense(1)).kernel(x).nngp
    draws, jitter = sample_prior_outputs(k, 40_000, seed=2)
    assert draws.shape == (5, 40_000) and jitter == 0.0
    cov = draws @ draws.T / draws.shape[1]
    se = torch.sqrt((k.diagonal()[:, None] * k.diagonal()[None, :] + k**2) / draws.shape[1])
    assert float(((cov - k).abs() / se).max()) < 5.0
    again, _ = sample_prior_outputs(k, 3, seed=2)
    assert torch.equal(again, sample_prior_outputs(k, 3, seed=2)[0])
    with pytest.raises(ValueError, match="nngp"):
        sample_prior_outputs(-torch.eye(3, dtype=torch.float64), 2, seed=0)


# --- run and report ----------------------------------------------------------------------------------------------

DATA = {"name": "digits", "n_train": 90, "n_test": 60}


def _config(seed: int = 0, **params) -> RunConfig:
    return RunConfig(
        study="continual",
        data=DATA,
        train={"optimizer": "gd", "steps": 60},
        params=ContinualParams(**{"width": 16, "n_tasks": 3, "check_every": 10, **params}).model_dump(),
        seed=seed,
    )


@pytest.mark.parametrize("task_type", ["split", "permuted"])
@pytest.mark.parametrize("regime", ["converged", "early_stopped"])
def test_run_returns_finite_consistent_metrics(task_type, regime):
    out = ContinualStudy().run(_config(task_type=task_type, regime=regime, early_steps=7))
    m = out.metrics
    assert m["status"] == "completed" and m["n_tasks"] == 3
    for key in ("net", "lin", "ntk"):
        acc = out.artifacts[f"acc_{key}"]
        assert acc.shape == (3, 3) and np.all((acc >= 0) & (acc <= 1))
        assert m[f"forgetting_{key}"] == pytest.approx(average_forgetting(acc), abs=1e-12)
        assert m[f"final_acc_{key}"] == pytest.approx(acc[-1].mean(), abs=1e-12)
        steps, tr = out.artifacts[f"steps_{key}"], out.artifacts[f"train_acc_{key}"]
        assert np.all(steps <= 60) and np.all((tr >= 0) & (tr <= 1))
        if regime == "early_stopped":
            assert np.all(steps == 7)
        else:
            assert m[f"reached_target_{key}"] == bool(np.all(tr >= 0.99))
            assert np.all((steps == 60) | (tr >= 0.99))
    assert math.isfinite(m["learning_rate"]) and m["learning_rate"] > 0
    if task_type == "split":
        assert m["forgetting_ntk"] == 0.0  # separate heads decouple in the infinite-width kernel regime


def test_fixed_budget_trains_every_task_for_exactly_the_budget():
    """Mirzadeh et al.'s protocol: the same step budget per task for every width, whatever accuracy it reaches."""
    for width in (8, 64):
        out = ContinualStudy().run(
            _config(width=width, regime="fixed_budget", budget_steps=6, early_accuracy=0.1)
        )
        assert np.all(out.artifacts["steps_net"] == 6) and np.all(out.artifacts["steps_lin"] == 6)


def test_fixed_budget_is_reported_beside_the_verdict(tmp_path):
    rows = _synthetic_rows(-0.03, 0.0)
    for width in (16, 64, 256, 1024):
        for seed in (0, 1):
            config = _config(seed=seed, width=width, regime="fixed_budget")
            m = {
                "status": "completed",
                "forgetting_net": 0.4 - 0.02 * math.log2(width),
                "forgetting_lin": 0.3,
            }
            rows.append(ResultRow(run_id=f"fb{width}{seed}", config=config, status="done", metrics=m))
    section = ContinualStudy().report(rows, tmp_path)
    assert section.verdict == "supported"  # judged on early-stopped vs converged, as before
    head = section.findings[0]
    assert "Mirzadeh et al.'s protocol (a fixed step budget per task, the same for every width)" in head
    assert (
        "slope per doubling -0.020" in head.split("Mirzadeh")[1]
        and "2 seed(s) — fewer than 3, a rough interval: width lowers forgetting)"
        in head.split("Mirzadeh")[1]
    )


def test_early_accuracy_stops_early_and_zero_prior_is_deterministic():
    out = ContinualStudy().run(
        _config(task_type="split", regime="early_stopped", early_steps=50, early_accuracy=0.6)
    )
    steps, tr = out.artifacts["steps_net"], out.artifacts["train_acc_net"]
    assert np.all((steps == 50) | (tr >= 0.6)) and np.all(steps % 10 == 0)
    a = ContinualStudy().run(_config(seed=0, kernel_f0="zero", linearized=False))
    b = ContinualStudy().run(_config(seed=1, kernel_f0="zero", linearized=False))
    np.testing.assert_array_equal(a.artifacts["acc_ntk"], b.artifacts["acc_ntk"])  # no init noise: seed-free
    assert "forgetting_lin" not in a.metrics


def test_report_on_real_rows(tmp_path):
    rows = []
    for width in (8, 32):
        for regime in ("early_stopped", "converged"):
            for seed in (0, 1):
                config = _config(seed=seed, width=width, regime=regime, n_tasks=2, early_steps=5)
                out = ContinualStudy().run(config)
                rows.append(
                    ResultRow(run_id=config.run_id, config=config, status="done", metrics=out.metrics)
                )
    rows.append(ResultRow(run_id="failed", config=rows[0].config, status="failed", metrics={}))
    section = ContinualStudy().report(rows, tmp_path / "figures")
    assert section.verdict in ("supported", "mixed", "not supported")
    assert len(section.figures) == 2 and all(f.stat().st_size > 10_000 for f in section.figures)
    (table,) = section.tables
    assert len(table.rows) == 2 and all(len(r) == len(table.header) for r in table.rows)
    assert any("1 failed" in s for s in section.settings)


def _synthetic_rows(early_slope: float, converged_slope: float, missed: int = 0) -> list[ResultRow]:
    rows = []
    for regime, slope in (("early_stopped", early_slope), ("converged", converged_slope)):
        for width in (16, 64, 256, 1024):
            for seed in (0, 1):
                config = _config(seed=seed, width=width, regime=regime)
                value = 0.4 + slope * math.log2(width) + 0.001 * (seed - 0.5)
                reached = not (regime == "converged" and width == 16 and seed < missed)
                metrics = {
                    "status": "completed",
                    "forgetting_net": value if reached else 0.9,
                    "forgetting_lin": value,
                    "target_accuracy": 0.99,
                    "reached_target_net": reached,
                    "min_train_acc_net": 1.0 if reached else 0.5,
                }
                rows.append(
                    ResultRow(run_id=f"{regime}{width}{seed}", config=config, status="done", metrics=metrics)
                )
    return rows


@pytest.mark.parametrize(
    ("early", "converged", "verdict"),
    [(-0.03, 0.0, "supported"), (-0.03, -0.03, "not supported"), (0.0, 0.0, "not supported")],
)
def test_verdict_from_slopes(tmp_path, early, converged, verdict):
    section = ContinualStudy().report(_synthetic_rows(early, converged), tmp_path)
    assert section.verdict == verdict
    slopes = section.to_dict()["numbers"]["slopes_per_doubling"]  # findings.json
    net_early = next(v for k, v in slopes.items() if k.endswith("/early_stopped/net"))
    assert net_early["slope"] == pytest.approx(early, abs=1e-3) and net_early["width_helps"] == (early < 0)


def test_unconverged_runs_are_left_out(tmp_path):
    section = ContinualStudy().report(_synthetic_rows(-0.03, 0.0, missed=2), tmp_path)
    assert section.verdict == "supported"  # the two outliers (forgetting 0.9, not converged) are not fitted
    assert any("2 run(s) (widths [16]) left out" in f for f in section.findings)
    conv = next(r for r in section.tables[0].rows if r[0].endswith("converged"))
    assert conv[1] == "64, 256, 1024"


def test_fit_log2_recovers_a_line():
    w = np.array([16, 64, 256, 1024, 16, 64, 256, 1024], dtype=float)
    fit = fit_log2(w, 0.5 - 0.02 * np.log2(w))
    assert fit is not None and fit.slope == pytest.approx(-0.02, abs=1e-12) and fit.stderr < 1e-10
    assert fit_log2(np.array([8.0, 8.0]), np.array([0.1, 0.2])) is None


# --- labels from the measured sign and interval, and the positive control ---------------------------------------


def test_effect_labels_follow_the_sign_and_the_interval():
    assert effect(LinearFit(-0.03, 0.4, 0.005)) == "lowers"
    assert effect(LinearFit(+0.03, 0.4, 0.005)) == "raises"
    assert effect(LinearFit(-0.03, 0.4, 0.02)) == "none"  # the interval -0.03 ± 0.04 contains 0
    assert effect(LinearFit(-0.004, 0.4, math.nan)) == "none"  # within the tolerance 0.005


@pytest.mark.parametrize(
    ("converged", "label"), [(0.03, "width raises forgetting"), (-0.03, "width lowers forgetting")]
)
def test_opposite_outcomes_never_share_a_label(tmp_path, converged, label):
    """A converged slope of +0.03 and one of -0.03 (a quick and a full config, say) are told apart in words and in
    findings.json; before, both could read "does not help"."""
    section = ContinualStudy().report(_synthetic_rows(-0.03, converged), tmp_path)
    text = section.findings[0]
    conv = text.split("early-stopped, ", 1)[1]
    assert conv.startswith(f"{converged:+.3f}") and f"{label})" in conv.split("converged")[0]
    slopes = section.to_dict()["numbers"]["slopes_per_doubling"]
    net_conv = next(v for k, v in slopes.items() if k.endswith("/converged/net"))
    assert net_conv["effect"] == ("raises" if converged > 0 else "lowers") and net_conv["seeds"] == 2
    lo, hi = net_conv["interval"]
    assert lo < net_conv["slope"] < hi and (lo > 0 if converged > 0 else hi < 0)
    assert section.verdict == ("supported" if converged > 0 else "not supported")


def test_matches_is_a_paired_test_with_a_tolerance():
    ok, diff, se = matches([0.004, 0.002, 0.003], [0.0, 0.0, 0.0])
    assert ok and diff == pytest.approx(0.003) and se == pytest.approx(0.001 / math.sqrt(3))
    assert not matches([0.20, 0.21, 0.19], [0.0, 0.0, 0.0])[0]
    assert not matches([0.05], [0.0])[0] and matches([0.005], [0.0])[0]  # one seed: the tolerance alone


def test_positive_control_matches_the_closed_form_on_split_tasks_and_fails_when_built_to(tmp_path):
    """Real runs: a head per task, a wide NTK-parametrized net, 3 seeds: its forgetting matches the NTK closed form
    (zero). The same test on hand-made rows whose net forgets 0.1 says "no match"."""
    rows = []
    for seed in range(3):
        for width in (16, 1024):
            config = _config(
                seed=seed, width=width, task_type="split", regime="fixed_budget", budget_steps=20
            )
            out = ContinualStudy().run(config)
            rows.append(
                ResultRow(run_id=f"s{seed}w{width}", config=config, status="done", metrics=out.metrics)
            )
    section = ContinualStudy().report(rows, tmp_path / "a")
    control = section.to_dict()["numbers"]["positive_control"]  # findings.json
    assert control["verdict"] == "match"
    (m,) = control["measured"]
    assert m["width"] == 1024 and m["seeds"] == 3 and m["forgetting_ntk"] == 0.0
    net = [r.metrics["forgetting_net"] for r in rows if r.config.params["width"] == 1024]
    assert m["forgetting_net"] == pytest.approx(float(np.mean(net)))
    assert section.findings[1].startswith("As tested here: average forgetting of the net")
    assert section.findings[1].endswith("Seeds per setting: 3.")
    assert section.findings[2].startswith("Positive control (a head per task")
    forgetful = [
        ResultRow(r.run_id, r.config, "done", {**r.metrics, "forgetting_net": 0.1 + 0.01 * r.config.seed})
        for r in rows
    ]
    again = ContinualStudy().report(forgetful, tmp_path / "b")
    assert again.to_dict()["numbers"]["positive_control"]["verdict"] == "no match"
