"""Memory budgets of kernel computations on their device: the CPU's fixed 2 GiB, the GPU's free memory on CUDA."""

from __future__ import annotations

import pytest
import torch

import tangentlab.arch._base as arch_base
import tangentlab.kernels.empirical as empirical_module
from tangentlab import arch, empirical_ntk
from tangentlab.kernels import DEFAULT_MEMORY_BUDGET, memory_budget, ntk_cost

GiB = 2**30


def fake_gpu(free: int, total: int = 80 * GiB):
    calls: list[torch.device] = []

    def mem_get_info(device: torch.device) -> tuple[int, int]:
        calls.append(device)
        return free, total

    return mem_get_info, calls


def test_cpu_budget_is_fixed_and_cuda_budget_follows_free_memory():
    assert memory_budget("cpu") == DEFAULT_MEMORY_BUDGET == memory_budget("cpu", reserve=10 * GiB)
    info, calls = fake_gpu(free=70 * GiB)
    assert memory_budget("cuda:1", reserve=8 * GiB, mem_get_info=info) == 31 * GiB  # half of 70 - 8
    assert calls == [torch.device("cuda:1")]
    busy, _ = fake_gpu(free=GiB // 8)
    assert memory_budget("cuda", reserve=GiB // 8 - 1, mem_get_info=busy) == 64 * 2**20  # at least 64 MiB
    full, _ = fake_gpu(free=4 * GiB, total=16 * GiB)
    with pytest.raises(MemoryError, match=r"needs 8\.00 GiB but cuda has 4\.00 GiB free of 16\.00 GiB"):
        memory_budget("cuda", reserve=8 * GiB, mem_get_info=full)


def test_empirical_ntk_sizes_its_blocks_from_the_device_budget(monkeypatch):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(20, 64), torch.nn.ReLU(), torch.nn.Linear(64, 3)).double()
    x = torch.randn(120, 20, dtype=torch.float64)
    roomy = ntk_cost(model, x)["jacobian"].batch_size
    seen: list[tuple[str, int]] = []

    def tight(device: torch.device, *, reserve: int = 0) -> int:
        seen.append((torch.device(device).type, reserve))
        return 2**21  # 2 MiB: what a nearly full GPU would give

    monkeypatch.setattr(empirical_module, "default_budget", tight)
    small = ntk_cost(model, x)["jacobian"].batch_size
    assert seen == [("cpu", 120 * 120 * 8)]  # the (n1, n2) float64 result is set aside
    assert 1 < small < roomy
    blocked = empirical_ntk(model, x, method="jacobian")
    monkeypatch.undo()
    assert torch.allclose(blocked, empirical_ntk(model, x, method="jacobian"), rtol=1e-12, atol=1e-12)


def test_infinite_kernel_blocks_follow_the_budget_and_give_the_same_kernel(monkeypatch):
    net = arch.serial(arch.Dense(64), arch.ReLU(), arch.Dense(1))
    x = torch.randn(40, 5, dtype=torch.float64)
    whole = net.kernel(x)
    seen: list[int] = []

    def tight(device: torch.device, *, reserve: int = 0) -> int:
        seen.append(reserve)
        return 4096  # room for blocks of a few examples only (40 examples: several blocks per row)

    monkeypatch.setattr(arch_base, "default_budget", tight)
    blocked = net.kernel(x)
    assert seen == [16 * 40 * 40]  # NNGP and NTK, float64, set aside
    assert torch.allclose(blocked.ntk, whole.ntk, rtol=1e-13) and torch.allclose(
        blocked.nngp, whole.nngp, rtol=1e-13
    )
