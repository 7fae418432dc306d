"""Forgetting in the kernel regime: a linearized network trained on one task after another, in closed form.

A linearized network ``f(x) = f_0(x) + J(x) (theta - theta_0)`` trained by gradient flow on task ``t`` (inputs
``X_t``, head ``c_t``, targets ``Y_t``, loss ``(1/(2 n_t)) sum_i ||f_{c_t}(x_i) - y_i||^2``, step size ``eta``, time
``tau`` in steps) moves only along ``J(X_t)^T``, so on *every* input and output (earlier tasks' included)

    f(x) <- f(x) + Theta_{x, X_t} Theta_{X_t X_t}^{-1} (I - exp(-eta tau Theta_{X_t X_t} / n_t)) (Y_t - f_{c_t}(X_t))

(Lee et al. 2019, arXiv 1902.06720, eqs. 9-10, applied task after task; the kernel-regime argument of Mirzadeh et
al. 2022, arXiv 2110.11526, and of Bennani et al. 2020 / Doan et al. 2021 for NTK continual learning).
The change on an earlier task's inputs — the forgetting — is governed by the cross-task kernel block
``Theta_{X_j, X_t}``. ``Theta`` is either

* a full kernel (N, N, O, O) (``empirical_ntk(..., outputs="full")``): outputs are coupled, exactly as in the finite
  linearized net; the head's block is flattened to ``(n_t k, n_t k)``;
* a per-output kernel (N, N), i.e. ``Theta (x) I_O`` (the infinite-width NTK): outputs are independent, so training
  head ``c_t`` leaves every other output unchanged — with separate heads (split tasks) an infinitely wide net in
  the kernel regime forgets nothing.

Each update is one call of :func:`tangentlab.predict.gradient_descent_mse`. The outputs at init ``f_0`` are either
zero (the NTK-GP mean over inits) or one draw of the infinite-width prior ``f_0 ~ GP(0, K)`` with ``K`` the NNGP
kernel (:func:`sample_prior_outputs`; Lee et al. 2019, Sec. 2.3), so the prediction is that of *one* infinitely
wide network, init noise included.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from tangentlab import metrics, predict


def _blocks(
    theta: torch.Tensor, rows: torch.Tensor, cols: Sequence[int]
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(train-train block, all-train block, output multiplier) of the task ``rows`` x head ``cols``."""
    if theta.ndim == 2:
        return theta[rows][:, rows], theta[:, rows], 1
    if theta.ndim != 4:
        raise ValueError(f"theta: expected a (N, N) or (N, N, O, O) kernel, got shape {tuple(theta.shape)}")
    c = torch.as_tensor(list(cols), dtype=torch.long)
    n, k, big_n, o = rows.numel(), c.numel(), theta.shape[0], theta.shape[2]
    tt = theta[rows][:, rows][:, :, c][:, :, :, c].permute(0, 2, 1, 3).reshape(n * k, n * k)
    st = theta[:, rows][:, :, :, c].permute(0, 2, 1, 3).reshape(big_n * o, n * k)
    return tt, st, k


def _check(
    theta: torch.Tensor, f: torch.Tensor, rows: torch.Tensor, y_task: torch.Tensor, cols: Sequence[int]
) -> None:
    if f.ndim != 2 or theta.shape[0] != f.shape[0] or theta.shape[1] != f.shape[0]:
        raise ValueError(
            f"f: expected (N, O) outputs for a kernel of shape {tuple(theta.shape)}, got {tuple(f.shape)}"
        )
    if y_task.shape != (rows.numel(), len(cols)):
        raise ValueError(f"y_task: expected shape {(rows.numel(), len(cols))}, got {tuple(y_task.shape)}")


