"""Infinite-width kernel benchmark: time and peak memory of ``net.kernel`` on two standard workloads.

1. NTK and NNGP of a depth-5 ReLU MLP (5 hidden Dense(512) + ReLU, Dense(1) readout) on n = 10,000 inputs of
   dimension 784 (random, unit variance; the kernel's cost does not depend on the data).
2. Conv1d, depth 3 (3 × Conv(256, 5) + ReLU), global average pooling and a Dense(1) readout on n = 1,000
   MNIST-1D inputs (1 channel × 40; ``tangentlab.data.load("mnist1d")``, generated offline by the ``mnist1d``
   package, which must be installed).

Each case runs in a fresh subprocess; peak memory is that process's peak RSS growth over the case (from
``resource.getrusage``, before and after). Run: ``.venv/bin/python benchmarks/kernels.py``.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time

import torch

import tangentlab as tl
from tangentlab import arch


def _mnist1d(n: int) -> torch.Tensor:
    """``n`` MNIST-1D training inputs, (n, 1, 40) float64; fails loudly if the ``mnist1d`` package is missing."""
    x = tl.data.load("mnist1d", n_train=n, shape="image").x_train
    if tuple(x.shape) != (n, 1, 40):
        raise ValueError(f"mnist1d: expected inputs of shape ({n}, 1, 40), got {tuple(x.shape)}")
    return x


def _case(name: str) -> dict[str, object]:
    if name == "mlp":
        layers: list[arch.Layer] = []
        for _ in range(5):
            layers += [arch.Dense(512, sigma_w=1.4, sigma_b=0.1), arch.ReLU()]
        net = arch.serial(*layers, arch.Dense(1))
        x = torch.randn(10_000, 784, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        label = "ReLU MLP depth 5, n=10,000, d=784"
    else:
        net = arch.serial(
            arch.Conv(256, 5),
            arch.ReLU(),
            arch.Conv(256, 5),
            arch.ReLU(),
            arch.Conv(256, 5),
            arch.ReLU(),
            arch.GlobalAvgPool(),
            arch.Dense(1),
        )
        x = _mnist1d(1_000)
        label = "Conv1d depth 3 + GAP, n=1,000, 1x40"
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    k = net.kernel(x)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before  # KiB on Linux
    assert torch.isfinite(k.ntk).all()
    return {
        "case": label,
        "seconds": seconds,
        "peak_rss_mib": peak / 1024,
        "threads": torch.get_num_threads(),
    }


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--case":
        print(json.dumps(_case(sys.argv[2])))
        return
    rows = []
    for name in ("mlp", "conv"):
        out = subprocess.run(
            [sys.executable, __file__, "--case", name], capture_output=True, text=True, check=True
        )
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"{'case':40s} {'time (s)':>10s} {'peak RSS growth (MiB)':>22s} {'threads':>8s}")
    for row in rows:
        print(f"{row['case']:40s} {row['seconds']:10.2f} {row['peak_rss_mib']:22.0f} {row['threads']:8d}")


if __name__ == "__main__":
    main()
