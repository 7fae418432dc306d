"""``tangentlab.audit``: the verdicts on a wide NTK MLP (GD) and a small CNN (Adam), checked against direct
computations — eNTKs rebuilt from the factory, simulated function-space GD, the closed-form NTK regression."""

from __future__ import annotations

import math

import pytest
import torch

import tangentlab
from tangentlab import empirical_ntk
from tangentlab.audit import AuditResult, Criterion, Thresholds, _measure, audit
from tangentlab.data import load
from tests.audit.models import tiny_cnn, tiny_mlp

MLP = {"n_train": 48, "n_test": 200, "probe_size": 12, "steps": 25, "checkpoints": 5}
CRITERIA = (
    "kernel_spread",
    "kernel_distance",
    "kernel_velocity",
    "param_change",
    "function_gap",
    "error_gap",
)


@pytest.fixture(scope="module")
def mlp() -> AuditResult:
    return audit(tiny_mlp, "digits", optimizer="gd", **MLP)


@pytest.fixture(scope="module")
def cnn() -> AuditResult:
    return audit(
        tiny_cnn,
        "mnist1d",
        optimizer="adam",
        learning_rate=0.01,
        steps=40,
        n_train=48,
        n_test=64,
        probe_size=12,
        checkpoints=4,
    )


def test_top_level_export_is_the_function():
    assert tangentlab.audit is audit and "audit" in tangentlab.__all__


def test_wide_ntk_mlp_with_small_step_gd_is_in_the_kernel_regime(mlp):
    assert [c.name for c in mlp.criteria] == list(CRITERIA)
    assert mlp.verdict == "kernel regime" and mlp.failing == ()
    for c in mlp.criteria:
        assert c.passed and c.verdict == "kernel regime" and c.value < c.threshold, c
    assert mlp.settings["learning_rate_rule"] == "0.5 n / lambda_max(Theta_0)"
    assert mlp.settings["ntk_regression_time"] == MLP["steps"]
    assert mlp.measurements.steps == (0, 5, 10, 15, 20, 25)
    # the net learned something: training loss fell by more than half
    assert mlp.measurements.loss_net[-1] < 0.5 * mlp.measurements.loss_net[0]


def test_small_cnn_with_adam_fails_named_criteria(cnn):
    assert cnn.verdict == "not kernel regime"
    assert {"kernel_spread", "param_change", "function_gap"} <= set(cnn.failing)
    assert cnn.criterion("param_change").value > 0.5
    assert cnn.settings["ntk_regression_time"] == "infinity"
    assert cnn.settings["ntk_regression_kernel"] == "per-output (trace / O)"
    assert cnn.settings["input_shape"] == [1, 40]  # flat failed, image layout chosen
    for name in cnn.failing:
        assert not cnn.criterion(name).passed


def test_seed_kernels_and_spread_match_kernels_rebuilt_from_the_factory(mlp):
    data = load("digits", n_train=MLP["n_train"], n_test=MLP["n_test"], seed=0)
    probe = data.x_train[: MLP["probe_size"]]
    m = mlp.measurements
    assert m.seeds == (0, 1, 2)
    kernels = torch.stack(
        [empirical_ntk(tiny_mlp(seed=s).double(), probe, method="jacobian") for s in m.seeds]
    )
    torch.testing.assert_close(m.seed_kernels, kernels, rtol=1e-10, atol=0)
    mean = kernels.mean(0)
    rel_std = math.sqrt(sum(float(((k - mean) ** 2).sum()) for k in kernels) / 2) / float(mean.norm())
    assert mlp.criterion("kernel_spread").value == pytest.approx(rel_std, rel=1e-10)


