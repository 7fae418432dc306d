"""The ``equivalence`` study's report: test error against depth per method, per-layer changes, their correlation,
the NNGP–NTK gap, findings and verdict against Liu et al. 2025 (arXiv 2501.10929).

Definitions (all errors are test errors ``1 - accuracy``, averaged over seeds at each depth):

* A *series* is one method's error against depth for one dataset and setting: the trained net per
  (width, parametrization, optimizer); kernel methods (``ntk``, ``entk``, ``nngp``, ``lin``) per
  (width, parametrization) — they do not depend on the optimizer.
* The change a layer brings, ``Δ_d = err(d+1) - err(d)``, is taken between consecutive depths of the grid.
* Net–NTK agreement: the Pearson correlation ``r(Δ_net, Δ_NTK)`` pooled over every (dataset, setting, d), the
  fraction of layer additions where the two changes have the same sign, and ``mean |Δ_net - Δ_NTK|``.
* NNGP–NTK gap: ``mean |err_NNGP - err_NTK|`` over every (dataset, width, parametrization, depth).

Verdict. Claim 1 (a layer changes the net and NTK regression differently) counts as shown when the changes do not
match: ``r < R_MATCH`` or ``mean |Δ_net - Δ_NTK| > mean |Δ_NTK|``. Claim 2 (NNGP errs almost exactly as NTK
regression) counts as shown when the gap is at most ``GAP_TOL`` (absolute error). Both: supported; one: mixed;
neither: not supported; too few depths (fewer than ``MIN_PAIRS`` pooled layer additions): inconclusive.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter, defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tangentlab.report.figures import save_figure, styled
from tangentlab.report.section import StudySection, Table, Verdict
from tangentlab.studies._base import ResultRow
from tangentlab.studies._sections import header as section_header

if TYPE_CHECKING:
    from tangentlab.studies.equivalence import EquivalenceStudy

R_MATCH = 0.5
GAP_TOL = 0.02
MIN_PAIRS = 3
KERNELS: tuple[str, ...] = ("ntk", "entk", "nngp", "lin")
NAMES: dict[str, str] = {
    "net": "trained net",
    "ntk": "NTK regression (infinite)",
    "entk": "eNTK regression (init)",
    "nngp": "NNGP regression",
    "lin": "linearized net at t=∞",
}
STYLES: dict[str, str] = {"ntk": "--", "entk": "-.", "nngp": ":"}
PARAM_NAMES: dict[str, str] = {"ntk": "NTK", "standard": "standard"}
OPT_NAMES: dict[str, str] = {"gd": "GD", "sgd": "SGD", "adam": "Adam"}

KernelKey = tuple[str, int, str]  # dataset, width, parametrization
NetKey = tuple[str, int, str, str]  # dataset, width, parametrization, optimizer
Curve = dict[int, float]


UNDERTRAINED_LOSS = 0.01  # median final MSE training loss above which the report flags the nets


def _depth(row: ResultRow) -> int:
    return int(row.config.params.get("depth", 1))


def _kernel_key(row: ResultRow) -> KernelKey:
    p = row.config.params
    return row.config.data.name, int(p.get("width", 256)), str(p.get("parametrization", "ntk"))


def _net_key(row: ResultRow) -> NetKey:
    return (*_kernel_key(row), row.config.train.optimizer)


def _setting_name(key: tuple[Any, ...]) -> str:
    text = f"width {key[1]}, {PARAM_NAMES.get(key[2], key[2])} param."
    return text + (f", {OPT_NAMES.get(key[3], key[3])}" if len(key) > 3 else "")


def _value(row: ResultRow, metric: str) -> float | None:
    v = row.metrics.get(metric)
    return float(v) if isinstance(v, int | float) and math.isfinite(v) else None


def _curves(rows: list[ResultRow], key_fn: Any, method: str) -> dict[Any, Curve]:
    """Seed- (and, for kernels, optimizer-) averaged error of ``method`` per key and depth."""
    acc: dict[Any, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        v = _value(r, f"test_err_{method}")
        if v is not None:
            acc[key_fn(r)][_depth(r)].append(v)
    return {k: {d: float(np.mean(vs)) for d, vs in sorted(c.items())} for k, c in acc.items()}


def deltas(curve: Curve) -> dict[tuple[int, int], float]:
    """Change of error between consecutive depths of ``curve``: ``{(d, d_next): err(d_next) - err(d)}``."""
    ds = sorted(curve)
    return {(a, b): curve[b] - curve[a] for a, b in itertools.pairwise(ds)}


def pearson(a: list[float], b: list[float]) -> float | None:
    """Pearson correlation, or None for fewer than two points or a constant vector."""
    if len(a) < 2:
        return None
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    x, y = x - x.mean(), y - y.mean()
    den = math.sqrt(float(x @ x) * float(y @ y))
    return float(x @ y) / den if den > 0 else None


def _fmt(v: float | None, spec: str = "+.3f") -> str:
    return "n/a" if v is None else format(v, spec)


@styled
def _plot(
    datasets: list[str],
    net: dict[NetKey, Curve],
    kern: dict[str, dict[KernelKey, Curve]],
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
                label=f"net: {_setting_name(key)}",
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
                    label=f"{NAMES[method]}: {_setting_name(kkey)}",
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


def _depth_table(net: dict[NetKey, Curve], kern: dict[str, dict[KernelKey, Curve]]) -> Table:
    pairs = sorted(
        {p for c in [*net.values(), *(c for m in kern.values() for c in m.values())] for p in deltas(c)}
    )
    rows: list[tuple[str, ...]] = []
    series: list[tuple[tuple[Any, ...], str, Curve]] = [(k, "net", c) for k, c in net.items()]
    series += [(k, m, c) for m in KERNELS for k, c in kern[m].items()]
    for key, method, curve in sorted(series, key=lambda s: (s[0][:3], s[1] != "net", s[1], s[0][3:])):
        d = deltas(curve)
        rows.append(
            (key[0], _setting_name(key), NAMES[method], *(_fmt(d.get(p)) for p in pairs)),
        )
    return Table(
        caption="Change of test error each added layer brings, err(d′) − err(d) for consecutive depths d → d′ "
        "(mean over seeds; negative = the layer helps)",
        header=("dataset", "setting", "method", *(f"{a}→{b}" for a, b in pairs)),
        rows=tuple(rows),
    )


def _agreement(
    net: dict[NetKey, Curve], ntk: dict[KernelKey, Curve]
) -> tuple[list[float], list[float], dict[NetKey, float | None]]:
    """Pooled (Δ_net, Δ_NTK) pairs and the per-setting correlation."""
    a: list[float] = []
    b: list[float] = []
    per: dict[NetKey, float | None] = {}
    for key, curve in sorted(net.items()):
        ref = ntk.get(key[:3])
        if ref is None:
            continue
        dn, dk = deltas(curve), deltas(ref)
        common = sorted(set(dn) & set(dk))
        xs, ys = [dn[p] for p in common], [dk[p] for p in common]
        a += xs
        b += ys
        per[key] = pearson(xs, ys)
    return a, b, per


def _gap(
    x: dict[KernelKey, Curve], y: dict[Any, Curve], key_map: Any = None
) -> tuple[float | None, float, int]:
    """Mean and max of ``|err_x - err_y|`` over shared (key, depth) points, and their count."""
    diffs: list[float] = []
    for key, cy in y.items():
        cx = x.get(key if key_map is None else key_map(key))
        if cx is None:
            continue
        diffs += [abs(cx[d] - cy[d]) for d in cy if d in cx]
    if not diffs:
        return None, math.nan, 0
    return float(np.mean(diffs)), float(np.max(diffs)), len(diffs)


def _verdict(
    r: float | None, n_pairs: int, mismatch: float, scale: float, gap: float | None
) -> tuple[Verdict, str]:
    if gap is None or n_pairs < MIN_PAIRS or r is None:
        return (
            "inconclusive",
            f"Verdict: inconclusive — {n_pairs} net/NTK layer additions with finite errors (need {MIN_PAIRS}) or no "
            "NNGP/NTK pairs: run at least three depths.",
        )
    differ = r < R_MATCH or mismatch > scale
    close = gap <= GAP_TOL
    c1 = (
        f"per-layer changes of the net and of NTK regression {'do not match' if differ else 'match'} "
        f"(r = {r:+.2f}, threshold {R_MATCH}; mean |Δ_net − Δ_NTK| = {mismatch:.4f} vs mean |Δ_NTK| = {scale:.4f})"
    )
    c2 = (
        f"NNGP regression {'errs' if close else 'does not err'} almost as NTK regression does "
        f"(mean |err_NNGP − err_NTK| = {gap:.4f}, threshold {GAP_TOL})"
    )
    verdict: Verdict = "supported" if differ and close else "mixed" if differ or close else "not supported"
    return verdict, f"Verdict: {verdict} — {c1}; {c2}."


def _settings(rows: list[ResultRow], n_failed: int, n_diverged: int) -> tuple[str, ...]:
    c = rows[0].config
    p = c.params
    solvers = Counter(str(r.metrics.get(f"solver_{m}")) for r in rows for m in KERNELS)
    conds = [v for r in rows for m in ("ntk", "nngp", "entk") if (v := _value(r, f"cond_{m}")) is not None]
    frac = p.get("lr_fraction", 0.5)
    gd_rule = f"η = {frac}·n/λ_max(eNTK_0)" if frac is not None else f"η = {c.train.learning_rate}"
    ridges = sorted({float(r.config.params.get("ridge", 0.0)) for r in rows})
    return (
        f"Data: {sorted({r.config.data.name for r in rows})}, n_train={c.data.n_train}, n_test={c.data.n_test}, "
        f"target {c.data.target or 'onehot'} (MSE), standardize {c.data.standardize}.",
        f"Model: depth × [Dense(width, σ_w={p.get('sigma_w', math.sqrt(2)):.4g}, σ_b={p.get('sigma_b', 0.0)}) → "
        "ReLU] → Dense readout; float64.",
        f"Grid: depths {sorted({_depth(r) for r in rows})}; widths {sorted({int(r.config.params['width']) for r in rows})}; "
        f"parametrizations {sorted({str(r.config.params['parametrization']) for r in rows})}; optimizers "
        f"{sorted({r.config.train.optimizer for r in rows})}; seeds {sorted({r.config.seed for r in rows})}.",
        f"Training: full batch, {c.train.steps} steps; GD {gd_rule}; Adam lr = {c.train.learning_rate}.",
        f"Kernel solves: ridge {ridges} × mean training-kernel diagonal; solvers used {dict(solvers)}; largest "
        f"condition number {max(conds) if conds else math.nan:.3g}.",
        f"Runs: {len(rows)} completed, {n_diverged} diverged (net left out), {n_failed} failed.",
    )


def equivalence_section(study: EquivalenceStudy, rows: list[ResultRow], figures_dir: Path) -> StudySection:
    """Build the ``equivalence`` report section and write its figure into ``figures_dir``."""
    figures_dir.mkdir(parents=True, exist_ok=True)
    done = [r for r in rows if r.status == "done"]
    n_failed = len(rows) - len(done)
    n_diverged = sum(r.metrics.get("status") == "diverged" for r in done)
    base = section_header(study)
    if not done:
        return StudySection(
            **base, verdict="inconclusive", findings=(f"No finished runs ({n_failed} failed).",)
        )

    net = _curves(done, _net_key, "net")
    kern = {m: _curves(done, _kernel_key, m) for m in KERNELS}
    datasets = sorted({r.config.data.name for r in done})
    png = figures_dir / "equivalence_error_vs_depth.png"
    _plot(datasets, net, kern, png)

    a, b, per = _agreement(net, kern["ntk"])
    r = pearson(a, b)
    mismatch = float(np.mean(np.abs(np.subtract(a, b)))) if a else math.nan
    scale = float(np.mean(np.abs(b))) if b else math.nan
    same_sign = sum(np.sign(x) == np.sign(y) for x, y in zip(a, b, strict=True))
    gap, gap_max, gap_n = _gap(kern["nngp"], kern["ntk"])
    g_nn = _gap(kern["ntk"], net, key_map=lambda k: k[:3])
    g_e = _gap(kern["entk"], kern["ntk"])
    g_l = _gap(kern["lin"], net, key_map=lambda k: k[:3])
    ka, kb, _ = _agreement({(*k, "-"): c for k, c in kern["nngp"].items()}, kern["ntk"])
    r_kern = pearson(ka, kb)

    verdict, verdict_text = _verdict(r, len(a), mismatch, scale, gap)
    findings = [verdict_text]
    if gap is not None:
        nn = f"{g_nn[0]:.4f}" if g_nn[0] is not None else "n/a"
        findings.append(
            f"NNGP–NTK gap: mean |err_NNGP − err_NTK| = {gap:.4f} (max {gap_max:.4f}) over {gap_n} "
            f"(dataset, width, parametrization, depth) points; for scale, mean |err_net − err_NTK| = {nn}."
        )
    findings.append(
        f"Per-layer changes, pooled over {len(a)} layer additions: r(Δ_net, Δ_NTK) = {_fmt(r, '+.2f')}, same sign in "
        f"{same_sign}/{len(a)}, mean |Δ_net − Δ_NTK| = {mismatch:.4f} against mean |Δ_NTK| = {scale:.4f}; "
        f"for comparison r(Δ_NNGP, Δ_NTK) = {_fmt(r_kern, '+.2f')} over {len(ka)}."
    )
    for key, rk in sorted(per.items()):
        dn, dk = deltas(net[key]), deltas(kern["ntk"][key[:3]])
        total_n = sum(dn.values())
        total_k = sum(dk.values())
        findings.append(
            f"{key[0]}, {_setting_name(key)}: from depth {min(net[key])} to {max(net[key])} the net's error changes "
            f"by {total_n:+.3f}, NTK regression's by {total_k:+.3f}; r(Δ_net, Δ_NTK) = {_fmt(rk, '+.2f')}."
        )
    if g_e[0] is not None:
        findings.append(
            f"eNTK at init vs infinite NTK: mean |err_eNTK − err_NTK| = {g_e[0]:.4f} (max {g_e[1]:.4f}); "
            f"linearized net at t=∞ vs trained net: mean |err_lin − err_net| = {_fmt(g_l[0], '.4f')}."
        )
    if n_diverged:
        findings.append(
            f"{n_diverged} run(s) diverged: their nets are left out; their kernel errors are kept."
        )
    losses = [float(v) for row in done if isinstance(v := row.metrics.get("train_loss_net"), int | float)]
    if losses:
        median_loss = float(np.median(losses))
        text = (
            f"Trained nets end with a median training loss of {median_loss:.3g} (max {max(losses):.3g}); kernel "
            "regression at t = ∞ interpolates its training set."
        )
        if median_loss > UNDERTRAINED_LOSS:
            text += (
                f" Above {UNDERTRAINED_LOSS:g} the nets are far from converged, so part of the mismatch between the "
                "net's and the NTK's per-layer changes reflects optimization rather than the kernel: read the "
                "verdict with that in mind (more steps in the full config)."
            )
        findings.append(text)

    return StudySection(
        **base,
        verdict=verdict,
        findings=tuple(findings),
        figures=(png,),
        tables=(_depth_table(net, kern),),
        settings=_settings(done, n_failed, n_diverged),
    )
