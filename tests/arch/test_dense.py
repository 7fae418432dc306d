"""Dense networks: the law for deep MLPs in each parametrization, determinism of build, init variances."""

from __future__ import annotations

import pytest
import torch

from tangentlab import arch

PARAMETRIZATIONS = ["ntk", "standard", "mup"]


@pytest.mark.parametrize("parametrization", PARAMETRIZATIONS)
def test_deep_mlp_matches_monte_carlo(parametrization, law, make_inputs) -> None:
    net = arch.serial(
        arch.Dense(1024, sigma_w=1.4, sigma_b=0.3),
        arch.ReLU(),
        arch.Dense(1024, sigma_w=1.2, sigma_b=0.2),
        arch.Erf(),
        arch.Dense(1, sigma_b=0.1),
    )
    law(net, make_inputs(5, 3), parametrization, exact=False)


@pytest.mark.parametrize("parametrization", PARAMETRIZATIONS)
def test_build_is_deterministic_per_seed(parametrization) -> None:
    net = arch.serial(arch.Dense(16, sigma_b=0.5), arch.Tanh(), arch.Dense(3))
    a = net.build((4,), parametrization=parametrization, seed=7, dtype=torch.float64)
    b = net.build((4,), parametrization=parametrization, seed=7, dtype=torch.float64)
    c = net.build((4,), parametrization=parametrization, seed=8, dtype=torch.float64)
    for (name, p), q, r in zip(a.named_parameters(), b.parameters(), c.parameters(), strict=True):
        assert torch.equal(p, q), name
        if bool(p.detach().abs().max() > 0):  # standard-parametrization biases with sigma_b = 0 start at 0
            assert not torch.equal(p, r), name
    assert a(torch.ones(2, 4, dtype=torch.float64)).shape == (2, 3)


def test_bias_parameters_always_exist() -> None:
    model = arch.serial(arch.Dense(8), arch.ReLU(), arch.Dense(1)).build(3, parametrization="standard")
    names = [n for n, _ in model.named_parameters()]
    assert names == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert all(
        float(b.detach().abs().max()) == 0.0 for n, b in model.named_parameters() if n.endswith("bias")
    )


@pytest.mark.parametrize("parametrization", PARAMETRIZATIONS)
def test_layer_outputs_have_the_parametrization_variance(parametrization, make_inputs) -> None:
    """Mean square of each Dense output (over units, then seeds) equals the analytic NNGP diagonal of the prefix.

    All three parametrizations give the forward variances of the NTK parametrization, except the μP readout
    (variance ``sigma_w^2 K / fan_in + sigma_b^2``); tolerance as in ``conftest`` (5 SE + delta-method bias).
    """
    layers = [
        arch.Dense(512, sigma_w=1.5, sigma_b=0.5),
        arch.GELU(),
        arch.Dense(512, sigma_w=0.8, sigma_b=1.0),
        arch.ReLU(),
        arch.Dense(256, sigma_w=1.2, sigma_b=0.3),
    ]
    net = arch.serial(*layers)
    x = make_inputs(3, 4)
    dense_at = [0, 2, 4]
    per_seed = []
    for seed in range(16):
        model = net.build((4,), parametrization=parametrization, seed=seed, dtype=torch.float64)
        outs, h = [], x
        with torch.no_grad():
            for module in model:
                h = module(h)
                outs.append(h)
        per_seed.append(torch.stack([(outs[i] ** 2).mean(1) for i in dense_at]))
    values = torch.stack(per_seed)  # (seeds, layers, inputs)
    mean, std = values.mean(0), values.std(0)
    for row, i in enumerate(dense_at):
        prefix = arch.serial(*layers[: i + 1])
        expected = prefix.kernel(
            x, parametrization="ntk" if i < dense_at[-1] else parametrization
        ).nngp.diagonal()
        tol = 5 * std[row] / 4 + std[row] ** 2 / expected
        assert bool(((mean[row] - expected).abs() <= tol).all()), (i, mean[row], expected)
    if parametrization == "mup":
        assert float(mean[-1].max()) < 0.1  # the readout variance is O(1/width)


def test_ntk_parametrization_weights_are_standard_normal() -> None:
    model = arch.serial(arch.Dense(2048), arch.ReLU(), arch.Dense(1)).build(64, parametrization="ntk", seed=1)
    w = model[0].weight.detach().double()
    assert abs(float(w.std()) - 1.0) < 5 * (0.5 / 2048 / 64) ** 0.5
    model = arch.serial(arch.Dense(2048, sigma_w=2.0), arch.ReLU(), arch.Dense(1)).build(
        64, parametrization="standard"
    )
    w = model[0].weight.detach().double()
    assert abs(float(w.std()) - 2.0 / 8) < 5 * (0.5 / 2048 / 64) ** 0.5 * 0.25


def test_errors_name_layer_argument_and_choices(make_inputs) -> None:
    net = arch.serial(arch.Dense(8), arch.ReLU(), arch.Dense(1))
    with pytest.raises(ValueError, match=r"Serial: parametrization='ntks' .*'ntk', 'standard', 'mup'"):
        net.kernel(make_inputs(2, 3), parametrization="ntks")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"Serial: parametrization='NTK'"):
        net.build((3,), parametrization="NTK")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"Dense: width=0 .*positive int"):
        arch.Dense(0)
    with pytest.raises(ValueError, match=r"Dense: sigma_w=-1.0 .*>= 0"):
        arch.Dense(3, sigma_w=-1.0)
    with pytest.raises(ValueError, match=r"Serial: last layer=ReLU\(\) .*Dense"):
        arch.serial(arch.Dense(3), arch.ReLU()).build((3,))
    with pytest.raises(ValueError, match=r"Dense: input shape=\(2, 5\) .*Flatten\(\) or GlobalAvgPool\(\)"):
        net.build((2, 5))
    with pytest.raises(ValueError, match=r"Serial: layers\[1\]=.*did you mean ReLU\(\)"):
        arch.serial(arch.Dense(3), arch.ReLU, arch.Dense(1))  # type: ignore[arg-type]
