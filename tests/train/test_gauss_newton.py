"""Damped Gauss–Newton steps: closed forms on linear models, brute-force Jacobians on MLPs, and the loop."""

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call, jacrev

from tangentlab import empirical_ntk, train

D = torch.float64


def _linear(p: int, out: int = 1, seed: int = 0) -> nn.Linear:
    torch.manual_seed(seed)
    return nn.Linear(p, out, bias=False, dtype=D)


def _problem(n: int, p: int, out: int = 1, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, p, generator=g, dtype=D), torch.randn(n, out, generator=g, dtype=D)


def _jacobian(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Brute force: the (n O, P) Jacobian of all outputs, columns in trainable_vector order."""
    params = {k: v.detach() for k, v in model.named_parameters() if v.requires_grad}
    jac = jacrev(lambda p: functional_call(model, p, (x,)).reshape(-1))(params)
    return torch.cat([jac[k].reshape(jac[k].shape[0], -1) for k in params], dim=1)


@pytest.mark.parametrize(
    ("n", "p", "damping", "lr"), [(5, 12, 0.3, 1.0), (9, 4, 1e-2, 0.5), (6, 6, 2.0, 1.7)]
)
def test_linear_model_matches_closed_form(n, p, damping, lr):
    """f(x) = X theta: Delta = -eta X^T (X X^T + lambda I)^{-1} (X theta - y), in float64."""
    x, y = _problem(n, p)
    model = _linear(p)
    theta = model.weight.detach().reshape(-1).numpy().copy()
    X, Y = x.numpy(), y.numpy()[:, 0]
    ref = -lr * X.T @ np.linalg.solve(X @ X.T + damping * np.eye(n), X @ theta - Y)
    step = train.gauss_newton_step(model, x, y, damping=damping, learning_rate=lr, apply=False)
    np.testing.assert_allclose(step.delta.numpy(), ref, rtol=1e-10, atol=1e-12)
    assert step.loss == pytest.approx(0.5 * np.sum((X @ theta - Y) ** 2) / n, rel=1e-12)
    assert step.damping == damping
    np.testing.assert_array_equal(model.weight.detach().reshape(-1).numpy(), theta)  # apply=False: untouched
    assert step.solve.min_eigenvalue == pytest.approx(np.linalg.eigvalsh(X @ X.T + damping * np.eye(n))[0])


def test_undamped_step_solves_overparametrised_least_squares_exactly():
    """n < P, lambda = 0: one step interpolates, moving to the least-norm-change solution theta_0 + X^+ (y - X theta_0)."""
    x, y = _problem(6, 20)
    model = _linear(20)
    theta0 = model.weight.detach().reshape(-1).numpy().copy()
    step = train.gauss_newton_step(model, x, y[:, 0], damping=0.0)
    theta1 = model.weight.detach().reshape(-1).numpy()
    X, Y = x.numpy(), y.numpy()[:, 0]
    np.testing.assert_allclose(X @ theta1, Y, atol=1e-12)
    np.testing.assert_allclose(theta1, theta0 + np.linalg.pinv(X) @ (Y - X @ theta0), atol=1e-12)
    np.testing.assert_allclose(step.delta.numpy(), theta1 - theta0, atol=1e-14)


def test_relative_damping_scales_with_mean_eigenvalue():
    x, y = _problem(5, 8)
    model = _linear(8)
    mean_eig = float(np.trace(x.numpy() @ x.numpy().T)) / 5
    rel = train.gauss_newton_step(model, x, y, damping=0.1, relative_damping=True, apply=False)
    ab = train.gauss_newton_step(model, x, y, damping=0.1 * mean_eig, apply=False)
    assert rel.damping == pytest.approx(0.1 * mean_eig, rel=1e-12)
    torch.testing.assert_close(rel.delta, ab.delta, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("method", ["auto", "jacobian", "structured"])
def test_mlp_step_matches_brute_force_jacobian(ntk_mlp, method):
    """Multi-output MLP: the function-space step equals -eta J^T (J J^T + lambda I)^{-1} r from a full jacrev
    Jacobian, and the parameter-space Levenberg–Marquardt form -eta (J^T J + lambda I)^{-1} J^T r."""
    torch.manual_seed(1)
    model = ntk_mlp(3, 7, 2, out_dim=3, seed=3)
    x = torch.randn(5, 3, dtype=D)
    y = torch.randn(5, 3, dtype=D)
    lam, lr = 0.05, 0.8
    J = _jacobian(model, x).numpy()
    with torch.no_grad():
        r = (model(x) - y).reshape(-1).numpy()
    ref = -lr * J.T @ np.linalg.solve(J @ J.T + lam * np.eye(J.shape[0]), r)
    ref_lm = -lr * np.linalg.solve(J.T @ J + lam * np.eye(J.shape[1]), J.T @ r)
    before = train.trainable_vector(model)
    step = train.gauss_newton_step(model, x, y, damping=lam, learning_rate=lr, method=method)
    np.testing.assert_allclose(step.delta.numpy(), ref, rtol=1e-8, atol=1e-11)
    np.testing.assert_allclose(ref, ref_lm, rtol=1e-7, atol=1e-10)
    torch.testing.assert_close(train.trainable_vector(model), before + step.delta, rtol=0, atol=1e-14)


def test_ntk_gram_orders_rows_example_then_output(ntk_mlp):
    model = ntk_mlp(2, 5, 1, out_dim=3, seed=0)
    x = torch.randn(4, 2, dtype=D)
    J = _jacobian(model, x)
    torch.testing.assert_close(train.ntk_gram(model, x), J @ J.T, rtol=1e-10, atol=1e-12)
    full = empirical_ntk(model, x, outputs="full")
    assert train.ntk_gram(model, x)[1 * 3 + 2, 3 * 3 + 0] == pytest.approx(float(full[1, 3, 2, 0]))


def test_fit_reaches_target_in_one_step_on_linear_model():
    x, y = _problem(6, 15)
    model = _linear(15)
    res = train.fit_gauss_newton(model, x, y, steps=10, damping=0.0, loss_target=1e-20)
    assert res.status == "target_reached" and res.steps_to_target == 1 and res.steps_run == 1
    assert len(res.loss) == 2 and res.loss[1] < 1e-24
    assert res.wall_time[0] == 0.0 and res.wall_time[1] > 0 and res.time_to_target == res.wall_time[1]
    assert len(res.condition_number) == 1


def test_fit_follows_repeated_steps_and_snapshots(ntk_mlp):
    """The loop's losses equal those of calling gauss_newton_step by hand; snapshots at requested steps and at the
    stopping step."""
    torch.manual_seed(0)
    x = torch.randn(6, 3, dtype=D)
    y = torch.sin(x.sum(1, keepdim=True))
    model = ntk_mlp(3, 16, 1, seed=2)
    manual = copy.deepcopy(model)
    res = train.fit_gauss_newton(
        model, x, y, steps=4, damping=1e-3, relative_damping=True, learning_rate=0.7,
        snapshots=train.Snapshots(steps=(0, 2, 4), probe=x[:3], ntk=True, outputs=False),
    )  # fmt: skip
    assert res.status == "completed" and res.steps_run == 4 and res.steps_to_target is None
    losses = []
    for _ in range(4):
        losses.append(
            train.gauss_newton_step(manual, x, y, damping=1e-3, relative_damping=True, learning_rate=0.7).loss
        )
    with torch.no_grad():
        losses.append(float(0.5 * ((manual(x) - y) ** 2).sum() / 6))
    np.testing.assert_allclose(res.loss, losses, rtol=1e-10)
    assert res.loss[-1] < 0.1 * res.loss[0]
    assert [s.step for s in res.snapshots] == [0, 2, 4]
    assert all(b >= a for a, b in zip(res.wall_time, res.wall_time[1:], strict=False))

    model2 = ntk_mlp(3, 16, 1, seed=2)
    early = train.fit_gauss_newton(
        model2, x, y, steps=6, damping=1e-3, relative_damping=True, loss_target=res.loss[1] * 1.0000001,
        snapshots=train.Snapshots(steps=(0, 5), ntk=False, outputs=False),
    )  # fmt: skip
    assert early.status == "target_reached" and early.steps_to_target == 1
    assert [s.step for s in early.snapshots] == [0, 1]
    assert early.snapshots[1].train_loss == pytest.approx(early.loss[1])


def test_fit_records_divergence():
    """A loss above divergence_factor x the initial one stops the loop (eta = 3 triples the residual's size)."""
    x, y = _problem(4, 10)
    res = train.fit_gauss_newton(
        _linear(10), x, y, steps=5, damping=0.0, learning_rate=3.0, divergence_factor=10.0
    )
    assert res.status == "diverged" and res.steps_run == 2
    assert res.loss[1] == pytest.approx(4 * res.loss[0], rel=1e-9)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"damping": -1.0}, "damping"),
        ({"damping": math.nan}, "damping"),
        ({"damping": 0.1, "learning_rate": 0.0}, "learning_rate"),
        ({"damping": 0.1, "y": torch.zeros(5, 2, dtype=D)}, "y"),
        ({"damping": 0.1, "y": torch.zeros(4, 1, dtype=D)}, "y"),
    ],
)
def test_bad_arguments_raise_before_changing_the_model(kwargs, match):
    x, y = _problem(5, 6)
    model = _linear(6)
    before = model.weight.detach().clone()
    args = {"y": y, **kwargs}
    with pytest.raises(ValueError, match=match):
        train.gauss_newton_step(model, x, args.pop("y"), **args)
    torch.testing.assert_close(model.weight.detach(), before)


def test_fit_rejects_bad_steps_and_target():
    x, y = _problem(5, 6)
    with pytest.raises(ValueError, match="steps"):
        train.fit_gauss_newton(_linear(6), x, y, steps=-1, damping=0.1)
    with pytest.raises(ValueError, match="loss_target"):
        train.fit_gauss_newton(_linear(6), x, y, steps=2, damping=0.1, loss_target=-1.0)
