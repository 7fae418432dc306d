"""eNTK methods are registered objects (cost estimate + engine): a new one is one class; ``auto`` ranks them all;
``memory_budget`` means the same thing for ``empirical_ntk``, ``arch ... .kernel`` and ``monte_carlo_kernel``."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
import torch

from tangentlab import arch, empirical_ntk, monte_carlo_kernel
from tangentlab.kernels import DEFAULT_MEMORY_BUDGET, ntk_cost
from tangentlab.kernels.methods import METHODS, Cost, NtkMethod, load, register
from tangentlab.kernels.methods.jacobian import JacobianBlocks, JacobianMethod

D64 = torch.float64


def _net() -> torch.nn.Module:
    return arch.serial(arch.Dense(6), arch.Tanh(), arch.Dense(2)).build((3,), seed=1, dtype=D64)


@pytest.fixture
def slow_copy() -> Iterator[type[NtkMethod]]:
    """A method defined in one class: the jacobian engine under a cost that ``auto`` never prefers."""

    @register
    class SlowJacobian(JacobianMethod):
        name = "slow_jacobian_for_test"
        priority = 99

        def cost(self, shape, n1, n2, outputs, itemsize, budget, batch_size):  # type: ignore[no-untyped-def]
            base = super().cost(shape, n1, n2, outputs, itemsize, budget, batch_size)
            return Cost(self.name, math.inf, base.batch_size, base.bytes_per_example, base.feasible)

    yield SlowJacobian
    METHODS.pop(SlowJacobian.name)


def test_builtin_methods_are_registered_with_their_engines():
    methods = load()
    assert {"jacobian", "ntvp", "structured"} <= set(methods)
    assert all(isinstance(m, NtkMethod) and m.name == name for name, m in methods.items())


def test_a_registered_method_is_usable_by_name_and_costed(slow_copy):
    net = _net()
    g = torch.Generator().manual_seed(0)
    x1, x2 = torch.randn(5, 3, generator=g, dtype=D64), torch.randn(4, 3, generator=g, dtype=D64)
    got = empirical_ntk(net, x1, x2, outputs="full", method=slow_copy.name)
    jac = JacobianBlocks(net, {k: v.detach() for k, v in net.named_parameters()}, "full")
    torch.testing.assert_close(got, jac.pair(jac.features(x1), jac.features(x2)), rtol=1e-12, atol=1e-13)
    costs = ntk_cost(net, x1, x2)
    assert costs[slow_copy.name].flops == math.inf and costs[slow_copy.name].method == slow_copy.name
    assert empirical_ntk(net, x1, x2, method="auto").shape == (5, 4)  # auto still picks a built-in


def test_unknown_method_lists_the_registered_ones():
    with pytest.raises(ValueError, match=r"method: expected one of 'auto', .*'structured'"):
        empirical_ntk(_net(), torch.randn(2, 3, dtype=D64), method="magic")  # type: ignore[arg-type]


def test_one_memory_budget_default_and_results_independent_of_it():
    net = arch.serial(arch.Conv(4, 3), arch.ReLU(), arch.Flatten(), arch.Dense(1))
    x = torch.randn(6, 2, 5, generator=torch.Generator().manual_seed(2), dtype=D64)
    small, default = net.kernel(x, memory_budget=4096), net.kernel(x)
    torch.testing.assert_close(small.ntk, default.ntk, rtol=1e-12, atol=1e-14)
    mc_small = monte_carlo_kernel(net, x, n_seeds=2, memory_budget=20_000)
    mc_default = monte_carlo_kernel(net, x, n_seeds=2)
    torch.testing.assert_close(mc_small.ntk, mc_default.ntk, rtol=1e-12, atol=1e-14)
    assert DEFAULT_MEMORY_BUDGET == 2 * 1024**3
