"""The ``continual`` study's report: forgetting against width per regime, beside the kernel predictions.

For each setting (task type, parametrization, regime) and each model (``net``, ``lin`` = linearized net, ``ntk`` =
infinite-width NTK in closed form) the report fits ``F = a + slope * log2(width)`` by least squares over every
completed run (all seeds), so ``slope`` is the change of average forgetting per doubling of width, with its
regression standard error. Each slope gets one of three labels, from its sign and its interval
``slope ± max(TOLERANCE, 2 * stderr)`` (:func:`effect`): width *lowers* forgetting (the interval lies below 0), width
*raises* it (above 0), or *no resolvable effect* (the interval contains 0) — so opposite measured outcomes never
share a label. Runs of the
converged regime whose net missed the target training accuracy on some task within the step budget are not
converged: they are named in the findings and left out of the forgetting figure, the table and the fits (the
training-accuracy figure shows them).

Verdict (claim of Wenger et al. 2023 on Mirzadeh et al. 2022): for each (task type, parametrization) with both
regimes, the claim holds when width helps the net in the early-stopped regime and does not help it in the converged
regime (no resolvable effect, or width raises forgetting); ``supported`` if it holds in every such pair, ``mixed``
if in some, ``not supported`` if in none. The slopes are fitted over every seed; with fewer than three seeds the
findings say so next to the interval.

Positive control (:func:`positive_control`): with a separate head per task (``split``) the infinite-width NTK
predicts *zero* forgetting (its per-output kernel is the scalar NTK times the identity, so training one head leaves
the others' outputs unchanged), whatever the regime. At the widest width of the sweep the net's forgetting, per
seed paired with the closed form's, must match it: ``|mean difference| <= max(MATCH_TOLERANCE, 2 * standard error)``
(:func:`matches`). The same test is reported for every (task type, regime) at the widest width, permuted tasks
included, where the closed form is only approached (finite width, GD with momentum against gradient flow).
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from tangentlab.report.section import StudySection, Table, Verdict
from tangentlab.studies._base import ResultRow, Study
from tangentlab.studies._sections import empty_section, tally
from tangentlab.studies._sections import header as section_header
from tangentlab.studies.continual import ContinualParams
from tangentlab.studies.continual.figures import (
    MODEL_NAMES,
    REGIMES,
    Setting,
    plot_against_width,
    points,
    run_width,
)

TOLERANCE = 0.005  # forgetting change per doubling of width below which width "does not matter"
MATCH_TOLERANCE = (
    0.01  # forgetting gap to the NTK closed form counted as a match (a test example in 100 per task)
)
MIN_SEEDS = 3
EFFECTS: dict[str, str] = {
    "lowers": "width lowers forgetting",
    "raises": "width raises forgetting",
    "none": "no resolvable effect of width",
}


class LinearFit(NamedTuple):
    """``y = intercept + slope * log2(width)`` with the slope's standard error (NaN with two widths only)."""

    slope: float
    intercept: float
    stderr: float


def fit_log2(widths: np.ndarray, values: np.ndarray) -> LinearFit | None:
    """Least squares of ``values`` on ``log2(widths)``; None with fewer than two distinct widths."""
    x = np.log2(np.asarray(widths, dtype=float))
    y = np.asarray(values, dtype=float)
    if np.unique(x).size < 2:
        return None
    slope, intercept = np.polyfit(x, y, 1)
    dof = x.size - 2
    if dof <= 0:
        return LinearFit(float(slope), float(intercept), math.nan)
    resid = y - (intercept + slope * x)
    se = math.sqrt(float(resid @ resid) / dof / float(((x - x.mean()) ** 2).sum()))
    return LinearFit(float(slope), float(intercept), se)


def _halfwidth(fit: LinearFit) -> float:
    return max(TOLERANCE, 2 * (fit.stderr if math.isfinite(fit.stderr) else 0.0))


def effect(fit: LinearFit) -> str:
    """``"lowers"`` when the interval ``slope ± max(TOLERANCE, 2 stderr)`` lies below 0, ``"raises"`` when it lies
    above 0, ``"none"`` when it contains 0."""
    h = _halfwidth(fit)
    return "lowers" if fit.slope < -h else "raises" if fit.slope > h else "none"


