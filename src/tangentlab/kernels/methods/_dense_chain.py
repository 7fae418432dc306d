"""The trace eNTK of a dense chain (an ``nn.Sequential`` MLP) by explicit per-layer derivatives, without autograd.

For a chain ``z_l = s_l W_l a_{l-1} + s_{b,l} b_l``, ``a_l = φ_l(z_l)`` with elementwise ``φ_l`` and readout ``z_k``
(``O`` outputs), the structured NTK of :mod:`tangentlab.kernels.methods.structured` summed over outputs is

    Θ(x, x') = Σ_l K^δ_l(x, x') · (s_l² ⟨a_{l-1}(x), a_{l-1}(x')⟩ + s_{b,l}²),

    K^δ_k = O,   K^δ_{k-1} = ⟨v(x), v(x')⟩ with v = g_{k-1} ⊙ s_k ‖W_k[:, c]‖,
    K^δ_l = Σ_o ⟨δ^o_l(x), δ^o_l(x')⟩ with δ^o_l = g_l ⊙ (s_{l+1} W_{l+1}ᵀ δ^o_{l+1}),   l < k − 1,

where ``g_l = φ_l'(z_l)`` (a product when several elementwise modules follow one layer; 1 when none does) and
``δ^o_{k-1} = g_{k-1} ⊙ s_k W_k[o]``. This is the same sum the autograd route computes (Novak et al. 2022,
structured derivatives), with the backward pass written out: no batched reverse pass over the outputs, no hooks, no
per-output copies, and the ``δ`` of the last two layers never formed per output.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from tangentlab.kernels._probe import LayerShape

FLATTEN = (nn.Flatten,)


def sequential_leaves(model: nn.Module) -> list[nn.Module] | None:
    """The modules an exact ``nn.Sequential`` (nested ones flattened) applies in order, or None."""
    if type(model) is not nn.Sequential:
        return None
    out: list[nn.Module] = []
    for child in model:
        if type(child) is nn.Sequential:
            inner = sequential_leaves(child)
            if inner is None:
                return None
            out.extend(inner)
        else:
            out.append(child)
    return out


def _hooked(module: nn.Module) -> bool:
    return bool(
        module._forward_hooks
        or module._forward_pre_hooks
        or getattr(module, "_forward_hooks_with_kwargs", None)
        or getattr(module, "_backward_hooks", None)
    )


def derivative(module: nn.Module, z: torch.Tensor) -> torch.Tensor | None:
    """``φ'(z)`` of an elementwise module (None for the identity); call before ``module(z)`` (in-place ReLUs)."""
    if type(module) is nn.Identity:
        return None
    if type(module) is nn.ReLU:
        return (z > 0).to(z.dtype)
    if type(module) is nn.LeakyReLU:
        return torch.where(z > 0, torch.ones_like(z), torch.full_like(z, module.negative_slope))
    if type(module) is nn.Tanh:
        return 1 - torch.tanh(z).square()
    if type(module) is nn.Sigmoid:
        s = torch.sigmoid(z)
        return s * (1 - s)
    with torch.enable_grad():  # any other elementwise module: the diagonal of its Jacobian, by autograd
        leaf = z.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(module(leaf.clone()).sum(), leaf)
    return grad


@dataclass
class DenseChain:
    """What :func:`dense_chain` found: the modules in order and, per dense layer, its :class:`LayerShape`."""

    leaves: list[nn.Module]
    layers: list[LayerShape]  # the dense layers in order; the last is the readout


def dense_chain(
    model: nn.Module, layers: list[LayerShape], elementwise: tuple[type, ...]
) -> DenseChain | None:
    """The chain, when ``model`` is an exact ``nn.Sequential`` (nested ones flattened) of leading ``nn.Flatten``,
    dense layers (every one a structured layer: all parameters trainable, unshared, one position per use) and
    modules of ``elementwise`` between them, ending in a dense layer, each dense layer used once and no module
    hooked; otherwise None."""
    leaves = sequential_leaves(model)
    if not leaves or _hooked(model):
        return None
    by_module = {id(s.module): s for s in layers}
    chain: list[LayerShape] = []
    seen_dense = False
    for leaf in leaves:
        if _hooked(leaf):
            return None
        shape = by_module.get(id(leaf))
        if shape is not None:
            if shape.kind != "linear" or shape.positions != 1 or not isinstance(leaf, nn.Linear):
                return None
            chain.append(shape)
            seen_dense = True
        elif isinstance(leaf, FLATTEN) and not seen_dense:
            continue
        elif type(leaf) in elementwise and seen_dense:
            if any(p.requires_grad for p in leaf.parameters()):
                return None
        else:
            return None
    if by_module.get(id(leaves[-1])) is None or len({id(s.module) for s in chain}) != len(chain):
        return None
    if len(chain) != len(layers):  # a structured layer outside the chain (or used twice)
        return None
    return DenseChain(leaves, chain)


