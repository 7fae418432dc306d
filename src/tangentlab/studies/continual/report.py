"""The ``continual`` study's report: forgetting against width per regime, beside the kernel predictions.

For each setting (task type, parametrization, regime) and each model (``net``, ``lin`` = linearized net, ``ntk`` =
infinite-width NTK in closed form) the report fits ``F = a + slope * log2(width)`` by least squares over every
completed run (all seeds), so ``slope`` is the change of average forgetting per doubling of width, with its
regression standard error. Width *helps* in a setting when ``slope < -max(TOLERANCE, 2 * stderr)``. Runs of the
converged regime whose net missed the target training accuracy on some task within the step budget are not
converged: they are named in the findings and left out of the forgetting figure, the table and the fits (the
training-accuracy figure shows them).

Verdict (claim of Wenger et al. 2023 on Mirzadeh et al. 2022): for each (task type, parametrization) with both
regimes, the claim holds when width helps the net in the early-stopped regime and does not help it in the converged
regime; ``supported`` if it holds in every such pair, ``mixed`` if in some, ``not supported`` if in none.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import NamedTuple

import numpy as np

from tangentlab.report.figures import save_figure, styled
from tangentlab.report.section import StudySection, Table, Verdict
from tangentlab.studies._base import ResultRow, Study
from tangentlab.studies._sections import empty_section, tally
from tangentlab.studies._sections import header as section_header
from tangentlab.studies.continual import ContinualParams

TOLERANCE = 0.005  # forgetting change per doubling of width below which width "does not matter"
MODEL_NAMES: dict[str, str] = {"net": "network", "lin": "linearized net", "ntk": "NTK (∞ width, closed form)"}
STYLES: dict[str, str] = {"net": "-", "lin": "--", "ntk": ":"}
REGIMES: tuple[str, ...] = ("early_stopped", "converged", "fixed_budget")
Setting = tuple[str, str, str]  # task type, parametrization, regime


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


def helps(fit: LinearFit) -> bool:
    """Whether forgetting falls with width beyond noise: ``slope < -max(TOLERANCE, 2 stderr)``."""
    se = fit.stderr if math.isfinite(fit.stderr) else 0.0
    return fit.slope < -max(TOLERANCE, 2 * se)


def _setting(row: ResultRow[ContinualParams]) -> Setting:
    p = row.params
    return (
        str(p.task_type),
        str(p.parametrization),
        str(p.regime),
    )


def _width(row: ResultRow[ContinualParams]) -> int:
    return int(row.params.width)


def _points(rows: list[ResultRow[ContinualParams]], metric: str) -> tuple[np.ndarray, np.ndarray]:
    pairs = [(_width(r), r.metrics.get(metric)) for r in rows]
    good = [(w, float(v)) for w, v in pairs if isinstance(v, int | float) and math.isfinite(v)]
    return np.array([w for w, _ in good], dtype=float), np.array([v for _, v in good], dtype=float)


def _fits(rows: list[ResultRow[ContinualParams]]) -> dict[str, LinearFit | None]:
    return {k: fit_log2(*_points(rows, f"forgetting_{k}")) for k in MODEL_NAMES}


def _slope_text(fit: LinearFit | None) -> str:
    if fit is None:
        return "n/a"
    se = f" ± {fit.stderr:.3f}" if math.isfinite(fit.stderr) else ""
    return f"{fit.slope:+.3f}{se}"


def _name(s: Setting) -> str:
    return f"{s[0]} tasks, {s[1]} parametrization, {s[2].replace('_', '-')}"


def _mean_at(rows: list[ResultRow[ContinualParams]], metric: str, width: int) -> float:
    vals = [
        float(v) for r in rows if _width(r) == width and isinstance(v := r.metrics.get(metric), int | float)
    ]
    return float(np.mean(vals)) if vals else math.nan


@styled
def _plot(
    groups: dict[Setting, list[ResultRow[ContinualParams]]],
    metric: str,
    ylabel: str,
    path: Path,
    keys: tuple[str, ...],
) -> None:
    import matplotlib.pyplot as plt

    types = sorted({s[0] for s in groups}) or ["no completed"]
    params = sorted({s[1] for s in groups})
    regimes = [r for r in REGIMES if any(s[2] == r for s in groups)] or list(REGIMES)
    fig, axes = plt.subplots(
        len(types), len(regimes), figsize=(6 * len(regimes), 4.2 * len(types)), squeeze=False, sharey="row"
    )
    for i, tt in enumerate(types):
        for j, regime in enumerate(regimes):
            ax = axes[i][j]
            for c, par in enumerate(params):
                rows = groups.get((tt, par, regime), [])
                for key in keys:
                    w, v = _points(rows, f"{metric}_{key}")
                    if w.size == 0:
                        continue
                    ws = np.unique(w)
                    mean = np.array([v[w == x].mean() for x in ws])
                    lo = np.array([v[w == x].min() for x in ws])
                    hi = np.array([v[w == x].max() for x in ws])
                    label = MODEL_NAMES[key] + (f" ({par} param.)" if len(params) > 1 else "")
                    ax.plot(
                        ws, mean, STYLES[key], color=f"C{c}", marker="o" if key == "net" else ".", label=label
                    )
                    ax.fill_between(ws, lo, hi, color=f"C{c}", alpha=0.15 if key == "net" else 0.07)
            ax.set_xscale("log", base=2)
            ax.set_xlabel("width")
            ax.set_ylabel(ylabel)
            ax.set_title(f"{tt} tasks, {regime.replace('_', '-')}", fontsize=10)
            ax.grid(True, which="both", alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7)
    fig.suptitle(f"{ylabel} against width (mean over seeds; bands: min–max)")
    fig.tight_layout()
    save_figure(fig, path)


def _verdict(fits: dict[Setting, dict[str, LinearFit | None]]) -> tuple[Verdict, str]:
    pairs = sorted({(s[0], s[1]) for s in fits})
    checked: list[tuple[str, bool, str]] = []
    for tt, par in pairs:
        early = fits.get((tt, par, "early_stopped"), {}).get("net")
        conv = fits.get((tt, par, "converged"), {}).get("net")
        if early is None or conv is None:
            continue
        ok = helps(early) and not helps(conv)
        text = (
            f"{tt} tasks, {par} parametrization: slope per doubling {_slope_text(early)} early-stopped, {_slope_text(conv)} converged "
            f"(width {'helps' if helps(early) else 'does not help'} early-stopped, "
            f"{'helps' if helps(conv) else 'does not help'} converged)"
        )
        checked.append((tt, ok, text))
    budget = [
        f"{tt} tasks, {par} parametrization: slope per doubling {_slope_text(f)} (width "
        f"{'helps' if helps(f) else 'does not help'})"
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
    widths = sorted({_width(r) for r in rows})
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
        f"accuracy on j). Fits: forgetting on log2(width), all seeds; width helps when slope < −max({TOLERANCE}, "
        "2·stderr).",
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
    _plot(groups, "forgetting", "average forgetting", forget_png, ("net", "lin", "ntk"))
    every = {s: groups.get(s, []) + missed.get(s, []) for s in {*groups, *missed}}
    _plot(every, "min_train_acc", "lowest training accuracy reached on a task", train_png, ("net", "lin"))

    verdict, verdict_text = _verdict(fits)
    findings = [verdict_text]
    order = sorted(groups, key=lambda s: (s[0], s[1], REGIMES.index(s[2]) if s[2] in REGIMES else 9))
    for s in order:
        rs = groups[s]
        widths = sorted({_width(r) for r in rs})
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
        widths_missed = sorted({_width(r) for r in rs})
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
        widths = sorted({_width(r) for r in rs})
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
                f"{s[0]}/{s[1]}/{s[2]}/{k}": {"slope": f.slope, "stderr": f.stderr, "width_helps": helps(f)}
                for s in sorted(fits)
                for k, f in fits[s].items()
                if f is not None
            },
        },
        runs=tuple(r.run_id for r in runs.completed),
    )
