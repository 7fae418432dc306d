"""Reading ``scaling_arms`` rows: each run's variant and arm, and its per-point metrics as (x, value, seed) arrays."""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from tangentlab.studies._base import ResultRow
from tangentlab.studies.scaling_arms import ScalingArmsParams, Variant, resolved
from tangentlab.studies.scaling_arms.numerics import finite, snapshot_steps

Row = ResultRow[ScalingArmsParams]
Group = tuple[str, str]  # (dataset, variant)


def variant(row: Row) -> Variant:
    return row.params.variants[row.params.variant]


def group_rows(rows: list[Row]) -> dict[Group, list[Row]]:
    """Rows by (dataset, variant name)."""
    groups: dict[Group, list[Row]] = defaultdict(list)
    for r in rows:
        groups[(r.config.data.name, r.params.variant)].append(r)
    return dict(groups)


def xs_of(row: Row) -> tuple[str, tuple[int, ...]]:
    """The tag letter and the x values of the row's arm: ``("n", n_values)`` or ``("w", widths)``."""
    if variant(row).arm == "data":
        return "n", row.params.n_values
    return "w", row.params.widths


def series(rows: list[Row], *prefixes: str) -> tuple[np.ndarray, ...]:
    """``(x, values_1, ..., values_k, seed)`` over every point of ``rows`` where all ``prefixes`` (e.g.
    ``"mse_net"``, ``"kdist"``) have a finite positive value."""
    out: list[tuple[float, ...]] = []
    for r in rows:
        letter, xs = xs_of(r)
        for x in xs:
            vals = [r.metrics.get(f"{p}_{letter}{x}") for p in prefixes]
            if all(finite(v) and float(v) > 0 for v in vals):  # type: ignore[arg-type]
                out.append((float(x), *(float(v) for v in vals), float(r.config.seed)))  # type: ignore[arg-type]
    arr = np.array(out, dtype=float).reshape(-1, len(prefixes) + 2)
    return tuple(arr[:, i] for i in range(arr.shape[1]))


def steps_of(row: Row) -> tuple[int, ...]:
    """The snapshot steps of a row (() when it took none)."""
    if row.metrics.get("snapshot_n") is None:
        return ()
    _, p, tc = resolved(row.params, row.config.train)
    return snapshot_steps(tc.steps, p.n_snapshots)


def trajectory(row: Row, prefix: str) -> tuple[np.ndarray, np.ndarray]:
    """``(steps, values)`` of the snapshot metric ``prefix`` (e.g. ``"mse_entkt"``), finite values only."""
    pts = [(s, float(v)) for s in steps_of(row) if finite(v := row.metrics.get(f"{prefix}_s{s}"))]  # type: ignore[arg-type]
    arr = np.array(pts, dtype=float).reshape(-1, 2)
    return arr[:, 0], arr[:, 1]


__all__ = ["Group", "Row", "group_rows", "series", "steps_of", "trajectory", "variant", "xs_of"]
