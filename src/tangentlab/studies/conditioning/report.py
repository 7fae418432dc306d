"""The ``conditioning`` study's report: spectrum, Jacobian stability and GD vs Gauss–Newton against width.

Per setting (dataset × parametrization) the report fits ``log metric = slope * log width + c`` over all completed
runs (:func:`tangentlab.report.fits.fit_power_law`) for ``lambda_min(G_0)``, the condition number, the relative
Jacobian change after GD and the stability constant ``C``, and extrapolates the width at which the fitted ``C``
would reach Zhang et al.'s threshold 1/2. The verdict on Wenger et al.'s claim ("practical widths do not meet the
stability condition") uses the mean ``C`` over seeds at each measured width: **supported** when it is at least 1/2
at every measured width of every setting, **not supported** when it is below 1/2 at every one, **mixed** otherwise.
``C`` is a lower bound on the constant the condition needs (see :mod:`tangentlab.studies.conditioning`), so a
measured ``C >= 1/2`` is a violation, while ``C < 1/2`` does not prove the condition holds.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from tangentlab.report.figures import save_figure, styled
from tangentlab.report.fits import PowerLawFit, fit_power_law
from tangentlab.report.section import StudySection, Table, Verdict
from tangentlab.studies._base import ResultRow, Study
from tangentlab.studies._sections import empty_section, header, tally
from tangentlab.studies.conditioning import ConditioningParams
from tangentlab.studies.conditioning.benefit import benefit, positive_control

THRESHOLD = 0.5  # Zhang et al. 2019, Condition 2: C < 1/2
LAZY_SLOPE = -0.5  # Lee et al. 2019: relative changes shrink like width^(-1/2) under NTK parametrization
PARAM_NAMES: dict[str, str] = {"ntk": "NTK", "standard": "standard", "mup": "μP"}
FIT_METRICS: dict[str, str] = {
    "lambda_min": "λ_min(G_0)",
    "condition_number": "cond(G_0)",
    "jac_change_gd": "‖J_T−J_0‖_F/‖J_0‖_F (GD)",
    "stability_constant": "stability constant C",
}
Setting = tuple[str, str]
Fits = dict[Setting, dict[str, PowerLawFit | None]]


def _setting(row: ResultRow[ConditioningParams]) -> Setting:
    return row.config.data.name, str(row.params.parametrization)


def _name(setting: Setting) -> str:
    return f"{setting[0]}, {PARAM_NAMES.get(setting[1], setting[1])} parametrization"


def _width(row: ResultRow[ConditioningParams]) -> int:
    return int(row.params.width)


def _value(row: ResultRow[ConditioningParams], metric: str) -> float | None:
    v = row.metrics.get(metric)
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) else None


def _points(rows: list[ResultRow[ConditioningParams]], metric: str) -> tuple[np.ndarray, np.ndarray]:
    pairs = [(_width(r), v) for r in rows if (v := _value(r, metric)) is not None and v > 0]
    return np.array([w for w, _ in pairs], dtype=float), np.array([v for _, v in pairs], dtype=float)


def _fit(rows: list[ResultRow[ConditioningParams]], metric: str) -> PowerLawFit | None:
    w, v = _points(rows, metric)
    return fit_power_law(w, v) if np.unique(w).size >= 2 else None


def _by_width(rows: list[ResultRow[ConditioningParams]], metric: str, how: str = "mean") -> dict[int, float]:
    """Per width, the mean (or geometric mean, or median) of a metric over the runs that have it."""
    w, v = _points(rows, metric)
    out: dict[int, float] = {}
    for x in np.unique(w):
        at = v[w == x]
        out[int(x)] = float(
            np.median(at) if how == "median" else np.exp(np.log(at).mean()) if how == "gmean" else at.mean()
        )
    return out


def _crossover(fit: PowerLawFit | None) -> float | None:
    """Width at which the fitted ``C(width) = e^c width^slope`` reaches the threshold (None if it never falls)."""
    if fit is None or fit.slope >= 0:
        return None
    return float(math.exp((math.log(THRESHOLD) - fit.intercept) / fit.slope))


def _slope_text(fit: PowerLawFit | None) -> str:
    if fit is None:
        return "n/a"
    return f"{fit.slope:+.2f}" + (f" ± {fit.stderr:.2f}" if math.isfinite(fit.stderr) else "")


def _budget(rows: list[ResultRow[ConditioningParams]], key: str) -> int:
    return max(int(r.config.train.steps if key == "gd" else r.params.gn_steps) for r in rows)


def _steps_text(rows: list[ResultRow[ConditioningParams]], key: str) -> str:
    """Median steps to the target over seeds, ``> budget`` when most runs missed it."""
    vals = [_value(r, f"{key}_steps_to_target") for r in rows]
    hit = [v for v in vals if v is not None]
    if len(hit) * 2 < len(vals) or not hit:
        return f"> {_budget(rows, key)} ({len(hit)}/{len(vals)} reached)"
    return f"{np.median(hit):.0f}" + ("" if len(hit) == len(vals) else f" ({len(hit)}/{len(vals)} reached)")


def _figure(width: float = 12.0) -> tuple[Any, Any]:
    import matplotlib.pyplot as plt

    return plt.subplots(1, 2, figsize=(width, 4.5))


def _save(fig: Any, title: str, path: Path) -> None:
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)


def _line(
    ax: Any, rows: list[ResultRow[ConditioningParams]], metric: str, label: str, color: str, style: str = "-o"
) -> None:
    w, v = _points(rows, metric)
    if w.size == 0:
        return
    ws = np.unique(w)
    mean = np.array([np.exp(np.log(v[w == x]).mean()) for x in ws])
    lo = np.array([v[w == x].min() for x in ws])
    hi = np.array([v[w == x].max() for x in ws])
    err = [np.clip(mean - lo, 0, None), np.clip(hi - mean, 0, None)]
    ax.errorbar(ws, mean, yerr=err, fmt=style, color=color, capsize=3, ms=4, label=label)


def _axes(ax: Any, title: str, ylabel: str, legend: str = "inside") -> None:
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("width")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    if legend == "inside":
        ax.legend(fontsize=7)
    elif legend == "outside":
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))


@styled
def _plot_spectrum(
    groups: dict[Setting, list[ResultRow[ConditioningParams]]], fits: Fits, path: Path
) -> None:
    fig, axes = _figure()
    for i, (s, rows) in enumerate(sorted(groups.items())):
        for ax, m in zip(axes, ("lambda_min", "condition_number"), strict=True):
            _line(ax, rows, m, f"{_name(s)} (slope {_slope_text(fits[s][m])})", f"C{i}")
    _axes(
        axes[0],
        r"Smallest eigenvalue of the eNTK Gram $G_0 = J J^\top$ at init (Condition 1)",
        r"$\lambda_{\min}(G_0)$",
    )
    _axes(axes[1], r"Condition number of $G_0$ at init", r"$\lambda_{\max}\,/\,\lambda_{\min}$")
    _save(fig, "eNTK Gram spectrum against width (geometric mean over seeds; bars: min–max)", path)


@styled
def _plot_stability(
    groups: dict[Setting, list[ResultRow[ConditioningParams]]], fits: Fits, path: Path
) -> None:
    fig, axes = _figure()
    widths: list[float] = []
    for i, (s, rows) in enumerate(sorted(groups.items())):
        label = f"{_name(s)} (slope {_slope_text(fits[s]['jac_change_gd'])})"
        _line(axes[0], rows, "jac_change_gd", label, f"C{i}")
        fit = fits[s]["stability_constant"]
        _line(axes[1], rows, "stability_constant", f"{_name(s)} (slope {_slope_text(fit)})", f"C{i}")
        w, _ = _points(rows, "stability_constant")
        widths.extend(w.tolist())
        if fit is not None and w.size:
            xs = np.geomspace(w.min(), w.max(), 20)
            axes[1].plot(xs, np.exp(fit.intercept) * xs**fit.slope, ":", color=f"C{i}", lw=1)
    w, v = _points([r for rs in groups.values() for r in rs], "jac_change_gd")
    if w.size:
        xs = np.array([w.min(), w.max()])
        y0 = float(np.exp(np.median(np.log(v))))
        axes[0].plot(
            xs, y0 * (xs / xs[0]) ** LAZY_SLOPE, "k--", lw=1, label=r"width$^{-1/2}$ (Lee et al. 2019)"
        )
    if widths:
        axes[1].axhline(THRESHOLD, color="k", ls="--", lw=1, label="C = 1/2 (Zhang et al. 2019 need C < 1/2)")
    _axes(axes[0], "Relative Jacobian change after GD training (training inputs)", "‖J_T − J_0‖_F / ‖J_0‖_F")
    _axes(axes[1], "Stability constant C = 3·max‖J_t − J_0‖₂ / √λ_min(G_0) (dotted: fit)", "C (lower bound)")
    _save(fig, "Jacobian stability against width", path)


@styled
def _plot_convergence(groups: dict[Setting, list[ResultRow[ConditioningParams]]], path: Path) -> None:
    fig, axes = _figure(15.5)
    for i, (s, rows) in enumerate(sorted(groups.items())):
        for key, style, what in (("gd", "-o", "GD"), ("gn", "--s", "Gauss–Newton")):
            for ax, m in zip(axes, ("steps_to_target", "time_to_target"), strict=True):
                _line(ax, rows, f"{key}_{m}", f"{_name(s)}: {what}", f"C{i}", style)
            missed = sorted({_width(r) for r in rows if _value(r, f"{key}_steps_to_target") is None})
            if missed:
                budget = _budget(rows, key)
                axes[0].scatter(
                    missed, [budget] * len(missed), marker="^", facecolors="none", edgecolors=f"C{i}"
                )
    _axes(axes[0], "Steps to reach the loss target (open ▲: missed within the budget)", "steps", "none")
    _axes(
        axes[1], "Wall time to reach the loss target (solid: GD; dashed: Gauss–Newton)", "seconds", "outside"
    )
    _save(fig, "Convergence: gradient descent vs damped Gauss–Newton (NTK natural gradient)", path)


def _fmt(value: float | None, spec: str = ".3g") -> str:
    return "n/a" if value is None or not math.isfinite(value) else format(value, spec)


def _width_table(groups: dict[Setting, list[ResultRow[ConditioningParams]]]) -> Table:
    rows_out: list[tuple[str, ...]] = []
    for s, rows in sorted(groups.items()):
        for w in sorted({_width(r) for r in rows}):
            at = [r for r in rows if _width(r) == w]
            c = [v for r in at if (v := _value(r, "stability_constant")) is not None]
            meets = sum(1 for r in at if r.metrics.get("meets_stability") is True)

            def mean(metric: str, rs: list[ResultRow[ConditioningParams]] = at) -> float | None:
                vals = [v for r in rs if (v := _value(r, metric)) is not None]
                return float(np.mean(vals)) if vals else None

            rows_out.append(
                (
                    _name(s),
                    str(w),
                    str(len(at)),
                    _fmt(mean("lambda_min")),
                    _fmt(mean("condition_number")),
                    _fmt(mean("jac_change_gd")),
                    f"{_fmt(float(np.mean(c)) if c else None)} [{_fmt(min(c, default=None))}–{_fmt(max(c, default=None))}]",
                    f"{meets}/{len(at)}",
                    _steps_text(at, "gd"),
                    _steps_text(at, "gn"),
                    _fmt(mean("gd_time_to_target")),
                    _fmt(mean("gn_time_to_target")),
                )
            )
    return Table(
        caption="Per width (means over seeds; C: mean [min–max]; steps: median; times in seconds to the loss target)",
        header=(
            "setting",
            "width",
            "runs",
            "λ_min(G_0)",
            "cond(G_0)",
            "‖ΔJ‖_F/‖J_0‖_F (GD)",
            "C",
            "C < 1/2",
            "GD steps",
            "GN steps",
            "GD time",
            "GN time",
        ),
        rows=tuple(rows_out),
    )


def _slope_table(groups: dict[Setting, list[ResultRow[ConditioningParams]]], fits: Fits) -> Table:
    rows_out = tuple(
        (
            _name(s),
            *(_slope_text(fits[s][m]) for m in FIT_METRICS),
            _fmt(_crossover(fits[s]["stability_constant"]), ".3g"),
        )
        for s in sorted(groups)
    )
    return Table(
        caption="Fitted log–log slopes against width (± standard error) and the width at which the fitted C would "
        "reach 1/2 (extrapolated)",
        header=("setting", *(f"slope: {label}" for label in FIT_METRICS.values()), "width for C = 1/2"),
        rows=rows_out,
    )


def _findings(groups: dict[Setting, list[ResultRow[ConditioningParams]]], fits: Fits) -> list[str]:
    out: list[str] = []
    for s, rows in sorted(groups.items()):
        f = fits[s]
        lam = [v for r in rows if (v := _value(r, "lambda_min")) is not None]
        cond = _by_width(rows, "condition_number", "gmean")
        if lam and cond:
            lo, hi = min(cond), max(cond)
            out.append(
                f"{_name(s)}: λ_min(G_0) > 0 in {sum(v > 0 for v in lam)}/{len(rows)} runs (Condition 1); "
                f"λ_min scales as width^{_slope_text(f['lambda_min'])}; cond(G_0) ≈ {cond[lo]:.3g} at width {lo} and "
                f"{cond[hi]:.3g} at width {hi} (slope {_slope_text(f['condition_number'])})."
            )
        jac = f["jac_change_gd"]
        if jac is not None:
            near = abs(jac.slope - LAZY_SLOPE) <= max(
                0.15, 2 * (jac.stderr if math.isfinite(jac.stderr) else 0)
            )
            out.append(
                f"{_name(s)}: the relative Jacobian change after GD scales as width^{_slope_text(jac)} "
                f"({'consistent with' if near else 'unlike'} the lazy-training rate −1/2)."
            )
        cw = _by_width(rows, "stability_constant")
        if cw:
            lo, hi = min(cw), max(cw)
            cross = _crossover(f["stability_constant"])
            text = (
                f"{_name(s)}: stability constant C = {cw[lo]:.3g} at width {lo} and {cw[hi]:.3g} at width {hi} "
                f"(slope {_slope_text(f['stability_constant'])}); mean C < 1/2 at "
                f"{sum(v < THRESHOLD for v in cw.values())}/{len(cw)} widths."
            )
            if cross is not None and cross > hi:
                text += f" Extrapolating the fit, C would reach 1/2 only at width ≈ {cross:.3g}."
            elif cross is not None:
                text += f" The fit crosses 1/2 at width ≈ {cross:.3g}, inside the measured range."
            else:
                text += (
                    " The fit does not decrease with width: no width meets the condition by extrapolation."
                )
            out.append(text)
        ratio = [v for r in rows for k in ("gd", "gn") if (v := _value(r, f"{k}_distance_ratio")) is not None]
        if ratio:
            out.append(
                f"{_name(s)}: the trajectories moved at most {max(ratio):.3g} × the radius R = 3‖y − f_0‖/√λ_min "
                f"of Zhang et al.'s ball ({'inside' if max(ratio) <= 1 else 'partly outside'} it)."
            )
        hi = max(_width(r) for r in rows)
        at = [r for r in rows if _width(r) == hi]
        gd_t = [v for r in at if (v := _value(r, "gd_time_to_target")) is not None]
        gn_t = [v for r in at if (v := _value(r, "gn_time_to_target")) is not None]
        text = (
            f"{_name(s)}, width {hi}: steps to the loss target — GD {_steps_text(at, 'gd')}, Gauss–Newton "
            f"{_steps_text(at, 'gn')}"
        )
        if gd_t and gn_t:
            text += (
                f"; wall time GD {np.mean(gd_t):.3g} s vs Gauss–Newton {np.mean(gn_t):.3g} s "
                f"({np.mean(gd_t) / np.mean(gn_t):.3g}× faster with Gauss–Newton)."
            )
        out.append(text + ("" if text.endswith(".") else "."))
    return out


def _verdict(groups: dict[Setting, list[ResultRow[ConditioningParams]]]) -> tuple[Verdict, str]:
    cells = {
        (s, w): c for s, rows in groups.items() for w, c in _by_width(rows, "stability_constant").items()
    }
    if not cells:
        return "inconclusive", "Verdict: inconclusive — no run measured a stability constant."
    above = [k for k, c in cells.items() if c >= THRESHOLD]
    widths = sorted({w for _, w in cells})
    if len(above) == len(cells):
        return (
            "supported",
            f"Verdict: supported — the stability constant C is at least 1/2 at every measured width ({widths[0]}–"
            f"{widths[-1]}) in every setting: Zhang et al.'s sufficient Jacobian-stability condition fails there "
            "(the promised benefit is judged separately below).",
        )
    if not above:
        return (
            "not supported",
            f"Verdict: not supported — the measured C (a lower bound) is below 1/2 at every width ({widths[0]}–"
            f"{widths[-1]}) in every setting; our runs do not show the condition failing.",
        )
    ok = sorted(f"{_name(s)} at width {w}" for (s, w), c in cells.items() if c < THRESHOLD)
    return (
        "mixed",
        f"Verdict: mixed — C ≥ 1/2 in {len(above)}/{len(cells)} (setting, width) cells; below 1/2 in: "
        f"{'; '.join(ok)}.",
    )


def _layers(model: dict[str, Any] | None) -> str:
    """``Dense → ReLU → Dense`` for a Serial description (the study default when None)."""
    if model is None:
        return "the study default (ReLU MLP, one hidden layer)"
    return " → ".join(str(layer.get("layer", layer)) for layer in model.get("layers", [model]))


def _settings(rows: list[ResultRow[ConditioningParams]], runs: str) -> tuple[str, ...]:
    c = rows[0].config
    p = rows[0].params
    probe = "all training inputs" if p.probe_rows is None else f"at most {p.probe_rows} rows"
    return (
        "As tested here: Condition 2 as C < 1/2, C from visited points (a lower bound); paper's widths/data unknown.",
        f"Data: {sorted({r.config.data.name for r in rows})}, n_train={c.data.n_train}, options={c.data.options}; "
        "MSE L = (1/(2n))Σ‖f − y‖² on one-hot / scalar targets.",
        f"Model: {_layers(c.model)}; every Dense but the readout has `width` units, the readout one unit per "
        "target column; float64.",
        f"GD: full batch, η = {p.lr_fraction}·n/λ_max(G_0), budget {c.train.steps} steps. Gauss–Newton: "
        f"Δθ = −η Jᵀ(Θ + λI)⁻¹(f − y) with η = {p.gn_learning_rate}, λ = {p.gn_damping}·tr(Θ)/(nO), "
        f"budget {p.gn_steps} steps. Loss target: {p.loss_target} × the initial loss.",
        f"Jacobian tracked at {p.checkpoints} geometrically spaced checkpoints per trajectory on "
        f"{probe}; "
        "C = 3·max‖J_t − J_0‖₂/√λ_min(G_0) over checkpoints inside R = 3‖y − f_0‖/√λ_min (a lower bound on "
        "Zhang et al.'s constant).",
        f"Grid: widths {sorted({_width(r) for r in rows})}; seeds {sorted({r.config.seed for r in rows})}; "
        f"settings {sorted({_name(_setting(r)) for r in rows})}.",
        f"Runs: {runs}. Wall times: Gauss–Newton measured per step; GD = steps × measured seconds per step; "
        "Jacobian checkpoints excluded.",
    )


def section(study: Study, rows: list[ResultRow[ConditioningParams]], figures_dir: Path) -> StudySection:
    """Build the ``conditioning`` report section and write its figures into ``figures_dir``."""
    figures_dir.mkdir(parents=True, exist_ok=True)
    runs = tally(rows)
    groups: dict[Setting, list[ResultRow[ConditioningParams]]] = defaultdict(list)
    for r in runs.completed:  # the positive control (linearized nets) is judged apart, below
        if not r.params.linearized:
            groups[_setting(r)].append(r)
    control = positive_control([r for r in runs.completed if r.params.linearized])
    if not groups:
        return empty_section(study, runs)
    fits = {s: {m: _fit(rs, m) for m in FIT_METRICS} for s, rs in groups.items()}
    figures = (
        figures_dir / "conditioning_spectrum_vs_width.png",
        figures_dir / "conditioning_stability_vs_width.png",
        figures_dir / "conditioning_convergence_vs_width.png",
    )
    _plot_spectrum(groups, fits, figures[0])
    _plot_stability(groups, fits, figures[1])
    _plot_convergence(groups, figures[2])
    verdict, verdict_text = _verdict(groups)
    n_seeds = len({r.config.seed for rs in groups.values() for r in rs})
    verdict_text += f" Seeds: {n_seeds}{' — fewer than 3' if n_seeds < 3 else ''}; C is the mean over seeds."
    benefit_text, benefit_numbers = benefit(groups)
    cells = {
        f"{s[0]}/{s[1]}/{w}": c
        for s, rows in groups.items()
        for w, c in _by_width(rows, "stability_constant").items()
    }
    return StudySection(
        **header(study),
        verdict=verdict,
        findings=(verdict_text, benefit_text, *([control[0]] if control else []), *_findings(groups, fits)),
        numbers={
            "threshold": THRESHOLD,
            "mean_stability_constant": cells,
            "benefit": benefit_numbers,
            "seeds": n_seeds,
            "positive_control": control[1] if control else None,
        },
        runs=tuple(r.run_id for r in runs.completed),
        figures=figures,
        tables=(_width_table(groups), _slope_table(groups, fits)),
        settings=_settings(runs.completed, runs.summary()),
    )
