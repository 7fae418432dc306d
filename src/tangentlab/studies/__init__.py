"""The studies: each paper's experiments as resumable sweeps (orchestration layer; uses the public numerics API).

``get_study(name)`` accepts a registered name (``tangentlab studies`` lists them) or ``"package.module:ClassName"``
for a user's own :class:`Study` subclass.

Each built-in study is one package, ``tangentlab/studies/<name>/``: ``__init__.py`` holds its ``Params`` and its
:class:`Study` (``run``: one grid point to metrics and artifacts), ``report.py`` its ``section(study, rows,
figures_dir)`` (figures, tables, findings, verdict), and optional helper modules. Everything a study author needs
is re-exported here: the base classes, :func:`register`, the report scaffolding (:func:`tally`, :func:`header`,
:func:`empty_section`, :func:`finite_values`, :func:`finite_mean`), the config guards (:func:`needs_mse`,
:func:`no_model`) and the model helpers (:func:`set_hidden_width`, :func:`widened_net`). CONTRIBUTING.md shows a
minimal study (``examples/studies/minimal``) to copy.
"""

from __future__ import annotations

import importlib
import pkgutil

from tangentlab.studies._base import MetricValue, ResultRow, RunOutput, Study
from tangentlab.studies._models import set_hidden_width, widened_net
from tangentlab.studies._sections import (
    RunTally,
    empty_section,
    finite_mean,
    finite_values,
    header,
    needs_mse,
    no_model,
    tally,
)

STUDIES: dict[str, type[Study]] = {}


def register(cls: type[Study]) -> type[Study]:
    """Class decorator adding a study to the registry under ``cls.name``."""
    STUDIES[cls.name] = cls
    return cls


def get_study(name: str) -> Study:
    """An instance of the study called ``name`` (registered, or ``module:Class``); ValueError if there is none."""
    _load_builtin()
    if name in STUDIES:
        return STUDIES[name]()
    if ":" in name:
        module_name, _, attr = name.partition(":")
        try:
            cls = getattr(importlib.import_module(module_name), attr)
        except (
            Exception
        ) as err:  # ImportError, AttributeError, a relative name (TypeError), errors in the module
            detail = " ".join(str(err).split())
            raise ValueError(f"study: cannot import {name!r} ({type(err).__name__}: {detail})") from None
        if not (isinstance(cls, type) and issubclass(cls, Study)):
            raise ValueError(f"study: {name!r} is not a tangentlab.studies.Study subclass")
        return cls()
    raise ValueError(
        f"study: unknown study {name!r}; choices: {', '.join(sorted(STUDIES))} (or 'module:Class')"
    )


def list_studies() -> list[type[Study]]:
    """The registered studies (built-in ones included), sorted by name."""
    _load_builtin()
    return [STUDIES[name] for name in sorted(STUDIES)]


def _load_builtin() -> None:
    """Import every study package under ``tangentlab/studies`` (each registers itself): adding a study is adding
    its folder."""
    for info in pkgutil.iter_modules(__path__):
        if info.ispkg and not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")


__all__ = [
    "STUDIES",
    "MetricValue",
    "ResultRow",
    "RunOutput",
    "RunTally",
    "Study",
    "empty_section",
    "finite_mean",
    "finite_values",
    "get_study",
    "header",
    "list_studies",
    "needs_mse",
    "no_model",
    "register",
    "set_hidden_width",
    "tally",
    "widened_net",
]
