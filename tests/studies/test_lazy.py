"""The lazy study: metrics are complete and finite, agree with independent computations, and the NTK/GD slope."""

import math

import numpy as np
import pytest
import torch

from tangentlab import arch, data
from tangentlab.report.fits import fit_power_law
from tangentlab.runner.config import RunConfig
from tangentlab.studies import ResultRow, get_study
from tangentlab.studies.lazy import (
    CHANGE_METRICS,
    LazyParams,
    default_model,
    set_hidden_width,
    with_activation,
)

DATA = {"name": "synthetic", "n_train": 16, "n_test": 8, "options": {"input_dim": 3}}
EXPECTED = (
    *CHANGE_METRICS,
    "learning_rate",
    "gd_learning_rate",
    "lambda_max",
    "lambda_min",
    "test_mse_net",
    "test_mse_lin",
    "test_mse_ntk",
    "train_loss_net",
    "train_loss_lin",
)


def _config(**params) -> RunConfig:
    optimizer = params.pop("optimizer", "gd")
    steps = params.pop("steps", 20)
    return RunConfig(
        study="lazy",
        data=params.pop("data", DATA),
        train={"optimizer": optimizer, "steps": steps, "learning_rate": 1e-2},
        params=LazyParams(**{"width": 8, "probe_size": 6, **params}).model_dump(),
    )


@pytest.mark.parametrize("parametrization", ["ntk", "standard", "mup"])
@pytest.mark.parametrize("optimizer", ["gd", "adam"])
def test_run_returns_all_metrics_finite(parametrization, optimizer):
    out = get_study("lazy").run(_config(parametrization=parametrization, optimizer=optimizer))
    assert out.metrics["status"] == "completed"
    for key in EXPECTED:
        value = out.metrics[key]
        assert isinstance(value, float) and math.isfinite(value), (key, value)
    assert out.metrics["rel_ntk_change"] > 0 and out.metrics["rel_param_change"] > 0
    if optimizer == "adam":
        assert out.metrics["learning_rate"] == pytest.approx(1e-2)
    else:
        assert out.metrics["learning_rate"] == pytest.approx(out.metrics["gd_learning_rate"])
    for name in ("loss_net", "loss_lin", "eval_step", "ntk0_probe", "ntkT_probe"):
        assert np.all(np.isfinite(out.artifacts[name]))
    assert out.artifacts["ntk0_probe"].shape == (6, 6)


def test_classification_reports_accuracy():
    cls = {
        "name": "synthetic",
        "n_train": 16,
        "n_test": 8,
        "options": {"task": "classification", "input_dim": 3},
    }
    out = get_study("lazy").run(_config(data=cls))
    for key in ("test_acc_net", "test_acc_lin", "test_acc_ntk"):
        assert 0.0 <= out.metrics[key] <= 1.0


def test_metrics_match_independent_computation():
    """Recompute the changes by hand: plain full-batch GD, numpy norms, a brute-force Jacobian eNTK."""
    config = _config(width=5, steps=15)
    out = get_study("lazy").run(config)
    m = out.metrics
    ds = data.load("synthetic", n_train=16, n_test=8, input_dim=3, dtype=torch.float64)
    net = arch.serial(arch.Dense(5), arch.ReLU(), arch.Dense(1)).build((3,), seed=0, dtype=torch.float64)
    params = [p for p in net.parameters() if p.requires_grad]

    def entk(x: torch.Tensor) -> np.ndarray:
        rows = []
        for xi in x:
            grads = torch.autograd.grad(net(xi[None]).sum(), params)
            rows.append(torch.cat([g.reshape(-1) for g in grads]))
        jac = torch.stack(rows)
        return (jac @ jac.T).detach().numpy()

    x, y = ds.x_train, ds.y_train
    theta = entk(x)
    lr = 0.5 * 16 / np.linalg.eigvalsh(theta)[-1]
    assert m["gd_learning_rate"] == pytest.approx(lr, rel=1e-10)
    k0 = entk(x[:6])
    theta0 = np.concatenate([p.detach().numpy().ravel() for p in params])
    for _ in range(15):
        loss = 0.5 * ((net(x) - y) ** 2).sum() / 16
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            for p, g in zip(params, grads, strict=True):
                p -= lr * g
    theta_t = np.concatenate([p.detach().numpy().ravel() for p in params])
    kt = entk(x[:6])
    assert m["rel_param_change"] == pytest.approx(
        np.linalg.norm(theta_t - theta0) / np.linalg.norm(theta0), rel=1e-8
    )
    assert m["rel_ntk_change"] == pytest.approx(np.linalg.norm(kt - k0) / np.linalg.norm(k0), rel=1e-8)
    cos = np.sum(k0 * kt) / (np.linalg.norm(k0) * np.linalg.norm(kt))
    assert m["kernel_distance"] == pytest.approx(1 - cos, rel=1e-6, abs=1e-12)
    np.testing.assert_allclose(out.artifacts["ntk0_probe"], k0, rtol=1e-10)
    np.testing.assert_allclose(out.artifacts["ntkT_probe"], kt, rtol=1e-8)


