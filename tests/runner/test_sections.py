"""A study declares the config sections it reads; a sweep that sets any other one fails to load, naming the field."""

from pathlib import Path

import pytest
import yaml

from tangentlab.runner import ConfigError, load_sweep
from tangentlab.studies import get_study

DISPERSION = {
    "study": "dispersion",
    "data": {"name": "synthetic", "n_train": 8, "n_test": 4, "options": {"input_dim": 4}},
    "params": {"width": 8, "n_inits": 4, "input_dim": 4},
}


def write(tmp_path: Path, **fields: object) -> Path:
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({**DISPERSION, **fields}))
    return path


def test_a_study_reads_what_it_declares(tmp_path):
    _, study, runs = load_sweep(write(tmp_path, train={"steps": 3}), get_study)
    assert study.sections == frozenset({"data", "train.steps"})
    assert runs[0].train.steps == 3 and runs[0].model is None


@pytest.mark.parametrize(
    ("fields", "field", "says"),
    [
        ({"model": {"layer": "Dense", "width": 1}}, "model", "does not read model"),
        ({"train": {"steps": 3, "learning_rate": 0.1}}, "train.learning_rate", "reads only train.{steps}"),
        ({"train": {"optimizer": "adam"}}, "train.optimizer", "reads only train.{steps}"),
        ({"grid": {"train.momentum": [0.0, 0.9]}}, "grid.train.momentum", "reads only train.{steps}"),
        ({"grid": {"model": [{"layer": "Dense", "width": 1}]}}, "grid.model", "does not read model"),
    ],
)
def test_a_section_the_study_ignores_is_a_config_error_naming_the_field(tmp_path, fields, field, says):
    path = write(tmp_path, **fields)
    with pytest.raises(ConfigError) as err:
        load_sweep(path, get_study)
    assert err.value.field == field and says in err.value.detail and str(path) in str(err.value)


@pytest.mark.parametrize("name", ["evolution", "equivalence", "scaling"])
def test_studies_that_build_their_own_nets_reject_a_model(tmp_path, name):
    path = tmp_path / "sweep.yaml"
    path.write_text(
        yaml.safe_dump(
            {"study": name, "data": {"name": "digits", "n_train": 8}, "model": {"layer": "Dense", "width": 1}}
        )
    )
    with pytest.raises(ConfigError, match=r"field 'model'.*does not read model"):
        load_sweep(path, get_study)


def test_fit_kwargs_are_the_arguments_of_train_fit():
    import inspect

    from tangentlab import train
    from tangentlab.runner import TrainConfig

    tc = TrainConfig(
        optimizer="sgd", learning_rate=0.1, steps=7, batch_size=4, momentum=0.9, weight_decay=0.01
    )
    kwargs = tc.fit_kwargs()
    assert kwargs == {
        "optimizer": "sgd",
        "loss": "mse",
        "learning_rate": 0.1,
        "steps": 7,
        "batch_size": 4,
        "momentum": 0.9,
        "weight_decay": 0.01,
    }
    assert set(kwargs) <= set(inspect.signature(train.fit).parameters)
    assert tc.fit_kwargs(learning_rate=0.5, seed=3)["learning_rate"] == 0.5
