"""Helpers for the result-integrity tests: the real ``tangentlab`` command as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TOY = "tests.runner.toy_study:ToyStudy"


def cli_env(tmp_path: Path, *extra_paths: Path) -> dict[str, str]:
    """The environment of a CLI subprocess: this checkout importable, a private hash cache."""
    paths = [str(p) for p in extra_paths] + [str(REPO), os.environ.get("PYTHONPATH", "")]
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(paths),
        "TANGENTLAB_CACHE_DIR": str(tmp_path / "cache"),
    }


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "tangentlab", *args]


def tangentlab(
    *args: str, cwd: Path, env: dict[str, str], timeout: float = 300
) -> subprocess.CompletedProcess:
    """Run ``tangentlab ARGS`` to completion and return it (stdout and stderr as text)."""
    return subprocess.run(command(*args), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return cli_env(tmp_path, tmp_path)
