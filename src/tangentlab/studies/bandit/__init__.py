"""Study ``bandit``: does the NTK-derived exploration rule of NeuralUCB / Neural TS make good decisions, compared with
exploration tuned by the marginal likelihood of a linearized Laplace model?

Claim tested (Wenger, Dangel & Kristiadi 2023, "On the disconnect between theory and practice of neural networks",
arXiv 2310.00137, Sec. 5): uncertainty quantification is used for decisions in neural contextual bandits; NeuralUCB
(Zhou, Li & Gu 2020, arXiv 1911.04462) and Neural Thompson sampling (Zhang et al. 2021, arXiv 2010.00827) scale
their exploration by a rule derived from NTK theory, and that rule performs poorly next to the same agents whose
scale comes from evidence maximisation of a linearized Laplace approximation.

One run (one grid point: ``env``, ``agent``, ``width``, seed) plays ``rounds`` rounds of one bandit with one agent:

1. Bandit (:mod:`tangentlab.studies.bandit.envs`): ``env: classification`` turns ``config.data`` (``name``,
   ``n_train`` as the pool size, ``classes`` as the arms) into a ``K``-armed bandit — reward 1 for the right class, plus
   ``N(0, noise_std^2)`` — with the disjoint encoding ``e_a (x) x`` of Zhou et al.'s experiments after a projection
   on ``input_dim`` principal components; ``env: cos`` / ``quadratic`` is Zhou et al.'s synthetic bandit
   ``h(x) = cos(3 u^T x)`` / ``10 (u^T x)^2`` with ``dim``-dimensional contexts and ``n_arms`` arms (then
   ``config.data`` is not used). The seed draws the bandit, so every agent of a seed faces the same rounds.
2. Network: ``config.model`` or the study default (one hidden ReLU layer), every hidden ``Dense`` set to ``width``
   units and a scalar readout, built in float64 under NTK parametrization with the run's seed. Every agent of a
   seed starts from the same initial parameters.
3. Agent (:mod:`tangentlab.studies.bandit.agents`): ``neural_ucb``, ``neural_ts`` (NTK rule ``gamma_t``),
   ``ucb_evidence``, ``ts_evidence``, ``lla_ts`` (evidence-tuned linearized Laplace), ``ntk_gp_ucb`` (GP-UCB with
   the infinite-width NTK of the same description), ``eps_greedy``. The net is retrained every ``train_every``
   pulls with ``config.train.steps`` Adam steps at ``config.train.learning_rate`` (warm start).
4. Metrics: ``final_regret`` (cumulative pseudo-regret after ``rounds``), ``half_regret`` (after ``rounds // 2``),
   ``growth_ratio`` ``R(T) / R(T/2)`` (about 2 for linear regret, ``sqrt 2`` for ``sqrt T``), ``mistake_rate``
   (fraction of rounds with regret > 0), the exploration scale at the last round (``final_scale``: ``gamma_t`` for
   the NTK rule, ``beta sigma`` for the evidence agents), the evidence's ``alpha``/``sigma`` and the ``nu`` used
   (``params.nu``, by default the reward noise's std ``noise_std``, as in Zhou et al.'s theorem), and for the UCB/TS
   agents ``interval_coverage``: the fraction of (round, arm) pairs whose mean reward lies inside the agent's
   confidence interval ``f(x) ± scale sqrt(v(x))`` (for the NTK rule, Zhou et al.'s confidence width). Artifacts:
   ``cumulative_regret`` (T,) and ``scale`` (per round, where the agent has one).

The report (:mod:`tangentlab.studies.bandit.report`) plots cumulative regret against rounds per agent and width
(mean over seeds with a standard-error band) and compares each NTK-rule agent with its evidence-tuned twin.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, NonNegativeFloat, PositiveFloat, PositiveInt

from tangentlab import arch
from tangentlab.runner.config import RunConfig
from tangentlab.studies import register
from tangentlab.studies._base import MetricValue, RunOutput, Study
from tangentlab.studies._models import set_hidden_width
from tangentlab.studies._sections import finite_or_none
from tangentlab.studies.bandit.agents import AgentName, AgentSettings, NetworkAgent, make_agent, play
from tangentlab.studies.bandit.envs import BanditEnv, classification_bandit, linear_bandit, nonlinear_bandit
from tangentlab.train import divergence


class BanditParams(BaseModel):
    """Parameters of the ``bandit`` study.

    Attributes:
        env: ``"classification"`` (``config.data`` as a bandit), ``"cos"`` or ``"quadratic"`` (Zhou et al.'s
            synthetic rewards).
        agent: the agent (see :mod:`tangentlab.studies.bandit.agents`).
        width: units of every hidden ``Dense`` layer.
        rounds: rounds ``T``.
        input_dim: principal components kept per example (classification).
        noise_std: standard deviation of the Gaussian reward noise.
        dim: context dimension (synthetic bandits).
        n_arms: arms (synthetic bandits).
        lam, nu, norm_bound, delta: ``lambda``, ``nu``, ``S`` and ``delta`` of the NTK rule
            ``gamma_t = nu sqrt(log det(I + K/lambda) - 2 log delta) + sqrt(lambda) S``; ``nu^2`` is also the NTK-GP
            noise variance and ``delta`` GP-UCB's. In Zhou et al. 2020 ``nu`` is the sub-Gaussian scale of the
            reward noise, so ``nu`` defaults to ``noise_std`` (``None``); with noiseless rewards it must be set.
        beta: predictive standard deviations added by ``ucb_evidence``.
        epsilon: exploration probability of ``eps_greedy``.
        train_every: retrain after every this many pulls.
        tune_every: refit the evidence hyperparameters after every this many pulls.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    env: Literal["classification", "cos", "quadratic", "linear"] = "classification"
    agent: AgentName = "neural_ucb"
    width: PositiveInt = 64
    rounds: PositiveInt = 300
    input_dim: PositiveInt = 16
    noise_std: NonNegativeFloat = 0.1
    dim: PositiveInt = 10
    n_arms: PositiveInt = 4
    lam: PositiveFloat = 1.0
    nu: PositiveFloat | None = None
    norm_bound: NonNegativeFloat = 1.0
    delta: PositiveFloat = 0.1
    beta: PositiveFloat = 1.0
    epsilon: NonNegativeFloat = 0.1
    train_every: PositiveInt = 10
    tune_every: PositiveInt = 50