def helps(fit: LinearFit) -> bool:
    """Whether forgetting falls with width beyond noise (:func:`effect` is ``"lowers"``)."""
    return effect(fit) == "lowers"


def matches(net: list[float], ntk: list[float]) -> tuple[bool, float, float]:
    """(match, mean difference, its standard error) of per-seed paired forgetting ``net - ntk``: a match when
    ``|mean| <= max(MATCH_TOLERANCE, 2 stderr)`` (the standard error is NaN, and only the tolerance counts, with one
    seed)."""
    d = np.asarray(net, dtype=float) - np.asarray(ntk, dtype=float)
    mean = float(d.mean())
    se = float(d.std(ddof=1) / math.sqrt(d.size)) if d.size > 1 else math.nan
    return abs(mean) <= max(MATCH_TOLERANCE, 2 * se if math.isfinite(se) else 0.0), mean, se


def _setting(row: ResultRow[ContinualParams]) -> Setting:
    p = row.params
    return (
        str(p.task_type),
        str(p.parametrization),
        str(p.regime),
    )


def _fits(rows: list[ResultRow[ContinualParams]]) -> dict[str, LinearFit | None]:
    return {k: fit_log2(*points(rows, f"forgetting_{k}")) for k in MODEL_NAMES}


def _slope_text(fit: LinearFit | None) -> str:
    if fit is None:
        return "n/a"
    se = f" ± {fit.stderr:.3f}" if math.isfinite(fit.stderr) else ""
    return f"{fit.slope:+.3f}{se}"


def _effect_text(fit: LinearFit, seeds: int) -> str:
    """``-0.030 ± 0.015 (interval [-0.060, +0.000], 3 seeds: width lowers forgetting)``."""
    h = _halfwidth(fit)
    few = (
        f"{seeds} seed(s) — fewer than {MIN_SEEDS}, a rough interval"
        if seeds < MIN_SEEDS
        else f"{seeds} seeds"
    )
    return (
        f"{_slope_text(fit)} (interval [{fit.slope - h:+.3f}, {fit.slope + h:+.3f}], {few}: "
        f"{EFFECTS[effect(fit)]})"
    )


def _name(s: Setting) -> str:
    return f"{s[0]} tasks, {s[1]} parametrization, {s[2].replace('_', '-')}"


def _mean_at(rows: list[ResultRow[ContinualParams]], metric: str, width: int) -> float:
    vals = [
        float(v)
        for r in rows
        if run_width(r) == width and isinstance(v := r.metrics.get(metric), int | float)
    ]
    return float(np.mean(vals)) if vals else math.nan


def _verdict(
    fits: dict[Setting, dict[str, LinearFit | None]], seeds: dict[Setting, int]
) -> tuple[Verdict, str]:
    pairs = sorted({(s[0], s[1]) for s in fits})
    checked: list[tuple[str, bool, str]] = []
    for tt, par in pairs:
        early = fits.get((tt, par, "early_stopped"), {}).get("net")
        conv = fits.get((tt, par, "converged"), {}).get("net")
        if early is None or conv is None:
            continue
        ok = helps(early) and not helps(conv)
        text = (
            f"{tt} tasks, {par} parametrization: slope per doubling "
            f"{_effect_text(early, seeds[(tt, par, 'early_stopped')])} early-stopped, "
            f"{_effect_text(conv, seeds[(tt, par, 'converged')])} converged"
        )
        checked.append((tt, ok, text))
    budget = [
        f"{tt} tasks, {par} parametrization: slope per doubling {_effect_text(f, seeds[(tt, par, reg)])}"
        for (tt, par, reg), fs in sorted(fits.items())
        if reg == "fixed_budget" and (f := fs.get("net")) is not None
    ]
    if budget:  # Mirzadeh et al.'s own protocol, reported beside the verdict (it does not enter it)
        mirzadeh = (
            "Mirzadeh et al.'s protocol (a fixed step budget per task, the same for every width): "
            + "; ".join(budget)
        )
    if not checked:
        return "inconclusive", "No setting has both regimes at two or more widths: the claim is untested." + (
            f" {mirzadeh}." if budget else ""
        )
    details = "; ".join(t for _, _, t in checked) + (f". {mirzadeh}" if budget else "")
    n_ok = sum(ok for _, ok, _ in checked)
    if n_ok == len(checked):
        return "supported", f"Verdict: supported — {details}."
    if n_ok:
        return "mixed", f"Verdict: mixed — the claim holds in {n_ok} of {len(checked)} settings: {details}."
    return "not supported", f"Verdict: not supported — {details}."


