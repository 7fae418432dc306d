"""Agents of the ``bandit`` study: NeuralUCB / Neural TS (NTK-rule or evidence-tuned), linearized-Laplace Thompson
sampling, NTK-GP UCB and epsilon-greedy over one network family.

Every network agent scores arm features with a scalar-output net ``f(x; theta)`` retrained on its own history every
``train_every`` pulls (warm start, ``train_steps`` Adam steps on ``(1/2n) sum_i (f(x_i) - r_i)^2`` via
:func:`tangentlab.train.fit`; no explicit regulariser: the few steps from the previous parameters are the early
stopping). Exploration uses the eNTK at the current parameters over all past pulls in the exact function-space form
of :mod:`tangentlab.studies.bandit.posterior` (not the diagonal approximation of Zhou et al.'s code):
``v(x) = g^T Z^-1 g / m = (1/lambda) [k(x,x) - k(x,X) (K + lambda I)^-1 k(X,x)]``.

* ``neural_ucb`` (Zhou, Li & Gu 2020, arXiv 1911.04462, Alg. 1): ``f(x) + gamma_t sqrt(v(x))`` with the NTK rule
  ``gamma_t = nu sqrt(log det(I + K/lambda) - 2 log delta) + sqrt(lambda) S`` — the dominant, width-free part of
  their Thm. 4.1 / Lemma 5.2. Dropped: the ``C m^{-1/6} sqrt(log m) L^4 t^{7/6} lambda^{-7/6}`` factors (-> 1 as the
  width m -> infinity) and the training-error term ``(1 - eta m lambda)^{J/2} sqrt(t/lambda)`` (-> 0 with many
  steps), neither computable without the unknown constant C.
* ``neural_ts`` (Zhang et al. 2021, arXiv 2010.00827, Alg. 1): each arm's score drawn from
  ``N(f(x), gamma_t^2 v(x))`` with the same ``gamma_t`` (their ``nu^2 sigma^2 = nu^2 lambda g^T U^-1 g / m``
  with ``nu sqrt(lambda) = gamma_t``).
* ``ucb_evidence`` / ``ts_evidence`` (Wenger, Dangel & Kristiadi 2023, arXiv 2310.00137, Sec. 5): the same rules
  with ``lambda = alpha sigma^2`` and ``gamma = sigma``, ``(alpha, sigma)`` maximising the evidence of a linearized
  Laplace model (:class:`tangentlab.predict.LinearizedLaplace`, prior ``N(theta_0, alpha^-1 I)`` centred at the
  initial parameters, ``form="function_space"``) of the history. Then ``gamma^2 v(x)`` is exactly the Laplace
  predictive variance ``(1/alpha)[K_** - K_*X (K_XX + alpha sigma^2 I)^-1 K_X*]``: UCB adds ``beta`` (default 1)
  predictive standard deviations, TS samples the predictive marginal of each arm. The hyperparameters are refitted
  every ``tune_every`` pulls (at a retrain); between refits the variance is updated pull by pull.
* ``lla_ts``: Thompson sampling from the joint linearized-Laplace predictive of all ``K`` arms of a round
  (``N(f, Sigma)`` with the full ``K x K`` covariance), evidence-tuned as above.
* ``ntk_gp_ucb``: GP-UCB (Srinivas et al. 2010, arXiv 0912.3995, Thm. 1) with the infinite-width NTK of the same
  architecture description (``description.kernel(...).ntk``), zero prior mean, noise variance ``nu^2`` and
  ``beta_t = 2 log(K t^2 pi^2 / (6 delta))``: ``mu(x) + sqrt(beta_t) sigma(x)``. No network is trained.
* ``eps_greedy``: the net's greedy arm, a uniform arm with probability ``epsilon`` (fixed).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from tangentlab import train
from tangentlab.kernels import ntk_features
from tangentlab.predict import LinearizedLaplace
from tangentlab.studies.bandit.envs import BanditEnv
from tangentlab.studies.bandit.posterior import KernelPosterior

AgentName = Literal[
    "neural_ucb", "neural_ts", "ucb_evidence", "ts_evidence", "lla_ts", "ntk_gp_ucb", "eps_greedy"
]
AGENTS: tuple[str, ...] = (
    "neural_ucb",
    "neural_ts",
    "ucb_evidence",
    "ts_evidence",
    "lla_ts",
    "ntk_gp_ucb",
    "eps_greedy",
)
KernelFn = Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]


@dataclass(frozen=True)
class AgentSettings:
    """Hyperparameters shared by the agents (see the module docstring for where each enters).

    Attributes:
        lam: NeuralUCB's ``lambda`` (NTK-rule agents).
        nu: noise scale ``nu`` of the NTK rule; the NTK-GP's noise standard deviation.
        norm_bound: ``S``, the assumed RKHS-norm bound of the reward function (NTK rule).
        delta: failure probability ``delta`` (NTK rule, GP-UCB).
        beta: predictive standard deviations added by ``ucb_evidence``.
        epsilon: exploration probability of ``eps_greedy``.
        train_every: retrain the net after every this many pulls.
        train_steps: Adam steps per retrain.
        learning_rate: Adam learning rate.
        tune_every: refit ``(alpha, sigma)`` by evidence after every this many pulls (a multiple of
            ``train_every`` is sensible; the refit happens at the first retrain after the count is reached).
        prior_at_init: centre the Laplace prior at the initial parameters (True) or at zero.
    """

    lam: float = 1.0
    nu: float = 1.0
    norm_bound: float = 1.0
    delta: float = 0.1
    beta: float = 1.0
    epsilon: float = 0.1
    train_every: int = 10
    train_steps: int = 50
    learning_rate: float = 1e-2
    tune_every: int = 50
    prior_at_init: bool = True


def ntk_rule_gamma(info_gain: float, settings: AgentSettings) -> float:
    """``gamma_t = nu sqrt(log det(I + K/lambda) - 2 log delta) + sqrt(lambda) S`` (Zhou et al. 2020, Thm. 4.1,
    dominant part; see the module docstring for what is dropped)."""
    s = settings
    return s.nu * math.sqrt(max(info_gain, 0.0) - 2.0 * math.log(s.delta)) + math.sqrt(s.lam) * s.norm_bound


def gp_ucb_beta(t: int, n_arms: int, delta: float) -> float:
    """``beta_t = 2 log(|D| t^2 pi^2 / (6 delta))`` of GP-UCB for a finite decision set (Srinivas et al. 2010,
    Thm. 1), ``|D| = K`` arms, ``t >= 1``."""
    return 2.0 * math.log(n_arms * max(t, 1) ** 2 * math.pi**2 / (6.0 * delta))


class Agent:
    """Plays a bandit round by round: :meth:`select` an arm from the (K, D) contexts, then :meth:`observe`."""

    name: str = "agent"

    def __init__(self, settings: AgentSettings, seed: int) -> None:
        self.settings = settings
        self.rng = torch.Generator().manual_seed(int(seed) + 7919)
        self.xs: list[torch.Tensor] = []
        self.rs: list[float] = []

    def select(self, contexts: torch.Tensor, t: int) -> int:
        raise NotImplementedError

    def observe(self, x: torch.Tensor, reward: float) -> None:
        self.xs.append(x.to(torch.float64))
        self.rs.append(float(reward))

    def _argmax(self, scores: torch.Tensor) -> int:
        best = torch.nonzero(scores >= scores.max() - 1e-12).flatten()  # random tie-break
        return int(best[torch.randint(0, best.numel(), (1,), generator=self.rng)])

    def _normal(self, n: int) -> torch.Tensor:
        return torch.randn(n, generator=self.rng, dtype=torch.float64)


class NetworkAgent(Agent):
    """An agent around a trained scalar-output network (every kind but ``ntk_gp_ucb``)."""

    def __init__(self, name: str, model: nn.Module, settings: AgentSettings, seed: int) -> None:
        super().__init__(settings, seed)
        self.name = name
        self.model = model
        self.init_params = {k: v.detach().clone() for k, v in model.named_parameters()}
        self.explore = name != "eps_greedy"
        self.evidence = name in ("ucb_evidence", "ts_evidence", "lla_ts")
        self.alpha_, self.sigma_ = 1.0, 1.0  # evidence agents' hyperparameters before the first refit
        lam = self.alpha_ * self.sigma_**2 if self.evidence else settings.lam
        self.posterior = KernelPosterior(lam)
        n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
        self._buffer = torch.zeros(64, n_params, dtype=torch.float64)  # rows 0..n-1: gradients of past pulls
        self._last: tuple[torch.Tensor, torch.Tensor] | None = None  # chosen arm's (x, g)
        self._tuned_at = 0
        self.n_retrains = 0
        self.diverged: str | None = None  # the first retrain that diverged (tangentlab.train.divergence)
        self.gammas: list[float] = []
        # this round's confidence intervals f(x_a) ± scale sqrt(v(x_a)) of every arm (UCB/TS agents), for coverage
        self.interval: tuple[torch.Tensor, torch.Tensor] | None = None

    def select(self, contexts: torch.Tensor, t: int) -> int:
        with torch.no_grad():
            f = self.model(contexts).reshape(-1).to(torch.float64)
        if not self.explore:
            if float(torch.rand((), generator=self.rng, dtype=torch.float64)) < self.settings.epsilon:
                arm = int(torch.randint(0, contexts.shape[0], (1,), generator=self.rng))
            else:
                arm = self._argmax(f)
            self._last = (contexts[arm], torch.zeros(0))
            return arm
        g = ntk_features(self.model, contexts).to(torch.float64)
        k_cross = g @ self.features.T
        if self.name == "lla_ts":
            cov = self.sigma_**2 * self.posterior.covariance(k_cross, g @ g.T)
            evals, evecs = torch.linalg.eigh(0.5 * (cov + cov.T))
            draw = f + evecs @ (evals.clamp_min(0).sqrt() * self._normal(f.numel()))
            arm = self._argmax(draw)
        else:
            std = self.posterior.variance(k_cross, (g * g).sum(1)).sqrt()
            if self.evidence:
                scale = self.sigma_ * (self.settings.beta if self.name == "ucb_evidence" else 1.0)
            else:
                scale = ntk_rule_gamma(self.posterior.info_gain(), self.settings)
            self.gammas.append(scale)
            self.interval = (f, scale * std)
            noise = self._normal(f.numel()) if self.name.startswith(("neural_ts", "ts_")) else 1.0
            arm = self._argmax(f + scale * std * noise)
        self._last = (contexts[arm], g[arm])
        return arm

    def observe(self, x: torch.Tensor, reward: float) -> None:
        super().observe(x, reward)
        if self.explore and self._last is not None:
            g = self._last[1]
            self.posterior.append(self.features @ g, float(g @ g))
            n = self.posterior.n
            if self._buffer.shape[0] < n:  # grow by doubling: amortised O(P) per pull
                grown = torch.zeros(max(2 * n, 64), g.numel(), dtype=torch.float64)
                grown[: n - 1] = self._buffer[: n - 1]
                self._buffer = grown
            self._buffer[n - 1] = g
        if len(self.xs) % self.settings.train_every == 0:
            self.retrain()

    def retrain(self) -> None:
        """Train the net on the whole history (warm start), refit the evidence when due, rebuild the posterior."""
        x = torch.stack(self.xs)
        r = torch.tensor(self.rs, dtype=torch.float64)[:, None]
        s = self.settings
        res = train.fit(
            self.model,
            x,
            r,
            steps=s.train_steps,
            learning_rate=s.learning_rate,
            optimizer="adam",
            eval_every=s.train_steps,
            seed=self.n_retrains,
        )
        if res.diverged and self.diverged is None:
            self.diverged = f"retrain {self.n_retrains}: {res.message}"
        self.n_retrains += 1
        if not self.explore:
            return
        if self.evidence and (self._tuned_at == 0 or len(self.xs) - self._tuned_at >= s.tune_every):
            self.alpha_, self.sigma_ = fit_evidence(
                self.model, x, r[:, 0], self.init_params if s.prior_at_init else None
            )
            self._tuned_at = len(self.xs)
        feats = ntk_features(self.model, x).to(torch.float64)
        # room for the pulls until the next retrain
        self._buffer = torch.cat([feats, feats.new_zeros(s.train_every, feats.shape[1])])
        lam = self.alpha_ * self.sigma_**2 if self.evidence else s.lam
        self.posterior.reset(feats @ feats.T, lam)

    @property
    def features(self) -> torch.Tensor:
        """(n, P) gradients of the past pulls at the current parameters (the net changes only at a retrain)."""
        return self._buffer[: self.posterior.n]


def fit_evidence(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, prior_mean: dict[str, torch.Tensor] | None
) -> tuple[float, float]:
    """``(alpha, sigma)`` maximising the function-space evidence of the linearized Laplace model of ``model`` on
    ``(x, y)`` over :class:`tangentlab.predict.LinearizedLaplace`'s default grids."""
    lla = LinearizedLaplace(model, prior_mean=prior_mean).fit(x, y)
    lla.optimize_prior_precision(fit_sigma_noise=True, method="grid", form="function_space")
    return float(lla.prior_precision_), float(lla.sigma_noise_)


