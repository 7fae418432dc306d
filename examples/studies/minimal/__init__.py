"""Study ``minimal``: does the empirical NTK of a random ReLU net approach its infinite-width kernel as width grows?

A complete study in two files, to copy when adding one (CONTRIBUTING.md walks through it). Claim tested (Jacot,
Gabriel & Hongler 2018, "Neural tangent kernel", arXiv 1806.07572, Thm. 1; the fluctuation rate is from Hanin &
Nica 2020, arXiv 1909.05989): at initialisation, under NTK parametrization, the empirical NTK of one network
converges to the deterministic infinite-width NTK, with relative error ``||Θ̂ − Θ||_F / ||Θ||_F`` shrinking like
``width^(−1/2)``.

One run (``width``, seed): build the model (``config.model`` or the default one-hidden-layer ReLU MLP, hidden
``Dense`` layers ``width`` wide) with the run's seed in float64, take the trace eNTK on the first ``n_inputs`` data
inputs, and compare it with ``description.kernel(x).ntk``. Metric: ``relative_error``.

Run it (from the repository root)::

    PYTHONPATH=examples/studies tangentlab run examples/studies/minimal/quick.yaml --out /tmp/minimal
    PYTHONPATH=examples/studies tangentlab report /tmp/minimal
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from pydantic import BaseModel, ConfigDict, PositiveInt

from tangentlab import arch, empirical_ntk, metrics
from tangentlab.runner import RunConfig
from tangentlab.studies import RunOutput, Study, set_hidden_width


class MinimalParams(BaseModel):
    """Parameters of the ``minimal`` study (a grid axis without a dot names one of these fields).

    Attributes:
        width: units of every hidden ``Dense`` layer.
        n_inputs: how many training inputs the kernels are compared on.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    width: PositiveInt = 256
    n_inputs: PositiveInt = 16


class MinimalStudy(Study):
    """The empirical NTK at init against its infinite-width limit; see the module docstring."""

    name: ClassVar[str] = "minimal"
    title: ClassVar[str] = "Minimal example: the empirical NTK at init approaches its infinite-width limit"
    citation: ClassVar[str] = (
        "Jacot, Gabriel & Hongler 2018 (arXiv 1806.07572); Hanin & Nica 2020 (arXiv 1909.05989)"
    )
    claim: ClassVar[str] = (
        "At initialisation the empirical NTK of one network converges to the infinite-width NTK; its relative "
        "Frobenius error shrinks like width^(−1/2)."
    )
    Params: ClassVar[type[BaseModel]] = MinimalParams
    # the config sections this study reads (any other one set in a config is a config error naming it)
    sections: ClassVar[frozenset[str]] = frozenset({"data", "model"})
    default_model: ClassVar[dict[str, Any] | None] = {
        "layer": "Serial",
        "layers": [{"layer": "Dense", "width": 256}, {"layer": "ReLU"}, {"layer": "Dense", "width": 1}],
    }

    def run(self, config: RunConfig, *, device: str = "cpu") -> RunOutput:
        """Empirical vs infinite-width NTK of one freshly built net."""
        p = MinimalParams.model_validate(config.params)
        ds = config.data.load()
        if p.n_inputs > ds.x_train.shape[0]:
            raise ValueError(
                f"params.n_inputs: expected at most n_train = {ds.x_train.shape[0]}, got {p.n_inputs}"
            )
        x = ds.x_train[: p.n_inputs].to(device)
        description = arch.from_dict(
            set_hidden_width(config.model or dict(self.default_model or {}), p.width, 1)
        )
        net = description.build(ds.input_shape, seed=config.seed, dtype=torch.float64, device=device)
        finite = empirical_ntk(net, x, outputs="trace")
        limit = description.kernel(x).ntk
        return RunOutput(
            metrics={"relative_error": metrics.relative_frobenius_change(finite, limit)},
            artifacts={"ntk_empirical": finite.cpu().numpy(), "ntk_limit": limit.cpu().numpy()},
        )


__all__ = ["MinimalParams", "MinimalStudy"]
