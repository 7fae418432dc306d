"""The eNTK fast paths against brute-force torch.func Jacobians in float64: outputs summed before the Gram
(last hidden dense layer of a Sequential MLP), the per-model memo of the probe and the per-example check, and
x1 against itself split into blocks of which only the upper triangle is computed."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import tangentlab
from tangentlab.kernels import _cache, empirical
from tangentlab.kernels.methods import probe, trainable_params
from tangentlab.kernels.methods.structured import StructuredBlocks, output_contractions
from tangentlab.modules import ScaledLinear

from .reference import reference_ntk
from .test_empirical_ntk import assert_matches


def _inputs(n: int, d: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _models() -> dict[str, nn.Module]:
    torch.manual_seed(0)
    return {
        "relu": nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 4)),
        "nested_two_acts": nn.Sequential(
            nn.Linear(6, 10),
            nn.Sequential(nn.Linear(10, 9), nn.Tanh(), nn.Sequential(nn.GELU())),
            ScaledLinear(9, 3, weight_scale=0.4, bias_scale=0.3),
        ),
        "no_activation": nn.Sequential(nn.Linear(6, 8), nn.Sigmoid(), nn.Linear(8, 7), nn.Linear(7, 5)),
    }


@pytest.mark.parametrize("name", list(_models()))
def test_outputs_summed_before_the_gram_match_bruteforce(name: str) -> None:
    model = _models()[name].double()
    x1, x2 = _inputs(5, 6), _inputs(4, 6, seed=2)
    shape = probe(model, x1, trainable_params(model))
    strategies = {s.name: "gram" for s in shape.layers}
    fast = StructuredBlocks(model, shape.layers, strategies, shape.other_params, "trace", shape.num_outputs)
    plain = StructuredBlocks(
        model,
        shape.layers,
        strategies,
        shape.other_params,
        "trace",
        shape.num_outputs,
        contract_outputs=False,
    )
    assert len(fast.contractions) == 1 and not plain.contractions
    want = reference_ntk(model, x1, x2, "trace")
    for engine in (fast, plain):
        assert_matches(engine.pair(engine.features(x1), engine.features(x2)).detach(), want, tol=1e-12)
    for outputs in ("trace", "mean", "full"):
        got = tangentlab.empirical_ntk(model, x1, x2, outputs=outputs, method="structured")
        assert_matches(got, reference_ntk(model, x1, x2, outputs), tol=1e-12)


def test_contraction_needs_an_elementwise_path_to_a_dense_readout() -> None:
    torch.manual_seed(0)
    cases = {
        "the last hidden layer": (_models()["relu"], {"2"}),
        "layer norm in between": (nn.Sequential(nn.Linear(4, 6), nn.LayerNorm(6), nn.Linear(6, 2)), set()),
        "softmax mixes units": (nn.Sequential(nn.Linear(4, 6), nn.Softmax(-1), nn.Linear(6, 2)), set()),
        "not a Sequential": (nn.ModuleList([nn.Linear(4, 2)]), set()),
    }
    for label, (model, want) in cases.items():
        if isinstance(model, nn.ModuleList):
            assert output_contractions(model, []) == {}, label
            continue
        x = _inputs(2, 4 if label != "the last hidden layer" else 6)
        shape = probe(model, x, trainable_params(model.double()))
        assert set(output_contractions(model, shape.layers)) == want, label


def test_probe_and_check_run_once_per_model_and_input_shape(monkeypatch) -> None:
    model = _models()["relu"].double()
    calls = {"probe": 0, "check": 0}
    real_probe, real_check = empirical.probe, empirical.check_per_example

    def count_probe(*args):
        calls["probe"] += 1
        return real_probe(*args)

    def count_check(*args):
        calls["check"] += 1
        return real_check(*args)

    monkeypatch.setattr(empirical, "probe", count_probe)
    monkeypatch.setattr(empirical, "check_per_example", count_check)
    x = _inputs(5, 6)
    first = tangentlab.empirical_ntk(model, x)
    again = tangentlab.empirical_ntk(model, x[:3])
    assert calls == {"probe": 1, "check": 1}
    assert torch.equal(again, first[:3, :3]) or float((again - first[:3, :3]).abs().max()) < 1e-12
    model[2].weight.requires_grad_(False)  # a different set of trainable parameters: probed again
    frozen = tangentlab.empirical_ntk(model, x)
    assert calls == {"probe": 2, "check": 2}
    assert_matches(frozen, reference_ntk(model, x, None, "trace"), tol=1e-12)
    model.train(False)
    tangentlab.empirical_ntk(model, x)
    assert calls == {"probe": 3, "check": 3}
    _cache.forget(model)
    tangentlab.empirical_ntk(model, x)
    assert calls == {"probe": 4, "check": 4}


def test_memo_does_not_keep_a_model_alive() -> None:
    import gc
    import weakref

    model = nn.Linear(3, 2).double()  # the model is its own structured layer: not stored
    ref = weakref.ref(model)
    tangentlab.empirical_ntk(model, _inputs(3, 3))
    seq = _models()["relu"].double()
    seq_ref = weakref.ref(seq)
    tangentlab.empirical_ntk(seq, _inputs(3, 6))
    del model, seq
    gc.collect()
    assert ref() is None and seq_ref() is None


@pytest.mark.parametrize("method", ["structured", "jacobian"])
def test_x1_against_itself_split_into_upper_triangle_blocks(method: str, monkeypatch) -> None:
    monkeypatch.setattr(empirical, "SYMMETRIC_SPLIT", 8)  # 30 examples: 3 blocks of 10
    model = _models()["nested_two_acts"].double()
    x = _inputs(30, 6)
    got = tangentlab.empirical_ntk(model, x, method=method)
    assert_matches(got, reference_ntk(model, x, None, "trace"), tol=1e-12)
    assert torch.equal(got, got.T)
    assert empirical._symmetric_block(30) == 10 and empirical._symmetric_block(7) == 7
