"""benchmarks/synthetic_cifar.py: the synthetic archive it writes (tiny here) loads through tangentlab.data.load as
CIFAR-10 / CIFAR-100, from the folder and from the .tar.gz, with the images and labels it wrote."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
from benchmarks.synthetic_cifar import main, write_cifar

from tangentlab.data import load, pool_sizes


def _rows(folder: Path, files: list[str], label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    """The written (N, 3072) uint8 rows and labels of ``files``, unpickled here independently of the loader."""
    batches = [pickle.loads((folder / f).read_bytes()) for f in files]
    return np.concatenate([b[b"data"] for b in batches]), np.concatenate([b[label_key] for b in batches])


def _index(loaded: np.ndarray, rows: np.ndarray) -> list[int]:
    """Index into ``rows`` of each loaded flat image (in [0, 1]); every loaded image must be exactly one row."""
    out = []
    for img in loaded:
        hits = [k for k, r in enumerate(rows) if np.array_equal(img * 255.0, r.astype(np.float64))]
        assert len(hits) == 1
        out.append(hits[0])
    return out


def test_cifar10_loads_from_folder_and_archive(tmp_path):
    folder = write_cifar(tmp_path, "cifar10", n_train=20, n_test=6, seed=1, archive=True)
    assert folder == tmp_path / "cifar-10-batches-py"
    rows, labels = _rows(folder, [f"data_batch_{b}" for b in range(1, 6)], b"labels")
    test_rows, test_labels = _rows(folder, ["test_batch"], b"labels")
    assert rows.shape == (20, 3072) and rows.dtype == np.uint8 and len(np.unique(rows, axis=0)) == 20
    assert sorted(labels.tolist()) == sorted(list(range(10)) * 2)  # every class, equally often
    for path in (folder, tmp_path / "cifar-10-python.tar.gz"):
        d = load(f"cifar10:{path}", standardize="none", seed=0)
        assert d.x_train.shape == (20, 3072) and d.x_test.shape == (6, 3072) and d.n_classes == 10
        got = _index(d.x_train.numpy(), rows)
        assert sorted(got) == list(range(20)) and np.array_equal(d.labels_train.numpy(), labels[got])
        got_t = _index(d.x_test.numpy(), test_rows)
        assert np.array_equal(d.labels_test.numpy(), test_labels[got_t])
        image = load(f"cifar10:{path}", shape="image", standardize="none", seed=0)
        assert image.x_train.shape == (20, 3, 32, 32)
        assert np.array_equal(image.x_train[0].numpy().reshape(-1), d.x_train[0].numpy())
    assert pool_sizes(f"cifar10:{tmp_path}") == (20, 6)


def test_cifar100_has_fine_and_coarse_labels(tmp_path):
    folder = write_cifar(tmp_path, "cifar100", n_train=200, n_test=100, seed=2)
    rows, fine = _rows(folder, ["train"], b"fine_labels")
    coarse = _rows(folder, ["train"], b"coarse_labels")[1]
    assert np.array_equal(coarse, fine // 5) and set(fine.tolist()) == set(range(100))
    d = load(f"cifar100:{tmp_path}", standardize="none", n_train=50, n_test=10, seed=0)
    assert d.n_classes == 100 and d.x_train.shape == (50, 3072)
    assert np.array_equal(d.labels_train.numpy(), fine[_index(d.x_train.numpy(), rows)])
    c = load(f"cifar100:{tmp_path}", standardize="none", n_train=50, labels="coarse", seed=0)
    assert c.n_classes == 20
    assert np.array_equal(c.labels_train.numpy(), coarse[_index(c.x_train.numpy(), rows)])


def test_blank_images_bad_arguments_and_the_command_line(tmp_path, capsys):
    blank = write_cifar(tmp_path / "blank", "cifar10", n_train=5, n_test=1, seed=None)
    assert not _rows(blank, ["test_batch"], b"labels")[0].any()
    with pytest.raises(ValueError, match="kind: expected one of"):
        write_cifar(tmp_path, "cifar1000")
    with pytest.raises(ValueError, match="splits it over 5 batches, got 12"):
        write_cifar(tmp_path, "cifar10", n_train=12)
    with pytest.raises(ValueError, match="expected positive sizes"):
        write_cifar(tmp_path, "cifar100", n_test=0)
    main([str(tmp_path / "cli"), "--n-train", "10", "--n-test", "2", "--archive"])
    assert "cifar10:" in capsys.readouterr().out
    assert pool_sizes(f"cifar100:{tmp_path / 'cli' / 'cifar-100-python.tar.gz'}") == (10, 2)
    assert pool_sizes(f"cifar10:{tmp_path / 'cli'}") == (10, 2)
