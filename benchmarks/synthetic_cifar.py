"""Write a CIFAR-sized synthetic archive in the exact format of the CIFAR "python version", for timing the paper
configs where no real archive is at hand (no internet; tangentlab never downloads).

The files are what ``cifar10:PATH`` / ``cifar100:PATH`` (:mod:`tangentlab.data.cifar`) read, with the standard
names and layout: pickled dicts with bytes keys, ``b"data"`` a uint8 (N, 3072) array whose row holds the red,
green and blue 32x32 planes one after the other, and the labels as lists of ints.

* ``cifar10``: ``cifar-10-batches-py/`` with ``data_batch_1`` ... ``data_batch_5`` (``n_train / 5`` images each),
  ``test_batch`` and ``batches.meta`` (``label_names``).
* ``cifar100``: ``cifar-100-python/`` with ``train``, ``test`` (``fine_labels`` 0..99 and ``coarse_labels``
  0..19, fine class ``c`` in superclass ``c // 5``) and ``meta`` (``fine_label_names``, ``coarse_label_names``).

Pixels are uniform random bytes from a seeded generator (``seed=None``: all zero), labels cycle over the classes so
every class occurs equally often. With ``archive=True`` the folder is also packed as ``cifar-10-python.tar.gz`` /
``cifar-100-python.tar.gz`` next to it, as the download comes. The images carry no signal: they are for timings
(the cost of a run depends on the sizes, not the pixels), never for accuracies.

Usage (the full sizes, 50,000 + 10,000 images; about 180 MB per archive)::

    python benchmarks/synthetic_cifar.py /tmp/cifar            # both kinds
    export TANGENTLAB_DATA=/tmp/cifar
    tangentlab run paper/evolution_cifar10 --out /tmp/runs/evolution --workers 1
"""

from __future__ import annotations

import argparse
import pickle
import tarfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

FOLDERS: dict[str, str] = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}
ARCHIVES: dict[str, str] = {"cifar10": "cifar-10-python.tar.gz", "cifar100": "cifar-100-python.tar.gz"}
N_CLASSES: dict[str, int] = {"cifar10": 10, "cifar100": 100}
TRAIN_BATCHES = 5  # CIFAR-10's data_batch_1 ... data_batch_5


def _dump(path: Path, batch: Mapping[bytes, object]) -> None:
    path.write_bytes(pickle.dumps(batch, protocol=2))


def _pixels(rng: np.random.Generator | None, n: int) -> np.ndarray:
    if rng is None:
        return np.zeros((n, 3072), dtype=np.uint8)
    return rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)


def write_cifar(
    root: Path | str,
    kind: str,
    *,
    n_train: int = 50000,
    n_test: int = 10000,
    seed: int | None = 0,
    archive: bool = False,
) -> Path:
    """Write the extracted folder of a synthetic ``kind`` archive (``"cifar10"`` or ``"cifar100"``) under ``root``.

    Args:
        root: the folder to write into (created if missing); ``$TANGENTLAB_DATA`` points at it.
        kind: ``"cifar10"`` or ``"cifar100"``.
        n_train: training images (CIFAR-10: a multiple of 5, split over the five batches).
        n_test: test images.
        seed: seed of the random pixels; None writes all-zero images.
        archive: also pack the folder as the ``.tar.gz`` the download comes as.

    Returns:
        The extracted folder (``cifar-10-batches-py`` or ``cifar-100-python``).

    Raises:
        ValueError: an unknown kind, a non-positive size, or a CIFAR-10 ``n_train`` not divisible by 5.
    """
    if kind not in FOLDERS:
        raise ValueError(f"kind: expected one of {sorted(FOLDERS)}, got {kind!r}")
    if n_train < 1 or n_test < 1:
        raise ValueError(f"n_train, n_test: expected positive sizes, got {n_train}, {n_test}")
    if kind == "cifar10" and n_train % TRAIN_BATCHES:
        raise ValueError(f"n_train: CIFAR-10 splits it over {TRAIN_BATCHES} batches, got {n_train}")
    rng = None if seed is None else np.random.default_rng(seed)
    folder = Path(root) / FOLDERS[kind]
    folder.mkdir(parents=True, exist_ok=True)
    classes = N_CLASSES[kind]
    if kind == "cifar10":
        per = n_train // TRAIN_BATCHES
        for b in range(TRAIN_BATCHES):
            labels = [(b * per + i) % classes for i in range(per)]
            _dump(folder / f"data_batch_{b + 1}", {b"data": _pixels(rng, per), b"labels": labels})
        test = [i % classes for i in range(n_test)]
        _dump(folder / "test_batch", {b"data": _pixels(rng, n_test), b"labels": test})
        _dump(folder / "batches.meta", {b"label_names": [f"class{c}".encode() for c in range(classes)]})
    else:
        for name, n in (("train", n_train), ("test", n_test)):
            fine = [i % classes for i in range(n)]
            coarse = [c // 5 for c in fine]
            _dump(folder / name, {b"data": _pixels(rng, n), b"fine_labels": fine, b"coarse_labels": coarse})
        meta = {
            b"fine_label_names": [f"fine{c}".encode() for c in range(classes)],
            b"coarse_label_names": [f"coarse{c}".encode() for c in range(classes // 5)],
        }
        _dump(folder / "meta", meta)
    if archive:
        with tarfile.open(Path(root) / ARCHIVES[kind], "w:gz") as tar:
            tar.add(folder, arcname=folder.name)
    return folder


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python benchmarks/synthetic_cifar.py ROOT [--kind cifar10] [--n-train N] ...``."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("root", type=Path, help="folder to write into (point $TANGENTLAB_DATA at it)")
    ap.add_argument("--kind", choices=[*FOLDERS, "both"], default="both")
    ap.add_argument("--n-train", type=int, default=50000)
    ap.add_argument("--n-test", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--archive", action="store_true", help="also write the .tar.gz next to the folder")
    args = ap.parse_args(argv)
    kinds = list(FOLDERS) if args.kind == "both" else [args.kind]
    for kind in kinds:
        folder = write_cifar(
            args.root, kind, n_train=args.n_train, n_test=args.n_test, seed=args.seed, archive=args.archive
        )
        print(f"{kind}: {folder}")


if __name__ == "__main__":
    main()
