"""Sweep files written back from stored runs: the settings a report shows as YAML, and the command that reruns them.

The runs of one study in an output folder are resolved configs (:class:`tangentlab.runner.RunConfig`). They are
grouped into sweeps whose grid is a cartesian product (the form a sweep file can express); the values every run
shares become the sweep's fixed fields, with fields equal to their defaults left out. Loading a written sweep gives
back exactly the same run ids (tested), so ``tangentlab run FILE --out DIR`` reproduces, or resumes, the runs.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from tangentlab import arch
from tangentlab.report import StudySection
from tangentlab.runner import DataConfig, RunConfig, StoredRun, TrainConfig
from tangentlab.runner.config import StudyLike


def _flat(config: RunConfig) -> dict[str, Any]:
    """``axis name`` → value for every field a grid axis can set (the model as one value)."""
    dumped = config.model_dump(mode="json")
    out: dict[str, Any] = {"model": dumped["model"]}
    for key, value in dumped["data"].items():
        if key == "options":
            out.update({f"data.options.{k}": v for k, v in value.items()})
        else:
            out[f"data.{key}"] = value
    out.update({f"train.{k}": v for k, v in dumped["train"].items()})
    out.update({f"params.{k}": v for k, v in dumped["params"].items()})
    return out


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _is_product(points: list[dict[str, Any]], fields: list[str]) -> bool:
    distinct = [len({_key(p[f]) for p in points}) for f in fields]
    return len({_key([p[f] for f in fields]) for p in points}) == math.prod(distinct)


def _split(points: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Partition grid points into groups that are each a cartesian product of their varying fields."""
    fields = [f for f in points[0] if len({_key(p.get(f)) for p in points}) > 1]
    if not fields or _is_product(points, fields):
        return [points]
    pivot = min(fields, key=lambda f: len({_key(p[f]) for p in points}))
    parts: dict[str, list[dict[str, Any]]] = {}
    for p in points:
        parts.setdefault(_key(p[pivot]), []).append(p)
    return [group for part in parts.values() for group in _split(part)]


def _defaults(study: StudyLike) -> dict[str, Any]:
    defaults: dict[str, Any] = {f"train.{k}": v for k, v in TrainConfig().model_dump(mode="json").items()}
    data_fields = DataConfig.model_fields
    defaults.update(
        {
            f"data.{k}": f.get_default(call_default_factory=True)
            for k, f in data_fields.items()
            if not f.is_required()
        }
    )
    defaults.update(
        {f"params.{k}": v for k, v in study.Params.model_validate({}).model_dump(mode="json").items()}
        if all(not f.is_required() for f in study.Params.model_fields.values())
        else {}
    )
    if study.default_model is not None:
        defaults["model"] = arch.from_dict(study.default_model).to_dict()
    else:
        defaults["model"] = None
    return defaults


def _axis(field: str) -> str:
    return field.removeprefix("params.")


def _sweep(
    study_name: str, points: list[dict[str, Any]], seeds: list[int], defaults: dict[str, Any]
) -> dict[str, Any]:
    first = points[0]
    varying = [f for f in first if len({_key(p[f]) for p in points}) > 1]
    sweep: dict[str, Any] = {"study": study_name, "data": {"name": first["data.name"]}}
    for field, value in first.items():
        if field in varying or field == "data.name":
            continue
        if field in defaults and _key(value) == _key(defaults[field]):
            continue
        section, _, key = field.partition(".")
        if section == "model":
            sweep["model"] = value
        elif key.startswith("options."):
            sweep["data"].setdefault("options", {})[key.removeprefix("options.")] = value
        else:
            sweep.setdefault(section, {})[key] = value
    sweep = {k: sweep[k] for k in ("study", "data", "model", "train", "params") if k in sweep}
    grid: dict[str, list[Any]] = {}
    for field in varying:
        values: dict[str, Any] = {}
        for p in points:
            values.setdefault(_key(p[field]), p[field])
        grid[_axis(field)] = _ordered(list(values.values()))
    if grid:
        sweep["grid"] = grid
    sweep["seeds"] = len(seeds) if seeds == list(range(len(seeds))) else seeds
    return sweep


