"""Sweep configuration: the YAML a user writes, and the fully resolved config of one run (its identity).

A sweep file::

    study: lazy                      # a registered study (``tangentlab studies`` lists them)
    data: {name: synthetic, n_train: 64, n_test: 64, options: {input_dim: 8}}
    model: {layer: Serial, layers: [{layer: Dense, width: 256}, ReLU, {layer: Dense, width: 1}]}
    train: {optimizer: gd, learning_rate: 1.0, steps: 500}
    params: {probe_size: 32}         # the study's own parameters (its ``Params`` model); defaults fill the rest
    grid:                            # axes; the sweep is their cartesian product × seeds
      width: [64, 256, 1024]         # a bare name is a study parameter (params.width)
      train.optimizer: [gd, adam]    # a dotted name sets a field of data / train / params; `model` swaps the net
    seeds: 3                         # 0, 1, 2 (or an explicit list)

Every run is a :class:`RunConfig`: the sweep with one value per axis substituted and one seed. Its ``run_id`` is a
hash of that resolved config, the content hashes of the files it reads (``inputs``: an ``npz:PATH`` dataset, a
``module:Class`` study's source; :mod:`tangentlab.runner.inputs`) and the tangentlab version; worker counts and
output folders are not part of it.

:func:`load_sweep` reads a file into its runs (:func:`read_sweep` parses and validates the file as written,
:func:`expand_sweep` expands the grid against a study). Every problem raises :class:`ConfigError`, whose message
names the file, the field path (``train.optimizr``, ``grid.width[1]``, ``study``) and what is allowed.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    ValidationError,
)

from tangentlab import arch
from tangentlab.data import DATASETS, FILE_KINDS, OPTIONS, pool_sizes, split_name
from tangentlab.runner._records import DataConfig, RunConfig, StudyLike, SweepConfig, TrainConfig
from tangentlab.runner._yaml import (
    MAX_FILE_CHARS,
    MAX_YAML_NODES,
    DuplicateKeyError,
    StrictLoader,
    expanded_size,
)
from tangentlab.runner.inputs import input_hashes


class ConfigError(ValueError):
    """A sweep file that cannot be run.

    Attributes:
        source: the file (or other origin) of the config.
        field: the field path, e.g. ``train.optimizr``, ``grid.width[1]``, ``study``.
        detail: what is wrong and what is allowed.
    """

    def __init__(self, source: str | Path, field: str, detail: str) -> None:
        self.source, self.field, self.detail = str(source), field, detail
        super().__init__(f"config error in {source}, field '{field}': {detail}")


def load_sweep(
    path: str | Path, get_study: Callable[[str], StudyLike]
) -> tuple[SweepConfig, StudyLike, list[RunConfig]]:
    """Read a sweep file, find its study and expand its grid.

    Args:
        path: the YAML file.
        get_study: maps the file's ``study`` value to a study (``tangentlab.studies.get_study``); a
            ``ValueError`` from it becomes a :class:`ConfigError` on the field ``study``.

    Returns:
        The sweep as written, its study and its runs (grid points × seeds, in a deterministic order).

    Raises:
        ConfigError: an unreadable file, bad YAML, or a field that fails validation.
    """
    sweep = read_sweep(path)
    try:
        study = get_study(sweep.study)
    except ValueError as err:
        raise ConfigError(path, "study", str(err).removeprefix("study: ")) from None
    return sweep, study, expand_sweep(sweep, study, source=path)


def read_sweep(path: str | Path) -> SweepConfig:
    """The sweep file at ``path`` parsed and validated as written (the grid not yet expanded)."""
    try:
        text = Path(path).read_text()
    except OSError as err:
        raise ConfigError(path, "(file)", f"cannot read it ({err.strerror})") from None
    except UnicodeDecodeError:
        raise ConfigError(path, "(file)", "not a text file (expected UTF-8 YAML)") from None
    if len(text) > MAX_FILE_CHARS:
        raise ConfigError(
            path, "(file)", f"{len(text)} characters; a sweep file has at most {MAX_FILE_CHARS}"
        )
    try:
        raw = yaml.load(text, Loader=StrictLoader)  # a SafeLoader subclass
    except DuplicateKeyError as dup:
        raise ConfigError(
            path, dup.field, f"duplicate key (line {dup.line}); each key may appear once"
        ) from None
    except yaml.YAMLError as err:
        raise ConfigError(path, "(yaml)", f"not valid YAML: {' '.join(str(err).split())}") from None
    size = expanded_size(raw, {})
    if size > MAX_YAML_NODES:
        raise ConfigError(
            path,
            "(yaml)",
            f"expands to {size:.3g} values through aliases; at most {MAX_YAML_NODES} are allowed",
        )
    if not isinstance(raw, dict):
        fields = ", ".join(SweepConfig.model_fields)
        raise ConfigError(path, "(top level)", f"expected a mapping with the fields {fields}; got {raw!r}")
    try:
        return SweepConfig.model_validate(raw)
    except ValidationError as err:
        loc, detail = _first_error(err, SweepConfig)
        if loc and loc[0] == "seeds":
            loc, detail = (
                ("seeds",),
                f"expected a positive int or a non-empty list of ints >= 0; got {raw['seeds']!r}",
            )
        raise ConfigError(path, _dotted(loc), detail) from None


def expand_sweep(sweep: SweepConfig, study: StudyLike, *, source: str | Path = "<config>") -> list[RunConfig]:
    """All runs of ``sweep``: the cartesian product of the grid axes (in file order, the last varying fastest),
    each with every seed (innermost). Params are validated by ``study.Params`` with defaults filled, the model
    (``study.default_model`` when the sweep has none) by ``tangentlab.arch.from_dict`` and stored in its full
    form, the dataset name and options against ``tangentlab.data``. Identical runs are listed once.
    """
    targets = {axis: _axis_target(axis, study, source) for axis in sweep.grid}
    _check_sections(sweep, study, targets, source)
    seen_targets: dict[tuple[str, str], str] = {}
    for axis, target in targets.items():
        if not sweep.grid[axis]:
            raise ConfigError(source, f"grid.{axis}", "expected a non-empty list of values")
        if target in seen_targets:
            raise ConfigError(source, f"grid.{axis}", f"sets the same field as grid.{seen_targets[target]}")
        seen_targets[target] = axis
    seeds = list(range(sweep.seeds)) if isinstance(sweep.seeds, int) else list(sweep.seeds)
    axes = list(sweep.grid.items())
    runs: dict[str, RunConfig] = {}
    for combo in itertools.product(*(range(len(values)) for _, values in axes)):
        fields: dict[str, Any] = {
            "data": sweep.data.model_dump(),
            "train": sweep.train.model_dump(),
            "params": dict(sweep.params),
            "model": sweep.model,
        }
        origin: dict[tuple[str, str], str] = {}
        for (axis, values), index in zip(axes, combo, strict=True):
            section, key = targets[axis]
            origin[(section, key)] = f"grid.{axis}[{index}]"
            if section == "model":
                fields["model"] = values[index]
            elif key.startswith("options."):
                fields["data"]["options"] = {
                    **fields["data"]["options"],
                    key.partition(".")[2]: values[index],
                }
            else:
                fields[section][key] = values[index]
        point = _resolve(sweep.study, fields, study, _Where(source, origin))
        for seed in seeds:
            run = point.model_copy(update={"seed": seed})
            runs.setdefault(run.run_id, run)
    return list(runs.values())


def _check_sections(
    sweep: SweepConfig, study: StudyLike, targets: Mapping[str, tuple[str, str]], source: str | Path
) -> None:
    """A ConfigError for a section (or field) the sweep sets and the study never reads (see ``StudyLike.sections``):
    it would change the runs' identity without changing what they compute."""
    used = getattr(study, "sections", None)
    if used is None:
        return

    def reads(section: str, key: str) -> bool:
        return section in used or f"{section}.{key}" in used

    def ignored(section: str, key: str) -> str:
        partly = sorted(u.partition(".")[2] for u in used if u.startswith(f"{section}."))
        what = f"reads only {section}.{{{', '.join(partly)}}}" if partly else f"does not read {section}"
        return f"study {study.name!r} {what}; remove this field: the study never uses it"

    written: list[tuple[str, str, str]] = []  # (section, key, field path as written)
    if "model" in sweep.model_fields_set and sweep.model is not None:
        written.append(("model", "", "model"))
    if "train" in sweep.model_fields_set:
        written += [("train", key, f"train.{key}") for key in sorted(sweep.train.model_fields_set)]
    if "data" in sweep.model_fields_set:
        written += [("data", key, f"data.{key}") for key in sorted(sweep.data.model_fields_set)]
    written += [
        (section, key, f"grid.{axis}") for axis, (section, key) in targets.items() if section != "params"
    ]
    for section, key, field in written:
        if not reads(section, key.partition(".")[0]):
            raise ConfigError(source, field, ignored(section, key))


