"""The ``ensemble`` study's numerics against independent references (float64), its controls, and a run + report
through the CLI: discrete-GD kernels vs simulated GD, the vmapped ensemble trainer vs ``train.fit``, the paired
terms vs explicit formulas, wide/early ensembles vs the closed-form NTK-GP, narrow/long ones said not to match."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from tangentlab import arch, empirical_nngp, predict, train
from tangentlab.studies.ensemble import numerics, readout_scales
from tangentlab.studies.ensemble.report import MATCH_TOL, Z, match_call
from tests.studies._cli import cli

F64 = torch.float64


def _net(width: int) -> arch.Layer:
    return arch.serial(
        arch.Dense(width, sigma_w=1.0, sigma_b=1.0), arch.ReLU(), arch.Dense(1, sigma_w=1.0, sigma_b=1.0)
    )


def _data(n: int, m: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, generator=g, dtype=F64) * 2 - 1
    xt = torch.linspace(-1, 1, m, dtype=F64)[:, None]
    return x, torch.sin(3 * x[:, 0]), xt


def _setup(width: int, n: int, m: int) -> dict[str, torch.Tensor | float]:
    x, y, xt = _data(n, m)
    k = _net(width).kernel(torch.cat([xt, x]))
    th, kk = k.ntk.to(F64), k.nngp.to(F64)
    eta = 0.5 * n / float(torch.linalg.eigvalsh(th[m:, m:])[-1])
    return {"x": x, "y": y, "xt": xt, "th": th, "k": kk, "eta": eta}


def test_discrete_gd_kernels_give_the_outputs_of_simulated_gradient_descent():
    n, m = 7, 5
    s = _setup(64, n, m)
    th, y, eta = s["th"], s["y"], float(s["eta"])
    assert isinstance(th, torch.Tensor) and isinstance(y, torch.Tensor)
    tp, tps = numerics.discrete_gd_kernels(th[m:, m:], th[:m, m:], eta)
    f0x = torch.linspace(-0.3, 0.4, n, dtype=F64)
    f0s = torch.linspace(0.2, -0.1, m, dtype=F64)
    times = [1, 3, 17, 200]
    flow = predict.gradient_descent_mse(tp, y, tps, t=times, learning_rate=eta, f0_train=f0x, f0_test=f0s)
    fx, fs, seen = f0x.clone(), f0s.clone(), {}
    for step in range(max(times) + 1):
        if step in times:
            seen[step] = fs.clone()
        r = fx - y
        fx, fs = fx - eta / n * th[m:, m:] @ r, fs - eta / n * th[:m, m:] @ r
    for j, t in enumerate(times):
        torch.testing.assert_close(flow[j], seen[t], rtol=0, atol=1e-11)
    with pytest.raises(ValueError, match="eta \\* lambda_max / n"):
        numerics.discrete_gd_kernels(th[m:, m:], th[:m, m:], 2.5 * eta)


def test_the_vmapped_ensemble_trainer_equals_train_fit_member_by_member():
    x, y, xt = _data(6, 4)
    nets = [_net(32).build((1,), seed=k, dtype=F64) for k in range(3)]
    trace = numerics.train_ensemble(nets, x, y, xt, learning_rate=0.3, record=(0, 4, 9))
    assert trace.probe.shape == (3, 3, 4) and trace.steps == (0, 4, 9) and not trace.diverged.any()
    for k, net in enumerate(nets):
        with torch.no_grad():
            torch.testing.assert_close(trace.f0_train[k], net(x)[:, 0], rtol=0, atol=1e-13)
        snaps = train.Snapshots(steps=(0, 4, 9), probe=xt, ntk=False, outputs=True)
        res = train.fit(net, x, y[:, None], steps=9, learning_rate=0.3, snapshots=snaps)
        for j, snap in enumerate(res.snapshots):
            assert snap.probe_outputs is not None
            torch.testing.assert_close(trace.probe[k, j], snap.probe_outputs[:, 0], rtol=0, atol=1e-12)
        assert math.isclose(float(trace.train_loss[k]), res.final_train_loss, rel_tol=1e-10)


def test_paired_samples_and_init_variance_terms_equal_their_formulas():
    n, m, kk = 5, 4, 3
    gen = torch.Generator().manual_seed(1)
    gain = torch.randn(2, m, n, generator=gen, dtype=F64)
    f0x, f0s = torch.randn(kk, n, generator=gen, dtype=F64), torch.randn(kk, m, generator=gen, dtype=F64)
    y = torch.randn(n, generator=gen, dtype=F64)
    g = numerics.paired_samples(f0x, f0s, y, gain)
    a = torch.randn(kk, m + n, m + n, generator=gen, dtype=F64)
    cov = a @ a.transpose(1, 2)
    c = numerics.init_variance_terms(cov, gain, m)
    for k in range(kk):
        for t in range(2):
            torch.testing.assert_close(g[k, t], f0s[k] + gain[t] @ (y - f0x[k]))
            p = torch.cat([torch.eye(m, dtype=F64), -gain[t]], dim=1)
            torch.testing.assert_close(c[k, t], torch.diagonal(p @ cov[k] @ p.T))


def _ensemble(width: int, members: int, times: list[int], n: int = 6, m: int = 8) -> dict[str, np.ndarray]:
    """Train an ensemble and return the member outputs, paired terms and the NTK-GP (the study's pipeline)."""
    s = _setup(width, n, m)
    x, y, xt, th, kk, eta = (s[key] for key in ("x", "y", "xt", "th", "k", "eta"))
    assert isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor) and isinstance(xt, torch.Tensor)
    assert isinstance(th, torch.Tensor) and isinstance(kk, torch.Tensor)
    eta = float(eta)  # type: ignore[arg-type]
    tp, tps = numerics.discrete_gd_kernels(th[m:, m:], th[:m, m:], eta)
    pred = predict.gradient_descent_mse_ensemble(
        y,
        nngp_train_train=kk[m:, m:],
        ntk_train_train=tp,
        nngp_test_train=kk[:m, m:],
        ntk_test_train=tps,
        nngp_test_test=kk[:m, :m],
        t=times,
        learning_rate=eta,
    )
    assert pred.covariance is not None
    gain = predict.gradient_descent_mse(tp, torch.eye(n, dtype=F64), tps, t=times, learning_rate=eta)
    description = _net(width)
    nets = [description.build((1,), seed=k, dtype=F64) for k in range(members)]
    trace = numerics.train_ensemble(nets, x, y, xt, learning_rate=eta, record=(0, *times))
    g = numerics.paired_samples(trace.f0_train, trace.probe[:, 0], y, gain)
    sw, sb = readout_scales(description)
    xa = torch.cat([xt, x])
    cov = torch.stack([sw**2 * empirical_nngp(net, xa) + sb**2 for net in nets])
    c = numerics.init_variance_terms(cov, gain, m)
    return {
        "f": trace.probe[:, 1:].numpy(),
        "g": g.numpy(),
        "c": c.numpy(),
        "mu": pred.mean.numpy(),
        "sigma2": torch.diagonal(pred.covariance, dim1=-2, dim2=-1).numpy(),
    }


