"""YAML loading that remembers line numbers and refuses hostile files.

Mappings load as `LDict` and sequences as `LList`, which carry the 1-based line
they start on (and the line of each key, or of each item), so every later
validation error can name the file and line of the offending value.

Configuration files are untrusted input: a mistake or a hostile edit must end
in a `ConfigError` naming file and line, never in a hang, a traceback or an
error message that prints the file. So a file is read only if it is a regular
file of at most `MAX_FILE_BYTES` whose real path lies inside one of the folders
the caller allows; a file holds at most `MAX_NODES` nodes (PyYAML is pure
Python here, about 30 microseconds a node), aliases may expand to
`MAX_ALIAS_NODES` nodes in all (a "billion laughs" file is a few lines that
expand to billions), collections may nest `MAX_DEPTH` deep (counting what
aliases bring in), and messages carry PyYAML's problem text and a short token,
never the offending line itself.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from monitor.errors import ConfigError, Location

__all__ = [
    "MAX_ALIAS_NODES",
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "MAX_NODES",
    "LDict",
    "LList",
    "empty_mapping",
    "is_scalar",
    "kind_of",
    "load_yaml",
    "location_of",
    "mapping_at",
    "parse_yaml",
    "read_config_file",
    "strings_at",
    "token",
]

MAX_FILE_BYTES = 1024 * 1024
MAX_NODES = 50_000
MAX_ALIAS_NODES = 10_000
MAX_DEPTH = 64
_TOKEN_CHARS = 40


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
    item_lines: list[int]

    def loc(self, index: int | None = None) -> Location:
        if index is not None and 0 <= index < len(self.item_lines):
            return Location(self.file, self.item_lines[index])
        return Location(self.file, self.line)


def location_of(node: object, file: str, fallback: Location | None = None) -> Location:
    """Where a loaded value starts; scalars carry no line, so `fallback` (their parent's key)."""
    if isinstance(node, (LDict, LList)):
        return Location(node.file, node.line)
    return fallback or Location(file)


def kind_of(value: object) -> str:
    """What a loaded value is, in words, for "must be X, got Y" (never the value itself)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def is_scalar(value: object) -> bool:
    """A YAML scalar (string, number, true/false, null, date): hashable, comparable."""
    return not isinstance(value, (list, dict))


def empty_mapping(loc: Location) -> LDict:
    out = LDict()
    out.file, out.line, out.key_lines = loc.file, loc.line, {}
    return out


def mapping_at(node: LDict, key: str, errors: list[ConfigError]) -> LDict:
    """The mapping under `key`: empty when absent or null, empty and an error when not a mapping."""
    value = node.get(key)
    if isinstance(value, LDict):
        return value
    if value is not None:
        errors.append(
            ConfigError(f"'{key}' must be a mapping, got {kind_of(value)}", node.loc(key))
        )
    return empty_mapping(node.loc(key))


def strings_at(node: LDict, key: str, errors: list[ConfigError]) -> tuple[str, ...] | None:
    """The list of strings under `key`: None when absent or null or (with an error) malformed."""
    value = node.get(key)
    if value is None:
        return None
    if not isinstance(value, LList):
        errors.append(ConfigError(f"'{key}' must be a list, got {kind_of(value)}", node.loc(key)))
        return None
    bad = [i for i, item in enumerate(value) if not isinstance(item, str)]
    for i in bad:
        errors.append(
            ConfigError(f"'{key}' must list strings, got {kind_of(value[i])}", value.loc(i))
        )
    return None if bad else tuple(value)


def token(value: object, limit: int = _TOKEN_CHARS) -> str:
    """A value for an error message: its repr, cut short so a message never prints a file."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _line(mark: Any) -> int:
    """1-based line of a PyYAML mark (typed loosely: events and nodes type it differently)."""
    return int(mark.line) + 1 if mark is not None else 0


# Events come from libyaml when PyYAML has it: scanning and parsing in Python
# cost about three quarters of the time of a load. Composing and constructing
# stay in Python, where the budgets below are kept.
if yaml.__with_libyaml__:
    from yaml._yaml import CParser

    class _Events(CParser):
        def __init__(self, text: str) -> None:
            CParser.__init__(self, text)

else:  # pragma: no cover - PyYAML built without libyaml

    class _Events(yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser):  # type: ignore[no-redef]
        def __init__(self, text: str) -> None:
            yaml.reader.Reader.__init__(self, text)
            yaml.scanner.Scanner.__init__(self)
            yaml.parser.Parser.__init__(self)


class _Loader(
    yaml.composer.Composer, yaml.constructor.SafeConstructor, yaml.resolver.Resolver, _Events
):
    """A safe loader with line-carrying containers and budgets on size, aliases and depth."""

    def __init__(self, text: str, file: str) -> None:
        _Events.__init__(self, text)
        yaml.composer.Composer.__init__(self)
        yaml.constructor.SafeConstructor.__init__(self)
        yaml.resolver.Resolver.__init__(self)
        self.file = file
        self.depth = 0  # collections open around the node being composed
        self.nodes = 0  # nodes composed so far, aliases not counted
        self.alias_nodes = 0  # nodes brought in by aliases so far
        self.open_anchors: set[str] = set()  # anchors of collections still being composed
        self.measured: dict[int, tuple[int, int]] = {}  # id(node) -> (nodes, height)

    def fail(self, message: str, mark: Any) -> ConfigError:
        return ConfigError(message, Location(self.file, _line(mark)))

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        event: Any = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            self.spend_alias(event)
            return super().compose_node(parent, index)
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise self.fail(f"more than {MAX_NODES} values in one file", event.start_mark)
        nests = isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent))
        anchor = getattr(event, "anchor", None)
        if nests:
            self.depth += 1
            # Checked before PyYAML recurses, so 20,000 nested brackets never reach
            # Python's recursion limit.
            if self.depth > MAX_DEPTH:
                raise self.fail(f"nested deeper than {MAX_DEPTH} levels", event.start_mark)
            if anchor is not None:
                self.open_anchors.add(anchor)
        try:
            return super().compose_node(parent, index)
        finally:
            if nests:
                self.depth -= 1
                self.open_anchors.discard(anchor or "")

    def spend_alias(self, event: yaml.AliasEvent) -> None:
        """Count what the alias expands to against the budgets (PyYAML shares the node,
        but everything reading the result afterwards walks every copy)."""
        anchor = event.anchor or ""
        if anchor in self.open_anchors:
            raise self.fail(
                f"the alias {token(anchor)} refers to a node that holds it", event.start_mark
            )
        target = self.anchors.get(anchor)
        if target is None:
            return  # PyYAML reports the undefined alias
        nodes, height = self.measure(target)
        self.alias_nodes += nodes
        if self.alias_nodes > MAX_ALIAS_NODES:
            raise self.fail(
                f"aliases expand to more than {MAX_ALIAS_NODES} nodes", event.start_mark
            )
        if self.depth + height > MAX_DEPTH:
            raise self.fail(
                f"nested deeper than {MAX_DEPTH} levels (through an alias)", event.start_mark
            )

    def measure(self, node: yaml.Node) -> tuple[int, int]:
        """(nodes, collection levels) of a composed node, aliases counted at every use.

        Recursion is bounded: a composed node is at most MAX_DEPTH levels high
        and holds no cycle (an alias to an open anchor is refused)."""
        known = self.measured.get(id(node))
        if known is not None:
            return known
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        sizes = [self.measure(child) for child in children]
        nodes = 1 + sum(n for n, _ in sizes)
        height = (
            0 if isinstance(node, yaml.ScalarNode) else 1 + max((h for _, h in sizes), default=0)
        )
        self.measured[id(node)] = (nodes, height)
        return nodes, height

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        # A scalar that matches a YAML type but not its range (a 5,000-digit int,
        # a 13th month) raises ValueError inside PyYAML, with no mark.
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, OverflowError) as e:
            shown = token(node.value) if isinstance(node, yaml.ScalarNode) else node.tag
            raise self.fail(
                f"cannot read value {shown}: {type(e).__name__}", node.start_mark
            ) from None


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> LDict:
    out = LDict()
    out.file, out.line, out.key_lines = loader.file, _line(node.start_mark), {}
    loader.flatten_mapping(node)
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = _line(key_node.start_mark)
        if not isinstance(key, str):
            key = str(key)
        if key in out:
            raise ConfigError(
                f"duplicate key {token(key)} (first at line {out.key_lines[key]})",
                Location(loader.file, line),
            )
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = line
    return out


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> LList:
    out = LList(loader.construct_object(child, deep=True) for child in node.value)
    out.file, out.line = loader.file, _line(node.start_mark)
    out.item_lines = [_line(child.start_mark) for child in node.value]
    return out


