"""The detection core both drivers call: evaluate a flow, fold hits into alerts.

`evaluate` is pure: stateless rules give hits directly, stateful rules give
routed items (rule, state key, item) to apply to their state. `LocalDetector`
runs the whole path in one process on in-memory stores: replay and rule
examples use it; the Faust worker runs the same steps across agents.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from monitor.alerts import AlertContext, AlertGrouper, build_alert
from monitor.engine.model import Hit, Rule, RulePack
from monitor.engine.ruletypes import single_hit
from monitor.engine.state import MemorySeen, MemoryStore
from monitor.resolve import Flow, Resolver
from monitor.schemas import Record, Source

__all__ = ["LocalDetector", "Routed", "evaluate"]

Routed = tuple[str, str, dict[str, Any]]  # (rule id, state key, item)


def evaluate(pack: RulePack, flow: Flow) -> tuple[list[Hit], list[Routed]]:
    kind = flow.record.kind
    hits: list[Hit] = []
    state: dict[str, Any] | None = None
    for rule in pack.stateless_by_kind[kind]:
        if rule.when(flow):
            if state is None:
                state = flow.to_state()
            hits.append(single_hit(rule.id, state))
    routed: list[Routed] = []
    for rule in pack.stateful:
        assert rule.type is not None
        matched = kind in rule.kinds and rule.when(flow)
        for key, item in rule.type.route(flow, matched):
            routed.append((rule.id, key, item))
    return hits, routed


@dataclass
class LocalDetector:
    """Decode-free core path on dict stores: records in, changed alert groups out."""

    pack: RulePack
    resolver: Resolver
    clock: Callable[[], float] = time.time
    stores: dict[str, MemoryStore] = field(init=False)
    groups: MemoryStore = field(init=False)
    watermark: int = 0  # newest event time seen
    grace_ms: int = 86_400_000  # state outlives each rule's horizon by this much (as the worker)

    def __post_init__(self) -> None:
        self.stores = {r.id: MemoryStore() for r in self.pack.stateful}
        self.seen = MemorySeen()
        self.groups = MemoryStore()
        self.grouper = AlertGrouper(self.pack, self.groups, self.seen)
        self.context = AlertContext(self.pack.version, self.resolver.geoip_build)

    def process(self, record: Record, source: Source) -> list[tuple[Rule, dict[str, Any]]]:
        """Changed alert groups (rule, group state) after this record."""
        self.watermark = max(self.watermark, record.ts)
        flow = self.resolver.resolve(record, source)
        hits, routed = evaluate(self.pack, flow)
        for rule_id, key, item in routed:
            rule = self.pack.by_id[rule_id]
            assert rule.type is not None
            hits.extend(rule.type.apply(self.stores[rule_id], self.seen, key, item))
        changed = []
        for hit in hits:
            out = self.grouper.add(hit)
            if out is not None:
                changed.append(out)
        return changed

    def alert(self, rule: Rule, group: dict[str, Any]) -> dict[str, Any]:
        return build_alert(rule, group, self.context, int(self.clock() * 1000))

    def expire(self) -> Iterator[tuple[Rule, dict[str, Any]]]:
        """Drop state older than every rule's horizon; yield alert groups that closed."""
        horizon = self.watermark - self.grace_ms
        for rule in self.pack.stateful:
            assert rule.type is not None
            store = self.stores[rule.id]
            for key, value in store.items_snapshot():
                for scope in rule.type.closed_scopes(key, value, horizon):
                    self.seen.drop(scope)
                kept = rule.type.expire(value, horizon)
                if kept is None:
                    del store[key]
                else:
                    store[key] = kept
        for key, value in self.groups.items_snapshot():
            kept, closed = self.grouper.expire(key, value, horizon)
            if kept is None:
                del self.groups[key]
            else:
                self.groups[key] = kept
            for g in closed:
                yield self.pack.by_id[g["rule"]], g

    def open_groups(self) -> Iterator[tuple[Rule, dict[str, Any]]]:
        for value in self.groups.values():
            for g in value["groups"]:
                yield self.pack.by_id[g["rule"]], g
