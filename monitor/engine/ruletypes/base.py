"""The base every stateful rule type extends, and the hit one record makes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, Generic, TypeVar

from monitor.contract.schemas import Record
from monitor.engine.model import Evidence, Hit, RecordRef
from monitor.engine.state import SeenStore, Store, event_hash
from monitor.geo.resolve import Flow, FlowState

__all__ = ["MAX_EVIDENCE", "RuleType", "single_hit"]

MAX_EVIDENCE = 20


def evidence_of(state: FlowState, first_hop: RecordRef | None = None) -> Evidence:
    entry: Evidence = {
        "event_id": state["event_id"],
        "ts": state["ts"],
        "source": state["source"],
    }
    if first_hop is not None:
        entry["first_hop"] = first_hop.copy()
    return entry


def single_hit(rule_id: str, state: FlowState, first_hop: RecordRef | None = None) -> Hit:
    """A hit for one matching record (`state` is `Flow.to_state()`)."""
    hit: Hit = {
        "rule": rule_id,
        "fields": {
            "platform": state["platform"],
            "src_country": state["src_country"],
            "dst_country": state["dst_country"],
            "subject_region": state["subject_region"],
            "dataset_id": state["dataset_id"],
        },
        "ids": [event_hash(state["platform"], state["event_id"])],
        "first_seen": state["ts"],
        "last_seen": state["ts"],
        "event_count": 1,
        "bytes": state["bytes"],
        "records": state["records"],
        "categories": sorted(state["data_categories"]),
        "evidence": [evidence_of(state, first_hop)],
        "truncated": state.get("truncated", False),
    }
    if "dst_org" in state:
        hit["orgs"] = [state["dst_org"]]
    return hit


# What a type routes to a state key, and the value it keeps there.
ItemT = TypeVar("ItemT")
ValueT = TypeVar("ValueT")


class RuleType(Generic[ItemT, ValueT]):
    """Base of the stateful rule types; `name` is the `type:` of a rule in YAML."""

    name: ClassVar[str]
    # Parameters the type reads from the rule's `params`, with their kinds.
    required: ClassVar[tuple[str, ...]] = ()

    def __init__(self, rule_id: str, params: Mapping[str, Any], home_region: str) -> None:
        self.rule_id = rule_id
        self.params = params
        self.home = home_region

    # The same test as an expression over the record `r`, for generated matchers.
    concerns_src: ClassVar[str | None] = None

    def concerns(self, record: Record) -> bool:
        """Whether the record can touch this rule's state at all (cheap, checked first)."""
        return True

    def route(self, flow: Flow, matched: bool) -> list[tuple[str, ItemT]]:
        raise NotImplementedError

    def apply(self, store: Store[ValueT], seen: SeenStore, key: str, item: ItemT) -> list[Hit]:
        raise NotImplementedError

    def apply_many(
        self, store: Store[ValueT], seen: SeenStore, key: str, items: Iterable[ItemT]
    ) -> list[Hit]:
        """Several items of one key, in order: as `apply` on each, but may read and write once."""
        hits: list[Hit] = []
        for item in items:
            hits.extend(self.apply(store, seen, key, item))
        return hits

    def horizon_ms(self) -> int:
        """How long state stays useful after the newest event time seen."""
        raise NotImplementedError

    def expire(self, value: ValueT, watermark: int) -> ValueT | None:
        """The value pruned of what is older than the horizon; None when nothing is left."""
        raise NotImplementedError

    def closed_scopes(self, key: str, value: ValueT, watermark: int) -> list[str]:
        """Scopes of the seen-store that `expire` makes useless."""
        return []


# A rule's type as the stages hold it: which item and value types it takes
# follows from the rule id an item is routed under, which no type can say.
AnyRuleType = RuleType[Any, Any]
