"""Study ``scaling_arms``: the rest of Vyas, Nakkiran & Bansal 2022 — width scaling, robustness, the evolving eNTK.

The study ``scaling`` compares the data-scaling exponent of trained nets with that of their kernels in one training
setting. This study runs the paper's other three experiments (issue 19, arm 2), reusing ``scaling``'s model
descriptions, kernel regression and linear positive control by import (``scaling``'s parameters and run ids are
untouched):

(a) **width** (``arm: width``): at a fixed number of samples ``n_width``, the test loss against the hidden width for
    the trained net, kernel regression with its eNTK at init, and with the infinite-width NTK, plus the relative
    Frobenius distance ``||Theta_e - Theta_inf||_F / ||Theta_inf||_F`` of the eNTK at init from the infinite NTK on
    the training block, and a linearized net (:func:`tangentlab.train.linearize`, the net's eNTK model trained from
    ``f0`` with the same optimizer, rate and steps). Claim: the net's loss changes with width differently from its
    eNTK's, while the eNTK approaches the infinite NTK as width grows (the infinite NTK is the theory's limit).
(b) **robustness** (``arm: data``): the data-scaling exponent of the net and of the eNTK at init, ``L(n) ~ n^-alpha``
    over ``n_values``, under several training *variants* (learning rates, batch sizes, optimizers). Claim: the net's
    exponent beats the eNTK's under all of them.
(c) **evolution** (the ``arm: data`` runs, at their largest ``n``): kernel regression with the eNTK taken at the
    snapshot steps ``t_0 = 0 < t_1 < ... < t_K = steps`` (``n_snapshots`` evenly spaced steps; the "after-kernel")
    beside the net at those steps, from the same training run. Claim: the after-kernel keeps improving through
    most of training (the eNTK keeps evolving).

A **variant** is a named set of overrides of the training settings and the model (``params.variants``; the grid
axis ``variant`` picks one), so that a grid can vary the learning rate, the batch size and the optimizer one at a
time from a base setting, and can hold positive controls beside the claim's settings: a variant with ``control:
true`` is judged apart and left out of the verdicts. The packaged configs hold two: ``linear`` (``model_kind:
linear``, ``f(x) = W x + b``, trained to its least-squares optimum by one Gauss-Newton step — a model linear in its
parameters is its own eNTK, so its exponent must equal the eNTK's and its after-kernel cannot change) and ``lazy``
(a wide NTK-parametrized net trained by full-batch GD at a small rate, where theory says net = linearized net and the
eNTK stays put).

One run (one variant, one seed) loops over its arm's points (``n_values`` or ``widths``), each a fresh net built
with the run's seed on the first ``n`` examples of the data pool (drawn with data seed ``data.seed + seed``; nested
training sets), tested on the first ``test_size`` test examples; a point whose ``n`` exceeds the pool is left out
(no metrics; counted in ``points_skipped``). Per point (tag ``n<n>`` or ``w<width>``) the metrics are
``mse_<method>_<tag>`` and ``err_<method>_<tag>`` (test MSE ``(1/n_test) sum ||f - y||^2`` and ``1 - accuracy``) for
the methods ``net``, ``entk0``, ``ntk`` (and ``lin`` on the width arm), ``kdist_<tag>`` and ``cond_entk0_<tag>``.
Kernel regression is :func:`tangentlab.studies.scaling.kernel_regression` (converged gradient flow from a zero
function, ridge ``ridge x mean diag``) with per-output kernels (trace eNTK / number of outputs). At the largest ``n``
of the data arm the snapshots add ``mse_entkt_s<step>``, ``mse_nett_s<step>`` (and ``err_``), the kernel distances
``kdist0_s<step> = S(Theta_0, Theta_t)`` and ``kdistT_s<step> = S(Theta_t, Theta_T)`` on the training block (Fort
et al.'s ``S = 1 - <K, K'>_F / (||K||_F ||K'||_F)``, :func:`tangentlab.metrics.kernel_distance`).

The report (:mod:`tangentlab.studies.scaling_arms.report`) gives one figure and one verdict per arm and an overall
verdict; its rules are in that module's docstring.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    field_validator,
    model_validator,
)

from tangentlab.runner.config import RunConfig, TrainConfig
from tangentlab.studies import register
from tangentlab.studies._base import MetricValue, RunOutput, Study
from tangentlab.studies._sections import needs_mse, no_model
from tangentlab.studies.scaling_arms.numerics import PointSpec, run_point, snapshot_steps

Arm = Literal["data", "width"]
TRAIN_FIELDS: tuple[str, ...] = ("optimizer", "learning_rate", "batch_size", "momentum", "steps")
MODEL_FIELDS: tuple[str, ...] = ("model_kind", "width", "depth", "parametrization", "readout_sigma_w")


class Variant(BaseModel):
    """One training setting of the sweep: overrides of ``train`` and of the model parameters (None: as written).

    Attributes:
        arm: ``"data"`` (loss against ``n``: robustness and evolution) or ``"width"`` (loss against width).
        control: a positive control (judged apart from the claim, left out of the verdicts).
        optimizer: ``train.optimizer`` override (``gd``, ``sgd``, ``adam``).
        learning_rate: ``train.learning_rate`` override.
        batch_size: ``train.batch_size`` override (a batch larger than the training set means full batch).
        momentum: ``train.momentum`` override (SGD/GD).
        steps: ``train.steps`` override.
        model_kind: ``"mlp"`` or ``"linear"`` (the linear positive control).
        width: hidden width override (data arm; the width arm loops over ``widths``).
        depth: hidden-layer count override.
        parametrization: ``"ntk"``, ``"standard"`` or ``"mup"``.
        readout_sigma_w: readout ``sigma_w`` override.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    arm: Arm = "data"
    control: bool = False
    optimizer: Literal["gd", "sgd", "adam"] | None = None
    learning_rate: PositiveFloat | None = None
    batch_size: PositiveInt | None = None
    momentum: NonNegativeFloat | None = None
    steps: PositiveInt | None = None
    model_kind: Literal["mlp", "linear"] | None = None
    width: PositiveInt | None = None
    depth: PositiveInt | None = None
    parametrization: Literal["ntk", "standard", "mup"] | None = None
    readout_sigma_w: PositiveFloat | None = None


