"""The ``ensemble`` study's figures: predictive bands per width over the NTK-GP band, and distances against width."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from tangentlab.report.figures import save_figure, styled
from tangentlab.studies._base import ResultRow
from tangentlab.studies.ensemble import EnsembleParams
from tangentlab.studies.ensemble.curves import Curve


@styled
def plot_bands(name: str, rows: list[ResultRow[EnsembleParams]], path: Path) -> Path:
    """One panel per width (columns) and time (rows): the ensemble's mean ± 2 std over the NTK-GP's mean ± 2 std.

    For 1-D inputs the abscissa is the input; otherwise the test points sorted by the NTK-GP mean at that time.
    One run per width is drawn (the lowest seed).
    """
    import matplotlib.pyplot as plt

    chosen: dict[int, ResultRow[EnsembleParams]] = {}
    for r in sorted(rows, key=lambda r: r.config.seed):
        chosen.setdefault(r.params.width, r)
    widths = sorted(chosen)
    times = [int(t) for t in chosen[widths[0]].artifact("times")]
    fig, axes = plt.subplots(
        len(times), len(widths), figsize=(2.6 * len(widths), 2.3 * len(times)), squeeze=False, sharey="row"
    )
    for col, w in enumerate(widths):
        r = chosen[w]
        f, mu, sigma2 = r.artifact("f"), r.artifact("mu"), r.artifact("sigma2")
        x_test = r.artifact("x_test")
        one_d = x_test.ndim == 2 and x_test.shape[1] == 1
        run_times = [int(t) for t in r.artifact("times")]
        for row, t in enumerate(times):
            ax = axes[row, col]
            if t not in run_times:
                ax.set_visible(False)
                continue
            j = run_times.index(t)
            order = np.argsort(x_test[:, 0] if one_d else mu[j])
            xs = x_test[order, 0] if one_d else np.arange(order.size)
            sd = np.sqrt(np.clip(sigma2[j, order], 0, None))
            ax.fill_between(
                xs, mu[j, order] - 2 * sd, mu[j, order] + 2 * sd, color="0.75", label="NTK-GP ±2σ"
            )
            ax.plot(xs, mu[j, order], color="k", lw=1, label="NTK-GP mean")
            em, es = f[:, j].mean(axis=0)[order], f[:, j].std(axis=0, ddof=1)[order]
            ax.plot(
                xs, em - 2 * es, color="C3", lw=0.8, ls="--", label=f"ensemble ±2 std ({f.shape[0]} nets)"
            )
            ax.plot(xs, em + 2 * es, color="C3", lw=0.8, ls="--")
            ax.plot(xs, em, color="C3", lw=1, label="ensemble mean")
            if one_d:
                ax.plot(r.artifact("x_train")[:, 0], r.artifact("y_train"), "k.", ms=3, label="training data")
            if row == 0:
                ax.set_title(f"width {w}", fontsize=9)
            if col == 0:
                ax.set_ylabel(f"t = {t} steps", fontsize=9)
            ax.tick_params(labelsize=7)
    axes[0, 0].legend(fontsize=6, loc="best")
    fig.supxlabel("input x" if one_d else "test point (sorted by NTK-GP mean)", fontsize=9)
    fig.suptitle(f"{name}: finite-width ensembles (red) over the NTK-GP (grey)", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


@styled
def plot_distances(
    per_data: Mapping[str, Mapping[tuple[str, int], Curve]], path: Path, match_tol: float
) -> Path:
    """Rows: datasets; columns: mean and variance distances against width, one line per time, bootstrap bars."""
    import matplotlib.pyplot as plt

    names = sorted(per_data)
    fig, axes = plt.subplots(len(names), 2, figsize=(11, 3.8 * len(names)), squeeze=False)
    for row, name in enumerate(names):
        cs = per_data[name]
        times = sorted({t for _, t in cs})
        for col, stat in enumerate(("mean", "variance")):
            ax = axes[row, col]
            for i, t in enumerate(times):
                c = cs[(stat, t)]
                ws = np.unique(c.widths).astype(int)
                vals = np.array([c.interval(int(w)) for w in ws])
                err = np.clip([vals[:, 0] - vals[:, 1], vals[:, 2] - vals[:, 0]], 0, None)
                ax.errorbar(
                    ws, vals[:, 0], yerr=err, marker="o", capsize=3, color=f"C{i}",
                    label=f"t = {t} (slope {c.slope:+.2f})",
                )  # fmt: skip
            all_w = np.unique(np.concatenate([c.widths for c in cs.values()]))
            ref = np.array([all_w.min(), all_w.max()])
            y0 = float(np.nanmedian([c.values.max() for (s, _), c in cs.items() if s == stat]))
            ax.plot(ref, y0 * (ref / ref[0]) ** -0.5, "k--", lw=1, label=r"width$^{-1/2}$")
            ax.axhline(match_tol, color="0.5", lw=1, ls=":", label=f"match threshold {match_tol:g}")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("width")
            what = "mean (in NTK-GP std)" if stat == "mean" else "variance (relative)"
            ax.set_title(f"{name}: distance of the ensemble {what}", fontsize=10)
            ax.legend(fontsize=7)
            ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path)
