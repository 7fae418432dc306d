"""The scaling study: complete finite metrics on a tiny config; skipped runs; report on tiny real rows."""

import math

import pytest

from tangentlab.runner.config import RunConfig
from tangentlab.studies import ResultRow
from tangentlab.studies.scaling import KERNELS, METHODS, ScalingParams, ScalingStudy

DATA = {"name": "digits", "n_train": 64, "n_test": 24}


def _config(seed: int = 0, **params) -> RunConfig:
    p = {"n_train": 16, "pretrain_m": 8, "test_size": 24, "width": 32, "channels": 4, "depth": 1, **params}
    return RunConfig(
        study="scaling",
        data=DATA,
        train={"optimizer": "adam", "learning_rate": 1e-2, "steps": 20},
        params=ScalingParams(**p).model_dump(),
        seed=seed,
    )


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_run_returns_complete_finite_metrics(kind):
    m = ScalingStudy().run(_config(model_kind=kind)).metrics
    assert m["status"] == "completed"
    for method in METHODS:
        for measure in ("mse", "err"):
            v = m[f"test_{measure}_{method}"]
            assert isinstance(v, float) and math.isfinite(v), (method, measure, v)
        assert 0.0 <= m[f"test_err_{method}"] <= 1.0
    for kernel in KERNELS:
        assert m[f"solver_{kernel}"] in ("cholesky", "eigh")
        assert m[f"cond_{kernel}"] is not None and m[f"cond_{kernel}"] >= 1.0
    assert m["n_test_used"] == 24


def test_no_pretraining_leaves_entk_m_null_and_large_n_is_skipped():
    m = ScalingStudy().run(_config(pretrain_m=0)).metrics
    assert m["test_mse_entk_m"] is None and m["solver_entk_m"] is None
    assert math.isfinite(m["test_mse_net"])
    skipped = ScalingStudy().run(_config(n_train=65)).metrics
    assert skipped["status"] == "skipped"


def test_infinite_cnn_kernel_skipped_above_the_position_cap():
    m = ScalingStudy().run(_config(model_kind="cnn", pretrain_m=0, ntk_max_positions=16)).metrics
    assert m["ntk_skipped"] is True and m["test_mse_ntk"] is None and m["solver_ntk"] is None
    assert math.isfinite(m["test_mse_entk0"])


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match=r"train\.loss"):
        ScalingStudy().run(
            _config().model_copy(
                update={"train": _config().train.model_copy(update={"loss": "cross_entropy"})}
            )
        )


def test_report_on_tiny_real_rows_writes_figure_and_exponent_table(tmp_path):
    study = ScalingStudy()
    rows = []
    for n in (8, 16, 32):
        for seed in (0, 1):
            config = _config(seed=seed, n_train=n, pretrain_m=2)  # n >= 4 m everywhere
            out = study.run(config)
            rows.append(ResultRow(run_id=config.run_id, config=config, status="done", metrics=out.metrics))
    rows.append(
        ResultRow(run_id="x", config=_config(n_train=65), status="done", metrics={"status": "skipped"})
    )
    section = study.report(rows, tmp_path / "figures")
    assert section.verdict in ("supported", "not supported", "mixed")
    assert len(section.figures) == 1 and section.figures[0].stat().st_size > 10_000
    (table,) = section.tables
    assert len(table.rows) == 4  # net, eNTK at init, infinite NTK, eNTK after 2 samples
    for row in table.rows:
        assert row[3] == "8–32" and row[4] == "6"
        alpha = float(row[5].split()[0])
        assert math.isfinite(alpha)
        alpha_offset, lo, hi = (float(v.strip("[],")) for v in row[7].split())
        assert lo <= alpha_offset <= hi  # the "+ c" fit: three sizes are enough
    assert any("1 skipped" in s for s in section.settings)


def test_report_keeps_each_pretrain_m_apart_at_the_largest_n(tmp_path):
    """The finding at the largest n gives each after-m eNTK its own mean, not a mean pooled over every m."""
    metrics = {"status": "completed", "test_mse_net": 0.5, "test_mse_entk0": 0.9, "test_mse_ntk": 0.7}
    metrics |= {k.replace("mse", "err"): v / 10 for k, v in metrics.items() if k != "status"}
    rows = []
    for m, entk_m in ((2, 0.2), (4, 0.6)):
        for n in (8, 16):
            for seed in (0, 1):
                config = _config(seed=seed, n_train=n, pretrain_m=m)
                values = {
                    k: v * (16 / n) ** 0.5
                    for k, v in {**metrics, "test_mse_entk_m": entk_m, "test_err_entk_m": entk_m / 10}.items()
                    if k != "status"
                }
                rows.append(
                    ResultRow(
                        run_id=config.run_id, config=config, status="done", metrics={**metrics, **values}
                    )
                )
    section = ScalingStudy().report(rows, tmp_path / "figures")
    (line,) = [f for f in section.findings if "at n = 16" in f]
    assert "after 2 samples MSE 0.200" in line and "after 4 samples MSE 0.600" in line


