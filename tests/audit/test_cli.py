"""``tangentlab audit`` on the command line: the table, JSON and HTML outputs, and one-line errors (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tangentlab.auditing import Thresholds
from tangentlab.cli import app

MODELS = Path(__file__).resolve().parent / "models.py"
TINY = [
    "--n-train",
    "32",
    "--n-test",
    "64",
    "--probe",
    "8",
    "--steps",
    "10",
    "--checkpoints",
    "2",
    "--no-progress",
]
runner = CliRunner()


def _invoke(spec: str, data: str, *extra: str):
    return runner.invoke(app, ["audit", spec, "--data", data, *TINY, *extra])


def _no_constants(name: str) -> None:
    raise ValueError(f"not strict JSON: {name}")


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("audit")
    result = _invoke(f"{MODELS}:tiny_mlp", "digits", "--out", str(out))
    return result, out


def test_cli_prints_a_verdict_per_criterion_and_writes_json_and_html(cli_run):
    result, out = cli_run
    assert result.exit_code == 0, result.output
    names = list(Thresholds.__dataclass_fields__)
    for name in names:
        assert any(line.startswith(name) and "kernel regime" in line for line in result.stdout.splitlines())
    assert "verdict: kernel regime (all 6 criteria pass)" in result.stdout
    record = json.loads((out / "audit.json").read_text(), parse_constant=_no_constants)  # strict JSON
    assert record["verdict"] == "kernel regime" and record["failing"] == []
    assert [c["name"] for c in record["criteria"]] == names
    for c in record["criteria"]:
        assert c["passed"] and c["value"] < c["threshold"] and c["why"] and c["verdict"] == "kernel regime"
    assert record["settings"]["steps"] == 10 and record["settings"]["optimizer"] == "gd"
    assert len(record["measurements"]["kernel_distance"]) == 3  # steps 0, 5, 10
    page = (out / "report" / "index.html").read_text()
    assert "kernel_velocity" in page and 'src="figures/audit_dynamics.png"' in page
    assert (out / "report" / "figures" / "audit_predictions.png").stat().st_size > 1000


def test_cli_names_the_failing_criteria(tmp_path):
    result = _invoke(
        f"{MODELS}:tiny_mlp",
        "digits",
        "--max-param-change",
        "1e-5",
        "--max-kernel-distance",
        "1e-12",
        "--out",
        str(tmp_path),
    )
    assert result.exit_code == 0, result.output
    assert "verdict: not kernel regime (fails: kernel_distance, param_change)" in result.stdout
    record = json.loads((tmp_path / "audit.json").read_text())
    assert record["failing"] == ["kernel_distance", "param_change"]


@pytest.mark.parametrize(
    ("spec", "data", "message"),
    [
        (
            "no_such_pkg_xyz.models:net",
            "digits",
            "factory: cannot import module 'no_such_pkg_xyz.models' (ModuleNotFoundError: No module named 'no_such_pkg_xyz')",
        ),
        ("missing/models.py:net", "digits", "factory: cannot import 'missing/models.py': no such file"),
        (f"{MODELS}:nope", "digits", f"factory: '{MODELS}' has no attribute 'nope'; its callables: "),
        (f"{MODELS}:NOT_CALLABLE", "digits", "is a int, expected a callable returning a Module"),
        ("tests.audit.models", "digits", "factory: expected 'module:attr' or 'path/to/file.py:attr'"),
        (
            f"{MODELS}:returns_list",
            "digits",
            "models.py:returns_list() returned a list, expected a torch.nn.Module",
        ),
        (
            f"{MODELS}:raises",
            "digits",
            "models.py:raises(seed=0) raised RuntimeError: no model for seed 0 second line",
        ),
        (f"{MODELS}:frozen", "digits", "models.py:frozen() returned a Module with no trainable parameters"),
        (
            f"{MODELS}:wrong_input",
            "digits",
            "does not fit the data 'digits': the forward pass failed on inputs (2, 64): RuntimeError: mat1 and mat2 "
            "shapes cannot be multiplied (2x64 and 10x10); and on (2, 1, 8, 8): RuntimeError",
        ),
        (
            f"{MODELS}:wrong_output",
            "digits",
            "does not fit the data 'digits': on inputs (2, 64) it returned outputs (2, 3), expected (2, 10)",
        ),
        (
            f"{MODELS}:tiny_mlp",
            "mnist1d",
            "does not fit the data 'mnist1d': the forward pass failed on inputs (2, 40)",
        ),
        (f"{MODELS}:tiny_mlp", "cifar", "name: expected one of"),
    ],
)
def test_factory_and_data_errors_exit_2_with_one_line(tmp_path, spec, data, message):
    result = _invoke(spec, data, "--out", str(tmp_path / "out"))
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("tangentlab: ") and message in lines[0], lines[0]
    assert "Traceback" not in result.output and not (tmp_path / "out").exists()


def test_module_spec_resolves_from_the_working_directory(tmp_path, monkeypatch):
    (tmp_path / "my_models_for_audit.py").write_text(
        "from torch import nn\ndef bad():\n    return nn.Linear(3, 10)\n"
    )
    monkeypatch.chdir(tmp_path)
    result = _invoke("my_models_for_audit:bad", "digits")
    assert result.exit_code == 2
    assert "the model of my_models_for_audit:bad does not fit the data 'digits'" in result.stderr


def test_bad_threshold_exits_2(tmp_path):
    result = _invoke(
        f"{MODELS}:tiny_mlp",
        "digits",
        "--max-error-gap",
        "0",
        "--out",
        str(tmp_path),
    )
    assert result.exit_code == 2
    assert result.stderr.strip() == "tangentlab: thresholds.error_gap: expected a finite number > 0, got 0.0"
