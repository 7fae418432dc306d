"""Where a run computes: checking ``--device``, the device a study actually uses, and what a Ray task asks for.

- :func:`check_device` refuses, before any run starts, a device string torch does not parse or (for the local
  executor) a device this machine does not have, in one line naming what is available.
- A study that cannot place its tensors on an accelerator declares ``cpu_only = True``; its runs then compute on
  the CPU whatever ``--device`` says, and record ``cpu`` (:func:`run_device`). The run's identity includes the device
  *kind* (``cpu``, ``cuda``, ``mps``; not the index) only when it is not ``cpu``, so every CPU run keeps the id it
  always had, and a GPU run of the same config is a different run: float32 kernel blocks computed on a GPU differ
  from the CPU's in the last bits (cuBLAS and the CPU's BLAS sum in different orders; float64 agrees to ~1e-15
  relative), so the two are not interchangeable results.
- With Ray, a run on ``cuda`` asks for ``num_gpus`` (``--gpus-per-run``, fractional below 1 to pack several runs on
  one GPU; default: the study's ``resources["num_gpus"]``, else 1); a CPU run asks for none (:func:`ray_request`).
  Ray sets ``CUDA_VISIBLE_DEVICES`` for the task, so a Ray run uses ``cuda`` (the GPU it was given), not an index.
"""

from __future__ import annotations

import math
from typing import Any

import torch

KINDS: tuple[str, ...] = ("cpu", "cuda", "mps")


def available_devices() -> list[str]:
    """The devices of this machine: ``cpu``, ``cuda:0`` ... and ``mps`` when present."""
    out = ["cpu"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if torch.backends.mps.is_available():
        out.append("mps")
    return out


def check_device(device: str, *, local: bool = True) -> str:
    """``device`` checked before any work; returns it unchanged.

    Args:
        device: a torch device string (``cpu``, ``cuda``, ``cuda:1``, ``mps``).
        local: also require that this machine has it (False for a remote Ray cluster, whose driver may have no
            GPU: then only the device's kind is checked).

    Raises:
        ValueError: one line: not a torch device, a kind tangentlab does not run on, or not available here.
    """
    available = available_devices()
    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise ValueError(
            f"--device: {device!r} is not a torch device; available here: {', '.join(available)}"
        ) from None
    if parsed.type not in KINDS:
        raise ValueError(
            f"--device: {device!r} is a {parsed.type!r} device; expected one of {', '.join(KINDS)}"
        )
    if not local:
        return device
    ok = parsed.type == "cpu" or (parsed.type == "mps" and "mps" in available)
    if parsed.type == "cuda":
        ok = torch.cuda.is_available() and (parsed.index or 0) < torch.cuda.device_count()
    if not ok:
        raise ValueError(
            f"--device: {device!r} is not available on this machine; available here: {', '.join(available)}"
        )
    return device


def device_kind(device: str) -> str:
    """``cpu``, ``cuda`` or ``mps``: the part of a device that enters a run's identity."""
    return torch.device(device).type


def is_cpu_only(study: Any) -> bool:
    """Whether ``study`` declares that it computes on the CPU only (``cpu_only = True``)."""
    return bool(getattr(study, "cpu_only", False))


def run_device(study: Any, device: str) -> str:
    """The device a run of ``study`` computes on: ``cpu`` for a CPU-only study, else ``device``."""
    return "cpu" if is_cpu_only(study) else device


def check_gpus_per_run(value: float | None) -> float | None:
    """``--gpus-per-run``: None, a fraction in (0, 1], or a whole number of GPUs (Ray's rule for fractions).

    Raises:
        ValueError: one line naming the option and what is allowed.
    """
    if value is None:
        return None
    v = float(value)
    if not (math.isfinite(v) and v > 0 and (v <= 1 or v.is_integer())):
        raise ValueError(
            f"--gpus-per-run: expected a fraction in (0, 1] or a whole number of GPUs, got {value!r}"
        )
    return v


def ray_request(study: Any, device: str, gpus_per_run: float | None = None) -> dict[str, float]:
    """What one Ray task of ``study`` asks for: ``num_cpus`` from ``study.resources`` (default 1) and
    ``num_gpus``: 0 unless the run computes on ``cuda`` (:func:`run_device`), then ``gpus_per_run`` if given, else
    ``study.resources["num_gpus"]`` if it is above 0, else 1."""
    resources = dict(getattr(study, "resources", {}) or {})
    num_cpus = float(resources.get("num_cpus", 1))
    if device_kind(run_device(study, device)) != "cuda":
        return {"num_cpus": num_cpus, "num_gpus": 0.0}
    declared = float(resources.get("num_gpus", 0) or 0)
    gpus = check_gpus_per_run(gpus_per_run)
    return {
        "num_cpus": num_cpus,
        "num_gpus": gpus if gpus is not None else (declared if declared > 0 else 1.0),
    }


def ray_device(device: str) -> str:
    """The device string a Ray task uses: the kind alone for ``cuda`` (Ray exposes the task's GPU as ``cuda:0``)."""
    return "cuda" if device_kind(device) == "cuda" else device


def describe_device(device: str) -> dict[str, Any]:
    """What the environment records of the device a run used: ``device`` and, on CUDA, the GPU's name."""
    out: dict[str, Any] = {"device": device}
    parsed = torch.device(device)
    if parsed.type == "cuda" and torch.cuda.is_available():
        out["device_name"] = torch.cuda.get_device_name(parsed)
    return out


__all__ = [
    "KINDS",
    "available_devices",
    "check_device",
    "check_gpus_per_run",
    "describe_device",
    "device_kind",
    "is_cpu_only",
    "ray_device",
    "ray_request",
    "run_device",
]
