"""Issue 15, items 4-6, with real faults: ``kill -9`` of a worker, SIGINT / SIGTERM, two drivers on one folder."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.integrity.conftest import TOY, command, tangentlab

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc to find the pool's workers")


def _sweep(tmp_path: Path, widths: list[int], sleep: float) -> Path:
    path = tmp_path / "sweep.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "study": TOY,
                "data": {"name": "synthetic", "n_train": 8, "n_test": 8},
                "params": {"sleep": sleep},
                "grid": {"width": widths},
                "seeds": 1,
            }
        )
    )
    return path


def _workers(pid: int) -> list[int]:
    """The pool workers (spawned children) of process ``pid``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if int(stat[1]) == pid and b"spawn_main" in cmdline and stat[0] != "Z":
            found.append(int(entry))
    return found


def _wait_for_workers(proc: subprocess.Popen, n: int, timeout: float = 60.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while len(found := _workers(proc.pid)) < n:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the pool's workers did not start"
        time.sleep(0.1)
    return found


def _statuses(out: Path) -> dict[str, str]:
    """Run id -> status; empty while the driver has created the file but not yet its table."""
    try:
        with sqlite3.connect(out / "results.sqlite") as con:
            return dict(con.execute("SELECT run_id, status FROM runs").fetchall())
    except sqlite3.OperationalError:
        return {}


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_a_worker_killed_by_sigkill_fails_only_its_own_run(tmp_path, env):
    """Item 4: the pool is rebuilt; the other runs finish; --retry-failed then completes the killed one."""
    path = _sweep(tmp_path, [1, 2, 3, 4], sleep=4.0)
    out = tmp_path / "out"
    args = ["run", str(path), "--out", str(out), "--workers", "2", "--no-progress"]
    proc = subprocess.Popen(
        command(*args), cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    victim = _wait_for_workers(proc, 2)[0]
    time.sleep(1.0)
    os.kill(victim, signal.SIGKILL)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 1, stderr
    assert "3 done now, 1 failed now" in stdout
    records = json.loads(tangentlab("results", str(out), "--format", "json", cwd=tmp_path, env=env).stdout)
    failed = [r for r in records if r["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["error"] == "worker killed by signal 9 (SIGKILL)"
    retry = tangentlab(*args, "--retry-failed", cwd=tmp_path, env=env)
    assert retry.returncode == 0 and "3 already finished, 1 done now, 0 failed now" in retry.stdout, (
        retry.stdout
    )


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupt_stops_within_5_s_and_leaves_runs_rerunnable(tmp_path, env, sig, code):
    """Item 5: two busy workers; the signal ends driver and workers within 5 s, one line, exit 130 / 143."""
    path = _sweep(tmp_path, [1, 2, 3], sleep=120.0)
    out = tmp_path / "out"
    args = ["run", str(path), "--out", str(out), "--workers", "2", "--no-progress"]
    proc = subprocess.Popen(
        command(*args),
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    workers = _wait_for_workers(proc, 2)
    time.sleep(3.0)  # both workers inside a run
    start = time.monotonic()
    if sig == signal.SIGINT:
        os.killpg(proc.pid, sig)  # as a terminal's Ctrl-C: the whole process group
    else:
        proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=30)
    elapsed = time.monotonic() - start
    assert proc.returncode == code, stderr
    assert elapsed < 5.0, f"took {elapsed:.2f} s to stop"
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"tangentlab: interrupted by {sig.name}"), stderr
    deadline = time.monotonic() + 5
    while any(_alive(p) for p in workers):
        assert time.monotonic() < deadline, "workers still alive after the driver exited"
        time.sleep(0.05)
    assert set(_statuses(out).values()) == {"running"}  # nothing done, nothing failed: all re-runnable
    # a rerun (now cheap) computes every one of them
    path.write_text(path.read_text().replace("sleep: 120.0", "sleep: 0.0"))
    rerun = tangentlab(*args, cwd=tmp_path, env=env)
    assert rerun.returncode == 0 and "3 done now" in rerun.stdout


def test_a_second_driver_on_the_same_folder_exits_2_naming_the_first(tmp_path, env):
    """Item 6: an exclusive lock; the first driver is not disturbed (its temporaries are left alone)."""
    path = _sweep(tmp_path, [1, 2, 3], sleep=2.0)
    out = tmp_path / "out"
    args = ["run", str(path), "--out", str(out), "--no-progress"]
    first = subprocess.Popen(
        command(*args), cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 60
    while not (out / "results.sqlite").exists() or not _statuses(out):
        assert first.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    (out / "artifacts" / ".tmp-first-driver-in-progress").mkdir()
    second = tangentlab(*args, cwd=tmp_path, env=env, timeout=60)
    assert second.returncode == 2
    assert second.stderr.strip() == (
        f"tangentlab: results folder in use by pid {first.pid}: {out} (one sweep per folder; wait for it to "
        "end, or use --out)"
    )
    assert (out / "artifacts" / ".tmp-first-driver-in-progress").is_dir()
    stdout, stderr = first.communicate(timeout=120)
    assert first.returncode == 0 and "3 done now" in stdout, stderr
    assert set(_statuses(out).values()) == {"done"}