def test_kernel_distance_and_param_change_match_direct_computation(mlp):
    data = load("digits", n_train=MLP["n_train"], n_test=MLP["n_test"], seed=0)
    probe = data.x_train[: MLP["probe_size"]]
    k0 = empirical_ntk(tiny_mlp(seed=0).double(), probe, method="jacobian")
    kt = empirical_ntk(mlp.model, probe, method="jacobian")
    s0t = 1 - float((k0 * kt).sum()) / (float(k0.norm()) * float(kt.norm()))
    assert mlp.criterion("kernel_distance").value == pytest.approx(s0t, rel=1e-6, abs=1e-12)
    assert s0t > 0  # the kernel did move, a little
    theta0 = torch.cat([p.detach().reshape(-1) for p in tiny_mlp(seed=0).double().parameters()])
    theta = torch.cat([p.detach().reshape(-1) for p in mlp.model.parameters()])
    change = float((theta - theta0).norm() / theta0.norm())
    assert mlp.criterion("param_change").value == pytest.approx(change, rel=1e-10)
    velocity = mlp.measurements.kernel_velocity
    assert len(velocity) == 5
    assert mlp.criterion("kernel_velocity").value == pytest.approx(velocity[-1] * MLP["steps"], rel=1e-12)
    # The velocity is an angle per step: the path it sums to is at least the angle from init (triangle inequality
    # on the sphere of normalised kernels); S / dt summed to S-sums far below it (S is quadratic in the angle).
    angle0t = math.acos(1 - s0t)
    path = sum(v * (MLP["steps"] / MLP["checkpoints"]) for v in velocity)
    assert path >= angle0t * (1 - 1e-6)


def test_velocity_threshold_is_the_angle_of_the_distance_threshold():
    t = Thresholds()
    assert t.kernel_velocity == pytest.approx(math.acos(1 - t.kernel_distance), abs=0.005)


def test_linearized_model_equals_simulated_function_space_gd(mlp):
    """GD on the linearized net moves its outputs by ``-(eta/n) Theta_full (f - y)`` per step, exactly."""
    data = load("digits", n_train=MLP["n_train"], n_test=MLP["n_test"], seed=0)
    x, y, xt = data.x_train, data.y_train, data.x_test
    net0 = tiny_mlp(seed=0).double()
    theta_xx = empirical_ntk(net0, x, outputs="full")  # (n, n, O, O)
    theta_tx = empirical_ntk(net0, xt, x, outputs="full")
    eta, n = mlp.settings["learning_rate"], x.shape[0]
    with torch.no_grad():
        f, ft = net0(x), net0(xt)
    for _ in range(MLP["steps"]):
        residual = f - y
        f = f - eta / n * torch.einsum("ijab,jb->ia", theta_xx, residual)
        ft = ft - eta / n * torch.einsum("ijab,jb->ia", theta_tx, residual)
    torch.testing.assert_close(mlp.measurements.outputs["lin"], ft, rtol=1e-8, atol=1e-8)
    out_net = mlp.measurements.outputs["net"]
    with torch.no_grad():
        torch.testing.assert_close(out_net, mlp.model(xt), rtol=0, atol=0)
    gap = float((out_net - ft).norm() / ft.norm())
    assert mlp.measurements.function_gap[-1] == pytest.approx(gap, rel=1e-6)


def _closed_form(k: torch.Tensor, k_tx: torch.Tensor, y: torch.Tensor, f0, f0t, eta: float, t: float, n: int):
    """``f0 + K_tx K^-1 (I - exp(-eta t K / n)) (Y - f0)`` by eigendecomposition; K is (N, N), N = n or n*O."""
    evals, evecs = torch.linalg.eigh(k)
    factor = evecs @ torch.diag(-torch.expm1(-eta * t * evals / n) / evals) @ evecs.T
    return f0t + k_tx @ factor @ (y - f0)


def test_ntk_regression_matches_the_closed_form_with_the_full_kernel(mlp):
    data = load("digits", n_train=MLP["n_train"], n_test=MLP["n_test"], seed=0)
    x, y, xt, yt = data.x_train, data.y_train, data.x_test, data.y_test
    net0 = tiny_mlp(seed=0).double()
    n, m, o = x.shape[0], xt.shape[0], y.shape[1]
    k = empirical_ntk(net0, x, outputs="full").permute(0, 2, 1, 3).reshape(n * o, n * o)
    k_tx = empirical_ntk(net0, xt, x, outputs="full").permute(0, 2, 1, 3).reshape(m * o, n * o)
    with torch.no_grad():
        f0, f0t = net0(x), net0(xt)
    eta = mlp.settings["learning_rate"]
    assert eta == pytest.approx(0.5 * n / float(torch.linalg.eigvalsh(k)[-1]), rel=1e-10)
    flat = _closed_form(
        k, k_tx, y.reshape(-1, 1), f0.reshape(-1, 1), f0t.reshape(-1, 1), eta, MLP["steps"], n
    )
    assert mlp.settings["ntk_regression_kernel"] == "full (n, n, O, O)"
    torch.testing.assert_close(mlp.measurements.outputs["ntk"], flat.reshape(m, o), rtol=1e-7, atol=1e-7)
    m_ = mlp.measurements
    for key, out in m_.outputs.items():
        err = float((out.argmax(1) != yt.argmax(1)).double().mean())
        assert m_.test_error[key] == pytest.approx(err, abs=1e-12)
        assert m_.test_mse[key] == pytest.approx(float(((out - yt) ** 2).sum()) / yt.shape[0], rel=1e-12)
    gap = abs(m_.test_error["net"] - m_.test_error["ntk"])
    assert mlp.criterion("error_gap").value == pytest.approx(gap, abs=1e-12)


