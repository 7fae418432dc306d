"""``serial`` and ``residual``: the law through a residual block; residual validation."""

from __future__ import annotations

import pytest

from tangentlab import arch


def test_residual_mlp_matches_monte_carlo(law, make_inputs) -> None:
    net = arch.serial(
        arch.Dense(1024, sigma_b=0.2),
        arch.residual(arch.ReLU(), arch.Dense(1024, sigma_w=1.3, sigma_b=0.1)),
        arch.Tanh(),
        arch.Dense(1),
    )
    law(net, make_inputs(5, 3), exact=False)


def test_residual_conv_matches_monte_carlo(law, make_inputs) -> None:
    # A residual branch made of a Conv straight on the inputs (channels 1024 in, kept by the branch would be
    # expensive); here the branch acts on the 1-channel input: a conv with 1 output channel keeps the shape.
    net = arch.serial(
        arch.residual(arch.Erf(), arch.Conv(1, 3, sigma_b=0.2)),
        arch.Conv(1024, 2, sigma_w=1.2),
        arch.ReLU(),
        arch.GlobalAvgPool(),
        arch.Dense(1),
    )
    law(net, make_inputs(4, 1, 5), exact=False)


def test_residual_validation() -> None:
    with pytest.raises(ValueError, match=r"Residual: layers\[-1\]=ReLU\(\) .*ends with Dense or Conv"):
        arch.residual(arch.Dense(4), arch.ReLU())
    net = arch.serial(arch.Dense(4), arch.residual(arch.ReLU(), arch.Dense(5)), arch.Dense(1))
    with pytest.raises(ValueError, match=r"Residual: branch output shape=\(5,\) .*input shape \(4,\)"):
        net.build((3,))
    with pytest.raises(ValueError, match=r"Serial: layers=\(\) .*at least one layer"):
        arch.serial()


def test_serial_nests_and_hashes() -> None:
    inner = arch.serial(arch.Dense(8), arch.ReLU())
    a = arch.serial(inner, arch.Dense(1))
    b = arch.serial(arch.serial(arch.Dense(8), arch.ReLU()), arch.Dense(1))
    assert a == b and hash(a) == hash(b)
    assert len({a, b, arch.serial(arch.Dense(9), arch.Dense(1))}) == 2
    assert [type(m).__name__ for m in a.build((3,))] == ["Sequential", "ScaledLinear"]
