"""Figures of the ``evolution`` study: kernel dynamics against training time, the after kernel against the net,
and log heat-maps of the probe kernel at init and at the end. Each takes finished runs and writes one PNG.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tangentlab.report.figures import save_figure, styled
from tangentlab.studies._base import ResultRow
from tangentlab.studies.evolution import EvolutionParams

MODEL_NAMES: dict[str, str] = {
    "mlp": "MLP",
    "cnn": "CNN",
    "deep_mlp": "deep MLP",
    "resnet": "ResNet",
    "lazy_control": "positive control: wide NTK-param. MLP, GD",
}


def phase(sigma_w2: float) -> str:
    """ReLU phase of ``sigma_w^2`` (sigma_b = 0): ordered (< 2), edge of chaos (= 2), chaotic (> 2)."""
    if abs(sigma_w2 - 2.0) < 1e-9:
        return "edge of chaos"
    return "ordered" if sigma_w2 < 2.0 else "chaotic"


def sigma_w2(row: ResultRow[EvolutionParams]) -> float:
    return float(row.params.sigma_w2)


def model_kind(row: ResultRow[EvolutionParams]) -> str:
    return str(row.params.model_kind)


def model_label(row: ResultRow[EvolutionParams]) -> str:
    return f"{MODEL_NAMES.get(model_kind(row), model_kind(row))} (depth {row.metrics.get('depth')})"


def _plt() -> Any:
    import matplotlib.pyplot as plt

    return plt


def _colors(values: Sequence[float]) -> dict[float, str]:
    return {v: f"C{i}" for i, v in enumerate(sorted(set(values)))}


@styled
def plot_dynamics(rows: list[ResultRow[EvolutionParams]], dataset: str, path: Path) -> None:
    """Per model (columns): S(0, t), velocity, block ratios and alignment (rows) against step + 1 (log axis)."""
    plt = _plt()
    kinds = sorted({model_kind(r) for r in rows}, key=lambda k: list(MODEL_NAMES).index(k))
    fig, axes = plt.subplots(4, len(kinds), figsize=(5 * len(kinds), 13), squeeze=False)
    colors = _colors([sigma_w2(r) for r in rows])
    for j, kind in enumerate(kinds):
        group = sorted((r for r in rows if model_kind(r) == kind), key=lambda r: (sigma_w2(r), r.config.seed))
        seen: set[float] = set()
        for r in group:
            s2 = sigma_w2(r)
            c = colors[s2]
            label = None if s2 in seen else f"σ_w²={s2:g} ({phase(s2)})"
            seen.add(s2)
            t = r.artifact("snap_step")
            axes[0, j].plot(t[1:] + 1, r.artifact("kernel_distance")[1:], "o-", ms=3, color=c, label=label)
            v, t1 = r.artifact("velocity"), r.artifact("velocity_t1")
            ok = v > 0
            axes[1, j].plot(t1[ok] + 1, v[ok], "o-", ms=3, color=c, label=label)
            axes[2, j].plot(t + 1, r.artifact("within_ratio"), "o-", ms=3, color=c, label=label)
            axes[2, j].plot(t + 1, r.artifact("between_ratio"), "s--", ms=3, color=c)
            axes[3, j].plot(t + 1, r.artifact("alignment"), "o-", ms=3, color=c, label=label)
        name = model_label(group[0]) if group else kind
        titles = (
            f"{name}: kernel distance from init $S(0,t)$",
            rf"{name}: velocity $\angle(\Theta_{{t_i}},\Theta_{{t_{{i+1}}}})/\Delta t$",
            f"{name}: block mean ÷ mean diag (— within, -- between)",
            f"{name}: centred kernel–label alignment",
        )
        for i, ax in enumerate(axes[:, j]):
            ax.set_xscale("log")
            if i in (0, 1):
                ax.set_yscale("log")
            ax.set_title(titles[i], fontsize=8)
            ax.set_xlabel("training step + 1")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=7)
    fig.suptitle(f"{dataset}: the probe eNTK through training (one line per run)")
    fig.tight_layout()
    save_figure(fig, path)


@styled
def plot_after_kernel(rows: list[ResultRow[EvolutionParams]], path: Path) -> None:
    """After-kernel regression accuracy (solid) vs the net's own test accuracy (dashed), per dataset and model."""
    plt = _plt()
    datasets = sorted({r.config.data.name for r in rows})
    kinds = sorted({model_kind(r) for r in rows}, key=lambda k: list(MODEL_NAMES).index(k))
    fig, axes = plt.subplots(
        len(kinds), len(datasets), figsize=(5.5 * len(datasets), 3.8 * len(kinds)), squeeze=False
    )
    colors = _colors([sigma_w2(r) for r in rows])
    for i, kind in enumerate(kinds):
        for j, ds in enumerate(datasets):
            ax = axes[i, j]
            group = [r for r in rows if model_kind(r) == kind and r.config.data.name == ds]
            seen: set[float] = set()
            for r in sorted(group, key=lambda r: (sigma_w2(r), r.config.seed)):
                s2 = sigma_w2(r)
                t = r.artifact("snap_step") + 1
                first = s2 not in seen
                seen.add(s2)
                ax.plot(
                    t,
                    r.artifact("after_kernel_acc"),
                    "o-",
                    ms=3,
                    color=colors[s2],
                    label=rf"after kernel, $\sigma_w^2$={s2:g}" if first else None,
                )
                ax.plot(
                    t,
                    r.artifact("net_acc"),
                    "--",
                    color=colors[s2],
                    label=rf"net, $\sigma_w^2$={s2:g}" if first else None,
                )
            ax.set_xscale("log")
            ax.set_xlabel("training step + 1 (kernel taken at this step)")
            ax.set_ylabel("test accuracy")
            title = model_label(group[0]) if group else MODEL_NAMES.get(kind, kind)
            ax.set_title(f"{ds}, {title}", fontsize=9)
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=7, ncol=2)
    fig.suptitle("Kernel regression with the eNTK at step t (after kernel) vs the net at step t")
    fig.tight_layout()
    save_figure(fig, path)


@styled
def plot_heatmaps(rows: list[ResultRow[EvolutionParams]], path: Path) -> None:
    """log10 |Θ| / mean diag of the probe kernel (sorted by class) at init and at the end, one column per run."""
    plt = _plt()
    runs = sorted(rows, key=sigma_w2)
    fig, axes = plt.subplots(2, len(runs), figsize=(3.6 * len(runs), 7), squeeze=False)
    for j, r in enumerate(runs):
        for i, (name, when) in enumerate((("ntk0_probe", "init"), ("ntkT_probe", "end"))):
            k = r.artifact(name)
            z = np.log10(np.abs(k) / np.abs(np.diag(k)).mean() + 1e-12)
            im = axes[i, j].imshow(z, cmap="viridis", vmin=-2, vmax=0.5)
            axes[i, j].set_title(rf"$\sigma_w^2$={sigma_w2(r):g} ({phase(sigma_w2(r))}), {when}", fontsize=8)
            axes[i, j].set_xticks([])
            axes[i, j].set_yticks([])
        fig.colorbar(im, ax=axes[:, j].tolist(), shrink=0.6)
    first = runs[0]
    fig.suptitle(
        f"{first.config.data.name}, {model_label(first)}: log10 |Θ_ij| / mean Θ_ii on the probe (sorted by class)"
    )
    save_figure(fig, path)
