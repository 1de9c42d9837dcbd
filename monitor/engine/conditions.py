"""Conditions: YAML trees compiled once into Python source, then into functions over a `Flow`.

Each node is a mapping whose one distinguishing key names its type; the type
maps to a compiler through a registry, so an unknown type is an error at load
time (with file and line), never at event time.

    all: [node, ...]          every node holds
    any: [node, ...]          at least one holds
    not: node                 the node does not hold
    condition: NAME           a named, reusable condition (evaluated once per record)
    disclosed: country        the destination country is among the platform's disclosures
    disclosed: items          every personal data category is among the items the
                              platform disclosed for that country (hierarchical)
    disclosed: recipient      the record's recipient, when it names one, is one the
                              platform disclosed for that country
    disclosed: certification  a certification disclosed for that country (and the
                              recipient the record names) was in force at its event time
    field: NAME               with exactly one operator:
      eq / ne: VALUE          equality (null means absent)
      in / not_in: [VALUES]   membership (null allowed; `$list` expands a list)
      exists: BOOL            present (not null, not an empty list)
      gt / gte / lt / lte: N  numeric comparison; absent never matches
      under: [LABELS]         data-category labels, hierarchical (`user.contact`
                              matches `user.contact.email`)

A string value `$name` refers to a parameter (rule params, then pack params,
then pack lists).

Why source code: a tree of closures costs a Python call per node and per
record, which made rule evaluation a fifth of the whole path. A compiler
returns an expression over `flow` and `r` (its record); values from the
YAML never enter the source, they are constants bound by name in the pack's
namespace. A named condition becomes a local computed on first use
(`_nN if _nN is not None else (_nN := ...)`), so the rules of one record
share it. `compile_matcher` puts many rules' expressions into one function
that evaluates all of them for a record at once.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol, cast

from monitor.config.disclosures import Disclosures
from monitor.config.yamlfile import LDict, LList, is_scalar, kind_of, location_of, token
from monitor.errors import ConfigError, ConfigErrors, Location
from monitor.geo.resolve import Flow

__all__ = [
    "FIELD_NAMES",
    "CompileContext",
    "Compiled",
    "Predicate",
    "categories_under",
    "compile_condition",
    "condition_source",
]


class Predicate(Protocol):
    """A compiled condition: call it on a flow; `src` is its expression."""

    src: str

    def __call__(self, flow: Flow) -> bool: ...


class Compiled:
    """What the conditions of one pack share: constants by name, named conditions' sources."""

    def __init__(self) -> None:
        self.namespace: dict[str, Any] = {"categories_under": categories_under}
        self.named: dict[str, str] = {}  # name -> expression (memoised in a local)
        # Named conditions that failed to compile: compiling them again at every
        # use would repeat their errors, and take 2**n tries for a chain of n.
        self.broken: set[str] = set()

    def constant(self, value: Any) -> str:
        name = f"_k{len(self.namespace)}"
        self.namespace[name] = value
        return name

    def function(self, exprs: list[str], name: str = "_match") -> Callable[[Flow], Any]:
        """A function of a flow returning the expression (one) or a tuple of them (several)."""
        body = exprs[0] if len(exprs) == 1 else "(" + ", ".join(exprs) + ",)"
        memo = sorted(set(_MEMO.findall(body)))
        lines = [f"def {name}(flow):", "    r = flow.record"]
        if memo:
            lines.append("    " + " = ".join(memo) + " = None")
        lines.append(f"    return {body}")
        code = compile("\n".join(lines), f"<conditions {name}>", "exec")
        scope: dict[str, Any] = {}
        exec(code, self.namespace, scope)  # the source holds no YAML value, only names
        fn: Callable[[Flow], Any] = scope[name]
        return fn

    def predicate(self, src: str) -> Predicate:
        fn = self.function([src], "_predicate")
        fn.src = src  # type: ignore[attr-defined]
        return cast(Predicate, fn)


_MEMO: Final = re.compile(r"\b_n[0-9]+\b")

# Named conditions are inlined where used, so a few lines of YAML can nest or
# repeat them into an expression of any depth or length: a chain of 400 `not`s
# or of conditions each using the previous one twice (2**40 characters). These
# bound what one condition may become; Python refuses more than 200 nested
# parentheses, and the bundled pack's longest condition is under 400 characters.
MAX_CONDITION_DEPTH: Final = 32
MAX_CONDITION_PARENS: Final = 100
MAX_CONDITION_CHARS: Final = 20_000


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


