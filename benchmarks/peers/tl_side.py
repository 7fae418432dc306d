"""tangentlab's side of one row of the peers bench: build the case, warm up, time one call, print JSON.

Run by ``run.py`` in a fresh process: ``python benchmarks/peers/tl_side.py CASE N [--quick]``. Warm-up (torch's lazy
initialisation, and the per-model caches an eNTK call fills) is two calls on 2 examples, not timed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cases import case

import tangentlab as tl
from tangentlab import arch


def infinite_net(spec: dict[str, object]) -> arch.Layer:
    layers: list[arch.Layer] = []
    for layer in spec["layers"]:  # type: ignore[attr-defined]
        if layer[0] == "conv":
            layers += [arch.Conv(layer[1], layer[2], stride=layer[3]), arch.ReLU()]
        else:
            layers += [arch.Dense(layer[1]), arch.ReLU()]
    readout = {"flatten": [arch.Flatten()], "gap": [arch.GlobalAvgPool()], "none": []}[str(spec["readout"])]
    return arch.serial(*layers, *readout, arch.Dense(1))


def finite_net(spec: dict[str, object]) -> nn.Module:
    torch.manual_seed(0)
    shape = tuple(spec["shape"])  # type: ignore[call-overload]
    modules: list[nn.Module] = []
    channels, spatial = shape[0], list(shape[1:])
    for layer in spec["layers"]:  # type: ignore[attr-defined]
        if layer[0] == "conv":
            _, out, k, s = layer
            modules += [nn.Conv2d(channels, out, k, stride=s, padding=k // 2), nn.ReLU()]
            spatial = [(size + 2 * (k // 2) - k) // s + 1 for size in spatial]
            channels = out
        else:
            modules += [nn.Linear(channels, layer[1]), nn.ReLU()]
            channels = layer[1]
    if spec["readout"] == "flatten":
        modules.append(nn.Flatten())
        channels = channels * int(np.prod(spatial))
    modules.append(nn.Linear(channels, int(spec["outputs"])))  # type: ignore[call-overload]
    return nn.Sequential(*modules)


def inputs(spec: dict[str, object], n: int) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((n, *spec["shape"]))  # type: ignore[misc]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("case")
    parser.add_argument("n", type=int)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    spec = case(args.case, args.quick)
    x = torch.from_numpy(inputs(spec, args.n))
    if spec["kind"] == "infinite":
        net = infinite_net(spec)
        for _ in range(2):
            net.kernel(x[:2])

        def call() -> object:
            return net.kernel(x)
    else:
        model = finite_net(spec)
        x = x.float()
        for _ in range(2):
            tl.empirical_ntk(model, x[:2])

        def call() -> object:
            return tl.empirical_ntk(model, x, outputs="trace")

    start = time.perf_counter()
    call()
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "impl": "tangentlab", "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
