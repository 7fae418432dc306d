"""The ``uncertainty`` study's report: metrics against width per method and dataset, the gap figure, the verdict.

Verdict rule (Wenger et al. 2023's claim that Laplace and ensembles beat the NTK-GP's uncertainty): for every
(dataset, width) cell, compare the seed-mean test NLL of ``laplace`` and of ``ensemble`` with that of ``ntk_gp``.
A cell *supports* the claim when both are lower, *contradicts* it when neither is. ``supported`` when at least
:data:`MAJORITY` of the cells support it, ``not supported`` when at least that share contradict it, ``mixed``
otherwise; ``inconclusive`` without any cell holding all three methods.

Positive control (:func:`positive_control`, regression runs with ``prior_control``): the same methods scored on
targets drawn from the NNGP prior of the run's own net (plus noise), where the NNGP posterior is the exact Bayesian
predictive. It *matches* when in every such run the NNGP posterior's 90 % coverage is within two binomial standard
errors of 0.9 and its test NLL is not above the best other method's by more than ``max(NLL_TOLERANCE, 2 s.e.)``, the
standard error of their paired per-point difference (one run is one draw of the function, which that standard error
does not see: the Bayesian predictive is best in expectation over draws, not on every draw). The claim's own test (Laplace and ensemble both below the NTK-GP) on those targets is
reported beside it.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from tangentlab.report.figures import save_figure, styled
from tangentlab.report.section import StudySection, Table, Verdict
from tangentlab.studies._base import ResultRow, Study
from tangentlab.studies._sections import empty_section, finite_mean, finite_values, tally
from tangentlab.studies._sections import header as section_header
from tangentlab.studies.uncertainty import UncertaintyParams

MAJORITY = 0.75
NLL_TOLERANCE = 0.05  # nats per test point: the prior control's allowance for one function draw
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


def _control_ok(m: Mapping[str, Any]) -> tuple[bool, bool] | None:
    """(coverage ok, NLL ok) of one run's prior control, or None when it has none."""
    cov, n = m.get("prior_nngp_cov90"), m.get("n_test")
    gap, se = m.get("prior_nngp_nll_gap"), m.get("prior_nngp_nll_gap_se")
    if not all(isinstance(v, int | float) for v in (cov, n, gap)):
        return None
    assert isinstance(cov, int | float) and isinstance(n, int | float) and isinstance(gap, int | float)
    half = max(2 * math.sqrt(0.9 * 0.1 / n), 1 / n)
    se_v = float(se) if isinstance(se, int | float) else 0.0
    return abs(float(cov) - 0.9) <= half, float(gap) <= max(NLL_TOLERANCE, 2 * se_v)


def positive_control(rows: list[ResultRow[UncertaintyParams]]) -> tuple[dict[str, Any], str | None]:
    """findings.json entry and finding of the prior control (module docstring); verdict ``match``/``no match``, or
    ``not run`` without regression runs that have it."""
    measured: list[dict[str, Any]] = []
    for r in rows:
        ok = _control_ok(r.metrics)
        if ok is None:
            continue
        m = r.metrics
        measured.append(
            {
                "dataset": r.config.data.name,
                "width": _width(r),
                "seed": r.config.seed,
                "n_test": m.get("n_test"),
                "nngp_cov90": m.get("prior_nngp_cov90"),
                "nngp_nll": m.get("prior_nngp_nll"),
                "nngp_nll_gap": m.get("prior_nngp_nll_gap"),
                "nngp_nll_gap_se": m.get("prior_nngp_nll_gap_se"),
                "nngp_nll_gap_to": m.get("prior_nngp_nll_gap_to"),
                "coverage_ok": ok[0],
                "nll_ok": ok[1],
                **{f"{k}_nll": m.get(f"prior_{k}_nll") for k in ("ntk_gp", "laplace", "ensemble")},
            }
        )
    verdict = (
        "not run"
        if not measured
        else ("match" if all(x["coverage_ok"] and x["nll_ok"] for x in measured) else "no match")
    )
    claim_cells = [
        x
        for x in measured
        if all(isinstance(x[f"{k}_nll"], int | float) for k in ("ntk_gp", "laplace", "ensemble"))
        and x["laplace_nll"] < x["ntk_gp_nll"]
        and x["ensemble_nll"] < x["ntk_gp_nll"]
    ]
    entry: dict[str, Any] = {
        "setting": "regression targets drawn from the NNGP prior of each run's own net (plus N(0, 0.1²) noise) at "
        "the same inputs; every method refitted on them",
        "expected": "the NNGP posterior is the exact Bayesian predictive: its 90 % coverage within 2 binomial s.e. "
        f"of 0.9 and its test NLL not above the best other method's by more than max({NLL_TOLERANCE:g}, 2 paired "
        "s.e.)",
        "measured": measured,
        "verdict": verdict,
        "claim_test_on_prior_targets": {
            "laplace_and_ensemble_beat_ntk_gp": len(claim_cells),
            "runs": len(measured),
        },
    }
    if not measured:
        return entry, None
    covs = [float(x["nngp_cov90"]) for x in measured]
    gaps = [float(x["nngp_nll_gap"]) for x in measured]
    line = (
        f"Positive control (targets drawn from the NNGP prior of the net itself, {len(measured)} regression run(s)): "
        f"{verdict} — NNGP posterior 90 % coverage {min(covs):.2f}–{max(covs):.2f} (nominal 0.90), its test NLL "
        f"minus the best other method's {min(gaps):+.3f} to {max(gaps):+.3f} "
        f"({sum(x['nll_ok'] for x in measured)} of {len(measured)} within max({NLL_TOLERANCE:g}, 2 paired s.e.)); on "
        "these targets the "
        f"claim's own test (Laplace and ensemble both below the NTK-GP) says yes in {len(claim_cells)} of "
        f"{len(measured)} — the NTK-GP at t = ∞ is not the Bayesian posterior even when the prior is right."
    )
    return entry, line


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
    ) + (
        (
            f"Positive control (regression runs): targets drawn once per run from the NNGP prior of the run's own "
            f"net at its train, validation, test and shifted inputs, plus N(0, {p.prior_noise}²) noise; every method "
            "refitted on them (metrics prior_*).",
        )
        if any("prior_nngp_cov90" in r.metrics for r in rows)
        else ()
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
    n_seeds = min(
        len({r.config.seed for r in rs if _width(r) == w})
        for rs in groups.values()
        for w in {_width(r) for r in rs}
    )
    if n_seeds < 3:
        verdict_text += (
            f" Each cell rests on {n_seeds} seed(s) — fewer than 3: no interval over seeds, the NLL comparisons are "
            "of single runs."
        )
    control_entry, control_line = positive_control(runs.completed)
    findings = [verdict_text, *([control_line] if control_line else [])]
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
        numbers={
            "test_nll": {f"{c[0]}/{c[1]}": v for c, v in sorted(cells.items())},
            "majority": MAJORITY,
            "seeds_per_cell": n_seeds,
            "positive_control": control_entry,
        },
        runs=tuple(r.run_id for r in runs.completed),
    )
