"""The ``equivalence`` study's report: test error against depth per method, per-layer changes, their correlation,
the NNGP–NTK gap, findings and verdict against Liu et al. 2025 (arXiv 2501.10929).

Definitions (test MSE is the primary metric, the test error ``1 - accuracy`` is reported beside it; both averaged
over seeds at each depth):

* A *series* is one method's MSE (error) against depth for one dataset and setting: the trained net per
  (width, parametrization, optimizer); kernel methods (``ntk``, ``entk``, ``nngp``, ``lin``) per
  (width, parametrization) — they do not depend on the optimizer.
* The change a layer brings, ``Δ_d = mse(d+1) - mse(d)``, is taken between consecutive depths of the grid.
* Net–NTK agreement: the Pearson correlation ``r(Δ_net, Δ_NTK)`` pooled over every (dataset, setting, d), the
  fraction of layer additions where the two changes have the same sign, and the mismatch
  ``M = mean |Δ_net - Δ_NTK|``.
* Noise floor: a net disagrees with itself across init seeds. Per layer addition, the per-seed differences
  ``Δ_net,s - Δ_NTK`` give a mean and a standard error (:func:`tangentlab.metrics.seed_spread`); the floor ``F`` is
  the mean of those standard errors, printed beside ``M``, with the net's own seed-to-seed std of ``Δ_net``.
  Error rates move in steps of 1/n_test and scatter across seeds by more than a layer's effect, which is why MSE
  is primary.
* NNGP–NTK gap: ``mean |err_NNGP - err_NTK|`` (test error, Liu et al.'s quantity) over every (dataset, width,
  parametrization, depth); the MSE gap is printed beside it.

Verdict. Claim 1 (a layer changes the net and NTK regression differently) needs at least ``MIN_SEEDS`` seeds (else
"no noise floor": inconclusive). When ``M <= 2 F`` the net's changes differ from the NTK's by no more than its own
seed-to-seed noise: they *match* if that noise is below the NTK's own per-layer effect (``2 F < mean |Δ_NTK|``), else
they are *indistinguishable* (inconclusive: the noise swamps the effect). When ``M > 2 F`` the changes *differ* if
``r < R_MATCH`` or ``M > mean |Δ_NTK|``, else they *match*. A positive control runs the same test on eNTK regression
at init against the infinite NTK, which must match at large width. Claim 2 (NNGP errs almost exactly as NTK regression)
holds when the error gap is at most ``GAP_TOL``. Differ and claim 2: supported; match and not claim 2: not
supported; one of them: mixed; too few depths (fewer than ``MIN_PAIRS`` pooled layer additions), no noise floor or
indistinguishable: inconclusive.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Literal

import numpy as np

from tangentlab import metrics
from tangentlab.report.section import StudySection, Table, Verdict
from tangentlab.studies._base import ResultRow, Study
from tangentlab.studies._sections import header as section_header
from tangentlab.studies.equivalence import EquivalenceParams
from tangentlab.studies.equivalence.figures import plot_error_vs_depth, setting_name

R_MATCH = 0.5
GAP_TOL = 0.02
MIN_PAIRS = 3
MIN_SEEDS = 3
PRIMARY = "mse"  # the metric claim 1 is judged on; "err" is reported beside it
KERNELS: tuple[str, ...] = ("ntk", "entk", "nngp", "lin")
NAMES: dict[str, str] = {
    "net": "trained net",
    "ntk": "NTK regression (infinite)",
    "entk": "eNTK regression (init)",
    "nngp": "NNGP regression",
    "lin": "linearized net at t=∞",
}

KernelKey = tuple[str, int, str]  # dataset, width, parametrization
NetKey = tuple[str, int, str, str]  # dataset, width, parametrization, optimizer
Curve = dict[int, float]


UNDERTRAINED_LOSS = 0.01  # median final MSE training loss above which the report flags the nets


def _depth(row: ResultRow[EquivalenceParams]) -> int:
    return int(row.params.depth)


def _kernel_key(row: ResultRow[EquivalenceParams]) -> KernelKey:
    p = row.params
    return row.config.data.name, int(p.width), str(p.parametrization)


def _net_key(row: ResultRow[EquivalenceParams]) -> NetKey:
    return (*_kernel_key(row), row.config.train.optimizer)


def _value(row: ResultRow[EquivalenceParams], metric: str) -> float | None:
    v = row.metrics.get(metric)
    return float(v) if isinstance(v, int | float) and math.isfinite(v) else None


def _curves(
    rows: list[ResultRow[EquivalenceParams]], key_fn: Any, method: str, metric: str = "err"
) -> dict[Any, Curve]:
    """Seed- (and, for kernels, optimizer-) averaged test ``metric`` (err or mse) of ``method`` per key and depth."""
    acc: dict[Any, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        v = _value(r, f"test_{metric}_{method}")
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
            (key[0], setting_name(key), NAMES[method], *(_fmt(d.get(p)) for p in pairs)),
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


def _noise_floor(
    rows: list[ResultRow[EquivalenceParams]], ntk: dict[KernelKey, Curve], metric: str, method: str = "net"
) -> tuple[list[metrics.SeedSpread], list[float]]:
    """Per layer addition of every ``method`` series: the seed spread of ``Δ_method,s − Δ_NTK`` (paired by seed),
    and the method's own seed-to-seed std of ``Δ_method`` where there are two or more seeds."""
    key_fn = _net_key if method == "net" else _kernel_key
    per_seed: dict[tuple[Any, ...], dict[int, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    for r in rows:
        v = _value(r, f"test_{metric}_{method}")
        if v is not None:
            per_seed[key_fn(r)][_depth(r)][r.config.seed] = v
    spreads: list[metrics.SeedSpread] = []
    own: list[float] = []
    for key, by_depth in sorted(per_seed.items()):
        ref = ntk.get(key[:3])
        if ref is None:
            continue
        for a, b in itertools.pairwise(sorted(by_depth)):
            if a not in ref or b not in ref:
                continue
            seeds = sorted(set(by_depth[a]) & set(by_depth[b]))
            if not seeds:
                continue
            d_net = [by_depth[b][s] - by_depth[a][s] for s in seeds]
            spreads.append(metrics.seed_spread([d - (ref[b] - ref[a]) for d in d_net]))
            if len(seeds) >= 2:
                own.append(metrics.seed_spread(d_net).std)
    return spreads, own


def _claim1(
    r: float | None, mismatch: float, scale: float, floor: float, n_seeds: int
) -> Literal["differ", "match", "indistinguishable", "no noise floor"]:
    """Claim 1's outcome on the primary metric (see the module docstring)."""
    if n_seeds < MIN_SEEDS or not math.isfinite(floor):
        return "no noise floor"
    if (
        mismatch <= 2 * floor
    ):  # within the noise: a match if the noise could have shown a layer-sized mismatch
        return "match" if 2 * floor < scale else "indistinguishable"
    return "differ" if (r is not None and r < R_MATCH) or mismatch > scale else "match"


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
    claim1: str, r: float | None, n_pairs: int, mismatch: float, scale: float, floor: float, gap: float | None
) -> tuple[Verdict, str]:
    if gap is None or n_pairs < MIN_PAIRS or r is None:
        return (
            "inconclusive",
            f"Verdict: inconclusive — {n_pairs} net/NTK layer additions with finite test MSE (need {MIN_PAIRS}) or "
            "no NNGP/NTK pairs: run at least three depths.",
        )
    close = gap <= GAP_TOL
    numbers = (
        f"r = {r:+.2f}, threshold {R_MATCH}; M = mean |Δ_net − Δ_NTK| = {mismatch:.4g} against the seed-to-seed "
        f"noise floor F = {floor:.4g} (mean standard error) and mean |Δ_NTK| = {scale:.4g}"
    )
    c1 = {
        "differ": f"per-layer changes in test MSE of the net and of NTK regression do not match ({numbers})",
        "match": f"per-layer changes in test MSE of the net and of NTK regression match ({numbers})",
        "indistinguishable": "the net's per-layer changes in test MSE differ from NTK regression's by no more than "
        f"the net's own seed-to-seed noise, which is as large as the layers' effect (M ≤ 2F ≥ mean |Δ_NTK|): "
        f"indistinguishable, no verdict ({numbers})",
        "no noise floor": f"fewer than {MIN_SEEDS} seeds: no seed-to-seed noise floor to judge the net's per-layer "
        f"changes against, no verdict ({numbers})",
    }[claim1]
    c2 = (
        f"NNGP regression {'errs' if close else 'does not err'} almost as NTK regression does "
        f"(mean |err_NNGP − err_NTK| = {gap:.4f}, threshold {GAP_TOL})"
    )
    verdict: Verdict
    if claim1 in ("indistinguishable", "no noise floor"):
        verdict = "inconclusive"
    elif claim1 == "differ":
        verdict = "supported" if close else "mixed"
    else:
        verdict = "mixed" if close else "not supported"
    return verdict, f"Verdict: {verdict} — {c1}; {c2}."


def _settings(rows: list[ResultRow[EquivalenceParams]], n_failed: int, n_diverged: int) -> tuple[str, ...]:
    c = rows[0].config
    p = rows[0].params
    solvers = Counter(str(r.metrics.get(f"solver_{m}")) for r in rows for m in KERNELS)
    conds = [v for r in rows for m in ("ntk", "nngp", "entk") if (v := _value(r, f"cond_{m}")) is not None]
    frac = p.lr_fraction
    gd_rule = f"η = {frac}·n/λ_max(eNTK_0)" if frac is not None else f"η = {c.train.learning_rate}"
    ridges = sorted({float(r.params.ridge) for r in rows})
    return (
        f"Data: {sorted({r.config.data.name for r in rows})}, n_train={c.data.n_train}, n_test={c.data.n_test}, "
        f"target {c.data.target or 'onehot'} (MSE), standardize {c.data.standardize}.",
        f"Model: depth × [Dense(width, σ_w={p.sigma_w:.4g}, σ_b={p.sigma_b}) → "
        "ReLU] → Dense readout; float64.",
        f"Grid: depths {sorted({_depth(r) for r in rows})}; widths {sorted({int(r.params.width) for r in rows})}; "
        f"parametrizations {sorted({str(r.params.parametrization) for r in rows})}; optimizers "
        f"{sorted({r.config.train.optimizer for r in rows})}; seeds {sorted({r.config.seed for r in rows})}.",
        f"Training: full batch, {c.train.steps} steps; GD {gd_rule}; Adam lr = {c.train.learning_rate}.",
        f"Kernel solves: ridge {ridges} × mean training-kernel diagonal; solvers used {dict(solvers)}; largest "
        f"condition number {max(conds) if conds else math.nan:.3g}.",
        f"Runs: {len(rows)} completed, {n_diverged} diverged (net left out), {n_failed} failed.",
    )


def section(study: Study, rows: list[ResultRow[EquivalenceParams]], figures_dir: Path) -> StudySection:
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
    plot_error_vs_depth(datasets, net, kern, png)

    net_mse = _curves(done, _net_key, "net", PRIMARY)
    ntk_mse = _curves(done, _kernel_key, "ntk", PRIMARY)
    a, b, per = _agreement(net_mse, ntk_mse)
    r = pearson(a, b)
    mismatch = float(np.mean(np.abs(np.subtract(a, b)))) if a else math.nan
    scale = float(np.mean(np.abs(b))) if b else math.nan
    same_sign = sum(np.sign(x) == np.sign(y) for x, y in zip(a, b, strict=True))
    spreads, own = _noise_floor(done, ntk_mse, PRIMARY)
    floor = float(np.mean([s.stderr for s in spreads])) if spreads else math.nan
    n_seeds = min((s.n for s in spreads), default=0)
    calls = Counter(metrics.distinguish(s, min_seeds=MIN_SEEDS) for s in spreads)
    claim1 = _claim1(r, mismatch, scale, floor, n_seeds)
    ea, eb, _ = _agreement(net, kern["ntk"])
    # Positive control: eNTK regression at init must track the infinite NTK (the same kernel, at finite width).
    entk_mse = _curves(done, _kernel_key, "entk", PRIMARY)
    ca, cb, _ = _agreement({(*k, "-"): c for k, c in entk_mse.items()}, ntk_mse)
    c_spreads, _ = _noise_floor(done, ntk_mse, PRIMARY, method="entk")
    c_m = float(np.mean(np.abs(np.subtract(ca, cb)))) if ca else math.nan
    c_floor = float(np.mean([s.stderr for s in c_spreads])) if c_spreads else math.nan
    c_seeds = min((s.n for s in c_spreads), default=0)
    control = _claim1(pearson(ca, cb), c_m, float(np.mean(np.abs(cb))) if cb else math.nan, c_floor, c_seeds)
    err_spreads, err_own = _noise_floor(done, kern["ntk"], "err")
    gap, gap_max, gap_n = _gap(kern["nngp"], kern["ntk"])
    g_nn = _gap(kern["ntk"], net, key_map=lambda k: k[:3])
    g_e = _gap(kern["entk"], kern["ntk"])
    g_l = _gap(kern["lin"], net, key_map=lambda k: k[:3])
    ka, kb, _ = _agreement({(*k, "-"): c for k, c in kern["nngp"].items()}, kern["ntk"])
    r_kern = pearson(ka, kb)

    verdict, verdict_text = _verdict(claim1, r, len(a), mismatch, scale, floor, gap)
    findings = [verdict_text]
    own_text = f"{float(np.mean(own)):.4g}" if own else "n/a (one seed)"
    findings.append(
        f"Noise floor (test MSE, {n_seeds} seed(s) per setting and depth"
        + (f" — fewer than {MIN_SEEDS}" if n_seeds < MIN_SEEDS else "")
        + f"): the net's own seed-to-seed std of Δ_net is {own_text}; the mismatch M = {mismatch:.4g} against the "
        f"floor F = {floor:.4g}; per layer addition, {calls['differ']} of {len(spreads)} differ from the NTK's "
        f"change by more than 2 standard errors, {calls['indistinguishable']} are indistinguishable"
        + (f", {calls['no noise floor']} have no noise floor" if calls["no noise floor"] else "")
        + "."
    )
    if ca:
        findings.append(
            f"Positive control: the same test on eNTK regression at init against the infinite NTK (the kernel the "
            f"theory says the eNTK tends to) says the changes {'match' if control == 'match' else control} "
            f"(r = {_fmt(pearson(ca, cb), '+.2f')}, M = {c_m:.4g}, F = {c_floor:.4g}, over {len(ca)} layer additions)"
            + (
                "."
                if control == "match"
                else ": the test cannot say 'match' here, so read a 'do not match' for the net with caution."
            )
        )
    if ea:
        err_m = float(np.mean(np.abs(np.subtract(ea, eb))))
        err_floor = float(np.mean([s.stderr for s in err_spreads])) if err_spreads else math.nan
        err_own_text = f"{float(np.mean(err_own)):.4g}" if err_own else "n/a"
        findings.append(
            f"Beside it, on test error rates: r(Δ_net, Δ_NTK) = {_fmt(pearson(ea, eb), '+.2f')}, mean |Δ_net − "
            f"Δ_NTK| = {err_m:.4f} against a noise floor of {err_floor:.4f} (the net's own seed-to-seed std of "
            f"Δ_net: {err_own_text})."
        )
    if gap is not None:
        nn = f"{g_nn[0]:.4f}" if g_nn[0] is not None else "n/a"
        mse_gap = _gap(_curves(done, _kernel_key, "nngp", PRIMARY), ntk_mse)[0]
        findings.append(
            f"NNGP–NTK gap: mean |err_NNGP − err_NTK| = {gap:.4f} (max {gap_max:.4f}) over {gap_n} "
            f"(dataset, width, parametrization, depth) points; for scale, mean |err_net − err_NTK| = {nn}; in test "
            f"MSE, mean |mse_NNGP − mse_NTK| = {_fmt(mse_gap, '.4g')}."
        )
    findings.append(
        f"Per-layer changes, pooled over {len(a)} layer additions: r(Δ_net, Δ_NTK) = {_fmt(r, '+.2f')}, same sign in "
        f"{same_sign}/{len(a)}, mean |Δ_net − Δ_NTK| = {mismatch:.4f} against mean |Δ_NTK| = {scale:.4f}; "
        f"for comparison r(Δ_NNGP, Δ_NTK) = {_fmt(r_kern, '+.2f')} over {len(ka)}."
    )
    for key, rk in sorted(per.items()):
        dn, dk = deltas(net_mse[key]), deltas(ntk_mse[key[:3]])
        total_n = sum(dn.values())
        total_k = sum(dk.values())
        findings.append(
            f"{key[0]}, {setting_name(key)}: from depth {min(net_mse[key])} to {max(net_mse[key])} the net's test "
            f"MSE changes by {total_n:+.4f}, NTK regression's by {total_k:+.4f}; r(Δ_net, Δ_NTK) = {_fmt(rk, '+.2f')}."
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
        numbers={
            "primary_metric": "test_mse",
            "claim1": claim1,
            "r_mse": r,
            "mismatch_mse": mismatch,
            "noise_floor_mse": floor,
            "net_seed_std_delta_mse": float(np.mean(own)) if own else None,
            "mean_abs_delta_ntk_mse": scale,
            "layer_additions": len(a),
            "seeds": n_seeds,
            "calls": dict(calls),
            "r_err": pearson(ea, eb),
            "positive_control": {
                "claim1": control,
                "r": pearson(ca, cb),
                "mismatch": c_m,
                "noise_floor": c_floor,
            },
            "gap_nngp_ntk_err": gap,
            "thresholds": {"r_match": R_MATCH, "gap_tol": GAP_TOL, "min_seeds": MIN_SEEDS, "z": 2.0},
        },
        runs=tuple(r.run_id for r in done),
    )
