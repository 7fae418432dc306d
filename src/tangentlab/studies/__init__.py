"""The studies: each paper's experiments as resumable sweeps (orchestration layer; uses the public numerics API).

``get_study(name)`` accepts a registered name (``tangentlab studies`` lists them) or ``"package.module:ClassName"``
for a user's own :class:`Study` subclass.
"""

from __future__ import annotations

import importlib

from tangentlab.studies._base import ResultRow, RunOutput, Study

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
    """Import the built-in study modules (each registers itself)."""
    for module in _BUILTIN:
        importlib.import_module(f"tangentlab.studies.{module}")


# modules under tangentlab/studies that register a study
_BUILTIN: tuple[str, ...] = (
    "lazy",
    "dispersion",
    "evolution",
    "equivalence",
    "scaling",
    "conditioning",
    "uncertainty",
    "bandit",
    "continual",
)

__all__ = ["STUDIES", "ResultRow", "RunOutput", "Study", "get_study", "list_studies", "register"]
