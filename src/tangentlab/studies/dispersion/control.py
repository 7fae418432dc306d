"""The ``dispersion`` study's positive control: one hidden layer, where the dispersion is known in closed form.

For a ReLU net with one hidden layer of width ``n``, NTK parametrization, ``sigma_b = 0`` and every layer at
``sigma_w^2`` (the study's nets at ``depth: 1``), the NTK parametrization's kernel on the diagonal is

    K(x, x) = (sigma_w^2 / n) sum_i [phi(h_i)^2 + v_i^2 phi'(h_i)^2 q],   h_i ~ N(0, q),  q = sigma_w^2 ||x||^2 / d,

a mean of ``n`` i.i.d. terms ``t_i``. With ``A = phi(h)^2`` and ``B = v^2 1[h > 0] q`` (``v ~ N(0, 1)``):
``E[A] = E[B] = q/2``, ``E[A^2] = E[h^4]/2 = 3q^2/2``, ``E[B^2] = 3q^2/2``, ``E[AB] = q^2/2``, so ``E[t] = q``,
``E[t^2] = 4 q^2`` and ``Var[t] / E[t]^2 = 3``. Hence, exactly and for every ``sigma_w`` and input norm,

    E[K^2] / E[K]^2 = 1 + 3 / n

(Hanin & Nica's ``exp(5 beta)`` is the deep-net law; one layer gives 3/n, not 5/n). The control runs the report's own
estimator (:func:`tangentlab.studies.dispersion.kernels.dispersion` on the pooled inits, 95% bootstrap CI over inits)
at ``depth: 1`` and says "match" when the closed form lies inside the CI; on a deeper net (where the ratio is larger)
the same test says "no match". Depth-1 runs serve only this control: the report leaves them out of every other fit.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tangentlab.studies._base import ResultRow
from tangentlab.studies.dispersion import DispersionParams
from tangentlab.studies.dispersion.kernels import dispersion

CONTROL_DEPTH = 1
N_BOOT = 400


def closed_form_ratio(width: int) -> float:
    """``E[K^2]/E[K]^2 = 1 + 3/width`` of the one-hidden-layer ReLU NTK on the diagonal (module docstring)."""
    return 1.0 + 3.0 / width


def ratio_test(samples: np.ndarray, expected: float, n_boot: int = N_BOOT, seed: int = 0) -> dict[str, Any]:
    """The sample ratio ``E[K^2]/E[K]^2`` of ``samples``, its 95% percentile bootstrap CI over the samples, and
    ``verdict`` "match" when ``expected`` lies inside the CI ("no match" otherwise)."""
    s = np.asarray(samples, dtype=np.float64)
    rng = np.random.default_rng(seed)
    boots = [float(dispersion(s[rng.integers(0, s.size, s.size)]).ratio) for _ in range(n_boot)]
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return {
        "expected": expected,
        "measured": float(dispersion(s).ratio),
        "ci": [float(lo), float(hi)],
        "inits": int(s.size),
        "verdict": "match" if lo <= expected <= hi else "no match",
    }


def control_rows(rows: list[ResultRow[DispersionParams]]) -> list[ResultRow[DispersionParams]]:
    """The runs the control uses: ReLU, ``sigma_b2 = 0``, depth 1."""
    return [
        r
        for r in rows
        if r.params.activation == "relu"
        and float(r.params.sigma_b2) == 0.0
        and int(r.params.depth) == CONTROL_DEPTH
    ]


def positive_control(rows: list[ResultRow[DispersionParams]]) -> dict[str, Any] | None:
    """The control on the depth-1 ReLU runs (module docstring): one test per width, at ``sigma_w2 = 2`` when there
    is such a run (He init; else the smallest ``sigma_w2``), inits pooled over seeds (runs at other ``sigma_w2`` draw
    the same normals and would repeat them). None without depth-1 ReLU runs."""
    mine = control_rows(rows)
    if not mine:
        return None
    tests = {}
    for width in sorted({int(r.params.width) for r in mine}):
        at = [r for r in mine if int(r.params.width) == width]
        sws = sorted({float(r.params.sigma_w2) for r in at})
        sw = 2.0 if 2.0 in sws else sws[0]
        pooled = np.concatenate([r.artifact("diag_ntk") for r in at if float(r.params.sigma_w2) == sw])
        tests[str(width)] = {"sigma_w2": sw, **ratio_test(pooled, closed_form_ratio(width))}
    return {
        "setting": "ReLU, one hidden layer (depth 1), NTK parametrization, σ_b = 0: K(x,x) of the NTK "
        "parametrization's kernel",
        "expected": "E[K²]/E[K]² = 1 + 3/width exactly (closed form) inside the 95% bootstrap CI",
        "measured": tests,
        "verdict": "match" if all(t["verdict"] == "match" for t in tests.values()) else "no match",
    }


def control_sentence(control: dict[str, Any]) -> str:
    """The control as one finding."""
    parts = [
        f"width {w} (σ_w² = {t['sigma_w2']:g}, {t['inits']} inits): {t['measured']:.4f} (95% CI {t['ci'][0]:.4f}–"
        f"{t['ci'][1]:.4f}) against {t['expected']:.4f} → {t['verdict']}"
        for w, t in control["measured"].items()
    ]
    return (
        f"Positive control ({control['setting']}; expected {control['expected']}): "
        + "; ".join(parts)
        + (
            ". The estimator recovers the known answer."
            if control["verdict"] == "match"
            else " — the test is suspect."
        )
    )
