"""The ``fort`` study: the loss barrier, the path between two nets, the linearization at theta_t, the fixed-dt
velocity and the spawning code path, each against an independent reference in float64."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.func import functional_call, jacrev

from tangentlab import arch, metrics, train
from tangentlab.runner import RunConfig
from tangentlab.studies import get_study
from tangentlab.studies.fort import FortParams, spawn_schedule
from tangentlab.studies.fort.numerics import (
    equal_schedule,
    fixed_dt_summary,
    interpolated_parameters,
    loss_barrier,
    path_losses,
)
from tests.studies._cli import cli

DIGITS = {"name": "digits", "n_train": 60, "n_test": 40, "classes": (0, 1, 2)}


def _mlp(seed: int, d: int = 5, out: int = 3) -> torch.nn.Module:
    net = arch.serial(arch.Dense(16, sigma_w=1.5), arch.ReLU(), arch.Dense(out))
    return net.build((d,), parametrization="standard", seed=seed, dtype=torch.float64)


def _data(n: int = 24, d: int = 5, k: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, d, generator=g, dtype=torch.float64), torch.randint(0, k, (n,), generator=g)


def test_loss_barrier_of_a_bump_on_a_line_is_the_bump():
    a = np.linspace(0.0, 1.0, 11)
    values = 2.0 + 3.0 * a + 0.7 * 4.0 * a * (1.0 - a)  # the bump 4a(1-a) peaks at a = 1/2 with height 1
    assert loss_barrier(values, a) == pytest.approx(0.7, abs=1e-12)
    assert (
        loss_barrier(2.0 + 3.0 * a - 4.0 * a * (1.0 - a), a) == 0.0
    )  # convex: the endpoints are the maximum
    with pytest.raises(ValueError, match="increasing grid from 0 to 1"):
        loss_barrier([1.0, 2.0], [0.0, 0.5])
    with pytest.raises(ValueError, match="one length"):
        loss_barrier([1.0, 2.0, 3.0], [0.0, 1.0])


def test_barrier_of_two_copies_of_one_net_is_zero():
    net, (x, y) = _mlp(0), _data()
    a = np.linspace(0.0, 1.0, 7)
    for loss in ("cross_entropy", "mse"):
        target = y if loss == "cross_entropy" else torch.nn.functional.one_hot(y, 3).double()
        losses, errors = path_losses(net, copy.deepcopy(net), x, target, a, loss)
        assert np.ptp(losses) <= 1e-14 and np.ptp(errors) == 0.0  # (1 - a) w + a w is w up to rounding
        assert 0.0 <= loss_barrier(losses, a) <= 1e-14


def test_path_losses_equal_nets_built_with_the_interpolated_weights():
    """Reference: a third net whose parameters are set to (1 - a) theta_a + a theta_b by hand, then called."""
    na, nb, (x, y) = _mlp(0), _mlp(1), _data()
    alphas = [0.0, 0.3, 1.0]
    losses, errors = path_losses(na, nb, x, y, alphas, "cross_entropy")
    for i, a in enumerate(alphas):
        ref = copy.deepcopy(na)
        with torch.no_grad():
            for (_, pr), pa, pb in zip(ref.named_parameters(), na.parameters(), nb.parameters(), strict=True):
                pr.copy_((1 - a) * pa + a * pb)
            out = ref(x)
        assert losses[i] == pytest.approx(float(torch.nn.functional.cross_entropy(out, y)), rel=1e-12)
        assert errors[i] == pytest.approx(float((out.argmax(1) != y).double().mean()), abs=0)
    with pytest.raises(ValueError, match="same parameter names"):
        interpolated_parameters(na, _mlp(0, d=4), 0.5)


def test_the_linearization_at_theta_t_equals_the_net_to_first_order():
    """linearize(net at theta_t) against a brute-force Jacobian (jacrev) and against finite differences of the net."""
    net, (x, y) = _mlp(2), _data()
    train.fit(
        net, x, y, loss="cross_entropy", optimizer="sgd", batch_size=8, learning_rate=0.5, steps=20, seed=3
    )
    lin = train.linearize(net)
    theta_t = {k: v.detach().clone() for k, v in net.named_parameters()}
    g = torch.Generator().manual_seed(5)
    direction = {k: torch.randn(v.shape, generator=g, dtype=torch.float64) for k, v in theta_t.items()}
    jac = jacrev(lambda p: functional_call(net, p, (x,)))(theta_t)
    jd = sum((jac[k] * direction[k]).reshape(*jac[k].shape[:2], -1).sum(-1) for k in theta_t)
    f_t = net(x).detach()
    errors = []
    for eps in (1e-2, 5e-3):
        with torch.no_grad():
            for name, p in zip(lin.param_names, lin.params, strict=True):
                p.copy_(theta_t[name] + eps * direction[name])
            out = lin(x)
        assert torch.allclose(out, f_t + eps * jd, rtol=0, atol=1e-12)  # exact: linear in theta
        moved = functional_call(net, {k: theta_t[k] + eps * direction[k] for k in theta_t}, (x,)).detach()
        errors.append(float((moved - out).abs().max()))
    assert errors[0] < 1e-3 * float(f_t.abs().max())
    assert errors[0] / errors[1] == pytest.approx(4.0, rel=0.2)  # the remainder is second order in eps


def _turning_kernels(times: np.ndarray, angle: np.ndarray) -> list[torch.Tensor]:
    """Kernels cos(phi) A + sin(phi) B with A, B orthonormal in the Frobenius inner product: the angle between two of
    them is the difference of their phi."""
    g = torch.Generator().manual_seed(1)
    m = torch.randn(6, 6, generator=g, dtype=torch.float64)
    a = m @ m.T
    a = a / torch.linalg.norm(a)
    r = torch.randn(6, 6, generator=g, dtype=torch.float64)
    b = r + r.T
    b = b - (b * a).sum() * a
    b = b / torch.linalg.norm(b)
    return [math.cos(float(p)) * a + math.sin(float(p)) * b for p in angle]


def test_the_fixed_dt_velocity_of_a_constant_speed_kernel_is_constant():
    steps = 400
    t = np.asarray(equal_schedule(steps, 21), dtype=np.float64)
    assert t.tolist() == [20.0 * i for i in range(21)]
    omega = 1e-3
    v = metrics.kernel_velocity(_turning_kernels(t, omega * t), t.tolist()).numpy()
    np.testing.assert_allclose(v, omega, rtol=1e-6)
    s = fixed_dt_summary(v, t[:-1], steps, 0.3)
    assert s["late_cv"] < 1e-5 and s["transient_ratio"] == pytest.approx(1.0, rel=1e-5)
    # a fast first interval (10x the speed up to step 20), then the constant speed: the transient shows as 10x
    fast = np.where(t <= 20, 10 * omega * t, 10 * omega * 20 + omega * (t - 20))
    s = fixed_dt_summary(
        metrics.kernel_velocity(_turning_kernels(t, fast), t.tolist()).numpy(), t[:-1], steps, 0.3
    )
    assert s["transient_ratio"] == pytest.approx(10.0, rel=1e-5) and s["late_cv"] < 1e-5


def test_schedules():
    assert equal_schedule(100, 4) == (0, 33, 66, 99)
    with pytest.raises(ValueError, match="n_equal"):
        equal_schedule(3, 6)
    p = FortParams(n_spawn=4, spawn_last_fraction=0.5)
    assert spawn_schedule(p, 300) == (0, 1, 12, 150)
    assert spawn_schedule(FortParams(spawn_steps=(5, 0)), 10) == (0, 5)
    with pytest.raises(ValueError, match=r"params\.spawn_steps"):
        spawn_schedule(FortParams(spawn_steps=(10,)), 10)


def _run(params: dict[str, object], *, steps: int = 30, **train_over: object) -> dict[str, np.ndarray]:
    config = RunConfig.model_validate(
        {
            "study": "fort",
            "data": DIGITS,
            "train": {
                "optimizer": "sgd",
                "loss": "cross_entropy",
                "learning_rate": 0.5,
                "steps": steps,
                "batch_size": 8,
                **train_over,
            },
            "params": {"probe_per_class": 2, "n_equal": 4, "n_log": 3, "n_spawn": 3, "n_alpha": 5, **params},
        }
    )
    out = get_study("fort").run(config)
    assert out.metrics["status"] == "completed"
    return out.artifacts


def test_spawning_a_linear_model_gives_zero_barrier_and_zero_gap_at_every_t():
    art = _run({"model_kind": "linear"})
    assert art["spawn_step"].tolist() == [0.0, 1.0, 15.0]
    assert np.all(art["child_distance"] > 1e-3)  # the children differ (different minibatch orders) ...
    assert np.all(np.abs(art["barrier_train_loss"]) <= 1e-12)  # ... yet the convex loss has no barrier
    assert np.all(np.abs(art["gap_test_loss"]) <= 1e-12)  # and the linearization is the model itself
    np.testing.assert_allclose(art["velocity_equal"], 0.0, atol=1e-6)  # its eNTK does not depend on theta


def test_full_batch_children_coincide_and_minibatch_children_do_not():
    full = _run({"model_kind": "mlp", "width": 8, "batch": "full"})
    assert np.all(full["child_distance"] == 0.0) and np.all(full["barrier_train_loss"] <= 1e-15)
    mini = _run({"model_kind": "mlp", "width": 8})
    assert np.all(mini["child_distance"] > 0)
    assert mini["path_train_loss"].shape == (3, 5)
    assert mini["velocity_equal"].shape == (3,) and mini["velocity_equal"][0] > 0


def test_bad_settings_raise_one_line_errors():
    with pytest.raises(ValueError, match=r"params\.n_equal"):
        _run({"n_equal": 40}, steps=10)
    with pytest.raises(ValueError, match="model: the fort study builds its nets"):
        get_study("fort").run(
            RunConfig.model_validate(
                {"study": "fort", "data": DIGITS, "model": {"layer": "Dense", "width": 3}}
            )
        )


def test_a_small_sweep_reports_its_controls_and_sub_verdicts(tmp_path: Path):
    config = tmp_path / "fort.yaml"
    config.write_text(
        "study: fort\n"
        "data: {name: digits, n_train: 60, n_test: 40, classes: [0, 1, 2]}\n"
        "train: {optimizer: sgd, loss: cross_entropy, learning_rate: 0.5, steps: 12, batch_size: 8}\n"
        "params: {width: 8, control_width: 32, probe_per_class: 2, n_equal: 3, n_log: 2, n_spawn: 2, n_alpha: 3}\n"
        "grid: {model_kind: [mlp, linear, wide_ntk], batch: [minibatch, full]}\n"
    )
    assert cli("run", str(config), "--out", str(tmp_path / "runs"), "--workers", "1").returncode == 0
    done = cli("report", str(tmp_path / "runs"))
    assert done.returncode == 0, done.stderr
    findings = json.loads((tmp_path / "runs" / "report" / "findings.json").read_text())
    section = findings["studies"][0]
    numbers = section["numbers"]
    assert numbers["positive_controls"]["linear"]["verdict"] == "match"
    assert numbers["positive_controls"]["linear"]["max_barrier_train_loss"] <= 1e-12
    assert set(numbers["sub_verdicts"]) == {"velocity", "linearized", "spawning"}
    assert len(numbers["runs"]) == 2  # the two MLP runs; the controls are kept out of the claims
    full = [r for r in numbers["runs"].values() if "full" in r["setting"]]
    assert full and max(full[0]["child_distance"]) == 0.0 and full[0]["spawning_ok"] is None
    assert {p.name for p in (tmp_path / "runs" / "report" / "figures").iterdir()} >= {
        "fort_velocity.png",
        "fort_linearized.png",
        "fort_spawning.png",
    }
