"""The ``structured`` method: exact per-layer Gram products for linear and convolution layers.

For a layer ``z_t = s_w W a_t + s_b b`` applied at positions ``t`` (tokens, or the output pixels of a conv whose
``a_t`` are the input patches), ``∂f_o/∂W = s_w Σ_t δ^o_t a_tᵀ`` and ``∂f_o/∂b = s_b Σ_t δ^o_t`` with
``δ^o_t = ∂f_o/∂z_t``. Its NTK contribution is therefore (Novak et al. 2022, "Fast finite width neural tangent
kernel", structured derivatives)

    Θ_l^{oo'}(x, x') = Σ_{t,t'} ⟨δ^o_t(x), δ^{o'}_{t'}(x')⟩ · (s_w² ⟨a_t(x), a_{t'}(x')⟩ + s_b²),

which for a dense layer (one position) costs ``O·C + I`` per pair of examples instead of ``O·C·I``: no
``fan_in × fan_out`` term. Where positions are many (early conv layers) the per-layer Jacobian
``s_w Σ_t δ_t ⊗ a_t`` is cheaper; the cost model picks per layer (``"gram"`` or ``"jacobian"``). The activations
``a`` come from forward hooks, the ``δ`` from one batched reverse pass over the ``O`` outputs. All other trainable
parameters (LayerNorm, embeddings, anything) go through per-example autodiff Jacobians and are summed in.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from tangentlab.kernels._blocks import BlockEngine
from tangentlab.kernels._contract import contract
from tangentlab.kernels._cost import Cost, block_size, layer_strategies, pair_bytes, recomputes
from tangentlab.kernels._functional import Params
from tangentlab.kernels._probe import LayerShape, ModelShape
from tangentlab.kernels.methods._base import NtkMethod, detached, register
from tangentlab.kernels.methods.jacobian import JacobianBlocks


def _patch_view(module: nn.Conv1d | nn.Conv2d, a: torch.Tensor) -> torch.Tensor:
    """Input patches of a conv layer as a strided view (b, C_in, *out_spatial, *kernel), padded as the layer pads.

    A view (``Tensor.unfold``) rather than ``F.unfold``: im2col copies and was 4–9× slower on CPU here.
    """
    mode = "constant" if module.padding_mode == "zeros" else module.padding_mode
    a = F.pad(a, module._reversed_padding_repeated_twice, mode=mode)
    for i, (k, d, st) in enumerate(zip(module.kernel_size, module.dilation, module.stride, strict=True)):
        a = a.unfold(2 + i, (k - 1) * d + 1, st)
        if d > 1:
            a = a[..., ::d]
    return a  # (b, C_in, *out_spatial, *kernel)


_LETTERS = "hwxyz"


def _conv_weight_grads(patches: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """Per-example, per-output weight gradients Σ_t δ_t ⊗ patch_t: (b, O, C_out, C_in·kernel area).

    ``patches`` (b, C_in, *S, *K) from :func:`_patch_view`; ``delta`` (O, b, C_out, *S).
    """
    rank = delta.ndim - 3
    s, k = _LETTERS[:rank], "klmn"[:rank]
    out = torch.einsum(f"boq{s},bc{s}{k}->boqc{k}", delta.transpose(0, 1), patches)
    return out.reshape(out.shape[0], out.shape[1], -1)


def _gram_inputs(kind: str, a: torch.Tensor, module: nn.Module, in_features: int) -> torch.Tensor:
    """A layer's inputs as (b, positions, in_features): tokens of a dense layer or patches of a conv layer."""
    b = a.shape[0]
    if kind == "linear":
        return a.reshape(b, -1, in_features)
    p = _patch_view(module, a)  # type: ignore[arg-type]
    rank = (p.ndim - 2) // 2
    order = [0, *range(2, 2 + rank), 1, *range(2 + rank, p.ndim)]
    return p.permute(*order).reshape(b, -1, in_features)