def _paired(rows: list[ResultRow[ContinualParams]], width: int) -> tuple[list[float], list[float]]:
    pairs = [
        (float(a), float(b))
        for r in rows
        if run_width(r) == width
        and isinstance(a := r.metrics.get("forgetting_net"), int | float)
        and isinstance(b := r.metrics.get("forgetting_ntk"), int | float)
        and math.isfinite(a)
        and math.isfinite(b)
    ]
    return [a for a, _ in pairs], [b for _, b in pairs]


def positive_control(groups: dict[Setting, list[ResultRow[ContinualParams]]]) -> tuple[dict[str, Any], str]:
    """The control's findings.json entry and finding (module docstring): net against the NTK closed form at the
    widest width of every setting; the verdict on the split (multi-head) settings, where the closed form is 0."""
    measured = []
    for s in sorted(groups):
        widths = sorted({run_width(r) for r in groups[s]})
        net, ntk = _paired(groups[s], widths[-1]) if widths else ([], [])
        if not net:
            continue
        ok, diff, se = matches(net, ntk)
        measured.append(
            {
                "task_type": s[0],
                "parametrization": s[1],
                "regime": s[2],
                "width": widths[-1],
                "seeds": len(net),
                "forgetting_net": float(np.mean(net)),
                "forgetting_ntk": float(np.mean(ntk)),
                "difference": diff,
                "stderr": se,
                "match": ok,
            }
        )
    control = [m for m in measured if m["task_type"] == "split"]
    verdict = "not run" if not control else ("match" if all(m["match"] for m in control) else "no match")
    entry: dict[str, Any] = {
        "setting": "split tasks (a head per task) at the widest width of the sweep, every regime",
        "expected": "the NTK closed form predicts zero forgetting with a head per task; the widest net matches it: "
        f"|mean(F_net − F_NTK)| ≤ max({MATCH_TOLERANCE:g}, 2 s.e.) over paired seeds",
        "measured": control,
        "verdict": verdict,
        "net_vs_ntk_at_widest": measured,
    }

    def text(m: dict[str, Any]) -> str:
        se = f" ± {m['stderr']:.3f}" if math.isfinite(m["stderr"]) else ""
        few = " (fewer than 3 seeds)" if m["seeds"] < MIN_SEEDS else ""
        return (
            f"{m['task_type']}/{m['regime'].replace('_', '-')} at width {m['width']}: net {m['forgetting_net']:.3f} "
            f"vs NTK {m['forgetting_ntk']:.3f}, difference {m['difference']:+.3f}{se} over {m['seeds']} seed(s)"
            f"{few}, {'match' if m['match'] else 'no match'}"
        )

    others = [m for m in measured if m["task_type"] != "split"]
    line = (
        "Positive control (a head per task: the NTK closed form predicts zero forgetting): "
        f"{verdict} — "
        + ("; ".join(map(text, control)) or "no split-task runs")
        + (
            ". The same test where the closed form is only approached: " + "; ".join(map(text, others))
            if others
            else ""
        )
        + "."
    )
    return entry, line


