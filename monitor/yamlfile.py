"""YAML loading that remembers line numbers and refuses duplicate keys.

Mappings load as `LDict` and sequences as `LList`, which carry the 1-based line
they start on (and, for mappings, the line of each key), so every later
validation error can name the file and line of the offending value.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from monitor.errors import ConfigError, Location

__all__ = ["LDict", "LList", "load_yaml", "location_of"]


class LDict(dict[str, Any]):
    file: str = ""
    line: int = 0
    key_lines: dict[str, int]

    def loc(self, key: str | None = None) -> Location:
        line = self.key_lines.get(key, self.line) if key is not None else self.line
        return Location(self.file, line)


class LList(list[Any]):
    file: str = ""
    line: int = 0

    def loc(self, index: int | None = None) -> Location:
        if index is not None and index < len(self):
            item = self[index]
            if isinstance(item, (LDict, LList)):
                return Location(item.file, item.line)
        return Location(self.file, self.line)


def location_of(node: object, file: str) -> Location:
    if isinstance(node, (LDict, LList)):
        return Location(node.file, node.line)
    return Location(file)


def _loader_for(file: str) -> type[yaml.SafeLoader]:
    class Loader(yaml.SafeLoader):
        pass

    def construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> LDict:
        out = LDict()
        out.file, out.line, out.key_lines = file, node.start_mark.line + 1, {}
        loader.flatten_mapping(node)
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if not isinstance(key, str):
                key = str(key)
            if key in out:
                raise ConfigError(
                    f"duplicate key {key!r} (first at line {out.key_lines[key]})",
                    Location(file, line),
                )
            out[key] = loader.construct_object(value_node, deep=True)
            out.key_lines[key] = line
        return out

    def construct_sequence(loader: yaml.SafeLoader, node: yaml.SequenceNode) -> LList:
        out = LList(loader.construct_object(child, deep=True) for child in node.value)
        out.file, out.line = file, node.start_mark.line + 1
        return out

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, construct_sequence)
    return Loader


def load_yaml(path: Path) -> Any:
    """Parse one YAML file; any problem is a ConfigError naming the file and line."""
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("file not found", Location(name)) from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read: {e}", Location(name)) from None
    try:
        return yaml.load(text, Loader=_loader_for(name))
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark is not None else 0
        raise ConfigError(f"invalid YAML: {e.problem or e}", Location(name, line)) from None
    except yaml.YAMLError as e:
        raise ConfigError(f"invalid YAML: {e}", Location(name)) from None
