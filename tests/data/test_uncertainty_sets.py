"""The regression sets of the uncertainty study: sklearn's diabetes and the 1-D gap task."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_diabetes

from tangentlab.data import DATASETS, OPTIONS, load
from tangentlab.data.sources import gap1d_function


def test_diabetes_is_the_sklearn_set_split_by_seed() -> None:
    assert "diabetes" in DATASETS and OPTIONS["diabetes"] == ()
    d = load("diabetes", seed=3, standardize="none")
    assert d.task == "regression" and d.n_classes is None and d.labels_train is None
    assert d.x_train.shape == (353, 10) and d.x_test.shape == (89, 10) and d.y_train.shape == (353, 1)
    raw = load_diabetes()
    x_all = torch.cat([d.x_train, d.x_test])
    y_all = torch.cat([d.y_train, d.y_test])[:, 0]
    # the split is a permutation of all 442 rows, with targets attached to their inputs
    order = np.lexsort(x_all.numpy().T)
    ref = np.lexsort(raw.data.T)
    np.testing.assert_array_equal(x_all.numpy()[order], raw.data[ref])
    np.testing.assert_array_equal(y_all.numpy()[order], raw.target[ref])
    again = load("diabetes", seed=3, standardize="none")
    torch.testing.assert_close(again.x_test, d.x_test)
    assert not torch.equal(load("diabetes", seed=4, standardize="none").x_test, d.x_test)
    z = load("diabetes", seed=3, standardize="feature", n_train=100, n_test=50)
    torch.testing.assert_close(z.x_train.mean(0), torch.zeros(10, dtype=torch.float64), rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="classes"):
        load("diabetes", classes=[0, 1])


def test_gap1d_has_a_gap_in_train_inputs_and_noisy_sine_targets() -> None:
    assert "gap1d" in DATASETS and OPTIONS["gap1d"] == ("gap", "noise")
    d = load("gap1d", n_train=400, n_test=300, seed=0, standardize="none", gap=0.25, noise=0.0)
    assert d.x_train.shape == (400, 1) and d.x_test.shape == (300, 1) and d.task == "regression"
    x = d.x_train[:, 0]
    assert float(x.abs().min()) >= 0.25 and float(x.abs().max()) <= 1.0
    assert 0.4 < float((x > 0).double().mean()) < 0.6  # both sides populated
    xt = d.x_test[:, 0]
    in_gap = float((xt.abs() < 0.25).double().mean())
    assert abs(in_gap - 0.25) < 0.08  # test inputs uniform on [-1, 1]: a quarter in the gap
    # noise=0: targets are the function exactly
    np.testing.assert_allclose(d.y_train[:, 0].numpy(), gap1d_function(x.numpy()), atol=1e-12)
    noisy = load("gap1d", n_train=2000, n_test=10, seed=1, standardize="none", noise=0.2)
    resid = noisy.y_train[:, 0].numpy() - gap1d_function(noisy.x_train[:, 0].numpy())
    assert abs(resid.std() - 0.2) < 0.02 and abs(resid.mean()) < 0.02
    default = load("gap1d", seed=0)
    assert default.n_train == 200 and default.n_test == 200
    with pytest.raises(ValueError, match="gap"):
        load("gap1d", gap=1.5)
    with pytest.raises(TypeError, match="gap1d"):
        load("gap1d", teacher_seed=1)
