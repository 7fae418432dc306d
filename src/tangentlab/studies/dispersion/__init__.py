"""Study ``dispersion``: how much does the NTK of a finite network at initialization vary from seed to seed?

Claims tested:

- Seleznova & Kutyniok 2022 ("Analyzing finite neural networks: can we trust neural tangent kernel theory?",
  MSML 2022, arXiv 2012.04477): the dispersion of the NTK at initialization over random inits grows exponentially
  with depth at the edge of chaos (EOC) and in the chaotic phase, and not in the ordered phase.
- Hanin & Nica 2020 ("Finite depth and width corrections to the neural tangent kernel", ICLR 2020,
  arXiv 1909.05989): for a ReLU net in NTK parametrization with He init (sigma_w^2 = 2, sigma_b = 0), depth d and
  hidden width n, ``E[K(x,x)^2] / E[K(x,x)]^2 ≃ exp(5 beta)``, ``beta = d / n`` (up to universal constants: the
  exponent is the claim).

One run (one grid point: ``sigma_w2``, ``sigma_b2``, ``depth``, ``width``, ``activation``, ``parametrization``;
one seed = one batch of ``n_inits`` nets):

1. Inputs (Seleznova & Kutyniok's code): two random unit vectors ``x, y`` in dimension ``input_dim`` (drawn from
   the run's seed; ``y`` is orthogonalised against ``x`` so that ``r`` is exactly the cosine between ``x_0`` and
   ``x_r`` — their code leaves the O(1/sqrt(input_dim)) overlap) scaled to norm ``input_norm``;
   ``x_r = sqrt(1 - r^2) y + r x`` for ``r = 1.0, 0.9, ..., 0.0`` and ``x_0 = x``. The weight law is rotation
   invariant, so one pair per run gives the same kernel law as a fresh pair per init.
2. Nets: ``input_dim -> [width] * depth -> 1``, activation after every hidden layer, every layer (readout
   included) with ``sigma_w^2 = sigma_w2`` and ``sigma_b^2 = sigma_b2``. The ``n_inits`` nets are drawn in
   batches and their NTKs computed together by
   :func:`tangentlab.studies.dispersion.kernels.batched_dense_ntk` (exact per net; tested against
   :func:`tangentlab.empirical_ntk` on :mod:`tangentlab.arch` builds). Forward passes have the same law in NTK and
   standard parametrization, so every run records four NTKs of the same nets
   (:func:`~tangentlab.studies.dispersion.kernels.kernel_variants`): ``ntk`` (NTK parametrization's own NTK; at
   ``sigma_b = 0`` the biases contribute nothing: Hanin & Nica's weight part ``K_w``), ``standard`` (standard
   parametrization's NTK; its biases are trained even at ``sigma_b = 0`` and count with unit scale — Seleznova &
   Kutyniok's setting), ``ntk_unit_bias`` (``K_w + K_b``, bias gradients with unit scale as in Hanin & Nica's
   ``K``) and ``bias`` (``K_b`` alone). ``params.parametrization`` (default ``"ntk"``) picks the headline kernel:
   the per-``r`` statistics, the infinite-width comparison and the trained net.
3. Metrics: for each kernel and the diagonal ``K(x, x)``: mean, ``E[K^2]/E[K]^2`` (``*_diag_ratio``; its log,
   the "log dispersion"), relative std ``std/mean`` (population std, so ratio = 1 + rel_std^2); for the headline
   kernel the same for ``Θ(x_0, x_r)`` at every ``r`` (artifacts ``r``, ``mean_r``, ``ratio_r``, ``rel_std_r``);
   the infinite-width NTK ``net.kernel(...).ntk`` beside the Monte Carlo mean (``inf_ntk_r``,
   ``mean_over_inf_diag``); for every kernel in ``offdiag_kernels`` the per-init normalized off-diagonal
   ``Θ(x_0, x_r) / Θ(x_0, x_0)``, its mean and std over inits at every ``r`` (artifacts ``norm_mean_r_<kernel>``,
   ``norm_std_r_<kernel>``, metrics ``norm_std_r0.5_<kernel>``, ``norm_std_r0.0_<kernel>``) beside the
   infinite-width value (``inf_norm_r_<kernel>``, for ``ntk`` and ``standard``); the gradient gain
   ``chi = sigma_w2 E[phi'(z)^2]`` at the NNGP fixed point (phase: ordered ``chi < 1``, EOC ``chi = 1``, chaotic
   ``chi > 1``; for sigmoid at ``sigma_b = 0`` the EOC is at ``sigma_w2 ~ 103``, :func:`~.kernels.gradient_gain`). Artifacts ``diag_<kernel>`` keep every init's
   ``K(x, x)`` so the report can bootstrap over inits.
4. Trainability (``train.steps > 0`` with ``trainability: true``): one net built by :mod:`tangentlab.arch` with
   the run's seed and the headline parametrization, trained by full-batch GD (:func:`tangentlab.train.fit`, MSE)
   on ``config.data`` for ``train.steps`` steps at ``eta = lr_fraction * n / lambda_max(Θ_0)``;
   ``train_loss_ratio`` = final / initial training loss.

The report is :mod:`tangentlab.studies.dispersion.report`. Note (PAPERS.md): slopes of ``log E[K^2]/E[K]^2``
below 5 at small beta are a finite-depth effect (one hidden layer: relative variance ``3/n``, not ``5/n``); the
heavy-tailed fourth-moment estimator underestimates ``E[K^2]/E[K]^2`` only beyond beta ~ 0.5; use many inits.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal, cast

import numpy as np
import torch
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    PositiveFloat,
    PositiveInt,
    field_validator,
)

from tangentlab import arch, empirical_ntk, train
from tangentlab.runner.config import RunConfig
from tangentlab.studies import register
from tangentlab.studies._base import MetricValue, RunOutput, Study
from tangentlab.studies.dispersion.kernels import (
    KERNELS,
    dispersion,
    gradient_gain,
    kernel_variants,
    sample_dense_ntk,
)

R_VALUES: tuple[float, ...] = tuple(round(1.0 - 0.1 * i, 1) for i in range(11))
ACTIVATIONS: dict[str, type[arch.Layer]] = {
    "relu": arch.ReLU,
    "tanh": arch.Tanh,
    "erf": arch.Erf,
    "sigmoid": arch.Sigmoid,
}


class DispersionParams(BaseModel):
    """Parameters of the ``dispersion`` study.

    Attributes:
        sigma_w2: weight variance ``sigma_w^2`` of every layer (ReLU, sigma_b = 0: ordered < 2 = EOC < chaotic).
        sigma_b2: bias variance ``sigma_b^2``.
        depth: number of hidden layers ``d``.
        width: units per hidden layer ``n`` (``beta = d / n``).
        activation: ``"relu"``, ``"tanh"``, ``"erf"`` or ``"sigmoid"``.
        parametrization: ``"ntk"`` (Hanin & Nica) or ``"standard"`` (Seleznova & Kutyniok's code): the headline
            kernel; all four kernels are recorded either way (module docstring).
        input_dim: dimension of the inputs (Seleznova & Kutyniok: 100).
        input_norm: norm of ``x`` and ``y`` (Seleznova & Kutyniok: 1).
        n_inits: nets per run (per seed).
        trainability: train one net per run (see the module docstring).
        lr_fraction: GD rate as a fraction of ``n / lambda_max(Θ_0)``.
        offdiag_kernels: kernels whose normalized off-diagonal ``Θ(x_0, x_r) / Θ(x_0, x_0)`` is summarised per
            init (mean and std over inits at every ``r``; Seleznova & Kutyniok's off-diagonal dispersion).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    sigma_w2: PositiveFloat = 2.0
    sigma_b2: NonNegativeFloat = 0.0
    depth: PositiveInt = 10
    width: PositiveInt = 100
    activation: Literal["relu", "tanh", "erf", "sigmoid"] = "relu"
    parametrization: Literal["ntk", "standard"] = "ntk"
    input_dim: PositiveInt = 100
    input_norm: PositiveFloat = 1.0
    n_inits: int = Field(default=500, ge=2)
    trainability: bool = True
    lr_fraction: PositiveFloat = 0.5
    offdiag_kernels: tuple[str, ...] = ("ntk", "standard")

    @field_validator("offdiag_kernels")
    @classmethod
    def _known_kernels(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [name for name in value if name not in KERNELS]
        if unknown:
            raise ValueError(f"unknown kernel(s) {unknown}: expected some of {list(KERNELS)}")
        return value


def description(p: DispersionParams) -> arch.Layer:
    """The net of a run as an :mod:`tangentlab.arch` description."""
    sw, sb = math.sqrt(p.sigma_w2), math.sqrt(p.sigma_b2)
    layers: list[arch.Layer] = []
    for _ in range(p.depth):
        layers += [arch.Dense(p.width, sigma_w=sw, sigma_b=sb), ACTIVATIONS[p.activation]()]
    return arch.serial(*layers, arch.Dense(1, sigma_w=sw, sigma_b=sb))


def seleznova_inputs(input_dim: int, norm: float, generator: torch.Generator) -> torch.Tensor:
    """(11, input_dim): ``x_r = norm (sqrt(1 - r^2) y + r x)`` for ``r`` in :data:`R_VALUES` (``x_0 = x`` first),
    with ``x`` and ``y`` orthonormal and random."""
    if input_dim < 2:
        raise ValueError(f"params.input_dim: expected at least 2, got {input_dim}")
    x = torch.randn(input_dim, generator=generator, dtype=torch.float64)
    x = x / x.norm()
    y = torch.randn(input_dim, generator=generator, dtype=torch.float64)
    y = y - (y @ x) * x
    y = y / y.norm()
    r = torch.tensor(R_VALUES, dtype=torch.float64)[:, None]
    return cast(torch.Tensor, norm * (torch.sqrt(1 - r**2) * y + r * x))


def normalized_offdiag(head: np.ndarray, name: str) -> dict[str, np.ndarray]:
    """Mean and population std over inits of ``Θ(x_0, x_r) / Θ(x_0, x_0)`` (``head``: (n_inits, len(r)), column 0
    the diagonal), as artifacts ``norm_mean_r_<name>`` and ``norm_std_r_<name>``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = head / head[:, :1]
    return {f"norm_mean_r_{name}": ratio.mean(axis=0), f"norm_std_r_{name}": ratio.std(axis=0)}


def _num(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _trainability(p: DispersionParams, config: RunConfig, net_desc: arch.Layer) -> dict[str, MetricValue]:
    ds = config.data.load()
    if ds.y_train.dtype == torch.int64:
        raise ValueError(
            "data.target: the dispersion study regresses targets with MSE; use a regression task"
        )
    x, y = ds.x_train, ds.y_train.reshape(ds.x_train.shape[0], -1)
    if y.shape[1] != 1:
        raise ValueError(
            f"data: expected scalar targets (the nets have one output), got {y.shape[1]} columns"
        )
    net = net_desc.build(
        ds.input_shape, parametrization=p.parametrization, seed=config.seed, dtype=torch.float64
    )
    theta = empirical_ntk(net, x, outputs="trace").to(torch.float64)
    with torch.no_grad():
        loss0 = 0.5 * float(((net(x) - y) ** 2).mean())
    lr = train.spectral_learning_rate(theta, p.lr_fraction)
    res = train.fit(net, x, y, steps=config.train.steps, learning_rate=lr, loss="mse", optimizer="gd")
    ratio = res.final_train_loss / loss0 if loss0 > 0 else math.nan
    return {
        "train_status": "diverged" if res.diverged else "completed",
        "train_learning_rate": lr,
        "train_loss_initial": _num(loss0),
        "train_loss_ratio": None if res.diverged else _num(ratio),
    }


@register
class DispersionStudy(Study):
    """NTK dispersion at initialization (Seleznova & Kutyniok 2022; Hanin & Nica 2020); see the module docstring."""

    name: ClassVar[str] = "dispersion"
    title: ClassVar[str] = "NTK dispersion at initialization across seeds: depth, width and phase"
    citation: ClassVar[str] = (
        "Seleznova & Kutyniok 2022, Analyzing Finite Neural Networks: Can We Trust Neural Tangent Kernel Theory? "
        "(arXiv 2012.04477); Hanin & Nica 2020, Finite Depth and Width Corrections to the Neural Tangent Kernel "
        "(arXiv 1909.05989)"
    )
    claim: ClassVar[str] = (
        "The dispersion of the NTK over random initializations grows exponentially with depth at the edge of chaos "
        "and in the chaotic phase, but not in the ordered phase (Seleznova & Kutyniok 2022). For a ReLU net in NTK "
        "parametrization with He init, E[K(x,x)²]/E[K(x,x)]² ≃ exp(5β) with β = depth/width (Hanin & Nica 2020)."
    )
    Params: ClassVar[type[BaseModel]] = DispersionParams
    # its nets are sampled in batches by its own float64 recursion on the CPU (studies/dispersion/kernels.py)
    cpu_only: ClassVar[bool] = True
    sections: ClassVar[frozenset[str]] = frozenset({"data", "train.steps"})

    def run(self, config: RunConfig, *, device: str = "cpu") -> RunOutput:
        """Draw ``n_inits`` nets at one grid point and measure the spread of their NTKs (module docstring)."""
        p = DispersionParams.model_validate(config.params)
        act: Any = ACTIVATIONS[p.activation]()  # an elementwise layer: .phi and .derivative
        gen = torch.Generator().manual_seed(int(config.seed))
        xs = seleznova_inputs(p.input_dim, p.input_norm, gen)
        widths = [p.width] * p.depth
        parts = sample_dense_ntk(
            widths,
            xs,
            n_nets=p.n_inits,
            sigma_w2=p.sigma_w2,
            sigma_b2=p.sigma_b2,
            parametrization=p.parametrization,
            phi=act.phi,
            dphi=act.derivative,
            generator=gen,
        )
        kernels = kernel_variants(parts, [p.input_dim, *widths], p.sigma_w2, p.sigma_b2)
        q_star, chi = gradient_gain(
            act.phi,
            act.derivative,
            p.sigma_w2,
            p.sigma_b2,
            q0=p.sigma_w2 * p.input_norm**2 / p.input_dim + p.sigma_b2,
        )
        m: dict[str, MetricValue] = {"beta": p.depth / p.width, "chi": chi, "q_star": q_star}
        artifacts: dict[str, np.ndarray] = {"r": np.asarray(R_VALUES)}
        for name in KERNELS:
            diag = kernels[name][:, 0, 0].numpy()
            st = dispersion(diag)
            ratio = float(st.ratio)
            m[f"{name}_diag_mean"] = _num(float(st.mean))
            m[f"{name}_diag_ratio"] = _num(ratio)
            m[f"{name}_diag_log_ratio"] = _num(math.log(ratio)) if ratio > 0 else None
            m[f"{name}_diag_rel_std"] = _num(float(st.rel_std))
            artifacts[f"diag_{name}"] = diag
        head = kernels[p.parametrization][:, 0, :].numpy()  # (n_inits, 11): Θ(x_0, x_r)
        st = dispersion(head)
        inf = description(p).kernel(xs[:1], xs, parametrization=p.parametrization).ntk[0].numpy()
        artifacts.update(mean_r=st.mean, ratio_r=st.ratio, rel_std_r=st.rel_std, inf_ntk_r=inf)
        for i, r in enumerate(R_VALUES):
            if r in (0.5, 0.0):
                m[f"rel_std_r{r:.1f}"] = _num(float(st.rel_std[i]))
                m[f"ratio_r{r:.1f}"] = _num(float(st.ratio[i]))
        for name in p.offdiag_kernels:
            artifacts.update(normalized_offdiag(kernels[name][:, 0, :].numpy(), name))
            if name in ("ntk", "standard"):
                k_inf = inf if name == p.parametrization else None
                if k_inf is None:
                    par = cast(Literal["ntk", "standard"], name)
                    k_inf = description(p).kernel(xs[:1], xs, parametrization=par).ntk[0].numpy()
                artifacts[f"inf_norm_r_{name}"] = k_inf / k_inf[0]
            for r in (0.5, 0.0):
                m[f"norm_std_r{r:.1f}_{name}"] = _num(
                    float(artifacts[f"norm_std_r_{name}"][R_VALUES.index(r)])
                )
        m["inf_ntk_diag"] = _num(float(inf[0]))
        m["mean_over_inf_diag"] = _num(float(st.mean[0] / inf[0])) if inf[0] != 0 else None
        if p.trainability:
            m.update(_trainability(p, config, description(p)))
        return RunOutput(
            metrics=m, artifacts={k: np.asarray(v, dtype=np.float64) for k, v in artifacts.items()}
        )