def exploration_nu(p: BanditParams) -> float:
    """The NTK rule's ``nu``: ``params.nu`` when set, else the reward noise's standard deviation ``noise_std``.

    Zhou et al. 2020 (Thm. 4.1) take ``nu`` as the sub-Gaussian scale of the reward noise; for Gaussian noise that is
    its standard deviation. (``nu = 1`` with noise std 0.1 explores 10x too much, and gives the NTK-GP 100x the noise
    variance.)

    Raises:
        ValueError: when ``nu`` is not set and the rewards are noiseless (``noise_std = 0``).
    """
    if p.nu is not None:
        return float(p.nu)
    if p.noise_std <= 0:
        raise ValueError(
            "params.nu: expected a value when params.noise_std is 0 (nu defaults to the reward noise's std), "
            "got none"
        )
    return float(p.noise_std)


def linear_theta_norm(p: BanditParams) -> float:
    """``||theta*||`` of the ``linear`` bandit: ``S / (2 sqrt(dim))``, so that the mean reward ``theta*^T x`` has norm at
    most ``S`` (``norm_bound``) in the RKHS of the NTK and Zhou et al.'s assumption ``||h||_H <= S`` holds.

    Why: under NTK parametrization the first layer contributes ``Sigma_1 = x^T x' / dim`` to the NTK of a ReLU net,
    multiplied by ``E[relu'(u) relu'(v)] = 1/4 + arcsin(rho) / (2 pi)`` (a positive-definite kernel plus 1/4), so by
    the Schur product theorem ``Theta >= Sigma_1 / 4`` and ``||theta^T x||_Theta <= 2 sqrt(dim) ||theta||`` for the
    study's default net (one hidden ReLU layer, sigma_w = 1; biases only add a positive-definite term).
    """
    return float(p.norm_bound) / (2.0 * math.sqrt(p.dim))


def make_env(p: BanditParams, config: RunConfig) -> BanditEnv:
    """The bandit of one run (seeded by ``config.seed``)."""
    if p.env == "classification":
        return classification_bandit(
            config.data.name,
            rounds=p.rounds,
            input_dim=p.input_dim,
            noise_std=p.noise_std,
            seed=config.seed,
            pool_size=config.data.n_train,
            classes=config.data.classes,
        )
    if p.env == "linear":
        env, _ = linear_bandit(
            rounds=p.rounds,
            dim=p.dim,
            n_arms=p.n_arms,
            noise_std=p.noise_std,
            seed=config.seed,
            theta_norm=linear_theta_norm(p),
        )
        return env
    return nonlinear_bandit(
        p.env, rounds=p.rounds, dim=p.dim, n_arms=p.n_arms, noise_std=p.noise_std, seed=config.seed
    )


