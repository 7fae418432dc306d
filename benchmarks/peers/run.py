"""tangentlab vs neural-tangents, side by side: every row of ``cases.py``, both libraries, fresh processes.

Run:  make bench-peers                      (builds .venv-peers with neural-tangents, then this driver)
      .venv/bin/python benchmarks/peers/run.py --peers-python .venv-peers/bin/python [--quick] [--reps 3]

For each repetition, every row runs once per library, each in a fresh process (``tl_side.py`` under this
interpreter, ``nt_side.py`` under ``--peers-python``), the two interleaved and their order alternated from row to
row and repetition to repetition so that a change of machine load hits both. Each process excludes its own warm-up
and compilation (see the side scripts). The table gives the median over repetitions of each, and the ratio
tangentlab / neural-tangents (below 1: tangentlab faster). It is printed and written to ``--out``
(default ``out/bench-peers.md``). ``--quick``: small rows, 1 repetition — to check that the bench works, not to
compare. By default neither library's thread count is changed (both use all cores); ``--threads N`` sets both
(OpenMP/MKL for torch, XLA's intra-op threads). On a loaded machine multi-threaded torch waits on descheduled threads
(seen here: an eNTK call of 0.44 s single-threaded took 12 s with 2 threads at load average 18): run it on a quiet
machine, or with ``--threads 1``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from cases import case, rows  # noqa: E402


def thread_env(threads: int | None) -> dict[str, str]:
    """The environment of both sides: unchanged, or ``threads`` CPU threads for torch (OpenMP/MKL) and XLA."""
    env = dict(os.environ)
    if threads is not None:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
        flags = f"--xla_cpu_multi_thread_eigen={'false' if threads == 1 else 'true'}"
        env["XLA_FLAGS"] = (
            f"{env.get('XLA_FLAGS', '')} {flags} intra_op_parallelism_threads={threads}".strip()
        )
    return env


def run_side(
    python: str, script: str, name: str, n: int, quick: bool, timeout: float, env: dict[str, str]
) -> dict[str, object]:
    cmd = [python, str(HERE / script), name, str(n), *(["--quick"] if quick else [])]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"exit {done.returncode}: {tail[:200]}"}
    result: dict[str, object] = json.loads(lines[-1])
    return result


def fmt(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    return f"{seconds:.3g} s" if seconds < 100 else f"{seconds:.0f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--peers-python", default=".venv-peers/bin/python")
    parser.add_argument("--quick", action="store_true", help="small rows and 1 repetition (a smoke test)")
    parser.add_argument("--reps", type=int, default=None, help="repetitions (default 3; 1 with --quick)")
    parser.add_argument("--only", nargs="*", default=None, help="case names to run (default: all)")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per process")
    parser.add_argument("--out", default="out/bench-peers.md")
    parser.add_argument(
        "--threads", type=int, default=None, help="CPU threads for both libraries (default: their own choice)"
    )
    args = parser.parse_args()
    env = thread_env(args.threads)
    reps = args.reps or (1 if args.quick else 3)
    table = [(name, n) for name, n in rows(args.quick) if args.only is None or name in args.only]
    sides = {"tl": (sys.executable, "tl_side.py"), "nt": (args.peers_python, "nt_side.py")}
    times: dict[tuple[str, int, str], list[float]] = {}
    notes: dict[tuple[str, int, str], str] = {}
    started = time.time()
    for rep in range(reps):
        for index, (name, n) in enumerate(table):
            order = ["tl", "nt"] if (rep + index) % 2 == 0 else ["nt", "tl"]
            for side in order:
                python, script = sides[side]
                result = run_side(python, script, name, n, args.quick, args.timeout, env)
                key = (name, n, side)
                if "error" in result:
                    notes[key] = str(result["error"])
                else:
                    times.setdefault(key, []).append(float(result["seconds"]))  # type: ignore[arg-type]
                    notes.setdefault(key, str(result.get("impl", "")))
                shown = result.get("seconds", result.get("error"))
                print(f"[rep {rep + 1}/{reps}] {name} n={n} {side}: {shown}", file=sys.stderr, flush=True)
    lines = [
        f"tangentlab vs neural-tangents ({'quick, ' if args.quick else ''}medians of {reps}; "
        f"{'default threads' if args.threads is None else f'{args.threads} thread(s)'}; "
        f"{platform.node()}, {time.strftime('%Y-%m-%d %H:%M', time.localtime(started))}, "
        f"{time.time() - started:.0f} s in all)",
        "",
        "| case | input | n | neural-tangents | tangentlab | tangentlab / nt | nt implementation |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, n in table:
        med = {s: statistics.median(times[(name, n, s)]) if (name, n, s) in times else None for s in sides}
        ratio = f"{med['tl'] / med['nt']:.2f}" if med["tl"] is not None and med["nt"] else "—"
        errors = "; ".join(
            f"{s}: {notes[(name, n, s)]}" for s in sides if med[s] is None and (name, n, s) in notes
        )
        impl = notes.get((name, n, "nt"), "") if med["nt"] is not None else ""
        spec = case(name, args.quick)
        shape = "×".join(map(str, spec["shape"]))  # type: ignore[call-overload]
        lines.append(
            f"| {spec['label']} | {shape} | {n} | {fmt(med['nt'])} | {fmt(med['tl'])} | {ratio} | {impl}{errors} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"written to {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
