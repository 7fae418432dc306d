"""The ``bandit`` study's report: cumulative regret against rounds per agent and width, final regrets, verdict.

Curves: the mean over seeds of the cumulative pseudo-regret ``R_t`` with a band of one standard error of that mean
(``std / sqrt(seeds)``; no band with one seed). Comparison (the claim): each NTK-rule agent is paired with its
evidence-tuned twin at the same bandit and width — ``neural_ucb`` with ``ucb_evidence`` and ``neural_ts`` with
``ts_evidence`` — and the seeds are paired (the same seed is the same bandit and the same initial net). A twin is
*better* when the mean paired difference of final regrets is negative and larger in size than
``2 * standard error`` of the paired differences (with a single seed: any difference above 1% of the NTK-rule
regret), *worse* in the mirrored case, else *tied*. With a sweep over ``nu`` (the NTK rule's noise scale) every
nu is reported, and the verdict is judged at nu = the reward noise std (Zhou et al.'s sub-Gaussian scale). The UCB
pairs and the TS pairs are also judged apart (the
"halves"; with nu at the noise std NeuralUCB can match its twin while Neural TS does not). Verdict: ``supported`` if at least half of the pairs are better
and none worse, ``not supported`` if at least half are worse and none better, ``mixed`` otherwise;
``inconclusive`` without pairs.

Positive control (the ``linear`` bandit, kept out of the verdict): a reward linear in the arm features with
``||h||_H <= S`` in the NTK's RKHS and Gaussian noise of std ``nu``, so every assumption of Zhou et al.'s Thm. 4.1
holds and the NTK rule's ``gamma_t sqrt(v(x))`` is a valid confidence width: with probability at least ``1 - delta``
every mean reward lies inside ``f(x) ± gamma_t sqrt(v(x))`` (the finite-sample statement the regret bound rests on).
The control *matches* when every NTK-rule agent's ``interval_coverage`` (mean over seeds) is at least ``1 - delta``
(:func:`covers`). The same test on the evidence agents' one-standard-deviation intervals is printed beside it, with
each agent's regret growth ``R(T) / R(T/2)`` and the claim's own comparison with the evidence twins on that bandit.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from tangentlab.report.figures import save_figure, styled
from tangentlab.report.section import StudySection, Table, Verdict
from tangentlab.studies._base import ResultRow, Study
from tangentlab.studies._sections import empty_section, finite_mean, tally
from tangentlab.studies._sections import header as section_header
from tangentlab.studies.bandit import BanditParams

AGENT_LABELS: dict[str, str] = {
    "neural_ucb": "NeuralUCB (NTK rule)",
    "neural_ts": "Neural TS (NTK rule)",
    "ucb_evidence": "NeuralUCB (evidence)",
    "ts_evidence": "Neural TS (evidence)",
    "lla_ts": "linearized-Laplace TS",
    "ntk_gp_ucb": "NTK-GP UCB (∞ width)",
    "eps_greedy": "ε-greedy",
}
PAIRS: tuple[tuple[str, str], ...] = (("neural_ucb", "ucb_evidence"), ("neural_ts", "ts_evidence"))
STYLES: dict[str, str] = {"neural_ucb": "-", "neural_ts": "-", "ntk_gp_ucb": ":", "eps_greedy": "--"}
Group = tuple[str, int, float]  # (bandit name, width, the NTK rule's nu)
CONTROL_ENV = "linear"


def covers(coverage: float, delta: float) -> bool:
    """Whether confidence intervals held the mean reward at least ``1 - delta`` of the time (the control's test)."""
    return coverage >= 1.0 - delta


def positive_control(
    groups: dict[Group, dict[str, list[ResultRow[BanditParams]]]],
) -> tuple[dict[str, Any], list[str]]:
    """findings.json entry and findings of the linear-bandit control (module docstring)."""
    measured: list[dict[str, Any]] = []
    twins: list[dict[str, Any]] = []
    lines: list[str] = []
    for g in sorted(k for k in groups if k[0] == CONTROL_ENV):
        by_agent = groups[g]
        for agent in ("neural_ucb", "neural_ts", "ucb_evidence", "ts_evidence"):
            cov = _mean_metric(by_agent.get(agent, []), "interval_coverage")
            if cov is None:
                continue
            delta = float(by_agent[agent][0].params.delta)
            finals = list(_final(by_agent[agent]).values())
            measured.append(
                {
                    "width": g[1],
                    "nu": g[2],
                    "agent": agent,
                    "interval_coverage": cov,
                    "nominal": 1.0 - delta if agent.startswith("neural") else None,
                    "covers": covers(cov, delta),
                    "growth_ratio": _mean_metric(by_agent[agent], "growth_ratio"),
                    "final_regret": float(np.mean(finals)) if finals else None,
                    "seeds": len(finals),
                }
            )
        here: list[dict[str, Any]] = []
        for base, twin in PAIRS:
            res = (
                compare_regret(by_agent[base], by_agent[twin])
                if base in by_agent and twin in by_agent
                else None
            )
            if res is not None:
                here.append(
                    {"width": g[1], "nu": g[2], "ntk_rule": base, "outcome": res[0]}
                    | {"difference": res[1], "stderr": res[2], "seeds": res[3]}
                )
        if here:
            lines.append(
                f"Control bandit, width {g[1]}, ν={g[2]:g}: the claim's own comparison — "
                + "; ".join(
                    f"{_label(t['ntk_rule'])}: the evidence twin is {t['outcome']} ({t['difference']:+.1f}"
                    + (f" ± {t['stderr']:.1f}" if math.isfinite(t["stderr"]) else "")
                    + f" over {t['seeds']} seed(s))"
                    for t in here
                )
                + "."
            )
        twins += here
    ntk = [m for m in measured if m["agent"].startswith("neural")]
    evidence = [m for m in measured if not m["agent"].startswith("neural")]
    verdict = "not run" if not ntk else ("match" if all(m["covers"] for m in ntk) else "no match")
    entry: dict[str, Any] = {
        "setting": "linear bandit: mean reward θ*ᵀx with ||θ*|| = S/(2√dim), so ||h|| ≤ S in the NTK's RKHS; "
        "Gaussian noise of std ν (Zhou et al.'s Thm. 4.1 holds)",
        "expected": "the NTK rule's confidence intervals f ± γ_t√v hold the mean reward at least 1 − δ of the time",
        "measured": ntk,
        "verdict": verdict,
        "evidence_agents": evidence,
        "twin_comparisons": twins,
    }
    if ntk:

        def text(ms: list[dict[str, Any]]) -> str:
            return ", ".join(
                f"{_label(m['agent'])} (width {m['width']}) {m['interval_coverage']:.3f}"
                + (f" (regret growth R(T)/R(T/2) {m['growth_ratio']:.2f})" if m["growth_ratio"] else "")
                for m in ms
            )

        nominal = ntk[0]["nominal"]
        lines.insert(
            0,
            "Positive control (a linear bandit where Zhou et al.'s Thm. 4.1 holds, so the NTK rule's intervals are "
            f"valid confidence bounds): {verdict} — the intervals held the mean reward (nominal ≥ {nominal:g}) in a "
            f"fraction {text(ntk)}"
            + (f"; the evidence agents' one-s.d. intervals: {text(evidence)}" if evidence else "")
            + ".",
        )
    return entry, lines


def _agent(row: ResultRow[BanditParams]) -> str:
    return str(row.params.agent)


def _group(row: ResultRow[BanditParams]) -> Group:
    nu = row.metrics.get("nu", row.params.nu)
    nu = (
        float(nu) if isinstance(nu, int | float) else 1.0
    )  # runs before issue 17 used nu = 1 and did not record it
    return str(row.metrics.get("env_name", "?")), int(row.params.width), nu


def _gname(g: Group, with_nu: bool) -> str:
    """``digits, width 32`` (with ``, ν=0.1`` when the sweep has several nu)."""
    return f"{g[0]}, width {g[1]}" + (f", ν={g[2]:g}" if with_nu else "")


def _label(agent: str) -> str:
    return AGENT_LABELS.get(agent, agent)


def _final(rows: list[ResultRow[BanditParams]]) -> dict[int, float]:
    """Final regret by seed."""
    return {
        r.config.seed: float(v) for r in rows if isinstance(v := r.metrics.get("final_regret"), int | float)
    }


def _mean_se(values: list[float]) -> tuple[float, float]:
    a = np.asarray(values, dtype=float)
    se = float(a.std(ddof=1) / math.sqrt(a.size)) if a.size > 1 else math.nan
    return float(a.mean()), se


def _curves(rows: list[ResultRow[BanditParams]]) -> np.ndarray | None:
    curves = []
    for r in rows:
        try:
            curves.append(r.artifact("cumulative_regret"))
        except (FileNotFoundError, OSError):
            continue
    if not curves:
        return None
    length = min(c.size for c in curves)
    return np.stack([c[:length] for c in curves])


@styled
def _plot(groups: dict[Group, dict[str, list[ResultRow[BanditParams]]]], path: Path) -> None:
    import matplotlib.pyplot as plt

    keys = sorted(groups)
    envs = sorted({(g[0], g[2]) for g in keys})
    widths = sorted({g[1] for g in keys})
    with_nu = len({g[2] for g in keys}) > 1
    fig, axes = plt.subplots(
        len(envs), len(widths), figsize=(5.2 * len(widths), 4.2 * len(envs)), squeeze=False
    )
    agents = sorted({a for g in groups.values() for a in g}, key=lambda a: list(AGENT_LABELS).index(a))
    colors = {a: f"C{i}" for i, a in enumerate(AGENT_LABELS)}
    for i, env in enumerate(envs):
        for j, width in enumerate(widths):
            ax = axes[i][j]
            for agent in agents:
                c = _curves(groups.get((env[0], width, env[1]), {}).get(agent, []))
                if c is None:
                    continue
                t = np.arange(1, c.shape[1] + 1)
                mean = c.mean(0)
                ax.plot(
                    t,
                    mean,
                    STYLES.get(agent, "-"),
                    color=colors[agent],
                    label=f"{_label(agent)} (n={len(c)})",
                )
                if len(c) > 1:
                    se = c.std(0, ddof=1) / math.sqrt(len(c))
                    ax.fill_between(t, mean - se, mean + se, color=colors[agent], alpha=0.2)
            ax.set_title(_gname((env[0], width, env[1]), with_nu), fontsize=10)
            ax.set_xlabel("round t")
            ax.set_ylabel("cumulative regret")
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=7)
    fig.suptitle("Cumulative regret against rounds (mean over seeds; band: ±1 standard error)")
    fig.tight_layout()
    save_figure(fig, path)


