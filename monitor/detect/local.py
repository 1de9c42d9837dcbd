"""The detection core both drivers call: evaluate a flow, fold hits into alerts.

`evaluate` is pure: stateless rules give hits directly, stateful rules give
routed items (rule, state key, item) to apply to their state. `LocalDetector`
runs the whole path in one process on in-memory stores: replay and rule
examples use it; the Faust worker runs the same steps across agents.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TypeVar, cast

import msgspec

from monitor.alerts.grouping import (
    Alert,
    AlertContext,
    AlertGroup,
    AlertGrouper,
    Groups,
    build_alert,
)
from monitor.contract.schemas import DeadLetter, Record, Source
from monitor.detect.expiry import Expired, expire_groups, expire_seen, expire_state, horizon
from monitor.engine.model import Hit, Rule, RulePack
from monitor.engine.ruletypes import StateItem, StateValue
from monitor.engine.ruletypes.base import AnyRuleType, single_hit
from monitor.engine.ruletypes.threshold import ThresholdRule, WindowBatch
from monitor.engine.state import MemorySeen, MemoryStore
from monitor.geo.resolve import Flow, FlowState, Resolver

__all__ = [
    "DEFAULT_MAX_SKEW_MS",
    "PROCESSING_ERROR",
    "LocalDetector",
    "Routed",
    "by_key",
    "evaluate",
    "evaluate_batch",
    "failed",
    "split_ahead",
]

Routed = tuple[str, str, StateItem]  # (rule id, state key, item)
PROCESSING_ERROR = "processing_error"
DEFAULT_MAX_SKEW_MS = 3_600_000  # how far ahead of the wall clock event time may be
log = logging.getLogger(__name__)


def failed(stage: str, error: BaseException, source: Source, raw: bytes) -> DeadLetter:
    """The dead letter of a record (or item) a stage raised on; logged without its content."""
    detail = f"{stage}: {type(error).__name__}"
    log.error("processing error at %s (%s), dead-lettered", source, detail)
    return DeadLetter(PROCESSING_ERROR, source, raw, detail)


def split_ahead(
    records: Sequence[Record], sources: Sequence[Source], limit_ms: int
) -> tuple[list[Record], list[Source], list[DeadLetter]]:
    """Records up to `limit_ms` of event time, and dead letters of those beyond it.

    Stream time is the newest event time seen, and state expires behind it:
    one record stamped in the year 9999 would expire every window, first hop
    and group of its partition. A record further ahead of the wall clock than
    the allowed skew is dead-lettered (`processing_error`) instead; its raw
    text is the record as validated (its source locates the original).
    """
    if not records or max(r.ts for r in records) <= limit_ms:
        return list(records), list(sources), []
    kept: list[Record] = []
    kept_at: list[Source] = []
    letters: list[DeadLetter] = []
    for r, s in zip(records, sources, strict=True):
        if r.ts <= limit_ms:
            kept.append(r)
            kept_at.append(s)
        else:
            detail = "ts: ahead of the clock by more than the allowed skew"
            letters.append(DeadLetter(PROCESSING_ERROR, s, msgspec.json.encode(r), detail))
    return kept, kept_at, letters


def evaluate_batch(pack: RulePack, flows: Iterable[Flow]) -> tuple[list[Hit], list[Routed]]:
    """Hits of stateless rules and routed items of stateful ones, for a batch of flows.

    Each record's rules are evaluated by one generated function (see
    `RulePack.matchers`); it also marks the flow `personal`. A threshold
    rule's matching records become one item per (key, window) for the whole
    batch; other stateful rules route each record that concerns them (one
    carrying a dataset, a subject) on its own.
    """
    hits: list[Hit] = []
    routed: list[Routed] = []
    windows: dict[str, dict[tuple[object, int], WindowBatch]] = {}
    plans: dict[str, _Plan] = {}
    for kind, matcher in pack.matchers.items():
        plan = _Plan(matcher.match)
        for i, rule in enumerate(matcher.rules):
            if rule.type is None:
                plan.stateless.append((i, rule.id))
            elif isinstance(rule.type, ThresholdRule):
                plan.windows.append((i, rule.type, windows.setdefault(rule.id, {})))
            else:
                plan.others.append((i, rule.id, rule.type))
        plans[kind] = plan
    for flow in flows:
        r = flow.record
        plan = plans[r.kind]
        got = plan.match(flow)
        flow.personal = bool(got[-1])
        state: FlowState | None = None
        for i, rule_id in plan.stateless:
            if got[i]:
                if state is None:
                    state = flow.to_state()
                hits.append(single_hit(rule_id, state))
        for i, threshold, batch in plan.windows:
            if got[i]:
                threshold.accumulate(batch, flow)
        for i, rule_id, rtype in plan.others:
            if rtype.concerns(r):
                routed.extend((rule_id, key, item) for key, item in rtype.route(flow, bool(got[i])))
    for rule in pack.stateful:
        if rule.id in windows:
            threshold = cast(ThresholdRule, rule.type)
            routed.extend((rule.id, key, item) for key, item in threshold.drain(windows[rule.id]))
    return hits, routed


@dataclass
class _Plan:
    """A kind's rules by role, each with its position in the matcher's answer."""

    match: Callable[[Flow], tuple[object, ...]]
    stateless: list[tuple[int, str]] = field(default_factory=list)
    windows: list[tuple[int, ThresholdRule, dict[tuple[object, int], WindowBatch]]] = field(
        default_factory=list
    )
    others: list[tuple[int, str, AnyRuleType]] = field(default_factory=list)


def by_key(routed: Iterable[Routed]) -> dict[tuple[str, str], list[StateItem]]:
    """Routed items by (rule, state key), in order within each key: a key's state is read once."""
    out: dict[tuple[str, str], list[StateItem]] = {}
    for rule_id, key, item in routed:
        got = out.get((rule_id, key))
        if got is None:
            out[(rule_id, key)] = [item]
        else:
            got.append(item)
    return out


