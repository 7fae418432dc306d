"""Layers register themselves: a new description class is readable by ``from_dict`` with no list to edit; the
weight layers share one base whose scales come from the one parametrization table."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import pytest
import torch

from tangentlab import arch


@dataclass(frozen=True)
class Doubled(arch.Layer):
    """2 x (elementwise), a layer defined outside the package."""

    layer_name: ClassVar[str] = "DoubledForTest"

    def out_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        return in_shape


def test_every_builtin_layer_is_registered_under_its_name():
    names = {"Dense", "Conv", "ReLU", "LeakyReLU", "Abs", "Erf", "GELU", "Tanh", "Sigmoid", "Softplus"}
    names |= {"Identity", "Activation", "GlobalAvgPool", "AvgPool", "Flatten", "Serial", "Residual"}
    assert names <= set(arch.LAYERS)
    assert all(arch.LAYERS[name].layer_name == name for name in arch.LAYERS)


def test_a_new_layer_registers_itself_and_round_trips():
    assert arch.LAYERS["DoubledForTest"] is Doubled
    assert arch.from_dict({"layer": "DoubledForTest"}) == Doubled()
    net = arch.from_dict({"layer": "Serial", "layers": [{"layer": "Dense", "width": 3}, "DoubledForTest"]})
    assert net == arch.serial(arch.Dense(3), Doubled())


def test_a_taken_name_is_refused():
    with pytest.raises(ValueError, match="layer_name: 'Dense' is taken"):

        @dataclass(frozen=True)
        class Impostor(arch.Layer):
            layer_name: ClassVar[str] = "Dense"


@pytest.mark.parametrize("parametrization", ["ntk", "standard", "mup"])
def test_weight_layers_read_the_parametrization_table(parametrization):
    dense, conv = arch.Dense(5, sigma_w=1.3, sigma_b=0.2), arch.Conv(4, 3, sigma_w=0.9, sigma_b=0.1)
    assert isinstance(dense, arch.WeightLayer) and isinstance(conv, arch.WeightLayer)
    assert dense.scales((7,), parametrization, "hidden") == arch.layer_scales(
        parametrization, "hidden", 1.3, 0.2, 7, 5
    )
    assert conv.scales((2, 9), parametrization, "input") == arch.layer_scales(
        parametrization, "input", 0.9, 0.1, 6, 4
    )


@pytest.mark.parametrize("parametrization", ["ntk", "standard", "mup"])
def test_a_built_net_records_its_readout_gain_from_the_readout_alone(parametrization):
    """nngp_gain = m_w^2 v_w fan_in of the readout: checked against the readout's own weights' spread (MC)."""
    net = arch.serial(arch.Dense(64, sigma_w=1.4), arch.ReLU(), arch.Dense(4096, sigma_w=0.7, sigma_b=0.3))
    model = net.build((3,), parametrization=parametrization, seed=0, dtype=torch.float64)
    readout = model[-1]
    scales = arch.layer_scales(parametrization, "readout", 0.7, 0.3, 64, 4096)
    assert model.nngp_gain == pytest.approx(scales.forward_gain, rel=1e-14)
    assert model.nngp_offset == pytest.approx(scales.forward_offset, rel=1e-14)
    # Monte Carlo over the 4096 x 64 readout weights: m_w^2 Var(W) fan_in, within 5 standard errors
    w = readout.weight.detach() * readout.weight_scale
    est = float(w.var()) * 64
    assert abs(est - model.nngp_gain) < 5 * model.nngp_gain * math.sqrt(2 / w.numel())