def test_after_m_kernel_is_fitted_over_n_much_larger_than_m_only(tmp_path):
    """Vyas et al.'s claim is about n >> m: the after-m curve uses n >= 4 m; ranges and decades are stated."""
    rows = []
    for n in (8, 16, 32, 64):
        for seed in (0, 1, 2):
            config = _config(seed=seed, n_train=n, pretrain_m=8)
            values = {"test_mse_net": n**-0.5, "test_mse_entk0": n**-0.2, "test_mse_ntk": n**-0.2}
            values |= {"test_mse_entk_m": 0.3 if n <= 16 else 0.3 * (n / 32) ** -0.4}
            values |= {k.replace("mse", "err"): v / 10 for k, v in values.items()}
            metrics = {"status": "completed", **{k: v * (1 + 0.01 * seed) for k, v in values.items()}}
            rows.append(ResultRow(run_id=config.run_id, config=config, status="done", metrics=metrics))
    section = ScalingStudy().report(rows, tmp_path / "figures")
    after = next(r for r in section.tables[0].rows if r[2] == "eNTK after 8 samples")
    assert after[3] == "32–64" and after[4] == "6"
    exponents = section.to_dict()["numbers"]["exponents"]  # findings.json
    (key,) = [k for k in exponents if k.endswith("/entk_m=8/mse")]
    assert exponents[key]["fit_range_n"] == [32, 64] and exponents[key]["alpha"] == pytest.approx(
        0.4, abs=0.02
    )
    assert float(after[5].split()[0]) == pytest.approx(0.4, abs=0.02)  # the flat part at n <= 2 m is left out
    text = "\n".join(section.findings)
    assert "eNTK after 8 samples, " in text and "(fit range n = 32–64, 0.30 decades;" in text
    assert "(fit range n = 8–64, 0.90 decades; error-rate exponents beside them: net 0.500" in text


SYNTH = {"name": "synthetic", "n_train": 64, "n_test": 32, "options": {"input_dim": 3}}


def _linear(seed: int, n: int) -> RunConfig:
    config = _config(seed=seed, n_train=n, model_kind="linear", pretrain_m=2)
    return RunConfig(study="scaling", data=SYNTH, train=config.train, params=config.params, seed=seed)


def test_linear_model_is_its_own_entk_and_is_trained_to_least_squares():
    """The positive control's model: eNTK at init = after m = infinite NTK, and the net (one Gauss-Newton step)
    predicts what ordinary least squares on [x, 1] predicts (numpy lstsq, an independent reference)."""
    import numpy as np
    import torch

    config = _linear(0, 16)
    m = ScalingStudy().run(config).metrics
    assert m["status"] == "completed" and m["trained_by"] == "gauss_newton"
    assert m["test_mse_entk0"] == pytest.approx(m["test_mse_ntk"], rel=1e-9)
    assert m["test_mse_entk0"] == pytest.approx(m["test_mse_entk_m"], rel=1e-9)
    ds = config.data.load(shape="flat")  # data seed = data.seed + seed = 0
    x, y = ds.x_train[:16].to(torch.float64).numpy(), ds.y_train[:16].to(torch.float64).numpy()
    xt, yt = ds.x_test[:24].to(torch.float64).numpy(), ds.y_test[:24].to(torch.float64).numpy()
    design = np.hstack([x, np.ones((16, 1))])
    coef, *_ = np.linalg.lstsq(design, y.reshape(16, -1), rcond=None)
    pred = np.hstack([xt, np.ones((xt.shape[0], 1))]) @ coef
    mse = float(np.mean(np.sum((pred - yt.reshape(pred.shape)) ** 2, axis=1)))
    assert m["test_mse_net"] == pytest.approx(mse, rel=1e-3)  # the singular Gram is solved with a jitter
    assert m["test_mse_entk0"] == pytest.approx(mse, rel=1e-3)  # kernel regression, ridge 1e-6


