"""Tests of the ``dispersion`` study's phases (the gradient gain chi against independent integrals, sigmoid's edge of
chaos) and of its off-diagonal statistics (Seleznova & Kutyniok's Θ(x_0, x_r) / Θ(x_0, x_0))."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate, optimize
from scipy.special import erf, expit

from tangentlab import arch
from tangentlab.runner.config import RunConfig
from tangentlab.studies import ResultRow, get_study
from tangentlab.studies.dispersion import (
    DispersionParams,
    description,
    normalized_offdiag,
    seleznova_inputs,
)
from tangentlab.studies.dispersion.kernels import gradient_gain, kernel_variants, sample_dense_ntk
from tangentlab.studies.dispersion.offdiag import offdiag_cells, offdiag_numbers
from tangentlab.studies.dispersion.report import phase

# numpy versions of the activations and their derivatives: the reference never calls the library's torch functions
REF = {
    "sigmoid": (expit, lambda z: expit(z) * (1 - expit(z))),
    "tanh": (np.tanh, lambda z: 1 - np.tanh(z) ** 2),
    "erf": (erf, lambda z: 2 / math.sqrt(math.pi) * np.exp(-z * z)),
}
LIB = {"sigmoid": arch.Sigmoid(), "tanh": arch.Tanh(), "erf": arch.Erf()}


def _expect(fn, q: float) -> float:
    """E[fn(z)], z ~ N(0, q), by adaptive quadrature (scipy.integrate.quad) in z."""

    def f(z):
        return fn(z) * math.exp(-z * z / (2 * q)) / math.sqrt(2 * math.pi * q)

    s = math.sqrt(q)
    return sum(
        integrate.quad(f, a, b, epsabs=1e-14, epsrel=1e-12, limit=400)[0]
        for a, b in [(-40 * s, -1.0), (-1.0, 0.0), (0.0, 1.0), (1.0, 40 * s)]
    )


def _reference_chi(act: str, sw2: float) -> float:
    """chi at the fixed point q* = sw2 E[phi^2](q*) (sigma_b = 0), q* found by Brent's method (not by iteration)."""
    phi, dphi = REF[act]
    q = optimize.brentq(lambda q: sw2 * _expect(lambda z: phi(z) ** 2, q) - q, 1e-3, sw2, xtol=1e-12)
    return sw2 * _expect(lambda z: dphi(z) ** 2, q)


@pytest.mark.parametrize(
    ("act", "sw2"),
    [
        ("sigmoid", 4.0),
        ("sigmoid", 120.0),
        ("sigmoid", 400.0),
        ("tanh", 3.0),
        ("tanh", 40.0),
        ("erf", 2.0),
        ("erf", 40.0),
    ],
)
def test_chi_matches_an_adaptive_integral(act, sw2):
    """At large q* a fixed Gauss–Hermite rule missed sigmoid's narrow phi'^2 (chi 0.61 instead of 1.93 at 400)."""
    a = LIB[act]
    chi = gradient_gain(a.phi, a.derivative, sw2, 0.0, q0=sw2 / 100)[1]
    assert chi == pytest.approx(_reference_chi(act, sw2), rel=1e-7)


def test_sigmoid_edge_of_chaos_against_an_independent_integral():
    """sigma_b = 0: sigmoid's chi <= sigma_w^2 / 16 (phi' <= 1/4), and chi = 1 at sigma_w^2 ~ 103, far beyond 16."""
    a = LIB["sigmoid"]

    def lib(sw2):
        return gradient_gain(a.phi, a.derivative, sw2, 0.0, q0=sw2 / 100)[1]

    ref_boundary = optimize.brentq(lambda s: _reference_chi("sigmoid", s) - 1, 50.0, 200.0, xtol=1e-6)
    lib_boundary = optimize.brentq(lambda s: lib(s) - 1, 50.0, 200.0, xtol=1e-6)
    assert lib_boundary == pytest.approx(ref_boundary, rel=1e-5)
    assert 100 < lib_boundary < 106
    for sw2 in (8.0, 16.0, 64.0, 150.0):
        assert lib(sw2) < sw2 / 16
    assert phase(lib(50.0)) == "ordered" and phase(lib(103.0)) == "EOC" and phase(lib(150.0)) == "chaotic"


