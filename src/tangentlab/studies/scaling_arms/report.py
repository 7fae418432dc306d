"""The ``scaling_arms`` report: one figure, one verdict and one positive control per arm, and an overall verdict.

Exponents are decay exponents of ``L(x) = a x^(-alpha)`` fitted by least squares on a log-log scale over every point
of the arm (the fit range and the decades it spans are stated), with 95% percentile CIs from a bootstrap over seeds
(``N_BOOT`` replicates); the net and a kernel, measured in the same runs, are compared *paired* (one bootstrap
refits both, :func:`tangentlab.studies.scaling_arms.stats.paired_exponents`).

(a) **width**, per non-control width variant: the claim holds when the eNTK approaches the infinite NTK (the decay
    exponents of ``||Theta_e - Theta_inf||_F / ||Theta_inf||_F`` and of ``|log L_eNTK / L_NTK|`` against width both
    have CIs above 0) *and* the net's loss-vs-width exponent differs from that of its linearization — the eNTK at
    init trained with the same optimizer, rate, steps and ``f0`` (the CI of the paired difference excludes 0); it
    fails when neither holds. The converged eNTK regression's exponent is reported beside it but is not the
    comparison: a net stopped after finite training differs from converged regression even where it is lazy.
    Control (``control: true``): a wide NTK-parametrized net at a small rate must equal its linearization,
    ``|L_net - L_lin| / L_lin < NET_LIN_TOL`` at the widest width and loss-vs-width exponents within ``±EQUIV``,
    with the eNTK approaching the NTK.
(b) **robustness**, per non-control data variant: the net "beats" the eNTK at init when the CI of the paired
    difference ``alpha_net - alpha_eNTK`` lies above 0, "loses" when below. Supported when the net beats it under
    every variant; not supported when it loses under every one. Control: the linear model (its own eNTK) must give a
    difference whose CI lies inside ``[-EQUIV, EQUIV]``.
(c) **evolution**, per non-control data variant with snapshots: the after-kernel's log-gain ``log L_K(0)/L_K(T)``,
    and the share of it still ahead at half of training, ``log L_K(T/2)/L_K(T)`` over the total (0 when the kernel
    does not improve); the eNTK "keeps evolving through most of training" when the mean share's CI lies above
    ``LATE_MIN`` (at least a tenth of the improvement comes in the second half), and not when it lies below.
    Control: the lazy net's after-kernel must not move (``|log L_K(T)/L_K(0)| < LAZY_TOL`` and
    ``S(Theta_0, Theta_T) < LAZY_KDIST`` in every run).

The overall verdict is "supported" (or "not supported") when every arm with runs says so, "inconclusive" when none
could judge, and "mixed" otherwise. Controls are reported in findings.json under ``positive_control`` and never
enter the verdicts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tangentlab.report.section import StudySection, Table, Verdict
from tangentlab.studies._base import Study
from tangentlab.studies._sections import empty_section, header, tally
from tangentlab.studies.scaling_arms import resolved
from tangentlab.studies.scaling_arms.arms import (
    EQUIV,
    LATE_MIN,
    NET_LIN_TOL,
    ArmResult,
    evolution_arm,
    robustness_arm,
    width_arm,
)
from tangentlab.studies.scaling_arms.plots import plot_evolution, plot_robustness, plot_width
from tangentlab.studies.scaling_arms.points import Row, group_rows, variant
from tangentlab.studies.scaling_arms.stats import N_BOOT

ARM_NAMES = {"width": "(a) width", "robustness": "(b) robustness", "evolution": "(c) evolution"}


def overall(verdicts: list[Verdict]) -> Verdict:
    """Combine the arms' verdicts (inconclusive arms are left out unless all are)."""
    judged = [v for v in verdicts if v != "inconclusive"]
    if not judged:
        return "inconclusive"
    if all(v == "supported" for v in judged):
        return "supported"
    if all(v == "not supported" for v in judged):
        return "not supported"
    return "mixed"


def _control_line(name: str, control: dict[str, Any] | None) -> str | None:
    if control is None:
        return None
    return (
        f"Positive control {name} ({control['setting']}; expected: {control['expected']}): "
        f"{control['verdict']}" + ("." if control["verdict"] == "match" else " — the comparison is suspect.")
    )


def _settings(rows: list[Row], summary: str) -> tuple[str, ...]:
    c, p = rows[0].config, rows[0].params
    lines = [
        "As tested here (deviations from Vyas et al. 2022): small MLPs on digits/MNIST-scale data and n, widths and "
        "training budgets far below the paper's CIFAR-scale CNNs and ResNets; every comparison is stated with its "
        "fit range in decades and bootstrap CIs over seeds.",
        f"Data: {sorted({r.config.data.name for r in rows})}, pool n_train={c.data.n_train}, test examples "
        f"≤ {p.test_size}; MSE on {c.data.target or 'default (one-hot)'} targets; float64.",
        f"Model: depth {p.depth} × [Dense(width), ReLU] + Dense readout (σ_w = √2 hidden, readout "
        f"{p.readout_sigma_w}), {p.parametrization} parametrization unless a variant overrides it; kernel "
        f"regression converged from f = 0 with ridge {p.ridge} × mean diag K, per-output kernels.",
        f"Data arm: n ∈ {list(p.n_values)} at width {p.width}; {p.n_snapshots} snapshot steps at the largest n. "
        f"Width arm: widths {list(p.widths)} at n = {p.n_width}.",
    ]
    for name in sorted({r.params.variant for r in rows}):
        r = next(r for r in rows if r.params.variant == name)
        v, pv, tc = resolved(r.params, r.config.train)
        what = (
            "linear model, one Gauss-Newton step"
            if pv.model_kind == "linear"
            else f"{tc.optimizer} lr {tc.learning_rate:g}, batch {tc.batch_size or 'full'}"
            + (f", momentum {tc.momentum:g}" if tc.momentum else "")
            + f", {tc.steps} steps, {pv.parametrization}, width {pv.width}, depth {pv.depth}"
        )
        lines.append(f"Variant {name} ({v.arm} arm{', control' if v.control else ''}): {what}.")
    lines.append(
        f"Runs: {summary}; seeds {sorted({r.config.seed for r in rows})}; {N_BOOT} bootstrap replicates."
    )
    return tuple(lines)


