"""Contextual bandits for the ``bandit`` study: classification data as a bandit, a nonlinear and a linear bandit.

Every environment is drawn in full up front from one seed, so that every agent run with the same seed sees the same
contexts and the same reward noise (common random numbers): round ``t`` offers ``K`` arms with feature vectors
``contexts[t, a]`` (dimension ``D``); pulling arm ``a`` pays ``means[t, a] + noise[t, a]`` and costs the regret
``max_b means[t, b] - means[t, a]`` (pseudo-regret, Zhou, Li & Gu 2020, arXiv 1911.04462, eq. 2.1).

* :func:`classification_bandit` (Zhou et al. 2020, Sec. 7.2; Zhang et al. 2021, arXiv 2010.00827, Sec. 5): each
  round shows one example ``x`` of a ``K``-class data set; arm ``a`` is "predict class ``a``" and pays 1 if ``a`` is
  the label, else 0 (plus optional Gaussian noise). Arms are encoded **disjointly**, as in Zhou et al.'s experiments:
  the feature of arm ``a`` is ``e_a (x) x`` (the example placed in the ``a``-th of ``K`` blocks of a ``K d`` vector),
  so one scalar-output network scores every arm. To keep ``K d`` small the examples are first projected on their
  top ``input_dim`` principal components (computed on the pool, no labels used).
* :func:`nonlinear_bandit` (Zhou et al. 2020, Sec. 7.1): contexts uniform on the unit sphere, a hidden unit vector
  ``u``, mean reward ``h(x) = cos(3 u^T x)`` or ``h(x) = 10 (u^T x)^2``.
* :func:`linear_bandit`: ``theta* ~ N(0, alpha*^-1 I_d)``, contexts ``N(0, I_d)``, mean reward ``theta*^T x``; the
  Bayesian linear regression that matches it has prior precision ``alpha*`` and noise ``sigma`` exactly.

Feature scale: contexts of the classification and nonlinear bandits are rescaled to ``||x||^2 = D`` (per-coordinate
variance one), the input convention of NTK parametrization (``sigma_w / sqrt(fan_in) W x``), under which the
eNTK and the infinite-width NTK are of order one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, cast

import torch

from tangentlab import data

NonlinearReward = Literal["cos", "quadratic"]
NONLINEAR_REWARDS: tuple[str, ...] = ("cos", "quadratic")


@dataclass(frozen=True)
class BanditEnv:
    """A contextual bandit drawn in full: ``T`` rounds of ``K`` arms with ``D``-dimensional features.

    Attributes:
        name: what it is, e.g. ``"digits"`` or ``"nonlinear-cos"``.
        contexts: (T, K, D) arm features, float64.
        means: (T, K) expected rewards.
        noise: (T, K) reward noise added to the mean of the arm that is pulled.
        noise_std: standard deviation of ``noise``.
    """

    name: str
    contexts: torch.Tensor
    means: torch.Tensor
    noise: torch.Tensor
    noise_std: float

    @property
    def rounds(self) -> int:
        """Number of rounds ``T``."""
        return int(self.contexts.shape[0])

    @property
    def n_arms(self) -> int:
        """Number of arms ``K``."""
        return int(self.contexts.shape[1])

    @property
    def dim(self) -> int:
        """Feature dimension ``D``."""
        return int(self.contexts.shape[2])

    def reward(self, t: int, arm: int) -> float:
        """Observed reward of ``arm`` at round ``t``: ``means[t, arm] + noise[t, arm]``."""
        return float(self.means[t, arm] + self.noise[t, arm])

    def regret(self, t: int, arm: int) -> float:
        """Pseudo-regret of ``arm`` at round ``t``: ``max_b means[t, b] - means[t, arm]`` (>= 0)."""
        return float(self.means[t].max() - self.means[t, arm])


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))


def _check_positive(name: str, value: int) -> int:
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    return int(value)


def _noise(shape: tuple[int, int], std: float, g: torch.Generator) -> torch.Tensor:
    if not (std >= 0 and math.isfinite(std)):
        raise ValueError(f"noise_std: expected a finite number >= 0, got {std!r}")
    return std * torch.randn(shape, generator=g, dtype=torch.float64)


def _unit_rows(x: torch.Tensor) -> torch.Tensor:
    return cast(torch.Tensor, x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12))


def disjoint_encoding(x: torch.Tensor, n_arms: int) -> torch.Tensor:
    """Features ``e_a (x) x`` of every arm ``a`` for every example: (n, d) -> (n, K, K d).

    Arm ``a``'s feature holds ``x`` in coordinates ``a d .. (a+1) d - 1`` and zeros elsewhere (Zhou et al. 2020,
    Sec. 7.2).
    """
    n, d = x.shape
    out = torch.zeros(n, n_arms, n_arms * d, dtype=x.dtype)
    for a in range(n_arms):
        out[:, a, a * d : (a + 1) * d] = x
    return out


def classification_bandit(
    dataset: str,
    *,
    rounds: int,
    input_dim: int = 16,
    noise_std: float = 0.0,
    seed: int = 0,
    pool_size: int | None = None,
    classes: tuple[int, ...] | None = None,
) -> BanditEnv:
    """A ``K``-class data set as a ``K``-armed bandit (reward 1 for the right class), disjointly encoded.

    Args:
        dataset: a classification data set of :func:`tangentlab.data.load` (``"digits"``, ``"mnist1d"``,
            ``"mnist5k"``, ``"mnist"``, ``"npz:PATH"``).
        rounds: number of rounds ``T``; each shows an example drawn uniformly (with replacement) from the pool.
        input_dim: principal components kept (the encoded dimension is ``K * input_dim``).
        noise_std: standard deviation of Gaussian noise added to the 0/1 reward.
        seed: seed of the pool subsample, the example order and the noise.
        pool_size: examples loaded from the training split (None: the data set's standard size).
        classes: keep only these classes (arms), as :func:`tangentlab.data.load`'s ``classes``.

    Raises:
        ValueError: a regression data set, or ``input_dim`` above the data dimension.
    """
    rounds = _check_positive("rounds", rounds)
    input_dim = _check_positive("input_dim", input_dim)
    ds = data.load(
        dataset,
        n_train=pool_size,
        n_test=1,
        classes=classes,
        seed=seed,
        standardize="feature",
        target="index",
    )
    if ds.task != "classification" or ds.labels_train is None or ds.n_classes is None:
        raise ValueError(f"dataset: expected a classification data set, got {dataset!r} ({ds.task})")
    x = ds.x_train.reshape(ds.n_train, -1).to(torch.float64)
    if input_dim > x.shape[1]:
        raise ValueError(f"input_dim: expected at most the data dimension {x.shape[1]}, got {input_dim}")
    x = x - x.mean(0)
    _, _, vh = torch.linalg.svd(x, full_matrices=False)
    z = _unit_rows(x @ vh[:input_dim].T)
    k = int(ds.n_classes)
    g = _generator(seed)
    idx = torch.randint(0, z.shape[0], (rounds,), generator=g)
    labels = ds.labels_train[idx]
    contexts = disjoint_encoding(z[idx], k) * math.sqrt(k * input_dim)
    means = torch.nn.functional.one_hot(labels, k).to(torch.float64)
    return BanditEnv(dataset, contexts, means, _noise((rounds, k), noise_std, g), float(noise_std))


def nonlinear_bandit(
    reward: NonlinearReward = "cos",
    *,
    rounds: int,
    dim: int = 10,
    n_arms: int = 4,
    noise_std: float = 0.1,
    seed: int = 0,
) -> BanditEnv:
    """Zhou et al. 2020's synthetic bandit: ``h(x) = cos(3 u^T x)`` or ``10 (u^T x)^2``, ``x`` on the sphere.

    Contexts are drawn uniformly on the unit sphere of ``R^dim`` (the reward is computed there) and then rescaled
    to norm ``sqrt(dim)`` as network inputs; ``u`` is a uniform unit vector.

    Raises:
        ValueError: an unknown ``reward``.
    """
    if reward not in NONLINEAR_REWARDS:
        raise ValueError(f"reward: expected one of {NONLINEAR_REWARDS}, got {reward!r}")
    rounds, dim, n_arms = (
        _check_positive(n, v) for n, v in (("rounds", rounds), ("dim", dim), ("n_arms", n_arms))
    )
    g = _generator(seed)
    u = _unit_rows(torch.randn(dim, generator=g, dtype=torch.float64)[None])[0]
    x = _unit_rows(torch.randn(rounds, n_arms, dim, generator=g, dtype=torch.float64))
    s = x @ u
    means = torch.cos(3.0 * s) if reward == "cos" else 10.0 * s**2
    noise = _noise((rounds, n_arms), noise_std, g)
    return BanditEnv(f"nonlinear-{reward}", x * math.sqrt(dim), means, noise, float(noise_std))


def linear_bandit(
    *,
    rounds: int,
    dim: int = 5,
    n_arms: int = 10,
    alpha: float = 1.0,
    noise_std: float = 0.5,
    seed: int = 0,
    theta_norm: float | None = None,
) -> tuple[BanditEnv, torch.Tensor]:
    """A linear bandit ``r = theta*^T x + N(0, noise_std^2)`` with ``theta* ~ N(0, alpha^-1 I)``, ``x ~ N(0, I)``.

    With ``theta_norm`` set, ``theta*`` is that draw rescaled to the norm ``theta_norm`` (a uniform direction).

    Returns:
        The environment and ``theta*``.

    Raises:
        ValueError: a non-positive ``alpha`` or a negative ``theta_norm``.
    """
    rounds, dim, n_arms = (
        _check_positive(n, v) for n, v in (("rounds", rounds), ("dim", dim), ("n_arms", n_arms))
    )
    if not (alpha > 0 and math.isfinite(alpha)):
        raise ValueError(f"alpha: expected a finite number > 0, got {alpha!r}")
    if theta_norm is not None and not (theta_norm >= 0 and math.isfinite(theta_norm)):
        raise ValueError(f"theta_norm: expected a finite number >= 0, got {theta_norm!r}")
    g = _generator(seed)
    theta = torch.randn(dim, generator=g, dtype=torch.float64) / math.sqrt(alpha)
    if theta_norm is not None:
        theta = theta_norm * _unit_rows(theta[None])[0]
    x = torch.randn(rounds, n_arms, dim, generator=g, dtype=torch.float64)
    env = BanditEnv("linear", x, x @ theta, _noise((rounds, n_arms), noise_std, g), float(noise_std))
    return env, theta
