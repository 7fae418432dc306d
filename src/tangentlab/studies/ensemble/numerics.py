"""The ``ensemble`` study's numerics: an ensemble trained by full-batch GD at once, the NTK-GP for discrete GD, and
the paired (control-variate) distances between the ensemble's statistics and the NTK-GP's.

Discrete GD as gradient flow. Full-batch GD with step ``eta`` on ``L = (1/(2n)) sum_i (f(x_i) - y_i)^2`` moves a
linearized net's training outputs by ``r <- (I - eta Theta / n) r``, so after ``t`` steps its test outputs are
``f_t(*) = f_0(*) + Theta_{*X} Theta^{-1} (I - (I - eta Theta / n)^t) (Y - f_0(X))`` (Lee et al. 2019, arXiv
1902.06720, eq. 9 with discrete time). With ``Theta = V diag(lambda) V^T`` and ``lambda' = -(n / eta) log(1 - eta
lambda / n)`` (independent of ``t``), ``(1 - eta lambda / n)^t = exp(-eta t lambda' / n)``: gradient flow with the
training kernel ``Theta' = V diag(lambda') V^T`` and the test kernel ``Theta'_{*X} = Theta_{*X} Theta^{-1} Theta' =
Theta_{*X} V diag(lambda' / lambda) V^T`` gives exactly the GD outputs at every step, for one net
(:func:`tangentlab.predict.gradient_descent_mse`) and for the ensemble over inits
(:func:`tangentlab.predict.gradient_descent_mse_ensemble`): :func:`discrete_gd_kernels`. It needs
``eta lambda_max / n < 1``; as ``eta -> 0`` ``lambda' -> lambda``.

Paired distances. Member ``k`` of the ensemble (outputs ``f_k``) is paired with ``g_k``, the infinite-width NTK's
linearized prediction started from the member's *own* outputs at init: ``g_k = f_{0,k}(*) + M_t (Y - f_{0,k}(X))``
with ``M_t = Theta'_{*X} Theta'^{-1} (I - exp(-eta t Theta' / n))``. Since ``E f_0 = 0`` at any width (the readout is
zero-mean), ``E g_k = M_t Y``, the NTK-GP mean, exactly; so ``mean_k (f_k - g_k)`` estimates ``E f - mu_t`` with a
Monte Carlo error that shrinks with width (``f_k - g_k -> 0``), where ``mean_k f_k - mu_t`` has an error
``sigma / sqrt(K)`` at every width. For the variance, ``Var g = P_t C P_t^T`` with ``P_t = [I, -M_t]`` and ``C`` the
finite-width covariance of ``f_0`` on (test, train) inputs, ``E`` over inits of the readout's conditional covariance
``C_k = sigma_w^2 phi_k phi_k^T / d + sigma_b^2`` (exact: the readout is Gaussian given the features ``phi_k``). So
``Var f - sigma_t^2 = [Var f - Var g] + [mean_k diag(P_t C_k P_t^T) - sigma_t^2]`` up to Monte Carlo error, both
brackets estimated from the same members. For one hidden layer ``E C_k`` is the NNGP kernel exactly and the second
bracket has mean 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, grad, stack_module_state, vmap

from tangentlab.train import divergence


def discrete_gd_kernels(
    ntk_train_train: torch.Tensor, ntk_test_train: torch.Tensor, learning_rate: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Kernels under which gradient flow for time ``t`` equals ``t`` steps of full-batch GD (module docstring).

    Args:
        ntk_train_train: (n, n) symmetric PSD training kernel ``Theta``.
        ntk_test_train: (m, n) test-train kernel ``Theta_{*X}``.
        learning_rate: GD step ``eta``.

    Returns:
        ``(Theta', Theta'_{*X})``, float64.

    Raises:
        ValueError: if ``eta lambda_max / n >= 1`` (the GD map ``1 - eta lambda / n`` must stay positive), or for
            mismatched shapes or a non-positive learning rate.
    """
    theta = ntk_train_train.to(torch.float64)
    cross = ntk_test_train.to(torch.float64)
    n = theta.shape[0]
    if theta.shape != (n, n) or cross.ndim != 2 or cross.shape[1] != n:
        raise ValueError(
            f"ntk_test_train: expected (m, {n}) beside an (n, n) training kernel, got {tuple(cross.shape)} and "
            f"{tuple(theta.shape)}"
        )
    if not learning_rate > 0:
        raise ValueError(f"learning_rate: expected a positive step, got {learning_rate!r}")
    evals, evecs = torch.linalg.eigh(0.5 * (theta + theta.T))
    x = (learning_rate * evals / n).clamp(min=0.0)
    if float(x.max()) >= 1.0:
        raise ValueError(
            f"learning_rate: eta * lambda_max / n = {float(x.max()):.3g} >= 1; the GD map 1 - eta lambda / n must "
            "stay positive to be written as gradient flow"
        )
    small = x < 1e-8
    ratio = torch.where(small, 1.0 + x / 2, -torch.log1p(-x) / torch.where(small, torch.ones_like(x), x))
    theta_prime = (evecs * (evals.clamp(min=0.0) * ratio)) @ evecs.T
    return 0.5 * (theta_prime + theta_prime.T), (cross @ evecs * ratio) @ evecs.T


