"""Reading a sweep file's YAML safely: no duplicate keys, and a cap on what aliases may expand to."""

from __future__ import annotations

from typing import Any, cast

import yaml

#: Caps on a sweep file: characters, and values once YAML aliases are expanded (an alias bomb expands to 1e9+).
MAX_FILE_CHARS = 1_000_000
MAX_YAML_NODES = 100_000


class DuplicateKeyError(yaml.YAMLError):
    def __init__(self, field: str, line: int) -> None:
        self.field, self.line = field, line
        super().__init__(f"duplicate key {field!r}")


class StrictLoader(yaml.SafeLoader):
    """YAML's safe loader that refuses a mapping with the same key twice (YAML would keep the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, str | int | float | bool) and key in seen:
                raise DuplicateKeyError(str(key), key_node.start_mark.line + 1)
            seen.add(key if isinstance(key, str | int | float | bool) else id(key))
        return cast(dict[Any, Any], super().construct_mapping(node, deep=deep))


def expanded_size(value: Any, memo: dict[int, int]) -> int:
    """How many values ``value`` holds once every shared (aliased) part is counted each time it is used."""
    if not isinstance(value, dict | list):
        return 1
    if id(value) in memo:
        return memo[id(value)]
    memo[id(value)] = MAX_YAML_NODES + 1  # a self-referencing alias counts as too big
    items = list(value.items()) if isinstance(value, dict) else [(None, v) for v in value]
    total = 1
    for key, item in items:
        total += (0 if key is None else 1) + expanded_size(item, memo)
        if total > 10 * MAX_YAML_NODES:
            break
    memo[id(value)] = total
    return total
