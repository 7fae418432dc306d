"""The bandit study: environments on hand-made cases, the function-space posterior against weight-space and
linearized-Laplace references, evidence tuning and sublinear regret on a linear bandit, run() and report()."""

import math

import numpy as np
import pytest
import torch

from tangentlab import arch
from tangentlab.kernels import ntk_features
from tangentlab.predict import LinearizedLaplace
from tangentlab.predict.laplace import DEFAULT_PRIOR_GRID, DEFAULT_SIGMA_GRID
from tangentlab.runner.config import RunConfig
from tangentlab.studies import ResultRow
from tangentlab.studies.bandit import BanditStudy
from tangentlab.studies.bandit.agents import (
    AgentSettings,
    fit_evidence,
    gp_ucb_beta,
    make_agent,
    ntk_rule_gamma,
    play,
)
from tangentlab.studies.bandit.envs import (
    BanditEnv,
    classification_bandit,
    disjoint_encoding,
    linear_bandit,
    nonlinear_bandit,
)
from tangentlab.studies.bandit.posterior import KernelPosterior
from tangentlab.studies.bandit.report import compare_regret, judge

D64 = torch.float64


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Small per-round tensor ops: one thread avoids oversubscription on a shared machine (restored after)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ---------------------------------------------------------------- environments
def test_reward_and_regret_on_a_hand_made_bandit():
    means = torch.tensor([[0.2, 0.9, 0.5], [1.0, 0.0, 0.0]], dtype=D64)
    noise = torch.tensor([[0.1, -0.1, 0.0], [0.0, 0.3, 0.0]], dtype=D64)
    env = BanditEnv("hand", torch.zeros(2, 3, 4, dtype=D64), means, noise, 0.1)
    assert (env.rounds, env.n_arms, env.dim) == (2, 3, 4)
    assert env.reward(0, 0) == pytest.approx(0.3)
    assert env.reward(1, 1) == pytest.approx(0.3)
    assert env.regret(0, 0) == pytest.approx(0.7)
    assert env.regret(0, 1) == 0.0
    assert env.regret(1, 2) == pytest.approx(1.0)


def test_disjoint_encoding_places_the_example_in_the_arm_block():
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=D64)
    enc = disjoint_encoding(x, 3)
    assert enc.shape == (2, 3, 6)
    assert enc[1, 2].tolist() == [0, 0, 0, 0, 3.0, 4.0]
    assert enc[0, 0].tolist() == [1.0, 2.0, 0, 0, 0, 0]
    assert float(enc.abs().sum()) == pytest.approx(3 * float(x.abs().sum()))


def test_classification_bandit_pays_one_for_the_label_and_is_deterministic():
    env = classification_bandit("digits", rounds=40, input_dim=4, seed=3, pool_size=300, classes=(0, 1, 2))
    assert (env.n_arms, env.dim) == (3, 12)
    assert torch.equal(env.means.sum(1), torch.ones(40, dtype=D64))
    assert set(env.means.unique().tolist()) == {0.0, 1.0}
    assert float(env.noise.abs().max()) == 0.0  # noise_std = 0
    # ||x||^2 = D for every arm, and only the arm's block is non-zero
    assert torch.allclose(env.contexts.norm(dim=-1) ** 2, torch.full((40, 3), 12.0, dtype=D64))
    assert (
        float(env.contexts[:, 1, :4].abs().sum()) == 0.0 and float(env.contexts[:, 1, 8:].abs().sum()) == 0.0
    )
    again = classification_bandit("digits", rounds=40, input_dim=4, seed=3, pool_size=300, classes=(0, 1, 2))
    assert torch.equal(again.contexts, env.contexts) and torch.equal(again.means, env.means)
    # regret of the labelled arm is 0, of any other arm 1
    label = int(env.means[0].argmax())
    assert env.regret(0, label) == 0.0 and env.regret(0, (label + 1) % 3) == 1.0
    with pytest.raises(ValueError, match="input_dim"):
        classification_bandit("digits", rounds=5, input_dim=65, pool_size=100)


