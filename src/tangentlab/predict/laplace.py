"""Linearized Laplace approximation of a trained network, computed in function space through its empirical NTK.

Model: ``y_io = f_o(x_i; θ) + ε``, ``ε ~ N(0, σ²)`` on each of the ``O`` outputs, prior ``θ ~ N(m, α⁻¹ I)`` (``m = 0``
unless a prior mean is given). Linearizing ``f`` at the fitted parameters ``θ*`` (MacKay 1992; Khan et al. 2019,
arXiv 1906.01930; Immer, Korzepa & Bauer 2021, arXiv 2008.08400) makes the model linear-Gaussian, with the
generalized Gauss-Newton (GGN) posterior ``Σ = (Σ_o J_oᵀ J_o / σ² + α I)⁻¹`` (J_o: (n, P) Jacobian of output o).
Pushed through ``J_*`` and written in the dual (Woodbury) form with the eNTK ``K = J Jᵀ``::

    mean(x_*) = f(x_*; θ*)
    cov(x_*)  = J_* Σ J_*ᵀ = (1/α) [K_** − K_*X (K_XX + α σ² I)⁻¹ K_X*]

Per-output scalar kernel: ``K`` is the output-averaged eNTK ``(1/O) Σ_o J_o J_oᵀ`` (``empirical_ntk(...,
outputs="trace") / O``), the Kronecker approximation ``K_full ≈ K ⊗ I_O`` that the infinite-width limit makes exact;
for one output (``O = 1``) everything here is exact. The covariance is then shared by every output column, as in
:class:`~tangentlab.predict.gp.GaussianPrediction`.

Evidence (``form="laplace"``, the default; MacKay 1992; Immer et al. 2021, arXiv 2104.04975)::

    log p(y) ≈ log p(y | θ*) + log p(θ*) − ½ log det(H / 2π),   H = Σ_o J_oᵀ J_o / σ² + α I
             = Σ_io log N(y_io; f_o(x_i), σ²) − (α/2) ||θ* − m||² − (O/2) Σ_i log(1 + λ_i / (α σ²))

(λ_i: eigenvalues of ``K_XX``; the ``(P/2) log α`` of the prior and of ``det H`` cancel by Sylvester's identity, so
the parameter count never appears). ``form="function_space"`` is the exact evidence of the linearized model,
``Σ_o log N(ỹ_o; 0, K_XX/α + σ² I)`` with pseudo-targets ``ỹ = y − f(X) + J (θ* − m)``. For a model that is linear in
its parameters, evaluated at the posterior mean for the same (α, σ), the two forms are equal (tested).
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Literal, cast

import torch
from torch import nn
from torch.func import functional_call, jvp

from tangentlab.kernels import empirical_ntk
from tangentlab.predict._checks import as_float64, check_positive
from tangentlab.predict.gp import GaussianPrediction
from tangentlab.predict.regressor import NotFittedError
from tangentlab.predict.solve import PSD_TOL, SolveInfo, check_psd, solve_psd

EvidenceForm = Literal["laplace", "function_space"]
_FORMS: tuple[str, ...] = ("laplace", "function_space")
_METHODS: tuple[str, ...] = ("grid", "gradient")
#: Default prior-precision grid of :meth:`LinearizedLaplace.optimize_prior_precision` (log-spaced).
DEFAULT_PRIOR_GRID: tuple[float, ...] = tuple(float(10.0**e) for e in torch.linspace(-6, 6, 97).tolist())
#: Default noise grid, relative to the root-mean-square training target (log-spaced).
DEFAULT_SIGMA_GRID: tuple[float, ...] = tuple(float(10.0**e) for e in torch.linspace(-3, 1, 49).tolist())


def laplace_evidence(
    eigenvalues: torch.Tensor,
    residual_sq: torch.Tensor,
    params_sq: torch.Tensor,
    n_entries: int,
    n_outputs: int,
    prior_precision: torch.Tensor,
    sigma_noise: torch.Tensor,
) -> torch.Tensor:
    """Laplace-GGN log evidence (module docstring) from sufficient statistics; differentiable, broadcasts.

    Args:
        eigenvalues: (n,) eigenvalues of the per-output training kernel ``K_XX``.
        residual_sq: ``||y − f(X)||²`` summed over all n·O entries.
        params_sq: ``||θ* − m||²``.
        n_entries: n·O, the number of observed numbers.
        n_outputs: O.
        prior_precision: α (any shape; broadcasts with ``sigma_noise``).
        sigma_noise: σ.
    """
    a, s2 = prior_precision[..., None], (sigma_noise**2)[..., None]
    log_lik = -0.5 * residual_sq / s2[..., 0] - 0.5 * n_entries * torch.log(2 * math.pi * s2[..., 0])
    log_det = n_outputs * torch.log1p(eigenvalues.clamp_min(0) / (a * s2)).sum(-1)
    return log_lik - 0.5 * prior_precision * params_sq - 0.5 * log_det


def function_space_evidence(
    eigenvalues: torch.Tensor,
    projected_sq: torch.Tensor,
    prior_precision: torch.Tensor,
    sigma_noise: torch.Tensor,
) -> torch.Tensor:
    """``Σ_o log N(ỹ_o; 0, K/α + σ² I)`` from ``K = U diag(λ) Uᵀ`` and ``projected_sq[i] = Σ_o (Uᵀ ỹ_o)_i²``.

    Args:
        eigenvalues: (n,) eigenvalues λ of ``K_XX``.
        projected_sq: (O, n) squared projections ``(Uᵀ ỹ_o)_i²`` of the pseudo-targets on the eigenvectors.
        prior_precision: α (any shape; broadcasts with ``sigma_noise``).
        sigma_noise: σ.
    """
    a, s2 = prior_precision[..., None], (sigma_noise**2)[..., None]
    var = eigenvalues.clamp_min(0) / a + s2  # (..., n)
    n_out = projected_sq.shape[0]
    quad = (projected_sq.sum(0) / var).sum(-1)
    log_det = n_out * torch.log(var).sum(-1)
    return -0.5 * quad - 0.5 * log_det - 0.5 * n_out * eigenvalues.shape[0] * math.log(2 * math.pi)


class LinearizedLaplace:
    """Linearized Laplace approximation (MacKay 1992; Immer, Korzepa & Bauer 2021 arXiv 2008.08400; Khan et al.
    2019) with a Gaussian likelihood on each output, computed in function space through the eNTK at the fitted
    parameters. Formulas, the per-output kernel convention and the evidence are in the module docstring.

    Args:
        model: the trained network (its current parameters are ``θ*``); any module mapping (n, ...) to (n,) or
            (n, O) outputs, examples treated independently (call ``model.eval()`` first if it has BatchNorm).
        prior_precision: α > 0 of the isotropic prior ``N(m, α⁻¹ I)`` on all trainable parameters.
        sigma_noise: σ > 0, the observation-noise standard deviation.
        prior_mean: ``m`` by parameter name (e.g. the parameters at initialization); None means 0.
        ntk_method: ``method`` passed to :func:`tangentlab.empirical_ntk`.
        psd_tol: relative tolerance of the PSD checks.

    Attributes (after :meth:`fit`):
        prior_precision_, sigma_noise_: the current α and σ (changed by :meth:`optimize_prior_precision`).
        kernel_train_: (n, n) float64 per-output eNTK ``K_XX`` (trace over outputs / O).
        eigenvalues_: (n,) eigenvalues of ``kernel_train_``, ascending, clipped at 0.
        f_train_: (n, O) float64 outputs of the model on the training inputs.
        residual_: (n, O) float64 ``y − f(X)``.
        params_sq_: ``||θ* − m||²`` (float).
        n_outputs_: O.
        solve_info_: :class:`SolveInfo` of the last solve by :meth:`predict`.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        prior_precision: float = 1.0,
        sigma_noise: float = 1.0,
        prior_mean: Mapping[str, torch.Tensor] | None = None,
        ntk_method: Literal["auto", "jacobian", "ntvp", "structured"] = "auto",
        psd_tol: float = PSD_TOL,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
        self.model = model
        self.prior_precision = check_positive("prior_precision", prior_precision)
        self.sigma_noise = check_positive("sigma_noise", sigma_noise)
        self.prior_mean = prior_mean
        self.ntk_method = ntk_method
        self.psd_tol = psd_tol

    # ------------------------------------------------------------------ fitting
    def _params(self) -> dict[str, torch.Tensor]:
        return {k: p.detach() for k, p in self.model.named_parameters() if p.requires_grad}

    def _displacement(self, params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``θ* − m`` by parameter name."""
        if self.prior_mean is None:
            return params
        missing = sorted(set(params) - set(self.prior_mean))
        if missing:
            raise ValueError(
                f"prior_mean: missing trainable parameters {missing}; expected keys {sorted(params)}"
            )
        return {k: p - self.prior_mean[k].to(p) for k, p in params.items()}

    def _as_model_input(self, x: torch.Tensor) -> torch.Tensor:
        ref = next((p for p in self.model.parameters()), None)
        return x.to(ref.dtype) if ref is not None and x.is_floating_point() else x

    def _outputs(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            out = self.model(x)
        return cast(torch.Tensor, out.reshape(x.shape[0], -1).to(torch.float64))

    def _kernel(self, x1: torch.Tensor, x2: torch.Tensor | None = None) -> torch.Tensor:
        k = empirical_ntk(self.model, x1, x2, outputs="trace", method=self.ntk_method)
        return cast(torch.Tensor, k.to(torch.float64) / self.n_outputs_)

    def fit(self, x: torch.Tensor, y: torch.Tensor) -> LinearizedLaplace:
        """Store the training inputs, outputs, residuals and the per-output eNTK Gram ``K_XX``; returns ``self``.

        Args:
            x: (n, ...) training inputs.
            y: (n,) or (n, O) targets, O matching the model's outputs.

        Raises:
            ValueError: for mismatched shapes, non-finite targets or a non-PSD kernel.
        """
        if not isinstance(x, torch.Tensor) or x.ndim < 1 or x.shape[0] < 1:
            raise ValueError(f"x: expected a tensor (n, ...) with n >= 1, got {getattr(x, 'shape', type(x))}")
        x = self._as_model_input(x)
        with torch.no_grad():
            raw = self.model(x)
        self.scalar_output_ = raw.ndim == 1
        f = raw.reshape(x.shape[0], -1).to(torch.float64)
        n, n_out = f.shape
        yy = as_float64("y", y, ndim=(1, 2)).reshape(y.shape[0], -1)
        if tuple(yy.shape) != (n, n_out):
            raise ValueError(
                f"y: expected shape ({n}, {n_out}) to match the model's outputs, got {tuple(y.shape)}"
            )
        self.n_outputs_ = n_out
        self.x_train_ = x
        self.f_train_ = f
        self.residual_ = yy - f
        self.kernel_train_ = self._kernel(x)
        evals, evecs = torch.linalg.eigh(self.kernel_train_)
        check_psd("kernel_train_", evals, self.psd_tol)
        self.eigenvalues_ = evals.clamp_min(0)
        params = self._params()
        disp = self._displacement(params)
        self.params_sq_ = float(sum(float((d.to(torch.float64) ** 2).sum()) for d in disp.values()))
        # pseudo-targets ỹ = y − f(X) + J (θ* − m): one forward-mode product over the training batch
        j_disp = jvp(lambda p: functional_call(self.model, p, (x,)), (params,), (disp,))[1]
        pseudo = self.residual_ + j_disp.reshape(n, -1).to(torch.float64)
        self.projected_sq_ = (evecs.T @ pseudo).T ** 2  # (O, n)
        self.prior_precision_ = self.prior_precision
        self.sigma_noise_ = self.sigma_noise
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "kernel_train_"):
            raise NotFittedError("This LinearizedLaplace instance is not fitted yet; call fit(x, y) first")

    # ------------------------------------------------------------------ prediction
    def predict(
        self, x: torch.Tensor, *, covariance: Literal["full", "diagonal"] = "full", block_size: int = 256
    ) -> GaussianPrediction:
        """Predictive mean ``f(x; θ*)`` (m, O) — (m,) for a scalar-output model — and the shared (m, m) covariance
        ``(1/α)[K_** − K_*X (K_XX + α σ² I)⁻¹ K_X*]`` (float64); ``info`` records the solve.

        Args:
            x: (m, ...) test inputs.
            covariance: ``"full"`` for the (m, m) matrix; ``"diagonal"`` for the m variances only
                (``marginal_variance``, ``covariance=None``): ``K_**`` is then computed in diagonal blocks of
                ``block_size`` points, so memory grows as m · block_size, never m².
            block_size: test points per diagonal block (``covariance="diagonal"``).
        """
        self._check_fitted()
        if covariance not in ("full", "diagonal"):
            raise ValueError(f"covariance: expected one of 'full', 'diagonal'; got {covariance!r}")
        if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
            raise ValueError(f"block_size: expected a positive integer, got {block_size!r}")
        a, s = self.prior_precision_, self.sigma_noise_
        x = self._as_model_input(x)
        mean = self._outputs(x)
        mean = mean[:, 0] if self.scalar_output_ else mean
        k_sx = self._kernel(x, self.x_train_)
        sol, info = solve_psd(
            "kernel_train_", self.kernel_train_, k_sx.T, ridge=a * s * s, psd_tol=self.psd_tol
        )
        self.solve_info_: SolveInfo = info
        if covariance == "diagonal":
            k_ss_diag = torch.cat(
                [torch.diagonal(self._kernel(xb)) for xb in torch.split(x, block_size)]
            )  # Θ(x_i, x_i) per point: only (block, block) kernels are ever formed
            variance = (k_ss_diag - (k_sx * sol.T).sum(1)) / a
            return GaussianPrediction(mean, None, info, marginal_variance=variance)
        cov = (self._kernel(x) - k_sx @ sol) / a
        cov = 0.5 * (cov + cov.T)
        return GaussianPrediction(mean, cov, info)

    # ------------------------------------------------------------------ evidence
    def _evidence(self, a: torch.Tensor, s: torch.Tensor, form: str) -> torch.Tensor:
        if form not in _FORMS:
            raise ValueError(f"form: expected one of {_FORMS}, got {form!r}")
        if form == "function_space":
            return function_space_evidence(self.eigenvalues_, self.projected_sq_, a, s)
        res = (self.residual_**2).sum()
        return laplace_evidence(
            self.eigenvalues_,
            res,
            torch.tensor(self.params_sq_, dtype=torch.float64),
            self.residual_.numel(),
            self.n_outputs_,
            a,
            s,
        )

    def log_marginal_likelihood(
        self,
        prior_precision: float | None = None,
        sigma_noise: float | None = None,
        *,
        form: EvidenceForm = "laplace",
    ) -> float:
        """Log evidence at (α, σ) (default: the current ``prior_precision_``, ``sigma_noise_``).

        Args:
            prior_precision: α > 0, or None for ``prior_precision_``.
            sigma_noise: σ > 0, or None for ``sigma_noise_``.
            form: ``"laplace"`` (Laplace-GGN evidence at θ*) or ``"function_space"`` (exact evidence of the
                linearized model); formulas in the module docstring.
        """
        self._check_fitted()
        a = (
            self.prior_precision_
            if prior_precision is None
            else check_positive("prior_precision", prior_precision)
        )
        s = self.sigma_noise_ if sigma_noise is None else check_positive("sigma_noise", sigma_noise)
        t = torch.tensor
        return float(self._evidence(t(a, dtype=torch.float64), t(s, dtype=torch.float64), form))

    def optimize_prior_precision(
        self,
        *,
        fit_sigma_noise: bool = True,
        grid: Sequence[float] | None = None,
        sigma_grid: Sequence[float] | None = None,
        method: Literal["grid", "gradient"] = "grid",
        form: EvidenceForm = "laplace",
        steps: int = 200,
        sigma_noise: bool | None = None,
    ) -> LinearizedLaplace:
        """Maximise the log evidence over α (and σ when ``fit_sigma_noise``); sets ``prior_precision_``/``sigma_noise_``.

        ``sigma_noise`` always means the noise standard deviation σ in this class; the old boolean
        ``optimize_prior_precision(sigma_noise=...)`` still works, with a DeprecationWarning, as ``fit_sigma_noise``.

        ``"grid"`` takes the argmax over ``grid`` × ``sigma_grid`` (defaults: :data:`DEFAULT_PRIOR_GRID`;
        :data:`DEFAULT_SIGMA_GRID` times the root-mean-square training target). ``"gradient"`` starts from the grid
        argmax and refines ``(log α, log σ)`` by L-BFGS for ``steps`` iterations (keeping the better of the two).
        All evaluations use the eigenvalues of ``K_XX`` cached by :meth:`fit`, so each costs O(n).

        Raises:
            ValueError: for an unknown method or form, or a grid with non-positive values.
        """
        self._check_fitted()
        if sigma_noise is not None:
            warnings.warn(
                "optimize_prior_precision(sigma_noise=...) is deprecated: sigma_noise is the noise standard "
                "deviation everywhere else; pass fit_sigma_noise=True/False",
                DeprecationWarning,
                stacklevel=2,
            )
            fit_sigma_noise = bool(sigma_noise)
        if method not in _METHODS:
            raise ValueError(f"method: expected one of {_METHODS}, got {method!r}")
        if form not in _FORMS:
            raise ValueError(f"form: expected one of {_FORMS}, got {form!r}")
        a_grid = _positive_grid("grid", DEFAULT_PRIOR_GRID if grid is None else grid)
        if fit_sigma_noise:
            rms = float((self.f_train_ + self.residual_).pow(2).mean().sqrt()) or 1.0
            s_grid = _positive_grid(
                "sigma_grid", [rms * g for g in DEFAULT_SIGMA_GRID] if sigma_grid is None else sigma_grid
            )
        else:
            s_grid = torch.tensor([self.sigma_noise_], dtype=torch.float64)
        a_best, s_best = maximize_evidence(
            lambda a, s: self._evidence(a, s, form), a_grid, s_grid, refine=method == "gradient", steps=steps
        )
        self.prior_precision_, self.sigma_noise_ = a_best, s_best
        return self

    def __repr__(self) -> str:
        return (
            f"LinearizedLaplace(prior_precision={self.prior_precision!r}, sigma_noise={self.sigma_noise!r})"
        )


def maximize_evidence(
    evidence: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    prior_grid: torch.Tensor,
    sigma_grid: torch.Tensor,
    *,
    refine: bool = True,
    steps: int = 200,
) -> tuple[float, float]:
    """Argmax of ``evidence(α, σ)`` over ``prior_grid`` × ``sigma_grid``, then (``refine``) L-BFGS on (log α, log σ).

    ``evidence`` must broadcast over (A, 1) × (1, S) tensors and be differentiable (e.g. :func:`laplace_evidence` or
    :func:`function_space_evidence` with fixed statistics); σ is refined only when ``sigma_grid`` has more than one
    value. The refined point is kept only if it is finite and not worse than the grid's.

    Returns:
        ``(α, σ)`` as floats.
    """
    values = evidence(prior_grid[:, None], sigma_grid[None, :])
    best = int(torch.argmax(torch.nan_to_num(values, nan=-math.inf)))
    a0, s0 = float(prior_grid[best // len(sigma_grid)]), float(sigma_grid[best % len(sigma_grid)])
    if not refine:
        return a0, s0
    fit_sigma = len(sigma_grid) > 1
    log_a = torch.tensor(math.log(a0), dtype=torch.float64, requires_grad=True)
    log_s = torch.tensor(math.log(s0), dtype=torch.float64, requires_grad=fit_sigma)
    opt = torch.optim.LBFGS(
        [log_a, log_s] if fit_sigma else [log_a], max_iter=steps, line_search_fn="strong_wolfe"
    )

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = -evidence(log_a.exp(), log_s.exp())
        loss.backward()
        return loss

    opt.step(closure)
    a1, s1 = float(log_a.detach().exp()), float(log_s.detach().exp())
    if not (math.isfinite(a1) and math.isfinite(s1) and a1 > 0 and s1 > 0):
        return a0, s0
    t = functools.partial(torch.tensor, dtype=torch.float64)
    with torch.no_grad():
        better = bool(evidence(t(a1), t(s1)) >= evidence(t(a0), t(s0)))
    return (a1, s1) if better else (a0, s0)


def _positive_grid(name: str, values: Sequence[float]) -> torch.Tensor:
    g = torch.as_tensor(list(values), dtype=torch.float64)
    if g.ndim != 1 or g.numel() == 0 or not bool(torch.isfinite(g).all()) or bool((g <= 0).any()):
        raise ValueError(f"{name}: expected a non-empty sequence of finite numbers > 0, got {list(values)!r}")
    return g


__all__ = [
    "DEFAULT_PRIOR_GRID",
    "DEFAULT_SIGMA_GRID",
    "LinearizedLaplace",
    "function_space_evidence",
    "laplace_evidence",
    "maximize_evidence",
]