def compare_regret(
    base: list[ResultRow[BanditParams]], twin: list[ResultRow[BanditParams]]
) -> tuple[str, float, float, int] | None:
    """(outcome, mean paired difference twin − base, its standard error, pairs) or None without common seeds."""
    a, b = _final(base), _final(twin)
    seeds = sorted(set(a) & set(b))
    if not seeds:
        return None
    diff = [b[s] - a[s] for s in seeds]
    mean, se = _mean_se(diff)
    ref = np.mean([a[s] for s in seeds])
    threshold = 2 * se if math.isfinite(se) else 0.01 * abs(ref)
    outcome = "better" if mean < -threshold else "worse" if mean > threshold else "tied"
    return outcome, mean, se, len(seeds)


def judge(outcomes: list[str]) -> Verdict:
    if not outcomes:
        return "inconclusive"
    better, worse = outcomes.count("better"), outcomes.count("worse")
    if better >= len(outcomes) / 2 and worse == 0:
        return "supported"
    if worse >= len(outcomes) / 2 and better == 0:
        return "not supported"
    return "mixed"


def _mean_metric(rows: list[ResultRow[BanditParams]], key: str) -> float | None:
    mean = finite_mean(rows, key)
    return None if math.isnan(mean) else mean


def _fmt(mean: float, se: float) -> str:
    return f"{mean:.1f} ± {se:.1f}" if math.isfinite(se) else f"{mean:.1f}"


