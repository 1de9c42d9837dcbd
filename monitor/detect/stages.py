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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypedDict, cast, final

import orjson

from monitor.alerts.grouping import (
    Alert,
    AlertContext,
    AlertGroup,
    AlertGrouper,
    build_alert,
    group_key,
    iso_ms,
)
from monitor.contract.attribution import (
    NO_SERVICES,
    ServiceRegistry,
    attribute_records,
    message_labels,
)
from monitor.contract.dead_letters import dead_letter_json
from monitor.contract.decode import Decoded
from monitor.contract.formats import TELEMETRY, FormatOptions, decode_inputs
from monitor.contract.schemas import DeadLetter, KafkaSource, Record, Source
from monitor.detect.local import (
    DEFAULT_MAX_SKEW_MS,
    PROCESSING_ERROR,
    by_key,
    evaluate_batch,
    failed,
    split_ahead,
)
from monitor.engine.model import Hit, Rule, RulePack
from monitor.engine.ruletypes import StateItem, StateValue
from monitor.engine.state import SeenStore, Store
from monitor.geo.resolve import Flow, Resolver
from monitor.metrics import (
    Metrics,
    country_label,
    legal_basis_label,
    observe_many,
    personal_categories,
)

__all__ = [
    "Emission",
    "Failures",
    "IngestOutput",
    "RoutedItem",
    "UpdateLimiter",
    "apply_routed",
    "group_hits",
    "ingest",
    "item_source",
    "item_time",
    "partition_for",
]


def partition_for(key: str, partitions: int) -> int:
    """Stable across processes and restarts (unlike Python's hash)."""
    return zlib.crc32(key.encode()) % partitions


# Final: item_time tells it from a hit by its keys.
@final
class RoutedItem(TypedDict):
    """A state item on its way to the partition that owns its state key."""

    rule: str
    key: str
    item: StateItem


@dataclass
class IngestOutput:
    dead_letters: list[dict[str, Any]] = field(default_factory=list)
    hits: dict[int, list[Hit]] = field(default_factory=lambda: defaultdict(list))
    routed: dict[int, list[RoutedItem]] = field(default_factory=lambda: defaultdict(list))
    records: Counter[str] = field(default_factory=Counter)
    # Lines of other formats that are no transfer, by `format:reason`.
    skipped: Counter[str] = field(default_factory=Counter)


def ingest(
    messages: Sequence[tuple[bytes | None, KafkaSource]],
    pack: RulePack,
    resolver: Resolver,
    partitions: int,
    metrics: Metrics | None = None,
    now: float | None = None,
    max_skew_ms: int = DEFAULT_MAX_SKEW_MS,
    mask_dead_letters: bool = False,
    input_formats: Mapping[str, str] | None = None,
    format_options: FormatOptions | None = None,
    services: ServiceRegistry = NO_SERVICES,
) -> IngestOutput:
    """Decode, validate, resolve and evaluate a batch of message values, all at once.

    `input_formats`: the format of each topic that does not carry telemetry-v1
    (`monitor.contract.formats`); `format_options`: what those formats do not say.
    `services`: the service registry, which fills what records lack (the
    foreign formats' through `format_options`, unless it has its own hook;
    telemetry-v1's by `monitor.contract.attribution.attribute_records`);
    empty, it costs nothing.

    A message that makes a step raise becomes a `processing_error` dead
    letter: ingest keeps no state, so after an error the batch is simply
    redone a message at a time, and only the message that raises is set aside.
    """
    now = time.time() if now is None else now
    options = format_options or FormatOptions()
    if services and options.attribute is None:
        options = replace(options, attribute=services.attribute)
    formats = (input_formats or {}, options)
    args = (
        pack, resolver, partitions, metrics, now, max_skew_ms, mask_dead_letters, formats, services
    )  # fmt: skip
    try:
        return _ingest_all(messages, *args)
    except Exception:  # any error of the monitor; isolated below
        pass
    out = IngestOutput()
    for value, source in messages:
        try:
            one = _ingest_all([(value, source)], *args)
        except Exception as e:  # dead-lettered and counted
            letter = failed("ingest", e, source, value or b"")
            received_at = iso_ms(int(now * 1000))
            out.dead_letters.append(dead_letter_json(letter, received_at, mask_dead_letters))
            if metrics is not None:
                metrics.dead_letters.labels(PROCESSING_ERROR).inc()
                metrics.processing_errors.labels("ingest").inc()
            continue
        out.dead_letters += one.dead_letters
        for p, hits in one.hits.items():
            out.hits[p] += hits
        for p, routed in one.routed.items():
            out.routed[p] += routed
        out.records += one.records
        out.skipped += one.skipped
    return out


