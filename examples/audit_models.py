"""Model factories for ``tangentlab audit`` (README, "Auditing your own model").

``tangentlab audit examples/audit_models.py:wide_mlp --data digits --optimizer gd``: a wide one-hidden-layer ReLU
MLP in NTK parametrization on the 8x8 digits (64 inputs, 10 outputs) — the setting of Lee et al. 2019, which
should train in the kernel regime.

``tangentlab audit examples/audit_models.py:small_cnn --data mnist1d --optimizer adam``: a small 1-D CNN for
MNIST-1D (inputs (1, 40), 10 outputs) with PyTorch's default initialization, trained with Adam — a practical
setting that should leave it.

A factory is any callable returning an ``nn.Module``. If it takes a ``seed`` argument the audit passes one; either
way it is called under ``torch.manual_seed(seed)``, so ``small_cnn`` (no ``seed``) still gives one net per seed.
"""

from __future__ import annotations

import math

from torch import nn

from tangentlab import arch


def wide_mlp(seed: int = 0, width: int = 2048) -> nn.Module:
    """64 → ``width`` → 10 ReLU MLP in NTK parametrization (``sigma_w / sqrt(fan_in) W x + sigma_b b``)."""
    net = arch.serial(
        arch.Dense(width, sigma_w=math.sqrt(2.0), sigma_b=0.1), arch.ReLU(), arch.Dense(10, sigma_b=0.1)
    )
    return net.build((64,), parametrization="ntk", seed=seed)


def small_cnn() -> nn.Module:
    """A 1-D CNN for MNIST-1D: two 5-wide convolutions (16 channels), average pooling, a linear readout."""
    return nn.Sequential(
        nn.Conv1d(1, 16, 5, padding=2),
        nn.ReLU(),
        nn.AvgPool1d(2),
        nn.Conv1d(16, 16, 5, padding=2),
        nn.ReLU(),
        nn.AvgPool1d(2),
        nn.Flatten(),
        nn.Linear(16 * 10, 10),
    )