def test_relu_chi_is_half_sigma_w2_at_every_q():
    relu = arch.ReLU()
    for sw2, q0 in [(1.0, 0.3), (2.0, 5.0), (6.0, 0.01)]:
        assert gradient_gain(relu.phi, relu.derivative, sw2, 0.0, q0=q0)[1] == pytest.approx(
            sw2 / 2, rel=1e-9
        )


def test_normalized_offdiag_known_answer():
    head = np.array([[2.0, 1.0, 0.0], [4.0, 4.0, 2.0]])  # per-init ratios: [1, .5, 0] and [1, 1, .5]
    out = normalized_offdiag(head, "k")
    np.testing.assert_allclose(out["norm_mean_r_k"], [1.0, 0.75, 0.25])
    np.testing.assert_allclose(out["norm_std_r_k"], [0.0, 0.25, 0.25])


@pytest.mark.parametrize("kernel", ["ntk", "standard"])
def test_normalized_kernel_matches_infinite_width_and_concentrates(kernel):
    """Wide ReLU nets at the EOC, depth 2: the Monte Carlo mean of Θ(x_0, x_r)/Θ(x_0, x_0) equals the infinite-width
    ratio (both parametrizations' kernels), and its std over inits shrinks like width^(-1/2)."""
    gen = torch.Generator().manual_seed(0)
    xs = seleznova_inputs(30, 1.0, gen)
    relu = arch.ReLU()
    stds = []
    for width in (32, 512):
        parts = sample_dense_ntk(
            [width] * 2,
            xs,
            n_nets=200,
            sigma_w2=2.0,
            sigma_b2=0.0,
            parametrization="ntk",
            phi=relu.phi,
            dphi=relu.derivative,
            generator=gen,
        )
        k = kernel_variants(parts, [30, width, width], 2.0, 0.0)[kernel][:, 0, :].numpy()
        stds.append(normalized_offdiag(k, kernel)[f"norm_std_r_{kernel}"][5])
    p = DispersionParams(sigma_w2=2.0, depth=2, width=512)
    inf = description(p).kernel(xs[:1], xs, parametrization=kernel).ntk[0].numpy()
    mean = normalized_offdiag(k, kernel)[f"norm_mean_r_{kernel}"]
    np.testing.assert_allclose(mean, inf / inf[0], atol=0.01)
    assert 0.15 < stds[1] / stds[0] < 0.45  # sqrt(32 / 512) = 0.25


def _row(tmp_path, activation: str, sw2: float, depth: int) -> ResultRow:
    config = RunConfig(
        study="dispersion",
        data={"name": "synthetic", "n_train": 8, "n_test": 4, "options": {"input_dim": 10}},
        train={"steps": 1},
        params={"width": 16, "depth": depth, "activation": activation, "sigma_w2": sw2, "n_inits": 600}
        | {"input_dim": 10, "trainability": False},
    )
    out = get_study("dispersion").run(config)
    folder = tmp_path / config.run_id
    folder.mkdir()
    for name, arr in out.artifacts.items():
        np.save(folder / f"{name}.npy", arr)
    return ResultRow(config.run_id, config, "done", out.metrics, folder)


def test_offdiag_test_on_real_runs(tmp_path):
    """Sigmoid ordered (sigma_w^2 = 16) vs chaotic (400): the normalized off-diagonal spreads with depth only in the
    chaotic phase, and the report's off-diagonal numbers say so."""
    rows = [_row(tmp_path, "sigmoid", sw2, d) for sw2 in (16.0, 400.0) for d in (2, 6)]
    typed = [r.typed(DispersionParams) for r in rows]
    cells, missing = offdiag_cells(typed, "standard", 16, 0.0, phase)
    assert missing == 0
    nums = offdiag_numbers(cells, "standard")
    by_sw = {s["sigma_w2"]: s for s in nums["settings"]}
    assert by_sw[16.0]["phase"] == "ordered" and not by_sw[16.0]["grows"]
    assert by_sw[400.0]["phase"] == "chaotic" and by_sw[400.0]["grows"]
    assert nums["judged"] == {"sigmoid": [2, 2]} and nums["supported"] is True
    section = get_study("dispersion").report(rows, tmp_path / "figures")
    assert (tmp_path / "figures" / "dispersion_offdiag.png").exists()
    assert section.to_dict()["numbers"]["offdiag"]["supported"] is True
