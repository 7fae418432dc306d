"""A real two-node Ray cluster on this machine: ``ray start --head`` plus a second ``ray start --address`` node with
its own resources, a sweep driven by ``tangentlab run --executor ray --address``, every run done exactly once, and
both nodes stopped (always: their process groups are killed in a ``finally``; never a machine-wide ``ray stop``).

Token authentication (on by default in Ray 2.60) is exercised as on a real cluster: one token, given to the head,
the second node and the driver through ``RAY_AUTH_TOKEN``.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from tangentlab.runner import ResultStore
from tests.runner.conftest import REPO, TOY

RAY = Path(sys.executable).with_name("ray")
pytestmark = [
    pytest.mark.ray_cluster,
    pytest.mark.skipif(not RAY.is_file(), reason="the ray command line is not installed in this environment"),
]


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _node_args(ports: list[int]) -> list[str]:
    """Every fixed port of a node chosen free, so the test does not collide with other Ray instances here."""
    names = (
        "--dashboard-agent-listen-port",
        "--dashboard-agent-grpc-port",
        "--metrics-export-port",
        "--runtime-env-agent-port",
        "--node-manager-port",
        "--object-manager-port",
    )
    return [arg for name, port in zip(names, ports, strict=True) for arg in (name, str(port))]


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:  # the node's processes share its new session: one process group to stop
        return subprocess.Popen(
            [str(RAY), "start", "--block", "--disable-usage-stats", *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _stop(node: subprocess.Popen[bytes], marker: str) -> None:
    """Stop one node: SIGTERM to its process group, SIGKILL after 5 s, then any process still naming our temp dir."""
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(node.pid, sig)
        except ProcessLookupError:
            break
        try:
            node.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if marker.encode() in (proc / "cmdline").read_bytes():
                os.kill(int(proc.name), signal.SIGKILL)
        except (OSError, ValueError):
            continue


def _wait_for(log: Path, text: str, node: subprocess.Popen[bytes], timeout: float) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if text in log.read_text(errors="replace"):
            return
        if node.poll() is not None:
            break
        time.sleep(0.2)
    raise AssertionError(f"ray start did not report {text!r}:\n{log.read_text(errors='replace')[-3000:]}")


def test_a_sweep_on_a_two_node_cluster_runs_every_run_once(tmp_path):
    temp = Path(
        tempfile.mkdtemp(prefix="tlray-", dir="/tmp")
    )  # short: Ray's socket paths must stay < 108 bytes
    port, *ports = _free_ports(14)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(REPO / "src"), str(REPO)]
        ),  # tangentlab and the toy study, as installed
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(32),
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    common = ["--num-cpus", "1", "--temp-dir", str(temp)]
    head_args = [
        "--head",
        "--port",
        str(port),
        "--include-dashboard",
        "false",
        "--dashboard-port",
        str(ports[0]),
    ]
    nodes: list[subprocess.Popen[bytes]] = []
    try:
        nodes.append(_start([*head_args, *common, *_node_args(ports[1:7])], env, tmp_path / "head.log"))
        _wait_for(tmp_path / "head.log", "Ray runtime started", nodes[0], 60)
        second = ["--address", f"127.0.0.1:{port}", "--resources", '{"second_node": 1}']
        nodes.append(_start([*second, *common, *_node_args(ports[7:13])], env, tmp_path / "second.log"))
        _wait_for(tmp_path / "second.log", "Ray runtime started", nodes[1], 60)

        logs = tmp_path / "executions"
        logs.mkdir()
        sweep = {
            "study": TOY,
            "data": {"name": "synthetic", "n_train": 8, "n_test": 8},
            "params": {"sleep": 0.5, "log_dir": str(logs)},
            "grid": {"width": [2, 3, 4]},
            "seeds": 2,
        }
        (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(sweep))
        command = [sys.executable, "-m", "tangentlab", "-q", "run", str(tmp_path / "sweep.yaml")]
        command += ["--out", str(tmp_path / "out"), "--executor", "ray", "--address", f"127.0.0.1:{port}"]
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stdout + done.stderr

        with ResultStore(tmp_path / "out") as store:
            rows = store.runs()
        assert len(rows) == 6 and all(row.status == "done" for row in rows)
        executions = Counter(p.name.split("-pid")[0] for p in logs.iterdir())
        assert executions == {f"w{w}-s{s}": 1 for w in (2, 3, 4) for s in (0, 1)}  # each run exactly once
        groups = {int(p.read_text()) for p in logs.iterdir()}
        assert groups == {nodes[0].pid, nodes[1].pid}  # both nodes computed runs (each node is one group)

        again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)
        assert again.returncode == 0 and len(list(logs.iterdir())) == 6  # a rerun skips what is done
    finally:
        for node in reversed(nodes):
            _stop(node, str(temp))
        shutil.rmtree(temp, ignore_errors=True)
    assert all(node.poll() is not None for node in nodes)
