"""Figures of the ``fort`` study: the kernel velocity at a fixed dt (and on log-spaced snapshots), the linearized
model trained from theta_t against the net, and the loss barrier between spawned children. Each takes finished
runs and writes one PNG.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tangentlab.report.figures import save_figure, styled
from tangentlab.studies._base import ResultRow
from tangentlab.studies.fort import FortParams

MODEL_NAMES: dict[str, str] = {
    "mlp": "MLP",
    "cnn": "CNN",
    "linear": "control: linear model",
    "wide_ntk": "control: wide NTK-param. net",
}
BATCH_NAMES: dict[str, str] = {"minibatch": "minibatch SGD", "full": "full-batch GD"}


def model_kind(row: ResultRow[FortParams]) -> str:
    return str(row.params.model_kind)


def batch(row: ResultRow[FortParams]) -> str:
    return str(row.params.batch)


def label(row: ResultRow[FortParams]) -> str:
    return f"{MODEL_NAMES.get(model_kind(row), model_kind(row))}, seed {row.config.seed}"


def _plt() -> Any:
    import matplotlib.pyplot as plt

    return plt


def _panels(rows: list[ResultRow[FortParams]]) -> list[tuple[str, str]]:
    return sorted({(r.config.data.name, batch(r)) for r in rows})


def _color(row: ResultRow[FortParams]) -> str:
    return f"C{list(MODEL_NAMES).index(model_kind(row)) if model_kind(row) in MODEL_NAMES else 9}"


@styled
def plot_velocity(rows: list[ResultRow[FortParams]], path: Path) -> None:
    """Per (dataset, batch) column: the fixed-dt velocity against t (top, linear axes) and the velocity on
    log-spaced snapshots (bottom, log axes)."""
    plt = _plt()
    panels = _panels(rows)
    fig, axes = plt.subplots(2, len(panels), figsize=(5.5 * len(panels), 8), squeeze=False)
    for j, (ds, b) in enumerate(panels):
        for r in (r for r in rows if (r.config.data.name, batch(r)) == (ds, b)):
            c, lab = _color(r), label(r)
            t0, v = r.artifact("velocity_equal_t0"), r.artifact("velocity_equal")
            if v.size:
                dt = (t0[1] - t0[0]) if t0.size > 1 else 1.0
                axes[0, j].plot(t0 + dt / 2, v, "o-", ms=3, color=c, label=lab)
            tl, vl = r.artifact("velocity_log_t0"), r.artifact("velocity_log")
            ok = vl > 0
            axes[1, j].plot(tl[ok] + 1, vl[ok], "o-", ms=3, color=c, label=lab)
        axes[0, j].set_title(f"{ds}, {BATCH_NAMES[b]}: velocity at a fixed dt", fontsize=9)
        axes[0, j].set_xlabel("training step (middle of the interval)")
        axes[1, j].set_title(f"{ds}, {BATCH_NAMES[b]}: velocity on log-spaced snapshots", fontsize=9)
        axes[1, j].set_xlabel("training step + 1 (start of the interval)")
        axes[1, j].set_xscale("log")
        axes[1, j].set_yscale("log")
        for ax in axes[:, j]:
            ax.set_ylabel(r"$\angle(\Theta_t, \Theta_{t+dt}) / dt$ (rad/step)")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=7)
    fig.suptitle("Kernel velocity: the angle the probe eNTK turns per step")
    fig.tight_layout()
    save_figure(fig, path)


@styled
def plot_linearized(rows: list[ResultRow[FortParams]], path: Path) -> None:
    """Per (dataset, batch) column: test error of the linearization at theta_t trained to T (solid) and of the net
    trained from theta_t on the same batches (dashed) against t (top); the gap, linearized minus net (bottom)."""
    plt = _plt()
    panels = _panels(rows)
    fig, axes = plt.subplots(2, len(panels), figsize=(5.5 * len(panels), 8), squeeze=False)
    for j, (ds, b) in enumerate(panels):
        for r in (r for r in rows if (r.config.data.name, batch(r)) == (ds, b)):
            c, lab = _color(r), label(r)
            t = r.artifact("spawn_step") + 1
            axes[0, j].plot(t, r.artifact("lin_test_error"), "o-", ms=3, color=c, label=f"linearized, {lab}")
            axes[0, j].plot(t, r.artifact("child_test_error"), "s--", ms=3, color=c)
            axes[1, j].plot(t, r.artifact("gap_test_error"), "o-", ms=3, color=c, label=lab)
        axes[0, j].set_title(
            f"{ds}, {BATCH_NAMES[b]}: test error at T (— linearized at θ_t, -- net)", fontsize=9
        )
        axes[1, j].set_title(f"{ds}, {BATCH_NAMES[b]}: gap, linearized − net", fontsize=9)
        axes[1, j].axhline(0.0, color="k", lw=0.8)
        for ax in axes[:, j]:
            ax.set_xscale("log")
            ax.set_xlabel("step t at which the net is linearized + 1")
            ax.set_ylabel("test error")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=7)
    fig.suptitle(
        "The linearized model trained from θ_t (after kernel by training) vs the net trained from θ_t"
    )
    fig.tight_layout()
    save_figure(fig, path)


@styled
def plot_spawning(rows: list[ResultRow[FortParams]], path: Path) -> None:
    """Per (dataset, batch) column: the train-loss barrier between two children against the spawn step (top, with
    the test-error barrier dashed), and the train loss along the path of the first run, one line per spawn step."""
    plt = _plt()
    panels = _panels(rows)
    fig, axes = plt.subplots(2, len(panels), figsize=(5.5 * len(panels), 8), squeeze=False)
    for j, (ds, b) in enumerate(panels):
        group = [r for r in rows if (r.config.data.name, batch(r)) == (ds, b)]
        for r in group:
            c, lab = _color(r), label(r)
            t = r.artifact("spawn_step") + 1
            axes[0, j].plot(
                t, r.artifact("barrier_train_loss"), "o-", ms=3, color=c, label=f"train loss, {lab}"
            )
            axes[0, j].plot(t, r.artifact("barrier_test_error"), "s--", ms=3, color=c)
        shown = next((r for r in group if model_kind(r) in ("mlp", "cnn")), group[0] if group else None)
        if shown is not None:
            alphas, paths = shown.artifact("alphas"), shown.artifact("path_train_loss")
            for i, (t, loss) in enumerate(zip(shown.artifact("spawn_step"), paths, strict=True)):
                axes[1, j].plot(alphas, loss, "o-", ms=2, color=f"C{i}", label=f"spawned at t = {int(t)}")
            axes[1, j].set_title(
                f"{ds}, {BATCH_NAMES[b]}: train loss on the path, {label(shown)}", fontsize=9
            )
        axes[0, j].set_title(f"{ds}, {BATCH_NAMES[b]}: barrier (— train loss, -- test error)", fontsize=9)
        axes[0, j].set_xscale("log")
        axes[0, j].set_xlabel("spawn step t + 1")
        axes[0, j].set_ylabel("barrier")
        axes[1, j].set_xlabel(r"$\alpha$ in $(1-\alpha)\theta_a + \alpha\theta_b$")
        axes[1, j].set_ylabel("train loss")
        for ax in axes[:, j]:
            ax.ticklabel_format(axis="y", useOffset=False)
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=7)
    fig.suptitle("Parent–child spawning: loss barrier on the straight line between two children")
    fig.tight_layout()
    save_figure(fig, path)
