"""Descriptions round-trip through dict, JSON and YAML, and bad forms name the field."""

from __future__ import annotations

import pytest

from tangentlab import arch

NET = arch.serial(
    arch.Conv(8, (3, 3), stride=(1, 2), padding="circular", sigma_w=1.5, sigma_b=0.1),
    arch.LeakyReLU(0.1),
    arch.residual(arch.Abs(), arch.Conv(8, 3)),
    arch.AvgPool(2),
    arch.Activation("torch.sin"),
    arch.GlobalAvgPool(),
    arch.Dense(16),
    arch.GELU(),
    arch.Softplus(),
    arch.Dense(4),
    arch.Sigmoid(),
    arch.Erf(),
    arch.Tanh(),
    arch.Identity(),
    arch.ReLU(),
    arch.Flatten(),
    arch.Dense(1),
)


def test_round_trips() -> None:
    assert arch.from_dict(NET.to_dict()) == NET
    assert arch.from_json(NET.to_json()) == NET
    assert arch.from_yaml(NET.to_yaml()) == NET
    assert hash(arch.from_json(NET.to_json())) == hash(NET)


def test_yaml_shorthand() -> None:
    text = "layer: Serial\nlayers:\n  - {layer: Dense, width: 4, sigma_w: 2}\n  - ReLU\n  - {layer: Dense, width: 1}\n"
    assert arch.from_yaml(text) == arch.serial(arch.Dense(4, sigma_w=2.0), arch.ReLU(), arch.Dense(1))


def test_activation_callable_serialises_by_name() -> None:
    import torch

    assert arch.Activation(torch.tanh).to_dict() == {"layer": "Activation", "fn": "torch.tanh"}


def test_bad_forms() -> None:
    with pytest.raises(ValueError, match=r"from_dict: layer='Dens' .*one of .*Dense"):
        arch.from_dict({"layer": "Dens", "width": 3})
    with pytest.raises(ValueError, match=r"Dense: field='widht' .*one of width, sigma_w, sigma_b"):
        arch.from_dict({"layer": "Dense", "widht": 3})
    with pytest.raises(ValueError, match=r"Dense: width=-3"):
        arch.from_dict({"layer": "Dense", "width": -3})
