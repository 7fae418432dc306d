"""The float32 jitter ladder of solve_psd on ill-conditioned kernels, against float64 solves of the same systems;
and a solve that forms no identity matrix (memory for n = 32k on one GPU)."""

from __future__ import annotations

import pytest
import torch

from tangentlab.predict import JITTER_LADDER, JITTER_LADDER_FLOAT32, default_jitter_ladder, solve_psd


def _hilbert(n: int) -> torch.Tensor:
    i = torch.arange(n, dtype=torch.float64)
    return 1.0 / (i[:, None] + i[None, :] + 1.0)  # PSD, condition number ~1e19 at n = 14


def test_the_ladder_follows_the_dtype():
    assert default_jitter_ladder(torch.float64) == JITTER_LADDER
    assert (
        default_jitter_ladder(torch.float32) == default_jitter_ladder(torch.float16) == JITTER_LADDER_FLOAT32
    )
    assert JITTER_LADDER_FLOAT32[0] == 0.0 and list(JITTER_LADDER_FLOAT32) == sorted(JITTER_LADDER_FLOAT32)


@pytest.mark.parametrize("kind", ["hilbert", "rank_deficient"])
def test_float32_climbs_the_ladder_and_solves_the_jittered_system(kind):
    g = torch.Generator().manual_seed(0)
    if kind == "hilbert":
        k64 = _hilbert(40)
    else:
        a = torch.randn(200, 20, generator=g, dtype=torch.float64)
        k64 = a @ a.T / 20  # rank 20 of 200
    k32 = k64.float()
    rhs = torch.randn(k64.shape[0], 2, generator=g, dtype=torch.float64)
    sol, info = solve_psd("k", k32, rhs.float())
    assert info.solver == "cholesky" and sol.dtype == torch.float32
    scale = float(torch.diagonal(k32).mean())
    rel = [j / scale for j in info.jitters_tried]
    assert rel == pytest.approx(list(JITTER_LADDER_FLOAT32[: len(rel)]), rel=1e-6)
    assert info.jitter > 0 and len(rel) >= 2  # plain float32 Cholesky fails on these kernels
    # the answer solves the system that was solved, (K + jitter I) x = b, to float32's backward error, and is as
    # close to its float64 solution as the system's condition number allows (forward error <= cond x backward)
    jittered = k32.double() + info.jitter * torch.eye(k64.shape[0], dtype=torch.float64)
    x = sol.double()
    backward = float(
        (jittered @ x - rhs).norm() / (torch.linalg.matrix_norm(jittered, 2) * x.norm() + rhs.norm())
    )
    assert backward < 1e-6, backward
    reference = torch.linalg.solve(jittered, rhs)
    forward = float((x - reference).norm() / reference.norm())
    assert forward < float(torch.linalg.cond(jittered)) * 1e-6, forward


def test_float64_solves_are_what_they_were():
    g = torch.Generator().manual_seed(1)
    a = torch.randn(30, 5, generator=g, dtype=torch.float64)
    k, rhs = a @ a.T, torch.randn(30, 1, generator=g, dtype=torch.float64)
    sol, info = solve_psd("k", k, rhs, ridge=0.1)
    eye = torch.eye(30, dtype=torch.float64)
    chol = torch.linalg.cholesky(k + 0.1 * eye + info.jitter * eye)
    assert info.jitters_tried == (0.0,) and torch.equal(sol, torch.cholesky_solve(rhs, chol))  # bit for bit


def test_no_identity_matrix_is_formed(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("solve_psd formed an n x n identity")

    k = _hilbert(12)
    monkeypatch.setattr(torch, "eye", refuse)
    _, info = solve_psd("k", k, torch.ones(12, 1, dtype=torch.float64), ridge=1e-3)
    assert info.solver == "cholesky"
    _, info = solve_psd("k", k, torch.ones(12, 1, dtype=torch.float64), jitter_ladder=(0.0,))
    assert info.solver in ("cholesky", "eigh")
