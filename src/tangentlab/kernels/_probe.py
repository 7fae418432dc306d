"""One forward pass on a single example to learn the shapes the cost model and the structured method need."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from tangentlab.modules import layer_scales


@dataclass
class LayerShape:
    """A linear-structured layer: per use, ``T`` positions (tokens or conv output pixels); ``I``, ``C`` widths.

    For a conv layer ``I = C_in × kernel area`` (a patch) and ``C = C_out``.
    """

    name: str
    module: nn.Module
    kind: str  # "linear" | "conv"
    weight_scale: float
    bias_scale: float
    has_bias: bool
    in_features: int
    out_features: int
    positions: int = 0  # summed over uses

    @property
    def num_params(self) -> int:
        return self.out_features * self.in_features + (self.out_features if self.has_bias else 0)


@dataclass
class ModelShape:
    num_outputs: int
    num_params: int
    forward_flops: float  # per example, estimated
    activations: int  # numbers produced by leaf modules per example
    layers: list[LayerShape] = field(default_factory=list)
    other_params: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def num_other_params(self) -> int:
        return sum(p.numel() for p in self.other_params.values())


def structured_layers(model: nn.Module) -> list[LayerShape]:
    """Layers whose gradients have the linear structure and whose parameters are all trainable and unshared."""
    owners: dict[int, int] = {}
    for module in model.modules():
        for p in module._parameters.values():
            if p is not None:
                owners[id(p)] = owners.get(id(p), 0) + 1
    found = []
    for name, module in model.named_modules():
        scales = layer_scales(module)
        if scales is None:
            continue
        own = [p for p in module._parameters.values() if p is not None]
        if not all(p.requires_grad for p in own) or any(owners[id(p)] > 1 for p in own):
            continue
        if isinstance(module, nn.Conv1d | nn.Conv2d) and module.groups != 1:
            continue
        weight = module.weight
        kind = "linear" if isinstance(module, nn.Linear) else "conv"
        in_features = weight.shape[1] if kind == "linear" else math.prod(weight.shape[1:])
        found.append(
            LayerShape(
                name=name,
                module=module,
                kind=kind,
                weight_scale=scales[0],
                bias_scale=scales[1],
                has_bias=module.bias is not None,
                in_features=int(in_features),
                out_features=int(weight.shape[0]),
            )
        )
    return found


def probe(model: nn.Module, x: torch.Tensor, params: dict[str, torch.Tensor]) -> ModelShape:
    """Shapes, parameter counts and a FLOP estimate from a forward pass on ``x[:1]``."""
    layers = structured_layers(model)
    by_module = {id(s.module): s for s in layers}
    flops = [0.0]
    acts = [0]

    def hook(module: nn.Module, args: tuple[object, ...], out: object) -> None:
        if not isinstance(out, torch.Tensor):
            return
        acts[0] += out.numel()
        shape = by_module.get(id(module))
        if shape is not None:
            positions = out.numel() // shape.out_features
            shape.positions += positions
            flops[0] += 2.0 * positions * shape.in_features * shape.out_features
        elif isinstance(module, nn.Conv1d | nn.Conv2d | nn.Conv3d):
            w = module.weight
            flops[0] += 2.0 * out.numel() * math.prod(w.shape[1:])
        elif isinstance(module, nn.Linear):
            flops[0] += 2.0 * out.numel() * module.in_features
        else:
            flops[0] += float(out.numel())

    handles = [m.register_forward_hook(hook) for m in model.modules() if not list(m.children())]
    try:
        with torch.no_grad():
            out = model(x[:1])
    finally:
        for h in handles:
            h.remove()
    covered = {id(p) for s in layers for p in s.module.parameters(recurse=False)}
    other = {n: p for n, p in params.items() if id(p) not in covered}
    return ModelShape(
        num_outputs=int(out.reshape(1, -1).shape[1]),
        num_params=sum(p.numel() for p in params.values()),
        forward_flops=max(flops[0], 1.0),
        activations=max(acts[0], 1),
        layers=[s for s in layers if s.positions > 0],
        other_params=other,
    )
