"""The audit's criteria: what "the kernel regime" means, measured, each with a threshold and the reason for it.

A network is in the kernel (lazy) regime when it trains as its linearization around init does, so that NTK theory
describes it: the tangent kernel is (nearly) deterministic at init (Jacot et al. 2018, arXiv 1806.07572) and stays
(nearly) constant during training, the parameters move little relative to their size and the network's outputs
track the linearized model's (Lee et al. 2019, arXiv 1902.06720, Thm. 2.1; Chizat, Oyallon & Bach 2019, arXiv
1812.07956), and so kernel regression with the initial NTK predicts what the trained network predicts.

Each criterion compares one measured number with a threshold (passes iff ``value < threshold``). The defaults are
the audit's choice, not the papers': 0.1 for every relative quantity ("changes by less than 10 %"), the matching
angle ``arccos(1 - 0.1) ~ 0.45`` rad for the kernel's projected turn, and 0.02 for the gap in test error (two points
of error rate). Every threshold is an option (:class:`Thresholds`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

RegimeVerdict = Literal["kernel regime", "not kernel regime"]
KERNEL_REGIME: RegimeVerdict = "kernel regime"
NOT_KERNEL_REGIME: RegimeVerdict = "not kernel regime"


@dataclass(frozen=True)
class Thresholds:
    """The largest value of each criterion that still counts as the kernel regime.

    Attributes:
        kernel_spread: seed-to-seed relative standard deviation of the eNTK at init (Frobenius norm),
            ``sqrt(sum_s ||Theta_s - mean||_F^2 / (k-1)) / ||mean||_F`` on the probe. Default 0.1.
        kernel_distance: Fort et al. 2020's distance from init ``S(0, T) = 1 - cos(Theta_0, Theta_T)``. Default 0.1.
        kernel_velocity: the final kernel velocity (angle per step, :func:`tangentlab.metrics.kernel_velocity`)
            times the run length, ``v(T) * T``: the angle (radians) the kernel would turn in another run of the
            same length at its final speed. Default 0.45 ~ ``arccos(1 - 0.1)``, the angle at which ``S`` reaches
            the ``kernel_distance`` default (the velocity was ``S / dt`` before issue 17, with threshold 0.1 in
            units of ``S``; an angle is linear in time, ``S`` is not).
        param_change: ``||theta_T - theta_0|| / ||theta_0||``. Default 0.1.
        function_gap: ``max_t ||f_t - f_t^lin|| / ||f_t^lin||`` on the test inputs. Default 0.1.
        error_gap: ``|err_net - err_ntk|`` between the trained net and NTK regression with the init eNTK: test error
            rates for classification, relative test MSE ``|mse_net - mse_ntk| / mse_ntk`` for regression.
            Default 0.02.
    """

    kernel_spread: float = 0.1
    kernel_distance: float = 0.1
    kernel_velocity: float = 0.45
    param_change: float = 0.1
    function_gap: float = 0.1
    error_gap: float = 0.02

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ValueError(f"thresholds.{name}: expected a finite number > 0, got {value!r}")


@dataclass(frozen=True)
class Criterion:
    """One criterion's outcome.

    Attributes:
        name: short identifier (a field of :class:`Thresholds`).
        title: what is measured, in words.
        value: the measured value (NaN if it could not be measured, e.g. training diverged).
        threshold: passes iff ``value < threshold``.
        why: one line: why this threshold marks the kernel regime, with the paper it comes from.
    """

    name: str
    title: str
    value: float
    threshold: float
    why: str

    @property
    def passed(self) -> bool:
        """Whether the value is finite and below the threshold."""
        return math.isfinite(self.value) and self.value < self.threshold

    @property
    def verdict(self) -> RegimeVerdict:
        """``"kernel regime"`` if passed, else ``"not kernel regime"``."""
        return KERNEL_REGIME if self.passed else NOT_KERNEL_REGIME

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record (a NaN value becomes None)."""
        value = self.value if math.isfinite(self.value) else None
        return {**asdict(self), "value": value, "passed": self.passed, "verdict": self.verdict}


#: name -> (title, why).
DESCRIPTIONS: dict[str, tuple[str, str]] = {
    "kernel_spread": (
        "eNTK spread over init seeds (relative std, Frobenius)",
        "in the kernel regime the NTK at init is deterministic (Jacot et al. 2018); its seed-to-seed fluctuations "
        "grow like exp(depth/width) (Hanin & Nica 2020), and a kernel that depends on the seed is not the NTK",
    ),
    "kernel_distance": (
        "kernel distance from init S(0,T) = 1 - cos(Θ_0, Θ_T)",
        "the NTK stays constant during training in the kernel regime (Jacot et al. 2018; Lee et al. 2019, "
        "Thm. 2.1); S is Fort et al. 2020's scale-free distance",
    ),
    "kernel_velocity": (
        "final kernel velocity × steps, v(T)·T (radians)",
        "outside the kernel regime the kernel keeps moving at a roughly constant velocity after a short "
        "transient (Fort et al. 2020); in it the velocity decays to zero",
    ),
    "param_change": (
        "relative parameter change ‖θ_T − θ_0‖ / ‖θ_0‖",
        "lazy training: the parameters barely move relative to their size, which keeps the linearization valid "
        "(Lee et al. 2019, Fig. 1; Chizat et al. 2019)",
    ),
    "function_gap": (
        "net vs linearized model, max_t ‖f_t − f_t^lin‖ / ‖f_t^lin‖ (test)",
        "the network's outputs follow its first-order Taylor model at init for all t (Lee et al. 2019, Thm. 2.1)",
    ),
    "error_gap": (
        "test error gap, trained net vs NTK regression with the init eNTK",
        "then kernel regression with the init NTK predicts what the trained net predicts (Lee et al. 2019, "
        "eq. 9; Arora et al. 2019), so their test errors agree",
    ),
}


def judge(values: dict[str, float], thresholds: Thresholds) -> tuple[Criterion, ...]:
    """One :class:`Criterion` per threshold, from the measured ``values`` (missing → NaN, which fails)."""
    limits = asdict(thresholds)
    return tuple(
        Criterion(name, title, float(values.get(name, math.nan)), float(limits[name]), why)
        for name, (title, why) in DESCRIPTIONS.items()
    )


def overall(criteria: tuple[Criterion, ...]) -> RegimeVerdict:
    """``"kernel regime"`` iff every criterion passes."""
    return KERNEL_REGIME if all(c.passed for c in criteria) else NOT_KERNEL_REGIME
