"""The sweep files shipped inside the package (``tangentlab/configs/**.yaml``), and studies' parameter tables.

A packaged config is named by its path under ``configs/`` without the suffix, e.g. ``quick/lazy``. The repository's
``configs/`` folder is the same folder (a link to ``src/tangentlab/configs``), so the names in the README work in a
checkout and after ``pip install`` alike.
"""

from __future__ import annotations

import re
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel

CONFIG_SUFFIX = ".yaml"


def _root() -> Traversable:
    return resources.files("tangentlab") / "configs"


def _walk(node: Traversable, prefix: str) -> list[str]:
    names: list[str] = []
    for child in node.iterdir():
        if child.is_dir():
            names.extend(_walk(child, f"{prefix}{child.name}/"))
        elif child.name.endswith(CONFIG_SUFFIX):
            names.append(prefix + child.name.removesuffix(CONFIG_SUFFIX))
    return names


def packaged_configs() -> list[str]:
    """The names of the packaged sweep files (``quick/lazy``, ``full/scaling``, ...), sorted."""
    return sorted(_walk(_root(), ""))


def packaged_config_text(name: str) -> str:
    """The YAML text of the packaged config ``name``.

    Raises:
        ValueError: if no packaged config has that name (the message lists the choices).
    """
    name = name.removesuffix(CONFIG_SUFFIX)
    if name not in packaged_configs():
        choices = ", ".join(packaged_configs())
        raise ValueError(f"config: no packaged config named {name!r}; choices: {choices}")
    node = _root()
    *folders, stem = name.split("/")
    for part in folders:
        node = node / part
    return (node / f"{stem}{CONFIG_SUFFIX}").read_text(encoding="utf-8")


def resolve_config(config: Path, scratch: Path) -> Path:
    """``config`` if that file exists; else the packaged config of that name, written to ``scratch``.

    The sweep loader reads a file, so a packaged config is copied out first (``scratch/<name>.yaml``); the
    returned path's stem is the config's own stem (``quick/lazy`` → ``lazy.yaml``), so default output folders
    are the same as for the file in a checkout.

    Raises:
        ValueError: if ``config`` is neither an existing file nor a packaged config's name.
    """
    if config.exists():
        return config
    name = config.as_posix().removesuffix(CONFIG_SUFFIX)
    if name not in packaged_configs():
        raise ValueError(
            f"{config}: no such file, nor a packaged config of that name (`tangentlab configs` lists them)"
        )
    target = scratch / f"{name}{CONFIG_SUFFIX}"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(packaged_config_text(name), encoding="utf-8")
    return target


def copy_config(name: str, directory: Path, *, overwrite: bool = False) -> Path:
    """Write the packaged config ``name`` into ``directory`` (as ``<stem>.yaml``) for editing; return the path.

    Raises:
        ValueError: for an unknown name.
        FileExistsError: if the target exists and ``overwrite`` is false.
    """
    text = packaged_config_text(name)
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{Path(name.removesuffix(CONFIG_SUFFIX)).name}{CONFIG_SUFFIX}"
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target}: exists already (pass --force to overwrite it)")
    target.write_text(text, encoding="utf-8")
    return target


_ENTRY = re.compile(r"^(?P<indent>\s*)(?P<names>[A-Za-z_][\w]*(?:\s*,\s*[A-Za-z_]\w*)*)\s*:\s*(?P<text>.*)$")


def attribute_docs(doc: str | None) -> dict[str, str]:
    """The ``Attributes:`` section of a Google-style docstring as field name → its text (continuations joined).

    An entry naming several fields (``lam, nu: ...``) gives every one of them the same text.
    """
    if not doc:
        return {}
    lines = doc.expandtabs().splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == "Attributes:")
    except StopIteration:
        return {}
    out: dict[str, str] = {}
    entry_indent: int | None = None
    current: list[str] = []
    text: list[str] = []
    for line in lines[start + 1 :]:
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        match = _ENTRY.match(line)
        if entry_indent is None and match:
            entry_indent = indent
        if entry_indent is None or indent < entry_indent:
            break
        if indent == entry_indent and match:
            for n in current:
                out[n] = " ".join(text)
            current = [n.strip() for n in match["names"].split(",")]
            text = [match["text"].strip()]
        else:
            text.append(line.strip())
    for n in current:
        out[n] = " ".join(text)
    return out


def _first_sentence(text: str) -> str:
    match = re.match(r"(.+?[.;])(\s|$)", text)
    return (match[1] if match else text).rstrip(";.")


def plain(text: str) -> str:
    """Docstring markup (``code``, :mod:`x`) stripped for a terminal."""
    text = re.sub(r":\w+:`~?([^`]*)`", r"\1", text)
    return text.replace("``", "")


def _constraints(metadata: list[Any]) -> str:
    """``gt=0, le=1`` from pydantic/annotated-types constraint objects (``Gt(gt=0)``, ``Le(le=1)``)."""
    parts = [
        str(m)[str(m).index("(") + 1 : -1] for m in metadata if re.fullmatch(r"(Gt|Ge|Lt|Le)\(.*\)", str(m))
    ]
    return f" ({', '.join(parts)})" if parts else ""


def _type_name(annotation: Any) -> str:
    if get_origin(annotation) is Annotated:
        base, *metadata = get_args(annotation)
        return _type_name(base) + _constraints(metadata)
    if get_origin(annotation) is Literal:
        return "|".join(str(a) for a in get_args(annotation))
    if get_origin(annotation) in (Union, UnionType):
        return " | ".join(_type_name(a) for a in get_args(annotation))
    if annotation is type(None):
        return "None"
    text = annotation.__name__ if isinstance(annotation, type) else str(annotation)
    return text.replace("typing.", "")


def params_table(model: type[BaseModel]) -> list[tuple[str, str, str, str]]:
    """``(name, type, default, meaning)`` per field of a study's pydantic ``Params`` model, in field order.

    The meaning is the field's ``description`` if it has one, else the first sentence of its entry in the model's
    ``Attributes:`` docstring section.
    """
    docs = attribute_docs(model.__doc__)
    rows = []
    for name, info in model.model_fields.items():
        meaning = plain(info.description or _first_sentence(docs.get(name, "")))
        default = "(required)" if info.is_required() else repr(info.get_default(call_default_factory=True))
        type_name = _type_name(info.annotation) + _constraints(info.metadata)  # e.g. PositiveInt: gt=0
        rows.append((name, type_name, default, meaning))
    return rows