def test_set_hidden_width_keeps_readout():
    desc = {
        "layer": "Serial",
        "layers": [
            {"layer": "Dense", "width": 3},
            "ReLU",
            {"layer": "Dense", "width": 2},
            "ReLU",
            {"layer": "Dense", "width": 4},
        ],
    }
    out = set_hidden_width(desc, 64)
    assert [layer["width"] for layer in out["layers"] if isinstance(layer, dict)] == [64, 64, 4]
    assert desc["layers"][0]["width"] == 3  # not mutated
    with pytest.raises(ValueError, match="hidden Dense"):
        set_hidden_width({"layer": "Dense", "width": 1}, 8)


def test_rejects_cross_entropy_and_big_probe():
    study = get_study("lazy")
    with pytest.raises(ValueError, match="probe_size"):
        study.run(_config(probe_size=99))
    bad = _config().model_copy(update={"train": _config().train.model_copy(update={"loss": "cross_entropy"})})
    with pytest.raises(ValueError, match=r"train\.loss"):
        study.run(bad)


@pytest.mark.slow
def test_ntk_gd_changes_shrink_with_width():
    """Lee et al. 2019, Thm. 2.1: under NTK parametrization and GD, changes are O(width^(−1/2)).

    The quick config's setting (teacher-student, n = 64, 300 steps, η = 0.5 n/λ_max, one hidden layer), widths
    64…4096, 2 seeds. The relative parameter change follows −1/2 (±0.15). The relative eNTK change of this
    one-hidden-layer ReLU net shrinks faster (the quick config's report gives its slope), and Lee et al.'s
    width^(−1/2) is an upper bound. So the eNTK change is held to the theorem's bound only: slope ≤ −0.5 + 0.15.
    """
    study = get_study("lazy")
    widths, entk, param = [], [], []
    for width in (64, 256, 1024, 4096):
        for seed in (0, 1):
            config = RunConfig(
                study="lazy",
                data={"name": "synthetic", "n_train": 64, "n_test": 64, "options": {"input_dim": 8}},
                train={"optimizer": "gd", "steps": 300},
                params=LazyParams(width=width, parametrization="ntk", probe_size=32).model_dump(),
                seed=seed,
            )
            out = study.run(config)
            assert out.metrics["status"] == "completed"
            widths.append(width)
            entk.append(out.metrics["rel_ntk_change"])
            param.append(out.metrics["rel_param_change"])
    param_fit = fit_power_law(widths, param)
    assert abs(param_fit.slope + 0.5) <= 0.15, param_fit
    entk_fit = fit_power_law(widths, entk)
    assert entk_fit.slope <= -0.35, entk_fit


def test_with_activation_replaces_every_relu_and_the_run_builds_an_erf_net():
    hidden = [{"layer": "Dense", "width": 4}, {"layer": "ReLU"}]
    deep = {"layer": "Serial", "layers": [*hidden, *hidden, {"layer": "Dense", "width": 1}]}
    out = with_activation(deep, "erf")
    assert [layer["layer"] for layer in out["layers"]] == ["Dense", "Erf", "Dense", "Erf", "Dense"]
    assert deep["layers"][1] == {"layer": "ReLU"} and deep["layers"][3] == {"layer": "ReLU"}  # a copy
    assert with_activation(default_model("relu"), "erf") == default_model("erf")
    relu = get_study("lazy").run(_config())
    erf = get_study("lazy").run(_config(activation="erf"))
    assert erf.metrics["status"] == "completed"
    # same seed and widths, another activation: another kernel
    assert erf.metrics["lambda_max"] != pytest.approx(relu.metrics["lambda_max"], rel=1e-3)
    erf_net = arch.from_dict(set_hidden_width(default_model("erf"), 8, 1))
    theta = erf_net.kernel(torch.zeros(1, 3, dtype=torch.float64) + 0.5).ntk
    assert float(theta) > 0  # the description the run builds has a closed-form kernel


def test_positive_control_runs_and_the_report_says_match(tmp_path):
    """The positive control, run small: erf, NTK parametrization, GD — Lee et al.'s theorem's hypotheses — at widths
    32…512 (one seed); the report's bound test must say "match" on the relative eNTK change, and the μP arm beside
    it (feature learning by design) must say "no match"."""
    study = get_study("lazy")
    rows = []
    for width in (32, 128, 512):
        for param in ("ntk", "mup"):
            config = _config(width=width, parametrization=param, activation="erf", steps=100)
            out = study.run(config)
            assert out.metrics["status"] == "completed"
            rows.append(ResultRow(run_id=config.run_id, config=config, status="done", metrics=out.metrics))
    numbers = study.report(rows, tmp_path).to_dict()["numbers"]
    control = numbers["positive_control"]
    assert control["setting"] == "erf/ntk/gd" and control["verdict"] == "match", control
    assert control["measured"]["slope"] < -0.5
    assert [c["verdict"] for c in numbers["negative_controls"]] == ["no match"]
