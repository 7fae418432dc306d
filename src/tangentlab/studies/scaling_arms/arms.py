"""The three analyses of the ``scaling_arms`` report: width, robustness, evolution (rules in the report module)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tangentlab.report.section import Verdict
from tangentlab.studies.scaling_arms import resolved
from tangentlab.studies.scaling_arms.points import Group, Row, series, steps_of, trajectory, variant
from tangentlab.studies.scaling_arms.stats import Interval, decades, exponent, mean_interval, paired_exponents

NET_LIN_TOL = 0.05  # width control: |L_net - L_lin| / L_lin at the widest width below this
EQUIV = 0.05  # robustness control: the paired exponent difference's CI inside [-EQUIV, EQUIV]
LATE_MIN = 0.10  # evolution: share of the after-kernel's log-improvement still ahead at half of training
LAZY_TOL = 0.05  # evolution control: |log L_K(T) / L_K(0)| below this in every run
LAZY_KDIST = 0.01  # evolution control: kernel distance S(Theta_0, Theta_T) below this in every run


@dataclass
class ArmResult:
    """One arm's verdict, its sentences, its numbers (for findings.json) and its positive control."""

    verdict: Verdict
    findings: list[str]
    numbers: dict[str, Any]
    control: dict[str, Any] | None = None
    runs: list[str] = field(default_factory=list)


def _iv(v: Interval | None) -> dict[str, Any] | None:
    return None if v is None else {"value": v.value, "ci": [v.lo, v.hi]}


def _txt(v: Interval | None) -> str:
    return "n/a" if v is None else v.text()


def _combine(calls: list[int]) -> Verdict:
    """+1 each: supported; -1 each: not supported; none: inconclusive; else mixed."""
    if not calls:
        return "inconclusive"
    if all(c == 1 for c in calls):
        return "supported"
    if all(c == -1 for c in calls):
        return "not supported"
    return "mixed"


def _label(g: Group) -> str:
    return f"{g[0]}, {g[1]}"


def width_arm(groups: dict[Group, list[Row]]) -> ArmResult:
    """(a): per width variant, the loss-vs-width exponents of the net and of its linearization (the eNTK at init
    trained the same way) and of converged eNTK regression (paired), and the eNTK's approach to the infinite NTK
    (kernel distance and loss gap against width)."""
    findings: list[str] = []
    numbers: dict[str, Any] = {}
    calls: list[int] = []
    control: dict[str, Any] = {}
    for g, rows in sorted(groups.items()):
        x, net, entk, seeds = series(rows, "mse_net", "mse_entk0")
        pe = paired_exponents(x, net, entk, seeds)
        xk, kd, sk = series(rows, "kdist")
        k_exp = exponent(xk, kd, sk)
        xg, e, ntk, sg = series(rows, "mse_entk0", "mse_ntk")
        gap = np.abs(np.log(e / ntk))
        keep = gap > 0
        gap_exp = exponent(xg[keep], gap[keep], sg[keep])
        xl, n_, lin, sl = series(rows, "mse_net", "mse_lin")
        pl = paired_exponents(xl, n_, lin, sl)
        rel = np.abs(n_ - lin) / lin
        widest = float(xl.max()) if xl.size else math.nan
        rel_widest = float(rel[xl == widest].mean()) if xl.size else math.nan
        rel_narrow = float(rel[xl == xl.min()].mean()) if xl.size else math.nan
        approaches = k_exp is not None and gap_exp is not None and k_exp.lo > 0 and gap_exp.lo > 0
        differs = pl is not None and (pl[2].lo > 0 or pl[2].hi < 0)
        same = pl is not None and pl[2].lo >= -EQUIV and pl[2].hi <= EQUIV
        rng = [int(x.min()), int(x.max())] if x.size else []
        numbers[f"{g[0]}/{g[1]}"] = {
            "control": variant(rows[0]).control,
            "fit_range_width": rng,
            "decades": decades(x),
            "alpha_net": _iv(pe[0]) if pe else None,
            "alpha_lin": _iv(pl[1]) if pl else None,
            "alpha_net_minus_lin": _iv(pl[2]) if pl else None,
            "alpha_entk0": _iv(pe[1]) if pe else None,
            "alpha_net_minus_entk0": _iv(pe[2]) if pe else None,
            "kdist_exponent": _iv(k_exp),
            "entk0_ntk_gap_exponent": _iv(gap_exp),
            "net_lin_rel_gap_widest": rel_widest,
            "net_lin_rel_gap_narrowest": rel_narrow,
            "eNTK_approaches_NTK": approaches,
            "net_differs_from_linearized": differs,
        }
        text = (
            f"{_label(g)} (width {rng[0] if rng else '?'}–{rng[1] if rng else '?'}, {decades(x):.2f} decades): "
            f"loss-vs-width exponent net {_txt(pe[0] if pe else None)}, linearized net (the eNTK at init trained the "
            f"same way) {_txt(pl[1] if pl else None)}, difference {_txt(pl[2] if pl else None)}; converged eNTK-at-init "
            f"regression {_txt(pe[1] if pe else None)} (net − eNTK {_txt(pe[2] if pe else None)}); "
            f"‖Θ_e − Θ_∞‖/‖Θ_∞‖ ∝ width^−{_txt(k_exp)}, |log L_eNTK/L_NTK| ∝ width^−{_txt(gap_exp)}; "
            f"|L_net − L_lin|/L_lin {rel_narrow:.3f} at the narrowest, {rel_widest:.3f} at the widest width."
        )
        if variant(rows[0]).control:
            ok = approaches and same and rel_widest < NET_LIN_TOL
            control[f"{g[0]}/{g[1]}"] = {
                "net_lin_rel_gap_widest": rel_widest,
                "alpha_net_minus_lin": _iv(pl[2]) if pl else None,
                "kdist_exponent": _iv(k_exp),
                "ok": ok,
            }
            findings.append("Control: " + text)
            continue
        findings.append(text)
        calls.append(1 if approaches and differs else (-1 if not approaches and not differs else 0))
    ctrl = None
    if control:
        ctrl = {
            "setting": "a wide NTK-parametrized net trained by full-batch GD at a small rate (variant control: true)",
            "expected": f"net = its linearization (|L_net − L_lin|/L_lin < {NET_LIN_TOL} at the widest width, their "
            f"loss-vs-width exponents within ±{EQUIV}) and the eNTK approaching the infinite NTK (kernel-distance and "
            "loss-gap exponents > 0)",
            "measured": control,
            "verdict": "match" if all(c["ok"] for c in control.values()) else "no match",
        }
    return ArmResult(_combine(calls), findings, numbers, ctrl)