def _ordered(values: list[Any]) -> list[Any]:
    """A grid axis in ascending order where its values compare (numbers, strings), so that a written-back sweep does
    not depend on the order the store returned its runs in; as first seen otherwise (mixed types, mappings)."""
    try:
        return sorted(values)
    except TypeError:
        return values


def sweeps_from_runs(configs: Sequence[RunConfig], study: StudyLike) -> list[dict[str, Any]]:
    """Sweep files (as dicts) that expand to exactly the runs ``configs`` of ``study``.

    Runs that differ only in their seed form one grid point; points are grouped into cartesian products (one
    sweep each), and every sweep lists the seeds of its points when they share one seed set (else it is split).
    """
    if not configs:
        return []
    defaults = _defaults(study)
    by_point: dict[str, tuple[dict[str, Any], set[int]]] = {}
    for config in configs:
        flat = _flat(config)
        by_point.setdefault(_key(flat), (flat, set()))[1].add(config.seed)
    by_seeds: dict[str, list[dict[str, Any]]] = {}
    for flat, seeds in by_point.values():
        by_seeds.setdefault(_key(sorted(seeds)), []).append(flat)
    sweeps = []
    for seed_key, points in by_seeds.items():
        for group in _split(points):
            sweeps.append(_sweep(configs[0].study, group, json.loads(seed_key), defaults))
    return sweeps


def to_yaml(sweep: dict[str, Any]) -> str:
    """A sweep as YAML: sections in block style, short lists and mappings inline."""

    class _Dumper(yaml.SafeDumper):
        pass

    def represent_list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
        return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=True)

    _Dumper.add_representer(list, represent_list)
    return str(yaml.dump(sweep, Dumper=_Dumper, sort_keys=False, width=100, allow_unicode=True))


def evidence_note(configs: Sequence[RunConfig], n_failed: int) -> str:
    """Runs and seeds behind a verdict, in one or two sentences, with the caveat that few seeds call for."""
    points: dict[str, set[int]] = {}
    for config in configs:
        points.setdefault(_key({k: v for k, v in _flat(config).items()}), set()).add(config.seed)
    counts = sorted({len(seeds) for seeds in points.values()})
    seeds = sorted({config.seed for config in configs})
    per = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]}–{counts[-1]}"
    text = (
        f"Evidence: {len(configs)} finished runs ({n_failed} failed) at {len(points)} settings, {per} seed(s) "
        f"per setting (seeds {', '.join(map(str, seeds))})."
    )
    if counts[0] < 3:
        text += (
            f" With {counts[0]} seed(s) per setting, spreads and any interval quoted below rest on very few "
            "samples: read the verdict as indicative, and rerun with more seeds before citing it."
        )
    else:
        text += " Intervals quoted below are over these seeds; they do not correct for the many comparisons."
    return text


def reproduce_command(paths: Sequence[str], out_dir: str) -> str:
    """``tangentlab run FILE --out DIR`` for each sweep file, joined by ``&&``."""
    return " && ".join(f"tangentlab run {path} --out {out_dir}" for path in paths)


def with_provenance(
    section: StudySection, study: StudyLike, runs: Sequence[StoredRun], out_dir: Path, target: Path
) -> StudySection:
    """The section with its settings as YAML (also written to ``TARGET/report/sweeps/``), the command that reruns
    its runs into ``out_dir``, and the runs and seeds behind its verdict."""
    done = [r.config for r in runs if r.status == "done"]
    sweeps_dir = target / "report" / "sweeps"
    sweeps_dir.mkdir(parents=True, exist_ok=True)
    texts = [to_yaml(s) for s in sweeps_from_runs(done, study)]
    paths = []
    for i, text in enumerate(texts):
        path = sweeps_dir / f"{study.name}{'' if i == 0 else f'-{i + 1}'}.yaml"
        path.write_text(text, encoding="utf-8")
        paths.append(path.as_posix())
    return replace(
        section,
        settings_yaml="---\n".join(texts),
        reproduce=reproduce_command(paths, out_dir.as_posix()),
        evidence=evidence_note(done, sum(r.status == "failed" for r in runs)),
    )
