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

For ``outputs="trace"`` the sum over outputs is taken before the Gram where the structure allows it: a dense layer
whose output reaches the model's output only through elementwise activations and a dense readout ``W`` (the last
hidden layer of an ``nn.Sequential`` MLP) has ``δ^o_c(x) = s W_{oc} g_c(x)`` with ``g`` the activations'
derivative, so ``Σ_o ⟨δ^o(x), δ^o(x')⟩ = ⟨v(x), v(x')⟩`` with ``v_c = Σ_o δ^o_c W_{oc} / ‖W_{:c}‖``: a Gram of
length ``C`` instead of ``O·C`` (:func:`output_contractions`).
"""

from __future__ import annotations

import math
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
from tangentlab.kernels.methods._dense_chain import DenseChainBlocks, dense_chain, sequential_leaves
from tangentlab.kernels.methods.jacobian import JacobianBlocks

ELEMENTWISE = (
    nn.ReLU,
    nn.LeakyReLU,
    nn.Tanh,
    nn.Sigmoid,
    nn.GELU,
    nn.ELU,
    nn.SiLU,
    nn.Softplus,
    nn.Hardtanh,
    nn.Identity,
)
"""Modules that act elementwise (exact classes; the check that allows contracting outputs early)."""


def output_contractions(model: nn.Module, layers: list[LayerShape]) -> dict[str, torch.Tensor]:
    """Dense layers whose ``Σ_o δ^o δ'^o`` reduces to one Gram of length C (module docstring), by name, with the
    readout weight ``W`` (O, C) their ``δ`` is contracted with.

    Only the last dense layer before an ``nn.Sequential``'s dense readout, with nothing but :data:`ELEMENTWISE`
    modules between them, each applied once to feature vectors (one position).
    """
    chain = sequential_leaves(model)
    by_module = {id(s.module): s for s in layers}
    if not chain or id(chain[-1]) not in by_module:
        return {}
    readout = by_module[id(chain[-1])]
    if readout.kind != "linear" or readout.positions != 1:
        return {}
    i = len(chain) - 2
    while i >= 0 and type(chain[i]) in ELEMENTWISE:
        i -= 1
    layer = by_module.get(id(chain[i])) if i >= 0 else None
    if layer is None or layer.kind != "linear" or layer.positions != 1:
        return {}
    weight = readout.module.weight
    assert isinstance(weight, torch.Tensor)
    return {layer.name: weight.detach()}


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


def _cat(parts: list[torch.Tensor], dim: int) -> torch.Tensor:
    """``torch.cat`` without the copy when there is one part (a layer used once)."""
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=dim)


def _patch_matrix(module: nn.Conv1d | nn.Conv2d, a: torch.Tensor) -> torch.Tensor:
    """Input patches as (b, T, C_in·kernel area), in the order of the flattened weight (C_out, C_in, *kernel)."""
    p = _patch_view(module, a)  # (b, C_in, *S, *K)
    rank = (p.ndim - 2) // 2
    order = [0, *range(2, 2 + rank), 1, *range(2 + rank, p.ndim)]
    return p.permute(*order).reshape(p.shape[0], -1, math.prod(module.weight.shape[1:]))


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
    jacobians: list[torch.Tensor]  # (b, O, P_l) per "jacobian"-strategy layer and for all other parameters


class StructuredBlocks:
    def __init__(
        self,
        model: nn.Module,
        layers: list[LayerShape],
        strategies: dict[str, str],
        other_params: dict[str, torch.Tensor],
        outputs: str,
        num_outputs: int,
        contract_outputs: bool = True,
    ) -> None:
        self.model = model
        self.num_outputs = num_outputs
        self.layers = layers
        self.strategies = strategies
        self.outputs = outputs
        self._other = JacobianBlocks(model, other_params, outputs) if other_params else None
        self.contractions = (
            output_contractions(model, layers) if contract_outputs and outputs == "trace" else {}
        )

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
        many positions (convolutions) vmapped conv backward is slow, so one forward pass is followed by ``O``
        ordinary reverse passes, one per output (4.6× faster than repeating the batch ``O`` times for one reverse
        pass, as this did before, on the benchmark's CNN at b = 32: 0.14 s vs 0.32–0.64 s, one thread, loaded
        machine).
        """
        b = x.shape[0]
        o = self.num_outputs
        per_output = o > 1 and any(s.positions > 1 for s in self.layers)
        out, uses = self._capture(x, b)
        zs = [z for layer in uses for _, z in layer]
        live = [z.requires_grad for z in zs]
        got: list[torch.Tensor | None] = [None] * len(zs)
        if any(live) and out.requires_grad:
            targets = [z for z, keep in zip(zs, live, strict=True) if keep]
            eye = torch.eye(o, dtype=out.dtype, device=out.device)
            grads: tuple[torch.Tensor | None, ...]
            # contiguous: the first reverse matmul with a stride-0 cotangent ran 2.5x slower (one thread, n = 256)
            basis = eye.unsqueeze(1).expand(o, b, o).contiguous()
            if per_output:
                grads = self._per_output_grads(out, targets, basis)
            else:
                grads = self._batched_grads(out, targets, basis)
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
            return StructuredBlocks._per_output_grads(out, targets, basis)

    @staticmethod
    def _per_output_grads(
        out: torch.Tensor, targets: list[torch.Tensor], basis: torch.Tensor
    ) -> tuple[torch.Tensor | None, ...]:
        """One reverse pass per output (cotangent ``basis[k]``), as (O, b, ...) views of example-major buffers
        (b, O, ...), written output by output (no stacking copy; the per-layer Jacobians read them per example).
        """
        o = basis.shape[0]
        buffers: list[torch.Tensor | None] = [None] * len(targets)
        for k in range(o):
            grads = torch.autograd.grad(
                out, targets, grad_outputs=basis[k], allow_unused=True, retain_graph=True
            )
            for j, g in enumerate(grads):
                buf = buffers[j]
                if g is None:
                    if buf is not None:  # unused for this output only: zeros
                        buf[:, k].zero_()
                    continue
                if buf is None:  # outputs before k did not reach this target: zeros there
                    buf = buffers[j] = g.new_empty((g.shape[0], o, *g.shape[1:]))
                    buf[:, :k].zero_()
                buf[:, k] = g
        return tuple(None if buf is None else buf.transpose(0, 1) for buf in buffers)

    def features(self, x: torch.Tensor) -> StructuredFeatures:
        o, uses = self._acts_and_deltas(x)
        b = x.shape[0]
        grams: list[_GramFeatures] = []
        jac_parts: list[torch.Tensor] = []
        for s, layer in zip(self.layers, uses, strict=True):
            if not layer:
                continue
            if self.strategies[s.name] == "gram":  # all uses side by side: cross terms between uses count
                A = _cat([_gram_inputs(s.kind, a, s.module, s.in_features) for a, _ in layer], dim=1)
                D = _cat([_gram_deltas(s.kind, d, s.out_features) for _, d in layer], dim=2)
                readout = self.contractions.get(s.name)
                if readout is not None:  # Σ_o before the Gram: (b, O, 1, C) -> (b, 1, 1, C)
                    norm = readout.pow(2).sum(0).sqrt_().clamp_min_(torch.finfo(readout.dtype).tiny)
                    D = _contract_outputs(D[:, :, 0], readout / norm)[:, None, None, :]
                grams.append(_GramFeatures(A, D, s))
                continue
            weight: torch.Tensor | None = None
            bias: torch.Tensor | None = None
            for a, d in layer:  # a shared layer's gradient is the sum over its uses
                if s.kind == "linear":
                    A, D = (
                        _gram_inputs("linear", a, s.module, s.in_features),
                        _gram_deltas("linear", d, s.out_features),
                    )
                    w_use = torch.einsum("botc,bti->boci", D, A).reshape(b, o, -1)
                    b_use = D.sum(2)
                else:  # Σ_t δ_t ⊗ patch_t as one batched product (b, O·C, T) @ (b, T, I)
                    by_example = d.transpose(0, 1).reshape(b, o * s.out_features, -1)
                    w_use = torch.bmm(by_example, _patch_matrix(s.module, a)).view(b, o, -1)  # type: ignore[arg-type]
                    b_use = by_example.sum(2).view(b, o, -1)
                weight = w_use if weight is None else weight + w_use
                bias = b_use if bias is None else bias + b_use
            assert weight is not None and bias is not None
            jac_parts.append(weight.mul_(s.weight_scale))  # fresh tensors: scaled in place
            if s.has_bias:
                jac_parts.append(bias.mul_(s.bias_scale))
        if self._other is not None:
            jac_parts.append(self._other.features(x))
        return StructuredFeatures(grams, jac_parts)

    def pair(self, f1: StructuredFeatures, f2: StructuredFeatures) -> torch.Tensor:
        total: torch.Tensor | None = None
        for g1, g2 in zip(f1.grams, f2.grams, strict=True):
            part = _gram_pair(g1, g2, self.outputs)
            total = part if total is None else total + part
        for j1, j2 in zip(
            f1.jacobians, f2.jacobians, strict=True
        ):  # Σ over parameter groups, no concatenation
            part = contract(j1, j2, self.outputs)
            total = part if total is None else total + part
        assert total is not None
        return total


