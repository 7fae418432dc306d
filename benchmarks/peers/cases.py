"""The rows of the tangentlab vs neural-tangents table (issue 18), shared by both sides: plain data, no imports.

Every row is one architecture, one kind of kernel and one ``n``; both libraries build the same network from it
(NTK parametrization, ReLU, weight std 1, no bias) and get the same inputs (``inputs``: standard normal from
numpy's ``default_rng(0)``, float64, then cast). ``quick`` rows are small versions of the same cases, to check that
the bench works (``run.py --quick``), not to compare speed.
"""

from __future__ import annotations

CASES: dict[str, dict[str, object]] = {
    "conv_flatten": {
        "label": "infinite NNGP+NTK, conv 3×3 SAME ×3 (256 ch) on 1×28×28, Flatten, float64",
        "kind": "infinite",
        "layers": [("conv", 256, 3, 1)] * 3,
        "readout": "flatten",
        "shape": (1, 28, 28),
        "n": (16, 64, 256),
        "quick": {"shape": (1, 12, 12), "n": (4,)},
    },
    "conv_gap": {
        "label": "infinite NNGP+NTK, conv 3×3 SAME ×3 (256 ch) on 1×28×28, GlobalAvgPool, float64",
        "kind": "infinite",
        "layers": [("conv", 256, 3, 1)] * 3,
        "readout": "gap",
        "shape": (1, 28, 28),
        "n": (32,),
        "quick": {"shape": (1, 6, 6), "n": (4,)},
    },
    "conv1d_gap": {
        "label": "infinite NNGP+NTK, conv1d k5 SAME ×3 (256 ch) on 1×40, GlobalAvgPool, float64",
        "kind": "infinite",
        "layers": [("conv", 256, 5, 1)] * 3,
        "readout": "gap",
        "shape": (1, 40),
        "n": (200,),
        "quick": {"shape": (1, 10), "n": (8,)},
    },
    "mlp_infinite": {
        "label": "infinite NNGP+NTK, ReLU MLP depth 5 (512), d = 784, float64",
        "kind": "infinite",
        "layers": [("dense", 512)] * 5,
        "readout": "none",
        "shape": (784,),
        "n": (4000,),
        "quick": {"shape": (32,), "n": (50,)},
    },
    "entk_mlp": {
        "label": "eNTK MLP 784-1024-1024-10, float32, trace",
        "kind": "empirical",
        "layers": [("dense", 1024), ("dense", 1024)],
        "readout": "none",
        "outputs": 10,
        "shape": (784,),
        "n": (32, 256, 1024),
        "quick": {"n": (8,)},
    },
    "entk_cnn": {
        "label": "eNTK CNN 28×28 (32-64-64 ch 3×3, strides 1-2-2) + Flatten + Dense 10, float32, trace",
        "kind": "empirical",
        "layers": [("conv", 32, 3, 1), ("conv", 64, 3, 2), ("conv", 64, 3, 2)],
        "readout": "flatten",
        "outputs": 10,
        "shape": (1, 28, 28),
        "n": (32, 128),
        "quick": {"n": (4,)},
    },
}


def case(name: str, quick: bool) -> dict[str, object]:
    """The case ``name`` with its quick overrides applied when ``quick``."""
    spec = dict(CASES[name])
    overrides = spec.pop("quick")
    if quick:
        assert isinstance(overrides, dict)
        spec.update(overrides)
    return spec


def rows(quick: bool) -> list[tuple[str, int]]:
    """Every (case, n) of the table, in order."""
    out = []
    for name in CASES:
        sizes = case(name, quick)["n"]
        assert isinstance(sizes, tuple)
        out.extend((name, n) for n in sizes)
    return out
