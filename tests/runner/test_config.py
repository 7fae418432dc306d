"""Sweep files: grid expansion, defaults, run identity and the errors that name file and field."""

from pathlib import Path

import pytest

from tangentlab.runner import ConfigError, RunConfig, load_sweep
from tangentlab.studies import get_study
from tests.runner.conftest import TOY, write_sweep


def load(path: Path) -> list[RunConfig]:
    return load_sweep(path, get_study)[2]


def test_grid_is_the_product_of_axes_times_seeds_in_file_order(tmp_path):
    path = write_sweep(tmp_path, grid={"width": [2, 3], "train.optimizer": ["gd", "adam"]}, seeds=[5, 7])
    runs = load(path)
    got = [(r.params["width"], r.train.optimizer, r.seed) for r in runs]
    want = [(w, o, s) for w in (2, 3) for o in ("gd", "adam") for s in (5, 7)]
    assert got == want
    assert runs[0].params == {
        "width": 2,
        "ridge": 0.1,
        "sleep": 0.0,
        "fail": False,
        "fail_marker": "",
        "log_dir": "",
    }
    assert runs[0].model == {"layer": "Dense", "width": 1, "sigma_w": 1.0, "sigma_b": 0.0}  # default, in full
    assert runs[0].study == TOY


def test_run_id_is_stable_and_changes_with_every_setting(tmp_path, monkeypatch):
    first = load(write_sweep(tmp_path, name="a.yaml"))
    (tmp_path / "other").mkdir()
    again = load(write_sweep(tmp_path / "other", name="b.yaml"))  # another file, same content
    assert [r.run_id for r in first] == [r.run_id for r in again]
    assert all(len(r.run_id) == 16 and int(r.run_id, 16) >= 0 for r in first)
    assert len({r.run_id for r in first}) == len(first) == 4
    base = first[0]
    changed = [
        base.model_copy(update={"seed": 9}),
        base.model_copy(update={"params": {**base.params, "ridge": 0.2}}),
        base.model_copy(update={"data": base.data.model_copy(update={"n_train": 9})}),
        base.model_copy(update={"train": base.train.model_copy(update={"learning_rate": 0.5})}),
        base.model_copy(update={"model": {**base.model, "sigma_w": 2.0}}),  # type: ignore[dict-item]
    ]
    ids = {base.run_id} | {c.run_id for c in changed}
    assert len(ids) == 1 + len(changed)
    before = base.run_id
    monkeypatch.setattr("tangentlab.runner._records.__version__", "9.9.9")  # a new tangentlab version
    assert base.run_id != before


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"train": {"optimizr": "gd"}}, "train.optimizr", "optimizer"),
        ({"studdy": "x"}, "studdy", "allowed fields"),
        ({"study": "no_such_study"}, "study", "no_such_study"),
        ({"data": {"name": "cifar"}}, "data.name", "synthetic"),
        ({"grid": {"width": [2, -3]}}, "grid.width[1]", "greater than 0"),
        ({"grid": {"depth": [1, 2]}}, "grid.depth", "names nothing"),
        ({"grid": {"train.steps": [10, 0]}}, "grid.train.steps[1]", "greater than 0"),
        ({"grid": {"model": [{"layer": "Dens"}]}}, "grid.model[0]", "Dense"),
        ({"params": {"widht": 3}}, "params.widht", "width"),
        ({"data": {"name": "synthetic", "options": {"dim": 3}}}, "data.options.dim", "input_dim"),
        ({"seeds": 0}, "seeds", "positive"),
    ],
)
def test_bad_config_names_file_and_field(tmp_path, fields, field, words):
    path = write_sweep(tmp_path, **fields)
    with pytest.raises(ConfigError) as info:
        load(path)
    assert (info.value.field, info.value.source) == (field, str(path))
    assert str(path) in str(info.value) and field in str(info.value) and words in str(info.value)


def test_unreadable_files_are_config_errors(tmp_path):
    (tmp_path / "bad.yaml").write_text("study: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load(tmp_path / "bad.yaml")
    with pytest.raises(ConfigError, match="cannot read"):
        load(tmp_path / "missing.yaml")
