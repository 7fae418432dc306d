"""empirical_ntk against brute-force torch.func Jacobians, in float64, for every method × outputs mode."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

import tangentlab
from tangentlab.kernels import ntk_cost

from .models import CASES, make_case
from .reference import reference_ntk

METHODS = ["jacobian", "ntvp", "structured", "auto"]
OUTPUTS = ["trace", "mean", "full", "diagonal"]


def assert_matches(got: torch.Tensor, want: torch.Tensor, tol: float = 1e-9) -> None:
    assert got.shape == want.shape
    assert got.dtype == want.dtype
    scale = max(1.0, float(want.abs().max()))
    err = float((got - want).abs().max())
    assert err <= tol * scale, f"max abs error {err:.3e} > {tol:.0e} × {scale:.3g}"


@pytest.mark.parametrize(("case", "method", "outputs"), list(itertools.product(CASES, METHODS, OUTPUTS)))
def test_matches_bruteforce_jacobian(case: str, method: str, outputs: str) -> None:
    model, x1, x2 = make_case(case, n1=5, n2=3)
    want = reference_ntk(model, x1, x2, outputs)
    assert_matches(tangentlab.empirical_ntk(model, x1, x2, outputs=outputs, method=method), want)


@pytest.mark.parametrize(("case", "method"), list(itertools.product(CASES, METHODS)))
def test_x2_none_is_x1_against_itself_in_blocks(case: str, method: str) -> None:
    # batch_size=2 makes uneven blocks, so the mirrored upper triangle is exercised.
    model, x1, _ = make_case(case, n1=5, n2=1)
    want = reference_ntk(model, x1, None, "full")
    got = tangentlab.empirical_ntk(model, x1, outputs="full", method=method, batch_size=2)
    assert_matches(got, want)
    assert torch.equal(got, got.permute(1, 0, 3, 2))


@pytest.mark.parametrize("method", METHODS)
def test_blocked_cross_kernel_with_uneven_blocks(method: str) -> None:
    model, x1, x2 = make_case("conv2d_flatten", n1=7, n2=4)
    want = reference_ntk(model, x1, x2, "trace")
    assert_matches(tangentlab.empirical_ntk(model, x1, x2, method=method, batch_size=3), want)


@pytest.mark.parametrize("strategy", ["gram", "jacobian"])
@pytest.mark.parametrize("case", ["conv2d_flatten", "conv1d_avgpool", "tokens"])
def test_structured_layer_strategies_agree(case: str, strategy: str) -> None:
    """Both per-layer strategies of the structured method, forced, give the reference (trace mode)."""
    from tangentlab.kernels.methods import probe, trainable_params
    from tangentlab.kernels.methods.structured import StructuredBlocks

    model, x1, x2 = make_case(case, n1=4, n2=3)
    shape = probe(model, x1, trainable_params(model))
    assert shape.layers, "the case must have structured layers"
    engine = StructuredBlocks(
        model,
        shape.layers,
        {s.name: strategy for s in shape.layers},
        shape.other_params,
        "trace",
        shape.num_outputs,
    )
    got = engine.pair(engine.features(x1), engine.features(x2))
    assert_matches(got.detach(), reference_ntk(model, x1, x2, "trace"))


def test_float32_matches_float64_reference() -> None:
    model64, x1, x2 = make_case("conv2d_flatten", n1=6, n2=4)
    want = reference_ntk(model64, x1, x2, "trace")
    model32 = model64.float()
    for method in ["jacobian", "ntvp", "structured"]:
        got = tangentlab.empirical_ntk(model32, x1.float(), x2.float(), method=method)
        assert got.dtype == torch.float32
        assert_matches(got.double(), want, tol=1e-4)


def test_result_has_no_autograd_history() -> None:
    model, x1, x2 = make_case("mlp", n1=3, n2=2)
    for method in ["jacobian", "ntvp", "structured"]:
        assert not tangentlab.empirical_ntk(model, x1, x2, method=method).requires_grad


def test_model_left_as_it_was() -> None:
    model, x1, _ = make_case("buffers_eval", n1=4, n2=1)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    tangentlab.empirical_ntk(model, x1, method="structured")
    assert not model.training
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert all(not m._forward_hooks for m in model.modules())


def test_auto_prefers_structured_for_wide_mlp_and_respects_memory() -> None:
    model = nn.Sequential(
        nn.Linear(784, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(), nn.Linear(1024, 10)
    )
    x = torch.randn(32, 784)
    costs = ntk_cost(model, x)
    assert set(costs) == {"jacobian", "ntvp", "structured"}
    assert costs["structured"].flops < costs["jacobian"].flops / 5
    assert costs["structured"].flops < costs["ntvp"].flops / 5
    big = ntk_cost(model, torch.randn(2000, 784))  # then the Gram products dominate: no fan_in × fan_out term
    assert big["structured"].flops < big["jacobian"].flops / 50
    # 10 outputs × 1.86M parameters × 4 bytes ≈ 74 MB per example: a 16 MB budget cannot hold one Jacobian row.
    small = ntk_cost(model, x, memory_budget=16 * 1024**2)
    assert not small["jacobian"].feasible
    assert small["structured"].feasible
