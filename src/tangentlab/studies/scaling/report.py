"""The ``scaling`` study's report: test loss and error against n per method, exponents with bootstrap CIs, verdict.

Per (dataset, model) and per method the report fits ``L(n) = a n^(-alpha)`` by least squares of ``log L`` on
``log n`` over every completed run (every ``n`` of the sweep: the fit range is ``[min n, max n]``, stated in the
table) and gives a 95% percentile CI from :func:`tangentlab.report.bootstrap.bootstrap_power_law` resampling seeds
(``N_BOOT`` replicates). The methods net, eNTK at init and infinite NTK do not depend on ``pretrain_m``; runs that
differ only in it are counted once. The after-m eNTK gets one curve per ``m``, fitted over ``n >= N_OVER_M * m``
only: Vyas et al.'s claim is about ``n >> m``, and at ``n <= m`` the after-m kernel has seen the whole training set,
so a flat curve there is built in. Every comparison states its fit range in decades and the error-rate exponents.

Verdict (Vyas et al. 2022): for each (dataset, model) the net's loss exponent is compared with each kernel's; the net
"scales better" than a kernel when its CI lies above the kernel's point estimate and vice versa. Supported when the
net scales better than the eNTK at init and the infinite NTK everywhere and no after-m eNTK has a CI above the net's
exponent; not supported when a kernel scales better than the net everywhere; mixed otherwise. The linear model
(``model_kind: linear``) is left out of the verdict: it is the positive control, where the same comparison must say
"not distinguishable" (a linear model is its own eNTK), reported as ``positive_control`` in findings.json.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from tangentlab.report.bootstrap import BootstrapFit, bootstrap_power_law
from tangentlab.report.figures import save_figure, styled
from tangentlab.report.section import StudySection, Table, Verdict
from tangentlab.studies._base import ResultRow, Study
from tangentlab.studies._sections import header as section_header
from tangentlab.studies.scaling import ScalingParams

N_BOOT = 500
N_OVER_M = 4  # the after-m eNTK is fitted over n >= 4 m only
MEASURES: dict[str, str] = {"mse": "test MSE", "err": "test error"}
BASE_LABELS: dict[str, str] = {"net": "trained net", "entk0": "eNTK at init", "ntk": "infinite NTK"}
CONTROL_MODEL = "linear"  # the positive control's model_kind
Setting = tuple[str, str]  # (dataset, model_kind)
Curve = str  # "net" | "entk0" | "ntk" | "entk_m=<m>"


def _setting(row: ResultRow[ScalingParams]) -> Setting:
    return row.config.data.name, str(row.params.model_kind)


def _n(row: ResultRow[ScalingParams]) -> int:
    return int(row.params.n_train)


def _label(curve: Curve) -> str:
    if curve.startswith("entk_m="):
        return f"eNTK after {curve.partition('=')[2]} samples"
    return BASE_LABELS[curve]


def _on_curve(row: ResultRow[ScalingParams], curve: Curve) -> bool:
    """Whether ``row`` feeds ``curve``: every run feeds the base methods, an after-m curve only runs with that m and
    ``n >= N_OVER_M * m`` (Vyas et al.'s claim is about n much larger than m; at n <= m the after-m kernel has seen
    the whole training set and its flat curve is built in)."""
    if not curve.startswith("entk_m="):
        return True
    m = row.params.pretrain_m
    return f"entk_m={m}" == curve and _n(row) >= N_OVER_M * int(m or 0)


def _points(
    rows: list[ResultRow[ScalingParams]], curve: Curve, measure: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(n, value, seed) of the finite positive values of ``curve``; base methods counted once per (n, seed)."""
    method = "entk_m" if curve.startswith("entk_m=") else curve
    seen: set[tuple[int, int]] = set()
    out: list[tuple[int, float, int]] = []
    for r in sorted(rows, key=lambda r: r.run_id):
        if not _on_curve(r, curve):
            continue
        key = (_n(r), r.config.seed)
        if method != "entk_m" and key in seen:
            continue
        v = r.metrics.get(f"test_{measure}_{method}")
        if isinstance(v, int | float) and math.isfinite(v) and v > 0:
            seen.add(key)
            out.append((key[0], float(v), key[1]))
    arr = np.array(out, dtype=float).reshape(-1, 3)
    return arr[:, 0], arr[:, 1], arr[:, 2]


