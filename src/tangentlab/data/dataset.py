"""The :class:`Dataset` record returned by :func:`tangentlab.data.load`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch

TaskKind = Literal["classification", "regression"]


@dataclass(frozen=True)
class Dataset:
    """A train/test (and optional validation) split, ready for a network or a kernel.

    Attributes:
        name: the name given to :func:`load` (e.g. ``"digits"``, ``"npz:/path/file.npz"``).
        task: ``"classification"`` or ``"regression"``.
        x_train: (n_train, *input_shape) inputs.
        y_train: targets: (n, C) one-hot or centred one-hot, (n, 1) ±1 scalars, (n,) int64 indices
            (``target="index"``), or (n, k) regression targets.
        x_test: (n_test, *input_shape) inputs.
        y_test: test targets, as ``y_train``.
        labels_train: (n_train,) int64 class indices in ``0..n_classes-1`` (None for regression).
        labels_test: (n_test,) int64 class indices (None for regression).
        classes: original class ids for indices ``0..n_classes-1`` (None for regression).
        n_classes: number of classes (None for regression).
        input_shape: per-example input shape, ``(d,)`` for ``shape="flat"``, ``(C, H, W)``/``(C, L)`` for
            ``shape="image"``.
        x_val: validation inputs drawn from the training pool (None when ``n_val=0``).
        y_val: validation targets.
        labels_val: validation class indices.
        meta: how it was made: seed, sizes, standardisation statistics, target encoding, source options.
    """

    name: str
    task: TaskKind
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    labels_train: torch.Tensor | None
    labels_test: torch.Tensor | None
    classes: tuple[int, ...] | None
    n_classes: int | None
    input_shape: tuple[int, ...]
    x_val: torch.Tensor | None = None
    y_val: torch.Tensor | None = None
    labels_val: torch.Tensor | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n_train(self) -> int:
        """Number of training examples."""
        return self.x_train.shape[0]

    @property
    def n_test(self) -> int:
        """Number of test examples."""
        return self.x_test.shape[0]

    @property
    def output_dim(self) -> int:
        """Width of the target rows (1 for index targets)."""
        return 1 if self.y_train.ndim == 1 else self.y_train.shape[1]