@dataclass(frozen=True)
class EnsembleTrace:
    """What :func:`train_ensemble` records.

    Attributes:
        f0_train: (K, n) outputs at init on the training inputs.
        probe: (K, R, m) outputs on the probe inputs at each recorded step.
        steps: the R recorded steps (sorted).
        train_loss: (K,) final training loss of each member.
        diverged: (K,) whether each member diverged (:mod:`tangentlab.train.divergence`).
    """

    f0_train: torch.Tensor
    probe: torch.Tensor
    steps: tuple[int, ...]
    train_loss: torch.Tensor
    diverged: torch.Tensor


def train_ensemble(
    nets: Sequence[nn.Module],
    x: torch.Tensor,
    y: torch.Tensor,
    probe: torch.Tensor,
    *,
    learning_rate: float,
    record: Sequence[int],
    loss_every: int = 10,
) -> EnsembleTrace:
    """Full-batch GD on ``(1/(2n)) sum_i (f(x_i) - y_i)^2`` for every net at once (``torch.func.vmap``).

    Each member follows exactly ``theta <- theta - eta grad L`` (what :func:`tangentlab.train.fit` does with
    ``optimizer="gd"``), for ``max(record)`` steps. The nets must share one architecture (one scalar output); they
    are not modified (the stacked parameters are copies).

    Args:
        nets: K modules of the same architecture.
        x: (n, ...) training inputs.
        y: (n,) or (n, 1) targets.
        probe: (m, ...) inputs whose outputs are recorded.
        learning_rate: the step ``eta``.
        record: steps at which the probe outputs are recorded (0 = init).
        loss_every: the training loss is checked for divergence every this many steps.

    Raises:
        ValueError: for no nets, negative steps or targets that are not one column.
    """
    if not nets:
        raise ValueError("nets: expected at least one network")
    steps = tuple(sorted({int(s) for s in record}))
    if steps[0] < 0:
        raise ValueError(f"record: expected steps >= 0, got {list(record)}")
    n = x.shape[0]
    target = y.reshape(n, 1)
    params, buffers = stack_module_state(list(nets))
    params = {k: v.detach() for k, v in params.items()}
    template = nets[0]

    def outputs(p: dict[str, torch.Tensor], b: dict[str, torch.Tensor], inputs: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = functional_call(template, (p, b), (inputs,))
        return out.reshape(inputs.shape[0])

    def loss(p: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> torch.Tensor:
        return 0.5 * (outputs(p, b, x) - target[:, 0]).pow(2).sum() / n

    batched_out = vmap(outputs, in_dims=(0, 0, None))
    batched_loss = vmap(loss)
    batched_grad = vmap(grad(loss))
    f0_train = batched_out(params, buffers, x)
    initial = batched_loss(params, buffers)
    history: list[torch.Tensor] = [initial]
    recorded: list[torch.Tensor] = []
    for step in range(steps[-1] + 1):
        if step in steps:
            recorded.append(batched_out(params, buffers, probe))
        if step == steps[-1]:
            break
        grads = batched_grad(params, buffers)
        params = {k: v - learning_rate * grads[k] for k, v in params.items()}
        if (step + 1) % loss_every == 0:
            history.append(batched_loss(params, buffers))
    final = batched_loss(params, buffers)
    history.append(final)
    losses = torch.stack(history, dim=1).detach().cpu().numpy()
    diverged = torch.tensor(
        [divergence.reason(row[1:].tolist(), float(row[0])) is not None for row in losses], dtype=torch.bool
    )
    return EnsembleTrace(
        f0_train.detach(), torch.stack(recorded, dim=1).detach(), steps, final.detach(), diverged
    )


def paired_samples(
    f0_train: torch.Tensor, f0_test: torch.Tensor, y: torch.Tensor, gain: torch.Tensor
) -> torch.Tensor:
    """``g_k(t) = f_{0,k}(*) + M_t (Y - f_{0,k}(X))`` for every member and time.

    Args:
        f0_train: (K, n) members' outputs at init on the training inputs.
        f0_test: (K, m) members' outputs at init on the test inputs.
        y: (n,) targets.
        gain: (T, m, n) the maps ``M_t``.

    Returns:
        (K, T, m).
    """
    residual = y.reshape(1, -1) - f0_train  # (K, n)
    return f0_test[:, None, :] + torch.einsum("tmn,kn->ktm", gain, residual)


def init_variance_terms(cov: torch.Tensor, gain: torch.Tensor, m: int) -> torch.Tensor:
    """``diag(P_t C_k P_t^T)`` with ``P_t = [I_m, -M_t]``: the variance of ``g`` under member ``k``'s covariance.

    Args:
        cov: (K, m + n, m + n) conditional covariances of ``f_0`` on (test, train) inputs, test first.
        gain: (T, m, n) the maps ``M_t``.
        m: number of test inputs.

    Returns:
        (K, T, m).
    """
    c_ss = torch.diagonal(cov[:, :m, :m], dim1=1, dim2=2)  # (K, m)
    c_sx = cov[:, :m, m:]  # (K, m, n)
    c_xx = cov[:, m:, m:]  # (K, n, n)
    cross = torch.einsum("tmn,kmn->ktm", gain, c_sx)
    quad = torch.einsum("tmn,knp,tmp->ktm", gain, c_xx, gain)
    return c_ss[:, None, :] - 2 * cross + quad


@dataclass(frozen=True)
class Distances:
    """Distances between the ensemble's statistics and the NTK-GP's at each time (arrays over times).

    Attributes:
        mean: ``RMS_i(mean_k (f_k - g_k)_i) / RMS_i(sigma_i)``: the mean's deviation in predictive standard
            deviations (paired estimator).
        variance: ``RMS_i(dv_i) / mean_i(sigma_i^2)`` with ``dv = [var_k f - var_k g] + [mean_k c_k - sigma^2]``
            (paired estimator; relative to the predictive variance).
        raw_mean: ``RMS_i(mean_k f_k - mu)_i / RMS_i(sigma_i)`` (no pairing: about ``1/sqrt(K)`` even when the
            ensemble is drawn from the NTK-GP itself).
        raw_variance_ratio: ``mean_i var_k f / mean_i sigma_i^2`` (no pairing: 1 up to ``sqrt(2/(K-1))``).
    """

    mean: np.ndarray
    variance: np.ndarray
    raw_mean: np.ndarray
    raw_variance_ratio: np.ndarray


def distances(f: np.ndarray, g: np.ndarray, c: np.ndarray, mu: np.ndarray, sigma2: np.ndarray) -> Distances:
    """The :class:`Distances` of one ensemble.

    Args:
        f: (K, T, m) members' test outputs at the T times.
        g: (K, T, m) their paired infinite-NTK linearized predictions (:func:`paired_samples`).
        c: (K, T, m) :func:`init_variance_terms`.
        mu: (T, m) NTK-GP mean.
        sigma2: (T, m) NTK-GP variance (diagonal of the covariance).
    """
    f, g, c = (np.asarray(a, dtype=np.float64) for a in (f, g, c))
    scale_sd = np.sqrt(np.mean(sigma2, axis=-1))
    scale_var = np.mean(sigma2, axis=-1)
    dm = np.mean(f - g, axis=0)
    dv = np.var(f, axis=0, ddof=1) - np.var(g, axis=0, ddof=1) + np.mean(c, axis=0) - sigma2
    raw = np.mean(f, axis=0) - mu
    return Distances(
        mean=np.sqrt(np.mean(dm**2, axis=-1)) / scale_sd,
        variance=np.sqrt(np.mean(dv**2, axis=-1)) / scale_var,
        raw_mean=np.sqrt(np.mean(raw**2, axis=-1)) / scale_sd,
        raw_variance_ratio=np.mean(np.var(f, axis=0, ddof=1), axis=-1) / scale_var,
    )


def bootstrap_distances(
    f: np.ndarray,
    g: np.ndarray,
    c: np.ndarray,
    mu: np.ndarray,
    sigma2: np.ndarray,
    *,
    n_boot: int = 500,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Bootstrap replicates of the paired mean and variance distances, resampling members with replacement.

    Returns:
        ``(mean, variance)``, each (n_boot, T).
    """
    k = f.shape[0]
    rng = np.random.default_rng(seed)
    means, variances = [], []
    for _ in range(n_boot):
        idx = rng.integers(0, k, size=k)
        d = distances(f[idx], g[idx], c[idx], mu, sigma2)
        means.append(d.mean)
        variances.append(d.variance)
    return np.array(means), np.array(variances)


__all__ = [
    "Distances",
    "EnsembleTrace",
    "bootstrap_distances",
    "discrete_gd_kernels",
    "distances",
    "init_variance_terms",
    "paired_samples",
    "train_ensemble",
]