class NTKGPAgent(Agent):
    """GP-UCB with the infinite-width NTK ``kernel(x1, x2)`` (``ntk_gp_ucb``; see the module docstring)."""

    name = "ntk_gp_ucb"

    def __init__(self, kernel: KernelFn, settings: AgentSettings, seed: int) -> None:
        super().__init__(settings, seed)
        self.kernel = kernel
        self.noise_var = settings.nu**2
        self.posterior = KernelPosterior(self.noise_var)
        self._last: torch.Tensor | None = None  # chosen arm's kernel row against the history

    def select(self, contexts: torch.Tensor, t: int) -> int:
        k_diag = torch.diagonal(self.kernel(contexts, None)).to(torch.float64)
        if self.xs:
            k_cross = self.kernel(contexts, torch.stack(self.xs)).to(torch.float64)
        else:
            k_cross = torch.zeros(contexts.shape[0], 0, dtype=torch.float64)
        mu = self.posterior.mean(k_cross, torch.tensor(self.rs, dtype=torch.float64))
        sd = (self.noise_var * self.posterior.variance(k_cross, k_diag)).sqrt()
        arm = self._argmax(mu + math.sqrt(gp_ucb_beta(t + 1, contexts.shape[0], self.settings.delta)) * sd)
        self._last = torch.cat([k_cross[arm], k_diag[arm : arm + 1]])
        return arm

    def observe(self, x: torch.Tensor, reward: float) -> None:
        super().observe(x, reward)
        if self._last is not None:
            self.posterior.append(self._last[:-1], float(self._last[-1]))


