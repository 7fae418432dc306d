"""The dense-chain trace eNTK (the backward pass of an ``nn.Sequential`` MLP written out) against brute-force
torch.func Jacobians in float64, and the cases it must leave to the autograd route."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import tangentlab
from tangentlab.kernels.methods import probe, trainable_params
from tangentlab.kernels.methods.structured import ELEMENTWISE, DenseChainBlocks, StructuredMethod, dense_chain
from tangentlab.modules import ScaledLinear

from .reference import reference_ntk
from .test_empirical_ntk import assert_matches


def _chains() -> dict[str, nn.Module]:
    torch.manual_seed(0)
    return {
        "relu_depth3": nn.Sequential(
            nn.Linear(6, 16),
            nn.ReLU(),
            nn.Linear(16, 12),
            nn.ReLU(),
            nn.Linear(12, 9),
            nn.ReLU(),
            nn.Linear(9, 4),
        ),
        "inplace_leaky_tanh_no_bias": nn.Sequential(
            nn.Linear(6, 10, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(10, 8),
            nn.Tanh(),
            nn.Linear(8, 7, bias=False),
            nn.Sigmoid(),
            nn.Linear(7, 3),
        ),
        "scaled_nested_two_acts_gelu": nn.Sequential(
            ScaledLinear(6, 11, weight_scale=0.7, bias_scale=0.2),
            nn.Sequential(nn.ELU(inplace=True), nn.Sequential(nn.GELU())),
            ScaledLinear(11, 9, weight_scale=1.3, bias_scale=0.5),
            nn.SiLU(),
            nn.Linear(9, 8),
            nn.Identity(),
            ScaledLinear(8, 2, weight_scale=0.4, bias_scale=0.3),
        ),
        "linear_into_linear": nn.Sequential(nn.Linear(6, 8), nn.Linear(8, 7), nn.Linear(7, 5)),
        "two_layers": nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3)),
        "one_layer_single_output": nn.Sequential(nn.Linear(6, 1)),
    }


@pytest.mark.parametrize("name", list(_chains()))
def test_dense_chain_matches_bruteforce_jacobians(name: str) -> None:
    model = _chains()[name].double()
    x1 = torch.randn(5, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    x2 = torch.randn(4, 6, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    shape = probe(model, x1, trainable_params(model))
    chain = dense_chain(model, shape.layers, ELEMENTWISE)
    assert chain is not None and len(chain.layers) == len(shape.layers)
    engine = DenseChainBlocks(chain, shape.num_outputs)
    want = reference_ntk(model, x1, x2, "trace")
    assert_matches(engine.pair(engine.features(x1), engine.features(x2)), want, tol=1e-12)
    assert_matches(
        engine.pair(engine.features(x1), engine.features(x1)),
        reference_ntk(model, x1, None, "trace"),
        tol=1e-12,
    )
    for outputs in ("trace", "mean"):
        got = tangentlab.empirical_ntk(model, x1, x2, outputs=outputs, method="structured")
        assert_matches(got, reference_ntk(model, x1, x2, outputs), tol=1e-12)
    # the engine the method hands out for the trace is the chain's; for "full" the autograd route
    built = StructuredMethod().engine(model, {}, shape, "trace", None, 5, 4, 1e9, 8)  # type: ignore[arg-type]
    assert isinstance(built, DenseChainBlocks)
    assert not isinstance(
        StructuredMethod().engine(model, {}, shape, "full", None, 5, 4, 1e9, 8), DenseChainBlocks
    )  # type: ignore[arg-type]


def test_image_input_through_a_leading_flatten() -> None:
    torch.manual_seed(3)
    model = nn.Sequential(
        nn.Flatten(), nn.Linear(12, 7), nn.ReLU(), nn.Linear(7, 6), nn.ReLU(), nn.Linear(6, 3)
    ).double()
    x = torch.randn(4, 3, 2, 2, dtype=torch.float64)
    shape = probe(model, x, trainable_params(model))
    assert dense_chain(model, shape.layers, ELEMENTWISE) is not None
    assert_matches(
        tangentlab.empirical_ntk(model, x, method="structured"),
        reference_ntk(model, x, None, "trace"),
        tol=1e-12,
    )


def _not_chains() -> dict[str, nn.Module]:
    torch.manual_seed(0)
    frozen = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    frozen[0].weight.requires_grad_(False)
    shared = nn.Linear(8, 8)
    hooked = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    hooked[1].register_forward_hook(lambda module, args, out: out * 2)
    return {
        "frozen_weight": frozen,
        "shared_layer": nn.Sequential(nn.Linear(6, 8), nn.ReLU(), shared, nn.ReLU(), shared, nn.Linear(8, 3)),
        "hooked_activation": hooked,
        "non_elementwise_softmax": nn.Sequential(nn.Linear(6, 8), nn.Softmax(dim=1), nn.Linear(8, 3)),
        "activation_after_readout": nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3), nn.Tanh()),
        "layernorm": nn.Sequential(nn.Linear(6, 8), nn.LayerNorm(8), nn.Linear(8, 3)),
    }


@pytest.mark.parametrize("name", list(_not_chains()))
def test_other_models_are_left_to_autograd_and_still_exact(name: str) -> None:
    model = _not_chains()[name].double()
    x1 = torch.randn(5, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    shape = probe(model, x1, trainable_params(model))
    assert dense_chain(model, shape.layers, ELEMENTWISE) is None or shape.other_params
    got = tangentlab.empirical_ntk(model, x1, outputs="trace", method="structured")
    assert_matches(got, reference_ntk(model, x1, None, "trace"), tol=1e-12)


def test_progress_bar_changes_nothing_but_the_display(capsys) -> None:
    model = _chains()["relu_depth3"].double()
    x = torch.randn(9, 6, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    quiet = tangentlab.empirical_ntk(model, x, batch_size=4)
    shown = tangentlab.empirical_ntk(model, x, batch_size=4, progress=True)
    assert torch.equal(quiet, shown)
    assert "empirical NTK blocks" in capsys.readouterr().err
