"""Descriptions from their dict / JSON / YAML form (the inverse of ``Layer.to_dict``/``to_json``/``to_yaml``).

The form is ``{"layer": <name>, <argument>: <value>, ...}``; combinators hold ``"layers": [...]``; a bare
string names a layer without arguments (``"ReLU"``). Example YAML::

    layer: Serial
    layers:
      - {layer: Dense, width: 512, sigma_w: 1.4}
      - ReLU
      - {layer: Activation, fn: torch.sin}
      - {layer: Dense, width: 1}
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from tangentlab.arch._base import LAYERS, Layer, fail


def from_dict(data: dict[str, Any] | str) -> Layer:
    """The description of a dict (or bare layer name); raises ValueError naming the bad field."""
    if isinstance(data, str):
        data = {"layer": data}
    if not isinstance(data, dict) or "layer" not in data:
        raise fail("from_dict", "data", data, "a mapping with a 'layer' field, or a layer name")
    name = data["layer"]
    if name not in LAYERS:
        raise fail("from_dict", "layer", name, "one of " + ", ".join(sorted(LAYERS)))
    cls = LAYERS[name]
    args = {k: v for k, v in data.items() if k != "layer"}
    allowed = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    unknown = sorted(set(args) - set(allowed))
    if unknown:
        raise fail(name, "field", unknown[0], "one of " + ", ".join(allowed))
    if "layers" in args:
        if not isinstance(args["layers"], list | tuple):
            raise fail(name, "layers", args["layers"], "a list of layer descriptions")
        args["layers"] = tuple(from_dict(item) for item in args["layers"])
    try:
        return cls(**args)
    except TypeError as err:
        raise fail(name, "fields", sorted(args), "the fields " + ", ".join(allowed) + f" ({err})") from None


def from_json(text: str) -> Layer:
    """The description of a JSON string written by ``Layer.to_json``."""
    return from_dict(json.loads(text))


def from_yaml(text: str) -> Layer:
    """The description of a YAML document (same form as the dict)."""
    import yaml

    return from_dict(yaml.safe_load(text))
