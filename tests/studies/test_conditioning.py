"""The conditioning study: its metrics against brute-force Jacobians and hand-written GD / Gauss–Newton, and its
report on real and on constructed rows."""

import math

import numpy as np
import pytest
import torch
from torch.func import functional_call, jacrev

from tangentlab import arch, train
from tangentlab.runner.config import RunConfig
from tangentlab.studies import ResultRow
from tangentlab.studies.conditioning import (
    ConditioningParams,
    ConditioningStudy,
    checkpoint_steps,
    jacobian_change_gram,
)
from tangentlab.studies.lazy import set_hidden_width

D = torch.float64
DATA = {"name": "synthetic", "n_train": 8, "n_test": 4, "options": {"input_dim": 3}}
STUDY = ConditioningStudy()


def _config(data=DATA, steps=40, seed=0, **params) -> RunConfig:
    base = {"width": 12, "gn_steps": 4, "checkpoints": 4, "gn_damping": 1e-4, "gn_learning_rate": 0.8}
    return RunConfig(
        study="conditioning",
        data=data,
        train={"steps": steps},
        params=ConditioningParams(**{**base, **params}).model_dump(),
        seed=seed,
    )


def _jacobian(model: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    params = {k: v.detach() for k, v in model.named_parameters()}
    jac = jacrev(lambda p: functional_call(model, p, (x,)).reshape(-1))(params)
    return torch.cat([jac[k].reshape(jac[k].shape[0], -1) for k in params], dim=1).numpy()


def _net(config: RunConfig, in_dim: int, out_dim: int = 1) -> torch.nn.Module:
    p = ConditioningParams.model_validate(config.params)
    desc = set_hidden_width(dict(ConditioningStudy.default_model or {}), p.width, out_dim)
    return arch.from_dict(desc).build((in_dim,), parametrization=p.parametrization, seed=config.seed, dtype=D)


def test_checkpoint_steps():
    assert checkpoint_steps(100, 4) == (0, 1, 10, 100)
    assert checkpoint_steps(3, 8) == (0, 1, 2, 3)
    assert checkpoint_steps(0, 5) == (0,)


def test_jacobian_change_gram_matches_brute_force():
    net = arch.serial(arch.Dense(6, sigma_b=0.1), arch.Tanh(), arch.Dense(5), arch.ReLU(), arch.Dense(2))
    model = net.build((3,), seed=1, dtype=D)
    x = torch.randn(4, 3, dtype=D)
    theta0 = {k: v.detach().clone() for k, v in model.named_parameters()}
    j0 = _jacobian(model, x)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    dj = _jacobian(model, x) - j0
    gram = jacobian_change_gram(model, theta0, x).numpy()
    np.testing.assert_allclose(gram, dj @ dj.T, rtol=1e-9, atol=1e-12)
    evals = np.linalg.eigvalsh(gram)
    assert math.sqrt(evals[-1]) == pytest.approx(np.linalg.norm(dj, 2), rel=1e-9)
    assert math.sqrt(evals.sum()) == pytest.approx(np.linalg.norm(dj), rel=1e-9)


@pytest.mark.parametrize("parametrization", ["ntk", "standard"])
def test_metrics_match_brute_force_gd_and_gauss_newton(parametrization):
    """Replay GD (hand-written autograd loop) and Gauss–Newton from the same init; recompute the spectrum, the
    Jacobian change and the stability constants from full jacrev Jacobians and numpy norms."""
    config = _config(parametrization=parametrization)
    out = STUDY.run(config)
    m, a = out.metrics, out.artifacts
    ds = config.data.load()
    x, y = ds.x_train, ds.y_train.reshape(-1, 1)
    n = x.shape[0]
    net = _net(config, 3)
    j0 = _jacobian(net, x)
    evals = np.linalg.eigvalsh(j0 @ j0.T)
    assert m["lambda_min"] == pytest.approx(evals[0], rel=1e-8)
    assert m["lambda_max"] == pytest.approx(evals[-1], rel=1e-10)
    assert m["condition_number"] == pytest.approx(evals[-1] / evals[0], rel=1e-8)
    np.testing.assert_allclose(a["gram0_eigenvalues"], evals, rtol=1e-8, atol=1e-12)
    with torch.no_grad():
        r0 = (net(x) - y).numpy().reshape(-1)
    loss0 = 0.5 * float(r0 @ r0) / n
    radius = 3 * np.linalg.norm(r0) / math.sqrt(evals[0])
    assert m["initial_loss"] == pytest.approx(loss0, rel=1e-12)
    assert m["ball_radius"] == pytest.approx(radius, rel=1e-8)
    lr = 1.0 * n / evals[-1]
    assert m["gd_learning_rate"] == pytest.approx(lr, rel=1e-10)

    def spec(model: torch.nn.Module) -> tuple[float, float]:
        dj = _jacobian(model, x) - j0
        return float(np.linalg.norm(dj, 2)), float(np.linalg.norm(dj))

    theta0 = train.trainable_vector(net)
    records: dict[str, list[tuple[float, float, float]]] = {"gd": [], "gn": []}
    gd = _net(config, 3)
    params = list(gd.parameters())
    gd_steps = set(a["gd_step"].astype(int).tolist())
    losses = []
    for step in range(config.train.steps + 1):
        loss = 0.5 * ((gd(x) - y) ** 2).sum() / n
        losses.append(float(loss.detach()))
        if step in gd_steps:
            records["gd"].append(
                (*spec(gd), float(torch.linalg.vector_norm(train.trainable_vector(gd) - theta0)))
            )
        if step == config.train.steps:
            break
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            for p, g in zip(params, grads, strict=True):
                p.sub_(lr * g)
    np.testing.assert_allclose(a["gd_loss"], losses, rtol=1e-9)
    gn = _net(config, 3)
    gn_steps = a["gn_step"].astype(int).tolist()
    for step in range(max(gn_steps) + 1):
        if step in gn_steps:
            records["gn"].append(
                (*spec(gn), float(torch.linalg.vector_norm(train.trainable_vector(gn) - theta0)))
            )
        train.gauss_newton_step(gn, x, y, damping=1e-4, relative_damping=True, learning_rate=0.8)
    scale = 3 / math.sqrt(evals[0])
    for key in ("gd", "gn"):
        rec = np.array(records[key])
        np.testing.assert_allclose(a[f"{key}_jac_spec_change"], rec[:, 0], rtol=1e-6, atol=1e-10)
        np.testing.assert_allclose(a[f"{key}_param_distance"], rec[:, 2], rtol=1e-8, atol=1e-12)
        assert m[f"stability_constant_{key}"] == pytest.approx(scale * rec[:, 0].max(), rel=1e-6)
        assert m[f"jac_change_{key}"] == pytest.approx(rec[-1, 1] / np.linalg.norm(j0), rel=1e-6)
    inside = [s for key in records for s, _, d in records[key] if d <= radius]
    assert m["stability_constant"] == pytest.approx(scale * max(inside), rel=1e-6)
    assert m["meets_stability"] == (m["stability_constant"] < 0.5)
    target = 1e-3 * loss0
    first = next((k for k, v in enumerate(losses) if v <= target), None)
    assert m["gd_steps_to_target"] == first


def test_multi_output_run_with_probe_is_finite():
    digits = {"name": "digits", "n_train": 6, "n_test": 4, "classes": [0, 1, 2]}
    out = STUDY.run(_config(data=digits, steps=20, probe_rows=6, parametrization="standard"))
    m = out.metrics
    assert m["n_rows"] == 18 and m["status"] == "completed"
    for key in ("lambda_min", "condition_number", "jac_change_gd", "jac_change_gn", "stability_constant"):
        assert isinstance(m[key], float) and math.isfinite(m[key]) and m[key] > 0, key
    assert out.artifacts["gram0_eigenvalues"].shape == (18,)


def test_run_rejects_other_optimizers_and_index_targets():
    cfg = _config().model_copy(update={"train": _config().train.model_copy(update={"optimizer": "adam"})})
    with pytest.raises(ValueError, match="optimizer"):
        STUDY.run(cfg)
    digits = {"name": "digits", "n_train": 6, "n_test": 4, "target": "index"}
    with pytest.raises(ValueError, match=r"data\.target"):
        STUDY.run(_config(data=digits))


def _row(config: RunConfig, metrics: dict, run_id: str) -> ResultRow:
    return ResultRow(run_id=run_id, config=config, status="done", metrics=metrics)


def test_report_on_real_rows_writes_figures_and_tables(tmp_path):
    rows = []
    for width in (8, 32):
        for param in ("ntk", "standard"):
            cfg = _config(width=width, parametrization=param, steps=30)
            rows.append(_row(cfg, STUDY.run(cfg).metrics, f"{width}{param}"))
    section = STUDY.report(rows, tmp_path / "figures")
    assert section.verdict in ("supported", "not supported", "mixed")
    assert len(section.figures) == 3
    for fig in section.figures:
        assert fig.exists() and fig.stat().st_size > 10_000
    assert len(section.tables) == 2 and len(section.tables[0].rows) == 4 and len(section.tables[1].rows) == 2
    assert any("stability constant C" in f for f in section.findings)


def _constructed(c0: float, slope: float) -> list[ResultRow]:
    """Rows whose stability constant is c0 * (width / 64)^slope exactly (two seeds)."""
    rows = []
    for width in (64, 256, 1024, 4096):
        for seed in (0, 1):
            c = c0 * (width / 64) ** slope
            metrics = {
                "status": "completed", "lambda_min": 0.02, "condition_number": 400.0, "jac_change_gd": 0.1,
                "stability_constant": c, "meets_stability": c < 0.5, "gd_steps_to_target": 300,
                "gn_steps_to_target": 2, "gd_time_to_target": 1.0, "gn_time_to_target": 0.05,
                "gd_distance_ratio": 0.05, "gn_distance_ratio": 0.06,
            }  # fmt: skip
            rows.append(_row(_config(width=width, seed=seed), metrics, f"{width}-{seed}"))
    return rows


@pytest.mark.parametrize(
    ("c0", "slope", "verdict"),
    [(32.0, -0.5, "supported"), (3.0, -0.5, "mixed"), (0.4, -0.5, "not supported")],
)
def test_verdict_and_crossover_from_constructed_rows(tmp_path, c0, slope, verdict):
    section = STUDY.report(_constructed(c0, slope), tmp_path)
    assert section.verdict == verdict
    slopes = section.tables[1].rows[0]
    assert slopes[4].startswith("-0.50")
    crossover = 64 * (0.5 / c0) ** (1 / slope)  # c0 (w / 64)^slope = 1/2
    assert float(slopes[5]) == pytest.approx(crossover, rel=1e-2)
    # the condition and the benefit are stated apart: here GN always converges in 2 steps
    assert section.findings[1].startswith("Benefit, judged apart from the condition: Gauss–Newton reached")
    assert "in 8 of 8 runs" in section.findings[1] and "is present" in section.findings[1]
    numbers = section.to_dict()["numbers"]
    assert numbers["benefit"]["gn_runs_within_2_steps"] == 8
    at_64 = [v for k, v in numbers["mean_stability_constant"].items() if k.endswith("/64")]
    assert at_64 == [pytest.approx(c0)]


def test_benefit_absent_when_gauss_newton_is_slow(tmp_path):
    rows = _constructed(32.0, -0.5)
    slow = [
        ResultRow(r.run_id, r.config, r.status, {**r.metrics, "gn_steps_to_target": 7 if i % 2 else 1})
        for i, r in enumerate(rows)
    ]
    section = STUDY.report(slow, tmp_path)
    assert section.verdict == "supported"  # the condition fails either way
    assert "in 4 of 8 runs" in section.findings[1] and "not present in every run" in section.findings[1]


def test_report_without_completed_runs_is_inconclusive(tmp_path):
    failed = ResultRow(run_id="x", config=_config(), status="failed", metrics={})
    assert STUDY.report([failed], tmp_path).verdict == "inconclusive"


def test_linearized_run_has_a_constant_jacobian_and_one_step_gauss_newton():
    """The positive control: the linearization's Jacobian at its trained parameters equals J_0 (brute-force
    torch.func Jacobians), so the measured C is 0, and one undamped Gauss–Newton step reaches the optimum."""
    from tangentlab import train

    cfg = _config(linearized=True, gn_damping=0.0, gn_learning_rate=1.0, width=16)
    m = STUDY.run(cfg).metrics
    assert m["status"] == "completed" and m["lambda_min"] > 0
    assert m["stability_constant"] == 0.0 and m["meets_stability"] is True
    assert m["gn_steps_to_target"] == 1 and m["gn_final_loss_ratio"] < 1e-12
    assert m["jac_change_gn"] == 0.0
    # independent check of "constant Jacobian": move the linearization's parameters and compare Jacobians
    x = torch.randn(5, 3, dtype=D, generator=torch.Generator().manual_seed(0))
    lin = train.linearize(_net(cfg, 3))
    before = _jacobian(lin, x)
    with torch.no_grad():
        for p in lin.parameters():
            p.add_(torch.randn_like(p))
    np.testing.assert_allclose(_jacobian(lin, x), before, rtol=0, atol=1e-12)


def test_positive_control_runs_and_the_report_says_match(tmp_path):
    """The control run small beside the nets: judged apart from the verdict, and the tests say "match" there."""
    rows = []
    for width in (8, 32):
        for lin in (False, True):
            cfg = _config(width=width, linearized=lin, gn_damping=1e-6, gn_learning_rate=1.0, steps=30)
            rows.append(_row(cfg, STUDY.run(cfg).metrics, f"{width}{lin}"))
    section = STUDY.report(rows, tmp_path)
    control = section.to_dict()["numbers"]["positive_control"]
    assert control["verdict"] == "match", control
    assert control["measured"]["runs"] == 2 and control["measured"]["max_stability_constant"] == 0.0
    assert control["measured"]["max_gn_steps"] == 1
    assert section.findings[2].startswith("Positive control") and section.findings[2].endswith("→ match.")
    # the control's runs stay out of the verdict's cells
    assert len(section.to_dict()["numbers"]["mean_stability_constant"]) == 2


def test_the_same_control_says_no_match_on_a_case_built_to_fail(tmp_path):
    """Control rows with C = 3 and Gauss–Newton at 7 steps (a Jacobian that moves): "no match"."""
    rows = _constructed(32.0, -0.5)
    bad = [
        ResultRow(
            f"lin{r.run_id}",
            r.config.model_copy(update={"params": {**r.config.params, "linearized": True}}),
            r.status,
            {**r.metrics, "stability_constant": 3.0, "gn_steps_to_target": 7},
        )
        for r in rows[:2]
    ]
    section = STUDY.report(rows + bad, tmp_path)
    control = section.to_dict()["numbers"]["positive_control"]
    assert control["verdict"] == "no match" and control["measured"]["runs_condition_holds"] == 0
    assert "the tests are suspect" in section.findings[2]
    assert section.verdict == "supported"  # judged on the nets only
