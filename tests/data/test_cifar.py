"""CIFAR-10/100 from the python archive: a miniature archive in the exact format (pickled dict batches, uint8
(N, 3072) rows of R, G, B planes), as a folder and as a .tar.gz; pixels, layout, split and labels."""

from __future__ import annotations

import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from tangentlab.data import input_files, load, pool_sizes
from tangentlab.runner import ConfigError, load_sweep
from tangentlab.studies import get_study

PER_BATCH, N_TEST = 3, 4


def _images(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, 3, 32, 32) uint8 images, each unique (image k has k in its first red pixel)."""
    imgs = rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)
    imgs[:, 0, 0, 0] = np.arange(n, dtype=np.uint8)
    return imgs


def _row(img: np.ndarray) -> np.ndarray:
    """The format's row: the red plane row by row, then green, then blue (built plane by plane)."""
    return np.concatenate([img[0].ravel(), img[1].ravel(), img[2].ravel()])


def _dump(path: Path, batch: dict) -> None:
    path.write_bytes(pickle.dumps(batch, protocol=2))


def _batch(imgs: np.ndarray, **labels: list[int]) -> dict:
    out = {b"batch_label": b"mini", b"data": np.stack([_row(i) for i in imgs]), b"filenames": []}
    out.update({k.encode(): v for k, v in labels.items()})
    return out


