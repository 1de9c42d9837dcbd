"""The worker's three stages as plain functions over batches (no Faust here).

ingest:  raw message values -> dead letters, hits and routed state items
state:   routed items -> stateful rule hits      (state keyed by rule state key)
group:   hits -> alert emissions                 (state keyed by alert group key)

Between stages, items travel in batches, one message per destination
partition: the partition is a stable hash of the item's key, so every item
of a key always meets the same table partition, and the per-message cost of
the stream processor is paid once per batch instead of once per record.
"""

from __future__ import annotations

import time
import zlib
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from monitor.alerts import AlertContext, AlertGrouper, build_alert, group_key, iso_ms
from monitor.engine.model import Hit, RulePack
from monitor.engine.state import SeenStore, Store
from monitor.metrics import Metrics
from monitor.pipeline import evaluate
from monitor.resolve import Resolver
from monitor.schemas import DeadLetter, Source, dead_letter_json, decode_message

__all__ = [
    "Emission",
    "IngestOutput",
    "apply_routed",
    "group_hits",
    "ingest",
    "partition_for",
]


def partition_for(key: str, partitions: int) -> int:
    """Stable across processes and restarts (unlike Python's hash)."""
    return zlib.crc32(key.encode()) % partitions


@dataclass
class IngestOutput:
    dead_letters: list[dict[str, Any]] = field(default_factory=list)
    hits: dict[int, list[Hit]] = field(default_factory=lambda: defaultdict(list))
    routed: dict[int, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    records: Counter[str] = field(default_factory=Counter)


def ingest(
    messages: Iterable[tuple[bytes | None, Source]],
    pack: RulePack,
    resolver: Resolver,
    partitions: int,
    metrics: Metrics | None = None,
    now: float | None = None,
) -> IngestOutput:
    """Decode, validate, resolve and evaluate a batch of message values."""
    now = time.time() if now is None else now
    received_at = iso_ms(int(now * 1000))
    out = IngestOutput()
    misses_before = resolver.geoip_misses
    for value, source in messages:
        for got, at in decode_message(value, source):
            if isinstance(got, DeadLetter):
                out.dead_letters.append(dead_letter_json(got, received_at))
                if metrics is not None:
                    metrics.dead_letters.labels(got.reason).inc()
                continue
            out.records[got.kind] += 1
            flow = resolver.resolve(got, at)
            hits, routed = evaluate(pack, flow)
            for hit in hits:
                key = group_key(pack.by_id[hit["rule"]], hit)
                out.hits[partition_for(key, partitions)].append(hit)
            for rule_id, key, item in routed:
                out.routed[partition_for(key, partitions)].append(
                    {"rule": rule_id, "key": key, "item": item}
                )
            if metrics is not None:
                metrics.event_lag.observe(max(0.0, now - got.ts / 1000))
                if got.kind != "consent" and flow.memo.get("personal"):
                    metrics.transfer(
                        flow.src_country,
                        flow.dst_country,
                        got.data_categories,
                        got.records or 0,
                        got.bytes or 0,
                    )
    if metrics is not None:
        for kind, n in out.records.items():
            metrics.records_in.labels(kind).inc(n)
            metrics.records_out.labels(kind).inc(n)
        if resolver.geoip_misses > misses_before:
            metrics.geoip_misses.inc(resolver.geoip_misses - misses_before)
    return out


def apply_routed(
    items: Iterable[dict[str, Any]],
    pack: RulePack,
    store: Store,
    seen: SeenStore,
    partitions: int,
) -> dict[int, list[Hit]]:
    """Apply routed items to stateful rules; their hits, by destination partition."""
    out: dict[int, list[Hit]] = defaultdict(list)
    for msg in items:
        rule = pack.by_id.get(msg["rule"])
        if rule is None or rule.type is None:
            continue  # a rule removed since the item was routed
        for hit in rule.type.apply(store, seen, msg["key"], msg["item"]):
            out[partition_for(group_key(rule, hit), partitions)].append(hit)
    return out


@dataclass(frozen=True)
class Emission:
    alert_id: str
    alert: dict[str, Any]
    is_new: bool
    rule_id: str
    severity: str


def group_hits(
    hits: Iterable[Hit],
    pack: RulePack,
    grouper: AlertGrouper,
    context: AlertContext,
    now: float | None = None,
) -> list[Emission]:
    """Fold hits into alert groups; one emission per group changed by this batch."""
    now = time.time() if now is None else now
    changed: dict[str, tuple[Any, dict[str, Any], bool]] = {}
    for hit in hits:
        if hit["rule"] not in pack.by_id:
            continue
        got = grouper.add(hit)
        if got is not None:
            rule, group = got
            # New when this batch opened it: its first merge made revision 1.
            is_new = (
                changed[group["alert_id"]][2]
                if group["alert_id"] in changed
                else group["revision"] == 1
            )
            changed[group["alert_id"]] = (rule, group, is_new)
    now_ms = int(now * 1000)
    return [
        Emission(
            alert_id, build_alert(rule, group, context, now_ms), is_new, rule.id, rule.severity
        )
        for alert_id, (rule, group, is_new) in changed.items()
    ]