def _call(e: dict[str, np.ndarray], stat: str) -> tuple[float, str]:
    d = numerics.distances(e["f"], e["g"], e["c"], e["mu"], e["sigma2"])
    boot = numerics.bootstrap_distances(e["f"], e["g"], e["c"], e["mu"], e["sigma2"], n_boot=200)
    value = float(getattr(d, stat)[-1])
    se = float(np.std(boot[0 if stat == "mean" else 1][:, -1], ddof=1))
    return value, match_call(value - Z * se, value + Z * se)


def test_a_wide_ensemble_early_in_training_has_the_closed_form_ntk_gp_mean_and_variance():
    """Width 2048, 5 GD steps, 300 nets: the raw ensemble statistics agree with the NTK-GP within Monte Carlo
    error, point by point, and the paired distances say "match" (the positive control)."""
    members = 300
    e = _ensemble(2048, members, [5])
    f, mu, s2 = e["f"][:, 0], e["mu"][0], e["sigma2"][0]
    assert np.all(s2 > 1e-3)  # five steps in, the NTK-GP is still uncertain everywhere on the test grid
    z_mean = (f.mean(axis=0) - mu) / np.sqrt(s2 / members)
    assert np.max(np.abs(z_mean)) < 4.5, z_mean
    ratio = f.var(axis=0, ddof=1) / s2
    assert np.max(np.abs(ratio - 1)) < 4.5 * math.sqrt(2 / (members - 1)), ratio
    for stat in ("mean", "variance"):
        value, call = _call(e, stat)
        assert call == "match" and value < MATCH_TOL / 3, (stat, value)


def test_a_narrow_long_trained_ensemble_is_called_no_match():
    """Width 4 trained for 1000 steps is far from its linearization: the mismatch metric must say so."""
    e = _ensemble(4, 20, [1000])
    value, call = _call(e, "mean")
    assert call == "no match" and value > 2 * MATCH_TOL, value


def test_a_small_sweep_runs_and_reports_numbers_as_data(tmp_path: Path):
    config = tmp_path / "ensemble.yaml"
    config.write_text(
        "study: ensemble\n"
        "data: {name: gap1d, n_train: 8, n_test: 12}\n"
        "params: {ensemble_size: 6, times: [3, 30]}\n"
        "grid: {width: [8, 64, 512]}\n"
        "seeds: 1\n"
    )
    done = cli("run", str(config), "--out", str(tmp_path / "runs"), "--workers", "1")
    assert done.returncode == 0, done.stderr
    listed = json.loads(cli("results", str(tmp_path / "runs"), "--format", "json").stdout)
    assert len(listed) == 3 and all(r["status"] == "done" and r["metrics"]["n_diverged"] == 0 for r in listed)
    assert all(r["metrics"]["mean_distance_t3"] > 0 for r in listed)
    report = cli("report", str(tmp_path / "runs"))
    assert report.returncode == 0, report.stderr
    findings = json.loads((tmp_path / "runs" / "report" / "findings.json").read_text())
    studies = findings["studies"]
    section = studies["ensemble"] if isinstance(studies, dict) else studies[0]
    assert section["verdict"] in ("supported", "mixed", "not supported", "inconclusive")
    entry = section["numbers"]["datasets"]["gap1d"]["mean_t3"]
    assert entry["widest"]["width"] == 512 and entry["narrowest"]["width"] == 8
    lo, hi = entry["widest"]["ci"]
    assert lo <= entry["widest"]["distance"] <= hi
    by_width = {r["config"]["params"]["width"]: r["metrics"]["mean_distance_t3"] for r in listed}
    assert math.isclose(entry["widest"]["distance"], by_width[512], rel_tol=1e-6)
    control = section["numbers"]["positive_control"]
    assert control["measured"]["gap1d"]["width"] == 512 and control["measured"]["gap1d"]["t"] == 3
    assert math.isclose(control["measured"]["gap1d"]["distance"]["mean"], by_width[512], rel_tol=1e-6)
    calls = control["measured"]["gap1d"]["calls"]
    assert control["verdict"] == ("match" if set(calls.values()) == {"match"} else "no match")
    figures = set(section["figures"])
    assert {"ensemble_distance_vs_width.png", "ensemble_bands_gap1d.png"} <= figures
