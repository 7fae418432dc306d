"""Per-model memo of what an ``empirical_ntk`` call learns before it computes anything: the per-example check and
the probe's :class:`ModelShape` (one or two forward passes on one or two examples, hooks, a cost model).

Repeated calls on the same model and input shape (a training loop that tracks the eNTK, a sweep over ``n``) skip
them. The memo of a model lives as long as the model (a weak reference) and is keyed on everything those results
depend on: the input's per-example shape, dtype and device; every parameter (identity, shape, dtype,
``requires_grad``); every submodule (identity, train/eval mode, number of forward hooks). Changing any of these
(``model.eval()``, freezing a layer, replacing a layer) recomputes them; parameter *values* do not enter.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any, TypeVar

import torch
from torch import nn

T = TypeVar("T")
_MEMO: weakref.WeakKeyDictionary[nn.Module, dict[tuple[Any, ...], Any]] = weakref.WeakKeyDictionary()
MAX_ENTRIES = 16  # per model: a few input shapes and what is known about each


def signature(model: nn.Module, x: torch.Tensor) -> tuple[Any, ...]:
    """What the per-example check and the probe depend on, besides parameter values (module docstring)."""
    params = tuple(
        (name, id(p), tuple(p.shape), p.dtype, p.requires_grad)
        for name, p in model.named_parameters(remove_duplicate=False)
    )
    modules = tuple((id(m), m.training, len(m._forward_hooks)) for m in model.modules())
    return (tuple(x.shape[1:]), x.dtype, x.device, params, modules)


def memo(
    model: nn.Module,
    x: torch.Tensor,
    what: str,
    compute: Callable[[], T],
    storable: Callable[[T], bool] = lambda _: True,
) -> T:
    """``compute()`` once per ``(what, signature(model, x))``; later calls return the stored result.

    A result for which ``storable`` is false is returned but not stored (one that refers to ``model`` itself
    would keep it alive through the weak memo).
    """
    try:
        table = _MEMO.setdefault(model, {})
    except TypeError:  # a module that cannot be weakly referenced: no memo
        return compute()
    key = (what, signature(model, x))
    if key in table:
        stored: T = table[key]
        return stored
    result = compute()
    if storable(result):
        if len(table) >= MAX_ENTRIES:
            table.clear()
        table[key] = result
    return result


def forget(model: nn.Module) -> None:
    """Drop what is stored for ``model`` (e.g. after changing its ``forward`` in a way the key cannot see)."""
    _MEMO.pop(model, None)