def _describe(model: dict[str, Any] | None) -> str:
    """``Dense → ReLU → Dense`` for an arch description dict (the study default when None)."""
    if model is None:
        return "Dense → ReLU → Dense"
    layers = model.get("layers", [model])
    return " → ".join(
        str(layer.get("layer", layer)) if isinstance(layer, dict) else str(layer) for layer in layers
    )


def _settings(rows: list[ResultRow[BanditParams]], runs_summary: str) -> tuple[str, ...]:
    c = rows[0].config
    p = rows[0].params
    envs = sorted({str(r.metrics.get("env_name")) for r in rows})
    widths = sorted({int(r.params.width) for r in rows})
    seeds = sorted({r.config.seed for r in rows})
    rounds = sorted({int(r.params.rounds) for r in rows})
    arms = sorted({int(v) for r in rows if isinstance(v := r.metrics.get("n_arms"), int | float)})
    classes = "all classes" if c.data.classes is None else f"classes {list(c.data.classes)}"
    nus = sorted({float(v) for r in rows if isinstance(v := r.metrics.get("nu"), int | float)})
    nu = ", ".join(f"{v:g}" for v in nus) or str(p.nu)
    nu_source = " (the reward noise std, Zhou et al.'s sub-Gaussian scale)" if p.nu is None else ""
    return (
        f"Bandits: {envs}; arms {arms}; rounds {rounds}; reward noise std {p.noise_std}; classification data "
        f"{c.data.name} ({classes}, pool {c.data.n_train}) projected on {p.input_dim} principal components, disjoint "
        "arm encoding e_a ⊗ x (Zhou et al. 2020).",
        f"Model: {_describe(c.model)} (every hidden Dense `width` units, scalar readout), NTK parametrization, "
        f"float64; widths {widths}; retrained every {p.train_every} pulls with {c.train.steps} Adam steps "
        f"(lr {c.train.learning_rate}), warm start.",
        f"NTK rule: γ_t = ν·sqrt(log det(I + K/λ) − 2 log δ) + sqrt(λ)·S with ν={nu}{nu_source}, λ={p.lam}, "
        f"S={p.norm_bound}, δ={p.delta} (the m^(−1/6) and training-error terms dropped).",
        f"Evidence agents: (α, σ) maximising the function-space evidence of a linearized Laplace model (prior at "
        f"init), refitted every {p.tune_every} pulls; UCB adds β={p.beta} predictive std.",
        f"NTK-GP UCB: infinite-width NTK, noise variance ν², GP-UCB β_t = 2 log(K t² π²/(6δ)); ε-greedy ε="
        f"{p.epsilon}.",
        f"Seeds {seeds} (a seed fixes the bandit and the initial net for every agent). Runs: {runs_summary}.",
    )


