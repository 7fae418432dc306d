"""``monte_carlo_kernel``: its statistics equal the per-seed empirical kernels' mean, std and SE."""

from __future__ import annotations

import math

import pytest
import torch

import tangentlab as tl
from tangentlab import arch


def test_statistics_of_per_seed_kernels(make_inputs) -> None:
    net = arch.serial(arch.Dense(16, sigma_b=0.5), arch.ReLU(), arch.Dense(3, sigma_w=1.5, sigma_b=0.3))
    x = make_inputs(4, 2)
    mc = tl.monte_carlo_kernel(net, x, n_seeds=5, seed=3)
    ntks, nngps = [], []
    for s in range(3, 8):
        model = net.build((2,), seed=s, dtype=torch.float64)
        ntks.append(tl.empirical_ntk(model, x, method="jacobian") / 3)
        nngps.append(1.5**2 * tl.empirical_nngp(model, x) + 0.3**2)
    ntk, nngp = torch.stack(ntks), torch.stack(nngps)
    torch.testing.assert_close(mc.ntk, ntk.mean(0))
    torch.testing.assert_close(mc.ntk_std, ntk.std(0))
    torch.testing.assert_close(mc.ntk_sem, ntk.std(0) / math.sqrt(5))
    torch.testing.assert_close(mc.nngp, nngp.mean(0))
    torch.testing.assert_close(mc.nngp_std, nngp.std(0))
    assert mc.n_seeds == 5 and mc.ntk.dtype == torch.float64


def test_cross_kernel_shape(make_inputs) -> None:
    net = arch.serial(arch.Dense(8), arch.Erf(), arch.Dense(1))
    mc = tl.monte_carlo_kernel(net, make_inputs(3, 2), make_inputs(2, 2, seed=1), n_seeds=2)
    assert mc.ntk.shape == (3, 2) and mc.nngp_sem.shape == (3, 2)


def test_bad_arguments(make_inputs) -> None:
    with pytest.raises(ValueError, match=r"n_seeds=1 .*>= 2"):
        tl.monte_carlo_kernel(arch.Dense(1), make_inputs(2, 2), n_seeds=1)
    with pytest.raises(ValueError, match=r"Dense: parametrization='xyz'"):
        tl.monte_carlo_kernel(arch.Dense(1), make_inputs(2, 2), n_seeds=2, parametrization="xyz")