def _getter(name: str) -> str:
    return f"flow.{name}" if name in _FLOW_FIELDS else f"r.{name}"


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
    compiled: Compiled
    in_progress: set[str]
    depth: int = 0  # conditions open around the one being compiled, named ones included

    def ref(self, value: Any, loc: Location) -> Any:
        if isinstance(value, str) and value.startswith("$"):
            key = value[1:]
            if key not in self.params:
                raise ConfigError(f"unknown parameter {token(value)}", loc)
            return self.params[key]
        return value

    def ref_list(self, value: Any, loc: Location) -> list[Any]:
        """A list of values, `$name` items expanded (a list parameter joins its items)."""
        value = self.ref(value, loc)
        if not isinstance(value, list):
            raise ConfigError(f"expected a list, got {kind_of(value)}", loc)
        out: list[Any] = []
        for item in value:
            item = self.ref(item, loc)
            out.extend(item if isinstance(item, list) else [item])
        for item in out:
            # Members are compared and hashed: a mapping or list has no place here.
            if not is_scalar(item):
                raise ConfigError(f"expected a list of values, got {kind_of(item)} in it", loc)
        return out


Compiler = Callable[[Any, LDict, CompileContext], str]
_REGISTRY: dict[str, Compiler] = {}


def _register(name: str) -> Callable[[Compiler], Compiler]:
    def deco(fn: Compiler) -> Compiler:
        _REGISTRY[name] = fn
        return fn

    return deco


def compile_condition(node: Any, ctx: CompileContext, where: Location | None = None) -> Predicate:
    """`where`: the place of the node's key, named when the node is a scalar (which has no line)."""
    return ctx.compiled.predicate(condition_source(node, ctx, where))


def condition_source(node: Any, ctx: CompileContext, where: Location | None = None) -> str:
    """The expression of a condition node (see the module docstring)."""
    loc = location_of(node, ctx.file, where)
    if not isinstance(node, LDict) or not node:
        raise ConfigError(
            f"a condition must be a mapping such as {{field: ..., eq: ...}}, got {kind_of(node)}",
            loc,
        )
    kinds = [k for k in node if k in _REGISTRY]
    if len(kinds) != 1:
        known = ", ".join(sorted(_REGISTRY))
        raise ConfigError(
            f"a condition needs exactly one of: {known}; got {token(sorted(node))}", loc
        )
    if ctx.depth >= MAX_CONDITION_DEPTH:
        raise ConfigError(
            f"conditions nest deeper than {MAX_CONDITION_DEPTH} levels (with named ones)", loc
        )
    ctx.depth += 1
    try:
        src = _REGISTRY[kinds[0]](node[kinds[0]], node, ctx)
    finally:
        ctx.depth -= 1
    _check_length(len(src), loc)
    _check_nesting(src, loc)
    return src


def _check_length(length: int, loc: Location) -> None:
    if length > MAX_CONDITION_CHARS:
        raise ConfigError(
            f"condition grows past {MAX_CONDITION_CHARS} characters of code "
            "(named conditions are copied where used)",
            loc,
        )


def _check_nesting(src: str, loc: Location) -> None:
    # A named condition compiled at one place is reused at deeper ones: count
    # the parentheses of the result (it holds no string literals).
    depth = deepest = 0
    for char in src:
        if char == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif char == ")":
            depth -= 1
    if deepest > MAX_CONDITION_PARENS:
        raise ConfigError(f"condition nests deeper than {MAX_CONDITION_PARENS} levels of code", loc)


def _children(value: Any, node: LDict, key: str, ctx: CompileContext) -> list[str]:
    if not isinstance(value, LList) or not value:
        raise ConfigError(f"'{key}' takes a non-empty list of conditions", node.loc(key))
    if set(node) != {key}:
        raise ConfigError(
            f"'{key}' cannot be combined with {sorted(set(node) - {key})}", node.loc()
        )
    # Compile every child even after a failure, so one pass reports every error.
    out: list[str] = []
    errors: list[ConfigError] = []
    length = 0
    for i, child in enumerate(value):
        try:
            out.append(condition_source(child, ctx, value.loc(i)))
        except ConfigError as e:
            errors.append(e)
        except ConfigErrors as e:
            errors.extend(e.errors)
        else:
            # Checked as it grows: many children each under the limit add up.
            length += len(out[-1])
            _check_length(length, node.loc(key))
    if errors:
        raise ConfigErrors(errors)
    return out


@_register("all")
def _all(value: Any, node: LDict, ctx: CompileContext) -> str:
    return "(" + " and ".join(_children(value, node, "all", ctx)) + ")"


