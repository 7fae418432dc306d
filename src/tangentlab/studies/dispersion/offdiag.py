"""The ``dispersion`` report's off-diagonal part: how random the normalized NTK ``Θ(x_0, x_r) / Θ(x_0, x_0)`` is.

Seleznova & Kutyniok 2022 (arXiv 2012.04477, Sec. 4) look beyond the diagonal: over random inits, the NTK between
two inputs of correlation ``r`` relative to the NTK on the diagonal is deterministic in the infinite-width limit,
but at the edge of chaos and in the chaotic phase it becomes random, more so the deeper the net (for a fixed
width); in the ordered phase it stays concentrated (and all inputs' kernels approach each other with depth).

Operationalised here, per activation and ``sigma_w2`` (at the report's width and ``sigma_b2``): the std over inits of
the per-init ratio ``Θ(x_0, x_r) / Θ(x_0, x_0)`` at ``r = OFFDIAG_R`` (run artifact ``norm_std_r_<kernel>``, mean
over seeds), its log fitted against depth by least squares; the slope times the width (an exponent in
``beta = depth / width``) "grows" when it exceeds ``GROWTH_MIN``. The claim holds for a setting when it grows
exactly when the phase (from the run's ``chi``) is not ordered. Judged on the standard-parametrization kernel (their
setting) for the activations of :data:`JUDGED` (their paper's two); the others are reported.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from tangentlab.report.figures import save_figure, styled
from tangentlab.studies._base import ResultRow
from tangentlab.studies.dispersion import R_VALUES, DispersionParams

OFFDIAG_R = 0.5
GROWTH_MIN = 1.0
JUDGED: tuple[str, ...] = ("relu", "sigmoid")
PHASE_STYLE = {"ordered": ":", "EOC": "-", "chaotic": "--"}


def offdiag_cells(
    rows: list[ResultRow[DispersionParams]], kernel: str, width: int, sb2: float, phase_of: Any
) -> tuple[dict[tuple[str, float], dict[str, Any]], int]:
    """Per ``(activation, sigma_w2)``: phase, ``chi``, and per depth the seed-mean curves over ``r`` of the normalized
    kernel's mean and std and its infinite-width value; plus the number of runs without these artifacts."""
    acc: dict[tuple[str, float], dict[int, list[dict[str, np.ndarray]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    chis: dict[tuple[str, float], float] = {}
    missing = 0
    for r in rows:
        if int(r.params.width) != width or float(r.params.sigma_b2) != sb2:
            continue
        try:
            curves = {
                "mean": r.artifact(f"norm_mean_r_{kernel}"),
                "std": r.artifact(f"norm_std_r_{kernel}"),
                "inf": r.artifact(f"inf_norm_r_{kernel}"),
            }
        except (FileNotFoundError, KeyError, OSError):
            missing += 1
            continue
        key = (str(r.params.activation), float(r.params.sigma_w2))
        acc[key][int(r.params.depth)].append(curves)
        chis[key] = float(r.metrics["chi"])  # type: ignore[arg-type]
    j = R_VALUES.index(OFFDIAG_R)
    cells: dict[tuple[str, float], dict[str, Any]] = {}
    for key, by_depth in acc.items():
        depths = sorted(by_depth)
        by_d: dict[int, dict[str, np.ndarray]] = {
            d: {c: np.mean([s[c] for s in by_depth[d]], axis=0) for c in ("mean", "std", "inf")}
            for d in depths
        }
        at_r = np.array([by_d[d]["std"][j] for d in depths])
        ok = at_r > 0
        slope = (
            float(np.polyfit(np.array(depths, float)[ok], np.log(at_r[ok]), 1)[0]) * width
            if ok.sum() >= 2
            else math.nan
        )
        cells[key] = {"phase": phase_of(chis[key]), "chi": chis[key], "curves": by_d, "slope": slope}
    return cells, missing


def offdiag_numbers(cells: dict[tuple[str, float], dict[str, Any]], kernel: str) -> dict[str, Any]:
    """findings.json numbers of the off-diagonal test and its verdict (None when nothing is judged)."""
    j = R_VALUES.index(OFFDIAG_R)
    settings: list[dict[str, Any]] = []
    judged: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for (a, sw), c in sorted(cells.items()):
        if not math.isfinite(c["slope"]):
            continue
        grows = c["slope"] > GROWTH_MIN
        match = grows == (c["phase"] != "ordered")
        settings.append(
            {
                "activation": a,
                "sigma_w2": sw,
                "chi": c["chi"],
                "phase": c["phase"],
                "slope_times_width": c["slope"],
                "grows": grows,
                "matches_claim": match,
                "std_by_depth": {str(d): float(v["std"][j]) for d, v in c["curves"].items()},
                "mean_by_depth": {str(d): float(v["mean"][j]) for d, v in c["curves"].items()},
                "infinite_width": float(next(iter(c["curves"].values()))["inf"][j]) if c["curves"] else None,
            }
        )
        if a in JUDGED:
            judged[a][0] += int(match)
            judged[a][1] += 1
    n_ok, n = sum(v[0] for v in judged.values()), sum(v[1] for v in judged.values())
    return {
        "kernel": kernel,
        "r": OFFDIAG_R,
        "growth_min": GROWTH_MIN,
        "settings": settings,
        "judged": dict(judged),
        "supported": None if n == 0 else n_ok == n,
    }


def offdiag_sentence(nums: dict[str, Any], kernel_name: str, width: int) -> str:
    """The off-diagonal test as one finding."""
    by_phase: dict[str, list[float]] = defaultdict(list)
    for s in nums["settings"]:
        by_phase[s["phase"]].append(s["slope_times_width"])
    parts = ", ".join(
        f"{ph}: median {np.median(v):.2f} ({len(v)} settings)" for ph, v in sorted(by_phase.items())
    )
    judged = "; ".join(f"{a} {k}/{n} σ_w² settings match" for a, (k, n) in sorted(nums["judged"].items()))
    verdict = {True: "supported", False: "not supported", None: "not judged"}[nums["supported"]]
    return (
        f"Seleznova & Kutyniok, off-diagonal ({kernel_name}, width {width}): the std over inits of Θ(x₀,x_r)/Θ(x₀,x₀) "
        f"at r = {nums['r']} grows with depth at exponent (slope of its log in β) by phase — {parts}; 'grows' means "
        f"> {nums['growth_min']}. Claim (random off-diagonal at EOC/chaotic, not when ordered): {judged or 'none'} "
        f"→ {verdict}."
    )


@styled
def plot_offdiag(cells: dict[tuple[str, float], dict[str, Any]], title: str, path: Path) -> None:
    """Row 1: std of the normalized kernel at ``r = OFFDIAG_R`` against depth (one line per ``sigma_w2``, line style
    by phase); row 2: its mean ± std against ``r`` at the deepest depth, infinite width dashed grey."""
    import matplotlib.pyplot as plt

    acts = sorted({a for a, _ in cells})
    fig, axes = plt.subplots(2, len(acts), figsize=(4.3 * len(acts), 7.4), squeeze=False)
    j = R_VALUES.index(OFFDIAG_R)
    r = np.asarray(R_VALUES)
    for col, a in enumerate(acts):
        mine = sorted((sw, c) for (act, sw), c in cells.items() if act == a)
        colors = plt.cm.viridis(np.linspace(0, 0.9, max(1, len(mine))))
        top, bottom = axes[0][col], axes[1][col]
        for (sw, c), color in zip(mine, colors, strict=True):
            depths = sorted(c["curves"])
            label = f"σ_w²={sw:g} ({c['phase']}, χ={c['chi']:.2f})"
            top.plot(
                depths,
                [max(c["curves"][d]["std"][j], 1e-12) for d in depths],
                PHASE_STYLE[c["phase"]],
                marker="o",
                color=color,
                label=label,
            )
            deep = c["curves"][depths[-1]]
            bottom.plot(r, deep["mean"], color=color, label=f"σ_w²={sw:g}, depth {depths[-1]}")
            bottom.fill_between(
                r, deep["mean"] - deep["std"], deep["mean"] + deep["std"], color=color, alpha=0.2
            )
            bottom.plot(r, deep["inf"], "--", color="0.4", lw=0.8)
        top.set_yscale("log")
        top.set_xlabel("depth")
        top.set_ylabel(f"std over inits of Θ(x₀,x_r)/Θ(x₀,x₀), r={OFFDIAG_R}")
        top.set_title(a, fontsize=10)
        top.legend(fontsize=6)
        bottom.set_xlabel("input correlation r")
        bottom.set_ylabel("Θ(x₀,x_r)/Θ(x₀,x₀): mean ± std (grey: infinite width)")
        bottom.legend(fontsize=6)
        for ax in (top, bottom):
            ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)
