"""The vectorised kernel maps against straightforward references: the conv window mean against a loop over
position pairs and window offsets, the fused arc-cosine map against the separate closed forms, and the threaded,
blocked, symmetric kernel against the plain evaluation."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from tangentlab import arch
from tangentlab.arch.arccos import (
    leaky_relu_derivative_expectation,
    leaky_relu_expectation,
    leaky_relu_kernel_pair,
)
from tangentlab.arch.conv import window_mean


def naive_window_mean(t, spatial, kernel, stride, pads, circular):
    """``A(t)[p, q] = mean_k t[s p + k - pad, s q + k - pad]`` by loops (zero or wrapped outside the input)."""
    d = len(spatial)
    out = [(spatial[a] + sum(pads[a]) - kernel[a]) // stride[a] + 1 for a in range(d)]
    positions_in = list(itertools.product(*(range(s) for s in spatial)))
    positions_out = list(itertools.product(*(range(o) for o in out)))
    index = {pos: i for i, pos in enumerate(positions_in)}

    def source(pos, shift):
        coords = []
        for a in range(d):
            c = stride[a] * pos[a] + shift[a] - pads[a][0]
            if circular:
                c %= spatial[a]
            elif not 0 <= c < spatial[a]:
                return None
            coords.append(c)
        return index[tuple(coords)]

    result = torch.zeros((*t.shape[:-2], len(positions_out), len(positions_out)), dtype=t.dtype)
    for (i, p), (j, q) in itertools.product(enumerate(positions_out), repeat=2):
        for shift in itertools.product(*(range(k) for k in kernel)):
            sp, sq = source(p, shift), source(q, shift)
            if sp is not None and sq is not None:
                result[..., i, j] += t[..., sp, sq]
    return result / math.prod(kernel)


GEOMETRIES = [
    ((9,), (3,), (1,), "same"),
    ((10,), (4,), (1,), "same"),
    ((11,), (5,), (2,), "same"),
    ((9,), (3,), (1,), "valid"),
    ((12,), (2,), (3,), "valid"),
    ((8,), (3,), (1,), "circular"),
    ((9,), (4,), (2,), "circular"),
    ((4, 5), (3, 2), (1, 2), "same"),
    ((5, 4), (2, 3), (1, 1), "valid"),
    ((4, 5), (3, 3), (2, 1), "circular"),
]


@pytest.mark.parametrize(("spatial", "kernel", "stride", "padding"), GEOMETRIES, ids=str)
def test_window_mean_matches_loops(spatial, kernel, stride, padding) -> None:
    conv = arch.Conv(2, kernel, stride=stride, padding=padding)
    kernel_, stride_, pads = conv._geometry((1, *spatial))
    positions = math.prod(spatial)
    t = torch.randn(
        3, 2, positions, positions, generator=torch.Generator().manual_seed(1), dtype=torch.float64
    )
    fast = window_mean(t, spatial, kernel_, stride_, pads, padding == "circular")
    slow = naive_window_mean(t, spatial, kernel_, stride_, pads, padding == "circular")
    assert fast.shape == slow.shape == (3, 2, *fast.shape[-2:])
    torch.testing.assert_close(fast, slow, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("alpha", [0.0, 0.1, -1.0, 2.5])
def test_fused_arccos_matches_closed_forms(alpha) -> None:
    g = torch.Generator().manual_seed(2)
    z = torch.randn(6, 5, dtype=torch.float64, generator=g)
    gram = z @ z.T + 1e-3 * torch.eye(6, dtype=torch.float64)
    var = gram.diagonal()
    var1, var2 = var[:, None], var[None, :]
    ntk = torch.rand(6, 6, dtype=torch.float64, generator=g)
    nngp, ntk_out = leaky_relu_kernel_pair(gram, ntk, var1, var2, alpha)
    torch.testing.assert_close(nngp, leaky_relu_expectation(gram, var1, var2, alpha), rtol=1e-13, atol=0)
    expected = ntk * leaky_relu_derivative_expectation(gram, var1, var2, alpha)
    torch.testing.assert_close(ntk_out, expected, rtol=1e-13, atol=0)
    assert torch.equal(gram, z @ z.T + 1e-3 * torch.eye(6, dtype=torch.float64))  # inputs are not modified


NETS = {
    "conv1d_gap": (
        arch.serial(
            arch.Conv(8, 5, sigma_b=0.1),
            arch.ReLU(),
            arch.Conv(8, 5),
            arch.ReLU(),
            arch.GlobalAvgPool(),
            arch.Dense(1),
        ),
        (2, 11),
    ),
    "conv2d_residual_pool": (
        arch.serial(
            arch.Conv(8, (3, 2), stride=(1, 2), padding="circular"),
            arch.residual(arch.LeakyReLU(0.2), arch.Conv(8, 3)),
            arch.ReLU(),
            arch.AvgPool((2, 1)),
            arch.Flatten(),
            arch.Dense(1),
        ),
        (2, 5, 6),
    ),
}


@pytest.mark.parametrize("name", list(NETS))
def test_threaded_blocks_match_one_block(name) -> None:
    net, shape = NETS[name]
    x = torch.randn(13, *shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    whole = net.kernel(x)  # one block
    blocked = net.kernel(x, memory_budget=1)  # one input per block, many threaded blocks, lower half mirrored
    cross = net.kernel(x, x, memory_budget=1)  # no symmetry used
    # On the diagonal rho = 1 only up to the einsum's rounding (which depends on the block), and arccos amplifies
    # an ulp there to ~1e-8 (as it always has); elsewhere the blocks agree to rounding.
    off = ~torch.eye(13, dtype=torch.bool)
    for other in (blocked, cross):
        torch.testing.assert_close(other.nngp[off], whole.nngp[off], rtol=1e-12, atol=0)
        torch.testing.assert_close(other.ntk[off], whole.ntk[off], rtol=1e-12, atol=0)
        torch.testing.assert_close(other.ntk, whole.ntk, rtol=1e-7, atol=0)
    assert torch.equal(blocked.nngp, blocked.nngp.T) and torch.equal(blocked.ntk, blocked.ntk.T)
