"""What an audit shows: a terminal table (a verdict per criterion, with its threshold and why), JSON, and an HTML
page with the figures (built with :func:`tangentlab.report.write_report`, so it looks like the study reports).
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tangentlab._version import __version__
from tangentlab.auditing._criteria import KERNEL_REGIME
from tangentlab.report import StudySection, Table, write_report
from tangentlab.report.figures import save_figure, styled

if TYPE_CHECKING:
    from tangentlab.auditing._audit import AuditResult

CITATION = (
    "Jacot, Gabriel & Hongler 2018 (arXiv 1806.07572); Lee et al. 2019 (arXiv 1902.06720); Hanin & Nica 2020 "
    "(arXiv 1909.05989); Fort et al. 2020 (arXiv 2010.15110)"
)
CLAIM = (
    "The model trains in the kernel (lazy) regime: its empirical NTK at init barely depends on the seed and "
    "barely moves in training, its parameters barely move, it tracks its linearization, and NTK regression with "
    "the init eNTK predicts its test error."
)


def _num(value: float) -> str:
    if not math.isfinite(value):
        return "n/a"
    return f"{value:.3g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"


def _cell(value: object) -> str:
    return _num(value) if isinstance(value, float) else str(value)


def criteria_rows(result: AuditResult) -> list[tuple[str, str, str, str]]:
    """``(criterion, measured, threshold, verdict)`` per criterion."""
    return [(c.name, _num(c.value), f"< {c.threshold:g}", c.verdict) for c in result.criteria]


def summary_line(result: AuditResult) -> str:
    """``"verdict: kernel regime"`` or ``"verdict: not kernel regime (fails: a, b)"``."""
    if result.verdict == KERNEL_REGIME:
        return f"verdict: {result.verdict} (all {len(result.criteria)} criteria pass)"
    return f"verdict: {result.verdict} (fails: {', '.join(result.failing)})"


def render_table(result: AuditResult) -> str:
    """The terminal table: one row per criterion, each followed by its reason, then the overall verdict."""
    m, s = result.measurements, result.settings
    header = ("criterion", "measured", "threshold", "verdict")
    rows = criteria_rows(result)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    lr = f"{s['learning_rate']:.4g} ({s['learning_rate_rule']})"
    out = [
        f"audit of {result.factory} on {result.data} ({s['task']}, inputs {tuple(s['input_shape'])}, "
        f"{s['n_params']:,} parameters)",
        f"{s['optimizer']} for {s['steps']} steps, lr {lr}, MSE loss; {s['n_train']} train / {s['n_test']} test, "
        f"eNTK probe {s['probe_size']} inputs, {len(s['seeds'])} seeds; training {m.status}",
        "",
        line(header),
        line(tuple("-" * w for w in widths)),
    ]
    for row, criterion in zip(rows, result.criteria, strict=True):
        out.append(line(row))
        out.append(f"    {criterion.title}: {criterion.why}")
    out.append("")
    out.extend(f"test error {err}, test MSE {mse}: {label}" for label, err, mse in prediction_rows(result))
    out.append(summary_line(result))
    return "\n".join(out)


def prediction_rows(result: AuditResult) -> list[tuple[str, str, str]]:
    """``(model, test error, test MSE)`` for the trained net, the linearized model and NTK regression."""
    m = result.measurements
    t = result.settings["ntk_regression_time"]
    when = "t = steps" if t != "infinity" else "t = infinity: Adam has no kernel counterpart"
    names = {"net": "trained net", "lin": "linearized model", "ntk": f"NTK regression, init eNTK ({when})"}
    return [
        (label, _num(m.test_error[key]) if key in m.test_error else "n/a", _num(m.test_mse[key]))
        for key, label in names.items()
    ]


def write_json(result: AuditResult, path: Path) -> Path:
    """Write ``result.to_dict()`` as JSON (atomically) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result.to_dict(), indent=2), encoding="utf-8")
    tmp.replace(path)
    return path


