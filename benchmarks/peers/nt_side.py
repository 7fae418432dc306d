"""neural-tangents' side of one row of the peers bench: build the case with stax, compile, time one call, print JSON.

Runs in its own virtual environment (``.venv-peers``, see the Makefile's ``bench-peers``), never imports tangentlab:
``.venv-peers/bin/python benchmarks/peers/nt_side.py CASE N [--quick]``. jax is imported before numpy (its pinned
wheels need that order); 64-bit mode is on for the infinite rows only (float64 kernels, float32 eNTKs). The kernel function is ``jax.jit``-compiled ahead of time for the row's shapes (compile
time not counted), then one call is timed to ``block_until_ready``. eNTK rows ask for the STRUCTURED_DERIVATIVES
implementation and fall back to neural-tangents' default one if it fails; the JSON says which ran.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import jax  # before numpy
import jax.numpy as jnp
import neural_tangents as nt
import numpy as np
from neural_tangents import stax

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cases import case


def network(spec: dict[str, object]):  # type: ignore[no-untyped-def]
    layers = []
    rank = len(spec["shape"]) - 1  # type: ignore[arg-type]
    for layer in spec["layers"]:  # type: ignore[attr-defined]
        if layer[0] == "conv":
            _, out, k, s = layer
            layers += [stax.Conv(out, (k,) * rank, strides=(s,) * rank, padding="SAME"), stax.Relu()]
        else:
            layers += [stax.Dense(layer[1]), stax.Relu()]
    readout = {"flatten": [stax.Flatten()], "gap": [stax.GlobalAvgPool()], "none": []}[str(spec["readout"])]
    outputs = int(spec.get("outputs", 1))  # type: ignore[call-overload]
    return stax.serial(*layers, *readout, stax.Dense(outputs))


def inputs(spec: dict[str, object], n: int) -> np.ndarray:
    x = np.random.default_rng(0).standard_normal((n, *spec["shape"]))  # type: ignore[misc]
    return np.moveaxis(x, 1, -1) if x.ndim > 2 else x  # channels last


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("case")
    parser.add_argument("n", type=int)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    spec = case(args.case, args.quick)
    jax.config.update("jax_enable_x64", spec["kind"] == "infinite")  # the eNTK rows are float32 throughout
    init_fn, apply_fn, kernel_fn = network(spec)
    impl = "nt default"
    if spec["kind"] == "infinite":
        x = jnp.asarray(inputs(spec, args.n), dtype=jnp.float64)
        compiled = jax.jit(lambda a: kernel_fn(a, None, ("nngp", "ntk"))).lower(x).compile()
        impl = "nt kernel_fn"

        def call() -> object:
            return compiled(x)
    else:
        x = jnp.asarray(inputs(spec, args.n), dtype=jnp.float32)
        _, params = init_fn(jax.random.PRNGKey(0), x.shape)
        compiled = None
        for name, implementation in (
            ("nt structured derivatives", nt.NtkImplementation.STRUCTURED_DERIVATIVES),
            ("nt default (structured derivatives failed)", None),
        ):
            kwargs = {} if implementation is None else {"implementation": implementation}
            try:
                fn = nt.empirical_ntk_fn(apply_fn, trace_axes=(-1,), vmap_axes=0, **kwargs)
                compiled = jax.jit(lambda a, p, fn=fn: fn(a, None, p)).lower(x, params).compile()
                jax.block_until_ready(compiled(x[:1].repeat(x.shape[0], 0), params))
                impl = name
                break
            except Exception as err:
                print(f"{name}: {type(err).__name__}: {err}"[:300], file=sys.stderr)
        if compiled is None:
            raise SystemExit("neural-tangents: no eNTK implementation ran")

        def call() -> object:
            return compiled(x, params)

    start = time.perf_counter()
    jax.block_until_ready(call())
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "impl": impl, "jax": jax.__version__, "nt": nt.__version__}))


if __name__ == "__main__":
    main()