def robustness_arm(groups: dict[Group, list[Row]]) -> ArmResult:
    """(b): per data variant, the paired data-scaling exponents of the net and of the eNTK at init (and the NTK)."""
    findings: list[str] = []
    numbers: dict[str, Any] = {}
    calls: list[int] = []
    control: dict[str, Any] = {}
    for g, rows in sorted(groups.items()):
        x, net, entk, seeds = series(rows, "mse_net", "mse_entk0")
        pe = paired_exponents(x, net, entk, seeds)
        xn, net2, ntk, sn = series(rows, "mse_net", "mse_ntk")
        pn = paired_exponents(xn, net2, ntk, sn)
        xe, en, ee, se = series(rows, "err_net", "err_entk0")
        perr = paired_exponents(xe, en, ee, se)
        rng = [int(x.min()), int(x.max())] if x.size else []
        _, p, tc = resolved(rows[0].params, rows[0].config.train)
        setting = f"{tc.optimizer}, lr {tc.learning_rate:g}, batch {tc.batch_size or 'full'}" + (
            f", momentum {tc.momentum:g}" if tc.momentum else ""
        )
        numbers[f"{g[0]}/{g[1]}"] = {
            "control": variant(rows[0]).control,
            "model_kind": p.model_kind,
            "training": setting,
            "fit_range_n": rng,
            "decades": decades(x),
            "alpha_net": _iv(pe[0]) if pe else None,
            "alpha_entk0": _iv(pe[1]) if pe else None,
            "alpha_net_minus_entk0": _iv(pe[2]) if pe else None,
            "alpha_ntk": _iv(pn[1]) if pn else None,
            "alpha_net_minus_ntk": _iv(pn[2]) if pn else None,
            "alpha_err_net": _iv(perr[0]) if perr else None,
            "alpha_err_entk0": _iv(perr[1]) if perr else None,
        }
        text = (
            f"{_label(g)} ({'Gauss-Newton least squares' if p.model_kind == 'linear' else setting}; n = "
            f"{rng[0] if rng else '?'}–{rng[1] if rng else '?'}, {decades(x):.2f} decades): α net "
            f"{_txt(pe[0] if pe else None)}, eNTK at init {_txt(pe[1] if pe else None)}, net − eNTK "
            f"{_txt(pe[2] if pe else None)}; infinite NTK {_txt(pn[1] if pn else None)}; error-rate exponents net "
            f"{_txt(perr[0] if perr else None)}, eNTK {_txt(perr[1] if perr else None)}."
        )
        if variant(rows[0]).control:
            if p.model_kind == "linear" and pe is not None:
                ok = pe[2].lo >= -EQUIV and pe[2].hi <= EQUIV
                control[f"{g[0]}/{g[1]}"] = {"alpha_net_minus_entk0": _iv(pe[2]), "ok": ok}
                findings.append("Control: " + text)
            continue
        findings.append(text)
        if pe is not None:
            calls.append(1 if pe[2].lo > 0 else (-1 if pe[2].hi < 0 else 0))
    ctrl = None
    if control:
        ctrl = {
            "setting": "model_kind linear (f = W x + b, trained to its least-squares optimum; its own eNTK)",
            "expected": f"net − eNTK exponent difference within ±{EQUIV} (95% CI inside the margin)",
            "measured": control,
            "verdict": "match" if all(c["ok"] for c in control.values()) else "no match",
        }
    return ArmResult(_combine(calls), findings, numbers, ctrl)