class _Where:
    """Names the field a resolved value came from: the grid axis that set it, or the section field."""

    def __init__(self, source: str | Path, origin: Mapping[tuple[str, str], str]) -> None:
        self.source, self.origin = source, origin

    def error(self, section: str, key: str, detail: str) -> ConfigError:
        for (sec, k), axis in self.origin.items():
            if sec == section and (k == key or key.startswith(f"{k}.")):
                return ConfigError(self.source, axis, detail)
        return ConfigError(self.source, f"{section}.{key}" if key else section, detail)


def _resolve(study_name: str, fields: dict[str, Any], study: StudyLike, where: _Where) -> RunConfig:
    try:
        data = DataConfig.model_validate(fields["data"])
    except ValidationError as err:
        loc, detail = _first_error(err, DataConfig)
        raise where.error("data", _dotted(loc), detail) from None
    kind, path = split_name(data.name)
    if kind not in OPTIONS or (kind in FILE_KINDS and not path):
        raise where.error("data", "name", f"expected one of {', '.join(DATASETS)}; got {data.name!r}")
    for option in data.options:
        if option not in OPTIONS[kind]:
            allowed = ", ".join(OPTIONS[kind]) or "none"
            raise where.error("data", f"options.{option}", f"unknown option of {kind!r}; allowed: {allowed}")
    _check_pool(data, where)
    try:
        train = TrainConfig.model_validate(fields["train"])
    except ValidationError as err:
        loc, detail = _first_error(err, TrainConfig)
        raise where.error("train", _dotted(loc), detail) from None
    allowed_params = list(study.Params.model_fields)
    for name in fields["params"]:
        if name not in allowed_params:
            detail = (
                f"not a parameter of study {study.name!r}; allowed: {', '.join(allowed_params) or 'none'}"
            )
            raise where.error("params", name, detail)
    try:
        params = study.Params.model_validate(fields["params"]).model_dump(mode="json")
    except ValidationError as err:
        loc, detail = _first_error(err, study.Params)
        raise where.error("params", _dotted(loc), detail) from None
    model = fields["model"] if fields["model"] is not None else study.default_model
    if model is not None:
        try:
            model = arch.from_dict(model).to_dict()
        except (ValueError, TypeError) as err:
            raise where.error("model", "", f"not a valid architecture description: {err}") from None
    try:
        inputs = input_hashes(data.name, study_name, study)
    except FileNotFoundError:
        raise where.error("data", "name", f"{kind} file {path!r} does not exist") from None
    except OSError as err:
        raise where.error("data", "name", f"cannot read {path!r} ({err.strerror})") from None
    except ValueError as err:  # a CIFAR path without the archive's files
        raise where.error("data", "name", str(err).removeprefix("name: ")) from None
    return RunConfig(study=study_name, data=data, model=model, train=train, params=params, inputs=inputs)


