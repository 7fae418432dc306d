"""Writing CIFAR archives in the python version's exact format (pickled dict batches, uint8 (N, 3072) rows of R, G,
B planes): miniature ones for the loader's tests, full-size synthetic ones for loading the paper configs."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

FOLDERS = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}


def _dump(path: Path, batch: dict) -> None:
    path.write_bytes(pickle.dumps(batch, protocol=2))


def write_cifar(
    root: Path, kind: str, n_train: int = 50000, n_test: int = 10000, seed: int | None = None
) -> Path:
    """An extracted CIFAR folder under ``root`` with the standard file names: zero images (``seed=None``) or random
    ones, labels cycling over every class (so every class occurs). Returns the folder."""
    rng = np.random.default_rng(seed)

    def data(n: int) -> np.ndarray:
        if seed is None:
            return np.zeros((n, 3072), dtype=np.uint8)
        return rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)

    folder = root / FOLDERS[kind]
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "cifar10":
        per = n_train // 5
        for b in range(5):
            labels = [(b * per + i) % 10 for i in range(per)]
            _dump(folder / f"data_batch_{b + 1}", {b"data": data(per), b"labels": labels})
        _dump(folder / "test_batch", {b"data": data(n_test), b"labels": [i % 10 for i in range(n_test)]})
        _dump(folder / "batches.meta", {b"label_names": [f"c{i}".encode() for i in range(10)]})
        return folder
    for name, n in (("train", n_train), ("test", n_test)):
        fine = [i % 100 for i in range(n)]
        _dump(
            folder / name, {b"data": data(n), b"fine_labels": fine, b"coarse_labels": [c // 5 for c in fine]}
        )
    _dump(folder / "meta", {b"fine_label_names": [], b"coarse_label_names": []})
    return folder
