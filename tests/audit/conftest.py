import pytest
import torch


@pytest.fixture(scope="package", autouse=True)
def _one_thread():
    """One torch thread: the audits here are tiny, and a shared CPU makes thread barriers slow."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
