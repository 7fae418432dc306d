"""CIFAR-10 and CIFAR-100 from the python archive a user already has (Krizhevsky 2009). Nothing is downloaded.

``cifar10:PATH`` (``~`` and environment variables such as ``$TANGENTLAB_DATA`` are expanded) reads ``cifar-10-python.tar.gz`` (the "CIFAR-10 python version" from
https://www.cs.toronto.edu/~kriz/cifar.html) or its extracted folder ``cifar-10-batches-py`` (or a folder holding
it): ``data_batch_1`` ... ``data_batch_5`` (the 50,000 training images, in that order), ``test_batch`` (10,000) and
``batches.meta``; PATH may also be a folder holding the archive or the extracted folder (``cifar10:$TANGENTLAB_DATA``,
as the packaged paper configs write it). ``cifar100:PATH`` reads ``cifar-100-python.tar.gz`` or ``cifar-100-python``: ``train`` (50,000),
``test`` (10,000) and ``meta``, with ``fine_labels`` (100 classes, the default) or ``coarse_labels`` (20
superclasses; option ``labels: coarse``).

Each batch is a pickled dict (bytes keys): ``b"data"`` a uint8 array (N, 3072) whose row holds the red, green and
blue 32x32 planes one after the other, each row-major — so a row reshaped to (3, 32, 32) is the image in PyTorch's
channels-first layout — and the labels as a list of ints. Batches are unpickled by a restricted unpickler that
builds numpy arrays and nothing else (a file that asks for any other class is refused). Pixels are scaled to [0, 1]
when the rows are selected (the pool stays uint8: 180 MB for CIFAR-10, not 1.4 GB of float64).
"""

from __future__ import annotations

import functools
import io
import os
import pickle
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from tangentlab.data.sources import PixelRows, Pool

LABEL_KINDS = ("fine", "coarse")


@dataclass(frozen=True)
class Layout:
    """The files of one CIFAR archive: what the user downloads, its folder, and the members read."""

    archive: str
    folder: str
    train: tuple[str, ...]
    test: str
    meta: str
    n_classes: dict[str, int]


LAYOUTS: dict[str, Layout] = {
    "cifar10": Layout(
        "cifar-10-python.tar.gz",
        "cifar-10-batches-py",
        tuple(f"data_batch_{i}" for i in range(1, 6)),
        "test_batch",
        "batches.meta",
        {"fine": 10},
    ),
    "cifar100": Layout(
        "cifar-100-python.tar.gz", "cifar-100-python", ("train",), "test", "meta", {"fine": 100, "coarse": 20}
    ),
}


def resolve(path: str) -> Path:
    """``path`` with ``~`` and environment variables (``$TANGENTLAB_DATA``) expanded.

    Raises:
        ValueError: a variable in ``path`` that is not set.
    """
    expanded = os.path.expandvars(path)
    if "$" in expanded:
        raise ValueError(
            f"name: {path!r} uses an environment variable that is not set; e.g. export TANGENTLAB_DATA=/data/folder "
            "(the folder holding the archive)"
        )
    return Path(expanded).expanduser()


def _expected(kind: str, path: str) -> ValueError:
    lay = LAYOUTS[kind]
    files = ", ".join((*lay.train, lay.test, lay.meta))
    return ValueError(
        f"name: {kind}:{path} is not the CIFAR python archive: expected the file {lay.archive} or its extracted "
        f"folder {lay.folder} holding {files}"
    )


class _ArraysOnly(pickle.Unpickler):
    """Unpickles dicts, lists, bytes and numpy arrays; refuses every other global (no code runs from the file)."""

    ALLOWED: ClassVar[frozenset[tuple[str, str]]] = frozenset(
        {
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("_codecs", "encode"),
        }
    )

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a CIFAR batch")
        return super().find_class(module, name)


def _unpickle(raw: bytes, where: str) -> dict[bytes, Any]:
    try:
        out = _ArraysOnly(io.BytesIO(raw), encoding="bytes").load()
    except Exception as err:
        raise ValueError(f"name: {where} is not a CIFAR batch ({type(err).__name__}: {err})") from None
    if not isinstance(out, dict):
        raise ValueError(f"name: {where} is not a CIFAR batch (a pickled dict), got a {type(out).__name__}")
    return out


def files(kind: str, path: str) -> tuple[str, dict[str, Path | str]]:
    """Where the batches of ``kind:path`` are: ``("dir", {member: file})`` for an extracted folder, or
    ``("tar", {member: name inside the archive})`` for the ``.tar.gz``.

    Raises:
        ValueError: one line naming the expected files, when ``path`` holds neither.
    """
    lay = LAYOUTS[kind]
    members = (*lay.train, lay.test, lay.meta)
    p = resolve(path)
    if p.is_dir():
        for folder in (p, p / lay.folder):
            found = {m: folder / m for m in members}
            if all(f.is_file() for f in found.values()):
                return "dir", dict(found)
        if not (p / lay.archive).is_file():
            raise _expected(kind, path)
        p = p / lay.archive  # a folder holding the archive itself
    if p.is_file() and tarfile.is_tarfile(p):
        with tarfile.open(p, "r:*") as tar:
            names = {Path(n).name: n for n in tar.getnames()}
        if all(m in names for m in members):
            return "tar", {m: names[m] for m in members}
    raise _expected(kind, path)