def _convergence_finding(s: Setting, rows: list[ResultRow[ContinualParams]]) -> str | None:
    targets = {r.metrics.get("target_accuracy") for r in rows}
    target = next(iter(targets)) if len(targets) == 1 else None
    if not isinstance(target, int | float):
        return None
    missed = [r for r in rows if r.metrics.get("reached_target_net") is False]
    worst = min(float(v) for r in rows if isinstance(v := r.metrics.get("min_train_acc_net"), int | float))
    if missed:
        return (
            f"{_name(s)}: {len(missed)} of {len(rows)} nets did not reach the training accuracy {target:.2f} on every "
            f"task within the budget (lowest {worst:.3f}); their forgetting is that of a less-trained net."
        )
    return (
        f"{_name(s)}: every net reached training accuracy ≥ {target:.2f} on every task (lowest {worst:.3f})."
    )


def _settings_text(rows: list[ResultRow[ContinualParams]], runs_summary: str) -> tuple[str, ...]:
    c = rows[0].config
    p = rows[0].params
    widths = sorted({run_width(r) for r in rows})
    seeds = sorted({r.config.seed for r in rows})
    lr = f"η = {p.lr_fraction}·n/λ_max(Θ_0)" if p.lr_fraction is not None else "train.learning_rate"
    return (
        f"Data: {c.data.name}, n_train={c.data.n_train}, n_test={c.data.n_test}; split tasks of "
        f"{p.classes_per_task} classes with one masked head each (task-incremental); permuted tasks "
        f"({p.n_tasks}) share one head over all classes, task 0 unpermuted.",
        f"Model: {'the study default (ReLU MLP, one hidden layer)' if c.model is None else c.model}; float64.",
        f"Training: MSE on one-hot targets, {c.train.optimizer} (momentum {c.train.momentum}; {lr} for GD/SGD); "
        "converged = train to training "
        f"accuracy ≥ {p.converged_accuracy} or {c.train.steps} steps per task; early-stopped = "
        f"{p.early_steps} steps per task"
        + (f" or training accuracy {p.early_accuracy}" if p.early_accuracy is not None else "")
        + f"; accuracy checked every {p.check_every} steps.",
        "Kernel predictions: the linearized net trained the same way, and the infinite-width NTK in closed form "
        f"(f_0 {'one NNGP prior draw per seed' if p.kernel_f0 == 'sample' else '= 0, the mean'}; "
        "gradient flow at (lr_fraction or 0.5)·n/λ_max(Θ_∞), steps counted 1/(1−momentum) times, same stopping "
        "rule).",
        f"Grid: widths {widths}; seeds {seeds}; settings {sorted({_name(_setting(r)) for r in rows})}.",
        f"Runs: {runs_summary}. Forgetting: mean over tasks j < T of (best accuracy on j after learning it − final "
        f"accuracy on j). Fits: forgetting on log2(width), all seeds; width lowers (raises) forgetting when the "
        f"interval slope ± max({TOLERANCE}, 2·stderr) lies below (above) 0, else no resolvable effect"
        + (f" — fewer than {MIN_SEEDS} seeds: rough intervals." if len(seeds) < MIN_SEEDS else "."),
    )


