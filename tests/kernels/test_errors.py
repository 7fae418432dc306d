"""Bad input gets an error naming the argument, the value and what would be accepted."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import tangentlab


def small() -> nn.Module:
    return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))


def test_feature_shapes_differ() -> None:
    with pytest.raises(
        ValueError, match=r"x2: expected examples of the same feature shape as x1, \(3,\); got \(4,\)"
    ):
        tangentlab.empirical_ntk(small(), torch.randn(2, 3), torch.randn(2, 4))


def test_unknown_outputs() -> None:
    with pytest.raises(
        ValueError, match=r"outputs: expected one of 'trace', 'mean', 'full', 'diagonal'; got 'sum'"
    ):
        tangentlab.empirical_ntk(small(), torch.randn(2, 3), outputs="sum")  # type: ignore[arg-type]


def test_unknown_method() -> None:
    with pytest.raises(
        ValueError, match=r"method: expected one of 'auto', 'jacobian', 'ntvp', 'structured'; got 'fast'"
    ):
        tangentlab.empirical_ntk(small(), torch.randn(2, 3), method="fast")  # type: ignore[arg-type]


def test_not_a_module() -> None:
    with pytest.raises(TypeError, match=r"model: expected a torch.nn.Module, got function"):
        tangentlab.empirical_ntk(lambda x: x, torch.randn(2, 3))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"model: expected a torch.nn.Module, got function"):
        tangentlab.empirical_nngp(lambda x: x, torch.randn(2, 3))  # type: ignore[arg-type]


def test_inputs_not_tensors_or_empty() -> None:
    with pytest.raises(TypeError, match=r"x1: expected a torch.Tensor or numpy array, got list"):
        tangentlab.empirical_ntk(small(), [[1.0, 2.0, 3.0]])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"x1: expected at least one example"):
        tangentlab.empirical_ntk(small(), torch.randn(0, 3))


def test_bad_batch_size() -> None:
    with pytest.raises(ValueError, match=r"batch_size: expected a positive integer or None, got 0"):
        tangentlab.empirical_ntk(small(), torch.randn(2, 3), batch_size=0)


def test_batchnorm_in_train_mode() -> None:
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 1))
    with pytest.raises(
        ValueError, match=r"layer '1' \(BatchNorm1d\) is in train mode .* call model.eval\(\)"
    ):
        tangentlab.empirical_ntk(model, torch.randn(5, 3))
    tangentlab.empirical_ntk(model.eval(), torch.randn(5, 3))  # eval mode is fine


def test_dropout_in_train_mode() -> None:
    model = nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.5), nn.Linear(4, 1))
    with pytest.raises(ValueError, match=r"layer '1' \(Dropout\) is in train mode and random"):
        tangentlab.empirical_ntk(model, torch.randn(5, 3))


class CenterBatch(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - x.mean(0, keepdim=True)


def test_unknown_layer_that_mixes_examples() -> None:
    model = nn.Sequential(nn.Linear(3, 4), CenterBatch(), nn.Linear(4, 1))
    with pytest.raises(ValueError, match=r"changes with the other examples in its batch"):
        tangentlab.empirical_ntk(model, torch.randn(5, 3))


def test_no_trainable_parameters() -> None:
    model = small().requires_grad_(False)
    with pytest.raises(ValueError, match=r"has no trainable parameters"):
        tangentlab.empirical_ntk(model, torch.randn(2, 3))


def test_nngp_unknown_layer() -> None:
    with pytest.raises(
        ValueError, match=r"layer: 'head' is not a submodule of Sequential; choices: '0', '1', '2'"
    ):
        tangentlab.empirical_nngp(small(), torch.randn(2, 3), layer="head")
