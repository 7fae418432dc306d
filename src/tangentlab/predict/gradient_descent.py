"""Outputs of linearized networks trained by gradient flow on MSE, for one network and over random inits.

Convention (DESIGN.md): ``L = (1/(2n)) sum_i ||f(x_i) - y_i||^2`` over the ``n`` training points, time ``t``
counted in steps of size ``learning_rate`` (eta). Then ``A_t = I - exp(-eta t Theta / n)`` and

* one network, linearized at init (Lee et al. 2019, arXiv 1902.06720, eqs. 9-10):
  ``f_t(x) = f_0(x) + Theta_{xX} Theta^{-1} A_t (Y - f_0(X))``;
* ensemble over inits, ``f_0 ~ GP(0, K)`` with ``K`` the NNGP kernel (Lee et al. 2019, eqs. 15-16):
  ``mean = Theta_{*X} Theta^{-1} A_t Y``,
  ``cov = K_{**} + M K M^T - (M K_{X*} + K_{*X} M^T)`` with ``M = Theta_{*X} Theta^{-1} A_t``.
  In ``"nngp"`` mode (only the readout layer trained) ``Theta`` is replaced by ``K``.

Kernels are the per-output (scalar) kernels, shape (n1, n2): for an O-output network use the trace NTK divided by O
(or one diagonal output block); :func:`gradient_descent_mse` also takes full (n1, n2, O, O) kernels. ``ridge`` adds ``ridge * I`` to the training kernel of the dynamics
(neural-tangents' ``diag_reg`` with absolute scale).
"""

from __future__ import annotations

from typing import Any, Literal, overload

import torch

from tangentlab.predict._checks import (
    as_float64,
    as_kernel,
    as_square_kernel,
    as_targets,
    check_nonnegative,
    check_positive,
    flatten_full_kernel,
)
from tangentlab.predict._evolution import GradientFlow, parse_times
from tangentlab.predict.gp import GaussianPrediction
from tangentlab.predict.solve import PSD_TOL, SolveInfo

EnsembleMode = Literal["ntk", "nngp"]
_MODES = ("ntk", "nngp")


def _stack(items: list[torch.Tensor], is_seq: bool) -> torch.Tensor:
    return torch.stack(items) if is_seq else items[0]


@overload
def gradient_descent_mse(
    ntk_train_train: Any,
    y_train: Any,
    ntk_test_train: Any = ...,
    *,
    t: Any = ...,
    learning_rate: float = ...,
    ridge: float = ...,
    f0_train: Any = ...,
    f0_test: Any = ...,
    psd_tol: float = ...,
    return_info: Literal[False] = ...,
) -> torch.Tensor: ...


@overload
def gradient_descent_mse(
    ntk_train_train: Any,
    y_train: Any,
    ntk_test_train: Any = ...,
    *,
    t: Any = ...,
    learning_rate: float = ...,
    ridge: float = ...,
    f0_train: Any = ...,
    f0_test: Any = ...,
    psd_tol: float = ...,
    return_info: Literal[True],
) -> tuple[torch.Tensor, SolveInfo]: ...


