"""The linearized network: the first-order Taylor model of a network around its parameters at init.

``f_lin(x; theta) = f(x; theta_0) + J(x; theta_0) (theta - theta_0)`` (Lee et al. 2019, arXiv 1902.06720, eq. 5),
computed with one forward-mode product ``torch.func.jvp`` per call — the Jacobian is never formed. The result is an
``nn.Module`` whose trainable parameters ``theta`` start at ``theta_0``, so :func:`tangentlab.train.fit` trains it
like any network; under gradient descent on MSE its outputs follow
:func:`tangentlab.predict.gradient_descent_mse` (with the per-step map ``I - eta Theta_0 / n``).
"""

from __future__ import annotations

import copy
from typing import cast

import torch
from torch import nn
from torch.func import functional_call, jvp


class LinearizedModel(nn.Module):
    """``f(x; theta_0) + J(x; theta_0) (theta - theta_0)`` for a copy of ``model`` frozen at ``theta_0``.

    Attributes:
        params: the trainable ``theta`` (a ``ParameterList`` in the order of ``model.named_parameters()``,
            trainable ones only), initialised at ``theta_0``.
        param_names: the original names of those parameters.
    """

    _base: nn.Module

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        base = copy.deepcopy(model)
        for p in base.parameters():
            p.requires_grad_(False)
        object.__setattr__(
            self, "_base", base
        )  # a skeleton only: every tensor it uses comes from this module
        named = list(model.named_parameters())
        if not any(p.requires_grad for _, p in named):
            raise ValueError("model: expected at least one trainable parameter, got none")
        self.param_names: tuple[str, ...] = tuple(name for name, p in named if p.requires_grad)
        self._frozen_names: tuple[str, ...] = tuple(name for name, p in named if not p.requires_grad)
        self.params = nn.ParameterList(nn.Parameter(p.detach().clone()) for _, p in named if p.requires_grad)
        for i, (_, p) in enumerate((nm, p) for nm, p in named if p.requires_grad):
            self.register_buffer(f"theta0_{i}", p.detach().clone())
        for i, name in enumerate(self._frozen_names):
            self.register_buffer(f"frozen_{i}", dict(named)[name].detach().clone())
        self._buffer_names: tuple[str, ...] = tuple(name for name, _ in model.named_buffers())
        for i, (_, b) in enumerate(model.named_buffers()):
            self.register_buffer(f"base_buffer_{i}", b.detach().clone())

    def _constants(self) -> dict[str, torch.Tensor]:
        consts = {name: getattr(self, f"frozen_{i}") for i, name in enumerate(self._frozen_names)}
        consts.update({name: getattr(self, f"base_buffer_{i}") for i, name in enumerate(self._buffer_names)})
        return consts

    def theta0(self) -> dict[str, torch.Tensor]:
        """The expansion point ``theta_0`` by parameter name."""
        return {name: getattr(self, f"theta0_{i}") for i, name in enumerate(self.param_names)}

    def forward_at_init(self, x: torch.Tensor) -> torch.Tensor:
        """``f(x; theta_0)``, the network at its expansion point."""
        return cast(torch.Tensor, functional_call(self._base, {**self.theta0(), **self._constants()}, (x,)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``f(x; theta_0) + J(x; theta_0) (theta - theta_0)``."""
        theta0 = self.theta0()
        consts = self._constants()
        delta = {name: p - theta0[name] for name, p in zip(self.param_names, self.params, strict=True)}

        def net(params: dict[str, torch.Tensor]) -> torch.Tensor:
            return cast(torch.Tensor, functional_call(self._base, {**params, **consts}, (x,)))

        result = jvp(net, (theta0,), (delta,))
        return cast(torch.Tensor, result[0] + result[1])


def linearize(model: nn.Module) -> LinearizedModel:
    """First-order Taylor model of ``model`` around its current parameters, as a trainable ``nn.Module``.

    ``f_lin(x; theta) = f(x; theta_0) + J(x; theta_0)(theta - theta_0)`` (Lee et al. 2019, eq. 5), evaluated with
    ``torch.func.jvp``. ``model`` itself is not changed or referenced afterwards (a copy is kept). Its eNTK is the
    eNTK of ``model`` at ``theta_0``, at every ``theta``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    return LinearizedModel(model)