def _curves(rows: list[ResultRow[ScalingParams]]) -> list[Curve]:
    ms = sorted({int(r.params.pretrain_m) for r in rows} - {0})
    return [*BASE_LABELS, *(f"entk_m={m}" for m in ms)]


def _fit(
    rows: list[ResultRow[ScalingParams]], curve: Curve, measure: str, *, offset: bool = False
) -> BootstrapFit | None:
    """Bootstrap fit of ``a n^(-alpha)`` (or ``a n^(-alpha) + c`` with ``offset``; needs three sizes)."""
    n, v, s = _points(rows, curve, measure)
    if np.unique(n).size < (3 if offset else 2):
        return None
    return bootstrap_power_law(n, v, s, n_boot=N_BOOT, seed=0, offset=offset)


def _ci(fit: BootstrapFit | None) -> str:
    return "n/a" if fit is None else f"{fit.alpha:.3f} [{fit.lo:.3f}, {fit.hi:.3f}]"


@styled
def _plot(
    groups: dict[Setting, list[ResultRow[ScalingParams]]],
    fits: dict[Setting, dict[tuple[Curve, str], BootstrapFit | None]],
    path: Path,
) -> None:
    import matplotlib.pyplot as plt

    settings = sorted(groups)
    fig, axes = plt.subplots(len(MEASURES), len(settings), figsize=(5.5 * len(settings), 8), squeeze=False)
    for j, setting in enumerate(settings):
        rows = groups[setting]
        for i, measure in enumerate(MEASURES):
            ax = axes[i][j]
            for c, curve in enumerate(_curves(rows)):
                n, v, _ = _points(rows, curve, measure)
                if n.size == 0:
                    continue
                ns = np.unique(n)
                mean = np.exp([np.log(v[n == x]).mean() for x in ns])
                fit = fits[setting][(curve, measure)]
                label = f"{_label(curve)}: α = {_ci(fit)}"
                ax.plot(ns, mean, "o", color=f"C{c}", label=label)
                ax.plot(n, v, ".", color=f"C{c}", alpha=0.3)
                if fit is not None:
                    # the line of the point fit: log a = mean(log v) + alpha * mean(log n)
                    log_a = float(np.log(v).mean() + fit.alpha * np.log(n).mean())
                    xs = np.array([ns.min(), ns.max()])
                    ax.plot(xs, np.exp(log_a) * xs ** (-fit.alpha), "-", color=f"C{c}", lw=1)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("training samples n")
            ax.set_ylabel(MEASURES[measure])
            ax.set_title(f"{setting[0]}, {setting[1]}: {MEASURES[measure]}", fontsize=10)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7)
            ax.grid(True, which="both", alpha=0.3)
    fig.suptitle("Data scaling: L(n) ≈ a·n^(−α); α with 95% bootstrap CI over seeds")
    fig.tight_layout()
    save_figure(fig, path)


def _compare(net: BootstrapFit, other: BootstrapFit) -> int:
    """+1 when the net scales better (its CI above the other's point), -1 when worse, 0 when unresolved."""
    if net.lo > other.alpha and other.hi < net.alpha:
        return 1
    if net.hi < other.alpha and other.lo > net.alpha:
        return -1
    return 0