def _table(result: ArmResult, caption: str, keys: tuple[str, ...]) -> Table:
    def cell(v: Any) -> str:
        if isinstance(v, dict) and "ci" in v:
            return f"{v['value']:.3f} [{v['ci'][0]:.3f}, {v['ci'][1]:.3f}]"
        if isinstance(v, float):
            return f"{v:.3f}"
        return "n/a" if v is None else str(v)

    rows = tuple((name, *(cell(num.get(k)) for k in keys)) for name, num in result.numbers.items())
    return Table(caption=caption, header=("dataset/variant", *keys), rows=rows)


def section(study: Study, rows: list[Row], figures_dir: Path) -> StudySection:
    """Build the ``scaling_arms`` report section and write its figures into ``figures_dir``."""
    figures_dir.mkdir(parents=True, exist_ok=True)
    runs = tally(rows)
    if not runs.completed:
        return empty_section(study, runs)
    done = runs.completed
    groups = group_rows(done)
    width_groups = {g: rs for g, rs in groups.items() if variant(rs[0]).arm == "width"}
    data_groups = {g: rs for g, rs in groups.items() if variant(rs[0]).arm == "data"}
    snap_groups = {g: rs for g, rs in data_groups.items() if any(r.metrics.get("snapshot_n") for r in rs)}
    results = {
        "width": width_arm(width_groups),
        "robustness": robustness_arm(data_groups),
        "evolution": evolution_arm(snap_groups),
    }
    figures: list[Path] = []
    if width_groups:
        figures.append(plot_width(width_groups, figures_dir / "scaling_arms_width.png"))
    if data_groups:
        figures.append(
            plot_robustness(
                data_groups, results["robustness"].numbers, figures_dir / "scaling_arms_robustness.png"
            )
        )
    if snap_groups:
        figures.append(plot_evolution(snap_groups, figures_dir / "scaling_arms_evolution.png"))

    verdict = overall([r.verdict for r in results.values()])
    n_seeds = len({r.config.seed for r in done})
    findings = [
        f"Verdict: {verdict} — "
        + "; ".join(f"{ARM_NAMES[k]}: {r.verdict}" for k, r in results.items())
        + f". Seeds: {n_seeds}"
        + (" — fewer than 3: the bootstrap CIs over seeds are unreliable." if n_seeds < 3 else ".")
    ]
    for key, result in results.items():
        line = _control_line(ARM_NAMES[key], result.control)
        if line:
            findings.append(line)
    for key, result in results.items():
        findings += [f"{ARM_NAMES[key]}: {f}" for f in result.findings]
    tables = (
        _table(
            results["width"],
            "(a) Loss-vs-width exponents (decay of L with width; 95% CI over seeds) and the eNTK's approach to the "
            f"infinite NTK; control tolerance |L_net − L_lin|/L_lin < {NET_LIN_TOL}",
            (
                "fit_range_width",
                "alpha_net",
                "alpha_lin",
                "alpha_net_minus_lin",
                "alpha_entk0",
                "kdist_exponent",
                "entk0_ntk_gap_exponent",
                "net_lin_rel_gap_widest",
            ),
        ),
        _table(
            results["robustness"],
            f"(b) Data-scaling exponents α of L(n) ≈ a·n^(−α) per training variant (paired bootstrap CIs over seeds; "
            f"control margin ±{EQUIV})",
            (
                "training",
                "fit_range_n",
                "decades",
                "alpha_net",
                "alpha_entk0",
                "alpha_net_minus_entk0",
                "alpha_ntk",
                "alpha_err_net",
                "alpha_err_entk0",
            ),
        ),
        _table(
            results["evolution"],
            f"(c) The after-kernel along training (means over runs, 95% CI); the claim needs late_share > {LATE_MIN}",
            (
                "n",
                "total_log_gain",
                "late_share",
                "t90_fraction",
                "kdist0_T",
                "late_angle_share",
                "after_kernel_over_net_T",
            ),
        ),
    )
    return StudySection(
        **header(study),
        verdict=verdict,
        findings=tuple(findings),
        figures=tuple(figures),
        tables=tuple(t for t in tables if t.rows),
        settings=_settings(done, runs.summary()),
        numbers={
            "seeds": n_seeds,
            "fewer_than_3_seeds": n_seeds < 3,
            "arms": {k: {"verdict": r.verdict, "groups": r.numbers} for k, r in results.items()},
            "positive_control": {k: r.control for k, r in results.items() if r.control is not None},
            "rules": {"net_lin_tol": NET_LIN_TOL, "equivalence_margin": EQUIV, "late_min": LATE_MIN},
        },
        runs=tuple(r.run_id for r in done),
    )
