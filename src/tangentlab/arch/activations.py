"""Elementwise activations: the shared kernel map, the generic ``Activation(fn)`` and the smooth built-ins.

The kernel map of an elementwise ``phi`` (Lee et al. 2018; Jacot et al. 2018; per position pair for feature
maps, Novak et al. 2019): with ``(u, v) ~ N(0, [[K(x, x), K(x, x')], [K(x, x'), K(x', x')]])``,

    K'(x, x') = E[phi(u) phi(v)],        Θ'(x, x') = Θ(x, x') E[phi'(u) phi'(v)].

Activations with closed forms override :meth:`Elementwise.expectation` / :meth:`Elementwise.derivative_expectation`
(:mod:`.arccos`, :mod:`.erf_gelu`); all others use the polar Gauss rule of :mod:`._quadrature` (accuracy documented
there; for smooth activations like tanh, sigmoid and softplus it is below 1e-8 at unit-order variances).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from tangentlab.arch._base import Context, KernelState, Layer, Shape, fail
from tangentlab.arch._quadrature import N_RADIAL, gaussian_expectation


class ElementwiseModule(nn.Module):
    """``x -> fn(x)`` elementwise (for activations that ``torch.nn`` has no module for)."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor], name: str) -> None:
        super().__init__()
        self.fn = fn
        self.name = name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)

    def extra_repr(self) -> str:
        return self.name