def _check_pool(data: DataConfig, where: _Where) -> None:
    """Sizes that no run could load: more examples than a fixed-size dataset has (checked before any run)."""
    kind, path = split_name(data.name)
    try:
        sizes = pool_sizes(data.name)
    except FileNotFoundError:
        raise where.error("data", "name", f"{kind} file {path!r} does not exist") from None
    except (OSError, ValueError) as err:
        if kind != "npz":
            raise where.error("data", "name", str(err).removeprefix("name: ")) from None
        raise where.error("data", "name", f"cannot read {path!r} as an npz archive ({err})") from None
    if sizes is None:
        return
    train_pool, test_pool = sizes
    n_test = data.n_test or 0
    if test_pool is None:
        need, what = (data.n_train or 0) + data.n_val + n_test, "n_train + n_val + n_test"
    else:
        need, what = (data.n_train or 0) + data.n_val, "n_train + n_val"
        if n_test > test_pool:
            raise where.error(
                "data", "n_test", f"{n_test} exceeds the {test_pool} test examples of {data.name!r}"
            )
    if need > train_pool:
        raise where.error(
            "data", "n_train", f"{what} = {need} exceeds the {train_pool} examples of {data.name!r}"
        )


def _axis_target(axis: str, study: StudyLike, source: str | Path) -> tuple[str, str]:
    """The (section, key) a grid axis sets; a ConfigError for an axis that names nothing."""
    params = list(study.Params.model_fields)
    if axis == "model":
        return ("model", "")
    section, dot, key = axis.partition(".")
    if not dot:
        if axis in params:
            return ("params", axis)
        detail = (
            f"names nothing: a bare axis is a parameter of study {study.name!r} ({', '.join(params) or 'none'}); "
            "otherwise write data.FIELD, train.FIELD, params.FIELD or model"
        )
        raise ConfigError(source, f"grid.{axis}", detail)
    allowed: dict[str, list[str]] = {
        "data": [*DataConfig.model_fields, "options.NAME"],
        "train": list(TrainConfig.model_fields),
        "params": params,
    }
    if section not in allowed:
        raise ConfigError(
            source, f"grid.{axis}", "names nothing; expected model or a data./train./params. field"
        )
    if key in allowed[section] or (section == "data" and key.startswith("options.") and len(key) > 8):
        return (section, key)
    detail = f"names nothing; the fields of {section} are {', '.join(allowed[section]) or 'none'}"
    raise ConfigError(source, f"grid.{axis}", detail)


