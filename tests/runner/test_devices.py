"""Devices: checking ``--device``, the device a study computes on, the run identity, and Ray's resource request."""

from __future__ import annotations

import hashlib
import json
import sys
import types
from typing import Any, ClassVar

import pytest
import torch

import tangentlab
from tangentlab.runner import ResultStore, RunConfig, load_sweep, run_sweep
from tangentlab.runner.devices import check_device, check_gpus_per_run, device_kind, ray_request, run_device
from tangentlab.runner.executors import execute
from tangentlab.runner.sweep import placed
from tangentlab.studies import get_study
from tests.runner.conftest import write_sweep
from tests.runner.toy_study import ToyStudy

NO_CUDA = not torch.cuda.is_available()


class CpuOnlyToy(ToyStudy):
    cpu_only: ClassVar[bool] = True


class GpuHungryToy(ToyStudy):
    resources: ClassVar[dict[str, float]] = {"num_cpus": 2, "num_gpus": 0.5}


def test_check_device_names_what_is_wrong():
    assert check_device("cpu") == "cpu"
    with pytest.raises(ValueError, match="not a torch device"):
        check_device("warp-drive")
    with pytest.raises(ValueError, match="is a 'xla' device; expected one of cpu, cuda, mps"):
        check_device("xla")
    if NO_CUDA:
        with pytest.raises(
            ValueError, match="'cuda:1' is not available on this machine; available here: cpu"
        ):
            check_device("cuda:1")
    # a remote Ray cluster: the driver need not have the GPU its workers have
    assert check_device("cuda:1", local=False) == "cuda:1"


def test_cpu_only_studies_compute_on_the_cpu():
    assert run_device(CpuOnlyToy(), "cuda:1") == "cpu"
    assert run_device(ToyStudy(), "cuda:1") == "cuda:1"
    assert [get_study(n).cpu_only for n in ("dispersion", "bandit", "uncertainty")] == [True] * 3
    assert not any(get_study(n).cpu_only for n in ("lazy", "scaling", "evolution", "continual"))


def test_ray_request_is_computed_from_the_device():
    toy, hungry = ToyStudy(), GpuHungryToy()
    assert ray_request(toy, "cpu") == {"num_cpus": 1.0, "num_gpus": 0.0}
    assert ray_request(toy, "cpu", 0.25) == {"num_cpus": 1.0, "num_gpus": 0.0}  # CPU runs never ask for a GPU
    assert ray_request(toy, "cuda") == {"num_cpus": 1.0, "num_gpus": 1.0}
    assert ray_request(toy, "cuda:3", 0.25) == {"num_cpus": 1.0, "num_gpus": 0.25}
    assert ray_request(toy, "cuda", 2) == {"num_cpus": 1.0, "num_gpus": 2.0}
    assert ray_request(hungry, "cuda") == {"num_cpus": 2.0, "num_gpus": 0.5}
    assert ray_request(hungry, "cuda", 1) == {"num_cpus": 2.0, "num_gpus": 1.0}
    assert ray_request(CpuOnlyToy(), "cuda", 0.5) == {"num_cpus": 1.0, "num_gpus": 0.0}
    assert ray_request(toy, "mps") == {"num_cpus": 1.0, "num_gpus": 0.0}
    for bad in (0, -1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="--gpus-per-run: expected a fraction in"):
            check_gpus_per_run(bad)


