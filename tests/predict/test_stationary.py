"""RBF and Laplace kernels and their ridge regression against scikit-learn (float64, the same data): the kernels
against ``sklearn.metrics.pairwise``, the predictions against ``sklearn.kernel_ridge.KernelRidge``, the median
heuristic against numpy, and the validation-chosen bandwidth against a brute-force search with KernelRidge."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist
from sklearn.kernel_ridge import KernelRidge
from sklearn.metrics.pairwise import laplacian_kernel as sk_laplacian
from sklearn.metrics.pairwise import rbf_kernel as sk_rbf

from tangentlab.kernels import laplace_kernel, median_bandwidth, rbf_kernel, stationary_kernel
from tangentlab.predict import NotFittedError, StationaryRegressor


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((60, 5))
    w = rng.standard_normal((5, 2))
    y = np.tanh(x @ w) + 0.05 * rng.standard_normal((60, 2))
    xt = rng.standard_normal((25, 5))
    return x[:40], y[:40], x[40:], y[40:], xt, np.tanh(xt @ w)


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a)


def test_kernels_equal_scikit_learn_pairwise(data):
    x, _, _, _, xt, _ = data
    ell = 1.7
    np.testing.assert_allclose(
        rbf_kernel(_t(xt), _t(x), bandwidth=ell).numpy(), sk_rbf(xt, x, gamma=1 / (2 * ell**2)), rtol=1e-12
    )
    np.testing.assert_allclose(
        laplace_kernel(_t(xt), _t(x), bandwidth=ell, norm="l1").numpy(),
        sk_laplacian(xt, x, gamma=1 / ell),
        rtol=1e-12,
    )
    np.testing.assert_allclose(
        laplace_kernel(_t(xt), _t(x), bandwidth=ell).numpy(), np.exp(-cdist(xt, x) / ell), rtol=1e-12
    )
    k = stationary_kernel("laplace", _t(x), bandwidth=ell)
    assert (
        k.dtype == torch.float64
        and torch.allclose(k, k.T)
        and torch.allclose(k.diagonal(), torch.ones(40, dtype=k.dtype))
    )


def test_median_heuristic_is_the_median_distance_between_distinct_pairs(data):
    x = data[0]
    d = cdist(x, x)
    expected = float(np.median(d[np.triu_indices(len(x), k=1)]))
    assert math.isclose(median_bandwidth(_t(x)), expected, rel_tol=1e-12)
    d1 = cdist(x, x, metric="cityblock")
    assert math.isclose(
        median_bandwidth(_t(x), norm="l1"), float(np.median(d1[np.triu_indices(len(x), k=1)])), rel_tol=1e-12
    )
    with pytest.raises(ValueError, match="at least two"):
        median_bandwidth(_t(x[:1]))


@pytest.mark.parametrize(("kind", "norm"), [("rbf", "l2"), ("laplace", "l1"), ("laplace", "l2")])
def test_regression_equals_kernel_ridge(data, kind, norm):
    x, y, _, _, xt, _ = data
    ell, alpha = 2.3, 1e-2
    ours = StationaryRegressor(kind, bandwidth=ell, ridge=alpha, norm=norm).fit(_t(x), _t(y)).predict(_t(xt))
    if kind == "rbf":
        ref = KernelRidge(alpha=alpha, kernel="rbf", gamma=1 / (2 * ell**2)).fit(x, y).predict(xt)
    elif norm == "l1":
        ref = KernelRidge(alpha=alpha, kernel="laplacian", gamma=1 / ell).fit(x, y).predict(xt)
    else:
        model = KernelRidge(alpha=alpha, kernel="precomputed").fit(np.exp(-cdist(x, x) / ell), y)
        ref = model.predict(np.exp(-cdist(xt, x) / ell))
    np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-8, atol=1e-10)


def test_median_bandwidth_regression_equals_kernel_ridge_at_that_bandwidth(data):
    x, y, _, _, xt, _ = data
    model = StationaryRegressor("rbf", bandwidth="median", ridge=1e-3).fit(_t(x), _t(y[:, 0]))
    med = float(np.median(cdist(x, x)[np.triu_indices(len(x), k=1)]))
    assert model.median_ is not None and math.isclose(model.bandwidth_, med, rel_tol=1e-12)
    ref = KernelRidge(alpha=1e-3, kernel="rbf", gamma=1 / (2 * med**2)).fit(x, y[:, 0]).predict(xt)
    pred = model.predict(_t(xt))
    assert pred.shape == (25,)
    np.testing.assert_allclose(pred.numpy(), ref, rtol=1e-8, atol=1e-10)


def test_validation_bandwidth_is_the_kernel_ridge_grid_search_winner(data):
    x, y, xv, yv, _, _ = data
    grid = (0.25, 0.5, 1.0, 2.0, 4.0)
    model = StationaryRegressor("laplace", bandwidth="validation", ridge=1e-3, grid=grid, norm="l1")
    model.fit(_t(x), _t(y), x_val=_t(xv), y_val=_t(yv))
    med = float(np.median(cdist(x, x, metric="cityblock")[np.triu_indices(len(x), k=1)]))
    scores = {}
    for c in grid:
        pred = KernelRidge(alpha=1e-3, kernel="laplacian", gamma=1 / (c * med)).fit(x, y).predict(xv)
        scores[c * med] = float(((pred - yv) ** 2).sum(axis=1).mean())
    best = min(scores, key=lambda bw: scores[bw])
    assert math.isclose(model.bandwidth_, best, rel_tol=1e-12)
    for bw, mse in scores.items():
        match = [v for k, v in model.validation_mse_.items() if math.isclose(k, bw, rel_tol=1e-12)]
        assert len(match) == 1 and math.isclose(match[0], mse, rel_tol=1e-7)
    assert len(set(scores.values())) > 1  # the grid matters: the choice is not a tie


def test_errors_are_clear(data):
    x, y, _, _, _, _ = data
    with pytest.raises(ValueError, match="x_val, y_val: required"):
        StationaryRegressor("rbf", bandwidth="validation").fit(_t(x), _t(y))
    with pytest.raises(ValueError, match="kind"):
        StationaryRegressor("cosine")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="bandwidth"):
        StationaryRegressor("rbf", bandwidth=-1.0)
    with pytest.raises(ValueError, match="bandwidth"):
        rbf_kernel(_t(x), bandwidth=0.0)
    with pytest.raises(ValueError, match="Euclidean"):
        stationary_kernel("rbf", _t(x), bandwidth=1.0, norm="l1")
    with pytest.raises(ValueError, match="features"):
        rbf_kernel(_t(x), _t(x[:, :3]), bandwidth=1.0)
    with pytest.raises(NotFittedError):
        StationaryRegressor("rbf").predict(_t(x))