def _weight(layer: LayerShape, scaled: bool = True) -> torch.Tensor:
    """``s W`` of a dense layer (the Jacobian of its output with respect to its input), or ``W`` itself when
    ``scaled`` is false or ``s = 1`` (no copy of a large weight matrix per call)."""
    weight = layer.module.weight
    assert isinstance(weight, torch.Tensor)
    return weight * layer.weight_scale if scaled and layer.weight_scale != 1.0 else weight


@dataclass
class ChainFeatures:
    acts: list[torch.Tensor]  # per dense layer: its input (b, I)
    deltas: list[torch.Tensor | None]  # per dense layer: None (readout), v (b, C), or δ (O, b, C)


class DenseChainBlocks:
    """Block engine for ``outputs="trace"`` on a :class:`DenseChain` (module docstring)."""

    def __init__(self, chain: DenseChain, num_outputs: int) -> None:
        self.chain = chain
        self.num_outputs = num_outputs

    @torch.no_grad()
    def features(self, x: torch.Tensor) -> ChainFeatures:
        shapes = {id(s.module): s for s in self.chain.layers}
        acts: list[torch.Tensor] = []
        gains: list[torch.Tensor | None] = []  # per dense layer: Π φ'(·) of the modules after it
        a = x
        for leaf in self.chain.leaves:
            if id(leaf) in shapes:
                a = a.reshape(a.shape[0], -1)
                acts.append(a)
                gains.append(None)
                a = leaf(a)
                continue
            if gains:  # elementwise: chain rule through it (before the call: in-place modules overwrite a)
                g = derivative(leaf, a)
                if g is not None:
                    gains[-1] = g if gains[-1] is None else gains[-1] * g
            a = leaf(a)
        layers = self.chain.layers
        deltas: list[torch.Tensor | None] = [None] * len(layers)
        if len(layers) >= 2:
            readout = layers[-1]
            w = _weight(readout)  # (O, C)
            g = gains[-2]
            norm = w.square().sum(0).sqrt()
            deltas[-2] = norm.expand(a.shape[0], -1) if g is None else g * norm
            if len(layers) >= 3:
                delta = w.unsqueeze(1).expand(-1, a.shape[0], -1)  # (O, b, C): δ^o before the gain
                delta = delta.contiguous() if g is None else delta * g
                for i in range(len(layers) - 3, -1, -1):
                    nxt = layers[i + 1]
                    o, b = delta.shape[:2]
                    delta = (delta.reshape(o * b, -1) @ _weight(nxt, scaled=False)).reshape(o, b, -1)
                    if nxt.weight_scale != 1.0:  # s on the (O·b, C) product, not on the weight matrix
                        delta.mul_(nxt.weight_scale)
                    gain = gains[i]
                    if gain is not None:
                        delta.mul_(gain)
                    deltas[i] = delta
        return ChainFeatures(acts, deltas)

    def pair(self, f1: ChainFeatures, f2: ChainFeatures) -> torch.Tensor:
        total: torch.Tensor | None = None
        for s, a1, a2, d1, d2 in zip(self.chain.layers, f1.acts, f2.acts, f1.deltas, f2.deltas, strict=True):
            ka = (s.weight_scale**2) * (a1 @ a2.T)
            if s.has_bias:
                ka = ka + s.bias_scale**2
            if d1 is None or d2 is None:
                part = ka * self.num_outputs
            elif d1.ndim == 2:
                part = ka * (d1 @ d2.T)
            else:  # Σ_o δ^o δ'^oᵀ as O products on the output-major tensors
                part = ka * torch.bmm(d1, d2.transpose(1, 2)).sum(0)
            total = part if total is None else total + part
        assert total is not None
        return total