def _ingest_all(
    messages: Sequence[tuple[bytes | None, KafkaSource]],
    pack: RulePack,
    resolver: Resolver,
    partitions: int,
    metrics: Metrics | None,
    now: float,
    max_skew_ms: int,
    mask_dead_letters: bool,
    formats: tuple[Mapping[str, str], FormatOptions],
    services: ServiceRegistry,
) -> IngestOutput:
    """`ingest` of the whole batch at once, unguarded."""
    received_at = iso_ms(int(now * 1000))
    out = IngestOutput()
    misses_before = resolver.geoip_misses
    decoded, out.skipped = decode_inputs(messages, *formats)
    decoded_records = decoded.records
    if services:
        decoded_records = _attributed(messages, decoded, services, formats[0])
    records, sources, ahead = split_ahead(
        decoded_records, decoded.sources, int(now * 1000) + max_skew_ms
    )
    letters = decoded.dead_letters + ahead
    for letter in letters:
        out.dead_letters.append(dead_letter_json(letter, received_at, mask_dead_letters))
    resolve = resolver.resolve
    flows = [resolve(r, at) for r, at in zip(records, sources, strict=True)]
    hits, routed = evaluate_batch(pack, flows)
    by_id = pack.by_id
    for hit in hits:
        key = group_key(by_id[hit["rule"]], hit)
        out.hits[partition_for(key, partitions)].append(hit)
    for rule_id, key, item in routed:
        out.routed[partition_for(key, partitions)].append(
            {"rule": rule_id, "key": key, "item": item}
        )
    out.records.update(r.kind for r in records)
    if metrics is not None:
        record_metrics(metrics, flows, letters, out.records, now)
        for what, n in out.skipped.items():
            metrics.lines_skipped.labels(*what.split(":", 1)).inc(n)
        if resolver.geoip_misses > misses_before:
            metrics.geoip_misses.inc(resolver.geoip_misses - misses_before)
    return out


def _attributed(
    messages: Sequence[tuple[bytes | None, KafkaSource]],
    decoded: Decoded,
    services: ServiceRegistry,
    formats: Mapping[str, str],
) -> list[Record]:
    """The decoded records, the telemetry-v1 ones completed from the registry.

    Records of other formats were completed as they were read, from their
    own fields (`decode_inputs`): they are left as they are.
    """
    labels, at = message_labels(messages), decoded.sources
    if not formats:
        return attribute_records(decoded.records, services, lambda i: labels(at[i]))
    own = [i for i, s in enumerate(at) if formats.get(s["topic"], TELEMETRY) == TELEMETRY]
    done = attribute_records(
        [decoded.records[i] for i in own], services, lambda j: labels(at[own[j]])
    )
    out = list(decoded.records)
    for j, i in enumerate(own):
        out[i] = done[j]
    return out


