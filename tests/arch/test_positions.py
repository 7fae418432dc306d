"""Convolutional kernels that carry only the position diagonal, and TF/JAX "same" padding with strides.

The diagonal path (``positions="auto"``, the default) against the full (P, P) path (``positions="full"``) in
float64; which path each layer takes; the kernel of a strided "same" net on even sizes against an independent numpy
recursion written from the formulas (TF padding, arc-cosine kernels); the finite strided module against the TF
padding rule written out per output pixel. The Monte Carlo law of strided nets is in ``test_conv.py``.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from tangentlab import arch
from tangentlab.arch import conv as conv_module

NETS = {
    "conv1d_strided_flatten": (
        arch.serial(
            arch.Conv(8, 3, stride=2, sigma_w=1.3, sigma_b=0.3),
            arch.ReLU(),
            arch.Conv(8, 4, padding="circular"),
            arch.Erf(),
            arch.Conv(8, 2, padding="valid", sigma_b=0.2),
            arch.Flatten(),
            arch.Dense(1, sigma_b=0.1),
        ),
        (2, 10),
    ),
    "conv2d_residual_flatten": (
        arch.serial(
            arch.Conv(8, (3, 2), stride=(2, 1), sigma_b=0.1),
            arch.residual(arch.LeakyReLU(0.2), arch.Conv(8, 3)),
            arch.Erf(),
            arch.Flatten(),
            arch.Dense(4),
            arch.GELU(),
            arch.Dense(1),
        ),
        (2, 6, 5),
    ),
    "pool_then_conv_flatten": (  # full pairs up to the pooling, the diagonal after it
        arch.serial(
            arch.Conv(8, 3),
            arch.ReLU(),
            arch.AvgPool(2),
            arch.Conv(8, 2, stride=2),
            arch.Abs(),
            arch.Flatten(),
            arch.Dense(1),
        ),
        (1, 8, 6),
    ),
}


@pytest.mark.parametrize("parametrization", ["ntk", "standard", "mup"])
@pytest.mark.parametrize("name", list(NETS))
def test_diagonal_path_equals_full_path(name, parametrization, make_inputs) -> None:
    net, shape = NETS[name]
    x1, x2 = make_inputs(5, *shape), make_inputs(3, *shape, seed=1)
    for a, b in ((x1, None), (x1, x2)):
        fast = net.kernel(a, b, parametrization=parametrization)
        full = net.kernel(a, b, parametrization=parametrization, positions="full")
        for got, want in ((fast.nngp, full.nngp), (fast.ntk, full.ntk)):
            scale = float(want.abs().max())
            torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12 * scale)


def test_diagonal_path_in_small_blocks_equals_one_block(make_inputs) -> None:
    net, shape = NETS["conv1d_strided_flatten"]
    x = make_inputs(7, *shape)
    whole, tiny = net.kernel(x), net.kernel(x, memory_budget=1)
    torch.testing.assert_close(tiny.ntk, whole.ntk, rtol=1e-12, atol=0)
    torch.testing.assert_close(tiny.nngp, whole.nngp, rtol=1e-12, atol=0)


def _count_window_means(monkeypatch) -> dict[str, int]:
    calls = {"full": 0, "diagonal": 0}
    full, diagonal = conv_module.window_mean, conv_module.window_mean_diagonal

    def count_full(*args):
        calls["full"] += 1
        return full(*args)

    def count_diagonal(*args):
        calls["diagonal"] += 1
        return diagonal(*args)

    monkeypatch.setattr(conv_module, "window_mean", count_full)
    monkeypatch.setattr(conv_module, "window_mean_diagonal", count_diagonal)
    return calls


def test_each_conv_takes_the_path_its_readout_needs(monkeypatch, make_inputs) -> None:
    calls = _count_window_means(monkeypatch)
    net, shape = NETS["pool_then_conv_flatten"]
    net.kernel(make_inputs(3, *shape))
    assert calls == {
        "full": 3,
        "diagonal": 3,
    }  # nngp, ntk, var1 of the conv before and the conv after the pool
    calls.update(full=0, diagonal=0)
    net.kernel(make_inputs(3, *shape), positions="full")
    assert calls == {"full": 6, "diagonal": 0}
    calls.update(full=0, diagonal=0)
    gap = arch.serial(arch.Conv(8, 3), arch.ReLU(), arch.Conv(8, 3), arch.GlobalAvgPool(), arch.Dense(1))
    gap.kernel(make_inputs(3, 1, 6))
    assert calls == {"full": 6, "diagonal": 0}


def test_x1_against_itself_packs_the_upper_triangle(monkeypatch, make_inputs) -> None:
    """Within one block's capacity only the pairs i <= j are carried: n (n + 1) / 2 rows, not n^2."""
    shapes = []
    diagonal = conv_module.window_mean_diagonal

    def record(t, *args):
        shapes.append(tuple(t.shape))
        return diagonal(t, *args)

    monkeypatch.setattr(conv_module, "window_mean_diagonal", record)
    net, shape = NETS["conv1d_strided_flatten"]
    x = make_inputs(6, *shape)
    packed = net.kernel(x)
    assert shapes[0] == (21, 10)  # the first conv's nngp: 21 pairs at its input's 10 positions
    cross = net.kernel(x, x)  # no symmetry used: (6, 6, P) blocks
    assert (6, 6, 10) in shapes
    for got, want in ((packed.nngp, cross.nngp), (packed.ntk, cross.ntk)):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-14)
        assert torch.equal(got, got.T)


