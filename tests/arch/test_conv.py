"""Convolutions (1-D and 2-D, every padding, strides) and pooling against Monte Carlo; shape errors."""

from __future__ import annotations

import pytest
import torch

from tangentlab import arch


@pytest.mark.parametrize(("padding", "stride"), [("same", 1), ("same", 2), ("valid", 1), ("circular", 2)])
def test_conv1d_matches_monte_carlo(padding, stride, law, make_inputs) -> None:
    net = arch.serial(
        arch.Conv(1024, 3, stride=stride, padding=padding, sigma_w=1.3, sigma_b=0.3),
        arch.ReLU(),
        arch.Flatten(),
        arch.Dense(1, sigma_b=0.2),
    )
    law(net, make_inputs(4, 2, 6), exact=True)


@pytest.mark.parametrize(
    ("pool", "parametrization"),
    [
        (arch.GlobalAvgPool(), "ntk"),
        (arch.GlobalAvgPool(), "standard"),
        (arch.GlobalAvgPool(), "mup"),
        (arch.AvgPool(2), "ntk"),
    ],
    ids=repr,
)
def test_pooling_matches_monte_carlo(pool, parametrization, law, make_inputs) -> None:
    net = arch.serial(arch.Conv(1024, 2, sigma_b=0.2), arch.Erf(), pool, arch.Flatten(), arch.Dense(1))
    law(net, make_inputs(4, 2, 5), parametrization, exact=True)


def test_conv2d_matches_monte_carlo(law, make_inputs) -> None:
    net = arch.serial(
        arch.Conv(1024, (2, 3), stride=(1, 2), padding="same", sigma_w=1.2, sigma_b=0.1),
        arch.GELU(),
        arch.AvgPool((1, 2)),
        arch.Flatten(),
        arch.Dense(1),
    )
    law(net, make_inputs(4, 2, 3, 4), exact=True)


def test_strided_same_conv2d_on_even_sizes_matches_monte_carlo(law, make_inputs) -> None:
    """TF "same" padding (the odd pixel at the end) in the module and the kernel: stride 2 on 4 x 6, then 2 x 3."""
    net = arch.serial(
        arch.Conv(1024, 3, stride=2, sigma_w=1.2, sigma_b=0.2),
        arch.ReLU(),
        arch.Flatten(),
        arch.Dense(1),
    )
    law(net, make_inputs(4, 2, 4, 6), exact=True)
    deep = arch.serial(
        arch.Conv(512, 3, stride=2, sigma_w=1.2, sigma_b=0.2),
        arch.ReLU(),
        arch.Conv(512, 2, stride=2, sigma_w=1.3),
        arch.Erf(),
        arch.Flatten(),
        arch.Dense(1),
    )
    law(deep, make_inputs(4, 2, 4, 6), exact=False)


def test_deep_conv_matches_monte_carlo(law, make_inputs) -> None:
    net = arch.serial(
        arch.Conv(1024, 2, sigma_b=0.2),
        arch.ReLU(),
        arch.Conv(1024, 2, stride=2, padding="circular", sigma_w=1.4),
        arch.Tanh(),
        arch.GlobalAvgPool(),
        arch.Dense(1),
    )
    law(net, make_inputs(4, 1, 4), exact=False)


def test_conv_builds_torch_layout(make_inputs) -> None:
    x = make_inputs(3, 2, 7)
    net = arch.serial(
        arch.Conv(5, 4, stride=2),
        arch.ReLU(),
        arch.Conv(6, 3, padding="valid"),
        arch.Flatten(),
        arch.Dense(2),
    )
    model = net.build((2, 7), dtype=torch.float64)
    assert net.out_shape((2, 7)) == (2,)
    assert arch.Conv(5, 4, stride=2).out_shape((2, 7)) == (5, 4)
    assert model(x).shape == (3, 2)
    assert net.kernel(x).nngp.shape == (3, 3)


def test_kernel_blocks_agree_with_one_block(make_inputs) -> None:
    net = arch.serial(arch.Conv(8, 3), arch.Tanh(), arch.GlobalAvgPool(), arch.Dense(1))
    x1, x2 = make_inputs(5, 1, 6), make_inputs(3, 1, 6, seed=1)
    whole = net.kernel(x1, x2)
    tiny = net.kernel(x1, x2, memory_budget=1)
    torch.testing.assert_close(whole.ntk, tiny.ntk, rtol=1e-12, atol=0)
    sym, sym_tiny = net.kernel(x1), net.kernel(x1, memory_budget=1)
    torch.testing.assert_close(sym.nngp, sym_tiny.nngp, rtol=1e-12, atol=0)
    torch.testing.assert_close(net.kernel(x1, x1).ntk, sym.ntk, rtol=1e-12, atol=0)


def test_shape_errors_name_layer_and_expectation() -> None:
    with pytest.raises(
        ValueError, match=r"Conv: input shape=\(3,\) .*feature maps .*feature vectors \(d,\) need Dense"
    ):
        arch.serial(arch.Conv(4, 3), arch.Flatten(), arch.Dense(1)).build((3,))
    with pytest.raises(ValueError, match=r"Conv: padding='full' .*'same', 'valid', 'circular'"):
        arch.Conv(4, 3, padding="full")
    with pytest.raises(ValueError, match=r"Conv: kernel_size=\(3, 3\) .*tuple of 1 ints"):
        arch.serial(arch.Conv(4, (3, 3)), arch.Flatten(), arch.Dense(1)).build((2, 9))
    with pytest.raises(ValueError, match=r"GlobalAvgPool: input shape=\(5,\) .*feature maps"):
        arch.serial(arch.Dense(5), arch.GlobalAvgPool(), arch.Dense(1)).build((3,))
    with pytest.raises(ValueError, match=r"AvgPool: size=9 .*no larger than the input"):
        arch.serial(arch.Conv(4, 3), arch.AvgPool(9), arch.Flatten(), arch.Dense(1)).build((1, 5))
