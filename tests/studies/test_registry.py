"""Every registered study is complete: a package with its report module, quick and full configs that load, and a
section in the README; tests reach the library through public paths only."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

from tangentlab.runner import load_sweep
from tangentlab.studies import Study, get_study, list_studies

ROOT = Path(__file__).resolve().parents[2]
NAMES = [cls.name for cls in list_studies()]


def test_the_builtin_studies_are_registered():
    assert set(NAMES) >= {
        "lazy",
        "dispersion",
        "evolution",
        "equivalence",
        "scaling",
        "conditioning",
        "uncertainty",
        "bandit",
        "continual",
        "ensemble",
        "ntk_update",
        "alt_kernels",
        "fort",
        "scaling_arms",
    }


@pytest.mark.parametrize("name", NAMES)
def test_study_is_a_package_with_a_report_section(name: str):
    cls = type(get_study(name))
    assert issubclass(cls, Study)
    package = importlib.import_module(cls.__module__)
    assert package.__file__ is not None and Path(package.__file__).name == "__init__.py"
    report = importlib.import_module(f"{cls.__module__}.report")
    assert callable(report.section)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("kind", ["quick", "full"])
def test_study_has_configs_that_load(name: str, kind: str):
    path = ROOT / "configs" / kind / f"{name}.yaml"
    assert path.is_file(), f"{name}: expected {path.relative_to(ROOT)}"
    sweep, study, runs = load_sweep(path, get_study)
    assert study.name == name and sweep.study == name and runs


@pytest.mark.parametrize("name", NAMES)
def test_study_has_docs(name: str):
    """A README section, and the package docstring that the docs site's study page shows (docs/hooks.py)."""
    readme = (ROOT / "README.md").read_text()
    assert re.search(rf"^###+ .*`{name}`", readme, re.M), f"README.md: expected a '### `{name}` ...' section"
    package = importlib.import_module(type(get_study(name)).__module__)
    assert package.__doc__ and len(package.__doc__) > 500 and f"``{name}``" in package.__doc__
    hooks = (ROOT / "docs" / "hooks.py").read_text()
    assert "list_studies()" in hooks and "cls.__module__" in hooks  # one generated page per registered study


def _private_imports(path: Path) -> list[str]:
    bad = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "tangentlab":
            names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names if a.name.split(".")[0] == "tangentlab"]
        bad += [f"{path.relative_to(ROOT)}:{node.lineno}: {n}" for n in names if re.search(r"\._", n)]
    return bad


def test_private_import_finder_sees_a_planted_import(tmp_path):
    planted = ROOT / "tests" / "_planted_for_test.py"
    try:
        planted.write_text(
            "from tangentlab.kernels._probe import probe\nfrom tangentlab.studies import _base\n"
        )
        assert len(_private_imports(planted)) == 3
    finally:
        planted.unlink()


# Internals tests still reach (listed so that no new one slips in): the audit's full-kernel size limit (monkeypatched
# to reach the per-output branch cheaply), the CLI's packaged-config and sweep-YAML helpers, the infinite kernel's
# memory-budget hook (monkeypatched to force blocking, tests/kernels/test_budget.py) and the eNTK's per-model memo
# (cleared to check that it is consulted, tests/kernels/test_fast_paths.py).
STILL_PRIVATE = (
    "tangentlab.auditing._measure",
    "tangentlab._packaged",
    "tangentlab._sweep_yaml",
    "tangentlab.arch._base",
    "tangentlab.kernels._cache",
)


def _allowed(name: str) -> bool:
    return any(name == m or name.startswith(f"{m}.") for m in STILL_PRIVATE)


def test_tests_and_examples_import_public_paths_only():
    files = [*sorted((ROOT / "tests").rglob("*.py")), *sorted((ROOT / "examples").rglob("*.py"))]
    hits = [hit for f in files for hit in _private_imports(f)]
    assert [h for h in hits if not _allowed(h.rpartition(": ")[2])] == []