def test_diagonal_path_reaches_mnist_sized_inputs(make_inputs) -> None:
    """784 positions, 3 convs: the full path would hold (n, n, 784, 784) covariances; the diagonal fits easily."""
    net = arch.serial(
        arch.Conv(16, 3), arch.ReLU(), arch.Conv(16, 3, stride=2), arch.ReLU(), arch.Flatten(), arch.Dense(1)
    )
    x = make_inputs(6, 1, 28, 28)
    k = net.kernel(x, memory_budget=64 * 2**20)
    assert k.ntk.shape == (6, 6) and bool(torch.isfinite(k.ntk).all())
    # the first example against the others, through the full path on 2 inputs at a time (small enough)
    for j in (1, 4):
        ref = net.kernel(x[[0, j]], positions="full")
        torch.testing.assert_close(k.ntk[0, j], ref.ntk[0, 1], rtol=1e-12, atol=0)
        torch.testing.assert_close(k.nngp[[0, j]][:, [0, j]], ref.nngp, rtol=1e-12, atol=0)


@pytest.mark.parametrize(
    ("size", "k", "s", "pads"),
    [
        (28, 3, 2, (0, 1)),
        (8, 3, 2, (0, 1)),
        (7, 3, 2, (1, 1)),
        (8, 4, 2, (1, 1)),
        (9, 4, 3, (0, 1)),
        (6, 2, 2, (0, 0)),
        (10, 5, 1, (2, 2)),
        (10, 4, 1, (1, 2)),
        (5, 3, 4, (1, 1)),
    ],
)
def test_same_padding_follows_tensorflow(size, k, s, pads) -> None:
    """TF's rule: out = ceil(L / s), total pad max((out - 1) s + k - L, 0), left = total // 2."""
    out = math.ceil(size / s)
    total = max((out - 1) * s + k - size, 0)
    assert (total // 2, total - total // 2) == pads  # the table itself is the rule, worked by hand
    assert conv_module.same_pads(size, k, s) == pads
    assert arch.Conv(1, k, stride=s).out_shape((1, size)) == (1, out)


def test_finite_strided_same_conv_reads_tensorflow_windows(make_inputs) -> None:
    """Output pixel (i, j) of a stride-2 'same' conv on 6 x 8 reads input rows 2i + a - left (zero outside)."""
    layer = arch.Conv(3, (3, 4), stride=2, sigma_b=0.5)
    model = arch.serial(layer, arch.Flatten(), arch.Dense(1)).build((2, 6, 8), dtype=torch.float64)
    conv = model[0][1] if isinstance(model[0], torch.nn.Sequential) else model[0]
    x = make_inputs(2, 2, 6, 8)
    got = model[0](x)
    w = (conv.weight * conv.weight_scale).detach().numpy()
    bias = (conv.bias * conv.bias_scale).detach().numpy()
    xn = x.numpy()
    # totals (out - 1) s + k - L = 1 and 2: left pads 0 and 1 (the odd pixel at the end)
    left = ((2 * 2 + 3 - 6) // 2, (3 * 2 + 4 - 8) // 2)
    want = np.zeros((2, 3, 3, 4))
    for n, c, i, j in itertools.product(range(2), range(3), range(3), range(4)):
        acc = bias[c]
        for ci, a, b in itertools.product(range(2), range(3), range(4)):
            r, q = 2 * i + a - left[0], 2 * j + b - left[1]
            if 0 <= r < 6 and 0 <= q < 8:
                acc += w[c, ci, a, b] * xn[n, ci, r, q]
        want[n, c, i, j] = acc
    np.testing.assert_allclose(got.detach().numpy(), want, rtol=1e-12, atol=1e-12)


def _relu_maps(cov, va, vb):
    """Arc-cosine kernels (Cho & Saul 2009) in numpy: E[relu relu] and E[relu' relu']."""
    norm = np.sqrt(va * vb)
    rho = np.clip(cov / norm, -1.0, 1.0)
    theta = np.arccos(rho)
    return norm * (np.sin(theta) + (np.pi - theta) * rho) / (2 * np.pi), (np.pi - theta) / (2 * np.pi)


def _numpy_conv_ntk(x, layers, readout):
    """NNGP and NTK (NTK parametrization) of [Conv(k, stride, 'same' TF pads) + ReLU]* + Flatten + Dense by loops
    over position pairs, every entry of the (P, P) covariances for all input pairs (x: (n, C, H, W))."""
    n, c, h, w = x.shape
    feats = x.reshape(n, c, h * w)
    cov = np.einsum("icp,jcq->ijpq", feats, feats) / c
    ntk = np.zeros_like(cov)
    shape = (h, w)
    for k, s, sw, sb in layers:
        out = tuple(math.ceil(L / s) for L in shape)
        left = tuple(max((o - 1) * s + k - L, 0) // 2 for o, L in zip(out, shape, strict=True))
        positions = list(itertools.product(range(out[0]), range(out[1])))
        new_cov = np.zeros((n, n, len(positions), len(positions)))
        new_ntk = np.zeros_like(new_cov)

        def src(p, a, b, shape=shape, left=left, s=s):
            r, q = s * p[0] + a - left[0], s * p[1] + b - left[1]
            return r * shape[1] + q if 0 <= r < shape[0] and 0 <= q < shape[1] else None

        for (u, p), (v, q) in itertools.product(enumerate(positions), repeat=2):
            for a, b in itertools.product(range(k), range(k)):
                sp, sq = src(p, a, b), src(q, a, b)
                if sp is not None and sq is not None:
                    new_cov[:, :, u, v] += cov[:, :, sp, sq] / k**2
                    new_ntk[:, :, u, v] += ntk[:, :, sp, sq] / k**2
        z_cov = sw**2 * new_cov + sb**2
        z_ntk = sw**2 * (new_ntk + new_cov) + sb**2
        diag = np.einsum("iipp->ip", z_cov)
        va, vb = diag[:, None, :, None], diag[None, :, None, :]
        cov, deriv = _relu_maps(z_cov, va, vb)
        ntk = z_ntk * deriv
        shape = out
    sw, sb = readout
    nngp_flat = np.einsum("ijpp->ijp", cov).mean(-1)
    ntk_flat = np.einsum("ijpp->ijp", ntk).mean(-1)
    return sw**2 * nngp_flat + sb**2, sw**2 * (ntk_flat + nngp_flat) + sb**2


def test_strided_same_kernel_equals_numpy_recursion_with_tf_padding(make_inputs) -> None:
    layers = [(3, 2, 1.4, 0.2), (2, 2, 1.1, 0.0)]
    net = arch.serial(
        arch.Conv(16, 3, stride=2, sigma_w=1.4, sigma_b=0.2),
        arch.ReLU(),
        arch.Conv(16, 2, stride=2, sigma_w=1.1),
        arch.ReLU(),
        arch.Flatten(),
        arch.Dense(1, sigma_w=0.9, sigma_b=0.3),
    )
    x = make_inputs(3, 2, 6, 8)
    nngp, ntk = _numpy_conv_ntk(x.numpy(), layers, (0.9, 0.3))
    for positions in ("auto", "full"):
        k = net.kernel(x, positions=positions)
        np.testing.assert_allclose(k.nngp.numpy(), nngp, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(k.ntk.numpy(), ntk, rtol=1e-10, atol=1e-12)


def test_positions_argument_is_checked(make_inputs) -> None:
    net, shape = NETS["conv1d_strided_flatten"]
    with pytest.raises(ValueError, match=r"positions='diag' .*'auto', 'full'"):
        net.kernel(make_inputs(2, *shape), positions="diag")
