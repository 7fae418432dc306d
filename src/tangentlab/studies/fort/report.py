"""The ``fort`` study's report: three sub-claims of Fort et al. 2020, their positive controls, findings and verdict.

Judged on the runs of ``mlp``/``cnn`` nets (the controls ``linear`` and ``wide_ntk`` are kept out):

* Velocity at a fixed dt: a run shows "a transient, then a roughly constant velocity" when its first equal-interval
  velocity is at least ``TRANSIENT_FACTOR`` times the median of its late ones and the late ones have a coefficient
  of variation (std / mean) of at most ``CONSTANT_CV``.
* Linearized from theta_t: a run shows "the gap shrinks" when the test-error gap (linearized minus net, both trained
  from theta_t on the same batches) at t = 0 exceeds the margin (two binomial standard errors of the net's test
  error) and the gap at the last spawn step is within the margin.
* Spawning (minibatch runs only; in full-batch runs the children coincide and the barrier is 0 by construction):
  a run shows "the barrier drops to ~0" when its largest train-loss barrier (at t = 0 or in the early phase) is
  above ``BARRIER_FLOOR`` and the barrier at the last spawn step is at most ``DROP_FRACTION`` of it; the first
  spawn step after the peak where it is is quoted.

Positive controls: ``linear`` (convex loss: every train-loss barrier <= ``EXACT``; the model is its own
linearization: every test-loss gap <= ``EXACT`` in size) and ``wide_ntk`` (lazy: linearized at theta_0, the
test-error gap is within the margin and the test-loss gap within ``LAZY_LOSS_GAP`` of the net's test loss).
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from tangentlab.report.section import StudySection, Table, Verdict
from tangentlab.studies._base import ResultRow, Study
from tangentlab.studies._sections import empty_section, finite_mean, scope_line, tally
from tangentlab.studies._sections import header as section_header
from tangentlab.studies.evolution.control import accuracy_margin
from tangentlab.studies.fort import CONTROLS, FortParams
from tangentlab.studies.fort.figures import (
    BATCH_NAMES,
    MODEL_NAMES,
    batch,
    model_kind,
    plot_linearized,
    plot_spawning,
    plot_velocity,
)

Row = ResultRow[FortParams]
TRANSIENT_FACTOR = 2.0
CONSTANT_CV = 0.5
BARRIER_FLOOR = 1e-3
DROP_FRACTION = 0.1
EXACT = 1e-9
LAZY_LOSS_GAP = 0.05
OPERATIONALISED = (
    f"(1) a run's first fixed-dt velocity is ≥ {TRANSIENT_FACTOR:g}× its late median and its late velocities vary "
    f"by at most {CONSTANT_CV:g} (std/mean); (2) the test-error gap of the net linearized at θ_t and trained to T "
    "over the net trained from θ_t exceeds two binomial s.e. at t = 0 and is within them at the last spawn step; "
    f"(3) with minibatch SGD, the largest train-loss barrier between two children spawned at t (at t = 0 or early) "
    f"is > {BARRIER_FLOOR:g} and the barrier at the last spawn step is ≤ {DROP_FRACTION:g}× that."
)
DEVIATIONS = (
    "small MLPs (and CNNs) on digits / MNIST subsets instead of ResNets on CIFAR; a few hundred to a few thousand "
    "steps of plain SGD at a constant large rate (no momentum, augmentation or rate decay), so the children's final "
    "iterates carry SGD noise; barriers on the training loss (test error beside it); one pair of children per t."
)


def _arr(row: Row, name: str) -> np.ndarray:
    try:
        return np.asarray(row.artifact(name), dtype=np.float64)
    except (KeyError, FileNotFoundError, ValueError):
        return np.zeros(0)


def _margin(row: Row) -> float:
    err = _arr(row, "child_test_error")
    n = row.metrics.get("n_test", row.config.data.n_test)
    if not err.size or not isinstance(n, int | float) or n <= 0:
        return math.nan
    return accuracy_margin(1.0 - float(err[0]), int(n))


def _outcome(results: list[bool]) -> Verdict:
    if not results:
        return "inconclusive"
    return "supported" if all(results) else ("not supported" if not any(results) else "mixed")


def velocity_ok(row: Row) -> bool | None:
    tr, cv = row.metrics.get("velocity_transient_ratio"), row.metrics.get("velocity_late_cv")
    if not (isinstance(tr, int | float) and isinstance(cv, int | float)):
        return None
    return tr >= TRANSIENT_FACTOR and cv <= CONSTANT_CV


def linearized_ok(row: Row) -> bool | None:
    gap, margin = _arr(row, "gap_test_error"), _margin(row)
    if gap.size < 2 or not np.all(np.isfinite(gap)) or not math.isfinite(margin):
        return None
    return bool(gap[0] > margin and abs(gap[-1]) <= margin)


def stable_step(row: Row) -> float | None:
    """The first spawn step after the barrier's peak whose train-loss barrier is at most ``DROP_FRACTION`` of the
    peak (None when the peak is not above ``BARRIER_FLOOR`` or the barrier never drops that far)."""
    b, t = _arr(row, "barrier_train_loss"), _arr(row, "spawn_step")
    if b.size < 2 or not np.all(np.isfinite(b)) or not b.max() > BARRIER_FLOOR:
        return None
    peak = int(np.argmax(b))
    hit = np.nonzero(b[peak:] <= DROP_FRACTION * b[peak])[0]
    return float(t[peak + hit[0]]) if hit.size else None


def barrier_ok(row: Row) -> bool | None:
    b = _arr(row, "barrier_train_loss")
    if batch(row) != "minibatch" or b.size < 2 or not np.all(np.isfinite(b)):
        return None
    return bool(b.max() > BARRIER_FLOOR and b[-1] <= DROP_FRACTION * b.max())


def _name(r: Row) -> str:
    return f"{r.config.data.name}, {MODEL_NAMES.get(model_kind(r), model_kind(r))}, {BATCH_NAMES[batch(r)]}"


def _fmt(values: np.ndarray, digits: str = ".3g") -> str:
    return "[" + ", ".join(format(float(v), digits) for v in values) + "]"


def _claim_lines(studied: list[Row]) -> tuple[dict[str, Verdict], list[str], dict[str, Any]]:
    checks = {"velocity": velocity_ok, "linearized": linearized_ok, "spawning": barrier_ok}
    results: dict[str, list[bool]] = {k: [] for k in checks}
    lines: list[str] = []
    per_run: dict[str, Any] = {}
    for r in sorted(studied, key=lambda r: (_name(r), r.config.seed)):
        got = {k: f(r) for k, f in checks.items()}
        for k, v in got.items():
            if v is not None:
                results[k].append(v)
        t, b = _arr(r, "spawn_step"), _arr(r, "barrier_train_loss")
        gap, margin = _arr(r, "gap_test_error"), _margin(r)
        ts = stable_step(r)
        steps = int(r.metrics.get("steps") or r.config.train.steps)
        m = r.metrics
        text = (
            f"{_name(r)}, seed {r.config.seed}: velocity first {m.get('velocity_first') or math.nan:.3g}, late "
            f"median {m.get('velocity_late_median') or math.nan:.3g} rad/step (ratio "
            f"{m.get('velocity_transient_ratio') or math.nan:.3g}, late std/mean {m.get('velocity_late_cv') or math.nan:.2f}); "
            f"spawn steps {_fmt(t, '.0f')}: linearized − net test error {_fmt(gap)} (margin {margin:.3f}); "
            f"train-loss barrier {_fmt(b)}"
        )
        if batch(r) == "full":
            dists = _arr(r, "child_distance")
            dist = float(dists.max()) if dists.size else math.nan
            same = "the children coincide" if dist == 0 else "the children DIFFER"
            text += f" (full batch: largest ‖θ_a − θ_b‖ {dist:.3g}, {same})"
        else:
            if b.size and np.all(np.isfinite(b)):
                text += f", largest at t = {t[int(np.argmax(b))]:.0f}"
            if ts is not None:
                text += f", ≤ {DROP_FRACTION:g}× its peak from t = {ts:.0f} ({ts / steps:.1%} of T)"
        lines.append(text + ".")
        per_run[f"{r.run_id}"] = {
            "setting": _name(r),
            "seed": r.config.seed,
            **{f"{k}_ok": v for k, v in got.items()},
            "spawn_step": t.tolist(),
            "barrier_train_loss": b.tolist(),
            "barrier_test_error": _arr(r, "barrier_test_error").tolist(),
            "gap_test_error": gap.tolist(),
            "gap_test_loss": _arr(r, "gap_test_loss").tolist(),
            "error_margin": margin,
            "stable_step": ts,
            "child_distance": _arr(r, "child_distance").tolist(),
            **{
                k: m.get(k)
                for k in (
                    "velocity_first",
                    "velocity_late_median",
                    "velocity_late_cv",
                    "velocity_transient_ratio",
                    "test_error_final",
                )
            },
        }
    verdicts = {k: _outcome(v) for k, v in results.items()}
    heads = [
        f"Transient, then a roughly constant velocity at a fixed dt: {verdicts['velocity']} "
        f"({sum(results['velocity'])}/{len(results['velocity'])} runs).",
        f"The linearized model trained from θ_t closes the gap to the net once t passes the early phase: "
        f"{verdicts['linearized']} ({sum(results['linearized'])}/{len(results['linearized'])} runs).",
        f"Children spawned at t end in one linearly connected basin once t passes the transient (minibatch SGD): "
        f"{verdicts['spawning']} ({sum(results['spawning'])}/{len(results['spawning'])} runs).",
    ]
    return verdicts, [*heads, *lines], per_run


def _controls(controls: list[Row]) -> tuple[dict[str, Any], list[str]]:
    entry: dict[str, Any] = {}
    lines = []
    lin = [r for r in controls if model_kind(r) == "linear"]
    if lin:
        barrier = max(float(np.max(np.abs(_arr(r, "barrier_train_loss")), initial=0.0)) for r in lin)
        gap = max(float(np.max(np.abs(_arr(r, "gap_test_loss")), initial=0.0)) for r in lin)
        ok = barrier <= EXACT and gap <= EXACT
        entry["linear"] = {
            "expected": "convex loss and an exact linearization: barrier 0 and gap 0 at every spawn step",
            "max_barrier_train_loss": barrier,
            "max_abs_gap_test_loss": gap,
            "runs": len(lin),
            "verdict": "match" if ok else "no match",
        }
        lines.append(
            f"Positive control, linear model ({len(lin)} run(s)): largest train-loss barrier {barrier:.2g}, largest "
            f"|test-loss gap| of its linearization {gap:.2g} (theory: both 0) — {entry['linear']['verdict']}."
        )
    wide = [r for r in controls if model_kind(r) == "wide_ntk"]
    if wide:
        parts, oks = [], []
        for r in wide:
            g_err, g_loss = _arr(r, "gap_test_error"), _arr(r, "gap_test_loss")
            net_loss, margin = _arr(r, "child_test_loss"), _margin(r)
            if not (g_err.size and g_loss.size and net_loss.size):
                continue
            rel = abs(float(g_loss[0])) / max(abs(float(net_loss[0])), 1e-12)
            oks.append(abs(float(g_err[0])) <= margin and rel <= LAZY_LOSS_GAP)
            parts.append(
                f"{_name(r)}: gap at t = 0 {float(g_err[0]):+.3f} test error (margin {margin:.3f}), test loss "
                f"{rel:.1%} of the net's"
            )
        verdict = "not run" if not oks else ("match" if all(oks) else "no match")
        entry["wide_ntk"] = {
            "expected": f"lazy training: linearized at θ_0 the test error is within 2 binomial s.e. and the test "
            f"loss within {LAZY_LOSS_GAP:.0%} of the net's",
            "width": sorted({int(r.params.control_width) for r in wide}),
            "runs": len(oks),
            "matched": sum(oks),
            "verdict": verdict,
        }
        lines.append(
            f"Positive control, wide NTK-parametrized net (width {entry['wide_ntk']['width']}): {verdict} — "
            + "; ".join(parts)
            + "."
        )
    return entry, lines


def _table(rows: list[Row]) -> Table:
    header = (
        "setting",
        "seeds",
        "test error",
        "v first / late",
        "late std/mean",
        "gap t=0 → last",
        "barrier t=0 → last",
        "‖θ_a−θ_b‖ t=0 → last",
    )
    groups: dict[str, list[Row]] = defaultdict(list)
    for r in rows:
        groups[_name(r)].append(r)
    out = []
    for name, rs in sorted(groups.items()):

        def f(key: str, fmt: str = ".3g", rs: list[Row] = rs) -> str:
            v = finite_mean(rs, key)
            return format(v, fmt) if math.isfinite(v) else "n/a"

        out.append(
            (
                name,
                str(len(rs)),
                f("test_error_final", ".3f"),
                f("velocity_transient_ratio"),
                f("velocity_late_cv", ".2f"),
                f"{f('gap_test_error_first', '+.3f')} → {f('gap_test_error_last', '+.3f')}",
                f"{f('barrier_train_loss_first')} → {f('barrier_train_loss_last')}",
                f"{f('child_distance_first')} → {f('child_distance_last')}",
            )
        )
    return Table(
        caption="Per setting (means over seeds; gaps and barriers at the first and last spawn step)",
        header=header,
        rows=tuple(out),
    )


def _settings(rows: list[Row], n_failed: int, n_diverged: int) -> tuple[str, ...]:
    c, p = rows[0].config, rows[0].params
    return (
        f"Data: {sorted({r.config.data.name for r in rows})}, n_train={c.data.n_train}, n_test={c.data.n_test}.",
        f"Models: {sorted({model_kind(r) for r in rows})}; MLP {p.depth} × [{p.width}], CNN {p.depth} × "
        f"Conv({p.channels}); σ_w²={p.sigma_w2:g}, {p.parametrization} parametrization; controls: a linear model "
        f"and one hidden layer of {p.control_width} units in NTK parametrization; float64.",
        f"Training: {c.train.optimizer} (batch {c.train.batch_size or 'full'}) or full-batch GD, lr "
        f"{c.train.learning_rate}, {c.train.loss}, T = {c.train.steps} steps; seeds {sorted({r.config.seed for r in rows})}.",
        f"Velocity: the angle arccos(1 − S) the probe eNTK ({p.probe_per_class} training examples per class) turns per "
        f"step over {p.n_equal - 1} equal intervals (late: starting after {p.late_fraction:g} T), and over "
        f"{p.n_log - 1} log-spaced ones.",
        f"Spawning: {p.n_spawn} spawn steps (0 and log-spaced up to {p.spawn_last_fraction:g} T) unless listed; two "
        f"children and the linearization at θ_t trained for T − t steps; barriers on {p.n_alpha} points of [0, 1].",
        f"Runs: {len(rows)} completed, {n_diverged} diverged (left out), {n_failed} failed.",
    )


def section(study: Study, rows: list[Row], figures_dir: Path) -> StudySection:
    """Build the ``fort`` report section and write its figures into ``figures_dir``."""
    figures_dir.mkdir(parents=True, exist_ok=True)
    runs = tally(rows)
    done = [r for r in runs.completed if _arr(r, "spawn_step").size]
    if not done:
        return empty_section(study, runs)
    controls = [r for r in done if model_kind(r) in CONTROLS]
    studied = [r for r in done if model_kind(r) not in CONTROLS]
    figures = []
    for name, plot in (
        ("velocity", plot_velocity),
        ("linearized", plot_linearized),
        ("spawning", plot_spawning),
    ):
        path = figures_dir / f"fort_{name}.png"
        plot(done, path)
        figures.append(path)
    subs, claim_lines, per_run = _claim_lines(studied)
    control_entry, control_lines = _controls(controls)
    judged = [v for v in subs.values() if v != "inconclusive"]
    verdict: Verdict = (
        "inconclusive"
        if not judged
        else (judged[0] if len(judged) == 3 and len(set(judged)) == 1 else "mixed")
    )
    seeds = min((len({r.config.seed for r in rs}) for rs in _by_setting(studied).values()), default=0)
    findings = [
        f"Verdict: {verdict} — fixed-dt velocity: {subs['velocity']}; linearized from θ_t: {subs['linearized']}; "
        f"spawning barrier: {subs['spawning']}.",
        scope_line(OPERATIONALISED, DEVIATIONS, seeds),
        *control_lines,
        *claim_lines,
    ]
    if runs.n_diverged:
        findings.append(f"{runs.n_diverged} run(s) diverged and are left out.")
    return StudySection(
        **section_header(study),
        verdict=verdict,
        findings=tuple(findings),
        figures=tuple(figures),
        tables=(_table(done),),
        settings=_settings(done, runs.n_failed, runs.n_diverged),
        numbers={
            "sub_verdicts": subs,
            "positive_controls": control_entry,
            "runs": per_run,
            "operationalised": OPERATIONALISED,
            "deviations": DEVIATIONS,
            "seeds_per_setting": seeds,
            "thresholds": {
                "transient_factor": TRANSIENT_FACTOR,
                "constant_cv": CONSTANT_CV,
                "barrier_floor": BARRIER_FLOOR,
                "drop_fraction": DROP_FRACTION,
                "exact": EXACT,
                "lazy_loss_gap": LAZY_LOSS_GAP,
                "error_margin": "2 binomial s.e. of the net's test error",
            },
        },
        runs=tuple(r.run_id for r in done),
    )


def _by_setting(rows: list[Row]) -> dict[str, list[Row]]:
    out: dict[str, list[Row]] = defaultdict(list)
    for r in rows:
        out[_name(r)].append(r)
    return out
