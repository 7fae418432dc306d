import math

import numpy as np
import pytest

from tangentlab.report import fit_power_law


@pytest.mark.parametrize("exponent", [-0.5, -1.0, 0.0, 0.7])
def test_recovers_exact_exponent(exponent):
    x = np.array([64.0, 128, 256, 512, 1024])
    slope, intercept, stderr = fit_power_law(x, 3.0 * x**exponent)
    assert slope == pytest.approx(exponent, abs=1e-12)
    assert intercept == pytest.approx(math.log(3.0), abs=1e-12)
    assert stderr == pytest.approx(0.0, abs=1e-10)


def test_noisy_exponent_within_stderr_and_stderr_matches_closed_form():
    rng = np.random.default_rng(0)
    x = np.repeat([64.0, 256, 1024, 4096], 3)
    y = 2.0 * x**-0.5 * np.exp(0.05 * rng.standard_normal(x.size))
    fit = fit_power_law(x, y)
    assert abs(fit.slope + 0.5) < 4 * fit.stderr
    # closed form: OLS standard error sqrt(s^2 / Sxx)
    u, v = np.log(x), np.log(y)
    a, b = np.polyfit(u, v, 1)
    s2 = np.sum((v - (a * u + b)) ** 2) / (x.size - 2)
    assert fit.stderr == pytest.approx(math.sqrt(s2 / np.sum((u - u.mean()) ** 2)), rel=1e-10)
    assert fit.slope == pytest.approx(a, rel=1e-10)


def test_two_points_have_nan_stderr():
    assert math.isnan(fit_power_law([1, 10], [1, 0.1]).stderr)


@pytest.mark.parametrize(
    ("x", "y"), [([1, 2], [1, -1]), ([1, 1], [1, 2]), ([1, 2, 3], [1, 2]), ([1, np.nan], [1, 2])]
)
def test_rejects_bad_input(x, y):
    with pytest.raises(ValueError):
        fit_power_law(x, y)
