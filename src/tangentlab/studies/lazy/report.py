"""The ``lazy`` study's report: change metrics against width, fitted power laws, findings and verdict.

For each (activation, parametrization, optimizer) and each metric ``m`` the report fits ``log m = slope * log width + c`` by
least squares over every completed run (all seeds; :func:`tangentlab.report.fits.fit_power_law`, with the
regression standard error) and compares the slope with Lee et al. 2019's ``-1/2`` (arXiv 1902.06720, Thm. 2.1).

Lee et al.'s ``O(width^(-1/2))`` is an **upper bound** on the parameter change, the eNTK change and the function
gap: the changes shrink at least that fast. A slope is within the bound when it is at most ``-1/2`` up to its
uncertainty, ``slope <= -1/2 + max(TOLERANCE, 2 * stderr)`` (2 standard errors, with a floor of ``TOLERANCE`` for
finite-width corrections); a steeper slope supports the bound (Dyer & Gur-Ari 2020, arXiv 1909.11304: the NTK
moves by ``O(1/width)`` for smooth activations; ReLU settles near ``-3/4``). Only a slope significantly above
``-1/2`` (shrinking more slowly, not shrinking, or growing) contradicts it. The claim is judged per activation, the
controls and the erf-vs-ReLU difference are in :mod:`tangentlab.studies.lazy.verdict`; every number goes to
``findings.json`` (``numbers``): slopes, standard errors, 95% t intervals, seeds, the controls' verdicts.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy import stats

from tangentlab.report.figures import save_figure, styled
from tangentlab.report.fits import PowerLawFit, fit_power_law
from tangentlab.report.section import StudySection, Table
from tangentlab.studies._base import ResultRow, Study
from tangentlab.studies._sections import empty_section, tally
from tangentlab.studies._sections import header as section_header
from tangentlab.studies.lazy import LazyParams
from tangentlab.studies.lazy.verdict import (
    ACT_NAMES,
    CLAIM_METRICS,
    THEORY_SLOPE,
    TOLERANCE,
    Setting,
    activation_difference,
    claim_verdict,
    control_sentence,
    difference_sentence,
    margin,
    negative_controls,
    positive_control,
    within_bound,
)
from tangentlab.studies.lazy.verdict import slope_text as _slope_text

LABELS: dict[str, str] = {
    "rel_ntk_change": "relative eNTK change ‖Θ_T−Θ_0‖_F/‖Θ_0‖_F",
    "rel_param_change": "relative parameter change ‖θ_T−θ_0‖/‖θ_0‖",
    "kernel_distance": "kernel distance 1−cos(Θ_0, Θ_T) (Fort et al. 2020)",
    "function_gap": "function gap ‖f_T−f_T^lin‖/‖f_T^lin‖ (test)",
}
#: The same measures as mathtext, for the figures.
TEX_LABELS: dict[str, str] = {
    "rel_ntk_change": r"$\|\Theta_T-\Theta_0\|_F\,/\,\|\Theta_0\|_F$",
    "rel_param_change": r"$\|\theta_T-\theta_0\|\,/\,\|\theta_0\|$",
    "kernel_distance": r"kernel distance $1-\cos(\Theta_0,\Theta_T)$ (Fort et al. 2020)",
    "function_gap": r"$\|f_T-f_T^{\mathrm{lin}}\|\,/\,\|f_T^{\mathrm{lin}}\|$ (test)",
}
PARAM_NAMES: dict[str, str] = {"ntk": "NTK", "standard": "standard", "mup": "μP"}
OPT_NAMES: dict[str, str] = {"gd": "GD", "sgd": "SGD", "adam": "Adam"}


def _setting(row: ResultRow[LazyParams]) -> Setting:
    return str(row.params.activation), str(row.params.parametrization), row.config.train.optimizer


def _width(row: ResultRow[LazyParams]) -> int:
    return int(row.params.width)


def _name(setting: Setting) -> str:
    a, p, o = setting
    return f"{ACT_NAMES.get(a, a)}, {PARAM_NAMES.get(p, p)} parametrization, {OPT_NAMES.get(o, o)}"


def key(setting: Setting) -> str:
    """``"relu/ntk/gd"``: a setting's key in findings.json."""
    return "/".join(setting)