def _refuse_tag(loader: _Loader, node: yaml.Node) -> Any:
    # Sets, ordered pairs and binary data have no use in the configuration and
    # would reach code that expects plain mappings, lists and scalars.
    raise loader.fail(f"YAML tag {token(node.tag)} is not supported here", node.start_mark)


def _register(tag: str, constructor: Callable[[_Loader, Any], Any]) -> None:
    # The stubs type add_constructor for PyYAML's own loader classes only.
    _Loader.add_constructor(tag, constructor)  # type: ignore[type-var]


_register(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_register(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)
for _tag in ("set", "omap", "pairs", "binary"):
    _register(f"tag:yaml.org,2002:{_tag}", _refuse_tag)


def read_config_file(path: Path, allowed_roots: Sequence[Path]) -> bytes:
    """The bytes of a configuration file, refused unless it is a regular file of at
    most MAX_FILE_BYTES whose real path is inside one of `allowed_roots`.

    Refusals of an existing file name its line 1, so every message has the
    file:line form editors and CI annotations understand."""
    name = str(path)
    at_file = Location(name, 1)
    real = Path(os.path.realpath(path))
    roots = [Path(os.path.realpath(root)) for root in allowed_roots]
    if not any(real.is_relative_to(root) for root in roots):
        folders = ", ".join(str(r) for r in allowed_roots)
        raise ConfigError(f"refused: the file (or a link to it) lies outside {folders}", at_file)
    # O_NONBLOCK: opening a FIFO must not wait for a writer; O_NOFOLLOW: the real
    # path was checked, a link swapped in since is refused.
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(real, flags)
    except FileNotFoundError:
        raise ConfigError("file not found", Location(name)) from None
    except OSError as e:
        raise ConfigError(f"cannot open: {e.strerror or type(e).__name__}", at_file) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError("refused: not a regular file", at_file)
        if info.st_size > MAX_FILE_BYTES:
            raise ConfigError(f"refused: larger than {MAX_FILE_BYTES} bytes", at_file)
        with open(fd, "rb", closefd=False) as f:
            data = f.read(MAX_FILE_BYTES + 1)  # it may have grown since fstat
    except OSError as e:
        raise ConfigError(f"cannot read: {e.strerror or type(e).__name__}", at_file) from None
    finally:
        os.close(fd)
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(f"refused: larger than {MAX_FILE_BYTES} bytes", at_file)
    return data


# Quoted tokens in PyYAML's problem texts (an alias, a tag, a character) are
# cut like any other value we show.
_QUOTED = re.compile("'[^'\n]{" + str(_TOKEN_CHARS) + ",}'")


def _problem(*parts: str | None) -> str:
    text = "; ".join(p for p in parts if p) or "not valid YAML"
    return _QUOTED.sub(lambda m: m.group(0)[: _TOKEN_CHARS - 1] + "…'", text)[:200]


def parse_yaml(data: bytes, name: str) -> Any:
    """Parse the bytes of one file: None when empty, else an `LDict` or an `LList`.

    Any problem is a ConfigError naming the file and line; its message is built
    from the problem and position only, never from the file's lines."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise ConfigError("not UTF-8 text", Location(name, line)) from None
    try:
        return _document(text, name)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = _line(mark) if mark is not None else 0
        where = f" (column {mark.column + 1})" if mark is not None else ""
        raise ConfigError(
            f"invalid YAML: {_problem(e.context, e.problem)}{where}", Location(name, line)
        ) from None
    except yaml.reader.ReaderError as e:
        line = text.count("\n", 0, e.position) + 1
        raise ConfigError(f"invalid YAML: {_problem(e.reason)}", Location(name, line)) from None
    except yaml.YAMLError:
        raise ConfigError("invalid YAML", Location(name, 1)) from None


def _document(text: str, name: str) -> Any:
    loader = _Loader(text, name)  # checks the characters: may raise ReaderError
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if not isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):
            raise loader.fail("the file must hold a mapping or a list", node.start_mark)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def load_yaml(path: Path, allowed_roots: Sequence[Path]) -> Any:
    """Read (see `read_config_file`) and parse (see `parse_yaml`) one configuration file."""
    return parse_yaml(read_config_file(path, allowed_roots), str(path))
