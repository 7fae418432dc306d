"""The memory budget of a kernel computation on its device: 2 GiB of RAM on a CPU, the GPU's free memory on CUDA."""

from __future__ import annotations

from collections.abc import Callable

import torch

from tangentlab.kernels._cost import DEFAULT_MEMORY_BUDGET

#: Fraction of a GPU's free memory (after the result is set aside) that one computation's blocks may use.
GPU_FRACTION = 0.5
#: The smallest budget ever returned (blocks of one example still need some room).
MIN_BUDGET = 64 * 1024**2

MemGetInfo = Callable[[torch.device], tuple[int, int]]


def memory_budget(
    device: torch.device | str, *, reserve: int = 0, mem_get_info: MemGetInfo | None = None
) -> int:
    """Bytes the blocks of a kernel computation on ``device`` may hold at once besides its result.

    CPU (and MPS): :data:`tangentlab.kernels.DEFAULT_MEMORY_BUDGET` (2 GiB), whatever the machine has. CUDA:
    ``GPU_FRACTION`` (1/2) of the device's free memory (``torch.cuda.mem_get_info``) once ``reserve`` bytes (the
    result, allocated next) are set aside, and at least 64 MiB; so the same call sizes its blocks to an 80 GB GPU and
    to a busy 16 GB one.

    Args:
        device: where the computation runs.
        reserve: bytes the caller allocates besides the blocks (the (n1, n2) result).
        mem_get_info: ``device -> (free, total)`` bytes; None is ``torch.cuda.mem_get_info`` (tests pass a fake).

    Raises:
        MemoryError: on CUDA, when the result alone does not fit in the free memory (one line with both sizes).
    """
    where = torch.device(device)
    if where.type != "cuda":
        return DEFAULT_MEMORY_BUDGET
    query = mem_get_info if mem_get_info is not None else torch.cuda.mem_get_info
    free, total = query(where)
    if reserve >= free:
        raise MemoryError(
            f"the kernel's result needs {reserve / 2**30:.2f} GiB but {where} has {free / 2**30:.2f} GiB free "
            f"of {total / 2**30:.2f} GiB; compute it in row blocks (x1 slices) or on a larger device"
        )
    return max(MIN_BUDGET, int(GPU_FRACTION * (free - reserve)))
