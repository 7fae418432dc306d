"""tangentlab.data.load: every dataset offline, shapes, label ranges, determinism, and clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tangentlab.data import Dataset, load


@pytest.mark.parametrize(
    ("name", "image_shape", "flat_dim"),
    [
        ("digits", (1, 8, 8), 64),
        ("mnist1d", (1, 40), 40),
        ("mnist5k", (1, 28, 28), 784),
        ("mnist", (1, 28, 28), 784),
    ],
)
def test_each_dataset_loads_offline_with_shapes_and_labels(
    name: str, image_shape: tuple, flat_dim: int
) -> None:
    d = load(name, n_train=60, n_test=30, n_val=10, seed=1)
    assert isinstance(d, Dataset) and d.task == "classification" and d.n_classes == 10
    assert (
        d.x_train.shape == (60, flat_dim)
        and d.x_test.shape == (30, flat_dim)
        and d.input_shape == (flat_dim,)
    )
    assert d.y_train.shape == (60, 10) and d.x_train.dtype == torch.float64
    assert d.x_val is not None and d.x_val.shape == (10, flat_dim)
    assert d.labels_train is not None and d.labels_test is not None
    for labels, y in ((d.labels_train, d.y_train), (d.labels_test, d.y_test)):
        assert labels.dtype == torch.int64 and int(labels.min()) >= 0 and int(labels.max()) <= 9
        torch.testing.assert_close(y.argmax(1), labels)
        torch.testing.assert_close(y.sum(1), torch.ones(len(y), dtype=torch.float64))
    img = load(name, n_train=60, n_test=30, n_val=10, seed=1, shape="image")
    assert img.x_train.shape == (60, *image_shape)
    torch.testing.assert_close(img.x_train.reshape(60, -1), d.x_train)
    again = load(name, n_train=60, n_test=30, n_val=10, seed=1)
    assert torch.equal(again.x_train, d.x_train) and torch.equal(again.y_test, d.y_test)
    other = load(name, n_train=60, n_test=30, n_val=10, seed=2)
    assert not torch.equal(other.x_train, d.x_train)


def test_standard_sizes_and_standardisation() -> None:
    d = load("mnist1d", standardize="feature")
    assert (d.n_train, d.n_test) == (4000, 1000)
    torch.testing.assert_close(d.x_train.mean(0), torch.zeros(40, dtype=torch.float64), atol=1e-10, rtol=0)
    torch.testing.assert_close(d.x_train.std(0, correction=0), torch.ones(40, dtype=torch.float64))
    g = load("digits", standardize="global")
    assert (g.n_train, g.n_test) == (1437, 360)
    assert abs(float(g.x_train.mean())) < 1e-10 and float(g.x_train.std(correction=0)) == pytest.approx(1.0)
    f = load("digits", standardize="feature", n_train=100, n_test=50)  # test data use the training statistics
    pool = load("digits", standardize="none", n_train=100, n_test=50)
    sd = np.where(pool.x_train.numpy().std(0) > 1e-12, pool.x_train.numpy().std(0), 1.0)
    np.testing.assert_allclose(
        f.x_test.numpy(), (pool.x_test.numpy() - pool.x_train.numpy().mean(0)) / sd, atol=1e-12
    )
    raw = load("digits", standardize="none", n_train=10, n_test=5)
    assert float(raw.x_train.min()) >= 0.0 and float(raw.x_train.max()) <= 1.0


def test_class_subsets_and_target_encodings() -> None:
    d = load("digits", classes=[7, 3], target="scalar", n_train=40, n_test=20)
    assert d.classes == (7, 3) and d.n_classes == 2 and d.y_train.shape == (40, 1)
    assert d.labels_train is not None and set(d.labels_train.tolist()) <= {0, 1}
    torch.testing.assert_close(d.y_train[:, 0], 2.0 * d.labels_train.double() - 1.0)
    c = load("digits", classes=[0, 1, 2], target="centered", n_train=30, n_test=10)
    torch.testing.assert_close(c.y_train.sum(1), torch.zeros(30, dtype=torch.float64), atol=1e-12, rtol=0)
    i = load("digits", target="index", n_train=30, n_test=10)
    assert i.y_train.dtype == torch.int64 and i.y_train.shape == (30,)
    with pytest.raises(ValueError, match=r"target: 'scalar' .* needs exactly 2 classes, got 10"):
        load("digits", target="scalar", n_train=10, n_test=5)


def test_synthetic_teacher_student() -> None:
    r = load("synthetic", n_train=50, n_test=20, input_dim=5, output_dim=2, noise=0.0, standardize="none")
    assert r.task == "regression" and r.labels_train is None and r.n_classes is None
    assert r.x_train.shape == (50, 5) and r.y_train.shape == (50, 2)
    r2 = load(
        "synthetic", n_train=50, n_test=20, input_dim=5, output_dim=2, noise=0.0, standardize="none", seed=3
    )
    from tangentlab.data.synthetic import teacher_outputs  # same teacher for every data seed

    for ds in (r, r2):
        ref = teacher_outputs(ds.x_train.numpy(), 2, 64, 0)
        np.testing.assert_allclose(ds.y_train.numpy(), ref, rtol=1e-12)
    c = load(
        "synthetic", n_train=400, n_test=20, task="classification", n_classes=3, shape="image", input_dim=6
    )
    assert c.x_train.shape == (400, 1, 6) and c.n_classes == 3 and c.labels_train is not None
    counts = torch.bincount(c.labels_train, minlength=3)
    assert int(counts.min()) > 60  # the standardised teacher gives roughly balanced classes


def test_npz_user_file(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    path = tmp_path / "data.npz"
    np.savez(
        path,
        x_train=rng.normal(size=(30, 3, 4, 4)),
        y_train=rng.integers(0, 4, 30),
        x_test=rng.normal(size=(12, 3, 4, 4)),
        y_test=rng.integers(0, 4, 12),
    )
    d = load(f"npz:{path}", shape="image")
    assert d.x_train.shape == (30, 3, 4, 4) and d.n_test == 12 and d.n_classes == 4
    reg = tmp_path / "reg.npz"
    np.savez(
        reg,
        x_train=rng.normal(size=(10, 2)),
        y_train=rng.normal(size=10),
        x_test=rng.normal(size=(4, 2)),
        y_test=rng.normal(size=4),
    )
    r = load(f"npz:{reg}", n_train=6)
    assert r.task == "regression" and r.y_train.shape == (6, 1)
    bad = tmp_path / "bad.npz"
    np.savez(bad, x_train=np.zeros((3, 2)), y_train=np.zeros(3, dtype=int), x_test=np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"lacks keys \['y_test'\]"):
        load(f"npz:{bad}")
    bad2 = tmp_path / "bad2.npz"
    np.savez(
        bad2,
        x_train=np.zeros((3, 2)),
        y_train=np.zeros(4, dtype=int),
        x_test=np.zeros((2, 2)),
        y_test=np.zeros(2, dtype=int),
    )
    with pytest.raises(ValueError, match=r"'y_train' expected shape \(3,\)"):
        load(f"npz:{bad2}")
    nan = tmp_path / "nan.npz"
    np.savez(
        nan,
        x_train=np.zeros((3, 2)),
        y_train=np.array([0.0, np.nan, 1.0]),
        x_test=np.zeros((2, 2)),
        y_test=np.zeros(2),
    )
    with pytest.raises(ValueError, match="npz key 'y_train' holds 1 NaN/inf values"):
        load(f"npz:{nan}")
    empty = tmp_path / "empty.npz"
    np.savez(
        empty, x_train=np.zeros((0, 2)), y_train=np.zeros(0), x_test=np.zeros((2, 2)), y_test=np.zeros(2)
    )
    with pytest.raises(ValueError, match="npz key 'x_train' is empty"):
        load(f"npz:{empty}")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load(f"npz:{tmp_path / 'nope.npz'}")


@pytest.mark.parametrize(
    ("name", "kwargs", "err", "match"),
    [
        (
            "cifar10",
            {},
            ValueError,
            r"name: expected 'cifar10:PATH' with a path after the colon, got 'cifar10'",
        ),
        ("digits", {"shape": "grid"}, ValueError, r"shape: expected one of \('flat', 'image'\), got 'grid'"),
        ("digits", {"standardize": "minmax"}, ValueError, "standardize: expected one of"),
        ("digits", {"target": "soft"}, ValueError, "target: expected one of"),
        ("digits", {"n_train": 0}, ValueError, "n_train: expected an integer >= 1, got 0"),
        ("digits", {"n_train": 5000}, ValueError, "exceeds the 1797 examples of 'digits'"),
        ("mnist", {"n_test": 20000}, ValueError, "n_test: 20000 exceeds the 10000 test examples"),
        (
            "digits",
            {"input_dim": 3},
            TypeError,
            r"dataset 'digits' does not accept option\(s\) \['input_dim'\]",
        ),
        ("digits", {"classes": [1, 11]}, ValueError, r"classes: ids \[11\] do not occur"),
        ("synthetic", {"n_train": 5}, ValueError, "n_train, n_test: required for dataset 'synthetic'"),
        (
            "synthetic",
            {"n_train": 5, "n_test": 5, "classes": [0, 1]},
            ValueError,
            "classes: dataset 'synthetic' is a regression task",
        ),
        ("synthetic", {"n_train": 5, "n_test": 5, "task": "ranking"}, ValueError, "task: expected one of"),
        ("npz:", {}, ValueError, "expected 'npz:PATH'"),
    ],
)
def test_bad_arguments_raise_clear_errors(name: str, kwargs: dict, err: type, match: str) -> None:
    with pytest.raises(err, match=match):
        load(name, **kwargs)


def test_mnist1d_leaves_global_random_state_alone() -> None:
    np.random.seed(123)
    expected = np.random.rand()
    np.random.seed(123)
    load("mnist1d", n_train=10, n_test=10, generator_seed=7)
    assert np.random.rand() == expected
