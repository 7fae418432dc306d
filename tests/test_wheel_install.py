"""Acceptance: the built wheel, installed into a fresh virtual environment, works from an empty folder.

Skipped unless ``TANGENTLAB_WHEEL_TEST=1`` (``.ci/run`` sets it after ``make test``): it builds the wheel, creates a
venv, installs ``torch==2.13.0`` and the wheel with its ``data`` extra from pip's configured index, then runs
``tangentlab --version``, ``tangentlab configs``, ``tangentlab run quick/dispersion``, ``tangentlab.load_results``
and ``tangentlab report`` in a folder that holds nothing of the repository.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

import tangentlab

REPO = Path(__file__).resolve().parents[1]
TORCH = "torch==2.13.0"

pytestmark = pytest.mark.skipif(
    os.environ.get("TANGENTLAB_WHEEL_TEST") != "1",
    reason="set TANGENTLAB_WHEEL_TEST=1 to build and install the wheel",
)


def _run(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 1800) -> str:
    done = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, (
        f"{' '.join(args)} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )
    return done.stdout


def test_wheel_installs_and_runs_a_packaged_study_from_an_empty_folder(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    timings: dict[str, float] = {}
    start = time.perf_counter()
    dist, source = tmp_path / "dist", tmp_path / "source"
    # build from a clean copy: a checkout's build/ folder may hold files from earlier builds that setuptools reuses
    skip = (".git", "build", "dist", ".venv", "*.egg-info", "__pycache__", "*_cache", "results", "out")
    shutil.copytree(REPO, source, symlinks=True, ignore=shutil.ignore_patterns(*skip))
    _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(source)], tmp_path, env
    )
    (wheel,) = dist.glob("tangentlab-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        meta = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    configs = {n for n in names if n.startswith("tangentlab/configs/") and n.endswith(".yaml")}
    on_disk = {
        f"tangentlab/{p.relative_to(REPO / 'src' / 'tangentlab').as_posix()}"
        for p in (REPO / "src" / "tangentlab" / "configs").rglob("*.yaml")
    }
    assert configs == on_disk and "tangentlab/configs/quick/dispersion.yaml" in configs
    assert "License-Expression: MIT" in meta and f"Version: {tangentlab.__version__}" in meta
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    timings["build"] = time.perf_counter() - start

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], tmp_path, env)
    bin_dir = venv / "bin"
    pip = [str(bin_dir / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    _run([*pip, TORCH], tmp_path, env)
    _run([*pip, f"{wheel}[data]"], tmp_path, env)
    timings["install"] = time.perf_counter() - start - timings["build"]

    empty = tmp_path / "empty"
    empty.mkdir()
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    cli = str(bin_dir / "tangentlab")
    assert _run([cli, "--version"], empty, env).strip() == f"tangentlab {tangentlab.__version__}"
    assert "quick/dispersion" in _run([cli, "configs"], empty, env).split()
    t0 = time.perf_counter()
    _run([cli, "-q", "run", "quick/dispersion", "--out", "out", "--workers", "2"], empty, env)
    timings["run quick/dispersion"] = time.perf_counter() - t0
    code = (
        "import json, tangentlab; df = tangentlab.load_results('out'); "
        "print(json.dumps({'rows': len(df), 'done': int((df.status == 'done').sum()), "
        "'file': tangentlab.__file__, 'columns': list(df.columns)}))"
    )
    loaded = json.loads(_run([str(bin_dir / "python"), "-c", code], empty, env).strip().splitlines()[-1])
    # 160 runs (with the sigmoid chaotic point sigma_w^2 = 150) + 40 depth-1 controls
    assert loaded["rows"] == loaded["done"] == 200
    assert (
        str(venv) in loaded["file"] and str(REPO) not in loaded["file"]
    )  # the installed copy, not the checkout
    assert {"params.depth", "params.activation", "seed", "status"} <= set(loaded["columns"])
    page = Path(_run([cli, "report", "out"], empty, env).strip().splitlines()[-1])
    index = page if page.is_absolute() else empty / page
    html = index.read_text()
    assert "Figure 1." in html and "How to reproduce" in html and "tangentlab run" in html
    figures = empty / "out" / "report" / "figures"
    for png in figures.glob("dispersion_*.png"):
        assert png.with_suffix(".pdf").is_file() and png.with_suffix(".csv").is_file()
    assert sorted(p.name for p in empty.iterdir()) == ["out"]  # nothing else written into the folder
    timings["total"] = time.perf_counter() - start
    print("wheel test timings (s): " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()))