def _gram_deltas(kind: str, delta: torch.Tensor, out_features: int) -> torch.Tensor:
    """``δ`` (O, b, ...) as (b, O, positions, C_out)."""
    o, b = delta.shape[:2]
    if kind == "linear":
        return delta.reshape(o, b, -1, out_features).transpose(0, 1)
    return delta.reshape(o, b, out_features, -1).permute(1, 0, 3, 2)


@dataclass
class _GramFeatures:
    acts: torch.Tensor  # (b, T, I)
    deltas: torch.Tensor  # (b, O, T, C)
    layer: LayerShape


@dataclass
class StructuredFeatures:
    grams: list[_GramFeatures]
    jacobian: torch.Tensor | None  # (b, O, P) for "jacobian"-strategy layers and all other parameters


class StructuredBlocks:
    def __init__(
        self,
        model: nn.Module,
        layers: list[LayerShape],
        strategies: dict[str, str],
        other_params: dict[str, torch.Tensor],
        outputs: str,
        num_outputs: int,
    ) -> None:
        self.model = model
        self.num_outputs = num_outputs
        self.layers = layers
        self.strategies = strategies
        self.outputs = outputs
        self._other = JacobianBlocks(model, other_params, outputs) if other_params else None

    def _capture(
        self, x: torch.Tensor, keep: int
    ) -> tuple[torch.Tensor, list[list[tuple[torch.Tensor, torch.Tensor]]]]:
        """Outputs (n, O) and, per layer, its uses' (input of the first ``keep`` examples, output) pairs."""
        records: dict[int, list[tuple[torch.Tensor, torch.Tensor]]] = {id(s.module): [] for s in self.layers}

        def hook(
            module: nn.Module, args: tuple[object, ...], kwargs: dict[str, object], out: torch.Tensor
        ) -> torch.Tensor:
            a = args[0] if args else kwargs["input"]
            assert isinstance(a, torch.Tensor)
            # Clone both: later in-place ops (ReLU(inplace=True), x += ...) must not rewrite what we keep.
            records[id(module)].append((a.detach()[:keep].clone(), out))
            return out.clone()

        handles = [s.module.register_forward_hook(hook, with_kwargs=True) for s in self.layers]
        try:
            with torch.enable_grad():
                out = self.model(x)
        finally:
            for h in handles:
                h.remove()
        return out.reshape(x.shape[0], -1), [records[id(s.module)] for s in self.layers]

    def _acts_and_deltas(self, x: torch.Tensor) -> tuple[int, list[list[tuple[torch.Tensor, torch.Tensor]]]]:
        """``O`` and, per layer and use, the input ``a`` (b, ...) and ``δ = ∂f_o/∂z`` (O, b, ...) for all outputs.

        Dense nets take one reverse pass vectorised over the outputs (``is_grads_batched``). Where a layer has
        many positions (convolutions) vmapped conv backward is slow, so the batch is repeated ``O`` times and one
        ordinary reverse pass with one-hot cotangents per copy gives all ``δ`` (2.7–3.6× faster on the benchmark's
        CNN and ResNet, at ``O×`` the activation memory, which the cost model counts).
        """
        b = x.shape[0]
        o = self.num_outputs
        expand = o > 1 and any(s.positions > 1 for s in self.layers)
        out, uses = self._capture(x.repeat(o, *([1] * (x.ndim - 1))) if expand else x, b)
        zs = [z for layer in uses for _, z in layer]
        live = [z.requires_grad for z in zs]
        got: list[torch.Tensor | None] = [None] * len(zs)
        if any(live) and out.requires_grad:
            targets = [z for z, keep in zip(zs, live, strict=True) if keep]
            eye = torch.eye(o, dtype=out.dtype, device=out.device)
            grads: tuple[torch.Tensor | None, ...]
            if expand:
                grads = torch.autograd.grad(out, targets, eye.repeat_interleave(b, 0), allow_unused=True)
            else:
                grads = self._batched_grads(out, targets, eye.unsqueeze(1).expand(o, b, o))
            it = iter(grads)
            got = [next(it) if keep else None for keep in live]
        it_got = iter(got)
        result = []
        for layer in uses:
            pairs = []
            for a, z in layer:
                g = next(it_got)
                shape = (o, b, *z.shape[1:])
                delta = (
                    torch.zeros(shape, dtype=z.dtype, device=z.device)
                    if g is None
                    else g.detach().reshape(shape)
                )
                pairs.append((a, delta))
            result.append(pairs)
        return o, result

    @staticmethod
    def _batched_grads(
        out: torch.Tensor, targets: list[torch.Tensor], basis: torch.Tensor
    ) -> tuple[torch.Tensor | None, ...]:
        try:
            return torch.autograd.grad(
                out, targets, grad_outputs=basis, is_grads_batched=True, allow_unused=True, retain_graph=True
            )
        except RuntimeError:  # an op without a batching rule: same numbers, one reverse pass per output
            per_output = [
                torch.autograd.grad(out, targets, grad_outputs=basis[k], allow_unused=True, retain_graph=True)
                for k in range(basis.shape[0])
            ]
            return tuple(
                None if per_output[0][j] is None else torch.stack([g[j] for g in per_output])
                for j in range(len(targets))
            )

    def features(self, x: torch.Tensor) -> StructuredFeatures:
        o, uses = self._acts_and_deltas(x)
        b = x.shape[0]
        grams: list[_GramFeatures] = []
        jac_parts: list[torch.Tensor] = []
        for s, layer in zip(self.layers, uses, strict=True):
            if not layer:
                continue
            if self.strategies[s.name] == "gram":  # all uses side by side: cross terms between uses count
                A = torch.cat([_gram_inputs(s.kind, a, s.module, s.in_features) for a, _ in layer], dim=1)
                D = torch.cat([_gram_deltas(s.kind, d, s.out_features) for _, d in layer], dim=2)
                grams.append(_GramFeatures(A, D, s))
                continue
            weight: torch.Tensor | float = 0.0
            bias: torch.Tensor | float = 0.0
            for a, d in layer:  # a shared layer's gradient is the sum over its uses
                if s.kind == "linear":
                    A, D = (
                        _gram_inputs("linear", a, s.module, s.in_features),
                        _gram_deltas("linear", d, s.out_features),
                    )
                    weight = weight + torch.einsum("botc,bti->boci", D, A).reshape(b, o, -1)
                    bias = bias + D.sum(2)
                else:
                    weight = weight + _conv_weight_grads(_patch_view(s.module, a), d)  # type: ignore[arg-type, operator]
                    bias = bias + d.transpose(0, 1).flatten(3).sum(3)
            assert isinstance(weight, torch.Tensor) and isinstance(bias, torch.Tensor)
            jac_parts.append(s.weight_scale * weight)
            if s.has_bias:
                jac_parts.append(s.bias_scale * bias)
        if self._other is not None:
            jac_parts.append(self._other.features(x))
        return StructuredFeatures(grams, torch.cat(jac_parts, dim=2) if jac_parts else None)

    def pair(self, f1: StructuredFeatures, f2: StructuredFeatures) -> torch.Tensor:
        total: torch.Tensor | None = None
        for g1, g2 in zip(f1.grams, f2.grams, strict=True):
            part = _gram_pair(g1, g2, self.outputs)
            total = part if total is None else total + part
        if f1.jacobian is not None and f2.jacobian is not None:
            part = contract(f1.jacobian, f2.jacobian, self.outputs)
            total = part if total is None else total + part
        assert total is not None
        return total


