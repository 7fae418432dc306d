"""Rotated-MNIST tasks of the continual study: the rotation against exact references, the task sequence."""

from __future__ import annotations

import pytest
import torch

from tangentlab.data import load
from tangentlab.studies.continual.tasks import ROTATION_STEP, build_tasks, rotate_images


def test_quarter_turns_are_exact_and_counter_clockwise():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 36, generator=g, dtype=torch.float64)
    images = x.reshape(3, 6, 6)
    for turns in (1, 2, 3):
        got = rotate_images(x, 90.0 * turns).reshape(3, 6, 6)
        torch.testing.assert_close(got, torch.rot90(images, turns, dims=(1, 2)), rtol=0, atol=1e-12)
    torch.testing.assert_close(rotate_images(x, 0.0), x)


def test_the_background_fills_what_leaves_the_frame():
    flat = torch.full((1, 64), 0.7, dtype=torch.float64)
    torch.testing.assert_close(
        rotate_images(flat, 30.0, 0.7), flat, rtol=0, atol=1e-12
    )  # uniform stays uniform
    out = rotate_images(torch.zeros(1, 64, dtype=torch.float64), 45.0, -0.4).reshape(8, 8)
    assert out[0, 0].item() == pytest.approx(-0.4) and out[3, 3].item() == pytest.approx(0.0)
    with pytest.raises(ValueError, match="square single-channel images, got 40 features"):
        rotate_images(torch.zeros(2, 40), 10.0)


def test_rotated_tasks_share_labels_and_turn_by_the_step():
    ds = load("digits", n_train=40, n_test=20)
    tasks = build_tasks(ds, "rotated", n_tasks=3, classes_per_task=2, seed=0)
    assert len(tasks) == 3 and all(t.columns == tuple(range(10)) for t in tasks)
    torch.testing.assert_close(tasks[0].x_train, ds.x_train)
    black = torch.as_tensor(-ds.meta["mean"] / ds.meta["std"], dtype=torch.float64)
    torch.testing.assert_close(tasks[2].x_test, rotate_images(ds.x_test, 2 * ROTATION_STEP, black))
    assert all(torch.equal(t.y_train, tasks[0].y_train) for t in tasks)
    with pytest.raises(ValueError, match="n_tasks: expected an integer >= 2 for rotated tasks"):
        build_tasks(ds, "rotated", n_tasks=None, classes_per_task=2, seed=0)
