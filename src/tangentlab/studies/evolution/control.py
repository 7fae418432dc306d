"""The ``evolution`` study's positive control: a wide NTK-parametrized net trained by small-step GD, whose kernel
must stay put (Lee et al. 2019), judged by the same test that the study's own runs get (:func:`kernel_state`)."""

from __future__ import annotations

import math
from typing import Any

from tangentlab.studies._base import ResultRow
from tangentlab.studies.evolution import EvolutionParams
from tangentlab.studies.evolution.figures import sigma_w2

# Centred S(0, T) = 1 - cos(angle) at or below which a kernel counts as frozen: an 18° turn. The study's own runs
# (Adam, standard parametrization) end at 0.15-0.65 in the quick config; the wide NTK/GD control at 0.002-0.03.
FROZEN_DISTANCE = 0.05
CONTROL = "lazy_control"


def accuracy_margin(acc: float, n_test: int) -> float:
    """``2 sqrt(acc (1 - acc) / n_test)``: two binomial standard errors of a test accuracy ``acc``; changes of the
    after-kernel accuracy within it are not counted (a floor of one test example)."""
    return max(2.0 * math.sqrt(max(acc * (1.0 - acc), 0.0) / n_test), 1.0 / n_test)


def kernel_state(distance_centered: float, acc_init: float, acc_final: float, n_test: int) -> str:
    """``"frozen"`` when the centred distance from init is at most ``FROZEN_DISTANCE`` and the after-kernel
    accuracy moved by at most :func:`accuracy_margin`; ``"moves"`` otherwise (the positive control's test)."""
    still = abs(acc_final - acc_init) <= accuracy_margin(acc_init, n_test)
    return "frozen" if distance_centered <= FROZEN_DISTANCE and still else "moves"


STATE_KEYS = ("kernel_distance_centered_final", "after_kernel_acc_init", "after_kernel_acc_final")


def run_n_test(row: ResultRow[EvolutionParams]) -> int | None:
    n = row.metrics.get("n_test", row.config.data.n_test)
    return int(n) if isinstance(n, int | float) and n > 0 else None


def _states(rows: list[ResultRow[EvolutionParams]]) -> list[str]:
    out = []
    for r in rows:
        v, n = [r.metrics.get(k) for k in STATE_KEYS], run_n_test(r)
        if n is not None and all(isinstance(x, int | float) for x in v):
            d, a0, a1 = (float(x) for x in v)  # type: ignore[arg-type]
            out.append(kernel_state(d, a0, a1, n))
    return out


def beats_init(row: ResultRow[EvolutionParams]) -> bool | None:
    """Whether the after kernel beats the init kernel by more than :func:`accuracy_margin` (None: not judged)."""
    a0, a1, n = (
        row.metrics.get("after_kernel_acc_init"),
        row.metrics.get("after_kernel_acc_final"),
        run_n_test(row),
    )
    if n is None or not (isinstance(a0, int | float) and isinstance(a1, int | float)):
        return None
    return float(a1) > float(a0) + accuracy_margin(float(a0), n)


def positive_control(
    controls: list[ResultRow[EvolutionParams]], others: list[ResultRow[EvolutionParams]]
) -> tuple[dict[str, Any], list[str]]:
    """The control's entry of findings.json and its findings: ``verdict`` ``"match"`` when every control run is
    frozen (the theory's prediction), ``"no match"`` when one moves, ``"not run"`` without control runs."""
    states = _states(controls)
    verdict = "not run" if not states else ("match" if all(s == "frozen" for s in states) else "no match")
    others_states = _states(others)
    runs = [
        {
            "dataset": r.config.data.name,
            "sigma_w2": sigma_w2(r),
            "seed": r.config.seed,
            "width": r.metrics.get("width"),
            "learning_rate": r.metrics.get("learning_rate"),
            **{k: r.metrics.get(k) for k in (*STATE_KEYS, "kernel_distance_final", "train_loss_final")},
        }
        for r in controls
    ]
    entry: dict[str, Any] = {
        "setting": "one hidden ReLU layer, NTK parametrization, full-batch GD at a fraction of n/λ_max, "
        "the study's steps (model_kind lazy_control)",
        "expected": f"the kernel stays put (Lee et al. 2019): centred S_c(0,T) ≤ {FROZEN_DISTANCE:g} and the "
        "after-kernel accuracy within two binomial standard errors of the init kernel's",
        "measured": runs,
        "verdict": verdict,
        "frozen_runs": states.count("frozen"),
        "runs": len(states),
        "study_runs_frozen": others_states.count("frozen"),
        "study_runs": len(others_states),
    }
    if not states:
        return entry, []
    d = [float(v) for r in runs if isinstance(v := r["kernel_distance_centered_final"], int | float)]
    gains = [
        float(a1) - float(a0)
        for r in runs
        if isinstance(a0 := r["after_kernel_acc_init"], int | float)
        and isinstance(a1 := r["after_kernel_acc_final"], int | float)
    ]
    widths = sorted({int(w) for r in runs if isinstance(w := r["width"], int | float)})
    line = (
        f"Positive control (wide NTK-parametrized MLP, width {widths}, small-step GD: NTK theory says the kernel "
        f"stays put): {verdict} — {states.count('frozen')} of {len(states)} run(s) frozen; centred S_c(0,T) "
        f"{min(d):.2g}–{max(d):.2g} (frozen ≤ {FROZEN_DISTANCE:g}), after-kernel accuracy change "
        f"{min(gains):+.3f} to {max(gains):+.3f} (within 2 binomial s.e.). The same test on the study's own runs: "
        f"{others_states.count('frozen')} of {len(others_states)} frozen."
    )
    return entry, [line]
