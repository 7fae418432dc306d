"""The ``ntk_update`` study: the batched one-step NTK change against the eNTK of an arch net recomputed after an
explicit SGD step (float64), the first-order update against finite differences of that brute force, the exponent
fits on synthetic data with known exponents, and a small sweep through the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from tangentlab import arch, empirical_ntk, train
from tangentlab.studies.ntk_update import numerics
from tests.studies._cli import cli

F64 = torch.float64


def _arch_copy(nets: numerics.Nets, k: int) -> torch.nn.Module:
    """Net ``k`` of a batch as an :mod:`tangentlab.arch` net (He scales, unit bias scale, the same parameters)."""
    layers: list[arch.Layer] = []
    for w in nets.weights[:-1]:
        layers += [arch.Dense(w.shape[1], sigma_w=math.sqrt(2), sigma_b=1.0), arch.ReLU()]
    layers.append(arch.Dense(1, sigma_w=math.sqrt(2), sigma_b=1.0))
    net = arch.serial(*layers).build((nets.weights[0].shape[2],), dtype=F64)
    linears = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        for lin, w, b in zip(linears, nets.weights, nets.biases, strict=True):
            lin.weight.copy_(w[k])
            assert lin.bias is not None
            lin.bias.copy_(b[k])
    return net


def _entk(net: torch.nn.Module, x: torch.Tensor) -> float:
    return float(empirical_ntk(net, x[None], outputs="trace")[0, 0])


@pytest.fixture(scope="module")
def nets_and_input() -> tuple[numerics.Nets, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    x = torch.randn(5, generator=g, dtype=F64)
    return numerics.sample_nets(3, 5, 6, 3, g), x


def test_the_one_step_kernel_change_equals_the_entk_recomputed_after_an_explicit_sgd_step(nets_and_input):
    nets, x = nets_and_input
    y, lr = 0.4, 0.05
    kernel, change = numerics.one_step_kernel_change(nets, x, y, lr)
    for k in range(3):
        net = _arch_copy(nets, k)
        with torch.no_grad():
            assert math.isclose(float(net(x[None])[0, 0]), float(numerics.outputs(nets, x)[k]), rel_tol=1e-12)
        before = _entk(net, x)
        train.fit(net, x[None], torch.tensor([[y]], dtype=F64), steps=1, learning_rate=lr, optimizer="gd")
        after = _entk(net, x)
        assert math.isclose(float(kernel[k]), before, rel_tol=1e-12)
        assert math.isclose(float(change[k]), after - before, rel_tol=1e-9, abs_tol=1e-12)


def test_the_first_order_update_is_the_small_step_limit_of_the_brute_force_change(nets_and_input):
    nets, x = nets_and_input
    y = -0.3
    kernel, slope = numerics.first_order_kernel_change(nets, x, y)
    for k in range(3):
        changes = []
        for lr in (1e-5, -1e-5):  # central difference of the brute-force eNTK after an explicit step
            net = _arch_copy(nets, k)
            before = _entk(net, x)
            with torch.no_grad():  # theta - lr (f - y) grad f, written out on the arch net's own parameters
                out = net(x[None])[0, 0]
            grads = torch.autograd.grad(net(x[None])[0, 0], list(net.parameters()))
            with torch.no_grad():
                for p, g in zip(net.parameters(), grads, strict=True):
                    p -= lr * (out - y) * g
            changes.append((_entk(net, x) - before) / lr)
            assert math.isclose(float(kernel[k]), before, rel_tol=1e-12)
        reference = 0.5 * (changes[0] + changes[1])
        assert math.isclose(float(slope[k]), reference, rel_tol=1e-6, abs_tol=1e-9), (
            float(slope[k]),
            reference,
        )


def test_the_theorem_form_fit_recovers_a_known_rate_and_the_free_fit_its_powers():
    rng = np.random.default_rng(0)
    widths = np.repeat([16.0, 32.0, 64.0], 6)
    betas = np.tile([0.0625, 0.125, 0.25, 0.5, 0.75, 1.0], 3)
    depth = widths * betas
    ratio = 0.3 * depth * betas * np.exp(4.2 * betas) * np.exp(0.01 * rng.standard_normal(betas.size))
    fit = numerics.fit_beta(depth, widths, ratio)
    assert abs(fit.rate - 4.2) < 0.05 and abs(fit.intercept - math.log(0.3)) < 0.05
    assert fit.depth_power is None and fit.width_power is None
    free = numerics.fit_beta(depth, widths, ratio * depth**-0.5 * widths**0.25, prefactor="free")
    assert free.depth_power is not None and free.width_power is not None
    assert (
        abs(free.rate - 4.2) < 0.1
        and abs(free.depth_power - 1.5) < 0.05
        and abs(free.width_power + 0.75) < 0.05
    )
    noisy = ratio.copy()
    noisy[-1] *= 50.0  # one wild point with a large standard error barely moves the weighted fit
    se = np.full(ratio.size, 0.01)
    se[-1] = 10.0
    assert abs(numerics.fit_beta(depth, widths, noisy, log_se=se).rate - 4.2) < 0.05
    with pytest.raises(ValueError, match="finite positive"):
        numerics.fit_beta(depth, widths, -ratio)
    with pytest.raises(ValueError, match="prefactor"):
        numerics.fit_beta(depth, widths, ratio, prefactor="other")


def test_a_small_sweep_runs_and_reports_its_fit_as_data(tmp_path: Path):
    config = tmp_path / "ntk_update.yaml"
    config.write_text(
        "study: ntk_update\n"
        "data: {name: synthetic, n_train: 1, n_test: 1, options: {input_dim: 8}}\n"
        "params: {n_nets: 200}\n"
        "grid: {width: [4, 8], beta: [0.25, 0.5, 1.0]}\n"
        "seeds: 1\n"
    )
    done = cli("run", str(config), "--out", str(tmp_path / "runs"), "--workers", "1")
    assert done.returncode == 0, done.stderr
    assert cli("report", str(tmp_path / "runs")).returncode == 0
    findings = json.loads((tmp_path / "runs" / "report" / "findings.json").read_text())
    studies = findings["studies"]
    section = studies["ntk_update"] if isinstance(studies, dict) else studies[0]
    numbers = section["numbers"]
    assert {(p["width"], p["depth"]) for p in numbers["points"]} == {
        (4, 1),
        (4, 2),
        (4, 4),
        (8, 2),
        (8, 4),
        (8, 8),
    }
    assert numbers["theorem_fit"] is not None and math.isfinite(numbers["theorem_fit"]["rate"])
    assert set(numbers["fixed_depth_width_slopes"]) == {"2", "4"}
    control = numbers["positive_control"]
    assert control["measured"] == numbers["fixed_depth_width_slopes"]
    assert control["verdict"] == (
        "match" if all(v < -0.5 for v in control["measured"].values()) else "no match"
    )
    assert section["verdict"] in ("supported", "mixed", "not supported", "inconclusive")