@register
class BanditStudy(Study):
    """Neural contextual bandits: NTK-rule vs evidence-tuned exploration; see the module docstring."""

    name: ClassVar[str] = "bandit"
    title: ClassVar[str] = "Neural bandits: does NTK theory set the exploration well?"
    citation: ClassVar[str] = (
        "Wenger, Dangel & Kristiadi 2023, On the Disconnect Between Theory and Practice of Neural Networks "
        "(arXiv 2310.00137); Zhou, Li & Gu 2020, Neural Contextual Bandits with UCB-based Exploration "
        "(arXiv 1911.04462); Zhang et al. 2021, Neural Thompson Sampling (arXiv 2010.00827)"
    )
    claim: ClassVar[str] = (
        "NeuralUCB and Neural Thompson sampling with the exploration scale from the NTK-derived rule (Zhou et al. "
        "2020, Thm. 4.1) explore poorly: the same agents with the scale set by marginal-likelihood (evidence) "
        "tuning of a linearized Laplace model reach lower cumulative regret (Wenger et al. 2023, Sec. 5)."
    )
    Params: ClassVar[type[BaseModel]] = BanditParams
    # one small net retrained round by round, one context at a time: launch overhead would dominate on a GPU
    cpu_only: ClassVar[bool] = True
    default_model: ClassVar[dict[str, Any] | None] = {
        "layer": "Serial",
        "layers": [{"layer": "Dense", "width": 64}, {"layer": "ReLU"}, {"layer": "Dense", "width": 1}],
    }

    def run(self, config: RunConfig, *, device: str = "cpu") -> RunOutput:
        """Play one bandit with one agent and record its regret."""
        p = BanditParams.model_validate(config.params)
        tc = config.train
        if tc.optimizer != "adam" or tc.loss != "mse":
            raise ValueError(
                f"train: the bandit study retrains with Adam on MSE; expected optimizer 'adam' and loss 'mse', "
                f"got {tc.optimizer!r} and {tc.loss!r}"
            )
        env = make_env(p, config)
        description = set_hidden_width(config.model or dict(self.default_model or {}), p.width, 1)
        net_arch = arch.from_dict(description)
        net = net_arch.build((env.dim,), parametrization="ntk", seed=config.seed, dtype=torch.float64)

        def kernel(x1: torch.Tensor, x2: torch.Tensor | None) -> torch.Tensor:
            return net_arch.kernel(x1, x2, parametrization="ntk").ntk

        settings = AgentSettings(
            lam=p.lam,
            nu=exploration_nu(p),
            norm_bound=p.norm_bound,
            delta=p.delta,
            beta=p.beta,
            epsilon=p.epsilon,
            train_every=p.train_every,
            train_steps=tc.steps,
            learning_rate=tc.learning_rate,
            tune_every=p.tune_every,
        )
        agent = make_agent(p.agent, net, kernel, settings, config.seed)
        traj = play(agent, env)
        cum = traj.cumulative_regret
        half = float(cum[env.rounds // 2 - 1]) if env.rounds >= 2 else float("nan")
        final = float(cum[-1])
        diverged = getattr(agent, "diverged", None)
        m: dict[str, MetricValue] = {
            "status": divergence.status(diverged is not None),
            "message": diverged,
            "env_name": env.name,
            "n_arms": env.n_arms,
            "feature_dim": env.dim,
            "n_params": int(sum(q.numel() for q in net.parameters())),
            "final_regret": final,
            "half_regret": half,
            "growth_ratio": finite_or_none(final / half) if half > 0 else None,
            "mistake_rate": float((traj.regret > 1e-12).double().mean()),
            "mean_reward": float(traj.rewards.mean()),
            "nu": settings.nu,
        }
        if bool(torch.isfinite(traj.covered).any()):  # UCB/TS agents: how often their intervals hold the mean
            m["interval_coverage"] = float(traj.covered[torch.isfinite(traj.covered)].mean())
        artifacts = {"cumulative_regret": cum.numpy().astype(np.float64)}
        if isinstance(agent, NetworkAgent):
            if agent.gammas:
                m["final_scale"] = agent.gammas[-1]
                artifacts["scale"] = np.asarray(agent.gammas, dtype=np.float64)
            if agent.evidence:
                m["alpha"], m["sigma"] = agent.alpha_, agent.sigma_
        return RunOutput(metrics=m, artifacts=artifacts)
