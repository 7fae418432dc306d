"""Kernel angle, velocity and centred distance against closed forms (issue 17, items 1 and 2)."""

from __future__ import annotations

import math

import pytest
import torch

from tangentlab.metrics import kernel_angle, kernel_distance, kernel_velocity

LOG_STEPS = (0, 1, 3, 10, 30, 100, 300, 1000, 3000)


def _orthonormal_pair(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two symmetric (n, n) matrices, orthonormal in the Frobenius inner product (A positive definite)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, n, generator=g, dtype=torch.float64)
    a = x @ x.T + n * torch.eye(n, dtype=torch.float64)
    y = torch.randn(n, n, generator=g, dtype=torch.float64)
    b = y + y.T
    a = a / torch.linalg.vector_norm(a)
    b = b - (a * b).sum() * a
    return a, b / torch.linalg.vector_norm(b)


def _rotating(a: torch.Tensor, b: torch.Tensor, angle: float, scale: float = 1.0) -> torch.Tensor:
    """The kernel turned by ``angle`` (radians) from ``a`` towards ``b`` in their plane, times ``scale``."""
    return scale * (math.cos(angle) * a + math.sin(angle) * b)


def test_velocity_is_constant_for_a_kernel_turning_at_constant_speed_on_log_spaced_steps() -> None:
    a, b = _orthonormal_pair(6, seed=0)
    omega = 1e-3  # radians per step: at most 2 radians between the last two snapshots
    # The norm changes too (velocity is scale-free): the kernel grows 10x over training.
    kernels = [_rotating(a, b, omega * t, scale=1 + 3e-3 * t) for t in LOG_STEPS]
    v = kernel_velocity(kernels, LOG_STEPS)
    assert v.shape == (len(LOG_STEPS) - 1,)
    assert float(v.max() / v.min()) < 1.10  # the acceptance criterion of issue 17
    torch.testing.assert_close(v, torch.full_like(v, omega), rtol=1e-9, atol=0)


def test_velocity_shows_a_fourfold_speed_up_as_fourfold() -> None:
    a, b = _orthonormal_pair(5, seed=1)
    steps = (0, 1, 3, 10, 30, 100, 101, 103, 110, 130, 200)
    omega = 1e-3

    def angle(t: float) -> float:  # speed omega until step 100, then 4 omega
        return omega * t if t <= 100 else omega * 100 + 4 * omega * (t - 100)

    v = kernel_velocity([_rotating(a, b, angle(t)) for t in steps], steps)
    before, after = v[:5], v[5:]
    torch.testing.assert_close(before, torch.full_like(before, omega), rtol=1e-9, atol=0)
    torch.testing.assert_close(after, torch.full_like(after, 4 * omega), rtol=1e-9, atol=0)


@pytest.mark.parametrize("phi", [1e-9, 1e-5, 0.3, 1.5, 3.0])
def test_kernel_angle_is_the_angle_in_the_frobenius_plane(phi: float) -> None:
    a, b = _orthonormal_pair(4, seed=2)
    got = kernel_angle(_rotating(a, b, 0.0, scale=2.0), _rotating(a, b, phi, scale=0.5))
    assert got == pytest.approx(phi, rel=1e-9)
    # distance S = 1 - cos(phi); at tiny angles only the chord form keeps the angle's digits
    if phi > 1e-4:
        assert kernel_distance(a, _rotating(a, b, phi)) == pytest.approx(1 - math.cos(phi), rel=1e-9)


def test_kernel_angle_rejects_zero_and_mismatched_kernels() -> None:
    a, _ = _orthonormal_pair(3, seed=3)
    with pytest.raises(ValueError, match="expected non-zero kernels"):
        kernel_angle(a, torch.zeros_like(a))
    with pytest.raises(ValueError, match=r"kernel_b: expected shape \(3, 3\) like kernel_a"):
        kernel_angle(a, torch.eye(2, dtype=torch.float64))


def test_centered_distance_ignores_a_shared_constant_block() -> None:
    """A large constant block (bias gradients in deep ordered nets) hides the change; centring removes it."""
    a, b = _orthonormal_pair(8, seed=4)
    ones = torch.ones(8, 8, dtype=torch.float64)
    k0, k1 = 100.0 * ones + a, 100.0 * ones + b
    assert kernel_distance(k0, k1) < 1e-3
    h = torch.eye(8, dtype=torch.float64) - ones / 8
    ha, hb = h @ a @ h, h @ b @ h
    cos = float((ha * hb).sum() / (torch.linalg.vector_norm(ha) * torch.linalg.vector_norm(hb)))
    assert kernel_distance(k0, k1, centered=True) == pytest.approx(1 - cos, rel=1e-10)
    assert kernel_angle(k0, k1, centered=True) == pytest.approx(math.acos(cos), rel=1e-10)
    assert kernel_distance(k0, k1, centered=True) > 0.5


def test_centered_distance_of_multi_output_kernels_centres_the_sample_axes() -> None:
    g = torch.Generator().manual_seed(5)
    ka = torch.randn(5, 5, 2, 2, generator=g, dtype=torch.float64)
    kb = torch.randn(5, 5, 2, 2, generator=g, dtype=torch.float64)
    h = torch.eye(5, dtype=torch.float64) - 1.0 / 5
    ca = torch.einsum("ij,jkab,kl->ilab", h, ka, h)
    cb = torch.einsum("ij,jkab,kl->ilab", h, kb, h)
    want = 1 - float((ca * cb).sum() / (torch.linalg.vector_norm(ca) * torch.linalg.vector_norm(cb)))
    assert kernel_distance(ka, kb, centered=True) == pytest.approx(want, rel=1e-12)
    with pytest.raises(ValueError, match="centered"):
        kernel_distance(
            torch.ones(3, 4, dtype=torch.float64), torch.ones(3, 4, dtype=torch.float64), centered=True
        )
    with pytest.raises(ValueError, match="zero kernel after centring"):
        kernel_distance(
            torch.ones(3, 3, dtype=torch.float64), 2 * torch.eye(3, dtype=torch.float64), centered=True
        )