def test_positive_control_runs_and_the_report_says_match(tmp_path):
    """The control run small (linear model, n = 8...32, 3 seeds): the report's comparison must say "match"."""
    study = ScalingStudy()
    rows = []
    for n in (8, 16, 32):
        for seed in (0, 1, 2):
            config = _linear(seed, n)
            rows.append(
                ResultRow(
                    run_id=config.run_id, config=config, status="done", metrics=study.run(config).metrics
                )
            )
    section = study.report(rows, tmp_path)
    control = section.to_dict()["numbers"]["positive_control"]
    assert control["verdict"] == "match", control
    assert control["measured"]["synthetic"]["comparison"] == "not distinguishable"
    assert any(f.startswith("Positive control") and f.endswith("→ match.") for f in section.findings)


def test_the_same_control_says_no_match_on_a_case_built_to_fail(tmp_path):
    """Linear-model rows whose net scales as n^-0.8 while its kernels scale as n^-0.2: "no match"."""
    import numpy as np

    rng = np.random.default_rng(0)
    rows = []
    for n in (16, 32, 64, 128):
        for seed in (0, 1, 2):
            config = _config(seed=seed, n_train=n, model_kind="linear", pretrain_m=0)
            noise = float(np.exp(0.02 * rng.standard_normal()))
            metrics = {"status": "completed", "test_mse_net": n**-0.8 * noise}
            metrics |= {f"test_mse_{k}": n**-0.2 * noise for k in ("entk0", "ntk")}
            rows.append(ResultRow(run_id=f"{n}-{seed}", config=config, status="done", metrics=metrics))
    section = ScalingStudy().report(rows, tmp_path)
    control = section.to_dict()["numbers"]["positive_control"]
    assert control["verdict"] == "no match"
    assert control["measured"]["digits"]["comparison"] == "net better"
    assert control["measured"]["digits"]["net"]["alpha"] == pytest.approx(0.8, abs=0.02)
    assert section.verdict == "inconclusive"  # the control is not part of the verdict


def test_least_squares_step_on_ten_outputs_matches_lstsq_per_output():
    """The linear control on digits (10 one-hot outputs, n = 80 > 65 features): one step = lstsq per output."""
    import numpy as np
    import torch

    from tangentlab.studies.scaling import build_description, least_squares_step

    ds = RunConfig(study="scaling", data={"name": "digits", "n_train": 80, "n_test": 20}).data.load(
        shape="flat"
    )
    x, y = ds.x_train.to(torch.float64), ds.y_train.to(torch.float64)
    for param in ("standard", "ntk"):
        net = build_description("linear", 1, 1, 1, 10, 0.1).build(
            (64,), parametrization=param, seed=0, dtype=torch.float64
        )
        least_squares_step(net, x, y)
        design = np.hstack([x.numpy(), np.ones((80, 1))])
        coef, *_ = np.linalg.lstsq(design, y.numpy(), rcond=None)
        with torch.no_grad():
            fitted = net(x).numpy()
        np.testing.assert_allclose(fitted, design @ coef, atol=1e-8)


def test_linear_control_is_its_entk_regression_at_the_mnist_interpolation_peak():
    """Issue 17 (full scaling's control said "no match" on MNIST): at n = 1024 > 785 features, with pixels that are
    0 in almost every image, the control's least-squares step must give the study's eNTK regression (same relative
    ridge). The former pinv step (ridgeless, default cutoff) had test MSE 2.6 against 4.18 here."""
    import torch

    from tangentlab import empirical_ntk
    from tangentlab.studies.scaling import build_description, kernel_regression, least_squares_step

    n, nt, ridge = 1024, 300, 1e-6
    ds = RunConfig(study="scaling", data={"name": "mnist", "n_train": n, "n_test": nt}).data.load(
        shape="flat"
    )
    x, xt = ds.x_train.to(torch.float64), ds.x_test.to(torch.float64)
    y, yt = ds.y_train.to(torch.float64), ds.y_test.to(torch.float64)  # one-hot targets
    assert y.shape == (n, 10)
    net = build_description("linear", 1, 1, 1, 10, 0.1).build((784,), seed=0, dtype=torch.float64)
    k_all = empirical_ntk(net, torch.cat([x, xt]), x, outputs="trace").to(torch.float64) / 10
    kernel_pred, _ = kernel_regression(k_all, n, y, ridge)
    least_squares_step(net, x, y, ridge)
    with torch.no_grad():
        net_pred = net(xt)
    mse_net, mse_kernel = float(((net_pred - yt) ** 2).mean()), float(((kernel_pred - yt) ** 2).mean())
    assert mse_kernel > 0.2  # the interpolation peak: far above the 0.1 of n = 4096
    assert mse_net == pytest.approx(mse_kernel, rel=1e-3)
    assert float((net_pred - kernel_pred).abs().max()) < 0.05  # only the small initial function's residue
