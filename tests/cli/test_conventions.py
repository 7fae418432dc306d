"""CLI conventions: --version from the one version source, help readable at 80 columns, completion, -q/--quiet."""

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

import tangentlab
from tangentlab import cli
from tangentlab.cli import app
from tests.runner.conftest import REPO, write_sweep

runner = CliRunner()


def _commands() -> list[tuple[list[str], Any]]:
    """Every command path (``[]`` the top level, ``["configs", "copy"]``, ...) with its click command."""
    root = typer.main.get_command(app)
    out: list[tuple[list[str], Any]] = []

    def walk(cmd: Any, path: list[str]) -> None:
        out.append((path, cmd))
        if hasattr(cmd, "commands"):  # a group (typer may vendor its own click)
            for name, sub in cmd.commands.items():
                walk(sub, [*path, name])

    walk(root, [])
    return out


def test_version_has_one_source():
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "version" not in pyproject["project"] and "version" in pyproject["project"]["dynamic"]
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {
        "attr": "tangentlab._version.__version__"
    }
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output == f"tangentlab {tangentlab.__version__}\n"
    assert re.fullmatch(r"\d+\.\d+\.\d+", tangentlab.__version__)


@pytest.mark.parametrize(
    ("path", "command"), _commands(), ids=lambda p: " ".join(p) if isinstance(p, list) else ""
)
def test_help_fits_80_columns_and_names_every_option_in_full(path: list[str], command: Any):
    result = runner.invoke(app, [*path, "--help"], terminal_width=80, env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    if hasattr(command, "commands"):  # a group's command list: short helps in full, not cut with "..."
        assert not [ln for ln in lines if ln.endswith("...") and not ln.startswith("Usage:")], result.output
    assert max(len(line) for line in lines) <= 80, [line for line in lines if len(line) > 80]
    for param in command.params:
        for opt in [*param.opts, *param.secondary_opts]:
            if opt.startswith("-"):
                assert re.search(rf"(^|[\s,/]){re.escape(opt)}([\s,/=]|$)", result.output, re.M), opt


def test_shell_completion_script_is_available():
    result = runner.invoke(app, ["--show-completion", "bash"])
    assert result.exit_code == 0 and "_TANGENTLAB_COMPLETE" in result.output.upper()


def test_quiet_silences_status_lines_but_not_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(cli, "QUIET", {"on": False})
    path = write_sweep(tmp_path)
    loud = runner.invoke(app, ["run", str(path), "--out", str(tmp_path / "a"), "--no-progress"])
    assert loud.exit_code == 0 and "4 runs" in loud.output
    quiet = runner.invoke(app, ["-q", "run", str(path), "--out", str(tmp_path / "b")])
    assert quiet.exit_code == 0 and quiet.output == ""
    assert (tmp_path / "b" / "results.sqlite").is_file()
    bad = runner.invoke(app, ["--quiet", "run", str(tmp_path / "missing.yaml")])
    assert bad.exit_code == 2 and "missing.yaml" in bad.output