def _gram_pair(g1: _GramFeatures, g2: _GramFeatures, outputs: str) -> torch.Tensor:
    s = g1.layer
    A1, A2, D1, D2 = g1.acts, g2.acts, g1.deltas, g2.deltas
    b1, o, t1, c = D1.shape
    b2, t2 = D2.shape[0], D2.shape[2]
    bias = s.bias_scale**2 if s.has_bias else 0.0
    if t1 == 1 and t2 == 1:
        ka = s.weight_scale**2 * (A1[:, 0] @ A2[:, 0].T) + bias  # (b1, b2)
        d1, d2 = D1[:, :, 0], D2[:, :, 0]  # (b, O, C)
        if outputs == "trace":
            return (d1.reshape(b1, o * c) @ d2.reshape(b2, o * c).T) * ka
        if outputs == "full":
            kd = (d1.reshape(b1 * o, c) @ d2.reshape(b2 * o, c).T).reshape(b1, o, b2, o).permute(0, 2, 1, 3)
            return kd * ka[:, :, None, None]
        kd = torch.bmm(d1.transpose(0, 1), d2.permute(1, 2, 0)).permute(1, 2, 0)  # (b1, b2, O)
        return kd * ka[:, :, None]
    if outputs != "trace":  # the cost model sends multi-position layers to the Jacobian strategy then
        raise AssertionError("gram strategy with several positions is only used for outputs='trace'")
    ka = s.weight_scale**2 * torch.einsum("ati,bsi->abts", A1, A2) + bias
    kd = torch.einsum("aotc,bosc->abts", D1, D2)
    return (kd * ka).sum((2, 3))


