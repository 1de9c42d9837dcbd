"""Conditions: YAML trees compiled once into plain Python closures over a `Flow`.

Each node is a mapping whose one distinguishing key names its type; the type
maps to a compiler through a registry, so an unknown type is an error at load
time (with file and line), never at event time.

    all: [node, ...]          every node holds
    any: [node, ...]          at least one holds
    not: node                 the node does not hold
    condition: NAME           a named, reusable condition (evaluated once per record)
    disclosed: country        the destination country is among the platform's disclosures
    field: NAME               with exactly one operator:
      eq / ne: VALUE          equality (null means absent)
      in / not_in: [VALUES]   membership (null allowed; `$list` expands a list)
      exists: BOOL            present (not null, not an empty list)
      gt / gte / lt / lte: N  numeric comparison; absent never matches
      under: [LABELS]         data-category labels, hierarchical (`user.contact`
                              matches `user.contact.email`)

A string value `$name` refers to a parameter (rule params, then pack params,
then pack lists).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from monitor.disclosures import Disclosures
from monitor.errors import ConfigError, ConfigErrors, Location
from monitor.resolve import Flow
from monitor.yamlfile import LDict, LList, location_of

__all__ = [
    "FIELD_NAMES",
    "CompileContext",
    "Predicate",
    "categories_under",
    "compile_condition",
]

Predicate = Callable[[Flow], bool]

# Fields a condition may read. Record fields that carry personal data
# (addresses, subject ids) are deliberately absent.
_RECORD_FIELDS: Final = (
    "kind", "event_id", "platform", "service", "bytes", "dst_port", "protocol", "dst_host",
    "subject_region", "data_categories", "records", "dataset_id", "operation", "endpoint",
    "method", "status", "recipient", "purpose", "legal_basis", "stores", "scope", "granted",
    "countries",
)  # fmt: skip
_FLOW_FIELDS: Final = ("src_country", "dst_country", "dst_org", "dst_via")
FIELD_NAMES: Final = frozenset(_RECORD_FIELDS + _FLOW_FIELDS)


def _getter(name: str) -> Callable[[Flow], Any]:
    return operator.attrgetter(name if name in _FLOW_FIELDS else f"record.{name}")


def categories_under(labels: tuple[str, ...], prefixes: tuple[str, ...]) -> bool:
    for label in labels:
        for p in prefixes:
            if label == p or (label.startswith(p) and label[len(p)] == "."):
                return True
    return False


@dataclass
class CompileContext:
    """What a condition may refer to while it is compiled."""

    file: str
    params: Mapping[str, Any]
    named: Mapping[str, Any]  # name -> raw YAML node of a reusable condition
    disclosures: Disclosures
    compiled: dict[str, Predicate]
    in_progress: set[str]

    def ref(self, value: Any, loc: Location) -> Any:
        if isinstance(value, str) and value.startswith("$"):
            key = value[1:]
            if key not in self.params:
                raise ConfigError(f"unknown parameter {value!r}", loc)
            return self.params[key]
        return value

    def ref_list(self, value: Any, loc: Location) -> list[Any]:
        value = self.ref(value, loc)
        if not isinstance(value, list):
            raise ConfigError(f"expected a list, got {value!r}", loc)
        out: list[Any] = []
        for item in value:
            item = self.ref(item, loc)
            out.extend(item if isinstance(item, list) else [item])
        return out


Compiler = Callable[[Any, LDict, CompileContext], Predicate]
_REGISTRY: dict[str, Compiler] = {}


def _register(name: str) -> Callable[[Compiler], Compiler]:
    def deco(fn: Compiler) -> Compiler:
        _REGISTRY[name] = fn
        return fn

    return deco


def compile_condition(node: Any, ctx: CompileContext) -> Predicate:
    loc = location_of(node, ctx.file)
    if not isinstance(node, LDict) or not node:
        raise ConfigError("a condition must be a mapping such as {field: ..., eq: ...}", loc)
    kinds = [k for k in node if k in _REGISTRY]
    if len(kinds) != 1:
        known = ", ".join(sorted(_REGISTRY))
        raise ConfigError(f"a condition needs exactly one of: {known}; got {sorted(node)}", loc)
    return _REGISTRY[kinds[0]](node[kinds[0]], node, ctx)


def _children(value: Any, node: LDict, key: str, ctx: CompileContext) -> list[Predicate]:
    if not isinstance(value, LList) or not value:
        raise ConfigError(f"'{key}' takes a non-empty list of conditions", node.loc(key))
    if set(node) != {key}:
        raise ConfigError(
            f"'{key}' cannot be combined with {sorted(set(node) - {key})}", node.loc()
        )
    # Compile every child even after a failure, so one pass reports every error.
    out: list[Predicate] = []
    errors: list[ConfigError] = []
    for child in value:
        try:
            out.append(compile_condition(child, ctx))
        except ConfigError as e:
            errors.append(e)
        except ConfigErrors as e:
            errors.extend(e.errors)
    if errors:
        raise ConfigErrors(errors)
    return out


def _conjunction(parts: tuple[Predicate, ...]) -> Predicate:
    # Plain `and` chains: a generator inside all() costs more than the checks
    # themselves at a few microseconds per record.
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2:
        a, b = parts
        return lambda flow: a(flow) and b(flow)
    if len(parts) == 3:
        a, b, c = parts
        return lambda flow: a(flow) and b(flow) and c(flow)
    if len(parts) == 4:
        a, b, c, d = parts
        return lambda flow: a(flow) and b(flow) and c(flow) and d(flow)
    head, tail = parts[:4], _conjunction(parts[4:])
    first = _conjunction(head)
    return lambda flow: first(flow) and tail(flow)


def _disjunction(parts: tuple[Predicate, ...]) -> Predicate:
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2:
        a, b = parts
        return lambda flow: a(flow) or b(flow)
    head, tail = parts[0], _disjunction(parts[1:])
    return lambda flow: head(flow) or tail(flow)


@_register("all")
def _all(value: Any, node: LDict, ctx: CompileContext) -> Predicate:
    return _conjunction(tuple(_children(value, node, "all", ctx)))


@_register("any")
def _any(value: Any, node: LDict, ctx: CompileContext) -> Predicate:
    return _disjunction(tuple(_children(value, node, "any", ctx)))


@_register("not")
def _not(value: Any, node: LDict, ctx: CompileContext) -> Predicate:
    inner = compile_condition(value, ctx)
    return lambda flow: not inner(flow)


@_register("condition")
def _named(value: Any, node: LDict, ctx: CompileContext) -> Predicate:
    loc = node.loc("condition")
    if not isinstance(value, str) or value not in ctx.named:
        raise ConfigError(f"unknown condition {value!r}", loc)
    if value in ctx.compiled:
        return ctx.compiled[value]
    if value in ctx.in_progress:
        raise ConfigError(f"condition {value!r} refers to itself", loc)
    ctx.in_progress.add(value)
    inner = compile_condition(ctx.named[value], ctx)
    ctx.in_progress.discard(value)
    name = value

    def check(flow: Flow) -> bool:
        memo = flow.memo
        hit = memo.get(name)
        if hit is None:
            hit = memo[name] = inner(flow)
        return hit

    ctx.compiled[name] = check
    return check


@_register("disclosed")
def _disclosed(value: Any, node: LDict, ctx: CompileContext) -> Predicate:
    if value != "country":
        raise ConfigError("'disclosed' supports: country", node.loc("disclosed"))
    disclosures = ctx.disclosures

    def check(flow: Flow) -> bool:
        return flow.dst_country in disclosures.countries(flow.record.platform)

    return check


_OPS: Final = ("eq", "ne", "in", "not_in", "exists", "gt", "gte", "lt", "lte", "under")
_COMPARE: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}


def _absent(value: Any) -> bool:
    return value is None or value == ()


@_register("field")
def _field(name: Any, node: LDict, ctx: CompileContext) -> Predicate:
    loc = node.loc("field")
    if name not in FIELD_NAMES:
        raise ConfigError(f"unknown field {name!r}; known: {', '.join(sorted(FIELD_NAMES))}", loc)
    ops = [k for k in node if k != "field"]
    if len(ops) != 1 or ops[0] not in _OPS:
        raise ConfigError(f"field condition needs exactly one operator of {', '.join(_OPS)}", loc)
    op = ops[0]
    oloc = node.loc(op)
    get = _getter(name)
    is_tuple = name in ("data_categories", "countries")
    if op == "under":
        if name != "data_categories":
            raise ConfigError("'under' applies to data_categories only", oloc)
        prefixes = tuple(str(x) for x in ctx.ref_list(node[op], oloc))
        return lambda flow: categories_under(flow.record.data_categories, prefixes)
    if op == "exists":
        want = ctx.ref(node[op], oloc)
        if not isinstance(want, bool):
            raise ConfigError("'exists' takes true or false", oloc)
        return lambda flow: _absent(get(flow)) is not want
    if op in ("in", "not_in"):
        values = ctx.ref_list(node[op], oloc)
        members = frozenset(values)
        if is_tuple:
            hit: Predicate = lambda flow: any(v in members for v in get(flow))  # noqa: E731
        else:
            hit = lambda flow: get(flow) in members  # noqa: E731
        return hit if op == "in" else (lambda flow: not hit(flow))
    value = ctx.ref(node[op], oloc)
    if op in ("eq", "ne"):
        if is_tuple:
            raise ConfigError(f"use 'in' or 'under' on list field {name!r}", oloc)
        if op == "eq":
            return lambda flow: get(flow) == value
        return lambda flow: get(flow) != value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"'{op}' takes a number, got {value!r}", oloc)
    cmp = _COMPARE[op]

    def compare(flow: Flow) -> bool:
        v = get(flow)
        return v is not None and not isinstance(v, tuple) and cmp(v, value)

    return compare
