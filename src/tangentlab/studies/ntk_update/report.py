"""The ``ntk_update`` report: the first SGD update of the NTK against beta, its exponential fits, controls, verdict.

Per (width, depth) point, seeds pooled, ``R = mean(D) / mean(K)`` over every net. Uncertainty: a bootstrap over
nets (``N_BOOT`` replicates resample each point's nets with replacement and refit), 95 % normal intervals
(point ± 1.96 bootstrap standard errors). ``D`` is heavy-tailed (rare nets with huge kernels), so the fits weigh
each point by ``1 / se(log |R|)`` (delta method from the bootstrap). Fits
(:func:`tangentlab.studies.ntk_update.numerics.fit_beta`):
``log |R| - log(d beta) = a beta + c`` (Theorem 2's form as read) and the free prefactor ``|R| = C d^p n^q
exp(a beta)``, both over the points with at least ``MIN_DEPTH`` hidden layers (the theorem is an asymptotic in depth;
shallower nets sit on a finite-depth plateau), with the all-points fit reported beside them.

Verdict: supported when the theorem-form rate ``a`` is positive within its interval and consistent with 5
(``|a - 5| <= max(RATE_TOL, 1.96 se)``); mixed when ``a`` is significantly positive but not consistent with 5
(exponential growth at another rate); not supported when ``a`` is not significantly positive. Control: at a fixed
depth present at two or more widths, ``|R|`` must fall as width grows (the fixed-depth, infinite-width NTK is frozen;
Jacot et al. 2018): the log-log slope against width must be below ``-1/2``; if it is not, the verdict is
inconclusive.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from tangentlab.report.figures import save_figure, styled
from tangentlab.report.fits import fit_power_law
from tangentlab.report.section import StudySection, Table, Verdict
from tangentlab.studies._base import ResultRow, Study
from tangentlab.studies._sections import empty_section, tally
from tangentlab.studies._sections import header as section_header
from tangentlab.studies.ntk_update import NtkUpdateParams, depth_of
from tangentlab.studies.ntk_update.numerics import BetaFit, fit_beta

PAPER_RATE = 5.0
#: Points with fewer hidden layers are left out of the fits: Theorem 2 is an asymptotic in depth, and shallow nets
#: show a finite-depth plateau (as for the NTK's second moment: one hidden layer gives 3/n, not 5/n).
MIN_DEPTH = 4
RATE_TOL = 1.0
N_BOOT = 300
Z = 1.96
Point = tuple[int, int]  # (width, depth)


def _pooled(rows: list[ResultRow[NtkUpdateParams]]) -> dict[Point, tuple[np.ndarray, np.ndarray]]:
    parts: dict[Point, list[tuple[np.ndarray, np.ndarray]]] = defaultdict(list)
    for r in rows:
        parts[(r.params.width, depth_of(r.params))].append((r.artifact("K"), r.artifact("D")))
    return {
        pt: (np.concatenate([k for k, _ in v]), np.concatenate([d for _, d in v])) for pt, v in parts.items()
    }


def _fit(points: list[Point], ratios: np.ndarray, log_se: np.ndarray, prefactor: str) -> BetaFit | None:
    d = [float(dep) for _, dep in points]
    n = [float(w) for w, _ in points]
    try:
        return fit_beta(d, n, np.abs(ratios), prefactor=prefactor, log_se=log_se)
    except ValueError:
        return None


def _fixed_depth_slopes(points: list[Point], ratios: np.ndarray) -> dict[int, float]:
    out = {}
    for depth in sorted({d for _, d in points}):
        sel = [(w, abs(r)) for (w, d), r in zip(points, ratios, strict=True) if d == depth and r != 0]
        if len({w for w, _ in sel}) >= 2:
            out[depth] = fit_power_law([w for w, _ in sel], [v for _, v in sel]).slope
    return out


@styled
def _plot(points: list[Point], ratios: np.ndarray, half: np.ndarray, fit: BetaFit | None, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    widths = sorted({w for w, _ in points})
    for i, w in enumerate(widths):
        idx = [j for j, (pw, _) in enumerate(points) if pw == w]
        idx.sort(key=lambda j: points[j][1])
        beta = np.array([points[j][1] / w for j in idx])
        depth = np.array([points[j][1] for j in idx], dtype=float)
        r, h = np.abs(ratios[idx]), half[idx]
        lower = np.clip(r - h, r * 1e-3, None)
        axes[0].errorbar(
            beta, r, yerr=[r - lower, h], marker="o", capsize=3, color=f"C{i}", label=f"width {w}"
        )
        scaled = r / (depth * beta)
        axes[1].errorbar(
            beta, scaled, yerr=[scaled - lower / (depth * beta), h / (depth * beta)], marker="o", capsize=3,
            color=f"C{i}", label=f"width {w}",
        )  # fmt: skip
    all_beta = np.array([d / w for w, d in points])
    grid = np.linspace(all_beta.min(), all_beta.max(), 50)
    if fit is not None:
        axes[1].plot(
            grid, np.exp(fit.intercept + fit.rate * grid), "k-", lw=1, label=f"fit: exp({fit.rate:.2f} β)"
        )
        axes[1].plot(
            grid, np.exp(fit.intercept + fit.rate * grid[0] + PAPER_RATE * (grid - grid[0])), "k:", lw=1,
            label="exp(5β) (Hanin & Nica)",
        )  # fmt: skip
    axes[0].set_ylabel("|E[ΔK]| / E[K] per unit step")
    axes[1].set_ylabel("|E[ΔK]| / (E[K] · dβ)")
    for ax in axes:
        ax.set_yscale("log")
        ax.set_xlabel("β = depth / width")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    axes[0].set_title("First SGD update of the NTK (mean over inits)", fontsize=10)
    axes[1].set_title("With Theorem 2's prefactor dβ divided out", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def section(study: Study, rows: list[ResultRow[NtkUpdateParams]], figures_dir: Path) -> StudySection:
    """Build the ``ntk_update`` report section and write its figure into ``figures_dir``."""
    figures_dir.mkdir(parents=True, exist_ok=True)
    runs = tally(rows)
    if not runs.completed:
        return empty_section(study, runs)
    pooled = _pooled(runs.completed)
    points = sorted(pooled, key=lambda pt: (pt[0], pt[1]))
    ratios = np.array([pooled[pt][1].mean() / pooled[pt][0].mean() for pt in points])
    rng = np.random.default_rng(0)
    boot = np.empty((N_BOOT, len(points)))
    for j, pt in enumerate(points):
        k, d = pooled[pt]
        idx = rng.integers(0, k.size, size=(N_BOOT, k.size))
        boot[:, j] = d[idx].mean(axis=1) / k[idx].mean(axis=1)
    half = Z * boot.std(axis=0, ddof=1)
    # s.e. of log|R| by the delta method, floored so that a point whose interval reaches 0 keeps a small weight
    log_se = np.clip(half / Z / np.maximum(np.abs(ratios), 1e-300), 1e-3, 10.0)
    deep = np.array([d >= MIN_DEPTH for _, d in points])
    fit_points = [pt for pt, keep in zip(points, deep, strict=True) if keep]
    theorem = _fit(fit_points, ratios[deep], log_se[deep], "theorem")
    free = _fit(fit_points, ratios[deep], log_se[deep], "free")
    all_points = _fit(points, ratios, log_se, "theorem")
    reps = [
        f.rate
        for b in range(N_BOOT)
        if (f := _fit(fit_points, boot[b][deep], log_se[deep], "theorem")) is not None
    ]
    rate_half = Z * float(np.std(reps, ddof=1)) if len(reps) > 1 else math.nan
    controls = _fixed_depth_slopes(points, ratios)
    control_ok = bool(controls) and all(s < -0.5 for s in controls.values())

    if theorem is None:
        verdict: Verdict = "inconclusive"
        text = "Verdict: inconclusive — fewer than two values of β (or a sign change): no rate can be fitted."
    else:
        rate, lo, hi = theorem.rate, theorem.rate - rate_half, theorem.rate + rate_half
        rate_text = f"a = {rate:.2f} [{lo:.2f}, {hi:.2f}] (paper: {PAPER_RATE:g})"
        if not control_ok and controls:
            verdict, text = (
                "inconclusive",
                f"Verdict: inconclusive — the fixed-depth control fails; {rate_text}.",
            )
        elif lo > 0 and abs(rate - PAPER_RATE) <= max(RATE_TOL, rate_half):
            verdict, text = (
                "supported",
                f"Verdict: supported — exponential growth in β at the paper's rate: {rate_text}.",
            )
        elif lo > 0:
            verdict = "mixed"
            text = f"Verdict: mixed — |E[ΔK]|/E[K] grows exponentially in β, but not at the paper's rate: {rate_text}."
        else:
            verdict, text = (
                "not supported",
                f"Verdict: not supported — no significant exponential growth: {rate_text}.",
            )
    findings = [text]
    if controls:
        findings.append(
            "Control (fixed depth, growing width: the kernel must freeze): log-log slope of |R| against width "
            + ", ".join(f"depth {d}: {s:+.2f}" for d, s in controls.items())
            + (
                " — falling, as it must."
                if control_ok
                else " — NOT falling faster than width^(−1/2): suspect."
            )
        )
    if all_points is not None:
        findings.append(
            f"Fit over every point, shallow ones included (depth < {MIN_DEPTH}): a = {all_points.rate:.2f} — the "
            "finite-depth plateau at small β pulls it down."
        )
    if free is not None:
        findings.append(
            f"Free prefactor |R| = C·d^p·n^q·exp(aβ): a = {free.rate:.2f}, p = {free.depth_power:.2f}, "
            f"q = {free.width_power:.2f} (Theorem 2 as read: p = 2, q = −1 at fixed input dimension, a = 5)."
        )
    signs = "negative" if np.all(ratios < 0) else ("positive" if np.all(ratios > 0) else "of both signs")
    findings.append(
        f"E[ΔK] is {signs} at every point: one step on (x, 0) "
        + ("shrinks the kernel at x on average." if signs == "negative" else "changes the kernel at x.")
    )
    n_nets = {pt: pooled[pt][0].size for pt in points}
    table = Table(
        caption="First-order SGD update of the NTK per unit step, R = E[D]/E[K] (± 1.96 bootstrap s.e. over nets), "
        "and the NTK's second moment E[K²]/E[K]² of the same nets",
        header=("width", "depth", "β", "nets", "R", "R/(dβ)", "E[K²]/E[K]²"),
        rows=tuple(
            (
                str(w),
                str(d),
                f"{d / w:.3g}",
                str(n_nets[(w, d)]),
                f"{r:.3g} ± {h:.2g}",
                f"{r / (d * d / w):.3g}",
                f"{np.mean(pooled[(w, d)][0] ** 2) / pooled[(w, d)][0].mean() ** 2:.3g}",
            )
            for (w, d), r, h in zip(points, ratios, half, strict=True)
        ),
    )
    png = _plot(points, ratios, half, theorem, figures_dir / "ntk_update_vs_beta.png")
    numbers = {
        "paper_rate": PAPER_RATE,
        "rate_tol": RATE_TOL,
        "min_depth": MIN_DEPTH,
        "theorem_fit_all_depths": None if all_points is None else all_points.rate,
        "theorem_fit": None
        if theorem is None
        else {"rate": theorem.rate, "ci_half": rate_half, "c": theorem.intercept},
        "free_fit": None if free is None else free._asdict(),
        "fixed_depth_width_slopes": {str(d): s for d, s in controls.items()},
        "positive_control": {
            "setting": "fixed depth, growing width: the NTK must freeze as width grows",
            "expected": "log-log slope of |E[ΔK]|/E[K] against width below −0.5 at every depth (Theorem 2 as read: "
            "−1 − a·depth/width)",
            "measured": {str(d): s for d, s in controls.items()},
            "verdict": "match" if control_ok else "no match",
        }
        if controls
        else None,
        "points": [
            {
                "width": w,
                "depth": d,
                "beta": d / w,
                "nets": n_nets[(w, d)],
                "ratio": float(r),
                "ci_half": float(h),
            }
            for (w, d), r, h in zip(points, ratios, half, strict=True)
        ],
    }
    seeds = sorted({r.config.seed for r in runs.completed})
    settings = (
        "Nets: ReLU MLPs, He initialisation in NTK parametrization, zero biases at init (unit-scale gradients), "
        "scalar readout; depth = max(1, round(β·width)).",
        f"Input: the first training input of {runs.completed[0].config.data.name}, rescaled to ‖x‖² = input dim; "
        "target 0; D = dΔK/dλ at λ = 0 (Hessian-vector product).",
        f"Grid: widths {sorted({w for w, _ in points})}, β {sorted({r.params.beta for r in runs.completed})}; "
        f"seeds {seeds} pooled; {runs.summary()}.",
        f"Intervals: bootstrap over nets ({N_BOOT} replicates), point ± {Z}·s.e.; fits over points with depth ≥ "
        f"{MIN_DEPTH}, weighted by 1/se(log|R|).",
    )
    return StudySection(
        **section_header(study),
        verdict=verdict,
        findings=tuple(findings),
        figures=(png,),
        tables=(table,),
        settings=settings,
        numbers=numbers,
        runs=tuple(r.run_id for r in runs.completed),
    )
