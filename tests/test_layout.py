"""The source tree's own rules: module size, no import cycles, no process-global side effects in library code.

The import graph is read from the source (every ``import`` statement of every module under ``src/tangentlab``,
including those inside functions and ``if TYPE_CHECKING:`` blocks), so a cycle hidden behind a lazy import counts.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "tangentlab"
MAX_LINES = 450
# Process owners, not library code: the CLI is the program (``--threads``), and the runner's worker initialiser
# configures a worker process the runner itself started.
PROCESS_OWNERS = {"tangentlab.cli", "tangentlab.runner.executors"}


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """The tangentlab modules that ``name`` (at ``path``) names in its import statements."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in MODULES else base)
    return {m for m in found if m in MODULES and m != name}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_cycle_finder_finds_a_planted_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_relative_and_absolute_imports_are_resolved():
    graph = {name: _imports(name, path) for name, path in MODULES.items()}
    assert "tangentlab.kernels" in graph["tangentlab"]
    assert "tangentlab.arch._base" in graph["tangentlab.arch.dense"]


def test_no_import_cycles():
    graph = {name: _imports(name, path) for name, path in MODULES.items()}
    assert _cycles(graph) == []


@pytest.mark.parametrize("name", sorted(MODULES))
def test_module_size(name: str):
    n_lines = len(MODULES[name].read_text().splitlines())
    assert n_lines <= MAX_LINES, f"{name}: {n_lines} lines, expected at most {MAX_LINES}"


def _global_side_effects(path: Path) -> list[str]:
    """Calls of ``matplotlib.use``/``mpl.use`` and ``torch.set_num_threads``/``set_num_interop_threads``."""
    bad = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Call):
            fn = ast.unparse(node.func)
            if fn.endswith(("set_num_threads", "set_num_interop_threads")) or fn in (
                "matplotlib.use",
                "mpl.use",
            ):
                bad.append(f"{path.relative_to(SRC)}:{node.lineno}: {fn}")
        elif isinstance(node, ast.ImportFrom) and node.module == "matplotlib":
            bad.extend(
                f"{path.relative_to(SRC)}:{node.lineno}: from matplotlib import use"
                for a in node.names
                if a.name == "use"
            )
    return bad


def test_side_effect_finder_sees_a_planted_call(tmp_path):
    planted = SRC / "tangentlab" / "_planted_for_test.py"
    try:
        planted.write_text(
            "import matplotlib\nimport torch\nmatplotlib.use('Agg')\ntorch.set_num_threads(1)\n"
        )
        assert len(_global_side_effects(planted)) == 2
    finally:
        planted.unlink()


def test_library_code_sets_no_process_globals():
    found = [
        hit
        for name, path in MODULES.items()
        if name not in PROCESS_OWNERS
        for hit in _global_side_effects(path)
    ]
    assert found == []
