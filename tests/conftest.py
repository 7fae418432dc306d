import os
from pathlib import Path

import pytest
import torch

from tests.data.cifar_archive import write_cifar

# library code never selects a backend (the CLI does, in its own process): tests draw off-screen
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(autouse=True)
def _deterministic_torch():
    torch.manual_seed(0)
    yield


@pytest.fixture
def cifar_data(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``$TANGENTLAB_DATA`` for the packaged paper configs: CIFAR-10 and CIFAR-100 folders in the archive's format
    with as many (blank) images as the configs draw (10,000 / 2,000), written once per session."""
    root = tmp_path_factory.getbasetemp() / "cifar"
    if not root.is_dir():
        root.mkdir()
        for kind in ("cifar10", "cifar100"):
            write_cifar(root, kind, n_train=10000, n_test=2000)
    monkeypatch.setenv("TANGENTLAB_DATA", str(root))
    return root