@register
class StructuredMethod(NtkMethod):
    """A forward and an input-gradient reverse pass, ``(n1 + r·n2)·(1 + O)·F`` (``2·O·F`` when the batch is
    repeated per output, for conv nets); per layer the Gram or the per-layer Jacobian term, whichever is cheaper
    (:func:`tangentlab.kernels._cost.layer_strategies`); the remaining parameters as in ``jacobian``."""

    name = "structured"
    priority = 0

    def cost(
        self,
        shape: ModelShape,
        n1: int,
        n2: int,
        outputs: str,
        itemsize: int,
        budget: float,
        batch_size: int | None,
    ) -> Cost:
        o, f, a = shape.num_outputs, shape.forward_flops, shape.activations
        m = o * o if outputs == "full" else o
        per_pass = (1 + 2 * o) * f
        strategies = layer_strategies(shape, n1, n2, outputs)
        per, pair = 0.0, float(pair_bytes(outputs, o, itemsize))
        # forward and input-gradient reverse passes only (weight gradients are the per-layer terms below); the
        # batch is repeated O times when some layer has several positions (see _acts_and_deltas)
        expand = o > 1 and any(s.positions > 1 for s in shape.layers)
        flops_per_example = (2.0 * o if expand else 1.0 + o) * f + (
            per_pass if shape.num_other_params else 0.0
        )
        flops = 0.0
        jac_params = shape.num_other_params
        for s in shape.layers:
            t, c, i = s.positions, s.out_features, s.in_features
            if strategies[s.name] == "gram":
                per += (t * i + o * t * c) * itemsize * 2
                pair += (t * t * 3 + (m if t == 1 else 0)) * itemsize
                flops += n1 * n2 * 2.0 * (t * t * (o * c + i) if t > 1 else m * c + i)
            else:
                jac_params += s.num_params
                per += (t * i + o * t * c) * itemsize * 2
                flops_per_example += 2.0 * o * t * c * i
        per += 2 * o * jac_params * itemsize + 2 * o * a * itemsize
        flops += 2.0 * n1 * n2 * m * jac_params
        b = block_size(max(n1, n2), per, pair, budget, batch_size)
        flops += (n1 + n2 * recomputes(n1, n2, per, b, budget)) * flops_per_example
        return Cost(self.name, flops, b, int(per), 2 * b * per + b * b * pair <= budget)

    def engine(
        self,
        model: nn.Module,
        params: Params,
        shape: ModelShape,
        outputs: str,
        cost: Cost,
        n1: int,
        n2: int,
        budget: float,
        itemsize: int,
    ) -> BlockEngine:
        strategies = layer_strategies(shape, n1, n2, outputs)
        return StructuredBlocks(
            model, shape.layers, strategies, detached(shape.other_params), outputs, shape.num_outputs
        )