def section(study: Study, rows: list[ResultRow[ContinualParams]], figures_dir: Path) -> StudySection:
    """Build the ``continual`` report section and write its figures into ``figures_dir``."""
    figures_dir.mkdir(parents=True, exist_ok=True)
    runs = tally(rows)
    if not runs.completed:
        return empty_section(study, runs)
    # "converged" means converged: nets that missed the target within the budget are reported, not fitted
    groups: dict[Setting, list[ResultRow[ContinualParams]]] = defaultdict(list)
    missed: dict[Setting, list[ResultRow[ContinualParams]]] = defaultdict(list)
    for r in runs.completed:
        s = _setting(r)
        (missed if s[2] == "converged" and r.metrics.get("reached_target_net") is False else groups)[
            s
        ].append(r)
    fits = {s: _fits(rs) for s, rs in groups.items()}

    forget_png = figures_dir / "continual_forgetting_vs_width.png"
    train_png = figures_dir / "continual_accuracy_vs_width.png"
    plot_against_width(groups, "forgetting", "average forgetting", forget_png, ("net", "lin", "ntk"))
    every = {s: groups.get(s, []) + missed.get(s, []) for s in {*groups, *missed}}
    plot_against_width(
        every, "min_train_acc", "lowest training accuracy reached on a task", train_png, ("net", "lin")
    )

    seeds = {s: len({r.config.seed for r in rs}) for s, rs in groups.items()}
    verdict, verdict_text = _verdict(fits, seeds)
    control_entry, control_line = positive_control(groups)
    findings = [verdict_text, control_line]
    order = sorted(groups, key=lambda s: (s[0], s[1], REGIMES.index(s[2]) if s[2] in REGIMES else 9))
    for s in order:
        rs = groups[s]
        widths = sorted({run_width(r) for r in rs})
        lo, hi = widths[0], widths[-1]
        text = (
            f"{_name(s)}: forgetting of the net {_mean_at(rs, 'forgetting_net', lo):.3f} at width {lo} → "
            f"{_mean_at(rs, 'forgetting_net', hi):.3f} at width {hi} (slope per doubling "
            f"{_slope_text(fits[s]['net'])}); linearized net {_mean_at(rs, 'forgetting_lin', hi):.3f}, "
            f"NTK closed form {_mean_at(rs, 'forgetting_ntk', hi):.3f} at width {hi}; final accuracy "
            f"{_mean_at(rs, 'final_acc_net', hi):.3f}."
        )
        findings.append(text)
        conv = _convergence_finding(s, rs)
        if conv:
            findings.append(conv)
    for s, rs in sorted(missed.items()):
        worst = min(float(v) for r in rs if isinstance(v := r.metrics.get("min_train_acc_net"), int | float))
        widths_missed = sorted({run_width(r) for r in rs})
        findings.append(
            f"{_name(s)}: {len(rs)} run(s) (widths {widths_missed}) left out of the figure, table and fits — the net "
            f"did not reach the target training accuracy on every task within the step budget (lowest {worst:.3f})."
        )
    if runs.n_diverged:
        findings.append(f"{runs.n_diverged} run(s) diverged and are left out.")

    header = (
        "setting",
        "widths",
        "runs",
        "F net (narrow → wide)",
        "slope net",
        "slope lin",
        "F NTK",
        "min train acc (net)",
        "final acc (net, widest)",
    )
    table_rows = []
    for s in order:
        rs = groups[s]
        widths = sorted({run_width(r) for r in rs})
        accs = [float(v) for r in rs if isinstance(v := r.metrics.get("min_train_acc_net"), int | float)]
        table_rows.append(
            (
                _name(s),
                ", ".join(str(w) for w in widths),
                str(len(rs)),
                f"{_mean_at(rs, 'forgetting_net', widths[0]):.3f} → {_mean_at(rs, 'forgetting_net', widths[-1]):.3f}",
                _slope_text(fits[s]["net"]),
                _slope_text(fits[s]["lin"]),
                f"{_mean_at(rs, 'forgetting_ntk', widths[-1]):.3f}",
                f"{min(accs):.3f}" if accs else "n/a",
                f"{_mean_at(rs, 'final_acc_net', widths[-1]):.3f}",
            )
        )
    table = Table(
        caption="Average forgetting F against width: mean at the narrowest → widest width, fitted change per "
        "doubling of width (± standard error), the NTK prediction, and the training accuracy reached",
        header=header,
        rows=tuple(table_rows),
    )
    return StudySection(
        **section_header(study),
        verdict=verdict,
        findings=tuple(findings),
        figures=(forget_png, train_png),
        tables=(table,),
        settings=_settings_text(runs.completed, runs.summary()),
        numbers={
            "tolerance": TOLERANCE,
            "slopes_per_doubling": {
                f"{s[0]}/{s[1]}/{s[2]}/{k}": {
                    "slope": f.slope,
                    "stderr": f.stderr,
                    "interval": [f.slope - _halfwidth(f), f.slope + _halfwidth(f)],
                    "effect": effect(f),
                    "width_helps": helps(f),
                    "seeds": seeds[s],
                }
                for s in sorted(fits)
                for k, f in fits[s].items()
                if f is not None
            },
            "positive_control": control_entry,
            "match_tolerance": MATCH_TOLERANCE,
        },
        runs=tuple(r.run_id for r in runs.completed),
    )
