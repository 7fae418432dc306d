"""The one divergence rule every training run and every study uses.

A training run has **diverged** when, over the losses recorded so far (``losses``, evaluated at increasing steps;
``initial`` is the loss at step 0):

1. a loss is not finite (NaN or ±inf); or
2. a loss exceeds ``FACTOR`` (1e3) times the initial loss; or
3. the loss is still growing at the end: each of the last ``WINDOW`` (5) evaluations is above the previous one and
   the last is at least ``GROWTH`` (2) times the first of them.

Why ``FACTOR = 1e3``: on MSE, gradient descent with a step above ``2 / lambda_max`` of the (empirical) NTK multiplies
the error along the top eigendirection by ``|1 - eta lambda_max| > 1`` every step, so the loss grows geometrically
and passes 1e3 times its start within tens of steps, while a run that converges never climbs that far above its
initial loss (catapult dynamics below ``4 / lambda_max`` peak far lower). The previous threshold, 1e8, let a
``lazy`` run at ``lr_fraction: 2.1`` end with a linearized test MSE of ~6e7 recorded as ``completed``.

Rule 3 only looks at the end of the history, so a transient rise that the run recovers from (a catapult, Adam's
early bumps) is not divergence; a run stopped while its loss is still doubling is.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Literal

#: A loss above this multiple of the initial loss is divergence.
FACTOR = 1e3
#: The number of final evaluations rule 3 looks at.
WINDOW = 5
#: Rule 3: growth factor over the last ``WINDOW`` evaluations (each one above the previous) that is divergence.
GROWTH = 2.0

Outcome = Literal["diverged", "ok"]


def reason(losses: Sequence[float], initial: float, *, factor: float = FACTOR) -> str | None:
    """Why ``losses`` count as diverged under the rule above, or None when they do not.

    Args:
        losses: losses at increasing steps (the initial one may be included).
        initial: the loss at step 0 (a non-positive or non-finite value makes rule 2 compare with 1e-12).
        factor: the multiple of the initial loss of rule 2 (``FACTOR`` unless a caller documents otherwise).
    """
    reference = initial if math.isfinite(initial) and initial > 1e-12 else 1e-12
    for value in losses:
        if not math.isfinite(value):
            return f"loss is {value}"
        if value > factor * reference:
            return f"loss {value:.3e} exceeded {factor:g} x the initial loss {initial:.3e}"
    tail = [float(v) for v in losses[-WINDOW:]]
    rising = len(tail) == WINDOW and all(b > a for a, b in itertools.pairwise(tail))
    if rising and tail[-1] >= GROWTH * tail[0]:
        return f"loss grew from {tail[0]:.3e} to {tail[-1]:.3e} over the last {WINDOW} evaluations"
    return None


def classify(losses: Sequence[float], initial: float) -> Outcome:
    """``"diverged"`` when :func:`reason` finds a reason, else ``"ok"``."""
    return "ok" if reason(losses, initial) is None else "diverged"


def status(*diverged: bool) -> Literal["diverged", "completed"]:
    """A study run's ``status`` metric: ``"diverged"`` if any of its trainings diverged, else ``"completed"``."""
    return "diverged" if any(diverged) else "completed"