class Elementwise(Layer):
    """Base of the activations: shape-preserving, no parameters, kernel map of the module docstring."""

    def phi(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        """``phi'(x)``, by autograd unless a subclass knows it."""
        with torch.enable_grad():
            leaf = x.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(self.phi(leaf).sum(), leaf)
        return grad

    def expectation(self, cov: torch.Tensor, var1: torch.Tensor, var2: torch.Tensor) -> torch.Tensor:
        """``E[phi(u) phi(v)]`` for ``(u, v) ~ N(0, [[var1, cov], [cov, var2]])`` (broadcast elementwise)."""
        return gaussian_expectation(self.phi, self.phi, cov, var1, var2)

    def derivative_expectation(
        self, cov: torch.Tensor, var1: torch.Tensor, var2: torch.Tensor
    ) -> torch.Tensor:
        """``E[phi'(u) phi'(v)]``."""
        return gaussian_expectation(self.derivative, self.derivative, cov, var1, var2)

    def kernel_pair(
        self, cov: torch.Tensor, ntk: torch.Tensor, diag1: torch.Tensor, diag2: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(E[phi(u) phi(v)], ntk * E[phi'(u) phi'(v)])`` with variances ``diag1``/``diag2`` (broadcast against
        ``cov``); subclasses with closed forms override it to share work between the two."""
        return self.expectation(cov, diag1, diag2), ntk * self.derivative_expectation(cov, diag1, diag2)

    def torch_module(self) -> nn.Module:
        return ElementwiseModule(self.phi, self.layer_name)

    def work_factor(self) -> int:
        return 4 * N_RADIAL + 8

    def out_shape(self, in_shape: Shape) -> Shape:
        return in_shape

    def module(self, in_shape: Shape, ctx: Context) -> nn.Module:
        return self.torch_module()

    def kernel_map(self, state: KernelState, in_shape: Shape, ctx: Context) -> KernelState:
        if state.pairs is not None:  # packed pairs (m, ...) of one set of inputs: variances gathered per pair
            d1 = d2 = state.var1
            va, vb, sa, sb = d1[state.pairs[0]], d1[state.pairs[1]], d1, d1
        elif state.spatial == ():
            d1, d2 = state.var1, state.var2
            va, vb, sa, sb = d1[:, None], d2[None, :], d1, d1
        elif state.diagonal:  # var1/var2 are the (n, P) variances themselves
            d1, d2 = state.var1, state.var2
            va, vb, sa, sb = d1[:, None, :], d2[None, :, :], d1, d1
        else:
            d1 = torch.diagonal(state.var1, dim1=-2, dim2=-1)  # (n1, P)
            d2 = torch.diagonal(state.var2, dim1=-2, dim2=-1)
            va, vb = d1[:, None, :, None], d2[None, :, None, :]
            sa, sb = d1[:, :, None], d1[:, None, :]
        nngp, ntk = self.kernel_pair(state.nngp, state.ntk, va, vb)
        var1 = self.expectation(state.var1, sa, sb)
        if state.var2 is state.var1:
            var2 = var1
        elif state.spatial == () or state.diagonal:
            var2 = self.expectation(state.var2, d2, d2)
        else:
            var2 = self.expectation(state.var2, d2[:, :, None], d2[:, None, :])
        return state.replace(nngp=nngp, ntk=ntk, var1=var1, var2=var2)


def resolve_dotted(name: str) -> Any:
    """The object an importable dotted name (``"torch.tanh"``, ``"mypkg.acts.swish"``) refers to."""
    parts = name.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            break
        return obj
    raise fail("Activation", "fn", name, "a callable or an importable dotted name such as 'torch.tanh'")


def dotted_name(fn: Callable[..., Any]) -> str | None:
    """An importable dotted name that resolves to ``fn``, or None."""
    name = getattr(fn, "__name__", None)
    if isinstance(name, str) and getattr(torch, name, None) is fn:
        return f"torch.{name}"
    module, qualname = getattr(fn, "__module__", None), getattr(fn, "__qualname__", None)
    if not module or not qualname or "<" in qualname:
        return None
    try:
        found = resolve_dotted(f"{module}.{qualname}")
    except ValueError:
        return None
    return f"{module}.{qualname}" if found is fn else None


@dataclass(frozen=True)
class Activation(Elementwise):
    """Any elementwise torch function ``fn`` (kernel by quadrature, derivative by autograd).

    Args:
        fn: a callable mapping a tensor to a tensor of the same shape elementwise, or an importable dotted name
            (``"torch.sin"``) so the description can be serialised. A callable is serialised by its dotted name
            when it has one; lambdas and closures cannot be serialised.
    """

    layer_name: ClassVar[str] = "Activation"
    fn: str | Callable[[torch.Tensor], torch.Tensor]

    def __post_init__(self) -> None:
        value = self.fn
        resolved = resolve_dotted(value) if isinstance(value, str) else value
        if not callable(resolved):
            raise fail(
                "Activation", "fn", value, "a callable or an importable dotted name such as 'torch.tanh'"
            )

    @property
    def function(self) -> Callable[[torch.Tensor], torch.Tensor]:
        return resolve_dotted(self.fn) if isinstance(self.fn, str) else self.fn

    def phi(self, x: torch.Tensor) -> torch.Tensor:
        return self.function(x)

    def torch_module(self) -> nn.Module:
        name = self.fn if isinstance(self.fn, str) else (dotted_name(self.fn) or repr(self.fn))
        return ElementwiseModule(self.function, name)

    def to_dict(self) -> dict[str, Any]:
        name = self.fn if isinstance(self.fn, str) else dotted_name(self.fn)
        if name is None:
            raise fail(
                "Activation", "fn", self.fn, "an importable function (not a lambda/closure) to serialise"
            )
        return {"layer": "Activation", "fn": name}


@dataclass(frozen=True)
class Identity(Elementwise):
    """``phi(x) = x``: ``K' = K``, ``Θ' = Θ``."""

    layer_name: ClassVar[str] = "Identity"

    def phi(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ones_like(x)

    def expectation(self, cov: torch.Tensor, var1: torch.Tensor, var2: torch.Tensor) -> torch.Tensor:
        return cov.clone()

    def derivative_expectation(
        self, cov: torch.Tensor, var1: torch.Tensor, var2: torch.Tensor
    ) -> torch.Tensor:
        return torch.ones_like(cov)

    def torch_module(self) -> nn.Module:
        return nn.Identity()

    def work_factor(self) -> int:
        return 4


@dataclass(frozen=True)
class Tanh(Elementwise):
    """``tanh``; kernel by quadrature (no closed form)."""

    layer_name: ClassVar[str] = "Tanh"

    def phi(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x)

    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        return 1.0 - torch.tanh(x) ** 2

    def torch_module(self) -> nn.Module:
        return nn.Tanh()


@dataclass(frozen=True)
class Sigmoid(Elementwise):
    """Logistic sigmoid; kernel by quadrature."""

    layer_name: ClassVar[str] = "Sigmoid"

    def phi(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(x)

    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        s = torch.sigmoid(x)
        return s * (1.0 - s)

    def torch_module(self) -> nn.Module:
        return nn.Sigmoid()


@dataclass(frozen=True)
class Softplus(Elementwise):
    """``log(1 + e^x)`` (``beta = 1``); kernel by quadrature."""

    layer_name: ClassVar[str] = "Softplus"

    def phi(self, x: torch.Tensor) -> torch.Tensor:
        return F.softplus(x)

    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(x)

    def torch_module(self) -> nn.Module:
        return nn.Softplus()