def archive_path(kind: str, path: str) -> Path:
    """The ``.tar.gz`` that ``kind:path`` names: ``path`` itself, or the archive inside the folder ``path``."""
    p = resolve(path)
    return p / LAYOUTS[kind].archive if p.is_dir() else p


def input_files(kind: str, path: str) -> list[Path]:
    """The files a run of ``kind:path`` reads (the archive, or the folder's batch files), for its identity."""
    how, found = files(kind, path)
    return [archive_path(kind, path)] if how == "tar" else [Path(f) for f in found.values()]


@functools.lru_cache(maxsize=2)
def _batches(kind: str, path: str, stamp: tuple[int, ...]) -> dict[str, dict[bytes, Any]]:
    """Every batch of the archive, unpickled (cached per process by path and file sizes/mtimes)."""
    how, found = files(kind, path)
    out: dict[str, dict[bytes, Any]] = {}
    if how == "dir":
        for member, file in found.items():
            out[member] = _unpickle(Path(file).read_bytes(), str(file))
        return out
    with tarfile.open(archive_path(kind, path), "r:*") as tar:
        for member, name in found.items():
            handle = tar.extractfile(str(name))
            if handle is None:
                raise _expected(kind, path)
            out[member] = _unpickle(handle.read(), f"{path}:{name}")
    return out


def _stamp(kind: str, path: str) -> tuple[int, ...]:
    stats = [f.stat() for f in input_files(kind, path)]
    return tuple(v for st in stats for v in (st.st_size, st.st_mtime_ns, st.st_ino))


def _arrays(batch: dict[bytes, Any], key: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    data, labels = batch.get(b"data"), batch.get(key)
    if not isinstance(data, np.ndarray) or data.ndim != 2 or data.shape[1] != 3072 or data.dtype != np.uint8:
        got = getattr(data, "shape", type(data).__name__), getattr(data, "dtype", "")
        raise ValueError(f"name: {where}: expected b'data' a uint8 array (N, 3072), got {got[0]} {got[1]}")
    y = np.asarray(labels if labels is not None else [], dtype=np.int64).reshape(-1)
    if len(y) != len(data):
        raise ValueError(
            f"name: {where}: expected {len(data)} labels under {key!r}, got {len(y)}"
            + ("" if labels is not None else f" (keys: {sorted(batch)})")
        )
    return data, y


def cifar(kind: str, path: str, labels: str = "fine") -> Pool:
    """The CIFAR-10 or CIFAR-100 pool of ``path`` (see the module docstring): the standard 50,000 / 10,000 split,
    images (N, 3, 32, 32) with pixels in [0, 1], integer labels as given.

    Args:
        kind: ``"cifar10"`` or ``"cifar100"``.
        path: the ``.tar.gz`` archive or its extracted folder.
        labels: CIFAR-100's ``"fine"`` (100 classes) or ``"coarse"`` (20) labels; CIFAR-10 has only ``"fine"``.

    Raises:
        ValueError: a path that holds no CIFAR archive (naming the expected files), malformed batches, or labels
            out of range.
    """
    lay = LAYOUTS[kind]
    if labels not in lay.n_classes:
        raise ValueError(f"labels: {kind} has {', '.join(map(repr, lay.n_classes))} labels, got {labels!r}")
    batches = _batches(kind, path, _stamp(kind, path))
    key = b"labels" if kind == "cifar10" else f"{labels}_labels".encode()
    parts = [_arrays(batches[m], key, f"{kind}:{path} {m}") for m in (*lay.train, lay.test)]
    x_train = np.concatenate([d for d, _ in parts[:-1]])
    y_train = np.concatenate([y for _, y in parts[:-1]])
    x_test, y_test = parts[-1]
    n_classes = lay.n_classes[labels]
    for split, y in (("train", y_train), ("test", y_test)):
        if len(y) and (y.min() < 0 or y.max() >= n_classes):
            raise ValueError(
                f"name: {kind}:{path} {split} labels span {y.min()}..{y.max()}, expected 0..{n_classes - 1}"
            )
    shape = (3, 32, 32)
    return Pool(
        PixelRows(x_train.reshape(-1, *shape)), y_train, PixelRows(x_test.reshape(-1, *shape)), y_test, shape
    )


def sizes(kind: str, path: str) -> tuple[int, int]:
    """(train pool, test pool) of ``kind:path``, read from its batches."""
    pool = cifar(kind, path)
    return len(pool.t_train), len(pool.t_test if pool.t_test is not None else ())
