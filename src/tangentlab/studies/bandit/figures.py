"""The ``bandit`` study's figure: cumulative regret against rounds per agent, bandit and width."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from tangentlab.report.figures import save_figure, styled
from tangentlab.studies._base import ResultRow
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
STYLES: dict[str, str] = {"neural_ucb": "-", "neural_ts": "-", "ntk_gp_ucb": ":", "eps_greedy": "--"}
Group = tuple[str, int, float]  # (bandit name, width, the NTK rule's nu)


def group_name(g: Group, with_nu: bool) -> str:
    """``digits, width 32`` (with ``, ν=0.1`` when the sweep has several nu)."""
    return f"{g[0]}, width {g[1]}" + (f", ν={g[2]:g}" if with_nu else "")


def agent_label(agent: str) -> str:
    return AGENT_LABELS.get(agent, agent)


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
def plot_regret(groups: dict[Group, dict[str, list[ResultRow[BanditParams]]]], path: Path) -> None:
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
                    label=f"{agent_label(agent)} (n={len(c)})",
                )
                if len(c) > 1:
                    se = c.std(0, ddof=1) / math.sqrt(len(c))
                    ax.fill_between(t, mean - se, mean + se, color=colors[agent], alpha=0.2)
            ax.set_title(group_name((env[0], width, env[1]), with_nu), fontsize=10)
            ax.set_xlabel("round t")
            ax.set_ylabel("cumulative regret")
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=7)
    fig.suptitle("Cumulative regret against rounds (mean over seeds; band: ±1 standard error)")
    fig.tight_layout()
    save_figure(fig, path)