def record_metrics(
    metrics: Metrics,
    flows: Sequence[Flow],
    dead_letters: Sequence[DeadLetter],
    kinds: Counter[str],
    now: float,
) -> None:
    """A batch's metrics, summed per label set first: one metric call per label set, not per record.

    The loop over flows only sums under the raw values; labels are made
    once per distinct key, which a batch has far fewer of than records.
    """
    for reason, n in Counter(d.reason for d in dead_letters).items():
        metrics.dead_letters.labels(reason).inc(n)
    for kind, n in kinds.items():
        metrics.records_in.labels(kind).inc(n)
        metrics.records_out.labels(kind).inc(n)
    # (platform, src, dst, kind, legal_basis, categories) -> [flows, records, bytes]
    sums: dict[tuple[str, str | None, str | None, str, str | None, tuple[str, ...]], list[int]]
    sums = {}
    for flow in flows:
        if flow.personal:
            r = flow.record
            kind = r.kind
            if kind == "consent":
                continue
            key = (r.platform, flow.src_country, flow.dst_country, kind, r.legal_basis,
                   r.data_categories)  # fmt: skip
            got = sums.get(key)
            if got is None:
                sums[key] = [1, r.records or 0, r.bytes or 0]
            else:
                got[0] += 1
                got[1] += r.records or 0
                got[2] += r.bytes or 0
    transfers: Counter[tuple[str, str, str, str]] = Counter()
    carried: Counter[tuple[str, str, str, str]] = Counter()
    sent: Counter[tuple[str, str, str]] = Counter()
    platform_label = metrics.platform_label
    # Keys repeat their parts (a few platforms, countries and category lists):
    # each part's labels are made once per batch.
    wheres: dict[tuple[str, str | None, str | None], tuple[str, str, str]] = {}
    cats_of: dict[tuple[str, ...], set[str]] = {}
    for (platform, src, dst, kind, basis, labels), (n, records, size) in sums.items():
        where = wheres.get((platform, src, dst))
        if where is None:
            where = (platform_label(platform), country_label(src), country_label(dst))
            wheres[(platform, src, dst)] = where
        cats = cats_of.get(labels)
        if cats is None:
            cats = cats_of[labels] = personal_categories(labels)
        for cat in cats:
            transfers[(*where, cat)] += n
        if records:
            carried[(*where, legal_basis_label(kind, basis))] += records
        if size:
            sent[where] += size
    for with_category, n in transfers.items():
        metrics.transfers.labels(*with_category).inc(n)
    for with_basis, n in carried.items():
        metrics.personal_records.labels(*with_basis).inc(n)
    for route, n in sent.items():
        metrics.transfer_bytes.labels(*route).inc(n)
    observe_many(metrics.event_lag, [max(0.0, now - f.record.ts / 1000) for f in flows])


def apply_routed(
    items: Iterable[RoutedItem],
    pack: RulePack,
    store: Store[StateValue],
    seen: SeenStore,
    partitions: int,
    failures: Failures | None = None,
) -> dict[int, list[Hit]]:
    """Apply routed items to stateful rules; their hits, by destination partition.

    With `failures` (a list and the source of the batch), a key whose items
    make its rule raise is set aside as dead letters of those items, and the
    other keys go on; without, the error propagates.
    """
    out: dict[int, list[Hit]] = defaultdict(list)
    routed = ((msg["rule"], msg["key"], msg["item"]) for msg in items)
    # A key's items together: its state is read and written once per batch.
    for (rule_id, key), batch in by_key(routed).items():
        rule = pack.by_id.get(rule_id)
        if rule is None or rule.type is None:
            continue  # a rule removed since the items were routed
        try:
            hits = rule.type.apply_many(store, seen, key, batch)
        except Exception as e:
            if failures is None or not failures.keeps(e):
                raise
            for item in batch:
                failures.add("state", e, item, {"rule": rule_id, "key": key, "item": item})
            continue
        for hit in hits:
            out[partition_for(group_key(rule, hit), partitions)].append(hit)
    return out


@dataclass
class Failures:
    """Dead letters of items a stage raised on; `batch` locates the internal message.

    `passthrough`: errors that say nothing about the item (the framework's,
    the broker's) and propagate: set aside as a dead letter, the item's
    effect would be lost on a fault that a restart cures.
    """

    batch: Source
    letters: list[DeadLetter] = field(default_factory=list)
    passthrough: tuple[type[BaseException], ...] = ()

    def keeps(self, error: BaseException) -> bool:
        """Whether the stage sets the item aside (else it re-raises)."""
        return not isinstance(error, self.passthrough)

    def add(self, stage: str, error: BaseException, item: object, whole: object) -> None:
        self.letters.append(failed(stage, error, item_source(item) or self.batch, _raw(whole)))


