"""The ``ensemble`` study's report: ensemble-vs-NTK-GP distances against width, their slopes, matches and verdict.

Per dataset and time ``t`` the paired distances of the ensemble's mean and variance from the NTK-GP's
(:mod:`tangentlab.studies.ensemble.numerics`) are fitted as ``log distance = slope * log width + c`` over every
completed run. Uncertainty comes from a bootstrap over ensemble members (``N_BOOT`` replicates; each replicate
resamples the members of every run with replacement, recomputes every distance and refits the slope): 95 % normal
intervals, point ± 1.96 bootstrap standard errors, for the distances and the slope (a distance is a norm, so its
replicates are shifted up by their own resampling noise and a percentile interval can exclude the point).

Rules (the claim as operationalised):

* **bound**: a finite net's deviation from its linearization is ``O(width^(-1/2))`` (Lee et al. 2019, Thm. 2.1), so
  the distances shrink at least that fast: a slope is within the bound when ``slope <= -1/2 + max(TOLERANCE,
  slope - lo)`` (``lo`` the lower end of its interval: not significantly above ``-1/2``), as in the ``lazy`` study.
* **match**: at a width the ensemble matches the NTK-GP when the upper end of the distance's interval is below
  ``MATCH_TOL`` (the mean within 0.1 predictive standard deviations, the variance within 10 %); "no match" when the
  lower end is above it; "undecided" otherwise.
* **positive control**: the widest width at the shortest time must match (both statistics); if it does not, the
  verdict is inconclusive (the test, not the theory, is suspect).
* **verdict**: supported when every (dataset, time, statistic) slope is within the bound and the widest ensembles
  match at every time; not supported when no slope is within the bound; mixed otherwise.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from tangentlab.report.section import StudySection, Table, Verdict
from tangentlab.studies._base import ResultRow, Study
from tangentlab.studies._sections import empty_section, tally
from tangentlab.studies._sections import header as section_header
from tangentlab.studies.ensemble import EnsembleParams
from tangentlab.studies.ensemble.curves import (
    LEVEL,
    MATCH_TOL,
    N_BOOT,
    STATS,
    THEORY_SLOPE,
    TOLERANCE,
    Curve,
    Z,
    curves,
    local_slope,
    match_call,
    within_bound,
)
from tangentlab.studies.ensemble.figures import plot_bands, plot_distances


def _times(rows: list[ResultRow[EnsembleParams]]) -> tuple[int, ...]:
    common = set(rows[0].params.times)
    for r in rows[1:]:
        common &= set(r.params.times)
    return tuple(sorted(common))


def _fmt(curve: Curve) -> str:
    if not math.isfinite(curve.slope):
        return "n/a"
    return f"{curve.slope:+.2f} [{curve.lo:+.2f}, {curve.hi:+.2f}]"


def _verdict(
    per_data: dict[str, dict[tuple[str, int], Curve]], widest: dict[str, int]
) -> tuple[Verdict, str, list[str], dict[str, object]]:
    controls: list[str] = []
    control_ok = True
    measured: dict[str, object] = {}
    for name, cs in per_data.items():
        t0 = min(t for _, t in cs)
        calls = {s: match_call(*cs[(s, t0)].interval(widest[name])[1:]) for s in STATS}
        ok = all(c == "match" for c in calls.values())
        control_ok &= ok
        measured[name] = {
            "width": widest[name],
            "t": t0,
            "distance": {s: float(cs[(s, t0)].interval(widest[name])[0]) for s in STATS},
            "calls": calls,
        }
        dist = ", ".join(f"{s} {cs[(s, t0)].interval(widest[name])[0]:.3g}" for s in STATS)
        controls.append(
            f"Positive control ({name}, widest width {widest[name]}, shortest time t = {t0}): distances {dist} — "
            + ("match, as it must." if ok else f"{calls} — NOT a match: the test is suspect.")
        )
    checks = [
        (name, s, t, within_bound(c), match_call(*c.interval(widest[name])[1:]) == "match")
        for name, cs in per_data.items()
        for (s, t), c in cs.items()
    ]
    control: dict[str, object] = {
        "setting": "each dataset's widest ensemble at the shortest time (NTK parametrization, full-batch GD)",
        "expected": f"the ensemble's mean and variance match the NTK-GP's: distance CI below {MATCH_TOL:g}",
        "measured": measured,
        "verdict": "match" if control_ok else "no match",
    }
    n_bound = sum(b for *_, b, _ in checks)
    n_match = sum(m for *_, m in checks)
    summary = (
        f"{n_bound}/{len(checks)} (dataset, time, statistic) slopes within the width^(−1/2) bound; the widest "
        f"ensembles match the NTK-GP (distance < {MATCH_TOL:g}) in {n_match}/{len(checks)}"
    )
    if not control_ok:
        return (
            "inconclusive",
            f"Verdict: inconclusive — the positive control fails. {summary}.",
            controls,
            control,
        )
    if n_bound == len(checks) and n_match == len(checks):
        return "supported", f"Verdict: supported — {summary}.", controls, control
    if n_bound == 0:
        return "not supported", f"Verdict: not supported — {summary}.", controls, control
    failing = [f"{name} t={t} {s}" for name, s, t, b, m in checks if not (b and m)]
    return (
        "mixed",
        f"Verdict: mixed — {summary}; short of the claim: {', '.join(failing)}.",
        controls,
        control,
    )


def _settings(rows: list[ResultRow[EnsembleParams]], n_failed: int, n_diverged: int) -> tuple[str, ...]:
    p = rows[0].params
    c = rows[0].config
    data = sorted({(r.config.data.name, r.config.data.n_train, r.config.data.n_test) for r in rows})
    seeds = sorted({r.config.seed for r in rows})
    return (
        "Data: " + "; ".join(f"{d} (n_train={a}, n_test={b})" for d, a, b in data) + "; targets z-scored.",
        f"Model: {'the study default (one hidden ReLU layer, σ_w = σ_b = 1)' if c.model is None else c.model}; "
        "NTK parametrization, float64; every hidden Dense has `width` units.",
        f"Training: full-batch GD on MSE, η = {p.lr_fraction}·n/λ_max(Θ_∞) (the same for every width and member), "
        f"compared at t = {list(p.times)} steps with the NTK-GP for discrete GD at the same step.",
        f"Ensembles: {p.ensemble_size} nets per run (seeds 1000·seed + k); widths "
        f"{sorted({r.params.width for r in rows})}; sweep seeds {seeds}"
        + (" (one ensemble per width)" if len(seeds) == 1 else "")
        + ".",
        f"Runs: {len(rows)} completed, {n_diverged} diverged (left out), {n_failed} failed.",
        f"Distances are paired (each net against the infinite-width linearized net from its own init, a control "
        f"variate); intervals: {LEVEL:.0%} normal intervals from a bootstrap over members ({N_BOOT} replicates).",
    )


def section(study: Study, rows: list[ResultRow[EnsembleParams]], figures_dir: Path) -> StudySection:
    """Build the ``ensemble`` report section and write its figures into ``figures_dir``."""
    figures_dir.mkdir(parents=True, exist_ok=True)
    runs = tally(rows)
    done = runs.completed
    if not done:
        return empty_section(study, runs)
    by_data: dict[str, list[ResultRow[EnsembleParams]]] = defaultdict(list)
    for r in done:
        by_data[r.config.data.name].append(r)
    per_data = {name: curves(rs, _times(rs)) for name, rs in sorted(by_data.items())}
    widest = {name: max(r.params.width for r in rs) for name, rs in by_data.items()}
    if any(np.unique(next(iter(cs.values())).widths).size < 2 for cs in per_data.values()):
        return StudySection(
            **section_header(study),
            verdict="inconclusive",
            findings=("Fewer than two widths for a dataset: no slope can be fitted.",),
            runs=tuple(r.run_id for r in done),
        )
    verdict, verdict_text, controls, control = _verdict(per_data, widest)
    findings = [verdict_text, *controls]
    numbers: dict[str, object] = {
        "theory_slope": THEORY_SLOPE,
        "tolerance": TOLERANCE,
        "match_tol": MATCH_TOL,
        "n_boot": N_BOOT,
        "rule": "within the bound iff slope <= theory_slope + max(tolerance, slope - lo); match iff hi < match_tol",
        "positive_control": control,
    }
    table_rows = []
    datasets: dict[str, object] = {}
    for name, cs in per_data.items():
        w = widest[name]
        narrow = int(min(c.widths.min() for c in cs.values()))
        entries: dict[str, object] = {}
        for (stat, t), c in sorted(cs.items(), key=lambda kv: (kv[0][1], kv[0][0])):
            value, lo, hi = c.interval(w)
            nval, nlo, nhi = c.interval(narrow)
            call, ncall = match_call(lo, hi), match_call(nlo, nhi)
            entries[f"{stat}_t{t}"] = {
                "slope": c.slope,
                "slope_ci": [c.lo, c.hi],
                "local_slope_widest": local_slope(c),
                "within_bound": within_bound(c),
                "widest": {"width": w, "distance": value, "ci": [lo, hi], "call": call},
                "narrowest": {"width": narrow, "distance": nval, "ci": [nlo, nhi], "call": ncall},
            }
            findings.append(
                f"{name}, t = {t}, {stat}: distance ∝ width^{_fmt(c)} (bound: ≤ −1/2 → "
                f"{'within' if within_bound(c) else 'outside'}; between the two widest widths {local_slope(c):+.2f}); at width {w} {value:.3g} [{lo:.3g}, {hi:.3g}] "
                f"({call}); at width {narrow} {nval:.3g} ({ncall})."
            )
            table_rows.append(
                (
                    name,
                    str(t),
                    stat,
                    _fmt(c),
                    f"{value:.3g} [{lo:.3g}, {hi:.3g}]",
                    call,
                    f"{nval:.3g} ({ncall})",
                )
            )
        nngp = [r.metrics.get(f"nngp_mean_distance_t{max(_times(by_data[name]))}") for r in by_data[name]]
        nngp_wide = [
            float(v)
            for r, v in zip(by_data[name], nngp, strict=True)
            if r.params.width == w and isinstance(v, int | float)
        ]
        if nngp_wide:
            entries["nngp_mean_distance_widest"] = float(np.mean(nngp_wide))
            tmax = max(_times(by_data[name]))
            findings.append(
                f"{name}: the NNGP-mode GP (readout-only training), the wrong reference for nets whose every layer "
                f"trains, is {np.mean(nngp_wide):.3g} predictive std away at width {w}, t = {tmax} (NTK-GP: "
                f"{cs[('mean', tmax)].interval(w)[0]:.3g})."
            )
        datasets[name] = entries
    numbers["datasets"] = datasets
    bands = [plot_bands(name, rs, figures_dir / f"ensemble_bands_{name}.png") for name, rs in by_data.items()]
    dist_png = plot_distances(per_data, figures_dir / "ensemble_distance_vs_width.png", MATCH_TOL)
    table = Table(
        caption=f"Paired distance of the ensemble's statistics from the NTK-GP: slope vs width [{LEVEL:.0%} "
        f"bootstrap CI over members], value at the widest width and the match call (< {MATCH_TOL:g}), and at the "
        "narrowest width",
        header=("dataset", "t", "statistic", "slope [CI]", "widest: distance [CI]", "match", "narrowest"),
        rows=tuple(table_rows),
    )
    return StudySection(
        **section_header(study),
        verdict=verdict,
        findings=tuple(findings),
        figures=(dist_png, *bands),
        tables=(table,),
        settings=_settings(done, runs.n_failed, runs.n_diverged),
        numbers=numbers,
        runs=tuple(r.run_id for r in done),
    )


__all__ = ["LEVEL", "MATCH_TOL", "N_BOOT", "THEORY_SLOPE", "TOLERANCE", "Z", "match_call", "section"]