def test_nonlinear_bandits_share_contexts_and_direction():
    kw = {"rounds": 30, "dim": 6, "n_arms": 3, "noise_std": 0.0, "seed": 1}
    cos, quad = nonlinear_bandit("cos", **kw), nonlinear_bandit("quadratic", **kw)
    assert torch.equal(cos.contexts, quad.contexts)
    assert torch.allclose(cos.contexts.norm(dim=-1), torch.full((30, 3), math.sqrt(6), dtype=D64))
    # |u^T x| from 10 (u^T x)^2, then cos(3 u^T x) = cos(3 |u^T x|)
    s = (quad.means / 10).sqrt()
    assert torch.allclose(cos.means, torch.cos(3 * s), atol=1e-12)
    assert float(quad.means.max()) <= 10.0
    with pytest.raises(ValueError, match="reward"):
        nonlinear_bandit("sin", rounds=3)  # type: ignore[arg-type]


def test_linear_bandit_means_are_linear_in_the_context():
    env, theta = linear_bandit(rounds=20, dim=4, n_arms=5, alpha=2.0, noise_std=0.3, seed=0)
    assert torch.allclose(env.means, env.contexts @ theta)
    assert env.noise.std().item() == pytest.approx(0.3, rel=0.3)


# ---------------------------------------------------------------- posterior
def _mlp(d: int = 5, width: int = 7) -> torch.nn.Module:
    return arch.serial(arch.Dense(width), arch.ReLU(), arch.Dense(1)).build((d,), seed=0, dtype=D64)


def test_kernel_posterior_equals_weight_space_neuralucb_quantities():
    """(1/lambda)(k - k(K+lambda I)^-1 k) = g^T Z^-1 g and log det(I + K/lambda) = log det Z / det(lambda I)
    with Z = lambda I + sum g g^T, built pull by pull."""
    torch.manual_seed(1)
    lam, p = 0.7, 6
    g_hist, g_test = torch.randn(9, p, dtype=D64), torch.randn(4, p, dtype=D64)
    post = KernelPosterior(lam)
    for i in range(9):
        post.append(g_hist[:i] @ g_hist[i], float(g_hist[i] @ g_hist[i]))
    z = lam * torch.eye(p, dtype=D64) + g_hist.T @ g_hist
    want = torch.einsum("ip,pq,iq->i", g_test, torch.linalg.inv(z), g_test)
    got = post.variance(g_test @ g_hist.T, (g_test**2).sum(1))
    assert torch.allclose(got, want, rtol=1e-10)
    cov = post.covariance(g_test @ g_hist.T, g_test @ g_test.T)
    assert torch.allclose(cov, g_test @ torch.linalg.inv(z) @ g_test.T, rtol=1e-9, atol=1e-12)
    assert post.info_gain() == pytest.approx(float(torch.logdet(z)) - p * math.log(lam), rel=1e-10)
    # reset from the Gram matrix gives the same inverse
    fresh = KernelPosterior(lam)
    fresh.reset(g_hist @ g_hist.T)
    assert torch.allclose(fresh.inverse, post.inverse, atol=1e-10)
    assert fresh.logdet == pytest.approx(post.logdet, rel=1e-10)
    # GP mean against a direct solve
    y = torch.randn(9, dtype=D64)
    k = g_hist @ g_hist.T
    assert torch.allclose(
        post.mean(g_test @ g_hist.T, y), g_test @ g_hist.T @ torch.linalg.solve(k + lam * torch.eye(9), y)
    )


def test_evidence_variance_is_the_linearized_laplace_predictive():
    """sigma^2 v_lambda(x) with lambda = alpha sigma^2 equals LinearizedLaplace.predict's covariance."""
    net = _mlp()
    x, xs = torch.randn(12, 5, dtype=D64), torch.randn(3, 5, dtype=D64)
    alpha, sigma = 2.5, 0.3
    lla = LinearizedLaplace(net, prior_precision=alpha, sigma_noise=sigma).fit(x, torch.randn(12, dtype=D64))
    want = lla.predict(xs).covariance
    g, gs = ntk_features(net, x), ntk_features(net, xs)
    post = KernelPosterior(alpha * sigma**2)
    post.reset(g @ g.T)
    assert torch.allclose(sigma**2 * post.covariance(gs @ g.T, gs @ gs.T), want, rtol=1e-8, atol=1e-12)


def test_ntk_rule_and_gp_ucb_scales():
    s = AgentSettings(lam=2.0, nu=0.5, norm_bound=3.0, delta=0.05)
    assert ntk_rule_gamma(4.0, s) == pytest.approx(0.5 * math.sqrt(4.0 + 2 * math.log(20)) + math.sqrt(2) * 3)
    assert gp_ucb_beta(3, 4, 0.1) == pytest.approx(2 * math.log(4 * 9 * math.pi**2 / 0.6))


