"""The ``equivalence`` study's figure: test error against depth, the trained nets beside the kernel regressions."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from tangentlab.report.figures import save_figure, styled

Curve = dict[int, float]
STYLES: dict[str, str] = {"ntk": "--", "entk": "-.", "nngp": ":"}
NAMES: dict[str, str] = {
    "ntk": "NTK regression (infinite)",
    "entk": "eNTK regression (init)",
    "nngp": "NNGP regression",
}
PARAM_NAMES: dict[str, str] = {"ntk": "NTK", "standard": "standard"}
OPT_NAMES: dict[str, str] = {"gd": "GD", "sgd": "SGD", "adam": "Adam"}


def setting_name(key: tuple[Any, ...]) -> str:
    text = f"width {key[1]}, {PARAM_NAMES.get(key[2], key[2])} param."
    return text + (f", {OPT_NAMES.get(key[3], key[3])}" if len(key) > 3 else "")


@styled
def plot_error_vs_depth(
    datasets: list[str],
    net: dict[Any, Curve],
    kern: dict[str, dict[Any, Curve]],
    path: Path,
) -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(datasets), figsize=(5.5 * len(datasets), 6.0), squeeze=False)
    settings = sorted({k[1:3] for k in net} | {k[1:] for c in kern.values() for k in c})
    colors = {s: f"C{i}" for i, s in enumerate(settings)}
    markers = {"gd": "o", "sgd": "^", "adam": "s"}
    for ax, ds in zip(axes[0], datasets, strict=True):
        for key, curve in sorted(net.items()):
            if key[0] != ds:
                continue
            xs = sorted(curve)
            ax.plot(
                xs,
                [curve[d] for d in xs],
                "-",
                marker=markers.get(key[3], "o"),
                color=colors[(key[1], key[2])],
                label=f"net: {setting_name(key)}",
            )
        for method in ("ntk", "entk", "nngp"):
            for kkey, kcurve in sorted(kern[method].items()):
                if kkey[0] != ds:
                    continue
                xs = sorted(kcurve)
                ax.plot(
                    xs,
                    [kcurve[d] for d in xs],
                    linestyle=STYLES[method],
                    color=colors[(kkey[1], kkey[2])],
                    label=f"{NAMES[method]}: {setting_name(kkey)}",
                )
        ax.set_xlabel("depth (hidden layers)")
        ax.set_ylabel("test error (1 − accuracy)")
        ax.set_title(ds)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(True, alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=7)
    fig.suptitle("Test error against depth: trained net (solid), NTK (--), eNTK at init (-.), NNGP (:)")
    fig.tight_layout(rect=(0, 0.06 + 0.03 * math.ceil(len(labels) / 3), 1, 1))
    save_figure(fig, path)