def _contract_outputs(d: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``Σ_o d[:, o, :] · w[o]`` for ``d`` (b, O, C), ``w`` (O, C): accumulated output by output into one (b, C)
    tensor instead of the (b, O, C) product a broadcast multiply would allocate."""
    out = d[:, 0] * w[0]
    for k in range(1, d.shape[1]):
        out.addcmul_(d[:, k], w[k])
    return out


def _gram_pair(g1: _GramFeatures, g2: _GramFeatures, outputs: str) -> torch.Tensor:
    s = g1.layer
    A1, A2, D1, D2 = g1.acts, g2.acts, g1.deltas, g2.deltas
    b1, o, t1, c = D1.shape
    b2, t2 = D2.shape[0], D2.shape[2]
    bias = s.bias_scale**2 if s.has_bias else 0.0
    if t1 == 1 and t2 == 1:
        ka = s.weight_scale**2 * (A1[:, 0] @ A2[:, 0].T) + bias  # (b1, b2)
        d1, d2 = D1[:, :, 0], D2[:, :, 0]  # (b, O, C)
        if outputs == "trace":  # Σ_o d1[:, o] d2[:, o]ᵀ as O products on the output-major views: no copies
            kd = torch.bmm(d1.transpose(0, 1), d2.permute(1, 2, 0)).sum(0)
            return kd * ka
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
    """A forward and an input-gradient reverse pass per output, ``(n1 + r·n2)·(1 + O)·F``; per layer the Gram or the per-layer Jacobian term, whichever is cheaper
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
        # forward and input-gradient reverse passes only (weight gradients are the per-layer terms below)
        flops_per_example = (1.0 + o) * f + (per_pass if shape.num_other_params else 0.0)
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
        if outputs == "trace" and not shape.other_params:  # an MLP: the backward pass written out
            chain = dense_chain(model, shape.layers, ELEMENTWISE)
            if chain is not None:
                return DenseChainBlocks(chain, shape.num_outputs)
        strategies = layer_strategies(shape, n1, n2, outputs)
        return StructuredBlocks(
            model, shape.layers, strategies, detached(shape.other_params), outputs, shape.num_outputs
        )