def _points(rows: list[ResultRow[LazyParams]], metric: str) -> tuple[np.ndarray, np.ndarray]:
    pairs = [(_width(r), r.metrics.get(metric)) for r in rows]
    good = [(w, float(v)) for w, v in pairs if isinstance(v, int | float) and math.isfinite(v) and v > 0]
    return np.array([w for w, _ in good], dtype=float), np.array([v for _, v in good], dtype=float)


def _fit(rows: list[ResultRow[LazyParams]], metric: str) -> PowerLawFit | None:
    w, v = _points(rows, metric)
    if np.unique(w).size < 2:
        return None
    return fit_power_law(w, v)


@styled
def _plot(
    groups: dict[Setting, list[ResultRow[LazyParams]]],
    fits: dict[Setting, dict[str, PowerLawFit | None]],
    path: Path,
) -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(12, 9))
    for ax, metric in zip(axes.ravel(), LABELS, strict=True):
        all_w: list[float] = []
        for setting, rows in sorted(groups.items()):
            w, v = _points(rows, metric)
            if w.size == 0:
                continue
            ws = np.unique(w)
            logs = [np.log(v[w == x]) for x in ws]
            mean = np.exp([lv.mean() for lv in logs])
            lo = np.exp([lv.min() for lv in logs])
            hi = np.exp([lv.max() for lv in logs])
            fit = fits[setting][metric]
            label = f"{_name(setting)} (slope {_slope_text(fit)})"
            ax.errorbar(ws, mean, yerr=[mean - lo, hi - mean], marker="o", capsize=3, label=label)
            all_w.extend(ws.tolist())
        if all_w:
            x0, x1 = min(all_w), max(all_w)
            ref_y = [m for s in groups for m in _points(groups[s], metric)[1]]
            y0 = float(np.exp(np.median(np.log(ref_y))))
            xs = np.array([x0, x1])
            ax.plot(xs, y0 * (xs / x0) ** THEORY_SLOPE, "k--", lw=1, label=r"bound: width$^{-1/2}$")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("width")
        ax.set_title(TEX_LABELS[metric], fontsize=10)
        ax.legend(fontsize=7)
        ax.grid(True, which="both", alpha=0.3)
    fig.suptitle("Change during training against width (mean over seeds; bars: min–max)")
    fig.tight_layout()
    save_figure(fig, path)


@styled
def _plot_errors(groups: dict[Setting, list[ResultRow[LazyParams]]], path: Path) -> None:
    import matplotlib.pyplot as plt

    optimizers = sorted({s[2] for s in groups})
    fig, axes = plt.subplots(1, len(optimizers), figsize=(6 * len(optimizers), 4.5), squeeze=False)
    styles = {
        "test_mse_net": ("-", "net"),
        "test_mse_lin": ("--", "linearized"),
        "test_mse_ntk": (":", "NTK reg."),
    }
    for ax, opt in zip(axes[0], optimizers, strict=True):
        for i, (setting, rows) in enumerate(sorted(s for s in groups.items() if s[0][2] == opt)):
            for metric, (ls, what) in styles.items():
                w, v = _points(rows, metric)
                if w.size == 0:
                    continue
                ws = np.unique(w)
                mean = [v[w == x].mean() for x in ws]
                ax.plot(
                    ws,
                    mean,
                    ls,
                    color=f"C{i}",
                    marker=".",
                    label=f"{ACT_NAMES.get(setting[0])}, {PARAM_NAMES.get(setting[1])}: {what}",
                )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("width")
        ax.set_ylabel("test MSE")
        ax.set_title(f"{OPT_NAMES.get(opt, opt)}: net vs linearized net vs NTK regression")
        ax.legend(fontsize=7, ncol=2)
        ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path)