def _verdict(
    fits: dict[Setting, dict[tuple[Curve, str], BootstrapFit | None]],
    curves: dict[Setting, list[Curve]],
    ranges: dict[Setting, dict[Curve, tuple[int, int]]],
) -> tuple[Verdict, list[str]]:
    texts: list[str] = []
    better_init: list[int] = []
    caught_up: list[bool] = []
    for setting in sorted(fits):
        if setting[1] == CONTROL_MODEL:
            continue  # the positive control, judged apart (positive_control)
        f = fits[setting]
        net = f.get(("net", "mse"))
        if net is None:
            continue
        for curve in curves[setting][1:]:
            k = f.get((curve, "mse"))
            if k is None:
                continue
            cmp = _compare(net, k)
            word = {1: "better than", -1: "worse than", 0: "not distinguishable from"}[cmp]
            lo, hi = ranges[setting][curve]
            err_net, err_k = f.get(("net", "err")), f.get((curve, "err"))
            texts.append(
                f"{setting[0]}, {setting[1]}: the net's loss exponent {_ci(net)} is {word} that of the "
                f"{_label(curve)}, {_ci(k)} (fit range n = {lo}–{hi}, {math.log10(hi / lo):.2f} decades; "
                f"error-rate exponents beside them: net {_ci(err_net)}, {_label(curve)} {_ci(err_k)})."
            )
            if curve in ("entk0", "ntk"):
                better_init.append(cmp)
            else:
                caught_up.append(k.lo > net.alpha)
    if not better_init:
        return "inconclusive", [
            "Too few sizes n with finite losses to fit the net's and the kernels' exponents."
        ]
    if all(c == 1 for c in better_init) and not any(caught_up):
        head = "Verdict: supported — the net's loss exponent beats the eNTK at init and the infinite NTK in every"
        head += " setting, and no after-m eNTK exceeds it."
        return "supported", [head, *texts]
    if all(c == -1 for c in better_init):
        head = (
            "Verdict: not supported — the kernels at init scale better than the trained net in every setting."
        )
        return "not supported", [head, *texts]
    n_better = sum(c == 1 for c in better_init)
    head = (
        f"Verdict: mixed — the net scales better in {n_better} of {len(better_init)} comparisons with the kernels at "
        f"init; {sum(caught_up)} after-m eNTK(s) exceed the net."
    )
    return "mixed", [head, *texts]


def positive_control(
    fits: dict[Setting, dict[tuple[Curve, str], BootstrapFit | None]],
    ranges: dict[Setting, dict[Curve, tuple[int, int]]],
) -> dict[str, Any] | None:
    """The comparison where the theory must hold: a linear model is its own eNTK, so trained to its optimum it is
    kernel regression with that kernel, and the same comparison (:func:`_compare`) must find the net's MSE exponent
    indistinguishable from the eNTK-at-init one ("match"); None when the sweep has no linear model."""
    measured: dict[str, Any] = {}
    calls: list[int] = []
    for setting in sorted(s for s in fits if s[1] == CONTROL_MODEL):
        net, k = fits[setting].get(("net", "mse")), fits[setting].get(("entk0", "mse"))
        if net is None or k is None:
            continue
        cmp = _compare(net, k)
        calls.append(cmp)
        measured[setting[0]] = {
            "net": {"alpha": net.alpha, "ci": [net.lo, net.hi]},
            "entk0": {"alpha": k.alpha, "ci": [k.lo, k.hi]},
            "fit_range_n": list(ranges[setting]["net"]),
            "comparison": {1: "net better", -1: "net worse", 0: "not distinguishable"}[cmp],
        }
    if not calls:
        return None
    return {
        "setting": "model_kind linear (f = W x + b, trained to its least-squares optimum)",
        "expected": "net exponent not distinguishable from the eNTK-at-init exponent (a linear model is its own "
        "eNTK: trained to its optimum it is kernel regression with that kernel)",
        "measured": measured,
        "verdict": "match" if all(c == 0 for c in calls) else "no match",
    }


