"""linearize(): the Taylor model against brute-force Jacobians, and its GD training against gradient_descent_mse."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn
from torch.func import functional_call, jacrev

import tangentlab
from tangentlab.predict import gradient_descent_mse
from tangentlab.train import LinearizedModel, fit, linearize


def _data(n: int, d: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=torch.float64), torch.randn(
        n, 2, generator=g, dtype=torch.float64
    )


def test_linearized_outputs_equal_taylor_expansion_with_bruteforce_jacobian(
    ntk_mlp: Callable[..., nn.Module],
) -> None:
    net = ntk_mlp(3, 16, 2, out_dim=2, act=nn.Tanh)
    x, _ = _data(5, 3)
    lin = linearize(net)
    torch.testing.assert_close(lin(x), net(x))
    params0 = {k: v.detach().clone() for k, v in net.named_parameters()}
    g = torch.Generator().manual_seed(1)
    deltas = {k: 0.1 * torch.randn(v.shape, generator=g, dtype=torch.float64) for k, v in params0.items()}
    with torch.no_grad():
        for p, name in zip(lin.params, lin.param_names, strict=True):
            p.add_(deltas[name])
    jac = jacrev(lambda p: functional_call(net, p, (x,)))(params0)
    ref = net(x) + sum((jac[k].reshape(5, 2, -1) @ deltas[k].reshape(-1)) for k in params0)
    torch.testing.assert_close(lin(x), ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(lin.forward_at_init(x), net(x))


def test_linearized_model_has_the_init_ntk_at_every_theta(ntk_mlp: Callable[..., nn.Module]) -> None:
    net = ntk_mlp(3, 16, 1, act=nn.Tanh)
    x, y = _data(6, 3)
    lin = linearize(net)
    fit(lin, x, y[:, :1], steps=20, learning_rate=0.5)
    torch.testing.assert_close(tangentlab.empirical_ntk(lin, x), tangentlab.empirical_ntk(net, x))
    assert isinstance(lin, LinearizedModel) and len(list(lin.parameters())) == len(list(net.parameters()))


def test_linearized_training_follows_gradient_descent_mse(ntk_mlp: Callable[..., nn.Module]) -> None:
    """GD on the linearized net is exactly linear GD; against the flow the gap per mode is (1-r)^T - exp(-rT)."""
    net = ntk_mlp(4, 32, 1, act=nn.Tanh)
    x, y = _data(12, 4)
    xs, _ = _data(5, 4, seed=3)
    y = y[:, :1]
    k_xx, k_sx = tangentlab.empirical_ntk(net, x), tangentlab.empirical_ntk(net, xs, x)
    with torch.no_grad():
        f0, f0s = net(x), net(xs)
    lam = torch.linalg.eigvalsh(k_xx)
    lr = 0.01 * 12 / float(lam[-1])
    steps = 400
    lin = linearize(net)
    result = fit(lin, x, y, steps=steps, learning_rate=lr)
    assert result.status == "completed"
    pred = gradient_descent_mse(k_xx, y, t=steps, learning_rate=lr, f0_train=f0)
    pred_s = gradient_descent_mse(k_xx, y, k_sx, t=steps, learning_rate=lr, f0_train=f0, f0_test=f0s)
    r = (lr * lam / 12).clamp(min=0)
    gap = ((1 - r) ** steps - torch.exp(-r * steps)).abs()
    resid = float(torch.linalg.norm(f0 - y))
    with torch.no_grad():
        assert float(torch.linalg.norm(lin(x) - pred)) <= float(gap.max()) * resid * 1.001 + 1e-10
        bound = float(torch.linalg.matrix_norm(k_sx, ord=2) * (gap / lam).max()) * resid
        assert float(torch.linalg.norm(lin(xs) - pred_s)) <= bound * 1.001 + 1e-10
    assert (
        float(torch.linalg.norm(pred - f0)) > 10 * float(gap.max()) * resid
    )  # training moved it; not vacuous


def test_linearize_rejects_non_modules_and_frozen_models() -> None:
    with pytest.raises(TypeError, match=r"model: expected a torch\.nn\.Module, got function"):
        linearize(lambda x: x)  # type: ignore[arg-type]
    frozen = nn.Linear(2, 1).requires_grad_(False)
    with pytest.raises(ValueError, match="at least one trainable parameter"):
        linearize(frozen)


def test_two_output_linearized_training_follows_the_full_kernel_prediction(
    ntk_mlp: Callable[..., nn.Module],
) -> None:
    """With O = 2 outputs the full (n, n, O, O) eNTK couples the outputs; GD follows it up to discretisation."""
    net = ntk_mlp(3, 24, 1, out_dim=2, act=nn.Tanh)
    x, y = _data(10, 3)
    xs, _ = _data(4, 3, seed=5)
    k_xx = tangentlab.empirical_ntk(net, x, outputs="full")
    k_sx = tangentlab.empirical_ntk(net, xs, x, outputs="full")
    with torch.no_grad():
        f0, f0s = net(x), net(xs)
    flat = k_xx.permute(0, 2, 1, 3).reshape(20, 20)
    lam = torch.linalg.eigvalsh(flat)
    lr = 0.01 * 10 / float(lam[-1])
    steps = 300
    lin = linearize(net)
    fit(lin, x, y, steps=steps, learning_rate=lr)
    pred = gradient_descent_mse(k_xx, y, k_sx, t=steps, learning_rate=lr, f0_train=f0, f0_test=f0s)
    pred_train = gradient_descent_mse(k_xx, y, t=steps, learning_rate=lr, f0_train=f0)
    assert pred.shape == (4, 2) and pred_train.shape == (10, 2)
    r = (lr * lam / 10).clamp(min=0)
    gaps = ((1 - r) ** steps - torch.exp(-r * steps)).abs()
    resid = float(torch.linalg.norm(f0 - y))
    bound = float(
        torch.linalg.matrix_norm(k_sx.permute(0, 2, 1, 3).reshape(8, 20), ord=2) * (gaps / lam).max()
    )
    with torch.no_grad():
        assert float(torch.linalg.norm(lin(x) - pred_train)) <= float(gaps.max()) * resid * 1.001 + 1e-10
        assert float(torch.linalg.norm(lin(xs) - pred)) <= bound * resid * 1.001 + 1e-10
    assert float(torch.linalg.norm(pred - f0s)) > 10 * bound * resid  # not vacuous
    # the trace kernel / O is only an approximation at finite width: the full kernel is the exact counterpart
    with pytest.raises(ValueError, match=r"y_train: expected shape \(10, 3\)"):
        gradient_descent_mse(torch.zeros(10, 10, 3, 3, dtype=torch.float64), y)
