"""Packaged sweep files (``tangentlab configs``, ``run NAME``) and ``tangentlab studies --params``."""

from pathlib import Path
from typing import Literal

import pytest
import yaml
from pydantic import BaseModel, Field, PositiveInt
from typer.testing import CliRunner

from tangentlab._packaged import (
    attribute_docs,
    copy_config,
    packaged_config_text,
    packaged_configs,
    params_table,
    resolve_config,
)
from tangentlab.cli import app
from tangentlab.runner import load_sweep
from tangentlab.studies import get_study, list_studies
from tests.runner.conftest import REPO

runner = CliRunner()
PACKAGE_CONFIGS = REPO / "src" / "tangentlab" / "configs"


def test_every_yaml_under_the_package_is_listed_and_the_repo_folder_is_the_same_folder():
    on_disk = sorted(
        p.relative_to(PACKAGE_CONFIGS).with_suffix("").as_posix() for p in PACKAGE_CONFIGS.rglob("*.yaml")
    )
    assert packaged_configs() == on_disk
    assert {
        "quick/lazy",
        "quick/dispersion",
        "full/scaling",
        "paper/scaling",
        "paper/scaling_cifar10",
    } <= set(on_disk)
    assert (REPO / "configs").resolve() == PACKAGE_CONFIGS.resolve()  # one source of truth


@pytest.mark.parametrize("name", packaged_configs())
def test_every_packaged_config_loads_as_a_sweep(name: str, tmp_path: Path, cifar_data: Path):
    path = resolve_config(Path(name), tmp_path)
    assert path.read_text() == (PACKAGE_CONFIGS / f"{name}.yaml").read_text()
    sweep, study, runs = load_sweep(path, get_study)
    assert sweep.study == study.name and len(runs) >= 1


def test_resolve_prefers_an_existing_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "quick").mkdir()
    own = tmp_path / "quick" / "lazy.yaml"
    own.write_text("study: lazy\n")
    assert resolve_config(Path("quick/lazy.yaml"), tmp_path / "scratch") == Path("quick/lazy.yaml")
    written = resolve_config(Path("quick/lazy"), tmp_path / "scratch")  # no such file: the packaged one
    assert written == tmp_path / "scratch" / "quick" / "lazy.yaml" and written.stem == "lazy"
    with pytest.raises(ValueError, match="tangentlab configs"):
        resolve_config(Path("quick/no_such"), tmp_path / "scratch")


def test_copy_writes_the_text_and_refuses_to_overwrite(tmp_path: Path):
    path = copy_config("quick/uncertainty", tmp_path)
    assert path == tmp_path / "uncertainty.yaml"
    assert yaml.safe_load(path.read_text())["study"] == "uncertainty"
    with pytest.raises(FileExistsError, match="--force"):
        copy_config("quick/uncertainty", tmp_path)
    with pytest.raises(ValueError, match=r"choices: .*full/bandit"):
        packaged_config_text("quick/nope")


def test_cli_configs_lists_copies_and_runs_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    listed = runner.invoke(app, ["configs"])
    assert listed.exit_code == 0 and listed.output.split() == packaged_configs()
    copied = runner.invoke(app, ["configs", "copy", "quick/lazy", "mine"])
    assert copied.exit_code == 0 and (tmp_path / "mine" / "lazy.yaml").is_file()
    again = runner.invoke(app, ["configs", "copy", "quick/lazy", "mine"])
    assert again.exit_code == 2 and "exists already" in again.output
    shown = runner.invoke(app, ["configs", "show", "quick/lazy"])
    assert shown.exit_code == 0 and shown.output == packaged_config_text("quick/lazy")
    missing = runner.invoke(app, ["run", "quick/no_such_config"])
    assert missing.exit_code == 2 and "no such file, nor a packaged config" in missing.output


class _Params(BaseModel):
    """Toy parameters.

    Attributes:
        width: units per layer. Longer text that is not shown.
        kind: the kind of net,
            continued on a second line.
        a, b: two coefficients of ``a x + b``.
    """

    width: PositiveInt = 8
    kind: Literal["mlp", "cnn"] = "mlp"
    a: float = Field(default=1.0, ge=0.0, le=2.0)
    b: float | None = None
    c: int = Field(description="described by the Field itself")


def test_attribute_docs_parses_continuations_and_shared_entries():
    docs = attribute_docs(_Params.__doc__)
    assert docs["kind"] == "the kind of net, continued on a second line."
    assert docs["a"] == docs["b"] == "two coefficients of ``a x + b``."


def test_params_table_types_defaults_and_meanings():
    rows = {name: (t, d, m) for name, t, d, m in params_table(_Params)}
    assert rows["width"] == ("int (gt=0)", "8", "units per layer")
    assert rows["kind"] == ("mlp|cnn", "'mlp'", "the kind of net, continued on a second line")
    assert rows["a"] == ("float (ge=0.0, le=2.0)", "1.0", "two coefficients of a x + b")
    assert rows["b"][:2] == ("float | None", "None")
    assert rows["c"] == ("int", "(required)", "described by the Field itself")


@pytest.mark.parametrize("study", [cls.name for cls in list_studies()])
def test_studies_params_documents_every_field_of_every_study(study: str):
    result = runner.invoke(app, ["studies", "--params", study])
    assert result.exit_code == 0
    fields = get_study(study).Params.model_fields
    for name in fields:
        assert f"  {name}: " in result.output
    undocumented = [name for name, _, _, meaning in params_table(get_study(study).Params) if not meaning]
    assert undocumented == []
    assert max(len(line) for line in result.output.splitlines()) <= 100


def test_studies_params_unknown_study_exits_2():
    result = runner.invoke(app, ["studies", "--params", "nope"])
    assert result.exit_code == 2 and "unknown study 'nope'" in result.output
