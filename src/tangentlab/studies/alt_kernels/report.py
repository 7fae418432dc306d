"""The ``alt_kernels`` report: test MSE of RBF and Laplace regression beside NTK and NNGP regression, per dataset.

Rule (the claim as operationalised): per dataset, the NTK's best depth and the better of ``rbf_validation`` and
``laplace_validation`` are the ones with the lowest mean test MSE over seeds (both chosen on test data, so neither
side is favoured). Per seed (one train/validation/test draw) the paired relative difference
``(alt - ntk) / ntk`` is taken; its mean with a 95 % t-interval over seeds decides: "rivals" when the upper end is at
most ``RIVAL_TOL`` (not worse by more than 5 %), "worse" when the lower end is above it, "undecided" otherwise.
Reference (not a gate): NNGP regression at the NTK's best depth, which Liu et al. find to err almost exactly as NTK
regression, judged by the same rule. This claim compares methods at fixed n; it has no setting where theory forces
the answer, so there is no positive control (it is an extension, like ``uncertainty``): the verdict reports what the
comparison shows. Verdict: supported when the alternative kernels rival the NTK on every dataset, not supported when
they are worse on every dataset, mixed otherwise; inconclusive with fewer than 2 seeds.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Literal

import numpy as np
from scipy import stats

from tangentlab.report.figures import save_figure, styled
from tangentlab.report.section import StudySection, Table, Verdict
from tangentlab.studies._base import ResultRow, Study
from tangentlab.studies._sections import empty_section, finite_values, tally
from tangentlab.studies._sections import header as section_header
from tangentlab.studies.alt_kernels import STATIONARY, AltKernelsParams

RIVAL_TOL = 0.05
Call = Literal["rivals", "worse", "undecided"]
LABELS = {
    "rbf_median": "RBF, median bandwidth",
    "rbf_validation": "RBF, validated bandwidth",
    "laplace_median": "Laplace, median bandwidth",
    "laplace_validation": "Laplace, validated bandwidth",
}


def paired(rows: list[ResultRow[AltKernelsParams]], a: str, b: str) -> tuple[float, float, float, int]:
    """Mean of ``(mse_a - mse_b) / mse_b`` over the rows (seeds) with both, and its 95 % t-interval."""
    diffs = []
    for r in rows:
        va, vb = r.metrics.get(f"test_mse_{a}"), r.metrics.get(f"test_mse_{b}")
        if isinstance(va, int | float) and isinstance(vb, int | float) and vb > 0:
            diffs.append((float(va) - float(vb)) / float(vb))
    if len(diffs) < 2:
        mean = float(diffs[0]) if diffs else math.nan
        return mean, math.nan, math.nan, len(diffs)
    d = np.array(diffs)
    half = float(stats.t.ppf(0.975, d.size - 1) * d.std(ddof=1) / math.sqrt(d.size))
    return float(d.mean()), float(d.mean() - half), float(d.mean() + half), d.size


def call(lo: float, hi: float) -> Call:
    """``"rivals"`` when the interval's upper end is at most ``RIVAL_TOL``, ``"worse"`` when its lower end is
    above it, else ``"undecided"`` (also for an interval that cannot be computed)."""
    if math.isfinite(hi) and hi <= RIVAL_TOL:
        return "rivals"
    if math.isfinite(lo) and lo > RIVAL_TOL:
        return "worse"
    return "undecided"


def _mean(rows: list[ResultRow[AltKernelsParams]], key: str) -> float:
    vals = finite_values(rows, key)
    return float(np.mean(vals)) if vals else math.nan


@styled
def _plot(by_data: dict[str, list[ResultRow[AltKernelsParams]]], path: Path) -> Path:
    import matplotlib.pyplot as plt

    names = sorted(by_data)
    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 4), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        rows = by_data[name]
        depths = list(rows[0].params.depths)
        for i, kern in enumerate(("ntk", "nngp")):
            vals = [finite_values(rows, f"test_mse_{kern}_d{d}") for d in depths]
            ax.errorbar(
                depths, [np.mean(v) for v in vals], yerr=[np.std(v) for v in vals], marker="o", capsize=3,
                color=f"C{i}", label=f"{kern.upper()} regression (infinite kernel)",
            )  # fmt: skip
        for j, key in enumerate(STATIONARY):
            ax.axhline(_mean(rows, f"test_mse_{key}"), color=f"C{j + 2}", ls="--" if "median" in key else "-",
                       lw=1.2, label=LABELS[key])  # fmt: skip
        ax.set_xlabel("depth (hidden layers)")
        ax.set_ylabel("test MSE (mean ± sd over seeds)")
        ax.set_xticks(depths)
        ax.set_title(name, fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("NTK and NNGP regression against depth; RBF and Laplace regression (no depth)", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def section(study: Study, rows: list[ResultRow[AltKernelsParams]], figures_dir: Path) -> StudySection:
    """Build the ``alt_kernels`` report section and write its figure into ``figures_dir``."""
    figures_dir.mkdir(parents=True, exist_ok=True)
    runs = tally(rows)
    if not runs.completed:
        return empty_section(study, runs)
    by_data: dict[str, list[ResultRow[AltKernelsParams]]] = defaultdict(list)
    for r in runs.completed:
        by_data[r.config.data.name].append(r)
    findings: list[str] = []
    numbers: dict[str, object] = {"rival_tol": RIVAL_TOL, "datasets": {}}
    calls: dict[str, Call] = {}
    table_rows = []
    for name, rs in sorted(by_data.items()):
        depths = list(rs[0].params.depths)
        ntk_means = {d: _mean(rs, f"test_mse_ntk_d{d}") for d in depths}
        best_d = min(depths, key=lambda d: ntk_means[d] if math.isfinite(ntk_means[d]) else math.inf)
        alt = min(("rbf_validation", "laplace_validation"), key=lambda k: _mean(rs, f"test_mse_{k}"))
        diff, lo, hi, n = paired(rs, alt, f"ntk_d{best_d}")
        cdiff, clo, chi, _ = paired(rs, f"nngp_d{best_d}", f"ntk_d{best_d}")
        calls[name] = call(lo, hi)
        control = call(clo, chi)
        findings.append(
            f"{name}: {LABELS[alt]} test MSE {_mean(rs, f'test_mse_{alt}'):.4g} against NTK regression at its best "
            f"depth {best_d} {ntk_means[best_d]:.4g}: paired relative difference {diff:+.1%} "
            f"[{lo:+.1%}, {hi:+.1%}] over {n} seeds → {calls[name]} (rule: upper end ≤ +{RIVAL_TOL:.0%}). "
            f"Reference, NNGP at depth {best_d}: {cdiff:+.1%} [{clo:+.1%}, {chi:+.1%}] → {control}."
        )
        entry: dict[str, object] = {
            "best_ntk_depth": best_d,
            "best_alternative": alt,
            "relative_difference": {"mean": diff, "ci": [lo, hi], "seeds": n, "call": calls[name]},
            "reference_nngp": {"mean": cdiff, "ci": [clo, chi], "call": control},
            "test_mse": {
                **{f"ntk_d{d}": ntk_means[d] for d in depths},
                **{f"nngp_d{d}": _mean(rs, f"test_mse_nngp_d{d}") for d in depths},
                **{k: _mean(rs, f"test_mse_{k}") for k in STATIONARY},
            },
            "bandwidth_over_median": {k: _mean(rs, f"bandwidth_over_median_{k}") for k in STATIONARY},
        }
        assert isinstance(numbers["datasets"], dict)
        numbers["datasets"][name] = entry
        methods = [f"ntk_d{d}" for d in depths] + [f"nngp_d{d}" for d in depths] + list(STATIONARY)
        for key in methods:
            mse = finite_values(rs, f"test_mse_{key}")
            err = finite_values(rs, f"test_err_{key}")
            table_rows.append(
                (
                    name,
                    key,
                    f"{np.mean(mse):.4g} ± {np.std(mse):.2g}" if mse else "n/a",
                    f"{np.mean(err):.3f}" if err else "n/a",
                )
            )
    seeds = sorted({r.config.seed for r in runs.completed})
    n_rival = sum(c == "rivals" for c in calls.values())
    n_worse = sum(c == "worse" for c in calls.values())
    summary = f"the alternative kernels rival the NTK on {n_rival}/{len(calls)} datasets (worse on {n_worse})"
    verdict: Verdict
    if len(seeds) < 2:
        verdict, text = "inconclusive", f"Verdict: inconclusive — fewer than 2 seeds: no interval; {summary}."
    elif n_rival == len(calls):
        verdict, text = "supported", f"Verdict: supported — {summary}."
    elif n_worse == len(calls):
        verdict, text = "not supported", f"Verdict: not supported — {summary}."
    else:
        verdict, text = "mixed", f"Verdict: mixed — {summary}."
    png = _plot(by_data, figures_dir / "alt_kernels_mse_vs_depth.png")
    c = runs.completed[0].config
    return StudySection(
        **section_header(study),
        verdict=verdict,
        findings=(text, *findings),
        figures=(png,),
        tables=(
            Table(
                caption="Test MSE (mean ± sd over seeds) and test error of every method",
                header=("dataset", "method", "test MSE", "test error"),
                rows=tuple(table_rows),
            ),
        ),
        settings=(
            f"Data: {sorted(by_data)}, n_train={c.data.n_train}, n_val={c.data.n_val}, n_test={c.data.n_test}, "
            f"target {c.data.target}; subsampling seed data.seed + seed (seeds {seeds}"
            + (" — fewer than 3" if len(seeds) < 3 else "")
            + ").",
            f"Kernels: infinite NTK/NNGP of equivalence's ReLU MLPs (σ_w = {runs.completed[0].params.sigma_w:.3g}, "
            f"σ_b = {runs.completed[0].params.sigma_b:g}) at depths {list(runs.completed[0].params.depths)}; RBF "
            f"and Laplace (Euclidean) with the median bandwidth or the best of median × "
            f"{list(runs.completed[0].params.grid)} on the validation split; relative ridge "
            f"{runs.completed[0].params.ridge:g}.",
        ),
        numbers=numbers,
        runs=tuple(r.run_id for r in runs.completed),
    )
