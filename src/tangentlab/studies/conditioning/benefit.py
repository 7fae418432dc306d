"""The ``conditioning`` report's second statement — the benefit Zhang et al.'s condition promises, judged apart from
whether the (sufficient) condition itself holds (issue 17): Gauss–Newton reaching the loss target in 1–2 steps — and
the positive control of both tests: the net's linearization (``params.linearized``), a model linear in its
parameters, whose Jacobian is constant, so the condition test must find ``C = 0 < 1/2`` and the benefit test one
Gauss–Newton step ("match")."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tangentlab.studies._base import ResultRow

FAST_GN_STEPS = 2  # the benefit the condition promises: Gauss–Newton reaches the target in 1–2 steps


def benefit(groups: Mapping[tuple[str, str], Sequence[ResultRow]]) -> tuple[str, dict[str, Any]]:
    """The promised benefit, judged apart from the sufficient condition: does Gauss–Newton converge in 1–2 steps?"""
    steps = [
        float(v)
        for rows in groups.values()
        for r in rows
        if isinstance(v := r.metrics.get("gn_steps_to_target"), int | float) and math.isfinite(v)
    ]
    n_runs = sum(len(rows) for rows in groups.values())
    fast = sum(s <= FAST_GN_STEPS for s in steps)
    data: dict[str, Any] = {
        "gn_runs_reaching_target": len(steps),
        "gn_runs_within_2_steps": fast,
        "runs": n_runs,
    }
    if not steps:
        return (
            "Benefit: no Gauss–Newton run reached the loss target; the promised fast convergence is absent.",
            data,
        )
    present = fast == n_runs
    data["gn_steps_median"] = float(np.median(steps))
    text = (
        f"Benefit, judged apart from the condition: Gauss–Newton reached the loss target within {FAST_GN_STEPS} "
        f"steps in {fast} of {n_runs} runs (median {np.median(steps):g} steps, max {max(steps):g}): the fast "
        f"convergence the condition promises is {'present' if present else 'not present in every run'}"
        + (" even where the sufficient condition C < 1/2 fails." if present else ".")
    )
    return text, data


STABILITY_THRESHOLD = 0.5  # Zhang et al. 2019, Condition 2: C < 1/2


def positive_control(rows: Sequence[ResultRow]) -> tuple[str, dict[str, Any]] | None:
    """The control runs (``params.linearized``) through both tests: "match" when every one has a measured
    ``C < 1/2`` (the condition holds) and Gauss–Newton reached the target within ``FAST_GN_STEPS`` steps; None
    without control runs."""
    if not rows:
        return None
    cs = [v if isinstance(v := r.metrics.get("stability_constant"), int | float) else math.inf for r in rows]
    steps = [
        v if isinstance(v := r.metrics.get("gn_steps_to_target"), int | float) else math.inf for r in rows
    ]
    holds = sum(c < STABILITY_THRESHOLD for c in cs)
    fast = sum(k <= FAST_GN_STEPS for k in steps)
    match = holds == len(rows) and fast == len(rows)
    data: dict[str, Any] = {
        "setting": "the net's linearization f_0 + J_0 (θ − θ_0) (params.linearized): a constant Jacobian",
        "expected": "C = 0 < 1/2 (the condition holds) and Gauss–Newton at the target in 1 step",
        "measured": {
            "runs": len(rows),
            "max_stability_constant": max(cs),
            "runs_condition_holds": holds,
            "max_gn_steps": max(steps),
            "runs_gn_within_2_steps": fast,
            "widths": sorted({int(r.config.params["width"]) for r in rows}),
            "seeds": sorted({r.config.seed for r in rows}),
        },
        "verdict": "match" if match else "no match",
    }
    text = (
        f"Positive control ({data['setting']}; expected {data['expected']}): over {len(rows)} runs the largest "
        f"measured C is {max(cs):.3g} (condition holds in {holds}/{len(rows)}) and Gauss–Newton needs at most "
        f"{max(steps):g} step(s) ({fast}/{len(rows)} within {FAST_GN_STEPS}) → {data['verdict']}"
        + ("." if match else " — the tests are suspect.")
    )
    return text, data
