"""The continual-learning protocol of the ``continual`` study: task sequences, task heads and forgetting.

Two benchmarks built from one classification :class:`tangentlab.data.Dataset`:

* ``"split"`` (task-incremental, multi-head; Zenke et al. 2017, as Mirzadeh et al. 2022 use split CIFAR-100): the
  classes are partitioned in order into tasks of ``classes_per_task`` classes — (0, 1), (2, 3), ... The net has one
  output per class; task ``t`` is trained and scored on its own outputs only (a masked head, :class:`TaskHead`),
  so the targets of task ``t`` are the one-hot rows restricted to its columns.
* ``"permuted"`` (domain-incremental, one shared head; Goodfellow et al. 2013, as Mirzadeh et al. 2022 use permuted
  and rotated MNIST): every task is the whole dataset with its input features reordered by a fixed permutation.
  Task 0 keeps the original order; tasks 1.. use ``torch.randperm`` drawn from a generator seeded by ``seed``.
* ``"rotated"`` (domain-incremental, one shared head; Mirzadeh et al. 2020/2022's rotated MNIST): task ``t`` is the
  whole dataset with every square single-channel image rotated by ``t * ROTATION_STEP`` degrees (22.5°) about its
  centre (bilinear; what leaves the frame is filled with the standardised value of a black pixel).

Metrics of an accuracy matrix ``A`` (``A[i, j]``: test accuracy on task ``j`` after training tasks ``0..i``;
Chaudhry et al. 2018, arXiv 1801.10112; Lopez-Paz & Ranzato 2017):

* average forgetting ``F = mean_{j < T-1} (max_{j <= i < T-1} A[i, j] - A[T-1, j])`` — the drop from the best
  accuracy task ``j`` had after it was learned to its accuracy at the end (rows ``i < j`` are accuracies before
  task ``j`` was learned and are left out);
* final average accuracy ``mean_j A[T-1, j]`` and learning accuracy ``mean_j A[j, j]``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, cast

import numpy as np
import torch
from torch import nn

from tangentlab.data import Dataset

TaskType = Literal["split", "permuted", "rotated"]
TASK_TYPES: tuple[str, ...] = ("split", "permuted", "rotated")
#: Degrees between consecutive rotated tasks (0, 22.5, 45, ...; Mirzadeh et al. 2020's rotated MNIST as we read it).
ROTATION_STEP = 22.5


@dataclass(frozen=True)
class Task:
    """One task of a sequence.

    Attributes:
        x_train: (n, d) training inputs.
        y_train: (n, k) one-hot targets over the task's ``columns``.
        x_test: (m, d) test inputs.
        y_test: (m, k) one-hot test targets over ``columns``.
        columns: the network outputs this task trains and is scored on (its head).
        classes: the dataset's class indices the task contains.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    columns: tuple[int, ...]
    classes: tuple[int, ...]


class TaskHead(nn.Module):
    """``model(x)[:, columns]``: a task's masked head on a shared network (its parameters are ``model``'s)."""

    def __init__(self, model: nn.Module, columns: Sequence[int]) -> None:
        super().__init__()
        self.model = model
        device = next(model.parameters()).device  # the index lives where the outputs are
        self.register_buffer("columns", torch.as_tensor(list(columns), dtype=torch.long, device=device))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return cast(torch.Tensor, self.model(x).index_select(1, self.columns))


def split_classes(n_classes: int, classes_per_task: int) -> list[tuple[int, ...]]:
    """Classes ``0..n_classes-1`` partitioned in order into tasks of ``classes_per_task`` classes.

    Raises:
        ValueError: if ``classes_per_task`` is below 2 or does not divide ``n_classes``.
    """
    if classes_per_task < 2 or n_classes % classes_per_task:
        raise ValueError(
            f"classes_per_task: expected a divisor >= 2 of the {n_classes} classes, got {classes_per_task}"
        )
    return [tuple(range(s, s + classes_per_task)) for s in range(0, n_classes, classes_per_task)]


def input_permutations(dim: int, n_tasks: int, seed: int) -> list[torch.Tensor]:
    """``n_tasks`` permutations of ``0..dim-1``: the identity, then ``torch.randperm`` with a generator seeded by
    ``seed`` (the same arguments always give the same permutations)."""
    if n_tasks < 1:
        raise ValueError(f"n_tasks: expected an integer >= 1, got {n_tasks}")
    gen = torch.Generator().manual_seed(int(seed))
    return [torch.arange(dim)] + [torch.randperm(dim, generator=gen) for _ in range(n_tasks - 1)]