def task_update(
    theta: torch.Tensor,
    f: torch.Tensor,
    rows: torch.Tensor,
    cols: Sequence[int],
    y_task: torch.Tensor,
    *,
    t: float,
    learning_rate: float,
) -> torch.Tensor:
    """Outputs on all N points after training the linearized net on one task for time ``t`` (module docstring).

    Args:
        theta: (N, N) per-output or (N, N, O, O) full NTK over all N points (every task's inputs, test ones too).
        f: (N, O) current outputs on the N points.
        rows: (n_t,) indices of the task's training inputs among the N points.
        cols: the task's head (output columns).
        y_task: (n_t, k) targets of the head.
        t: training time in steps of size ``learning_rate``.
        learning_rate: step size ``eta``.

    Returns:
        (N, O) outputs after the task; float64.
    """
    theta, f, y_task = (v.to(torch.float64) for v in (theta, f, y_task))
    _check(theta, f, rows, y_task, cols)
    c = list(cols)
    tt, st, k = _blocks(theta, rows, c)
    residual = y_task - f[rows][:, c]
    out = f.clone()
    if theta.ndim == 2:
        out[:, c] += predict.gradient_descent_mse(tt, residual, st, t=t, learning_rate=learning_rate)
        return out
    # flattened problem: n_t k "points" in the kernel, but the loss averages over n_t, so eta -> eta k
    step = predict.gradient_descent_mse(tt, residual.reshape(-1), st, t=t, learning_rate=learning_rate * k)
    return out + step.reshape(f.shape)


def time_to_accuracy(
    theta: torch.Tensor,
    f: torch.Tensor,
    rows: torch.Tensor,
    cols: Sequence[int],
    y_task: torch.Tensor,
    *,
    times: Sequence[float],
    learning_rate: float,
    target: float,
) -> tuple[float, float]:
    """The first of ``times`` at which the task's training accuracy reaches ``target`` (else the last time), and
    the training accuracy there; the same stopping rule the study applies to the trained nets."""
    theta, f, y_task = (v.to(torch.float64) for v in (theta, f, y_task))
    _check(theta, f, rows, y_task, cols)
    c = list(cols)
    tt, _, k = _blocks(theta, rows, c)
    f_task = f[rows][:, c]
    residual = y_task - f_task
    if theta.ndim == 2:
        steps = predict.gradient_descent_mse(tt, residual, t=list(times), learning_rate=learning_rate)
    else:
        flat = predict.gradient_descent_mse(
            tt, residual.reshape(-1), t=list(times), learning_rate=learning_rate * k
        )
        steps = flat.reshape(len(times), *residual.shape)
    acc = 0.0
    for time, step in zip(times, steps, strict=True):
        acc = metrics.accuracy(f_task + step, y_task)
        if acc >= target:
            return float(time), acc
    return float(times[-1]), acc


JITTERS: tuple[float, ...] = (0.0, 1e-12, 1e-10, 1e-8, 1e-6, 1e-4)


def sample_prior_outputs(nngp: torch.Tensor, n_out: int, seed: int) -> tuple[torch.Tensor, float]:
    """``n_out`` independent draws of ``N(0, K)`` on the N points of ``nngp`` as an (N, n_out) array, and the jitter.

    ``L L^T = K + jitter * mean(diag K) * I`` by Cholesky, trying the jitters of :data:`JITTERS` in order (the one
    used is returned); the draws are ``L z`` with ``z`` standard normal from a generator seeded by ``seed``.

    Raises:
        ValueError: if ``K`` is not square or is not positive definite even with the largest jitter.
    """
    k = nngp.to(torch.float64)
    if k.ndim != 2 or k.shape[0] != k.shape[1]:
        raise ValueError(f"nngp: expected a square (N, N) kernel, got shape {tuple(k.shape)}")
    scale = float(k.diagonal().mean())
    eye = torch.eye(k.shape[0], dtype=torch.float64)
    for jitter in JITTERS:
        chol, info = torch.linalg.cholesky_ex(k + jitter * scale * eye)
        if int(info) == 0:
            gen = torch.Generator().manual_seed(int(seed))
            z = torch.randn(k.shape[0], n_out, generator=gen, dtype=torch.float64)
            return chol @ z, jitter
    raise ValueError(f"nngp: not positive definite even with jitter {JITTERS[-1]} x mean diagonal")