def _control_sentence(control: dict[str, Any]) -> str:
    parts = [
        f"{ds}: net {v['net']['alpha']:.3f} [{v['net']['ci'][0]:.3f}, {v['net']['ci'][1]:.3f}] vs eNTK at init "
        f"{v['entk0']['alpha']:.3f} [{v['entk0']['ci'][0]:.3f}, {v['entk0']['ci'][1]:.3f}], {v['comparison']} "
        f"(n = {v['fit_range_n'][0]}–{v['fit_range_n'][1]})"
        for ds, v in control["measured"].items()
    ]
    return (
        f"Positive control ({control['setting']}; expected: {control['expected']}): "
        + "; ".join(parts)
        + f" → {control['verdict']}"
        + ("." if control["verdict"] == "match" else " — the comparison is suspect.")
    )


def _settings_text(
    rows: list[ResultRow[ScalingParams]], n_failed: int, n_skipped: int, n_diverged: int
) -> tuple[str, ...]:
    c = rows[0].config
    p = rows[0].params
    return (
        "As tested here (deviations from Vyas et al. 2022): the net's MSE exponent against each kernel's, with "
        "bootstrap CIs over seeds, over the stated fit range; small MLPs/CNNs on MNIST, MNIST-1D and digits at "
        "n ≤ 4096 instead of the paper's CIFAR-scale CNNs and ResNets over more decades.",
        f"Data: {sorted({r.config.data.name for r in rows})}, pool n_train={c.data.n_train}, test examples "
        f"≤ {p.test_size}; MSE on {c.data.target or 'default (one-hot)'} targets.",
        f"Models: {sorted({str(r.params.model_kind) for r in rows})}; depth {p.depth}, MLP "
        f"width {p.width}, CNN channels {p.channels} (stride 2); {p.parametrization} "
        f"parametrization; readout σ_w = {p.readout_sigma_w}; float64.",
        f"Training: {c.train.optimizer}, lr {c.train.learning_rate}, {c.train.steps} steps, batch "
        f"{c.train.batch_size or 'full'}; the after-m net is trained the same way on the first m samples.",
        f"Kernel regression: converged (t = ∞) from f = 0, ridge {p.ridge} × mean diag K.",
        f"Grid: n {sorted({_n(r) for r in rows})}; pretrain_m {sorted({int(r.params.pretrain_m) for r in rows})}; "
        f"seeds {sorted({r.config.seed for r in rows})}.",
        f"Runs: {len(rows)} completed, {n_diverged} diverged, {n_skipped} skipped (n beyond the pool), "
        f"{n_failed} failed.",
        f"Fits: log L on log n over every n of the sweep, the after-m eNTK over n ≥ {N_OVER_M}·m only (the claim is "
        f"about n ≫ m); pure power law (the table's last column also fits an offset c ≥ 0); 95% percentile CI from "
        f"{N_BOOT} bootstrap replicates resampling seeds. Error-rate exponents are given beside the MSE ones (MSE on "
        "one-hot targets can hide a difference the error rate shows).",
    )