def _finding(setting: Setting, metric: str, fit: PowerLawFit) -> str:
    head = f"{_name(setting)}: {LABELS[metric]} scales as width^{fit.slope:.2f}"
    if math.isfinite(fit.stderr):
        head += f" ± {fit.stderr:.2f}"
    head += " (theory: at most −1/2, an upper bound)"
    if within_bound(fit):
        if fit.slope >= THEORY_SLOPE - margin(fit):
            return head + " — at the rate of Lee et al. 2019's bound width^(−1/2): within the bound."
        text = head + " — it shrinks faster than width^(−1/2): within Lee et al. 2019's bound."
        if metric == "rel_ntk_change":
            text += (
                " Dyer & Gur-Ari 2020 (arXiv 1909.11304) predict that the NTK moves by O(1/width) for smooth"
                " activations (slope −1); for ReLU a slope near −3/4 was measured out to width 65,536 outside this project."
            )
        return text
    if abs(fit.slope) <= TOLERANCE:
        return head + " — it does not shrink with width: this setting does not become lazy."
    if fit.slope > 0:
        return head + " — it grows with width: the lazy-training prediction does not hold here."
    return head + " — it shrinks more slowly than width^(−1/2): outside Lee et al. 2019's bound."


def _error_finding(setting: Setting, rows: list[ResultRow[LazyParams]]) -> str | None:
    widest = max(_width(r) for r in rows)
    at = [r for r in rows if _width(r) == widest]
    means = {}
    for key in ("test_mse_net", "test_mse_lin", "test_mse_ntk"):
        vals = [float(v) for r in at if isinstance(v := r.metrics.get(key), int | float)]
        if not vals:
            return None
        means[key] = float(np.mean(vals))
    return (
        f"{_name(setting)}, width {widest}: test MSE {means['test_mse_net']:.4g} (net), "
        f"{means['test_mse_lin']:.4g} (linearized), {means['test_mse_ntk']:.4g} (NTK regression at the same time)."
    )


def _ci95(fit: PowerLawFit, runs: int) -> list[float] | None:
    """95% t interval of the slope (``runs - 2`` degrees of freedom); None without a standard error."""
    if not math.isfinite(fit.stderr) or runs < 3:
        return None
    half = float(stats.t.ppf(0.975, runs - 2)) * fit.stderr
    return [fit.slope - half, fit.slope + half]


def _seed_note(seeds: list[int]) -> str:
    n = len(seeds)
    return (
        f" Seeds: {n}"
        + (" — fewer than 3, so the slopes' errors rest on few inits." if n < 3 else ".")
        + " ± values are regression standard errors over all runs (widths × seeds)."
    )


def _settings(rows: list[ResultRow[LazyParams]], n_failed: int, n_diverged: int) -> tuple[str, ...]:
    c = rows[0].config
    widths = sorted({_width(r) for r in rows})
    seeds = sorted({r.config.seed for r in rows})
    fraction = rows[0].params.lr_fraction
    gd_rule = f"η = {fraction}·n/λ_max(Θ_0)" if fraction is not None else f"η = {c.train.learning_rate}"
    return (
        "As tested here (deviations from Lee et al. 2019): their O(width^(−1/2)) read as an upper bound on the slope "
        "of each change metric against width, judged per activation under NTK parametrization and GD at η below "
        "2/(λ_min+λ_max) of Θ/n; a small MLP on small regression data, not the paper's setups; ReLU is outside the "
        "theorem's smoothness assumption, erf inside it.",
        f"Data: {c.data.name}, n_train={c.data.n_train}, n_test={c.data.n_test}, options={c.data.options}.",
        f"Model: {c.model or 'the study default (MLP, one hidden layer)'}, its ReLU layers replaced by the run's "
        f"activation ({sorted({str(r.params.activation) for r in rows})}); every Dense but the readout has `width` "
        "units; float64.",
        f"Training: MSE, {c.train.steps} steps; GD/SGD {gd_rule}; Adam lr = {c.train.learning_rate}; the linearized "
        "net is trained the same way. eNTK changes on the first "
        f"{rows[0].params.probe_size} training inputs; function gap on the test inputs.",
        f"Grid: widths {widths}; seeds {seeds}; settings {sorted({_name(_setting(r)) for r in rows})}.",
        f"Runs: {len(rows)} completed, {n_diverged} diverged (excluded from fits), {n_failed} failed.",
        f"Fits: least squares of log metric on log width over all seeds; Lee et al.'s width^(−1/2) is an upper "
        f"bound, so a slope is within it when slope ≤ −1/2 + max({TOLERANCE}, 2·stderr) (stderr: the regression's "
        f"standard error over {len(rows)} runs; seeds {len(seeds)}{' — fewer than 3' if len(seeds) < 3 else ''}).",
    )


