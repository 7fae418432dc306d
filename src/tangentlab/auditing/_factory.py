"""A user's model factory: find it (``"module:attr"`` or ``"path/to/file.py:attr"``), call it, check what it returns.

Each way this can go wrong raises :class:`FactoryError` with one line that says which: the module cannot be imported,
the attribute is missing or not callable, the call raised, the result is not an ``nn.Module``, or the model does not
fit the data (a forward pass on two training inputs fails, or its outputs do not match the targets).
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

#: What :func:`tangentlab.audit` accepts as a factory: a callable returning an ``nn.Module``, or its spec string.
ModelFactory = Callable[..., nn.Module]


class FactoryError(ValueError):
    """A model factory that cannot be imported or called, or whose model does not fit the data (one line)."""


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _import_file(path: Path) -> Any:
    if not path.is_file():
        raise FactoryError(f"factory: cannot import {str(path)!r}: no such file")
    name = f"_tangentlab_audit_{path.stem}_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise FactoryError(f"factory: cannot import {str(path)!r}: not a Python source file")
    module = importlib.util.module_from_spec(spec)
    folder = str(path.resolve().parent)
    sys.path.insert(0, folder)  # so the file can import its neighbours
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as err:
        sys.modules.pop(name, None)
        raise FactoryError(f"factory: cannot import {str(path)!r} ({_one_line(err)})") from None
    finally:
        sys.path.remove(folder)
    return module


def _import_module(name: str) -> Any:
    cwd = os.getcwd()
    added = cwd not in sys.path
    if added:  # `tangentlab audit mypkg.models:net` run from the folder that holds mypkg
        sys.path.insert(0, cwd)
    try:
        return importlib.import_module(name)
    except Exception as err:
        raise FactoryError(f"factory: cannot import module {name!r} ({_one_line(err)})") from None
    finally:
        if added:
            sys.path.remove(cwd)


def resolve_factory(spec: str) -> ModelFactory:
    """The callable named by ``spec``: ``"package.module:attr"`` or ``"path/to/file.py:attr"``.

    Raises:
        FactoryError: malformed spec, a module or file that cannot be imported, a missing or non-callable attribute.
    """
    where, sep, attr = spec.rpartition(":")
    if not sep or not where or not attr or not attr.replace(".", "_").isidentifier():
        raise FactoryError(f"factory: expected 'module:attr' or 'path/to/file.py:attr', got {spec!r}")
    is_file = where.endswith(".py") or "/" in where or os.sep in where
    module = _import_file(Path(where)) if is_file else _import_module(where)
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            public = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_"))
            raise FactoryError(
                f"factory: {where!r} has no attribute {attr!r}; its callables: {', '.join(public) or 'none'}"
            )
        obj = getattr(obj, part)
    if not callable(obj):
        raise FactoryError(
            f"factory: {spec!r} is a {type(obj).__name__}, expected a callable returning a Module"
        )
    return cast("Callable[..., torch.nn.Module]", obj)


def factory_name(factory: ModelFactory | str) -> str:
    """A short name for reports: the spec string, or ``module.qualname`` of a callable."""
    if isinstance(factory, str):
        return factory
    module = getattr(factory, "__module__", None) or ""
    qualname = getattr(factory, "__qualname__", None) or type(factory).__name__
    return f"{module}:{qualname}" if module else qualname


def takes_seed(factory: ModelFactory) -> bool:
    """Whether ``factory`` can be called with a ``seed=`` keyword."""
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False
    return "seed" in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def call_factory(factory: ModelFactory, seed: int, *, name: str, dtype: torch.dtype) -> nn.Module:
    """``factory(seed=seed)`` (or ``factory()`` if it takes no seed) under ``torch.manual_seed(seed)``, in ``dtype``.

    The global torch RNG is restored afterwards, so a factory without a ``seed`` argument still gives one model per
    seed and the caller's random state is untouched.

    Raises:
        FactoryError: the call raised, or returned something that is not an ``nn.Module``.
    """
    kwargs = {"seed": seed} if takes_seed(factory) else {}
    call = f"{name}({'seed=' + str(seed) if kwargs else ''})"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            model = factory(**kwargs)
        except Exception as err:
            raise FactoryError(f"factory: {call} raised {_one_line(err)}") from None
    if not isinstance(model, nn.Module):
        raise FactoryError(f"factory: {call} returned a {type(model).__name__}, expected a torch.nn.Module")
    if not any(p.requires_grad for p in model.parameters()):
        raise FactoryError(f"factory: {call} returned a Module with no trainable parameters")
    return model.to(dtype)


def forward_error(
    model: nn.Module, x: torch.Tensor, targets: torch.Tensor, *, name: str, data: str
) -> str | None:
    """Run ``model`` (in eval mode) on the inputs ``x``: None if it runs, else the error in one line.

    Args:
        model: the model; its train/eval mode is restored afterwards.
        x: a few training inputs in one layout, e.g. flat (n, d) or image (n, C, L).
        targets: their targets (n, k); the outputs must have exactly this shape.
        name: the factory's name, for the message.
        data: the dataset's name, for the message.

    Raises:
        FactoryError: the model runs but its outputs' shape does not match the targets'.
    """
    batchnorm = [
        f"{type(m).__name__} ({path or 'the model'})"
        for path, m in model.named_modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training and m.track_running_stats is not None
    ]
    if batchnorm:
        raise FactoryError(
            f"factory: the model of {name} has {batchnorm[0]} in training mode: its outputs mix the examples of a "
            "batch, so no per-example NTK exists; return model.eval() from the factory"
        )
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(x)
    except Exception as err:
        return f"{tuple(x.shape)}: {_one_line(err)}"
    finally:
        model.train(was_training)
    want = tuple(targets.shape)
    got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
    if got != want:
        raise FactoryError(
            f"factory: the model of {name} does not fit the data {data!r}: on inputs {tuple(x.shape)} it "
            f"returned outputs {got}, expected {want} (one column per target)"
        )
    if isinstance(out, torch.Tensor) and out.is_floating_point() and not torch.isfinite(out).all():
        raise FactoryError(
            f"factory: the model of {name} returns NaN/inf outputs on inputs {tuple(x.shape)} of {data!r}; "
            "nothing can be measured on them"
        )
    return None


def shape_error(name: str, data: str, failures: Sequence[str]) -> FactoryError:
    """The one-line error for a model whose forward pass failed on every input layout tried."""
    return FactoryError(
        f"factory: the model of {name} does not fit the data {data!r}: the forward pass failed on inputs "
        + "; and on ".join(failures)
    )