def evaluate(pack: RulePack, flow: Flow) -> tuple[list[Hit], list[Routed]]:
    """One flow alone."""
    return evaluate_batch(pack, (flow,))


@dataclass
class LocalDetector:
    """Decode-free core path on dict stores: records in, changed alert groups out."""

    pack: RulePack
    resolver: Resolver
    clock: Callable[[], float] = time.time
    stores: dict[str, MemoryStore[StateValue]] = field(init=False)
    groups: MemoryStore[Groups] = field(init=False)
    watermark: int = 0  # newest event time seen
    grace_ms: int = 86_400_000  # state outlives each rule's horizon by this much (as the worker)

    def __post_init__(self) -> None:
        self.stores = {r.id: MemoryStore() for r in self.pack.stateful}
        self.seen = MemorySeen()
        self.groups = MemoryStore()
        self.grouper = AlertGrouper(self.pack, self.groups, self.seen)
        self.context = AlertContext(self.pack.version, self.resolver.geoip_build)

    def process(self, record: Record, source: Source) -> list[tuple[Rule, AlertGroup]]:
        """Changed alert groups (rule, group state) after this record."""
        return self.process_batch([record], [source])

    def process_batch(
        self, records: Sequence[Record], sources: Sequence[Source]
    ) -> list[tuple[Rule, AlertGroup]]:
        """Changed alert groups (rule, group state) after this batch, in the order they changed."""
        if not records:
            return []
        self.watermark = max(self.watermark, max(r.ts for r in records))
        resolve = self.resolver.resolve
        flows = [resolve(r, s) for r, s in zip(records, sources, strict=True)]
        hits, routed = evaluate_batch(self.pack, flows)
        for (rule_id, key), items in by_key(routed).items():
            rule = self.pack.by_id[rule_id]
            assert rule.type is not None
            hits.extend(rule.type.apply_many(self.stores[rule_id], self.seen, key, items))
        changed = []
        for hit in hits:
            out = self.grouper.add(hit)
            if out is not None:
                changed.append(out)
        return changed

    def process_guarded(
        self, records: Sequence[Record], sources: Sequence[Source]
    ) -> tuple[list[tuple[Rule, AlertGroup]], list[DeadLetter]]:
        """`process_batch`, where a record that makes a stage raise becomes a dead letter.

        After an error the batch is redone a record at a time: every stateful
        step ignores records it has already counted (as for redelivery), so
        the part of the batch applied before the error is not counted twice.
        """
        try:
            return self.process_batch(records, sources), []
        except Exception:  # any error of the monitor; isolated below
            pass
        changed: list[tuple[Rule, AlertGroup]] = []
        letters: list[DeadLetter] = []
        for r, s in zip(records, sources, strict=True):
            try:
                changed.extend(self.process_batch([r], [s]))
            except Exception as e:  # dead-lettered and counted
                letters.append(failed("evaluate", e, s, msgspec.json.encode(r)))
        return changed, letters

    def alert(self, rule: Rule, group: AlertGroup) -> Alert:
        return build_alert(rule, group, self.context, int(self.clock() * 1000))

    def expire(self) -> Iterator[tuple[Rule, AlertGroup]]:
        """Drop state older than every rule's horizon; yield alert groups that closed.

        The worker's sweep expires its tables with the same functions.
        """
        at = horizon(self.watermark, self.grace_ms)
        for rule in self.pack.stateful:
            store = self.stores[rule.id]
            _apply(store, expire_state(store.items_snapshot(), self.pack, at))
        groups = expire_groups(self.groups.items_snapshot(), self.pack, at)
        _apply(self.groups, groups)
        for scope in expire_seen(self.seen.entries(), at):
            self.seen.drop(scope)
        for g in groups.closed:
            yield self.pack.by_id[g["rule"]], g

    def open_groups(self) -> Iterator[tuple[Rule, AlertGroup]]:
        for value in self.groups.values():
            for g in value["groups"]:
                yield self.pack.by_id[g["rule"]], g


V = TypeVar("V")


def _apply(store: MemoryStore[V], expired: Expired[V]) -> None:
    for key, value in expired.updates.items():
        store[key] = value
    for key in expired.deletes:
        del store[key]