@_register("any")
def _any(value: Any, node: LDict, ctx: CompileContext) -> str:
    return "(" + " or ".join(_children(value, node, "any", ctx)) + ")"


@_register("not")
def _not(value: Any, node: LDict, ctx: CompileContext) -> str:
    return f"(not {condition_source(value, ctx, node.loc('not'))})"


@_register("condition")
def _named(value: Any, node: LDict, ctx: CompileContext) -> str:
    loc = node.loc("condition")
    if not isinstance(value, str) or value not in ctx.named:
        raise ConfigError(f"unknown condition {token(value)}", loc)
    shared = ctx.compiled
    if value in shared.broken:
        raise ConfigError(f"condition {token(value)} has errors (see its definition)", loc)
    if value not in shared.named:
        if value in ctx.in_progress:
            raise ConfigError(f"condition {token(value)} refers to itself", loc)
        ctx.in_progress.add(value)
        named = ctx.named
        try:
            inner = condition_source(
                named[value], ctx, named.loc(value) if isinstance(named, LDict) else loc
            )
        except (ConfigError, ConfigErrors):
            shared.broken.add(value)
            raise
        finally:
            # Also on error: a later reference must not look like a cycle.
            ctx.in_progress.discard(value)
        var = f"_n{len(shared.named)}"
        shared.named[value] = f"({var} if {var} is not None else ({var} := {inner}))"
    return shared.named[value]


@_register("disclosed")
def _disclosed(value: Any, node: LDict, ctx: CompileContext) -> str:
    disclosures = ctx.compiled.constant(ctx.disclosures)
    if value == "country":
        return f"(flow.dst_country in {disclosures}.countries(r.platform))"
    if value == "items":
        return f"{disclosures}.items_disclosed(r.platform, flow.dst_country, r.data_categories)"
    if value == "recipient":
        return f"{disclosures}.recipient_disclosed(r.platform, flow.dst_country, r.recipient)"
    if value == "certification":
        return f"{disclosures}.certified(r.platform, flow.dst_country, r.recipient, r.ts)"
    raise ConfigError(
        "'disclosed' supports: country, items, recipient, certification", node.loc("disclosed")
    )


_OPS: Final = ("eq", "ne", "in", "not_in", "exists", "gt", "gte", "lt", "lte", "under")
_COMPARE: Final[dict[str, str]] = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


@_register("field")
def _field(name: Any, node: LDict, ctx: CompileContext) -> str:
    loc = node.loc("field")
    if not isinstance(name, str) or name not in FIELD_NAMES:
        known = ", ".join(sorted(FIELD_NAMES))
        raise ConfigError(f"unknown field {token(name)}; known: {known}", loc)
    ops = [k for k in node if k != "field"]
    if len(ops) != 1 or ops[0] not in _OPS:
        raise ConfigError(f"field condition needs exactly one operator of {', '.join(_OPS)}", loc)
    op = ops[0]
    oloc = node.loc(op)
    get = _getter(name)
    const = ctx.compiled.constant
    is_tuple = name in ("data_categories", "countries")
    if op == "under":
        if name != "data_categories":
            raise ConfigError("'under' applies to data_categories only", oloc)
        prefixes = const(tuple(str(x) for x in ctx.ref_list(node[op], oloc)))
        return f"categories_under(r.data_categories, {prefixes})"
    if op == "exists":
        want = ctx.ref(node[op], oloc)
        if not isinstance(want, bool):
            raise ConfigError("'exists' takes true or false", oloc)
        # Absent: null, or an empty list.
        if want:
            return f"({get} is not None and {get} != ())"
        return f"({get} is None or {get} == ())"
    if op in ("in", "not_in"):
        members = const(frozenset(ctx.ref_list(node[op], oloc)))
        if is_tuple:
            hit = f"(not {members}.isdisjoint({get}))"
            return hit if op == "in" else f"{members}.isdisjoint({get})"
        return f"({get} {'in' if op == 'in' else 'not in'} {members})"
    value = ctx.ref(node[op], oloc)
    if op in ("eq", "ne"):
        if is_tuple:
            raise ConfigError(f"use 'in' or 'under' on list field {name!r}", oloc)
        if not is_scalar(value):
            raise ConfigError(f"'{op}' takes one value, got {kind_of(value)}", oloc)
        return f"({get} {'==' if op == 'eq' else '!='} {const(value)})"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"'{op}' takes a number, got {token(value)}", oloc)
    return (
        f"({get} is not None and type({get}) is not tuple and {get} {_COMPARE[op]} {const(value)})"
    )