def test_ntk_regression_uses_the_per_output_kernel_for_many_outputs_and_progress_bars_show(
    monkeypatch, capsys
):
    monkeypatch.setattr(_measure, "FULL_KERNEL_MAX", 10)
    res = audit(
        tiny_mlp, "digits", steps=5, n_train=16, n_test=8, probe_size=4, seeds=2, checkpoints=1, progress=True
    )
    err = capsys.readouterr().err
    for bar in ("eNTK at init over seeds", "eNTK on train and test inputs", "training the net", "linearized"):
        assert bar in err
    assert res.settings["ntk_regression_kernel"] == "per-output (trace / O)"
    data = load("digits", n_train=16, n_test=8, seed=0)
    net0 = tiny_mlp(seed=0).double()
    k = empirical_ntk(net0, data.x_train) / 10
    k_tx = empirical_ntk(net0, data.x_test, data.x_train) / 10
    with torch.no_grad():
        f0, f0t = net0(data.x_train), net0(data.x_test)
    eta = res.settings["learning_rate"]
    assert eta == pytest.approx(0.5 * 16 / float(torch.linalg.eigvalsh(k)[-1]), rel=1e-10)
    expected = _closed_form(k, k_tx, data.y_train, f0, f0t, eta, 5, 16)
    torch.testing.assert_close(res.measurements.outputs["ntk"], expected, rtol=1e-7, atol=1e-7)


def test_factory_without_seed_runs_under_manual_seed_and_leaves_global_rng_alone(cnn):
    data = load("mnist1d", n_train=48, n_test=64, seed=0, shape="image")
    torch.manual_seed(1)
    model = tiny_cnn().double()
    k1 = empirical_ntk(model, data.x_train[:12], method="jacobian")
    torch.testing.assert_close(cnn.measurements.seed_kernels[1], k1, rtol=1e-10, atol=0)
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    audit(tiny_mlp, "digits", steps=1, n_train=8, n_test=8, probe_size=4, seeds=2, checkpoints=1)
    assert torch.equal(torch.random.get_rng_state(), before)


def test_a_nan_value_fails_and_thresholds_are_validated():
    c = Criterion("kernel_distance", "S", math.nan, 0.1, "why")
    assert not c.passed and c.verdict == "not kernel regime" and c.to_dict()["value"] is None
    assert Criterion("kernel_distance", "S", 0.05, 0.1, "why").passed
    assert not Criterion("kernel_distance", "S", 0.1, 0.1, "why").passed
    with pytest.raises(ValueError, match=r"thresholds\.error_gap: expected a finite number > 0, got -1"):
        Thresholds(error_gap=-1)


def test_custom_thresholds_change_the_verdict(mlp):
    strict = audit(tiny_mlp, "digits", optimizer="gd", thresholds=Thresholds(param_change=1e-4), **MLP)
    assert strict.failing == ("param_change",)
    assert strict.criterion("param_change").value == pytest.approx(mlp.criterion("param_change").value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"optimizer": "lbfgs"}, r"optimizer: expected one of \('gd', 'sgd', 'adam'\), got 'lbfgs'"),
        ({"seeds": 1}, r"seeds: expected an integer >= 2, got 1"),
        ({"probe_size": 100, "n_train": 20}, r"probe_size: expected at most n_train = 20, got 100"),
        ({"shape": "cube"}, r"shape: expected one of \('auto', 'flat', 'image'\), got 'cube'"),
    ],
)
def test_bad_options_raise_value_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        audit(tiny_mlp, "digits", **{"n_test": 8, **kwargs})
