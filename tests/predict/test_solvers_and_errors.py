"""Solver records, PSD checks, KernelRegressor, gp_inference and the errors of the prediction API."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.kernel_ridge import KernelRidge

from tangentlab.predict import (
    KernelRegressor,
    NotFittedError,
    gp_inference,
    gradient_descent_mse,
    gradient_descent_mse_ensemble,
    solve_psd,
)


def _kernel(n: int, rank: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, rank, generator=g, dtype=torch.float64)
    return a @ a.T


def test_rank_deficient_kernel_records_jitter_and_infinite_condition() -> None:
    k = _kernel(8, 3)
    rhs = torch.ones(8, 1, dtype=torch.float64)
    _, info = solve_psd("k", k, rhs)
    assert info.solver == "cholesky"
    assert info.jitter > 0 and len(info.jitters_tried) >= 2 and info.jitters_tried[0] == 0.0
    assert info.condition_number > 1e10
    assert info.to_dict()["jitters_tried"] == list(info.jitters_tried)


def test_cholesky_failure_falls_back_to_eigh_and_says_so() -> None:
    k = _kernel(6, 2)
    _, info = solve_psd("k", k, torch.ones(6, 1, dtype=torch.float64), jitter_ladder=(0.0,))
    assert info.solver == "eigh" and info.n_clipped >= 4 and info.jitters_tried == (0.0,)


def test_non_psd_kernel_raises_with_lowest_eigenvalue() -> None:
    k = torch.diag(torch.tensor([2.0, 1.0, -0.5], dtype=torch.float64))
    with pytest.raises(ValueError, match=r"not positive semi-definite: lowest eigenvalue -5\.0+e-01"):
        gradient_descent_mse(k, torch.ones(3, dtype=torch.float64), t=1.0)
    with pytest.raises(ValueError, match="ntk_train_train: kernel is not positive semi-definite"):
        gradient_descent_mse(k, torch.ones(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="lowest eigenvalue"):
        KernelRegressor().fit(k, torch.ones(3, dtype=torch.float64))


def test_tiny_negative_eigenvalues_within_tolerance_are_accepted() -> None:
    evals, evecs = torch.linalg.eigh(_kernel(6, 6))
    evals[0] = -1e-12 * float(evals[-1])
    k = evecs @ torch.diag(evals) @ evecs.T
    out = gradient_descent_mse(k, torch.ones(6, dtype=torch.float64), t=3.0)
    assert bool(torch.isfinite(out).all())


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"y_train": torch.tensor([1.0, float("nan"), 0.0, 1.0])},
            "y_train: expected finite values, got 1 NaN/inf",
        ),
        ({"y_train": torch.ones(5)}, r"y_train: expected 4 rows to match the kernel, got shape \(5,\)"),
        ({"ntk_test_train": torch.ones(3, 5)}, r"ntk_test_train: expected shape \(\?, 4\), got \(3, 5\)"),
        ({"t": -1.0}, "t: expected a time >= 0"),
        ({"t": []}, "t: .*empty sequence"),
        ({"learning_rate": 0.0}, "learning_rate: expected a finite number > 0"),
        ({"ridge": -1.0}, "ridge: expected a finite number >= 0"),
        ({"ntk_train_train": torch.ones(4, 3)}, r"ntk_train_train: expected a square \(n, n\) kernel"),
        ({"ntk_train_train": torch.empty(0, 0)}, "ntk_train_train: expected a non-empty tensor"),
        ({"f0_train": torch.ones(4, 2)}, r"f0_train: expected shape \(4, 1\)"),
        ({"f0_test": torch.ones(4)}, "f0_test: given without ntk_test_train"),
    ],
)
def test_bad_arguments_raise_naming_the_argument(kwargs: dict, match: str) -> None:
    args: dict = {"ntk_train_train": _kernel(4, 4), "y_train": torch.ones(4, dtype=torch.float64)}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        gradient_descent_mse(**args)


def test_ensemble_argument_errors() -> None:
    k, y = _kernel(4, 4), torch.ones(4, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"mode: expected one of \('ntk', 'nngp'\), got 'gp'"):
        gradient_descent_mse_ensemble(y, nngp_train_train=k, ntk_train_train=k, mode="gp")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ntk_train_train: required when mode='ntk'"):
        gradient_descent_mse_ensemble(y, nngp_train_train=k)
    with pytest.raises(ValueError, match="ntk_test_train: required"):
        gradient_descent_mse_ensemble(
            y, nngp_train_train=k, ntk_train_train=k, nngp_test_train=torch.ones(2, 4)
        )
    with pytest.raises(TypeError, match=r"expected a torch\.Tensor or numpy\.ndarray, got list"):
        gradient_descent_mse_ensemble(y, nngp_train_train=[[1.0]])


def test_float32_kernels_are_accepted_with_their_round_off_and_asymmetry_is_rejected() -> None:
    k = _kernel(5, 8)
    k32 = k.float()
    k32[0, 1] += 1e-6 * float(k.abs().max())  # float32-level asymmetry
    out = gradient_descent_mse(k32, torch.ones(5), t=2.0)
    assert out.dtype == torch.float64
    k[0, 1] += 1e-3 * float(k.abs().max())
    with pytest.raises(ValueError, match="ntk_train_train: expected a symmetric kernel"):
        gradient_descent_mse(k, torch.ones(5, dtype=torch.float64))


def test_gp_inference_matches_closed_form_with_noise() -> None:
    g = torch.Generator().manual_seed(3)
    x = torch.randn(9, 2, generator=g, dtype=torch.float64)
    rbf = lambda a, b: torch.exp(-(torch.cdist(a, b) ** 2))  # noqa: E731
    xs, y = x[6:], torch.randn(6, generator=g, dtype=torch.float64)
    kxx, ksx, kss = rbf(x[:6], x[:6]).numpy(), rbf(xs, x[:6]).numpy(), rbf(xs, xs).numpy()
    post = gp_inference(kxx, y, ksx, kss, noise=0.1)
    inv = np.linalg.inv(kxx + 0.1 * np.eye(6))
    np.testing.assert_allclose(post.mean.numpy(), ksx @ inv @ y.numpy(), rtol=1e-10)
    assert post.covariance is not None and post.variance is not None
    np.testing.assert_allclose(post.covariance.numpy(), kss - ksx @ inv @ ksx.T, rtol=1e-9, atol=1e-12)
    assert post.mean.shape == (3,) and post.info.ridge == 0.1
    train = gp_inference(kxx, y)  # on the training inputs, noiseless: interpolates
    torch.testing.assert_close(train.mean, y, rtol=1e-7, atol=1e-7)


def test_kernel_regressor_matches_sklearn_and_reports_not_fitted() -> None:
    k = _kernel(12, 20, seed=5).numpy()
    y = np.arange(12.0)
    reg = KernelRegressor(ridge=0.5)
    with pytest.raises(NotFittedError, match="not fitted yet"):
        reg.predict(k)
    reg.fit(k, y)
    ref = KernelRidge(alpha=0.5, kernel="precomputed").fit(k, y)
    np.testing.assert_allclose(reg.predict(k[:5]), ref.predict(k[:5]), rtol=1e-9)
    assert isinstance(reg.predict(k[:5]), np.ndarray)
    assert isinstance(reg.predict(torch.from_numpy(k[:5])), torch.Tensor)
    assert reg.n_train_ == 12 and reg.solve_info_.solver == "cholesky"
    with pytest.raises(ValueError, match=r"kernel_test_train: expected shape \(\?, 12\)"):
        reg.predict(k[:, :5])
    with pytest.raises(ValueError, match="ridge: expected a finite number >= 0"):
        KernelRegressor(ridge=-1.0).fit(k, y)
