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

from tangentlab.kernels._contract import contract
from tangentlab.kernels._jacobian import JacobianBlocks
from tangentlab.kernels._probe import LayerShape


def _patches(module: nn.Conv1d | nn.Conv2d, a: torch.Tensor) -> torch.Tensor:
    """Input patches of a conv layer as (b, positions, C_in·kernel area), padded exactly as the layer pads."""
    mode = "constant" if module.padding_mode == "zeros" else module.padding_mode
    a = F.pad(a, module._reversed_padding_repeated_twice, mode=mode)
    if isinstance(module, nn.Conv1d):
        a = a.unsqueeze(2)
        kernel, dilation, stride = (1, *module.kernel_size), (1, *module.dilation), (1, *module.stride)
    else:
        kernel, dilation, stride = module.kernel_size, module.dilation, module.stride
    cols = F.unfold(a, kernel_size=kernel, dilation=dilation, stride=stride)
    return cols.transpose(1, 2)


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
    ) -> None:
        self.model = model
        self.layers = layers
        self.strategies = strategies
        self.outputs = outputs
        self._other = JacobianBlocks(model, other_params, outputs) if other_params else None

    def _capture(
        self, x: torch.Tensor
    ) -> tuple[torch.Tensor, dict[int, list[tuple[torch.Tensor, torch.Tensor]]]]:
        records: dict[int, list[tuple[torch.Tensor, torch.Tensor]]] = {id(s.module): [] for s in self.layers}

        def hook(module: nn.Module, args: tuple[object, ...], kwargs: dict[str, object], out: torch.Tensor):
            a = args[0] if args else kwargs["input"]
            assert isinstance(a, torch.Tensor)
            # Clone both: later in-place ops (ReLU(inplace=True), x += ...) must not rewrite what we keep.
            records[id(module)].append((a.detach().clone(), out))
            return out.clone()

        handles = [s.module.register_forward_hook(hook, with_kwargs=True) for s in self.layers]
        try:
            with torch.enable_grad():
                out = self.model(x)
        finally:
            for h in handles:
                h.remove()
        return out.reshape(x.shape[0], -1), records

    def _deltas(self, out: torch.Tensor, zs: list[torch.Tensor]) -> list[torch.Tensor]:
        """``∂f_o/∂z`` for every output ``o`` and every captured layer output ``z``: list of (O, *z.shape)."""
        b, o = out.shape
        live = [i for i, z in enumerate(zs) if z.requires_grad]
        grads: list[torch.Tensor | None] = [None] * len(zs)
        if live and out.requires_grad:
            targets = [zs[i] for i in live]
            basis = torch.eye(o, dtype=out.dtype, device=out.device).unsqueeze(1).expand(o, b, o)
            try:
                got = torch.autograd.grad(
                    out,
                    targets,
                    grad_outputs=basis,
                    is_grads_batched=True,
                    allow_unused=True,
                    retain_graph=True,
                )
            except RuntimeError:  # an op without a batching rule: same numbers, one reverse pass per output
                per_output = [
                    torch.autograd.grad(
                        out, targets, grad_outputs=basis[k], allow_unused=True, retain_graph=True
                    )
                    for k in range(o)
                ]
                got = tuple(
                    None if per_output[0][j] is None else torch.stack([g[j] for g in per_output])  # type: ignore[misc]
                    for j in range(len(targets))
                )
            for i, g in zip(live, got, strict=True):
                grads[i] = g
        return [
            torch.zeros((o, *z.shape), dtype=z.dtype, device=z.device) if g is None else g.detach()
            for g, z in zip(grads, zs, strict=True)
        ]

    def features(self, x: torch.Tensor) -> StructuredFeatures:
        out, records = self._capture(x)
        flat_zs = [z for s in self.layers for _, z in records[id(s.module)]]
        flat_deltas = iter(self._deltas(out, flat_zs))
        grams: list[_GramFeatures] = []
        jac_parts: list[torch.Tensor] = []
        b, o = out.shape
        for s in self.layers:
            acts, deltas = [], []
            for a, _ in records[id(s.module)]:
                d = next(flat_deltas)
                if s.kind == "linear":
                    acts.append(a.reshape(b, -1, s.in_features))
                    deltas.append(d.reshape(o, b, -1, s.out_features).transpose(0, 1))
                else:
                    acts.append(_patches(s.module, a))  # type: ignore[arg-type]
                    deltas.append(d.reshape(o, b, s.out_features, -1).permute(1, 0, 3, 2))
            if not acts:
                continue
            A = torch.cat(acts, dim=1)  # (b, T, I)
            D = torch.cat(deltas, dim=2)  # (b, O, T, C)
            if self.strategies[s.name] == "gram":
                grams.append(_GramFeatures(A, D, s))
            else:
                jac_parts.append(s.weight_scale * torch.einsum("botc,bti->boci", D, A).reshape(b, o, -1))
                if s.has_bias:
                    jac_parts.append(s.bias_scale * D.sum(2))
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
