"""Every study's recorded ``device`` is where its tensors lived (a device spy around one tiny run of each study).

The spy sees every tensor passed to or returned by a torch function (a ``TorchFunctionMode``) and the parameters
and inputs of every ``nn.Module`` call. On this CPU machine: a study that computes on the requested device is run
with ``cpu``; a CPU-only study is run with ``cuda`` requested (it must not touch it, and must record ``cpu``). On a
machine with CUDA, the device-capable studies also run with ``cuda`` and their nets must live there.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_leaves

from tangentlab.runner import RunConfig
from tangentlab.runner.executors import execute_run
from tangentlab.studies import STUDIES, get_study, list_studies

SYNTH = {"name": "synthetic", "n_train": 12, "n_test": 6, "options": {"input_dim": 3}}
DIGITS3 = {"name": "digits", "n_train": 60, "n_test": 30, "classes": (0, 1, 2)}
CASES: dict[str, dict[str, Any]] = {
    "lazy": {"data": SYNTH, "train": {"steps": 5}, "params": {"width": 8, "probe_size": 4}},
    "conditioning": {
        "data": SYNTH,
        "train": {"steps": 5},
        "params": {"width": 8, "gn_steps": 2, "checkpoints": 2},
    },
    "equivalence": {
        "data": {"name": "digits", "n_train": 30, "n_test": 20, "target": "onehot"},
        "train": {"steps": 5},
        "params": {"depth": 1, "width": 8},
    },
    "scaling": {
        "data": {"name": "digits", "n_train": 64, "n_test": 24},
        "train": {"optimizer": "adam", "learning_rate": 1e-2, "steps": 5},
        "params": {"n_train": 16, "pretrain_m": 8, "test_size": 12, "width": 8, "depth": 1},
    },
    "scaling_arms": {
        "data": {"name": "digits", "n_train": 40, "n_test": 12},
        "train": {"optimizer": "adam", "learning_rate": 1e-2, "steps": 4},
        "params": {"n_values": [8, 16], "width": 8, "depth": 1, "test_size": 12, "n_snapshots": 2},
    },
    "evolution": {
        "data": DIGITS3,
        "train": {"optimizer": "adam", "learning_rate": 1e-2, "steps": 6},
        "params": {"width": 8, "probe_per_class": 3, "n_snapshots": 3, "after_kernel_train": 20},
    },
    "fort": {
        "data": DIGITS3,
        "train": {
            "optimizer": "sgd",
            "loss": "cross_entropy",
            "learning_rate": 0.1,
            "steps": 6,
            "batch_size": 8,
        },
        "params": {"width": 8, "probe_per_class": 2, "n_equal": 3, "n_log": 2, "n_spawn": 2, "n_alpha": 3},
    },
    "continual": {
        "data": {"name": "digits", "n_train": 90, "n_test": 60},
        "train": {"steps": 10},
        "params": {"width": 8, "n_tasks": 2, "check_every": 5},
    },
    "dispersion": {
        "data": SYNTH,
        "train": {"steps": 5},
        "params": {"depth": 2, "width": 8, "input_dim": 4, "n_inits": 4},
    },
    "bandit": {
        "data": {"name": "digits", "n_train": 200, "classes": (0, 1, 2)},
        "train": {"optimizer": "adam", "learning_rate": 0.01, "steps": 3},
        "params": {
            "agent": "neural_ucb",
            "width": 8,
            "rounds": 12,
            "input_dim": 4,
            "noise_std": 0.0,
            "nu": 1.0,
        },
    },
    "alt_kernels": {
        "data": {"name": "digits", "n_train": 30, "n_val": 20, "n_test": 20, "target": "onehot"},
        "params": {"depths": [1, 2], "ridge": 0.0},
    },
    "ensemble": {
        "data": {"name": "gap1d", "n_train": 10, "n_test": 16},
        "params": {"ensemble_size": 2, "times": [10], "width": 8},
    },
    "ntk_update": {
        "data": {"name": "synthetic", "n_train": 1, "n_test": 1, "options": {"input_dim": 4}},
        "params": {"n_nets": 4, "width": 8, "beta": 0.25},
    },
    "output_variance": {
        "data": {"name": "synthetic", "n_train": 6, "n_test": 4, "options": {"input_dim": 3}},
        "params": {"depth": 2, "width": 8, "ensemble_size": 4, "steps": 3},
    },
    "uncertainty": {
        "data": {"name": "gap1d", "n_train": 24, "n_val": 12, "n_test": 40},
        "train": {"optimizer": "adam", "learning_rate": 0.01, "steps": 5},
        "params": {"width": 8, "ensemble_size": 2, "max_test": 30},
    },
}

# no nn.Module calls: dispersion and ntk_update sample nets with their own recursions, alt_kernels uses kernels only
NO_NETS = ("dispersion", "ntk_update", "alt_kernels")


class _Spy(TorchFunctionMode):
    def __init__(self) -> None:
        super().__init__()
        self.devices: set[str] = set()

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        for leaf in tree_leaves((args, kwargs, out)):
            if isinstance(leaf, torch.Tensor) and not leaf.is_meta:
                self.devices.add(leaf.device.type)
        return out


@contextmanager
def spied() -> Iterator[tuple[_Spy, set[str]]]:
    """Devices of every tensor torch functions saw, and of every module call's parameters and tensor inputs."""
    module_devices: set[str] = set()

    def hook(module: torch.nn.Module, inputs: tuple[Any, ...]) -> None:
        for t in [*module.parameters(recurse=False), *tree_leaves(inputs)]:
            if isinstance(t, torch.Tensor):
                module_devices.add(t.device.type)

    handle = torch.nn.modules.module.register_module_forward_pre_hook(hook)
    try:
        with _Spy() as spy:
            yield spy, module_devices
    finally:
        handle.remove()


def _run(name: str, device: str) -> tuple[Any, set[str], set[str]]:
    config = RunConfig.model_validate({"study": name, **CASES[name]})
    study = get_study(name)
    with spied() as (spy, modules):
        result = execute_run(study, config, device)
    assert result.ok, result.error
    return result, spy.devices, modules


def test_every_study_has_a_case():
    list_studies()  # loads the built-in studies
    assert set(CASES) == set(STUDIES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_recorded_device_is_where_the_tensors_lived(name):
    study = get_study(name)
    requested = "cuda" if study.cpu_only and not torch.cuda.is_available() else "cpu"
    result, seen, modules = _run(name, requested)
    assert result.environment["device"] == "cpu"
    assert seen == {"cpu"}  # nothing was placed anywhere else
    assert modules <= {"cpu"}
    if name not in NO_NETS:
        assert modules == {"cpu"}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", sorted(CASES))
def test_on_cuda_the_nets_live_on_cuda_or_the_study_says_cpu(name):
    study = get_study(name)
    result, _, modules = _run(name, "cuda")
    expected = "cpu" if study.cpu_only else "cuda"
    assert result.environment["device"] == expected
    if name not in NO_NETS:
        assert modules == {expected}
