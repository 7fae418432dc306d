"""Empirical NTK benchmark: time and peak memory per method, model and n, beside the torch.func tutorial's methods.

Run:  .venv/bin/python benchmarks/entk.py            (the full table; `make run` runs this)
      .venv/bin/python benchmarks/entk.py --quick    (small n only, about a minute)

Every case runs in a fresh subprocess: one warm-up call on 2 examples (torch's lazy initialisation), then the timed
call (the best of 3 when a call takes under a second). Peak memory is the growth of the process's peak resident set
during the timed call (Linux: /proc/self/clear_refs resets VmHWM), on a GPU `torch.cuda.max_memory_allocated`.
All kernels are `outputs="trace"` in float32 (inputs random, seed 0).

Baselines, written here from the torch.func tutorial's description ("Neural Tangent Kernels"):
- `func-jacrev`: per-example Jacobians with vmap(jacrev), contracted with einsum, all at once;
- `func-ntvp`: NTK-vector products (vjp then jvp) vmapped over all pairs of examples and all outputs at once.
A case whose estimated memory exceeds --max-gib is skipped and says so.

The last table compares the achieved GFLOP/s of the structured method's Gram products with a plain matmul of
the same inner size, measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, jacrev, jvp, vjp, vmap

import tangentlab

MODELS = {
    "mlp": "MLP 784-1024-1024-10",
    "cnn": "CNN 28×28 (32-64-64 ch, 3×3)",
    "resnet": "ResNet 32×32×3 (16 ch, 2 blocks)",
}


class Block(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.conv2(torch.relu(self.conv1(x))))


def build(name: str) -> tuple[nn.Module, tuple[int, ...]]:
    torch.manual_seed(0)
    if name == "mlp":
        net = nn.Sequential(
            nn.Linear(784, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(), nn.Linear(1024, 10)
        )
        return net, (784,)
    if name == "cnn":
        net = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(64, 64, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(64 * 7 * 7, 10),
        )
        return net, (1, 28, 28)
    net = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.ReLU(),
        Block(16),
        nn.Conv2d(16, 16, 3, stride=2, padding=1),
        nn.ReLU(),
        Block(16),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 10),
    )
    return net, (3, 32, 32)


def func_jacrev(model: nn.Module, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
    params = {k: v.detach() for k, v in model.named_parameters()}

    def one(p: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return functional_call(model, p, (x.unsqueeze(0),)).squeeze(0)

    j1 = vmap(jacrev(one), (None, 0))(params, x1)
    j2 = vmap(jacrev(one), (None, 0))(params, x2)
    return sum(torch.einsum("aop,bop->ab", j1[k].flatten(2), j2[k].flatten(2)) for k in params)  # type: ignore[return-value]


def func_ntvp(model: nn.Module, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
    params = {k: v.detach() for k, v in model.named_parameters()}

    def one(p: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return functional_call(model, p, (x.unsqueeze(0),)).squeeze(0)

    def pair(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        out, vjp_fn = vjp(lambda p: one(p, a), params)
        basis = torch.eye(out.numel(), dtype=out.dtype)

        def column(v: torch.Tensor) -> torch.Tensor:
            return jvp(lambda p: one(p, b), (params,), vjp_fn(v))[1]

        return torch.diagonal(vmap(column)(basis)).sum()

    return vmap(vmap(pair, (None, 0)), (0, None))(x1, x2)


def estimated_gib(method: str, model: nn.Module, n: int) -> float:
    """Rough memory of the baselines, which hold everything at once (ours are bounded by their memory budget)."""
    p = sum(q.numel() for q in model.parameters())
    if method == "func-jacrev":
        return 2 * n * 10 * p * 4 * 2 / 1024**3
    if method == "func-ntvp":
        return n * n * 10 * p * 4 * 2 / 1024**3
    return 0.0


def _vm_kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field):
                return int(line.split()[1])
    return 0


def measure(fn: Any, device: torch.device) -> tuple[float, float]:
    """(seconds, peak extra GiB) of ``fn()``."""
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        base = _vm_kib("VmRSS") * 1024
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() if device.type == "cuda" else _vm_kib("VmHWM") * 1024
    return seconds, max(0.0, (peak - base) / 1024**3)


def run_case(case: dict[str, Any]) -> dict[str, Any]:
    device = torch.device(case["device"])
    model, shape = build(case["model"])
    model = model.to(device)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn((case["n"], *shape), generator=gen).to(device)
    method = case["method"]

    def call(inputs: torch.Tensor) -> torch.Tensor:
        if method == "func-jacrev":
            return func_jacrev(model, inputs, inputs)
        if method == "func-ntvp":
            return func_ntvp(model, inputs, inputs)
        return tangentlab.empirical_ntk(model, inputs, method=method)

    call(x[:2])  # warm-up
    seconds, gib = measure(lambda: call(x), device)
    if seconds < 1.0:
        seconds = min([seconds] + [measure(lambda: call(x), device)[0] for _ in range(2)])
    chosen = None
    if method == "auto":
        costs = tangentlab.kernels.ntk_cost(model, x)
        chosen = min((c for c in costs.values() if c.feasible), key=lambda c: c.flops).method
    return {**case, "seconds": seconds, "peak_gib": gib, "chosen": chosen}


def run_gram_throughput(device_name: str) -> dict[str, float]:
    """GFLOP/s of the structured Gram products on the MLP (n = 2048) and of a plain matmul of the same sizes."""
    from tangentlab.kernels.methods import probe, trainable_params
    from tangentlab.kernels.methods.structured import StructuredBlocks

    device = torch.device(device_name)
    model, shape = build("mlp")
    model = model.to(device)
    n = 2048
    x = torch.randn((n, *shape), generator=torch.Generator().manual_seed(1)).to(device)
    info = probe(model, x, trainable_params(model))
    engine = StructuredBlocks(
        model, info.layers, {s.name: "gram" for s in info.layers}, {}, "trace", info.num_outputs
    )
    feats = engine.features(x)
    engine.pair(feats, feats)  # warm-up
    seconds = min(measure(lambda: engine.pair(feats, feats), device)[0] for _ in range(3))
    o = info.num_outputs
    flops = sum(2.0 * n * n * (o * s.out_features + s.in_features) + 3.0 * n * n for s in info.layers)
    a = torch.randn(n, o * 1024, device=device)
    torch.mm(a, a.T)
    mm_seconds = min(measure(lambda: torch.mm(a, a.T), device)[0] for _ in range(3))
    return {
        "gram_gflops": flops / seconds / 1e9,
        "gram_seconds": seconds,
        "matmul_gflops": 2.0 * n * n * a.shape[1] / mm_seconds / 1e9,
        "matmul_shape": f"({n}×{a.shape[1]})·({a.shape[1]}×{n})",
    }


def plan(quick: bool, large_n: int) -> list[dict[str, Any]]:
    """Which (model, n, method) cases to run. Slow methods stop at the n where they take minutes."""
    sizes = {"mlp": [32, 256, 2048], "cnn": [32, 256], "resnet": [32, 128]}
    largest = {  # per method and model: the largest n run (the tutorial's ntvp holds n²·O parameter vectors)
        "jacobian": {"mlp": 32, "cnn": 256, "resnet": 128},
        "ntvp": {"mlp": 32, "cnn": 32, "resnet": 32},
        "func-jacrev": {"mlp": 32, "cnn": 32, "resnet": 32},
        "func-ntvp": {"mlp": 8, "cnn": 8, "resnet": 8},
    }
    cases = []
    for model, ns in sizes.items():
        for n in [8, *(ns[:2] if quick else ns)]:
            for method in ["structured", "auto", "jacobian", "ntvp", "func-jacrev", "func-ntvp"]:
                limit = largest.get(method, {}).get(model)
                if (n == 8) == (method == "func-ntvp") and (limit is None or n <= limit):
                    cases.append({"model": model, "n": n, "method": method})
    if not quick:
        cases.append({"model": "mlp", "n": large_n, "method": "auto"})
    return cases


def fmt_row(r: dict[str, Any]) -> str:
    method = r["method"] + (f" → {r['chosen']}" if r.get("chosen") else "")
    if "skipped" in r:
        return f"| {MODELS[r['model']]} | {r['n']} | {method} | skipped: {r['skipped']} | |"
    return f"| {MODELS[r['model']]} | {r['n']} | {method} | {r['seconds']:.4g} | {r['peak_gib']:.3f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small n only")
    parser.add_argument("--large-n", type=int, default=10_000, help="n of the large MLP case")
    parser.add_argument("--max-gib", type=float, default=12.0, help="skip baselines estimated to need more")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--json", help="also write the rows to this file")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--gram", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(json.loads(args.case))))
        return
    if args.gram:
        print(json.dumps(run_gram_throughput(args.device)))
        return

    print(
        f"tangentlab {tangentlab.__version__} · torch {torch.__version__} · device {args.device} · "
        f"{os.cpu_count()} CPU threads · float32, outputs='trace'\n"
    )
    print("| model | n | method | seconds | peak extra GiB |\n|---|---|---|---|---|")
    rows = []
    for case in plan(args.quick, args.large_n):
        case["device"] = args.device
        model, _ = build(case["model"])
        need = estimated_gib(case["method"], model, case["n"])
        if need > args.max_gib:
            row = {**case, "skipped": f"needs ≈{need:.0f} GiB"}
        else:
            proc = subprocess.run(
                [sys.executable, __file__, "--case", json.dumps(case)], capture_output=True, text=True
            )
            if proc.returncode != 0:
                row = {**case, "skipped": f"failed: {proc.stderr.strip().splitlines()[-1][:80]}"}
            else:
                row = json.loads(proc.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(fmt_row(row), flush=True)

    print("\nSpeed-up of `structured` over the tutorial's vmap(jacrev)+einsum (same model, same n):")
    for r in rows:
        if r["method"] == "func-jacrev" and "seconds" in r:
            mine = next(
                (
                    s
                    for s in rows
                    if s["method"] == "structured" and s["model"] == r["model"] and s["n"] == r["n"]
                ),
                None,
            )
            if mine and "seconds" in mine:
                print(f"- {MODELS[r['model']]}, n={r['n']}: {r['seconds'] / mine['seconds']:.0f}×")

    proc = subprocess.run(
        [sys.executable, __file__, "--gram", "--device", args.device], capture_output=True, text=True
    )
    if proc.returncode == 0:
        g = json.loads(proc.stdout.strip().splitlines()[-1])
        print(
            f"\nGram products of `structured` (MLP, n=2048, trace): {g['gram_gflops']:.1f} GFLOP/s "
            f"({g['gram_seconds']:.3f} s) · plain matmul {g['matmul_shape']}: {g['matmul_gflops']:.1f} GFLOP/s"
        )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)


if __name__ == "__main__":
    main()