def _old_run_id(run: RunConfig) -> str:
    """The identity as computed before devices entered it (config without the device field)."""
    dumped = run.model_dump(mode="json", exclude={"device"} | (set() if run.inputs else {"inputs"}))
    config = json.loads(json.dumps(dumped, sort_keys=True, separators=(",", ":")))
    payload = json.dumps({"config": config, "tangentlab": tangentlab.__version__}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def test_cpu_runs_keep_their_ids_and_gpu_runs_get_their_own(tmp_path):
    _, study, runs = load_sweep(write_sweep(tmp_path), get_study)
    on_cpu, on_cuda = placed(study, runs, "cpu"), placed(study, runs, "cuda:1")
    assert [r.run_id for r in on_cpu] == [r.run_id for r in runs] == [_old_run_id(r) for r in runs]
    assert all(r.device == "cpu" for r in on_cpu) and all(r.device == "cuda" for r in on_cuda)
    assert not {r.run_id for r in on_cuda} & {r.run_id for r in runs}
    assert [r.run_id for r in placed(study, runs, "cuda:0")] == [
        r.run_id for r in on_cuda
    ]  # the kind, not index
    assert [r.run_id for r in placed(CpuOnlyToy(), runs, "cuda")] == [r.run_id for r in runs]
    assert [r.run_id for r in placed(study, runs, "mps")] != [r.run_id for r in runs]


def test_a_sweep_records_the_device_it_used(tmp_path):
    _, _, runs = load_sweep(write_sweep(tmp_path, grid={"width": [2]}, seeds=1), get_study)
    run_sweep(CpuOnlyToy(), runs, tmp_path / "out", progress=False)
    with ResultStore(tmp_path / "out") as store:
        (row,) = store.runs()
    assert row.run_id == runs[0].run_id and row.environment["device"] == "cpu"


def test_run_sweep_refuses_a_device_before_any_work(tmp_path):
    _, study, runs = load_sweep(write_sweep(tmp_path), get_study)
    with pytest.raises(ValueError, match="--device: 'warp' is not a torch device"):
        run_sweep(study, runs, tmp_path / "out", device="warp", progress=False)
    with pytest.raises(ValueError, match="--gpus-per-run"):
        run_sweep(study, runs, tmp_path / "out", executor="ray", gpus_per_run=1.5, progress=False)
    assert not (tmp_path / "out" / "results.sqlite").exists()


class _Ref:
    def __init__(self, value: Any) -> None:
        self.value = value


class _FakeRay(types.ModuleType):
    """Just enough of Ray for the executor: records what ``remote`` asked for and runs tasks at once."""

    def __init__(self) -> None:
        super().__init__("ray")
        self.requests: list[dict[str, Any]] = []
        self.devices: list[str] = []

    def is_initialized(self) -> bool:
        return True

    def remote(self, **request: Any) -> Any:
        self.requests.append(request)
        fake = self

        class Remote:
            def __init__(self, fn: Any) -> None:
                self.fn = fn

            def remote(self, study: Any, run: Any, device: str) -> Any:
                fake.devices.append(device)
                return _Ref(self.fn(study, run, device))

        return Remote

    def put(self, value: Any) -> Any:
        return value

    def wait(self, refs: list[Any], num_returns: int = 1) -> tuple[list[Any], list[Any]]:
        return refs[:num_returns], refs[num_returns:]

    def get(self, ref: Any) -> Any:
        return ref.value


def test_the_ray_executor_asks_for_the_computed_resources(tmp_path, monkeypatch):
    fake = _FakeRay()
    monkeypatch.setitem(sys.modules, "ray", fake)
    _, _, runs = load_sweep(write_sweep(tmp_path, grid={"width": [2]}, seeds=1), get_study)
    results = list(execute(CpuOnlyToy(), runs, executor="ray", device="cuda:2", gpus_per_run=0.5))
    assert [r.ok for r in results] == [True] and results[0].environment["device"] == "cpu"
    list(execute(GpuHungryToy(), runs, executor="ray", device="cuda:2", gpus_per_run=0.25))
    assert fake.requests == [{"num_cpus": 1.0, "num_gpus": 0.0}, {"num_cpus": 2.0, "num_gpus": 0.25}]
    assert fake.devices == ["cuda", "cuda"]  # a Ray task uses the GPU Ray gave it: the kind, not an index
    assert device_kind("cuda:2") == "cuda"
