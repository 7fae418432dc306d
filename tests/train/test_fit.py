"""fit(): optimizers, losses, divergence, early stopping, snapshots, and errors that leave the model untouched."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from torch import nn

import tangentlab
from tangentlab.metrics import relative_param_change
from tangentlab.train import EarlyStopping, Snapshots, fit, mse_loss, trainable_vector


def _data(n: int = 16, d: int = 3, k: int = 1, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=torch.float64), torch.randn(
        n, k, generator=g, dtype=torch.float64
    )


def test_gd_step_is_theta_minus_lr_grad_of_half_mean_squared_error() -> None:
    net = nn.Linear(3, 1, dtype=torch.float64)
    x, y = _data()
    w0, b0 = net.weight.detach().clone(), net.bias.detach().clone()
    resid = x @ w0.T + b0 - y
    fit(net, x, y, steps=1, learning_rate=0.3)
    torch.testing.assert_close(net.weight.detach(), w0 - 0.3 * resid.T @ x / 16)
    torch.testing.assert_close(net.bias.detach(), b0 - 0.3 * resid.sum(0) / 16)
    assert float(mse_loss(torch.ones(4, 2), torch.zeros(4, 2))) == pytest.approx(1.0)


def test_divergence_is_recorded_not_raised(ntk_mlp: Callable[..., nn.Module]) -> None:
    net = ntk_mlp(3, 32, 1)
    x, y = _data()
    result = fit(net, x, y, steps=500, learning_rate=50.0)
    assert result.status == "diverged" and result.diverged
    assert "diverged at step" in result.message and result.steps_run < 500
    assert len(result.history.batch_loss) == result.steps_run + 1


def test_nan_in_the_loss_is_recorded_as_divergence() -> None:
    class Explodes(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.ones(1, dtype=torch.float64))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return (x * self.w).sum(1, keepdim=True) * (torch.log(self.w - 0.5))

    x, y = _data()
    # an infinite factor switches the "above FACTOR x initial" part of the rule off: the NaN itself must stop it
    result = fit(Explodes(), x, y, steps=50, learning_rate=10.0, divergence_factor=math.inf)
    assert result.status == "diverged" and "nan" in result.message.lower()


@pytest.mark.parametrize(
    ("x", "y", "kwargs", "err", "match"),
    [
        (
            torch.randn(8, 3),
            torch.full((8, 1), float("nan")),
            {},
            ValueError,
            "y_train: expected finite values, got 8 NaN",
        ),
        (
            torch.empty(0, 3),
            torch.empty(0, 1),
            {},
            ValueError,
            r"x_train: expected a non-empty batch \(n, ...\), got shape \(0, 3\)",
        ),
        (
            torch.randn(8, 3),
            torch.randn(7, 1),
            {},
            ValueError,
            r"y_train: expected 8 rows to match x_train, got shape \(7, 1\)",
        ),
        (
            torch.randn(8, 3),
            torch.randn(8, 2),
            {},
            ValueError,
            r"y_train: expected per-example shape \(1,\) to match",
        ),
        (
            torch.randn(8, 3),
            torch.randn(8, 1),
            {"optimizer": "lbfgs"},
            ValueError,
            r"optimizer: expected one of \('gd', 'sgd', 'adam'\), got 'lbfgs'",
        ),
        (
            torch.randn(8, 3),
            torch.randn(8, 1),
            {"loss": "l1"},
            ValueError,
            r"loss: expected one of \('mse', 'cross_entropy'\)",
        ),
        (
            torch.randn(8, 3),
            torch.randn(8, 1),
            {"optimizer": "sgd"},
            ValueError,
            "batch_size: required for optimizer='sgd'",
        ),
        (
            torch.randn(8, 3),
            torch.randn(8, 1),
            {"batch_size": 4},
            ValueError,
            "batch_size: must be None for optimizer='gd'",
        ),
        (
            torch.randn(8, 3),
            torch.randn(8, 1),
            {"early_stopping": EarlyStopping()},
            ValueError,
            "early_stopping: needs validation data",
        ),
        (
            torch.randn(8, 3),
            torch.randint(0, 3, (8,)),
            {"loss": "mse"},
            TypeError,
            "y_train: expected floating targets",
        ),
        (
            torch.randn(8, 3),
            torch.tensor([0, 1, 2, 3, 0, 1, 2, 3]),
            {"loss": "cross_entropy"},
            ValueError,
            r"class indices in \[0, 1\)",
        ),
        ([[1.0]], torch.randn(1, 1), {}, TypeError, "x_train: expected a torch.Tensor, got list"),
    ],
)
def test_bad_calls_raise_before_touching_the_model(
    x: object, y: object, kwargs: dict, err: type, match: str
) -> None:
    net = nn.Linear(3, 1, dtype=torch.float64)
    before = trainable_vector(net)
    with pytest.raises(err, match=match):
        fit(net, x, y, steps=5, learning_rate=0.1, **kwargs)  # type: ignore[arg-type]
    assert torch.equal(trainable_vector(net), before)


def test_sgd_is_deterministic_given_seed_and_adam_and_cross_entropy_train(
    ntk_mlp: Callable[..., nn.Module],
) -> None:
    x, _ = _data(24, 3)
    labels = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
    runs = []
    for _ in range(2):
        net = ntk_mlp(3, 16, 1, out_dim=3, seed=4)
        res = fit(
            net,
            x,
            labels,
            steps=30,
            learning_rate=0.5,
            optimizer="sgd",
            batch_size=5,
            loss="cross_entropy",
            seed=7,
        )
        runs.append(trainable_vector(net))
        assert res.status == "completed" and len(res.history.batch_loss) == 30
    assert torch.equal(runs[0], runs[1])
    net = ntk_mlp(3, 16, 1, out_dim=3, seed=4)
    res = fit(
        net,
        x,
        labels,
        steps=150,
        learning_rate=0.02,
        optimizer="adam",
        loss="cross_entropy",
        x_val=x,
        y_val=labels,
    )
    assert res.history.train_loss[-1] < 0.5 * res.history.train_loss[0]
    assert res.history.val_accuracy[-1] > 0.8


def test_early_stopping_stops_and_restores_the_best_parameters(ntk_mlp: Callable[..., nn.Module]) -> None:
    x, y = _data(20, 3, seed=1)
    xv, yv = _data(20, 3, seed=2)  # unrelated targets: validation loss soon gets worse
    net = ntk_mlp(3, 64, 1, seed=2)
    res = fit(
        net,
        x,
        y,
        steps=3000,
        learning_rate=1.0,
        x_val=xv,
        y_val=yv,
        eval_every=5,
        early_stopping=EarlyStopping(metric="loss", patience=4),
    )
    assert res.status == "early_stopped" and res.steps_run < 3000
    assert res.best_step is not None and res.best_val == min(res.history.val_loss)
    with torch.no_grad():
        assert float(mse_loss(net(xv), yv)) == pytest.approx(res.best_val)


def test_snapshots_record_ntk_distance_and_losses(ntk_mlp: Callable[..., nn.Module]) -> None:
    x, y = _data(10, 3)
    net = ntk_mlp(3, 32, 1)
    theta0 = [p.detach().clone() for p in net.parameters()]
    ntk0 = tangentlab.empirical_ntk(net, x[:4])
    calls: list[int] = []
    spec = Snapshots(
        steps=[0, 5, 20, 999], probe=x[:4], hooks=[lambda m, s: calls.append(s) or {"double": 2 * s}]
    )
    res = fit(net, x, y, steps=20, learning_rate=0.5, snapshots=spec)
    assert [s.step for s in res.snapshots] == [0, 5, 20] and calls == [0, 5, 20]
    first, last = res.snapshots[0], res.snapshots[-1]
    assert first.param_distance == 0.0 and first.ntk is not None and first.probe_outputs is not None
    torch.testing.assert_close(first.ntk, ntk0)
    assert last.relative_param_distance == pytest.approx(relative_param_change(net, theta0))
    assert last.train_loss == pytest.approx(res.final_train_loss) and last.extras == {"double": 40}
    assert res.history.eval_step[0] == 0 and res.history.eval_step[-1] == 20
    with pytest.raises(ValueError, match="steps: expected non-negative step numbers"):
        Snapshots(steps=[-1])
