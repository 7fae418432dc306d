"""Model factories for the audit tests: the README's examples (``examples/audit_models.py``) at test sizes, and
broken ones."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from torch import nn

_PATH = Path(__file__).resolve().parents[2] / "examples" / "audit_models.py"
_SPEC = importlib.util.spec_from_file_location("tangentlab_examples_audit_models", _PATH)
assert _SPEC is not None and _SPEC.loader is not None
examples = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(examples)


def tiny_mlp(seed: int = 0) -> nn.Module:
    """The README's wide NTK MLP (64 → width → 10) at width 1,024."""
    return examples.wide_mlp(seed, width=1024)


def tiny_cnn() -> nn.Module:
    """The README's small 1-D CNN for MNIST-1D (PyTorch's default init; no seed argument)."""
    return examples.small_cnn()


def returns_list() -> list[int]:
    return [1, 2, 3]


def wrong_input() -> nn.Module:
    return nn.Linear(10, 10)


def wrong_output() -> nn.Module:
    return nn.Linear(64, 3)


def raises(seed: int) -> nn.Module:
    raise RuntimeError(f"no model for seed {seed}\nsecond line")


def frozen() -> nn.Module:
    model = nn.Linear(64, 10)
    model.requires_grad_(False)
    return model


NOT_CALLABLE = 3