# ---------------------------------------------------------------- linear bandit: evidence and regret
def _linear(d: int) -> torch.nn.Module:
    lin = torch.nn.Linear(d, 1, bias=False).to(D64)
    torch.nn.init.zeros_(lin.weight)
    return lin


def _blr_log_evidence(
    x: torch.Tensor, y: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor
) -> torch.Tensor:
    """Closed-form Bayesian linear regression evidence in weight space (Bishop 2006, eq. 3.86), batched."""
    n, d = x.shape
    a, b = alpha[:, None, None, None], (1 / sigma**2)[None, :, None, None]
    prec = a * torch.eye(d, dtype=D64) + b * (x.T @ x)  # (A, S, d, d)
    m = b * torch.linalg.solve(prec, (x.T @ y)[:, None])  # (A, S, d, 1)
    e = 0.5 * b[..., 0, 0] * ((y[:, None] - x @ m) ** 2).sum((-2, -1)) + 0.5 * alpha[:, None] * (m**2).sum(
        (-2, -1)
    )
    return (
        0.5 * d * torch.log(alpha)[:, None]
        + 0.5 * n * torch.log(b[..., 0, 0])
        - e
        - 0.5 * torch.logdet(prec)
        - 0.5 * n * math.log(2 * math.pi)
    )


