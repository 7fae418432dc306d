"""The named image networks (Myrtle CNN, small ResNet): structure, finite modules, and the ResNet's infinite kernel
against the Monte Carlo average of finite nets."""

from __future__ import annotations

import math

import pytest
import torch

import tangentlab as tl
from tangentlab import arch


def _kinds(net: arch.Layer) -> list[str]:
    return [type(leaf).__name__ for leaf in net.leaves()]


@pytest.mark.parametrize(("depth", "stages"), [(5, (2, 1, 1)), (7, (2, 2, 2)), (10, (3, 3, 3))])
def test_myrtle_has_the_papers_stages_and_maps_cifar_to_ten_outputs(depth, stages):
    net = arch.myrtle(depth, channels=4)
    kinds = _kinds(net)
    assert (
        kinds.count("Conv") == sum(stages)
        and kinds.count("AvgPool") == 5
        and kinds[-2:] == ["Flatten", "Dense"]
    )
    # convolutions between pools follow the stage counts
    runs, count = [], 0
    for k in kinds:
        if k == "Conv":
            count += 1
        elif k == "AvgPool" and count:
            runs.append(count)
            count = 0
    assert tuple(runs) == stages
    assert net.layers[-3].out_shape((4, 2, 2)) == (4, 1, 1)
    model = net.build((3, 32, 32), seed=0, dtype=torch.float64)
    assert model(torch.randn(2, 3, 32, 32, dtype=torch.float64)).shape == (2, 10)
    assert arch.from_dict(net.to_dict()) == net


def test_resnet_structure_and_module():
    net = arch.resnet(2, 8, out_dim=10, stages=3)
    assert (
        _kinds(net).count("Conv") == 1 + 3 * 2 * 2
        and sum(isinstance(layer, arch.Residual) for layer in net.layers) == 6
    )
    model = net.build((3, 32, 32), seed=1, dtype=torch.float64)
    x = torch.randn(4, 3, 32, 32, dtype=torch.float64)
    assert model(x).shape == (4, 10) and torch.isfinite(model(x)).all()
    assert arch.from_dict(net.to_dict()) == net


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: arch.myrtle(6), r"depth: expected one of \[5, 7, 10\], got 6"),
        (lambda: arch.myrtle(5, channels=0), "channels: expected an integer >= 1"),
        (lambda: arch.resnet(0), "blocks: expected an integer >= 1"),
    ],
)
def test_bad_sizes_are_refused(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.slow
def test_resnet_kernel_is_the_limit_of_finite_resnets():
    torch.manual_seed(0)
    x = torch.randn(3, 2, 4, 4, dtype=torch.float64)
    net = arch.resnet(1, 96, out_dim=1, stages=2, branch_sigma_w=0.7)
    exact = net.kernel(x)
    mc = tl.monte_carlo_kernel(net, x, n_seeds=12, seed=5)
    for name in ("ntk", "nngp"):
        value, mean, sem = getattr(exact, name), getattr(mc, name), getattr(mc, f"{name}_sem")
        bias = 4.0 / 96 * value.abs()  # O(1/width) finite-width correction, generously bounded
        assert bool(((value - mean).abs() <= 5 * sem + bias).all()), (name, value, mean, sem)
        assert float((value - mean).abs().max()) < 0.2 * float(value.abs().max())
    assert math.isclose(float(exact.ntk[0, 1]), float(exact.ntk[1, 0]))