class ScalingArmsParams(BaseModel):
    """Parameters of the ``scaling_arms`` study.

    Attributes:
        variant: the name of this run's entry of ``variants`` (the usual grid axis).
        variants: named training settings (:class:`Variant`); the default is one data-arm setting as written.
        n_values: training-set sizes of the data arm (the first ``n`` of the pool; nested).
        widths: hidden widths of the width arm.
        n_width: training-set size of the width arm.
        test_size: at most this many test examples (the first of the test split).
        model_kind: ``"mlp"`` (``depth`` x [Dense(width), ReLU] and a Dense readout) or ``"linear"``.
        width: hidden width of the data arm.
        depth: hidden layers.
        parametrization: ``"ntk"``, ``"standard"`` or ``"mup"`` (see :mod:`tangentlab.arch`).
        readout_sigma_w: ``sigma_w`` of the readout (small: the net's random function at init adds little to its
            test loss; kernel regression with a relative ridge does not see the scale).
        ridge: kernel-regression ridge as a fraction of the mean diagonal of the training kernel.
        n_snapshots: snapshot steps (evenly spaced from 0 to ``steps``, both included) at which the after-kernel is
            taken, at the largest ``n`` of the data arm; 0: none.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    variant: str = "base"
    variants: dict[str, Variant] = Field(default_factory=lambda: {"base": Variant()})
    n_values: tuple[PositiveInt, ...] = (32, 64, 128, 256)
    widths: tuple[PositiveInt, ...] = (32, 64, 128, 256, 512)
    n_width: PositiveInt = 256
    test_size: PositiveInt = 1000
    model_kind: Literal["mlp", "linear"] = "mlp"
    width: PositiveInt = 256
    depth: PositiveInt = 2
    parametrization: Literal["ntk", "standard", "mup"] = "standard"
    readout_sigma_w: PositiveFloat = 0.1
    ridge: float = Field(default=1e-6, ge=0)
    n_snapshots: NonNegativeInt = 5

    @field_validator("n_values", "widths")
    @classmethod
    def _sorted(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value:
            raise ValueError("expected at least one value")
        return tuple(sorted(set(value)))

    @field_validator("n_snapshots")
    @classmethod
    def _two_or_none(cls, value: int) -> int:
        if value == 1:
            raise ValueError("expected 0 (no snapshots) or at least 2 (the init and the end of training)")
        return value

    @model_validator(mode="after")
    def _known_variant(self) -> ScalingArmsParams:
        if self.variant not in self.variants:
            raise ValueError(
                f"variant: {self.variant!r} is not a key of variants; choices: {', '.join(sorted(self.variants))}"
            )
        return self


def resolved(p: ScalingArmsParams, train: TrainConfig) -> tuple[Variant, ScalingArmsParams, TrainConfig]:
    """This run's variant, and the params and training settings with its overrides applied."""
    v = p.variants[p.variant]
    model = {k: getattr(v, k) for k in MODEL_FIELDS if getattr(v, k) is not None}
    fit = {k: getattr(v, k) for k in TRAIN_FIELDS if getattr(v, k) is not None}
    return v, p.model_copy(update=model), TrainConfig.model_validate({**train.model_dump(), **fit})