def test_evidence_tuning_recovers_the_linear_bandit_prior_and_noise():
    """alpha* = 4, sigma = 0.5, d = 20: after 200 rounds the agent's evidence fit matches the oracle
    d/||theta*||^2 within 1.35x per seed (a grid step is 1.33x), its geometric mean over 4 seeds is within 1.5x of
    alpha*, sigma within 10%; on the final history it is the argmax of the closed-form evidence on the same grid."""
    alpha_star, sigma_star, d = 4.0, 0.5, 20
    alphas = []
    settings = AgentSettings(prior_at_init=False, learning_rate=0.05, tune_every=50)
    for seed in range(4):
        env, theta = linear_bandit(
            rounds=200, dim=d, n_arms=10, alpha=alpha_star, noise_std=sigma_star, seed=seed
        )
        agent = make_agent("ucb_evidence", _linear(d), None, settings, seed)
        play(agent, env)
        oracle = d / float(theta @ theta)
        assert 1 / 1.35 < agent.alpha_ / oracle < 1.35  # type: ignore[attr-defined]
        assert agent.sigma_ == pytest.approx(sigma_star, rel=0.1)  # type: ignore[attr-defined]
        alphas.append(agent.alpha_)  # type: ignore[attr-defined]
        if seed == 0:
            x, y = torch.stack(agent.xs), torch.tensor(agent.rs, dtype=D64)
            a_fit, s_fit = fit_evidence(_linear(d), x, y, None)
            a_grid = torch.tensor(DEFAULT_PRIOR_GRID, dtype=D64)
            s_grid = torch.tensor(DEFAULT_SIGMA_GRID, dtype=D64) * float(y.pow(2).mean().sqrt())
            ev = _blr_log_evidence(x, y, a_grid, s_grid)
            best = int(torch.argmax(ev))
            assert a_fit == pytest.approx(float(a_grid[best // len(s_grid)]), rel=1e-12)
            assert s_fit == pytest.approx(float(s_grid[best % len(s_grid)]), rel=1e-12)
    geo = math.exp(float(np.mean(np.log(alphas))))
    assert 1 / 1.5 < geo / alpha_star < 1.5


def test_ucb_regret_is_sublinear_on_a_linear_bandit_and_epsilon_greedy_linear():
    """R(T)/R(T/2) < 1.8 for both UCB agents (mean over 3 seeds); epsilon-greedy pays at least 0.8 epsilon times the
    mean random-arm gap in every round of the second half (linear growth)."""
    rounds, ratios = 300, {}
    settings = AgentSettings(prior_at_init=False, learning_rate=0.05)
    for name in ("neural_ucb", "ucb_evidence", "eps_greedy"):
        r = []
        for seed in range(3):
            env, _ = linear_bandit(rounds=rounds, dim=5, n_arms=10, alpha=1.0, noise_std=0.5, seed=seed)
            cum = play(make_agent(name, _linear(5), None, settings, seed), env).cumulative_regret
            r.append(float(cum[-1] / cum[rounds // 2 - 1]))
            if name == "eps_greedy":
                gap = (env.means.max(1).values - env.means.mean(1))[rounds // 2 :].sum()
                assert float(cum[-1] - cum[rounds // 2 - 1]) >= 0.8 * settings.epsilon * float(gap)
        ratios[name] = float(np.mean(r))
    assert ratios["neural_ucb"] < 1.8 and ratios["ucb_evidence"] < 1.8
    assert ratios["eps_greedy"] > max(ratios["neural_ucb"], ratios["ucb_evidence"])


# ---------------------------------------------------------------- run() and report()
def _config(agent: str, seed: int = 0, width: int = 8, **params) -> RunConfig:
    return RunConfig(
        study="bandit",
        data={"name": "digits", "n_train": 200, "classes": (0, 1, 2)},
        train={"optimizer": "adam", "learning_rate": 0.01, "steps": 5},
        params={
            "agent": agent,
            "width": width,
            "rounds": 24,
            "input_dim": 4,
            "noise_std": 0.0,
            "nu": 1.0,
            **params,
        },
        seed=seed,
    )


@pytest.mark.parametrize(
    "agent", ["neural_ucb", "neural_ts", "ucb_evidence", "ts_evidence", "lla_ts", "ntk_gp_ucb", "eps_greedy"]
)
def test_run_records_regret_consistently(agent):
    out = BanditStudy().run(_config(agent, tune_every=10))
    m, cum = out.metrics, out.artifacts["cumulative_regret"]
    assert m["status"] == "completed" and cum.shape == (24,)
    assert m["final_regret"] == pytest.approx(cum[-1]) and m["half_regret"] == pytest.approx(cum[11])
    # 0/1 rewards without noise: regret per round is 0 or 1, so final regret = mistakes
    assert set(np.diff(np.concatenate([[0.0], cum])).tolist()) <= {0.0, 1.0}
    assert m["final_regret"] == pytest.approx(24 * m["mistake_rate"])
    assert m["mean_reward"] == pytest.approx(1 - m["mistake_rate"])
    if agent in ("ucb_evidence", "ts_evidence", "lla_ts"):
        assert m["alpha"] > 0 and m["sigma"] > 0
    if agent == "neural_ucb":
        assert m["final_scale"] > math.sqrt(-2 * math.log(0.1))  # the NTK rule's floor with nu = 1


@pytest.mark.parametrize("agent", ["neural_ucb", "ntk_gp_ucb"])
def test_nu_defaults_to_the_reward_noise_std(agent):
    """Zhou et al.'s nu is the reward noise's sub-Gaussian scale: 0.1 here, not 1."""
    noisy = {"noise_std": 0.1, "nu": None}
    default = BanditStudy().run(_config(agent, **noisy))
    explicit = BanditStudy().run(_config(agent, noise_std=0.1, nu=0.1))
    ten_times = BanditStudy().run(_config(agent, noise_std=0.1, nu=1.0))
    assert default.metrics["nu"] == 0.1 and ten_times.metrics["nu"] == 1.0
    assert default.metrics == explicit.metrics
    np.testing.assert_array_equal(
        default.artifacts["cumulative_regret"], explicit.artifacts["cumulative_regret"]
    )
    if agent == "neural_ucb":  # gamma_t = nu sqrt(info gain - 2 log delta) + sqrt(lambda) S, S = lambda = 1
        assert default.metrics["final_scale"] < ten_times.metrics["final_scale"]
        # the nu-part of gamma is 10x smaller, up to the (trajectory-dependent) information gain
        ratio = (default.metrics["final_scale"] - 1) / (ten_times.metrics["final_scale"] - 1)
        assert 0.05 < ratio < 0.2
    with pytest.raises(ValueError, match=r"params\.nu: expected a value when params\.noise_std is 0"):
        BanditStudy().run(_config(agent, noise_std=0.0, nu=None))


def test_run_rejects_a_non_adam_config():
    cfg = _config("neural_ucb").model_copy(
        update={"train": _config("x").train.model_copy(update={"optimizer": "gd"})}
    )
    with pytest.raises(ValueError, match="optimizer"):
        BanditStudy().run(cfg)


def _row(cfg: RunConfig, out, tmp_path, run_id: str) -> ResultRow:
    folder = tmp_path / run_id
    folder.mkdir()
    for k, v in out.artifacts.items():
        np.save(folder / f"{k}.npy", v)
    return ResultRow(run_id=run_id, config=cfg, status="done", metrics=out.metrics, artifacts_dir=folder)


def test_report_on_real_rows_writes_figure_and_table(tmp_path):
    rows = []
    for agent in ("neural_ucb", "ucb_evidence", "eps_greedy"):
        for seed in (0, 1):
            cfg = _config(agent, seed)
            rows.append(_row(cfg, BanditStudy().run(cfg), tmp_path, f"{agent}{seed}"))
    rows.append(ResultRow(run_id="bad", config=rows[0].config, status="failed", metrics={}))
    section = BanditStudy().report(rows, tmp_path / "figures")
    assert section.figures[0].exists() and section.figures[0].stat().st_size > 10_000
    table = section.tables[0]
    assert [r[0] for r in table.rows] == ["NeuralUCB (NTK rule)", "NeuralUCB (evidence)", "ε-greedy"]
    finals = {
        a: np.mean([r.metrics["final_regret"] for r in rows[:-1] if r.config.params["agent"] == a])
        for a in ("neural_ucb", "ucb_evidence", "eps_greedy")
    }
    assert table.rows[0][1].startswith(f"{finals['neural_ucb']:.1f}")
    assert section.verdict in ("supported", "not supported", "mixed")
    assert "1 failed" in section.settings[-1]
    assert section.findings[0].startswith(f"Verdict: {section.verdict}")
    ucb = [c for c in section.findings if "NeuralUCB (evidence) vs NeuralUCB (NTK rule)" in c]
    assert all(
        "over 2 paired seed(s) (fewer than 3: the standard error is itself uncertain)" in c for c in ucb
    )
    outcomes = [c.rsplit("the evidence twin is ", 1)[1].rstrip(".") for c in ucb]
    numbers = section.to_dict()["numbers"]  # findings.json
    assert numbers["nu"] == [1.0]
    mean = numbers["final_regret"][f"{rows[0].metrics['env_name']}/8/1/neural_ucb"]["mean"]
    assert mean == pytest.approx(finals["neural_ucb"])
    assert {c["outcome"] for c in numbers["comparisons"]} <= {"better", "worse", "tied"}
    assert section.findings[1] == (
        f"NeuralUCB half: {judge(outcomes)} — the evidence twin is better in {outcomes.count('better')}, worse "
        f"in {outcomes.count('worse')}, tied in {outcomes.count('tied')} of {len(outcomes)}."
    )


def test_nu_sweep_is_reported_per_nu_and_judged_at_the_noise_std(tmp_path):
    rows = []
    for nu in (0.1, 1.0):
        for agent in ("neural_ucb", "ucb_evidence"):
            for seed in (0, 1):
                cfg = _config(agent, seed, noise_std=0.1, nu=nu)
                rows.append(_row(cfg, BanditStudy().run(cfg), tmp_path, f"{agent}{seed}{nu}"))
    section = BanditStudy().report(rows, tmp_path / "figures")
    head = section.findings[0]
    assert "in 1 NTK-rule vs evidence comparisons at ν = 0.1 (the reward noise std; other ν below)" in head
    text = "\n".join(section.findings)
    assert ", width 8, ν=0.1: NeuralUCB (evidence) vs NeuralUCB (NTK rule)" in text
    assert ", width 8, ν=1: NeuralUCB (evidence) vs NeuralUCB (NTK rule)" in text
    comparisons = section.to_dict()["numbers"]["comparisons"]
    assert sorted(c["nu"] for c in comparisons) == [0.1, 1.0]
    assert [h.endswith("of 1.") for h in section.findings[1:2]] == [True]  # the half counts only nu = 0.1


def test_report_comparison_and_verdict_rules(tmp_path):
    def rows(agent: str, finals: list[float]) -> list[ResultRow]:
        return [
            ResultRow(
                run_id=f"{agent}{s}", config=_config(agent, s), status="done", metrics={"final_regret": f}
            )
            for s, f in enumerate(finals)
        ]

    better = compare_regret(rows("neural_ucb", [100, 110, 120]), rows("ucb_evidence", [50, 62, 69]))
    assert better is not None and better[0] == "better" and better[1] == pytest.approx(-149 / 3)
    tied = compare_regret(rows("neural_ucb", [100, 110, 120]), rows("ucb_evidence", [90, 125, 110]))
    assert tied is not None and tied[0] == "tied"
    assert judge(["better", "better", "tied"]) == "supported"
    assert judge(["worse", "tied"]) == "not supported"
    assert judge(["better", "worse"]) == "mixed"
    assert judge([]) == "inconclusive"
    section = BanditStudy().report([], tmp_path)
    assert section.verdict == "inconclusive"


# ---------------------------------------------------------------- positive control: a linear bandit
def _linear_config(agent: str, seed: int, **params) -> RunConfig:
    return _config(agent, seed, width=16, **{"env": "linear", "rounds": 160, "nu": None, "dim": 5, **params})


def test_linear_bandit_meets_the_norm_bound_of_the_ntk_rule():
    """||theta*|| = S / (2 sqrt(dim)), and the mean reward is linear in the arm features."""
    from tangentlab.studies.bandit import BanditParams, linear_theta_norm, make_env

    cfg = _linear_config("neural_ucb", 3, norm_bound=2.0, noise_std=0.1)
    p = BanditParams.model_validate(cfg.params)
    env = make_env(p, cfg)
    theta = torch.linalg.lstsq(env.contexts.reshape(-1, 5), env.means.reshape(-1, 1)).solution[:, 0]
    assert float(theta.norm()) == pytest.approx(linear_theta_norm(p), rel=1e-10)
    assert linear_theta_norm(p) == pytest.approx(2.0 / (2 * math.sqrt(5)))
    assert torch.allclose(env.contexts @ theta, env.means, atol=1e-12)


def test_positive_control_says_match_on_the_linear_bandit_and_no_when_built_to_fail(tmp_path):
    """NeuralUCB with the NTK rule at nu = noise std on a linear bandit (Thm. 4.1 holds): its intervals hold the mean
    reward at least 1 - delta of the time, "match". Built to fail: S = 0 and nu = 1e-4 (intervals 1000x too narrow)
    -> "no match"."""
    good, bad = [], []
    for seed in (0, 1):
        cfg = _linear_config("neural_ucb", seed, noise_std=0.1)
        good.append(_row(cfg, BanditStudy().run(cfg), tmp_path, f"good{seed}"))
        cfg = _linear_config("neural_ucb", seed, noise_std=0.1, nu=1e-4, norm_bound=0.0)
        bad.append(_row(cfg, BanditStudy().run(cfg), tmp_path, f"bad{seed}"))
    section = BanditStudy().report(good, tmp_path / "good")
    control = section.to_dict()["numbers"]["positive_control"]  # findings.json
    assert control["verdict"] == "match", control
    coverage = np.mean([r.metrics["interval_coverage"] for r in good])
    assert control["measured"][0]["interval_coverage"] == pytest.approx(coverage) and coverage >= 0.9
    assert section.verdict == "inconclusive"  # the control bandit is kept out of the verdict
    assert any(f.startswith("Positive control (a linear bandit") for f in section.findings)
    bad_control = BanditStudy().report(bad, tmp_path / "bad").to_dict()["numbers"]["positive_control"]
    assert bad_control["verdict"] == "no match" and bad_control["measured"][0]["interval_coverage"] < 0.9


def test_interval_coverage_counts_the_arms_inside_the_interval():
    """A hand-made agent whose intervals hold exactly the first of three arms' means: coverage 1/3 every round."""
    from tangentlab.studies.bandit.agents import Agent

    means = torch.tensor([[0.0, 1.0, 2.0], [0.5, 0.5, 3.0]], dtype=D64)
    env = BanditEnv("hand", torch.zeros(2, 3, 1, dtype=D64), means, torch.zeros(2, 3, dtype=D64), 0.0)

    class Fixed(Agent):
        def select(self, contexts, t):
            self.interval = (
                means[t] + torch.tensor([0.1, 0.6, -2.0], dtype=D64),
                torch.full((3,), 0.5, dtype=D64),
            )
            return 0

    traj = play(Fixed(AgentSettings(), 0), env)
    np.testing.assert_allclose(traj.covered.numpy(), [1 / 3, 1 / 3])
