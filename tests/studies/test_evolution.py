"""The evolution study: complete, finite curves and metrics, and its kernel computations on hand-made kernels."""

import math

import numpy as np
import pytest
import torch

from tangentlab import metrics
from tangentlab.runner.config import RunConfig
from tangentlab.studies._evolution_kernels import (
    balanced_probe,
    block_ratios,
    kernel_regression_accuracy,
    snapshot_schedule,
    velocity_summary,
)
from tangentlab.studies.evolution import CURVES, EvolutionParams, EvolutionStudy, build_description

DATA = {"name": "digits", "n_train": 60, "n_test": 30, "classes": (0, 1, 2)}
SCALARS = (
    "kernel_distance_final",
    "kernel_distance_centered_final",
    "within_ratio_init",
    "within_ratio_final",
    "between_ratio_init",
    "between_ratio_final",
    "alignment_init",
    "alignment_final",
    "after_kernel_acc_init",
    "after_kernel_acc_final",
    "after_kernel_acc_best",
    "net_acc_init",
    "net_acc_final",
    "velocity_first",
    "velocity_late_median",
    "velocity_late_spread",
    "train_loss_final",
)


def tiny_config(**params) -> RunConfig:
    """A run of a few seconds: 3 digit classes, tiny nets, 12 Adam steps, 5 snapshots."""
    data, seed = params.pop("data", DATA), params.pop("seed", 0)
    return RunConfig.model_validate(
        {
            "study": "evolution",
            "data": data,
            "train": {"optimizer": "adam", "learning_rate": 1e-2, "steps": 12},
            "seed": seed,
            "params": EvolutionParams(
                **{
                    "width": 16,
                    "channels": 4,
                    "deep_depth": 4,
                    "probe_per_class": 4,
                    "n_snapshots": 5,
                    "after_kernel_train": 30,
                    **params,
                }
            ).model_dump(),
        }
    )


@pytest.mark.parametrize("kind", ["mlp", "cnn", "deep_mlp"])
def test_run_returns_complete_finite_curves(kind):
    out = EvolutionStudy().run(tiny_config(model_kind=kind, sigma_w2=2.2))
    m = out.metrics
    assert m["status"] == "completed" and m["n_probe"] == 12 and m["final_step"] == 12
    for key in SCALARS:
        value = m[key]
        assert isinstance(value, float) and math.isfinite(value), (key, value)
    steps = out.artifacts["snap_step"]
    np.testing.assert_array_equal(steps, [0, 1, 2, 5, 12])
    for name in CURVES:
        assert out.artifacts[name].shape == (5,) and np.all(np.isfinite(out.artifacts[name])), name
    assert out.artifacts["velocity"].shape == (4,) and np.all(out.artifacts["velocity"] >= -1e-12)
    assert out.artifacts["ntk0_probe"].shape == (12, 12)
    assert out.artifacts["kernel_distance"][0] == pytest.approx(0.0, abs=1e-12)
    assert 0 < float(m["kernel_distance_final"] or 0) < 1
    # the curves agree with the stored kernels
    k0, kt = out.artifacts["ntk0_probe"], out.artifacts["ntkT_probe"]
    assert m["kernel_distance_final"] == pytest.approx(metrics.kernel_distance(k0, kt), rel=1e-10)
    h = np.eye(12) - 1.0 / 12
    c0, ct = h @ k0 @ h, h @ kt @ h
    centred = 1 - float((c0 * ct).sum() / (np.linalg.norm(c0) * np.linalg.norm(ct)))
    assert m["kernel_distance_centered_final"] == pytest.approx(centred, rel=1e-10)
    assert out.artifacts["kernel_distance_centered"][-1] == pytest.approx(centred, rel=1e-10)
    assert (m["within_ratio_final"], m["between_ratio_final"]) == pytest.approx(
        block_ratios(kt, out.artifacts["probe_labels"]), rel=1e-12
    )


def test_velocity_matches_definition():
    """v_i = angle(K_i, K_(i+1)) / (t_(i+1) - t_i), with angle = arccos(1 - S), on explicit snapshot steps."""
    config = tiny_config(model_kind="mlp", snapshot_steps=(0, 3, 12))
    out = EvolutionStudy().run(config)
    t = out.artifacts["snap_step"]
    np.testing.assert_array_equal(t, [0, 3, 12])
    d = out.artifacts["kernel_distance"]
    v = out.artifacts["velocity"]
    assert v[0] == pytest.approx(math.acos(1 - d[1]) / 3, rel=1e-7)  # angle(0, 3) / 3
    np.testing.assert_array_equal(out.artifacts["velocity_t0"], [0, 3])
    np.testing.assert_array_equal(out.artifacts["velocity_t1"], [3, 12])


def test_same_config_same_numbers():
    a = EvolutionStudy().run(tiny_config(model_kind="mlp"))
    b = EvolutionStudy().run(tiny_config(model_kind="mlp"))
    assert a.metrics == b.metrics


