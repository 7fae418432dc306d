"""Empirical NNGP kernel: the Gram of the features that enter a network's readout layer."""

from __future__ import annotations

import torch
from torch import nn

from tangentlab.kernels._checks import (
    as_inputs,
    check_module,
    check_pair,
    check_positive_int,
    reference_tensor,
)


def _readout(model: nn.Module, layer: str | None) -> tuple[str, nn.Module]:
    modules = dict(model.named_modules())
    if layer is not None:
        if layer not in modules:
            names = [n for n in modules if n]
            shown = ", ".join(map(repr, names[:20])) + (" ..." if len(names) > 20 else "")
            raise ValueError(
                f"layer: {layer!r} is not a submodule of {type(model).__name__}; choices: {shown}"
            )
        return layer, modules[layer]
    linears = [(n, m) for n, m in modules.items() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(
            f"layer: {type(model).__name__} has no nn.Linear to take as the readout; name one with layer=..."
        )
    return linears[-1]


def empirical_nngp(
    model: nn.Module,
    x1: torch.Tensor,
    x2: torch.Tensor | None = None,
    *,
    layer: str | None = None,
    batch_size: int | None = None,
) -> torch.Tensor:
    """``K(x, x') = ⟨φ(x), φ(x')⟩ / d``: Gram of the readout features ``φ`` (length ``d``) over their width.

    ``φ(x)`` is the input of the last ``nn.Linear`` in ``model.named_modules()`` order (tangentlab's
    ``ScaledLinear`` included), or of the submodule named ``layer``, flattened per example. In the infinite-width
    limit of an NTK-parametrized net whose readout is ``σ_w/√d · W φ + σ_b b``, the output NNGP is
    ``σ_w² K + σ_b²`` (Neal 1996; Lee et al. 2018).

    Returns:
        (n1, n2) tensor in the parameters' dtype.
    """
    model = check_module(model)
    batch = check_positive_int("batch_size", batch_size) or 1024
    ref = reference_tensor(model)
    a = as_inputs("x1", x1, ref)
    b = None if x2 is None else as_inputs("x2", x2, ref)
    if b is not None:
        check_pair(a, b)
    readout = _readout(model, layer)[1]
    feats1 = _features(model, readout, a, batch)
    feats2 = feats1 if b is None else _features(model, readout, b, batch)
    return feats1 @ feats2.T / feats1.shape[1]


def _features(model: nn.Module, readout: nn.Module, x: torch.Tensor, batch: int) -> torch.Tensor:
    captured: list[torch.Tensor] = []

    def hook(module: nn.Module, args: tuple[object, ...], kwargs: dict[str, object]) -> None:
        inp = args[0] if args else next(iter(kwargs.values()))
        assert isinstance(inp, torch.Tensor)
        captured.append(inp.detach().reshape(inp.shape[0], -1).clone())

    handle = readout.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        with torch.no_grad():
            for start in range(0, x.shape[0], batch):
                before = len(captured)
                model(x[start : start + batch])
                if len(captured) != before + 1:
                    raise ValueError(
                        f"layer: the readout {type(readout).__name__} ran {len(captured) - before} times in one "
                        "forward pass; expected exactly once"
                    )
    finally:
        handle.remove()
    return torch.cat(captured)