def _evolution_row(row: Row) -> dict[str, float] | None:
    steps, lk = trajectory(row, "mse_entkt")
    _, ln = trajectory(row, "mse_nett")
    full = steps_of(row)
    if len(steps) != len(full) or len(steps) < 2 or len(ln) != len(full):
        return None
    total = float(np.log(lk[0] / lk[-1]))
    mid = int(np.flatnonzero(steps >= steps[-1] / 2)[0])
    late = float(np.log(lk[mid] / lk[-1]))
    gained = np.log(lk[0] / lk)
    t90 = float(steps[np.flatnonzero(gained >= 0.9 * total)[0]] / steps[-1]) if total > 0 else 0.0
    kd = row.metrics.get(f"kdist0_s{int(steps[-1])}")
    kd_mid = row.metrics.get(f"kdistT_s{int(steps[mid])}")
    angle_t = math.acos(min(1.0, max(-1.0, 1.0 - float(kd)))) if isinstance(kd, int | float) else math.nan
    angle_mid = (
        math.acos(min(1.0, max(-1.0, 1.0 - float(kd_mid)))) if isinstance(kd_mid, int | float) else math.nan
    )
    return {
        "total_log_gain": total,
        "late_share": late / total if total > 0 else 0.0,
        "t90_fraction": t90,
        "kdist0_T": float(kd) if isinstance(kd, int | float) else math.nan,
        "late_angle_share": angle_mid / angle_t if angle_t > 0 else math.nan,
        "after_kernel_over_net_T": float(lk[-1] / ln[-1]),
        "entk0_over_net_T": float(lk[0] / ln[-1]),
    }


def evolution_arm(groups: dict[Group, list[Row]]) -> ArmResult:
    """(c): per data variant with snapshots, how much of the after-kernel's improvement comes late in training."""
    findings: list[str] = []
    numbers: dict[str, Any] = {}
    calls: list[int] = []
    control: dict[str, Any] = {}
    for g, rows in sorted(groups.items()):
        per = [e for r in rows if (e := _evolution_row(r)) is not None]
        if not per:
            continue
        stat = {k: mean_interval(np.array([e[k] for e in per])) for k in per[0]}
        n_snap = rows[0].metrics.get("snapshot_n")
        numbers[f"{g[0]}/{g[1]}"] = {
            "control": variant(rows[0]).control,
            "n": n_snap,
            "runs": len(per),
            **{k: _iv(v) for k, v in stat.items()},
        }
        text = (
            f"{_label(g)} (n = {n_snap}, {len(per)} runs): after-kernel test MSE falls by "
            f"log L_K(0)/L_K(T) = {_txt(stat['total_log_gain'])}, of which a share {_txt(stat['late_share'])} comes "
            f"after half of training; 90% of the gain by {_txt(stat['t90_fraction'])} of training; kernel distance "
            f"S(Θ_0, Θ_T) = {_txt(stat['kdist0_T'])}, of whose angle a share {_txt(stat['late_angle_share'])} is "
            f"turned after half of training; at the end L_K(T)/L_net(T) = "
            f"{_txt(stat['after_kernel_over_net_T'])} (eNTK at init: {_txt(stat['entk0_over_net_T'])})."
        )
        if variant(rows[0]).control:
            ok = all(abs(e["total_log_gain"]) < LAZY_TOL and e["kdist0_T"] < LAZY_KDIST for e in per)
            gains = [e["total_log_gain"] for e in per]
            kds = [e["kdist0_T"] for e in per]
            control[f"{g[0]}/{g[1]}"] = {
                "max_abs_log_gain": max(map(abs, gains)),
                "max_kdist0_T": max(kds),
                "ok": ok,
            }
            findings.append("Control: " + text)
            continue
        findings.append(text)
        late = stat["late_share"]
        if late is not None:
            calls.append(1 if late.lo > LATE_MIN else (-1 if late.hi < LATE_MIN else 0))
    ctrl = None
    if control:
        ctrl = {
            "setting": "a wide NTK-parametrized net trained by full-batch GD at a small rate (variant control: true)",
            "expected": f"the after-kernel does not move: |log L_K(T)/L_K(0)| < {LAZY_TOL} and S(Θ_0, Θ_T) < "
            f"{LAZY_KDIST} in every run",
            "measured": control,
            "verdict": "match" if all(c["ok"] for c in control.values()) else "no match",
        }
    return ArmResult(_combine(calls), findings, numbers, ctrl)


__all__ = [
    "EQUIV",
    "LATE_MIN",
    "LAZY_KDIST",
    "LAZY_TOL",
    "NET_LIN_TOL",
    "ArmResult",
    "evolution_arm",
    "robustness_arm",
    "width_arm",
]