def test_rejects_bad_settings():
    study = EvolutionStudy()
    with pytest.raises(ValueError, match="after_kernel_train"):
        study.run(tiny_config(after_kernel_train=999))
    with pytest.raises(ValueError, match="probe_per_class"):
        study.run(tiny_config(probe_per_class=999))
    bad = tiny_config().model_copy(update={"model": {"layer": "Dense", "width": 3}})
    with pytest.raises(ValueError, match="model"):
        study.run(bad)


def test_build_description_phases():
    desc = build_description("deep_mlp", 8, 3, 2.2, 10).to_dict()
    dense = [layer for layer in desc["layers"] if layer.get("layer") == "Dense"]
    assert len(dense) == 4 and dense[-1]["width"] == 10
    assert all(layer["sigma_w"] == pytest.approx(math.sqrt(2.2)) for layer in dense)
    cnn = build_description("cnn", 4, 2, 1.0, 3).to_dict()
    assert [layer["layer"] for layer in cnn["layers"]] == ["Conv", "ReLU", "Conv", "ReLU", "Flatten", "Dense"]


# --- hand-made kernels with known answers -------------------------------------------------------------------------


def test_block_ratios_on_block_kernel():
    """K = a on the diagonal, b within a class, c between classes: ratios (b/a, c/a)."""
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2])
    a, b, c = 4.0, 3.0, 1.0
    same = (labels[:, None] == labels[None, :]).double()
    k = c + (b - c) * same + (a - b) * torch.eye(8, dtype=torch.float64)
    assert block_ratios(k, labels) == pytest.approx((b / a, c / a), rel=1e-14)
    assert block_ratios(5 * k, labels) == pytest.approx((b / a, c / a), rel=1e-14)  # scale-free
    onehot = torch.nn.functional.one_hot(labels).double()
    assert block_ratios(onehot @ onehot.T, labels) == pytest.approx((1.0, 0.0))
    assert block_ratios(torch.eye(8), labels) == pytest.approx((0.0, 0.0))
    with pytest.raises(ValueError, match="labels"):
        block_ratios(torch.eye(3), torch.tensor([0, 1, 2]))  # no within-class pair


def test_kernel_regression_accuracy_known_answers():
    lab = torch.tensor([0, 0, 1, 1, 2, 2])
    lab_test = torch.tensor([2, 1, 0, 0])
    y, yt = (torch.nn.functional.one_hot(v, 3).double() for v in (lab, lab_test))
    # the label kernel (plus a ridge-like diagonal) classifies its own classes perfectly
    k = y @ y.T + torch.eye(6, dtype=torch.float64)
    assert kernel_regression_accuracy(k, yt @ y.T, lab, lab_test, 3) == 1.0
    # with the labels flipped on the test block, every prediction is wrong
    wrong = yt[:, [1, 2, 0]] @ y.T
    assert kernel_regression_accuracy(k, wrong, lab, lab_test, 3) == 0.0
    # zero test-train kernel: all outputs 0, argmax picks class 0 -> accuracy = share of class 0 in the test set
    assert kernel_regression_accuracy(k, torch.zeros(4, 6), lab, lab_test, 3) == 0.5
    # agrees with a direct ridge solve on a random PSD kernel, and does not depend on the kernel's scale
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(10, 5, generator=g, dtype=torch.float64)
    kk = feats @ feats.T
    ltr, lte = torch.arange(6) % 3, torch.arange(4) % 3
    ytr = torch.nn.functional.one_hot(ltr, 3).double()
    coef = torch.linalg.solve(kk[:6, :6] + 1e-3 * kk[:6, :6].diagonal().mean() * torch.eye(6), ytr)
    expect = float(((kk[6:, :6] @ coef).argmax(1) == lte).double().mean())
    got = kernel_regression_accuracy(kk[:6, :6], kk[6:, :6], ltr, lte, 3, ridge=1e-3)
    assert got == expect
    assert kernel_regression_accuracy(7 * kk[:6, :6], 7 * kk[6:, :6], ltr, lte, 3, ridge=1e-3) == expect


def test_balanced_probe_and_schedule():
    labels = torch.tensor([2, 0, 1, 0, 2, 1, 1, 0, 2])
    idx = balanced_probe(labels, 2)
    assert idx.tolist() == [1, 3, 2, 5, 0, 4]
    with pytest.raises(ValueError, match="probe_per_class"):
        balanced_probe(labels, 4)
    sched = snapshot_schedule(1000, 5)
    assert sched[0] == 0 and sched[-1] == 1000 and list(sched) == sorted(set(sched))
    assert sched == (0, 1, 10, 100, 1000)


def test_velocity_summary():
    v = np.array([8.0, 4.0, 1.0, 2.0, 1.0])
    t0 = np.array([0.0, 1.0, 10.0, 20.0, 50.0])
    s = velocity_summary(v, t0, 100, 0.1)
    assert s["velocity_first"] == 8.0
    assert s["velocity_late_median"] == 1.0  # intervals starting at t >= 10: 1, 2, 1
    assert s["velocity_late_spread"] == 2.0
    assert s["velocity_transient_ratio"] == 8.0
    assert all(math.isnan(x) for x in velocity_summary(np.zeros(0), np.zeros(0), 10, 0.1).values())