def gradient_descent_mse(
    ntk_train_train: Any,
    y_train: Any,
    ntk_test_train: Any = None,
    *,
    t: Any = None,
    learning_rate: float = 1.0,
    ridge: float = 0.0,
    f0_train: Any = None,
    f0_test: Any = None,
    psd_tol: float = PSD_TOL,
    return_info: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, SolveInfo]:
    """Outputs of a network linearized at init and trained by gradient flow on MSE for time ``t``.

    ``f_t(x) = f_0(x) + Theta_{xX} Theta^{-1} (I - exp(-eta t Theta / n)) (Y - f_0(X))`` for the loss
    ``L = (1/(2n)) sum_i ||f(x_i) - y_i||^2`` (Lee et al. 2019, arXiv 1902.06720, eqs. 9-10, with the 1/n of our
    convention). On the training inputs ``f_t - Y = exp(-eta t Theta / n) (f_0 - Y)``.

    Args:
        ntk_train_train: (n, n) per-output NTK on the training inputs.
        y_train: (n,) or (n, k) targets.
        ntk_test_train: (m, n) NTK between test and training inputs; None returns training outputs.
        t: training time in steps of size ``learning_rate``: a number >= 0, None (infinity), or a sequence of them
            (then the outputs get a leading time axis).
        learning_rate: step size eta.
        ridge: added to the training kernel's diagonal.
        f0_train: (n,) or (n, k) outputs at init on the training inputs (default 0).
        f0_test: (m,) or (m, k) outputs at init on the test inputs (default 0).
        psd_tol: relative tolerance of the PSD check.
        return_info: also return the :class:`SolveInfo` (solver, jitter, condition number).

    Full kernels: ``ntk_train_train`` of shape (n, n, O, O) (``empirical_ntk(..., outputs="full")``) couples the O
    outputs exactly as the finite linearized network does; then ``ntk_test_train`` is (m, n, O, O), ``y_train`` and
    ``f0_*`` are (n, O) / (m, O), and the ``n`` of the time scale is still the number of training points.

    Returns:
        Test outputs (m, k) — (m,) for vector targets — or training outputs when ``ntk_test_train`` is None; with
        ``return_info=True`` a pair ``(outputs, info)``. Finite ``t`` uses an eigendecomposition, ``t=None`` a
        Cholesky solve.

    Raises:
        ValueError: for mismatched shapes, NaN/inf inputs, a negative time or ridge, or a non-PSD kernel.
    """
    times, is_seq = parse_times(t)
    learning_rate = check_positive("learning_rate", learning_rate)
    ridge = check_nonnegative("ridge", ridge)
    if getattr(ntk_train_train, "ndim", 2) == 4:
        full_outs, full_info = _full_kernel_outputs(
            ntk_train_train, y_train, ntk_test_train, f0_train, f0_test, times, learning_rate, ridge, psd_tol
        )
        full = _stack(full_outs, is_seq)
        return (full, full_info) if return_info else full
    theta = as_square_kernel("ntk_train_train", ntk_train_train)
    n = theta.shape[0]
    y, was_vector = as_targets("y_train", y_train, n)
    f0x = torch.zeros_like(y) if f0_train is None else as_targets("f0_train", f0_train, n)[0]
    if f0x.shape != y.shape:
        raise ValueError(f"f0_train: expected shape {tuple(y.shape)} like y_train, got {tuple(f0x.shape)}")
    if ntk_test_train is None:
        if f0_test is not None:
            raise ValueError("f0_test: given without ntk_test_train; pass ntk_test_train or drop f0_test")
        theta_sx, f0s = theta, f0x
    else:
        theta_sx = as_kernel("ntk_test_train", ntk_test_train, cols=n)
        m = theta_sx.shape[0]
        f0s = (
            torch.zeros(m, y.shape[1], dtype=y.dtype)
            if f0_test is None
            else as_targets("f0_test", f0_test, m)[0]
        )
        if f0s.shape != (m, y.shape[1]):
            raise ValueError(f"f0_test: expected shape {(m, y.shape[1])}, got {tuple(f0s.shape)}")
    flow = GradientFlow(theta, learning_rate=learning_rate, ridge=ridge, psd_tol=psd_tol)
    outs: list[torch.Tensor] = []
    info: SolveInfo | None = None
    for time in times:
        coef, info = flow.apply(y - f0x, time)
        out = f0s + theta_sx @ coef
        outs.append(out[:, 0] if was_vector else out)
    assert info is not None
    result = _stack(outs, is_seq)
    return (result, info) if return_info else result


def _full_kernel_outputs(
    ntk_train_train: Any,
    y_train: Any,
    ntk_test_train: Any,
    f0_train: Any,
    f0_test: Any,
    times: list[float | None],
    learning_rate: float,
    ridge: float,
    psd_tol: float,
) -> tuple[list[torch.Tensor], SolveInfo]:
    """:func:`gradient_descent_mse` for full (n, n, O, O) kernels, on the flattened (n O, n O) problem."""
    n, o = ntk_train_train.shape[0], ntk_train_train.shape[2]
    theta = as_square_kernel("ntk_train_train", flatten_full_kernel("ntk_train_train", ntk_train_train))
    y = as_float64("y_train", y_train, ndim=(1, 2)).reshape(len(y_train), -1)
    if y.shape != (n, o):
        raise ValueError(
            f"y_train: expected shape {(n, o)} for a full kernel with {o} outputs, got {tuple(y.shape)}"
        )
    f0x = torch.zeros_like(y) if f0_train is None else as_float64("f0_train", f0_train, ndim=(2,))
    if f0x.shape != (n, o):
        raise ValueError(f"f0_train: expected shape {(n, o)}, got {tuple(f0x.shape)}")
    if ntk_test_train is None:
        if f0_test is not None:
            raise ValueError("f0_test: given without ntk_test_train; pass ntk_test_train or drop f0_test")
        theta_sx, f0s = theta, f0x
    else:
        theta_sx = flatten_full_kernel("ntk_test_train", ntk_test_train, rows=n, outputs=o)
        m = theta_sx.shape[0] // o
        f0s = (
            torch.zeros(m, o, dtype=y.dtype) if f0_test is None else as_float64("f0_test", f0_test, ndim=(2,))
        )
        if f0s.shape != (m, o):
            raise ValueError(f"f0_test: expected shape {(m, o)}, got {tuple(f0s.shape)}")
    flow = GradientFlow(theta, learning_rate=learning_rate, ridge=ridge, psd_tol=psd_tol, n_points=n)
    outs: list[torch.Tensor] = []
    info: SolveInfo | None = None
    for time in times:
        coef, info = flow.apply((y - f0x).reshape(-1, 1), time)
        outs.append(f0s + (theta_sx @ coef).reshape(-1, o))
    assert info is not None
    return outs, info