def _first_error(err: ValidationError, model: type[BaseModel]) -> tuple[tuple[str | int, ...], str]:
    """The location and a readable message of a pydantic error (unknown fields list the allowed ones)."""
    errors = err.errors()
    first = errors[0]
    loc = tuple(first["loc"])
    if first["type"] == "extra_forbidden":
        owner: Any = model
        for part in loc[:-1]:
            field = owner.model_fields.get(part) if isinstance(part, str) else None
            owner = field.annotation if field is not None else None
            if not (isinstance(owner, type) and issubclass(owner, BaseModel)):
                break
        fields = (
            ", ".join(owner.model_fields) if isinstance(owner, type) and issubclass(owner, BaseModel) else "?"
        )
        detail = f"unknown field; allowed fields: {fields}"
    elif first["type"] == "missing":
        detail = "required field is missing"
    else:
        detail = f"{first['msg']}; got {first['input']!r}"
    if len(errors) > 1:
        detail += f" (and {len(errors) - 1} more error{'s' if len(errors) > 2 else ''})"
    return loc, detail


def _dotted(loc: tuple[str | int, ...]) -> str:
    """``("grid", "width", 1)`` → ``grid.width[1]``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


__all__ = [
    "ConfigError",
    "DataConfig",
    "RunConfig",
    "StudyLike",
    "SweepConfig",
    "TrainConfig",
    "expand_sweep",
    "load_sweep",
    "read_sweep",
]