def build_tasks(
    ds: Dataset, task_type: str, *, n_tasks: int | None, classes_per_task: int, seed: int
) -> list[Task]:
    """The task sequence of ``task_type`` (``"split"``, ``"permuted"`` or ``"rotated"``) from a classification dataset.

    Args:
        ds: a classification dataset with flat inputs (n, d) and class labels.
        task_type: ``"split"`` or ``"permuted"`` (see the module docstring).
        n_tasks: number of tasks; for ``"split"`` None means all ``n_classes / classes_per_task`` of them and a
            number keeps the first ones; required for ``"permuted"`` and ``"rotated"``.
        classes_per_task: classes per split task.
        seed: seed of the permutations.

    Raises:
        ValueError: for a regression dataset, non-flat inputs, an unknown task type or a bad task count.
    """
    if ds.labels_train is None or ds.labels_test is None or ds.n_classes is None:
        raise ValueError(f"data: the continual study needs a classification dataset, got task {ds.task!r}")
    if ds.x_train.ndim != 2:
        raise ValueError(f"data.shape: expected 'flat' inputs (n, d), got shape {tuple(ds.x_train.shape)}")
    eye = torch.eye(ds.n_classes, dtype=ds.x_train.dtype)
    if task_type == "split":
        groups = split_classes(ds.n_classes, classes_per_task)
        if n_tasks is not None:
            if not 2 <= n_tasks <= len(groups):
                raise ValueError(f"n_tasks: expected 2..{len(groups)} split tasks, got {n_tasks}")
            groups = groups[:n_tasks]
        tasks = []
        for cls in groups:
            tr, te = (torch.isin(lab, torch.tensor(cls)) for lab in (ds.labels_train, ds.labels_test))
            tasks.append(
                Task(
                    ds.x_train[tr],
                    eye[ds.labels_train[tr]][:, list(cls)],
                    ds.x_test[te],
                    eye[ds.labels_test[te]][:, list(cls)],
                    cls,
                    cls,
                )
            )
        return tasks
    if task_type == "permuted":
        if n_tasks is None or n_tasks < 2:
            raise ValueError(f"n_tasks: expected an integer >= 2 for permuted tasks, got {n_tasks}")
        every = tuple(range(ds.n_classes))
        y_tr, y_te = eye[ds.labels_train], eye[ds.labels_test]
        return [
            Task(ds.x_train[:, perm], y_tr, ds.x_test[:, perm], y_te, every, every)
            for perm in input_permutations(ds.x_train.shape[1], n_tasks, seed)
        ]
    if task_type == "rotated":
        if n_tasks is None or n_tasks < 2:
            raise ValueError(f"n_tasks: expected an integer >= 2 for rotated tasks, got {n_tasks}")
        every = tuple(range(ds.n_classes))
        y_tr, y_te = eye[ds.labels_train], eye[ds.labels_test]
        black = _black(ds)
        return [
            Task(
                rotate_images(ds.x_train, t * ROTATION_STEP, black),
                y_tr,
                rotate_images(ds.x_test, t * ROTATION_STEP, black),
                y_te,
                every,
                every,
            )
            for t in range(n_tasks)
        ]
    raise ValueError(f"params.task_type: expected one of {TASK_TYPES}, got {task_type!r}")


def _black(ds: Dataset) -> torch.Tensor:
    """The standardised value of a zero pixel, per feature: ``(0 - mean) / std`` (flat, as the inputs are)."""
    mean, std = ds.meta.get("mean"), ds.meta.get("std")
    if mean is None or std is None:
        return torch.zeros(ds.x_train.shape[1], dtype=ds.x_train.dtype)
    return torch.as_tensor(-np.asarray(mean) / np.asarray(std), dtype=ds.x_train.dtype)


def rotate_images(x: torch.Tensor, degrees: float, background: torch.Tensor | float = 0.0) -> torch.Tensor:
    """Flat square single-channel images (n, s*s) rotated by ``degrees`` (counter-clockwise) about their centre,
    bilinear, with ``background`` (a value, or one per pixel) where the rotated frame has no source pixel.

    Raises:
        ValueError: inputs whose feature count is not a square.
    """
    n, d = x.shape
    side = math.isqrt(d)
    if side * side != d:
        raise ValueError(f"data: rotated tasks need square single-channel images, got {d} features per input")
    if degrees == 0:
        return x.clone()
    bg = torch.as_tensor(background, dtype=x.dtype).expand(d).reshape(1, 1, side, side)
    a = math.radians(degrees)
    theta = torch.tensor([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0]], dtype=x.dtype)
    grid = torch.nn.functional.affine_grid(theta.expand(n, 2, 3), [n, 1, side, side], align_corners=False)
    img = x.reshape(n, 1, side, side) - bg
    out = torch.nn.functional.grid_sample(
        img, grid, mode="bilinear", padding_mode="zeros", align_corners=False
    )
    return (out + bg).reshape(n, d)


def _check_matrix(acc: np.ndarray) -> np.ndarray:
    a = np.asarray(acc, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] != a.shape[1] or a.shape[0] < 1:
        raise ValueError(f"acc: expected a square (T, T) accuracy matrix, got shape {a.shape}")
    return a


def average_forgetting(acc: np.ndarray) -> float:
    """``mean_{j < T-1} (max_{j <= i < T-1} A[i, j] - A[T-1, j])`` (Chaudhry et al. 2018); 0 for one task."""
    a = _check_matrix(acc)
    t = a.shape[0]
    if t == 1:
        return 0.0
    return float(np.mean([a[j : t - 1, j].max() - a[t - 1, j] for j in range(t - 1)]))


def final_accuracy(acc: np.ndarray) -> float:
    """``mean_j A[T-1, j]``: average accuracy over all tasks after the last one."""
    return float(_check_matrix(acc)[-1].mean())


def learning_accuracy(acc: np.ndarray) -> float:
    """``mean_j A[j, j]``: average accuracy on each task right after it was learned."""
    return float(np.diag(_check_matrix(acc)).mean())