def section(study: Study, rows: list[ResultRow[ScalingParams]], figures_dir: Path) -> StudySection:
    """Build the ``scaling`` report section and write its figure into ``figures_dir``."""
    figures_dir.mkdir(parents=True, exist_ok=True)
    base = section_header(study)
    done = [r for r in rows if r.status == "done" and r.metrics.get("status") in ("completed", "diverged")]
    n_failed = sum(r.status != "done" for r in rows)
    n_skipped = sum(r.status == "done" and r.metrics.get("status") == "skipped" for r in rows)
    n_diverged = sum(r.status == "done" and r.metrics.get("status") == "diverged" for r in rows)
    if not done:
        return StudySection(
            **base,
            verdict="inconclusive",
            findings=(f"No completed runs ({n_failed} failed, {n_skipped} skipped): nothing to report.",),
        )
    groups: dict[Setting, list[ResultRow[ScalingParams]]] = defaultdict(list)
    for r in done:
        groups[_setting(r)].append(r)
    curves = {s: _curves(rs) for s, rs in groups.items()}
    fits = {s: {(c, m): _fit(rs, c, m) for c in curves[s] for m in MEASURES} for s, rs in groups.items()}

    png = figures_dir / "scaling_loss_vs_n.png"
    _plot(groups, fits, png)
    ranges = {
        s: {c: (int(n.min()), int(n.max())) for c in curves[s] if (n := _points(rs, c, "mse")[0]).size}
        for s, rs in groups.items()
    }
    verdict, findings = _verdict(fits, curves, ranges)
    control = positive_control(fits, ranges)
    if control is not None:
        findings.insert(1, _control_sentence(control))
    n_seeds = len({r.config.seed for r in done})
    findings[0] += f" Seeds: {n_seeds}" + (
        " — fewer than 3: the bootstrap CIs over seeds are unreliable." if n_seeds < 3 else "."
    )
    for s in sorted(groups):
        n_max = max(_n(r) for r in groups[s])
        at = [r for r in groups[s] if _n(r) == n_max]
        parts = []
        for curve in curves[s]:
            method = "entk_m" if curve.startswith("entk_m=") else curve
            mine = [r for r in at if _on_curve(r, curve)]
            vals = [
                float(v) for r in mine if isinstance(v := r.metrics.get(f"test_mse_{method}"), int | float)
            ]
            errs = [
                float(v) for r in mine if isinstance(v := r.metrics.get(f"test_err_{method}"), int | float)
            ]
            if vals:
                err = f", error {np.mean(errs):.3f}" if errs else ""
                parts.append(f"{_label(curve)} MSE {np.mean(vals):.3f}{err}")
        findings.append(f"{s[0]}, {s[1]} at n = {n_max} (mean over runs): " + "; ".join(parts) + ".")
    if n_diverged:
        findings.append(f"{n_diverged} net(s) diverged; their own losses are left out of the fits.")

    header = (
        "dataset",
        "model",
        "method",
        "fit range n",
        "runs",
        "α (MSE) [95% CI]",
        "α (error) [95% CI]",
        "α (MSE, + c) [95% CI]",
    )
    table_rows = []
    for s in sorted(groups):
        for curve in curves[s]:
            n, _, _ = _points(groups[s], curve, "mse")
            rng = f"{int(n.min())}–{int(n.max())}" if n.size else "n/a"
            table_rows.append(
                (
                    s[0],
                    s[1],
                    _label(curve),
                    rng,
                    str(n.size),
                    _ci(fits[s][(curve, "mse")]),
                    _ci(fits[s][(curve, "err")]),
                    _ci(_fit(groups[s], curve, "mse", offset=True)),
                )
            )
    table = Table(
        caption="Data-scaling exponents α of L(n) ≈ a·n^(−α) (least squares on log–log; 95% bootstrap CI over "
        "seeds); the last column fits L(n) ≈ a·n^(−α) + c with c ≥ 0 (an irreducible floor), from three sizes up",
        header=header,
        rows=tuple(table_rows),
    )
    return StudySection(
        **base,
        verdict=verdict,
        findings=tuple(findings),
        figures=(png,),
        tables=(table,),
        settings=_settings_text(done, n_failed, n_skipped, n_diverged),
        numbers={
            "n_over_m": N_OVER_M,
            "seeds": n_seeds,
            "fewer_than_3_seeds": n_seeds < 3,
            "positive_control": control,
            "exponents": {
                f"{s[0]}/{s[1]}/{c}/{m}": {
                    "alpha": f.alpha,
                    "ci": [f.lo, f.hi],
                    "fit_range_n": list(ranges[s][c]),
                }
                for s in sorted(groups)
                for c in curves[s]
                for m in MEASURES
                if (f := fits[s][(c, m)]) is not None and c in ranges[s]
            },
        },
        runs=tuple(r.run_id for r in done),
    )
