"""The ``uncertainty`` study's report: metrics against width per method and dataset, the gap figure, the verdict.

Verdict rule (Wenger et al. 2023's claim that Laplace and ensembles beat the NTK-GP's uncertainty): for every
(dataset, width) cell, compare the seed-mean test NLL of ``laplace`` and of ``ensemble`` with that of ``ntk_gp``.
A cell *supports* the claim when both are lower, *contradicts* it when neither is. ``supported`` when at least
:data:`MAJORITY` of the cells support it, ``not supported`` when at least that share contradict it, ``mixed``
otherwise; ``inconclusive`` without any cell holding all three methods.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from tangentlab.report.figures import save_figure, styled
from tangentlab.report.section import StudySection, Table, Verdict
from tangentlab.studies._base import ResultRow, Study
from tangentlab.studies._sections import empty_section, finite_mean, finite_values, tally
from tangentlab.studies._sections import header as section_header
from tangentlab.studies.uncertainty import UncertaintyParams

MAJORITY = 0.75
METHOD_NAMES: dict[str, str] = {
    "ntk_gp": "NTK-GP (t=∞)",
    "nngp": "NNGP posterior",
    "laplace": "linearized Laplace",
    "ensemble": "deep ensemble",
    "net": "single net",
}
REGRESSION = (("nll", "test NLL"), ("rmse", "test RMSE (z-scored)"), ("cov90", "90 % interval coverage"))
CLASSIFICATION = (("nll", "test NLL"), ("acc", "test accuracy"), ("ece", "test ECE"))
Cell = tuple[str, int]


def _width(row: ResultRow[UncertaintyParams]) -> int:
    return int(row.params.width)


def _is_class(rows: list[ResultRow[UncertaintyParams]]) -> bool:
    return any(k.endswith("_acc") for r in rows for k in r.metrics)


def _panels(rows: list[ResultRow[UncertaintyParams]]) -> list[tuple[str, str]]:
    base = CLASSIFICATION if _is_class(rows) else REGRESSION
    return [
        *base,
        ("nll_shift", "NLL on shifted inputs (their original targets)"),
        ("entropy", "mean predictive entropy (in-distribution)"),
        ("entropy_shift", "mean predictive entropy (shifted)"),
    ]


@styled
def _plot_dataset(name: str, rows: list[ResultRow[UncertaintyParams]], path: Path) -> None:
    import matplotlib.pyplot as plt

    panels = _panels(rows)
    fig, axes = plt.subplots(2, 3, figsize=(14, 8))
    by_width: dict[int, list[ResultRow[UncertaintyParams]]] = defaultdict(list)
    for r in rows:
        by_width[_width(r)].append(r)
    widths = sorted(by_width)
    for ax, (metric, label) in zip(axes.ravel(), panels, strict=True):
        for i, method in enumerate(METHOD_NAMES):
            means, lo, hi = [], [], []
            for w in widths:
                vals = finite_values(by_width[w], f"{method}_{metric}")
                means.append(np.mean(vals) if vals else np.nan)
                lo.append(np.min(vals) if vals else np.nan)
                hi.append(np.max(vals) if vals else np.nan)
            m = np.array(means)
            style = "--" if method in ("ntk_gp", "nngp") else "-"
            ax.errorbar(
                widths,
                m,
                yerr=[m - np.array(lo), np.array(hi) - m],
                fmt=style,
                marker="o",
                capsize=3,
                color=f"C{i}",
                label=METHOD_NAMES[method],
            )
        if metric == "cov90":
            ax.axhline(0.9, color="k", lw=1, ls=":", label="nominal 0.9")
        ax.set_xscale("log")
        ax.set_xticks(widths, [str(w) for w in widths])
        ax.minorticks_off()
        ax.set_xlabel("width")
        ax.set_title(label, fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(
        f"{name}: predictive quality against width (mean over seeds; bars: min–max; dashed: infinite width)"
    )
    fig.tight_layout()
    save_figure(fig, path)


@styled
def _plot_gap(rows: list[ResultRow[UncertaintyParams]], path: Path) -> bool:
    import matplotlib.pyplot as plt

    with_grid = [
        r for r in rows if r.artifacts_dir is not None and (r.artifacts_dir / "grid_x.npy").is_file()
    ]
    if not with_grid:
        return False
    widths = sorted({_width(r) for r in with_grid})
    chosen = [
        min((r for r in with_grid if _width(r) == w), key=lambda r: r.config.seed)
        for w in (widths[0], widths[-1])
    ]
    fig, axes = plt.subplots(
        len(chosen), len(METHOD_NAMES), figsize=(4 * len(METHOD_NAMES), 3.3 * len(chosen))
    )
    axes = np.atleast_2d(axes)
    for row_ax, r in zip(axes, chosen, strict=True):
        gx, tx, ty = r.artifact("grid_x"), r.artifact("train_x"), r.artifact("train_y")
        gap = float(r.metrics.get("shift_scale") or 0.3)
        for ax, method in zip(row_ax, METHOD_NAMES, strict=True):
            mean, std = r.artifact(f"{method}_grid_mean"), r.artifact(f"{method}_grid_std")
            ax.axvspan(-gap, gap, color="0.9")
            ax.fill_between(gx, mean - 1.645 * std, mean + 1.645 * std, alpha=0.3, label="90 % interval")
            ax.plot(gx, mean, lw=1.5)
            ax.plot(tx, ty, "k.", ms=3)
            ax.set_ylim(-3.5, 3.5)
            ax.set_title(f"{METHOD_NAMES[method]}, width {_width(r)}", fontsize=9)
    fig.suptitle("gap1d: predictive mean ± 90 % interval (grey band: the gap without training data)")
    fig.tight_layout()
    save_figure(fig, path)
    return True


def _cells(groups: dict[str, list[ResultRow[UncertaintyParams]]]) -> dict[Cell, dict[str, float]]:
    cells: dict[Cell, dict[str, float]] = {}
    for name, rows in groups.items():
        for w in sorted({_width(r) for r in rows}):
            at = [r for r in rows if _width(r) == w]
            cells[(name, w)] = {m: finite_mean(at, f"{m}_nll") for m in METHOD_NAMES}
    return cells


def judge(cells: dict[Cell, dict[str, float]]) -> tuple[Verdict, str]:
    usable = {
        c: v for c, v in cells.items() if all(math.isfinite(v[m]) for m in ("ntk_gp", "laplace", "ensemble"))
    }
    if not usable:
        return (
            "inconclusive",
            "Verdict: inconclusive — no (dataset, width) with NTK-GP, Laplace and ensemble NLLs.",
        )
    support = [c for c, v in usable.items() if v["laplace"] < v["ntk_gp"] and v["ensemble"] < v["ntk_gp"]]
    contra = [c for c, v in usable.items() if v["laplace"] >= v["ntk_gp"] and v["ensemble"] >= v["ntk_gp"]]
    n = len(usable)
    text = (
        f"in {len(support)} of {n} (dataset, width) cells both linearized Laplace and the deep ensemble have a lower "
        f"test NLL than the NTK-GP; in {len(contra)} neither does (an extension: methods compared at practical "
        "sizes, not a test of the infinite-width limit)"
    )
    if len(support) >= MAJORITY * n:
        return "supported", f"Verdict: supported — {text}."
    if len(contra) >= MAJORITY * n:
        return "not supported", f"Verdict: not supported — {text}."
    return "mixed", f"Verdict: mixed — {text}."


def _dataset_findings(name: str, rows: list[ResultRow[UncertaintyParams]]) -> list[str]:
    widths = sorted({_width(r) for r in rows})
    out = []
    for w in (widths[0], widths[-1]) if len(widths) > 1 else (widths[0],):
        at = [r for r in rows if _width(r) == w]
        nll = {m: finite_mean(at, f"{m}_nll") for m in METHOD_NAMES}
        ranked = sorted((v, m) for m, v in nll.items() if math.isfinite(v))
        order = " < ".join(f"{METHOD_NAMES[m]} {v:.3f}" for v, m in ranked)
        out.append(f"{name}, width {w}: test NLL {order}.")
    widest = [r for r in rows if _width(r) == widths[-1]]
    rises = [
        m
        for m in METHOD_NAMES
        if finite_mean(widest, f"{m}_entropy_shift") > finite_mean(widest, f"{m}_entropy")
    ]
    flat = [m for m in METHOD_NAMES if m not in rises]
    gains = ", ".join(
        f"{METHOD_NAMES[m]} {finite_mean(widest, f'{m}_entropy_shift') - finite_mean(widest, f'{m}_entropy'):+.3f}"
        for m in METHOD_NAMES
    )
    out.append(
        f"{name}, width {widths[-1]}: predictive entropy on shifted minus in-distribution inputs: {gains} "
        f"(rises for {len(rises)} of {len(METHOD_NAMES)} methods"
        + (f"; not for {', '.join(METHOD_NAMES[m] for m in flat)})." if flat else ").")
    )
    if not _is_class(rows):
        cov = ", ".join(f"{METHOD_NAMES[m]} {finite_mean(widest, f'{m}_cov90'):.2f}" for m in METHOD_NAMES)
        out.append(f"{name}, width {widths[-1]}: 90 % interval coverage (nominal 0.90): {cov}.")
        if (
            any(f"{m}_cov90_shift" in r.metrics for r in widest for m in METHOD_NAMES)
            and rows[0].metrics.get("shift") == "gap"
        ):
            cov_s = ", ".join(
                f"{METHOD_NAMES[m]} {finite_mean(widest, f'{m}_cov90_shift'):.2f}" for m in METHOD_NAMES
            )
            out.append(f"{name}, width {widths[-1]}: coverage inside the gap: {cov_s}.")
    else:
        ece = ", ".join(f"{METHOD_NAMES[m]} {finite_mean(widest, f'{m}_ece'):.3f}" for m in METHOD_NAMES)
        out.append(f"{name}, width {widths[-1]}: test ECE: {ece}.")
    return out


def _table(name: str, rows: list[ResultRow[UncertaintyParams]]) -> Table:
    cls = _is_class(rows)
    cols = ["nll", "acc", "ece"] if cls else ["nll", "rmse", "cov90"]
    cols += ["entropy", "entropy_shift"]
    body = []
    for w in sorted({_width(r) for r in rows}):
        at = [r for r in rows if _width(r) == w]
        for m in METHOD_NAMES:
            body.append((str(w), METHOD_NAMES[m], *(f"{finite_mean(at, f'{m}_{c}'):.3f}" for c in cols)))
    return Table(
        caption=f"{name}: seed-mean metrics per width and method (entropy in nats; regression in z-scored units)",
        header=("width", "method", *cols),
        rows=tuple(body),
    )


def _settings(rows: list[ResultRow[UncertaintyParams]], summary: str) -> tuple[str, ...]:
    c = rows[0].config
    p = rows[0].params
    names = sorted({r.config.data.name for r in rows})
    shifts = sorted(
        {f"{r.config.data.name}: {r.metrics.get('shift')} {r.metrics.get('shift_scale')}" for r in rows}
    )
    return (
        f"Data: {', '.join(names)}; n_train={c.data.n_train}, n_val={c.data.n_val} (early stopping, noise and "
        f"temperature), test ≤ {p.max_test} points; shifts: {'; '.join(shifts)}.",
        f"Model: {'one-hidden-layer ReLU MLP with biases' if c.model is None else c.model}, "
        f"{p.parametrization} parametrization, widths {sorted({_width(r) for r in rows})}, float64.",
        f"Training: {c.train.optimizer}, lr {c.train.learning_rate}, ≤ {c.train.steps} steps, MSE (one-hot targets "
        f"for classification), patience {p.patience}; ensemble of {p.ensemble_size} nets.",
        f"Laplace: prior mean {p.laplace_prior_mean}, α and σ by evidence (grid + L-BFGS); NNGP: "
        "amplitude and noise by GP evidence; NTK-GP at t = ∞ with validation-fitted noise (regression).",
        "Probabilities: E softmax(f/T), probit approximation softmax(mean/√(T²+π·var/8)) for the Gaussian methods, "
        "the average over members for the ensemble; T by validation NLL for every method.",
        f"Seeds: {sorted({r.config.seed for r in rows})}. Runs: {summary}.",
    )


def section(study: Study, rows: list[ResultRow[UncertaintyParams]], figures_dir: Path) -> StudySection:
    """Build the ``uncertainty`` report section and write its figures into ``figures_dir``."""
    figures_dir.mkdir(parents=True, exist_ok=True)
    runs = tally(rows)
    if not runs.completed:
        return empty_section(study, runs)
    groups: dict[str, list[ResultRow[UncertaintyParams]]] = defaultdict(list)
    for r in runs.completed:
        groups[r.config.data.name].append(r)
    figures: list[Path] = []
    for name in sorted(groups):
        path = figures_dir / f"uncertainty_{name.replace(':', '_').replace('/', '_')}.png"
        _plot_dataset(name, groups[name], path)
        figures.append(path)
    gap_png = figures_dir / "uncertainty_gap1d_predictive.png"
    if "gap1d" in groups and _plot_gap(groups["gap1d"], gap_png):
        figures.append(gap_png)
    cells = _cells(groups)
    verdict, verdict_text = judge(cells)
    findings = [verdict_text]
    for name in sorted(groups):
        mine = {c: v for c, v in cells.items() if c[0] == name}
        wins = [c[1] for c, v in mine.items() if v["laplace"] < v["ntk_gp"] and v["ensemble"] < v["ntk_gp"]]
        findings.append(
            f"{name}: Laplace and ensemble both beat the NTK-GP's test NLL at {len(wins)} of {len(mine)} widths"
            + (f" ({', '.join(map(str, wins))})." if wins else ".")
        )
    for method in ("laplace", "ensemble", "nngp", "net"):
        better = [c for c, v in cells.items() if math.isfinite(v[method]) and v[method] < v["ntk_gp"]]
        findings.append(
            f"{METHOD_NAMES[method]} has a lower test NLL than the NTK-GP in {len(better)} of {len(cells)} cells."
        )
    for name in sorted(groups):
        findings.extend(_dataset_findings(name, groups[name]))
    if runs.n_diverged or runs.n_failed:
        findings.append(f"Left out: {runs.n_diverged} diverged and {runs.n_failed} failed run(s).")
    return StudySection(
        **section_header(study),
        verdict=verdict,
        findings=tuple(findings),
        figures=tuple(figures),
        tables=tuple(_table(n, groups[n]) for n in sorted(groups)),
        settings=_settings(runs.completed, runs.summary()),
        numbers={"test_nll": {f"{c[0]}/{c[1]}": v for c, v in sorted(cells.items())}, "majority": MAJORITY},
        runs=tuple(r.run_id for r in runs.completed),
    )