@register
class ScalingArmsStudy(Study):
    """Width scaling, robustness and the evolving eNTK (Vyas, Nakkiran & Bansal 2022); see the module docstring."""

    name: ClassVar[str] = "scaling_arms"
    title: ClassVar[str] = (
        "Scaling, the other arms: width, robustness to training settings, and the eNTK as training goes on"
    )
    citation: ClassVar[str] = (
        "Vyas, Nakkiran & Bansal 2022, Limitations of the NTK for Understanding Generalization in Deep Learning "
        "(arXiv 2206.10012; TMLR 2023 as Empirical Limitations of the NTK for Understanding Scaling Laws in Deep "
        "Learning)"
    )
    claim: ClassVar[str] = (
        "(a) As width grows at fixed n, the eNTK at init approaches the infinite-width NTK, while the trained net's "
        "test loss changes with width differently from its eNTK's; (b) the net's data-scaling exponent beats the "
        "eNTK's under every learning rate, batch size and optimizer used in practice; (c) the eNTK keeps changing "
        "through most of training: kernel regression with the eNTK taken at step t (the after-kernel) keeps "
        "improving until late in training (Vyas et al. 2022)."
    )
    Params: ClassVar[type[BaseModel]] = ScalingArmsParams
    sections: ClassVar[frozenset[str]] = frozenset({"data", "train"})

    def run(self, config: RunConfig, *, device: str = "cpu") -> RunOutput:
        """Every point of this run's arm: train the net, solve its kernel regressions, take its snapshots."""
        p0 = ScalingArmsParams.model_validate(config.params)
        no_model(config.model, self.name, "params.model_kind")
        needs_mse(config.train.loss, self.name, "kernel regression's loss")
        variant, p, tc = resolved(p0, config.train)
        data = config.data.model_copy(update={"seed": config.data.seed + config.seed})
        ds = data.load(shape="flat")
        if not ds.y_train.dtype.is_floating_point:
            raise ValueError(
                "data.target: the scaling_arms study regresses targets with MSE; use 'onehot' or 'centered'"
            )
        pool = ds.x_train.shape[0]
        if variant.arm == "data":
            points = [(f"n{n}", n, p.width) for n in p.n_values]
        else:
            points = [(f"w{w}", p.n_width, w) for w in p.widths]
        kept = [pt for pt in points if pt[1] <= pool]
        m: dict[str, MetricValue] = {
            "status": "completed",
            "arm": variant.arm,
            "control": variant.control,
            "points_skipped": len(points) - len(kept),
            "trained_by": "gauss_newton" if p.model_kind == "linear" else tc.optimizer,
        }
        if not kept:
            return RunOutput(
                metrics={**m, "status": "skipped", "message": f"every n exceeds the pool ({pool})"}
            )
        n_snap = kept[-1][1] if variant.arm == "data" and p.model_kind != "linear" else None
        m["snapshot_n"] = n_snap
        n_diverged = 0
        for tag, n, width in kept:
            spec = PointSpec(
                tag=tag,
                n=n,
                width=width,
                depth=p.depth,
                model_kind=p.model_kind,
                parametrization=p.parametrization,
                readout_sigma_w=p.readout_sigma_w,
                ridge=p.ridge,
                test_size=p.test_size,
                linearized=variant.arm == "width" and p.model_kind != "linear",
                snapshots=snapshot_steps(tc.steps, p.n_snapshots) if n == n_snap else (),
            )
            batch = None if tc.optimizer == "gd" else tc.batch_size
            if tc.optimizer == "sgd":
                batch = batch or n  # SGD needs a batch size: none written means full batch
            fit_args: dict[str, Any] = tc.fit_kwargs(
                batch_size=None if batch is None else min(batch, n), seed=config.seed, eval_every=tc.steps
            )
            point = run_point(spec, ds, fit_args, seed=config.seed, device=device)
            n_diverged += bool(point.pop(f"diverged_{tag}", False))
            m.update(point)
        m["points_diverged"] = n_diverged
        return RunOutput(metrics=m)


__all__ = ["MODEL_FIELDS", "TRAIN_FIELDS", "ScalingArmsParams", "ScalingArmsStudy", "Variant", "resolved"]
