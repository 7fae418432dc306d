"""The ``scaling_arms`` report's three figures: loss and kernel distance against width; exponents per training
variant; the after-kernel and the net along training."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tangentlab.report.figures import save_figure, styled
from tangentlab.studies.scaling_arms.points import Group, Row, series, trajectory, variant

WIDTH_METHODS: dict[str, tuple[str, str]] = {
    "mse_net": ("net", "-"),
    "mse_entk0": ("eNTK at init", "--"),
    "mse_ntk": ("infinite NTK", ":"),
    "mse_lin": ("linearized net", "-."),
}


def _geo_mean(x: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    xs = np.unique(x)
    return xs, np.exp([np.log(v[x == u]).mean() for u in xs])


def _name(g: Group, rows: list[Row]) -> str:
    return f"{g[1]}{' (control)' if variant(rows[0]).control else ''}"


@styled
def plot_width(groups: dict[Group, list[Row]], path: Path) -> Path:
    """Left: test MSE against width per method and variant; right: ``||Theta_e - Theta_inf|| / ||Theta_inf||``."""
    import matplotlib.pyplot as plt

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.5))
    for c, (g, rows) in enumerate(sorted(groups.items())):
        for key, (label, style) in WIDTH_METHODS.items():
            x, v, _ = series(rows, key)
            if x.size:
                xs, m = _geo_mean(x, v)
                ax.plot(xs, m, style, marker="o", ms=3, color=f"C{c}", label=f"{_name(g, rows)}: {label}")
        x, kd, _ = series(rows, "kdist")
        if x.size:
            xs, m = _geo_mean(x, kd)
            ax2.plot(xs, m, "o-", color=f"C{c}", label=_name(g, rows))
            ax2.plot(x, kd, ".", color=f"C{c}", alpha=0.3)
            ref = m[0] * (xs / xs[0]) ** -0.5
            ax2.plot(xs, ref, "k:", lw=0.8, label="width^−1/2" if c == 0 else None)
    for a in (ax, ax2):
        a.set_xscale("log")
        a.set_yscale("log")
        a.set_xlabel("hidden width")
        a.grid(True, which="both", alpha=0.3)
        if a.get_legend_handles_labels()[0]:
            a.legend(fontsize=6)
    ax.set_ylabel("test MSE (geometric mean over seeds)")
    ax2.set_ylabel("‖Θ_eNTK(init) − Θ_∞‖_F / ‖Θ_∞‖_F (training block)")
    fig.suptitle("(a) Width at fixed n: the net, its eNTK at init and the infinite NTK")
    fig.tight_layout()
    return save_figure(fig, path)


@styled
def plot_robustness(groups: dict[Group, list[Row]], numbers: dict[str, Any], path: Path) -> Path:
    """Left: test MSE against n (net solid, eNTK at init dashed); right: the exponents with CIs per variant."""
    import matplotlib.pyplot as plt

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    labels: list[str] = []
    for c, (g, rows) in enumerate(sorted(groups.items())):
        for key, style in (("mse_net", "-"), ("mse_entk0", "--")):
            x, v, _ = series(rows, key)
            if x.size:
                xs, m = _geo_mean(x, v)
                tag = "net" if key == "mse_net" else "eNTK"
                ax.plot(xs, m, style, marker="o", ms=3, color=f"C{c % 10}", label=f"{_name(g, rows)}: {tag}")
        num = numbers.get(f"{g[0]}/{g[1]}", {})
        labels.append(_name(g, rows))
        for off, key, color in ((-0.15, "alpha_net", "C0"), (0.15, "alpha_entk0", "C1")):
            iv = num.get(key)
            if iv is not None:
                lo, hi = iv["ci"]
                y = iv["value"]
                ax2.errorbar(
                    [len(labels) - 1 + off],
                    [y],
                    yerr=[[max(y - lo, 0.0)], [max(hi - y, 0.0)]],
                    fmt="o",
                    color=color,
                    label=("net" if key == "alpha_net" else "eNTK at init") if len(labels) == 1 else None,
                )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("training samples n")
    ax.set_ylabel("test MSE (geometric mean over seeds)")
    ax.legend(fontsize=6)
    ax.grid(True, which="both", alpha=0.3)
    ax2.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=7)
    ax2.set_ylabel("data-scaling exponent α (95% CI)")
    ax2.grid(True, alpha=0.3)
    if ax2.get_legend_handles_labels()[0]:
        ax2.legend(fontsize=7)
    fig.suptitle("(b) Robustness: L(n) ≈ a·n^(−α) for the net and its eNTK at init, per training variant")
    fig.tight_layout()
    return save_figure(fig, path)


@styled
def plot_evolution(groups: dict[Group, list[Row]], path: Path) -> Path:
    """Left: the after-kernel's test MSE (solid) and the net's (dotted) against the fraction of training; right:
    the kernel distance from init."""
    import matplotlib.pyplot as plt

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.5))
    for c, (g, rows) in enumerate(sorted(groups.items())):
        for key, style, tag in (("mse_entkt", "-", "after-kernel"), ("mse_nett", ":", "net")):
            curves = [trajectory(r, key) for r in rows]
            curves = [cv for cv in curves if cv[0].size >= 2]
            if not curves:
                continue
            t = curves[0][0] / curves[0][0][-1]
            if all(cv[0].size == t.size for cv in curves):
                m = np.exp(np.mean([np.log(cv[1]) for cv in curves], axis=0))
                ax.plot(t, m, style, marker="o", ms=3, color=f"C{c % 10}", label=f"{_name(g, rows)}: {tag}")
        kds = [trajectory(r, "kdist0") for r in rows]
        kds = [k for k in kds if k[0].size >= 2]
        if kds and all(k[0].size == kds[0][0].size for k in kds):
            t = kds[0][0] / kds[0][0][-1]
            ax2.plot(
                t, np.mean([k[1] for k in kds], axis=0), "o-", ms=3, color=f"C{c % 10}", label=_name(g, rows)
            )
    ax.set_yscale("log")
    ax.set_ylabel("test MSE (geometric mean over seeds)")
    ax2.set_ylabel("kernel distance S(Θ_0, Θ_t)")
    for a in (ax, ax2):
        a.set_xlabel("fraction of training t / T")
        a.grid(True, which="both", alpha=0.3)
        if a.get_legend_handles_labels()[0]:
            a.legend(fontsize=6)
    fig.suptitle("(c) The eNTK as training goes on: kernel regression with Θ_t beside the net at step t")
    fig.tight_layout()
    return save_figure(fig, path)


__all__ = ["plot_evolution", "plot_robustness", "plot_width"]