def section(study: Study, rows: list[ResultRow[LazyParams]], figures_dir: Path) -> StudySection:
    """Build the ``lazy`` report section and write its figures into ``figures_dir``."""
    figures_dir.mkdir(parents=True, exist_ok=True)
    runs = tally(rows)
    done, n_failed, n_diverged = runs.completed, runs.n_failed, runs.n_diverged
    base = section_header(study)
    if not done:
        return empty_section(study, runs)
    groups: dict[Setting, list[ResultRow[LazyParams]]] = defaultdict(list)
    for r in done:
        groups[_setting(r)].append(r)
    fits = {s: {m: _fit(rs, m) for m in LABELS} for s, rs in groups.items()}

    change_png = figures_dir / "lazy_change_vs_width.png"
    error_png = figures_dir / "lazy_test_error_vs_width.png"
    _plot(groups, fits, change_png)
    _plot_errors(groups, error_png)

    verdict, verdict_text, calls = claim_verdict(fits)
    seeds = sorted({r.config.seed for r in done})
    findings = [verdict_text + _seed_note(seeds)]
    pos, negs = positive_control(fits), negative_controls(fits)
    controls = control_sentence(pos, negs)
    if controls:
        findings.append(controls)
    diff = activation_difference(fits)
    if diff is not None:
        findings.append(difference_sentence(diff))
    order = sorted(groups, key=lambda s: (s[1:] != ("ntk", "gd"), s))
    for s in order:
        for m in ("rel_ntk_change", "rel_param_change", "function_gap"):
            f = fits[s][m]
            if f is not None:
                findings.append(_finding(s, m, f))
    for s in order:
        text = _error_finding(s, groups[s])
        if text:
            findings.append(text)
    if n_diverged:
        findings.append(f"{n_diverged} run(s) diverged and are left out of the fits.")

    header = ("setting", "widths", "runs", *(f"slope: {m}" for m in LABELS))
    table_rows = tuple(
        (
            _name(s),
            ", ".join(str(w) for w in sorted({_width(r) for r in groups[s]})),
            str(len(groups[s])),
            *(_slope_text(fits[s][m]) for m in LABELS),
        )
        for s in order
    )
    table = Table(
        caption="Fitted log–log slopes against width (± regression standard error; theory: at most −0.50 under "
        "NTK parametrization and GD, an upper bound)",
        header=header,
        rows=table_rows,
    )
    return StudySection(
        **base,
        verdict=verdict,
        findings=tuple(findings),
        figures=(change_png, error_png),
        tables=(table,),
        settings=_settings(done, n_failed, n_diverged),
        numbers={
            **_numbers(groups, fits),
            "claim_verdicts": calls,
            "positive_control": pos,
            "negative_controls": negs,
            "activation_difference": diff,
        },
        runs=tuple(r.run_id for r in done),
    )


def _numbers(
    groups: dict[Setting, list[ResultRow[LazyParams]]], fits: dict[Setting, dict[str, PowerLawFit | None]]
) -> dict[str, object]:
    """The fitted slopes, their standard errors and bound calls per setting and metric (findings.json)."""
    out: dict[str, object] = {
        "theory_slope": THEORY_SLOPE,
        "tolerance": TOLERANCE,
        "rule": "within the bound iff slope <= theory_slope + max(tolerance, 2 * stderr)",
        "claim_setting": "ntk/gd (judged per activation)",
        "claim_metrics": list(CLAIM_METRICS),
        "ci": "95% t interval of the slope: slope ± t(0.975, runs − 2) · stderr",
    }
    settings: dict[str, object] = {}
    for s, rows in sorted(groups.items()):
        slopes = {
            m: {
                "slope": f.slope,
                "stderr": f.stderr,
                "ci95": _ci95(f, len(rows)),
                "within_bound": within_bound(f),
            }
            for m, f in fits[s].items()
            if f is not None
        }
        seeds = sorted({r.config.seed for r in rows})
        settings["/".join(s)] = {
            "widths": sorted({_width(r) for r in rows}),
            "seeds": seeds,
            "fewer_than_3_seeds": len(seeds) < 3,
            "runs": len(rows),
            "slopes": slopes,
        }
    out["settings"] = settings
    return out