def make_cifar10(root: Path, seed: int = 0) -> tuple[Path, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``root/cifar-10-batches-py`` with 5 train batches of 3 images and a test batch of 4."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    train = _images(rng, 5 * PER_BATCH)
    y_train = rng.integers(0, 10, 5 * PER_BATCH)
    y_train[-1] = 9  # every class id up to 9 occurs (load counts classes from the largest label)
    for b in range(5):
        sl = slice(b * PER_BATCH, (b + 1) * PER_BATCH)
        _dump(folder / f"data_batch_{b + 1}", _batch(train[sl], labels=[int(v) for v in y_train[sl]]))
    test = _images(rng, N_TEST)
    test[:, 0, 0, 1] = 255  # the test images differ from the training ones
    y_test = rng.integers(0, 10, N_TEST)
    _dump(folder / "test_batch", _batch(test, labels=[int(v) for v in y_test]))
    _dump(folder / "batches.meta", {b"label_names": [f"c{i}".encode() for i in range(10)]})
    return folder, train, y_train, test, y_test


def make_cifar100(root: Path) -> tuple[Path, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    train, test = _images(rng, 8), _images(rng, 5)
    fine, coarse = rng.integers(0, 100, 8), rng.integers(0, 20, 8)
    _dump(folder / "train", _batch(train, fine_labels=fine.tolist(), coarse_labels=coarse.tolist()))
    _dump(folder / "test", _batch(test, fine_labels=[99] * 5, coarse_labels=[19] * 5))
    _dump(folder / "meta", {b"fine_label_names": [], b"coarse_label_names": []})
    return folder, train, fine, coarse


def tarred(folder: Path, out: Path) -> Path:
    with tarfile.open(out, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    return out


def _match(loaded: np.ndarray, raw: np.ndarray) -> np.ndarray:
    """Index into ``raw`` of each loaded image (images are unique by their first red pixel and content)."""
    idx = []
    for img in loaded:
        hits = [k for k, r in enumerate(raw) if np.array_equal(img, r / 255.0)]
        assert len(hits) == 1
        idx.append(hits[0])
    return np.asarray(idx)


def test_cifar10_folder_and_archive_give_the_images_and_labels(tmp_path):
    folder, train, y_train, test, y_test = make_cifar10(tmp_path / "data")
    archive = tarred(folder, tmp_path / "cifar-10-python.tar.gz")
    for path in (folder, folder.parent, archive):
        d = load(f"cifar10:{path}", shape="image", standardize="none", seed=3)
        assert d.x_train.shape == (15, 3, 32, 32) and d.x_test.shape == (N_TEST, 3, 32, 32)
        assert d.n_classes == 10 and d.input_shape == (3, 32, 32) and d.x_train.dtype.is_floating_point
        got = _match(d.x_train.numpy(), train)
        assert sorted(got) == list(range(15))  # the whole training pool, from the five data batches
        assert np.array_equal(d.labels_train.numpy(), y_train[got])
        got_t = _match(d.x_test.numpy(), test)
        assert sorted(got_t) == list(range(N_TEST)) and np.array_equal(d.labels_test.numpy(), y_test[got_t])
        k = int(got[0])  # pixel (channel, row, column) of the file is pixel [c, h, w] of the tensor
        assert d.x_train[0, 2, 31, 0].item() == pytest.approx(train[k, 2, 31, 0] / 255.0)
        assert d.x_train[0, 1, 0, 31].item() == pytest.approx(train[k, 1, 0, 31] / 255.0)
        flat = load(f"cifar10:{path}", standardize="none", seed=3)
        assert flat.x_train.shape == (15, 3072)
        assert np.array_equal(flat.x_train[0].numpy() * 255.0, _row(train[k]).astype(np.float64))
    assert pool_sizes(f"cifar10:{archive}") == (15, N_TEST)


def test_cifar100_fine_and_coarse_labels(tmp_path):
    folder, train, fine, coarse = make_cifar100(tmp_path)
    archive = tarred(folder, tmp_path / "cifar-100-python.tar.gz")
    for path in (folder, archive):
        d = load(f"cifar100:{path}", shape="image", standardize="none", n_train=8)
        got = _match(d.x_train.numpy(), train)
        assert d.n_classes == 100 and np.array_equal(d.labels_train.numpy(), fine[got])
        c = load(f"cifar100:{path}", shape="image", standardize="none", n_train=8, labels="coarse")
        assert c.n_classes == 20 and np.array_equal(
            c.labels_train.numpy(), coarse[_match(c.x_train.numpy(), train)]
        )
        assert c.labels_test.tolist() == [19] * 5
    with pytest.raises(TypeError, match=r"dataset 'cifar10' does not accept option\(s\) \['labels'\]"):
        load(f"cifar10:{make_cifar10(tmp_path / 'c10')[0]}", labels="coarse")


def test_a_wrong_path_names_the_expected_files(tmp_path):
    with pytest.raises(
        ValueError,
        match=r"expected the file cifar-10-python\.tar\.gz or its extracted folder "
        r"cifar-10-batches-py holding data_batch_1, .*test_batch, batches\.meta",
    ):
        load(f"cifar10:{tmp_path / 'nowhere'}")
    folder = make_cifar10(tmp_path / "d")[0]
    (folder / "batches.meta").unlink()
    with pytest.raises(ValueError, match=r"batches\.meta"):
        load(f"cifar10:{folder}")
    with pytest.raises(ValueError, match="cifar-100-python holding train, test, meta"):
        load(f"cifar100:{folder}")
    config = tmp_path / "sweep.yaml"
    config.write_text(yaml.safe_dump({"study": "lazy", "data": {"name": f"cifar10:{folder}", "n_train": 4}}))
    with pytest.raises(ConfigError, match=r"field 'data.name': cifar10:.* is not the CIFAR python archive"):
        load_sweep(config, get_study)


def test_batches_that_ask_for_code_are_refused(tmp_path):
    folder = make_cifar10(tmp_path)[0]
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": Path("x"), b"labels": []}, protocol=2))
    with pytest.raises(ValueError, match=r"is not a CIFAR batch .*refusing to load pathlib"):
        load(f"cifar10:{folder}")


def test_run_identity_covers_the_batch_files(tmp_path):
    folder = make_cifar10(tmp_path / "data")[0]
    archive = tarred(folder, tmp_path / "cifar-10-python.tar.gz")
    assert input_files(f"cifar10:{archive}") == [archive]
    assert sorted(f.name for f in input_files(f"cifar10:{folder}")) == sorted(
        [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta"]
    )

    def ids(name: str) -> set[str]:
        config = tmp_path / "sweep.yaml"
        data = {"name": name, "n_train": 8, "n_test": 4}
        config.write_text(yaml.safe_dump({"study": "lazy", "data": data, "params": {"probe_size": 4}}))
        return {run.run_id for run in load_sweep(config, get_study)[2]}

    before, before_tar = ids(f"cifar10:{folder}"), ids(f"cifar10:{archive}")
    assert before != before_tar
    batch = pickle.loads((folder / "data_batch_3").read_bytes())
    batch[b"labels"][0] = (batch[b"labels"][0] + 1) % 10
    _dump(folder / "data_batch_3", batch)
    assert ids(f"cifar10:{folder}") != before
