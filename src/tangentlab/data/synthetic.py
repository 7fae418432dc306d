"""Teacher-student data: Gaussian inputs labelled by a fixed random one-hidden-layer network.

``x ~ N(0, I_d)``; teacher ``g(x) = a tanh(W x / sqrt(d) + b) / sqrt(h)`` with ``W, a, b ~ N(0, 1)`` drawn from
``teacher_seed`` (so the task is the same for every data ``seed``), standardised per output to zero mean and unit
variance over ``x ~ N(0, I)`` (estimated on 8,192 reference inputs from ``teacher_seed``): ``f* = (g - m) / s``. Regression targets are
``f*(x) + noise * eps`` with ``eps ~ N(0, 1)``; classification labels are ``argmax_c f*_c(x)`` over ``n_classes``
teacher outputs.
"""

from __future__ import annotations

from typing import Literal, cast

import numpy as np

from tangentlab.data.sources import Pool

Task = Literal["regression", "classification"]
TASKS = ("regression", "classification")


def teacher_outputs(x: np.ndarray, out_dim: int, width: int, teacher_seed: int) -> np.ndarray:
    """The standardised teacher network's outputs (N, out_dim) on inputs (N, d)."""
    rng = np.random.default_rng(teacher_seed)
    d = x.shape[1]
    w = rng.standard_normal((width, d))
    b = rng.standard_normal(width)
    a = rng.standard_normal((out_dim, width))
    reference = rng.standard_normal((8192, d))

    def g(z: np.ndarray) -> np.ndarray:
        return cast(np.ndarray, np.tanh(z @ w.T / np.sqrt(d) + b) @ a.T / np.sqrt(width))

    ref = g(reference)
    return cast(np.ndarray, (g(x) - ref.mean(0)) / ref.std(0))


def synthetic(
    n_total: int,
    seed: int,
    *,
    task: Task = "regression",
    input_dim: int = 8,
    output_dim: int = 1,
    n_classes: int = 2,
    teacher_width: int = 64,
    noise: float = 0.0,
    teacher_seed: int = 0,
) -> Pool:
    """``n_total`` teacher-student examples (all in the train pool; :func:`load` splits them)."""
    if task not in TASKS:
        raise ValueError(f"task: expected one of {TASKS}, got {task!r}")
    for name, value in (
        ("input_dim", input_dim),
        ("output_dim", output_dim),
        ("teacher_width", teacher_width),
    ):
        if int(value) != value or value < 1:
            raise ValueError(f"{name}: expected an integer >= 1, got {value!r}")
    if task == "classification" and (int(n_classes) != n_classes or n_classes < 2):
        raise ValueError(f"n_classes: expected an integer >= 2, got {n_classes!r}")
    if not noise >= 0:
        raise ValueError(f"noise: expected a number >= 0, got {noise!r}")
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n_total, input_dim))
    out = teacher_outputs(
        x, n_classes if task == "classification" else output_dim, teacher_width, teacher_seed
    )
    if task == "classification":
        t: np.ndarray = out.argmax(axis=1).astype(np.int64)
    else:
        t = out + noise * rng.standard_normal(out.shape)
    return Pool(x, t, None, None, (1, input_dim))