def _raw(value: object) -> bytes:
    try:
        return orjson.dumps(value)
    except (TypeError, orjson.JSONEncodeError):
        return repr(type(value)).encode()


def item_source(item: object) -> Source | None:
    """Where the record behind a routed item or a hit came from, when it says.

    The item made a stage raise: it may be anything, so only its shape is
    checked, not that of the source it names.
    """
    if not isinstance(item, dict):
        return None
    flow = item.get("flow")
    source = flow.get("source") if isinstance(flow, dict) else None
    evidence = item.get("evidence")
    if source is None and isinstance(evidence, list) and evidence:
        source = evidence[0].get("source") if isinstance(evidence[0], dict) else None
    return cast(Source, source) if isinstance(source, dict) else None


@dataclass(frozen=True)
class Emission:
    alert_id: str
    alert: Alert
    is_new: bool
    rule_id: str
    severity: str
    group_key: str


def group_hits(
    hits: Iterable[Hit],
    pack: RulePack,
    grouper: AlertGrouper,
    context: AlertContext,
    now: float | None = None,
    failures: Failures | None = None,
) -> list[Emission]:
    """Fold hits into alert groups; one emission per group changed by this batch.

    With `failures`, a hit that makes the grouper raise becomes a dead letter
    and the others go on; without, the error propagates.
    """
    now = time.time() if now is None else now
    changed: dict[str, tuple[Rule, AlertGroup, bool, str]] = {}
    for hit in hits:
        rule = pack.by_id.get(hit["rule"])
        if rule is None:
            continue
        try:
            got = grouper.add(hit, rule)
        except Exception as e:
            if failures is None or not failures.keeps(e):
                raise
            failures.add("group", e, hit, hit)
            continue
        if got is not None:
            rule, group = got
            # New when this batch opened it: its first merge made revision 1.
            aid = group["alert_id"]
            is_new = changed[aid][2] if aid in changed else group["revision"] == 1
            changed[aid] = (rule, group, is_new, group_key(rule, hit))
    now_ms = int(now * 1000)
    return [
        Emission(
            aid, build_alert(rule, group, context, now_ms), is_new, rule.id, rule.severity, key
        )
        for aid, (rule, group, is_new, key) in changed.items()
    ]


def item_time(item: RoutedItem | Hit) -> int:
    """Event time of a routed item or a hit (for the worker's watermark)."""
    if "last_seen" in item:
        return int(item["last_seen"])
    inner = item["item"]
    if "last_seen" in inner:  # a threshold window's records
        return int(inner["last_seen"])
    if "flow" in inner:
        return int(inner["flow"]["ts"])
    return int(inner["ts"])


class UpdateLimiter:
    """At most one update of an alert per `interval` seconds; new alerts go out at once.

    Held in memory by the worker process; a restart forgets it, which at worst
    sends one extra update per alert. Updates held back are `due` later.
    """

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.last: dict[str, float] = {}
        self.pending: dict[str, str] = {}  # alert id -> group key

    def admit(self, alert_id: str, group_key: str, is_new: bool, now: float) -> bool:
        if is_new or now - self.last.get(alert_id, float("-inf")) >= self.interval:
            self.last[alert_id] = now
            self.pending.pop(alert_id, None)
            return True
        self.pending[alert_id] = group_key
        return False

    def hold(self, alert_id: str, group_key: str) -> None:
        """An update not yet sent (found in state after a restart)."""
        self.pending.setdefault(alert_id, group_key)

    def due(self, now: float) -> list[tuple[str, str]]:
        ready = [
            (aid, key)
            for aid, key in self.pending.items()
            if now - self.last.get(aid, float("-inf")) >= self.interval
        ]
        for aid, _ in ready:
            self.pending.pop(aid)
            self.last[aid] = now
        return ready

    def forget(self, alert_ids: Iterable[str]) -> None:
        for aid in alert_ids:
            self.last.pop(aid, None)
            self.pending.pop(aid, None)