def gradient_descent_mse_ensemble(
    y_train: Any,
    *,
    nngp_train_train: Any,
    ntk_train_train: Any = None,
    nngp_test_train: Any = None,
    ntk_test_train: Any = None,
    nngp_test_test: Any = None,
    mode: EnsembleMode = "ntk",
    t: Any = None,
    learning_rate: float = 1.0,
    ridge: float = 0.0,
    psd_tol: float = PSD_TOL,
) -> GaussianPrediction:
    """Mean and covariance over random inits of linearized networks trained by gradient flow on MSE.

    With ``f_0 ~ GP(0, K)`` (K the NNGP kernel) and ``M = Theta_{*X} Theta^{-1} (I - exp(-eta t Theta / n))``:
    ``mean = M Y`` and ``cov = K_{**} + M K M^T - (M K_{X*} + K_{*X} M^T)`` (Lee et al. 2019, arXiv 1902.06720,
    eqs. 15-16, with the 1/n of our loss). Mode ``"nngp"`` trains only the readout: ``Theta`` becomes ``K``.

    Args:
        y_train: (n,) or (n, k) targets.
        nngp_train_train: (n, n) NNGP kernel (covariance of the outputs at init) on the training inputs.
        ntk_train_train: (n, n) NTK on the training inputs; required in mode ``"ntk"``.
        nngp_test_train: (m, n) NNGP between test and training inputs; None predicts on the training inputs.
        ntk_test_train: (m, n) NTK between test and training inputs; required in mode ``"ntk"`` with test inputs.
        nngp_test_test: (m, m) NNGP on the test inputs; without it (and with test inputs) the covariance is None.
        mode: ``"ntk"`` (all layers trained) or ``"nngp"`` (readout only).
        t: time in steps of size ``learning_rate``; None = infinity; a sequence gives a leading time axis.
        learning_rate: step size eta.
        ridge: added to the dynamics kernel's diagonal.
        psd_tol: relative tolerance of the PSD check.

    Returns:
        A :class:`GaussianPrediction` (mean, covariance, solver info).

    Raises:
        ValueError: for an unknown mode, missing or mismatched kernels, NaN/inf inputs, or non-PSD kernels.
    """
    if mode not in _MODES:
        raise ValueError(f"mode: expected one of {_MODES}, got {mode!r}")
    k_xx = as_square_kernel("nngp_train_train", nngp_train_train)
    n = k_xx.shape[0]
    y, was_vector = as_targets("y_train", y_train, n)
    times, is_seq = parse_times(t)
    learning_rate = check_positive("learning_rate", learning_rate)
    ridge = check_nonnegative("ridge", ridge)
    if mode == "ntk":
        if ntk_train_train is None:
            raise ValueError(
                "ntk_train_train: required when mode='ntk' (use mode='nngp' to train only the readout)"
            )
        theta = as_square_kernel("ntk_train_train", ntk_train_train)
        if theta.shape != k_xx.shape:
            raise ValueError(f"ntk_train_train: expected shape {tuple(k_xx.shape)}, got {tuple(theta.shape)}")
    else:
        theta = k_xx
    k_ss: torch.Tensor | None
    if nngp_test_train is None:
        if ntk_test_train is not None or nngp_test_test is not None:
            raise ValueError("nngp_test_train: required when ntk_test_train or nngp_test_test is given")
        k_sx, theta_sx, k_ss = k_xx, theta, k_xx
    else:
        k_sx = as_kernel("nngp_test_train", nngp_test_train, cols=n)
        m = k_sx.shape[0]
        if mode == "ntk":
            if ntk_test_train is None:
                raise ValueError("ntk_test_train: required with nngp_test_train when mode='ntk'")
            theta_sx = as_kernel("ntk_test_train", ntk_test_train, rows=m, cols=n)
        else:
            theta_sx = k_sx
        k_ss = None if nngp_test_test is None else as_square_kernel("nngp_test_test", nngp_test_test)
        if k_ss is not None and k_ss.shape[0] != m:
            raise ValueError(f"nngp_test_test: expected shape ({m}, {m}), got {tuple(k_ss.shape)}")
    flow = GradientFlow(
        theta, learning_rate=learning_rate, ridge=ridge, psd_tol=psd_tol, name=f"{mode}_train_train"
    )
    means: list[torch.Tensor] = []
    covs: list[torch.Tensor] = []
    info: SolveInfo | None = None
    for time in times:
        mt, info = flow.apply(theta_sx.T, time)  # P_t Theta_{X*} = M^T
        mean = mt.T @ y
        means.append(mean[:, 0] if was_vector else mean)
        if k_ss is not None:
            cross = mt.T @ k_sx.T  # M K_{X*}
            cov = k_ss + mt.T @ k_xx @ mt - cross - cross.T
            covs.append(0.5 * (cov + cov.T))
    assert info is not None
    return GaussianPrediction(_stack(means, is_seq), _stack(covs, is_seq) if covs else None, info)
