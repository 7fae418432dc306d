import os

import pytest
import torch

# library code never selects a backend (the CLI does, in its own process): tests draw off-screen
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(autouse=True)
def _deterministic_torch():
    torch.manual_seed(0)
    yield