def section(study: Study, rows: list[ResultRow[BanditParams]], figures_dir: Path) -> StudySection:
    """Build the ``bandit`` report section and write its figure into ``figures_dir``."""
    figures_dir.mkdir(parents=True, exist_ok=True)
    runs = tally(rows)
    if not runs.completed:
        return empty_section(study, runs)
    groups: dict[Group, dict[str, list[ResultRow[BanditParams]]]] = defaultdict(lambda: defaultdict(list))
    for r in runs.completed:
        groups[_group(r)][_agent(r)].append(r)
    control_entry, control_lines = positive_control(groups)
    png = figures_dir / "bandit_regret_vs_rounds.png"
    _plot(groups, png)  # the control bandit's panels included
    groups = {g: a for g, a in groups.items() if g[0] != CONTROL_ENV}
    with_nu = len({g[2] for g in groups}) > 1
    # A nu sweep is reported in full; the verdict is judged at the theory's nu, the reward noise std (issue 17).
    noise = {float(v) for r in runs.completed if isinstance(v := r.params.noise_std, int | float)}
    judged_nu = next(iter(noise)) if len(noise) == 1 and any(g[2] in noise for g in groups) else None

    findings: list[str] = []
    outcomes: list[str] = []
    halves: dict[str, list[str]] = defaultdict(list)
    pair_numbers: list[dict[str, object]] = []
    comparisons: list[str] = []
    for g in sorted(groups):
        by_agent = groups[g]
        for base, twin in PAIRS:
            if base in by_agent and twin in by_agent:
                res = compare_regret(by_agent[base], by_agent[twin])
                if res is None:
                    continue
                outcome, diff, se, n = res
                if judged_nu is None or g[2] == judged_nu:
                    outcomes.append(outcome)
                    halves[base].append(outcome)
                pair_numbers.append(
                    {
                        "bandit": g[0],
                        "width": g[1],
                        "nu": g[2],
                        "ntk_rule": base,
                        "evidence": twin,
                        "outcome": outcome,
                    }
                    | {"difference": diff, "stderr": se, "seeds": n}
                )
                b_mean, _ = _mean_se(list(_final(by_agent[base]).values()))
                comparisons.append(
                    f"{_gname(g, with_nu)}: {_label(twin)} vs {_label(base)}: final regret differs by {diff:+.1f}"
                    + (f" ± {se:.1f}" if math.isfinite(se) else "")
                    + f" over {n} paired seed(s){' (fewer than 3: the standard error is itself uncertain)' if n < 3 else ''}"
                    + f" ({b_mean:.1f} for the NTK rule) — the evidence twin is {outcome}."
                )
        ranked = sorted(
            ((_mean_se(list(_final(rs).values()))[0], a) for a, rs in by_agent.items() if _final(rs)),
        )
        if ranked:
            order = ", ".join(f"{_label(a)} {m:.1f}" for m, a in ranked)
            findings.append(f"{_gname(g, with_nu)}: mean final regret, best first: {order}.")
            floor = next((m for m, a in ranked if a == "eps_greedy"), None)
            if floor is not None:
                below = [_label(a) for m, a in ranked if a != "eps_greedy" and m > floor]
                findings.append(
                    f"{_gname(g, with_nu)}: worse than the ε-greedy floor ({floor:.1f}): "
                    + (", ".join(below) if below else "none")
                    + "."
                )
        scales = []
        for a in ("neural_ucb", "ucb_evidence"):
            s = _mean_metric(by_agent.get(a, []), "final_scale")
            if s is not None:
                scales.append(f"{_label(a)} {s:.3g}")
        if scales:
            findings.append(
                f"{_gname(g, with_nu)}: exploration scale at the last round: {', '.join(scales)}."
            )
        growth = [
            f"{_label(a)} {ratio:.2f}"
            for a in sorted(by_agent)
            if (ratio := _mean_metric(by_agent[a], "growth_ratio")) is not None
        ]
        if growth:
            findings.append(
                f"{_gname(g, with_nu)}: regret growth R(T)/R(T/2) (2 = linear, 1.41 = √T): {', '.join(growth)}."
            )
    verdict = judge(outcomes)
    n_better, n_worse = outcomes.count("better"), outcomes.count("worse")
    head = (
        f"Verdict: {verdict} — in {len(outcomes)} NTK-rule vs evidence comparisons"
        + (
            f" at ν = {judged_nu:g} (the reward noise std; other ν below)"
            if with_nu and judged_nu is not None
            else ""
        )
        + " the evidence-tuned agent had "
        f"lower final regret in {n_better}, higher in {n_worse}, and was tied (within 2 s.e.) in "
        f"{len(outcomes) - n_better - n_worse}."
        if outcomes
        else "Verdict: inconclusive — no NTK-rule agent ran beside its evidence-tuned twin."
    )

    half_lines = [
        f"{_label(base).split(' (')[0]} half: {judge(half)} — the evidence twin is better in "
        f"{half.count('better')}, worse in {half.count('worse')}, tied in {half.count('tied')} of {len(half)}."
        for base, _ in PAIRS
        if (half := halves.get(base))
    ]

    agents = sorted({a for g in groups.values() for a in g}, key=lambda a: list(AGENT_LABELS).index(a))
    keys = sorted(groups)
    table_rows = []
    for a in agents:
        cells = []
        for g in keys:
            f = list(_final(groups[g].get(a, [])).values())
            cells.append(_fmt(*_mean_se(f)) if f else "—")
        table_rows.append((_label(a), *cells))
    table = Table(
        caption="Final cumulative regret (mean ± standard error over seeds)",
        header=("agent", *(_gname(g, with_nu) for g in keys)),
        rows=tuple(table_rows),
    )
    return StudySection(
        **section_header(study),
        verdict=verdict,
        findings=(head, *control_lines, *half_lines, *comparisons, *findings),
        figures=(png,),
        tables=(table,),
        settings=_settings(runs.completed, runs.summary()),
        numbers={
            "comparisons": pair_numbers,
            "halves": {base: judge(h) for base, h in halves.items()},
            "final_regret": {
                f"{g[0]}/{g[1]}/{g[2]:g}/{a}": dict(
                    zip(("mean", "stderr"), _mean_se(list(_final(rs).values())), strict=True)
                )
                for g in keys
                for a, rs in sorted(groups[g].items())
                if _final(rs)
            },
            "nu": sorted(
                {float(nu_v) for r in runs.completed if isinstance(nu_v := r.metrics.get("nu"), int | float)}
            ),
            "positive_control": control_entry,
        },
        runs=tuple(r.run_id for r in runs.completed),
    )