def make_agent(
    name: str, model: nn.Module | None, kernel: KernelFn | None, settings: AgentSettings, seed: int
) -> Agent:
    """The agent called ``name`` (one of :data:`AGENTS`); ``model`` is copied, ``kernel`` serves ``ntk_gp_ucb``.

    Raises:
        ValueError: an unknown name, or a missing model/kernel.
    """
    if name not in AGENTS:
        raise ValueError(f"agent: expected one of {AGENTS}, got {name!r}")
    if name == "ntk_gp_ucb":
        if kernel is None:
            raise ValueError("kernel: the ntk_gp_ucb agent needs the infinite-width kernel, got None")
        return NTKGPAgent(kernel, settings, seed)
    if model is None:
        raise ValueError(f"model: the {name} agent needs a network, got None")
    return NetworkAgent(name, copy.deepcopy(model), settings, seed)


@dataclass(frozen=True)
class Trajectory:
    """What one agent did on one bandit: per-round arm, reward and pseudo-regret, and ``covered``: per round, the
    fraction of arms whose mean reward lies inside the agent's confidence interval ``f ± scale sqrt(v)`` (NaN for
    agents without one)."""

    arms: torch.Tensor
    rewards: torch.Tensor
    regret: torch.Tensor
    covered: torch.Tensor

    @property
    def cumulative_regret(self) -> torch.Tensor:
        """``R_t = sum_{s <= t} regret_s`` (T,)."""
        return torch.cumsum(self.regret, 0)


def play(agent: Agent, env: BanditEnv) -> Trajectory:
    """Run ``agent`` through every round of ``env``."""
    arms = torch.zeros(env.rounds, dtype=torch.int64)
    rewards = torch.zeros(env.rounds, dtype=torch.float64)
    regret = torch.zeros(env.rounds, dtype=torch.float64)
    covered = torch.full((env.rounds,), math.nan, dtype=torch.float64)
    for t in range(env.rounds):
        ctx = env.contexts[t]
        arm = agent.select(ctx, t)
        interval = getattr(agent, "interval", None)
        if interval is not None:
            centre, half = interval
            covered[t] = ((env.means[t] - centre).abs() <= half).double().mean()
        r = env.reward(t, arm)
        agent.observe(ctx[arm], r)
        arms[t], rewards[t], regret[t] = arm, r, env.regret(t, arm)
    return Trajectory(arms, rewards, regret, covered)
