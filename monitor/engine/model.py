"""The rule model: frozen, compiled, ready to evaluate."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal, NotRequired, TypedDict, final
from zoneinfo import ZoneInfo

from monitor.contract.schemas import Source
from monitor.engine.conditions import Compiled, Predicate
from monitor.errors import Location
from monitor.geo.resolve import Flow

if TYPE_CHECKING:
    from monitor.engine.ruletypes.base import AnyRuleType

__all__ = [
    "DEFAULT_TIME_ZONES",
    "GROUP_FIELDS",
    "SEVERITIES",
    "Evidence",
    "Example",
    "GroupField",
    "GroupFields",
    "Hit",
    "RecordRef",
    "Rule",
    "RulePack",
    "Span",
    "Totals",
    "parse_duration",
]

SEVERITIES: Final = ("low", "medium", "high", "critical")
# The pack param `time_zone` when the pack does not set it, by home region.
# Only a region with one civil time has a default: another must say which.
DEFAULT_TIME_ZONES: Final[Mapping[str, str]] = {"KR": "Asia/Seoul"}
GroupField = Literal["platform", "src_country", "dst_country", "subject_region", "dataset_id"]
# Fields an alert is grouped by and carries; a rule's group_by is a subset.
GROUP_FIELDS: Final[tuple[GroupField, ...]] = (
    "platform",
    "src_country",
    "dst_country",
    "subject_region",
    "dataset_id",
)

# At most 12 digits: longer numbers are no real duration, and int() refuses
# strings past 4,300 digits with a ValueError.
_DURATION = re.compile(r"(\d{1,12})(ms|s|m|h|d)")
_UNIT_MS: Final = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def parse_duration(value: object) -> int | None:
    """'90s', '10m', '1h', '30d' (or whole seconds as a number) -> milliseconds."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and value > 0:
        return value * 1000
    if isinstance(value, str):
        m = _DURATION.fullmatch(value.strip())
        if m and int(m.group(1)) > 0:
            return int(m.group(1)) * _UNIT_MS[m.group(2)]
    return None


@dataclass(frozen=True)
class Example:
    """Records that must (or must not) make the rule fire, run by `xborder rules test`."""

    name: str
    records: tuple[Mapping[str, Any], ...]
    fires: bool
    count: int | None  # expected event_count summed over the rule's alerts
    geoip: Mapping[str, str]  # ip -> country, so examples need no database
    location: Location


@dataclass(frozen=True)
class Rule:
    id: str
    title: str
    severity: str
    legal_ref: str
    desc: str
    tags: tuple[str, ...]
    kinds: frozenset[str]
    when: Predicate
    type: AnyRuleType | None  # None: stateless, every matching record is a hit
    group_by: tuple[str, ...]
    group_window_ms: int
    group_zone: ZoneInfo  # grouping windows are laid out in its wall-clock time
    params: Mapping[str, Any]
    examples: tuple[Example, ...]
    location: Location


@dataclass(frozen=True)
class Matcher:
    """The rules of one record kind, evaluated together by one generated function.

    `match(flow)` returns one value per rule of `rules` (truthy when the rule
    matches; for a stateful rule with a cheap pre-check, only if the record
    concerns it), then whether the record is personal data (the pack's
    `personal` condition), for the transfer metrics.
    """

    rules: tuple[Rule, ...]
    match: Callable[[Flow], tuple[object, ...]]


@dataclass(frozen=True)
class RulePack:
    version: str  # pack version plus a digest of the rule files (chain of custody)
    params: Mapping[str, Any]
    rules: tuple[Rule, ...]
    conditions: Compiled  # the namespace and named conditions the rules were compiled with
    by_id: Mapping[str, Rule] = field(init=False)
    stateless_by_kind: Mapping[str, tuple[Rule, ...]] = field(init=False)
    stateful: tuple[Rule, ...] = field(init=False)
    matchers: Mapping[str, Matcher] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_id", {r.id: r for r in self.rules})
        by_kind: dict[str, tuple[Rule, ...]] = {}
        matchers: dict[str, Matcher] = {}
        personal = self.conditions.named.get("personal", "False")
        for kind in ("egress", "api_call", "consent"):
            by_kind[kind] = tuple(r for r in self.rules if r.type is None and kind in r.kinds)
            # Stateful rules may keep state on records of other kinds (the
            # consent rule matches calls and is told of consent records).
            rules = tuple(r for r in self.rules if kind in r.kinds or r.type is not None)
            exprs = [_guarded(r) if kind in r.kinds else "False" for r in rules] + [personal]
            fn = self.conditions.function(exprs, f"_match_{kind}")
            matchers[kind] = Matcher(rules, fn)
        object.__setattr__(self, "stateless_by_kind", by_kind)
        object.__setattr__(self, "stateful", tuple(r for r in self.rules if r.type is not None))
        object.__setattr__(self, "matchers", matchers)

    @property
    def home_region(self) -> str:
        return str(self.params.get("home_region", "KR"))


def _guarded(rule: Rule) -> str:
    concerns = rule.type.concerns_src if rule.type is not None else None
    return rule.when.src if concerns is None else f"({concerns} and {rule.when.src})"


class GroupFields(TypedDict):
    """GROUP_FIELDS of a hit's records; in an alert group, None where not grouped by."""

    platform: str | None
    src_country: str | None
    dst_country: str | None
    subject_region: str | None
    dataset_id: str | None


class RecordRef(TypedDict):
    """One record named as evidence: which, when (event time), where it came from."""

    event_id: str
    ts: int
    source: Source
    # An onward hop's earlier hops, from the home region on (onward chains).
    via: NotRequired[list[RecordRef]]


class Evidence(RecordRef):
    first_hop: NotRequired[RecordRef]  # onward transfers: the hop that came before


class Totals(TypedDict):
    """What matching records add up to: in a hit, a threshold window, an alert group."""

    fields: GroupFields
    first_seen: int  # event time
    last_seen: int
    event_count: int
    bytes: int
    records: int
    categories: list[str]
    evidence: list[Evidence]  # the earliest, at most MAX_EVIDENCE


class Span(TypedDict):
    """A threshold rule's span of event time that crossed: its first and last
    record's event times, the sum of the rule's field over it and its records."""

    start: int
    end: int
    sum: Literal["records", "bytes"]  # the field summed
    total: int
    event_count: int


# Final: stages tell a hit from a routed item by its keys.
@final
class Hit(Totals):
    """One match (or, for threshold rules, one hot bucket's running totals, named by
    `part`) on its way to an alert group. JSON-ready because the worker ships it
    between agents.
    """

    rule: str
    ids: list[int]  # event_hash of each record counted (none for a window's totals)
    part: NotRequired[int]
    part_start: NotRequired[int]  # the threshold window's start (event time), with `part`
    span: NotRequired[Span]  # a threshold rule's heaviest crossing span its part lies in
    truncated: bool
    orgs: NotRequired[list[str]]  # receiving organisations, when known (not threshold rules)
