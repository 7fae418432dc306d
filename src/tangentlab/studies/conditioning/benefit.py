"""The ``conditioning`` report's second statement: the benefit Zhang et al.'s condition promises, judged apart from
whether the (sufficient) condition itself holds (issue 17): Gauss–Newton reaching the loss target in 1–2 steps."""

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