@styled
def _figures(result: AuditResult, folder: Path) -> tuple[Path, ...]:
    import matplotlib.pyplot as plt

    m = result.measurements
    limits = {c.name: c.threshold for c in result.criteria}
    steps = np.asarray(m.steps, dtype=float)
    fig, axes = plt.subplots(2, 2, figsize=(10, 7.5))
    ax = axes[0, 0]
    if len(steps) > 1:
        ax.semilogy(steps[1:], np.maximum(np.asarray(m.kernel_distance[1:]), 1e-16), "o-", label="S(0, t)")
    ax.axhline(limits["kernel_distance"], color="grey", ls="--", label="threshold")
    ax.set(
        xlabel="step", ylabel="kernel distance from init", title="eNTK distance from init (Fort et al. 2020)"
    )
    ax.legend()
    ax = axes[0, 1]
    if m.kernel_velocity:
        velocity = np.maximum(np.asarray(m.kernel_velocity), 1e-16)
        ax.semilogy(steps[1:], velocity, "o-", label="v(t)")
        ax.axhline(
            limits["kernel_velocity"] / max(result.settings["steps"], 1),
            color="grey",
            ls="--",
            label="threshold / steps",
        )
        ax.legend()
    ax.set(xlabel="step", ylabel="angle φ(t_i, t_i+1) / Δt (rad/step)", title="kernel velocity")
    ax = axes[1, 0]
    ax.plot(steps, m.param_change, "o-", label="‖θ_t − θ_0‖ / ‖θ_0‖")
    ax.plot(steps, m.function_gap, "s-", label="‖f_t − f_t^lin‖ / ‖f_t^lin‖ (test)")
    ax.axhline(limits["param_change"], color="C0", ls="--", lw=1, label="threshold (parameters)")
    ax.axhline(limits["function_gap"], color="C1", ls=":", lw=1, label="threshold (function)")
    ax.set(xlabel="step", title="parameters and function vs linearization (Lee et al. 2019)")
    ax.legend()
    ax = axes[1, 1]
    if m.loss_net:
        ax.semilogy(m.loss_steps, np.maximum(m.loss_net, 1e-300), label="net")
        ax.semilogy(m.loss_steps[: len(m.loss_lin)], np.maximum(m.loss_lin, 1e-300), "--", label="linearized")
        ax.legend()
    ax.set(xlabel="step", ylabel="training loss", title="training loss")
    fig.suptitle(f"{result.factory} on {result.data}: {result.verdict}")
    fig.tight_layout()
    dynamics = folder / "audit_dynamics.png"
    save_figure(fig, dynamics)

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    kernels = m.seed_kernels.numpy()
    diag = np.stack([np.diag(k) for k in kernels])
    axes[0].plot(diag.T, lw=1)
    axes[0].set(xlabel="probe input", ylabel="Θ(x, x) at init", title="eNTK diagonal, one line per seed")
    key = "test_error" if m.test_error else "test_mse"
    values = getattr(m, key)
    labels = {"net": "trained net", "lin": "linearized", "ntk": "NTK regression"}
    axes[1].bar([labels[k] for k in values], [values[k] for k in values], color=["C0", "C1", "C2"])
    axes[1].set(ylabel=key.replace("_", " "), title="test performance")
    fig.tight_layout()
    predictions = folder / "audit_predictions.png"
    save_figure(fig, predictions)
    return dynamics, predictions


def write_html(result: AuditResult, out_dir: Path, *, command: str = "") -> Path:
    """Write ``out_dir/report/index.html`` (with figures under ``out_dir/report/figures/``) and return its path."""
    out_dir = Path(
        out_dir
    ).resolve()  # figures are placed relative to the page: a relative folder would double
    figures_dir = out_dir / "report" / "figures"
    figures_dir.mkdir(parents=True, exist_ok=True)
    s, m = result.settings, result.measurements
    criteria = Table(
        "Criteria (each passes iff measured < threshold)",
        ("criterion", "what", "measured", "threshold", "verdict", "why"),
        tuple(
            (c.name, c.title, _num(c.value), f"< {c.threshold:g}", c.verdict, c.why) for c in result.criteria
        ),
    )
    predictions = Table(
        "Test performance", ("model", "test error", "test MSE"), tuple(prediction_rows(result))
    )
    extra = Table(
        "Spread of the eNTK at init over seeds",
        ("quantity", "value"),
        (
            ("relative std (Frobenius) — the kernel_spread criterion", _num(m.kernel_spread)),
            (
                "mean over inputs of std/mean of Θ(x, x) (Hanin & Nica 2020's dispersion)",
                _num(m.diagonal_dispersion),
            ),
            ("mean pairwise kernel distance S between seeds", _num(m.seed_distance)),
        ),
    )
    findings = (
        summary_line(result) + ".",
        *(f"{c.name}: {_num(c.value)} (threshold {c.threshold:g}) → {c.verdict}." for c in result.criteria),
        f"Training: {m.message}.",
    )
    settings = tuple(
        f"{key}: "
        + (", ".join(f"{k} {_cell(v)}" for k, v in value.items()) if isinstance(value, dict) else str(value))
        for key, value in s.items()
    )
    section = StudySection(
        study="audit",
        title=f"Audit: {result.factory} on {result.data}",
        citation=CITATION,
        claim=CLAIM,
        verdict="supported" if result.verdict == KERNEL_REGIME else "not supported",
        findings=findings,
        figures=_figures(result, figures_dir),
        tables=(criteria, predictions, extra),
        settings=settings,
    )
    metadata = {
        "verdict": result.verdict,
        "tangentlab": __version__,
        "written": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }
    if command:
        metadata["command"] = command
    return write_report(out_dir, [section], title=f"tangentlab audit: {result.factory}", metadata=metadata)


def write_outputs(result: AuditResult, out_dir: Path, *, command: str = "") -> tuple[Path, Path]:
    """Write ``out_dir/audit.json`` and ``out_dir/report/index.html``; return both paths."""
    return write_json(result, Path(out_dir) / "audit.json"), write_html(result, out_dir, command=command)
