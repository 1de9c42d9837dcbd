"""Threshold rules: a field summed per key over sliding spans of event time.

A rule fires when records of one key whose event times lie within `window`
of each other sum to at least `at_least` (a sliding span, not clock hours:
60,000 records at 10:50 and 60,000 at 11:10 fire a one-hour rule). Spans are
measured in buckets of a sixtieth of the window (one minute for one hour):
a span is `SPAN_BUCKETS` consecutive buckets, so records less than
`window` minus one bucket apart always count together, records more than
`window` apart never do, and records in between do when their buckets
are fewer than `SPAN_BUCKETS` apart.

State per key is bounded: its buckets (sums, first and last event time, a
few labels and the earliest evidence) for the window plus the allowed
lateness, so a late record counts in every span it falls in. Record ids are
deduplicated once, per bucket, in the seen store.

A bucket is *hot* once any span it lies in has crossed; buckets only gain
records, so hot buckets only grow. The alert group's unit of running totals
(`part`) is the bucket: every hot bucket sends its totals under its own part
id whenever it grows (and when it becomes hot), and the group adds what
they grew by. Parts are disjoint and monotone, so a span that keeps growing,
crossing spans that overlap, or a late record that extends an episode
backwards all update the same alert group, and the group's totals are those
of every record in some crossing span, whatever the order records arrive
in. (A part per crossing episode would re-key, or shrink, when a late
record joins two episodes or starts a crossing span earlier.) Each hit also
names the heaviest crossing span it knows (`Span`); the group keeps the
heaviest it is told of, which is the heaviest span of its records once they
have all arrived.
"""

from __future__ import annotations

from bisect import insort
from collections.abc import Callable, Mapping
from operator import attrgetter
from typing import Any, Literal, NotRequired, TypedDict, final

from monitor import bounds
from monitor.contract.schemas import Record, Source
from monitor.engine.model import Evidence, GroupFields, Hit, Span, Totals
from monitor.engine.ruletypes.base import MAX_EVIDENCE, RuleType
from monitor.engine.state import SeenStore, Store, event_hash, scope_of, settle_recent
from monitor.geo.resolve import Flow

__all__ = [
    "BUCKET_CATEGORIES",
    "BUCKET_EVIDENCE",
    "SPAN_BUCKETS",
    "Bucket",
    "ThresholdRule",
    "ThresholdState",
    "WindowAgg",
    "WindowBatch",
    "WindowItem",
    "earliest",
    "window_hit",
]

# Buckets per span at most (a sixtieth of the window each: a minute of an hour).
SPAN_BUCKETS = 60
# What a bucket keeps besides its sums: its earliest record as evidence and
# some labels, so a key's buckets stay under a Kafka message with the longest
# texts. The alert's evidence is the earliest record of each hot bucket (the
# 20 earliest of those): one a minute for a one-hour rule.
BUCKET_EVIDENCE = 1
BUCKET_CATEGORIES = 8


# Final: stages tell the items of rule types apart by their keys.
@final
class WindowItem(TypedDict):
    """A batch's records of one bucket of one key."""

    bucket: int  # the bucket's start, event time
    fields: GroupFields
    ids: list[list[int]]  # [event_hash, bytes, records] of each record
    first_seen: int
    last_seen: int
    categories: list[str]
    truncated: bool
    evidence: list[Evidence]


class WindowAgg(Totals):
    """A bucket's totals so far: the hit it sends once it is hot."""

    truncated: NotRequired[bool]


class Bucket(TypedDict):
    hot: bool  # some span it lies in has crossed
    agg: WindowAgg
    recent: NotRequired[list[int]]  # ids of its last update (see settle_recent)


class ThresholdState(TypedDict):
    """A key's buckets by start (as text: JSON object keys)."""

    buckets: dict[str, Bucket]


# A key's bucket: its per-values (one value, or a tuple of them) and start.
_At = tuple[object, int]


def _bucket_count(window: int) -> int:
    """Buckets per span: the largest divisor of the window up to SPAN_BUCKETS."""
    return next(n for n in range(SPAN_BUCKETS, 0, -1) if window % n == 0)


class ThresholdRule(RuleType[WindowItem, ThresholdState]):
    """Sum a field per key over sliding spans of event time; hit once a span reaches a threshold.

    Records reach a bucket a batch at a time: `accumulate` folds a batch's
    matching records into one item per (key, bucket), carrying each record's
    id and figures, so the bucket is updated once per batch. `apply` then
    sums the spans the bucket lies in; every hot bucket that changed (or
    became hot) sends a hit with its totals.
    """

    name = "threshold"
    required = ("sum", "at_least", "window", "per")

    def __init__(self, rule_id: str, params: Mapping[str, Any], home_region: str) -> None:
        super().__init__(rule_id, params, home_region)
        self.field: Literal["records", "bytes"] = params["sum"]
        self.threshold: int = params["at_least"]
        self.window: int = params["window"]
        self.per: tuple[str, ...] = tuple(params["per"])
        self.lateness: int = params.get("allowed_lateness", self.window)
        self.span_buckets = _bucket_count(self.window)
        self.bucket = self.window // self.span_buckets
        # The per-values of a flow in one C call (a tuple, or the value when one).
        self._per_values: Callable[[Flow], object] = attrgetter(
            *(f if f in ("src_country", "dst_country") else f"record.{f}" for f in self.per)
        )

    def route(self, flow: Flow, matched: bool) -> list[tuple[str, WindowItem]]:
        """One record alone: its batch of one."""
        if not matched:
            return []
        batch: dict[_At, WindowBatch] = {}
        self.accumulate(batch, flow)
        return self.drain(batch)

    def accumulate(self, batch: dict[_At, WindowBatch], flow: Flow) -> None:
        """Fold one matching record into the batch's item for its (key, bucket)."""
        r = flow.record
        ts = r.ts
        start = ts - ts % self.bucket
        at = (self._per_values(flow), start)
        acc = batch.get(at)
        if acc is None:
            acc = batch[at] = WindowBatch(self._fields(flow), ts)
        acc.add(r, flow.source)

    def drain(self, batch: dict[_At, WindowBatch]) -> list[tuple[str, WindowItem]]:
        out: list[tuple[str, WindowItem]] = []
        for (values, start), acc in batch.items():
            # A tuple when the rule has several per-fields: their values are never tuples.
            parts = values if isinstance(values, tuple) else (values,)
            key = "|".join([self.rule_id, *(str(v) for v in parts)])
            out.extend((key, item) for item in acc.items(start))
        batch.clear()
        return out

    def _fields(self, flow: Flow) -> GroupFields:
        # `per` is among GROUP_FIELDS (the loader checks): of those, only
        # src_country and dataset_id are left out of a bucket's fields unless per.
        r = flow.record
        return {
            "src_country": flow.src_country if "src_country" in self.per else None,
            "dataset_id": r.dataset_id if "dataset_id" in self.per else None,
            "platform": r.platform,
            "dst_country": flow.dst_country,
            "subject_region": r.subject_region,
        }

    def horizon_ms(self) -> int:
        return self.window + self.lateness

    def apply(
        self, store: Store[ThresholdState], seen: SeenStore, key: str, item: WindowItem
    ) -> list[Hit]:
        start = item["bucket"]
        value = store.get(key) or {"buckets": {}}
        buckets = value["buckets"]
        b = buckets.get(str(start))
        if b is None:
            b = buckets[str(start)] = {"hot": False, "agg": _empty_agg(item)}
            if len(buckets) > bounds.MAX_BUCKETS_PER_KEY:
                # Records spread far apart in time (the sweep has not yet
                # dropped the old buckets): the oldest go, this one stays.
                bounds.REACHED["windows"] += 1
                others = sorted(int(s) for s in buckets if s != str(start))
                for old in others[: len(buckets) - bounds.MAX_BUCKETS_PER_KEY]:
                    del buckets[str(old)]
        scope = scope_of(key, start)
        agg = b["agg"]
        recent = b.get("recent", ())
        known = seen.members(scope)
        new = [(h, n, r) for h, n, r in item["ids"] if h not in recent and h not in known]
        if not new:
            # Redelivered records. Should hits have been lost while the
            # buckets were saved, the hot buckets of the spans this one lies
            # in send theirs again (the alert group ignores totals it has).
            span, hot = self._spans(buckets, start)
            if b["hot"] and str(start) not in hot:
                hot.append(str(start))
            return [self._hit(key, int(s), buckets[s], span) for s in hot if buckets[s]["hot"]]
        agg["event_count"] += len(new)
        agg["bytes"] = bounds.add(agg["bytes"], sum(n for _, n, _ in new))
        agg["records"] = bounds.add(agg["records"], sum(r for _, _, r in new))
        if bounds.COUNT_MAX in (agg["bytes"], agg["records"]):
            agg["truncated"] = True
        # Repeated records may ride along below: min, max and unions are idempotent.
        agg["first_seen"] = min(agg["first_seen"], item["first_seen"])
        agg["last_seen"] = max(agg["last_seen"], item["last_seen"])
        _fold_labels(agg, item)
        agg["evidence"] = earliest(agg["evidence"] + item["evidence"], BUCKET_EVIDENCE)
        span, crossed = self._spans(buckets, start)
        changed = [s for s in crossed if s == str(start) or not buckets[s]["hot"]]
        for s in crossed:
            buckets[s]["hot"] = True
        if b["hot"] and str(start) not in changed:
            changed.append(str(start))  # hot before, no span crosses now (buckets dropped)
        # The bucket (naming these records in `recent`) is written before their
        # seen-ids: see AlertGrouper.add for why the order matters.
        expires = start + self.horizon_ms()
        settle_recent(seen, scope, recent, expires)
        b["recent"] = [h for h, _, _ in new]
        store[key] = value
        seen.add_many(scope, b["recent"], expires)
        return [self._hit(key, int(s), buckets[s], span) for s in changed]

    def _spans(self, buckets: dict[str, Bucket], start: int) -> tuple[Span | None, list[str]]:
        """The heaviest crossing span `start` lies in, and the buckets of every crossing span it lies in.

        Heaviest: by its sum, then its record count, then the earliest first
        and last event times, so the same records give the same span.
        """
        n, size = self.span_buckets, self.bucket
        lo = start - (n - 1) * size
        around = [buckets.get(str(lo + i * size)) for i in range(2 * n - 1)]
        sums, counts = [0], [0]
        for bk in around:
            sums.append(sums[-1] + (bk["agg"][self.field] if bk is not None else 0))
            counts.append(counts[-1] + (bk["agg"]["event_count"] if bk is not None else 0))
        crossing = [j for j in range(n) if sums[j + n] - sums[j] >= self.threshold]
        if not crossing:
            return None, []
        best: Span | None = None
        best_key: tuple[int, int, int, int] | None = None
        for j in crossing:
            inside = [bk["agg"] for bk in around[j : j + n] if bk is not None]
            span: Span = {
                "start": min(a["first_seen"] for a in inside),
                "end": max(a["last_seen"] for a in inside),
                "sum": self.field,
                "total": min(sums[j + n] - sums[j], bounds.COUNT_MAX),
                "event_count": counts[j + n] - counts[j],
            }
            k = span_order(span)
            if best_key is None or k > best_key:
                best, best_key = span, k
        hot = [
            str(lo + i * size)
            for i in range(crossing[0], crossing[-1] + n)
            if around[i] is not None
        ]
        return best, hot

    def _hit(self, key: str, start: int, bucket: Bucket, span: Span | None) -> Hit:
        agg = bucket["agg"]
        return window_hit(
            self.rule_id, event_hash(key, f"bucket:{start}"), agg, agg["evidence"], span
        )

    def expire(self, value: ThresholdState, watermark: int) -> ThresholdState | None:
        keep = {s: b for s, b in value["buckets"].items() if int(s) + self.horizon_ms() > watermark}
        return {"buckets": keep} if keep else None

    def closed_scopes(self, key: str, value: ThresholdState, watermark: int) -> list[str]:
        return [
            scope_of(key, s) for s in value["buckets"] if int(s) + self.horizon_ms() <= watermark
        ]


def span_order(span: Span) -> tuple[int, int, int, int]:
    """Heavier first: the sum, the record count, then earlier first and last event times."""
    return span["total"], span["event_count"], -span["start"], -span["end"]


def _fold_labels(agg: WindowAgg, item: WindowItem) -> None:
    """The item's labels into the bucket's, at most BUCKET_CATEGORIES (order-free, as bounds)."""
    if not set(item["categories"]) <= set(agg["categories"]):
        labels, cut = bounds.categories(
            set(agg["categories"]) | set(item["categories"]), BUCKET_CATEGORIES
        )
        agg["categories"] = sorted(labels)
        if cut:
            agg["truncated"] = True
    if item["truncated"]:
        agg["truncated"] = True


def _empty_agg(item: WindowItem) -> WindowAgg:
    return {
        "fields": item["fields"].copy(),
        "first_seen": item["first_seen"],
        "last_seen": item["last_seen"],
        "event_count": 0,
        "bytes": 0,
        "records": 0,
        "categories": [],
        "evidence": [],
    }


def earliest(evidence: list[Evidence], limit: int = MAX_EVIDENCE) -> list[Evidence]:
    """The `limit` earliest entries, one per record, by (event time, event id)."""
    unique = {(e["ts"], e["event_id"]): e for e in evidence}
    return [unique[k] for k in sorted(unique)[:limit]]


class WindowBatch:
    """One threshold bucket's records within a batch: ids and figures, earliest evidence."""

    __slots__ = ("categories", "fields", "first", "ids", "last", "sample")

    def __init__(self, fields: GroupFields, ts: int) -> None:
        self.fields = fields
        self.ids: dict[int, tuple[int, int]] = {}
        self.first = ts
        self.last = ts
        self.categories: set[str] = set()
        self.sample: list[tuple[int, str, Source]] = []

    def add(self, r: Record, source: Source) -> None:
        ts = r.ts
        self.ids[event_hash(r.platform, r.event_id)] = (r.bytes or 0, r.records or 0)
        if ts < self.first:
            self.first = ts
        elif ts > self.last:
            self.last = ts
        self.categories.update(r.data_categories)
        sample = self.sample
        # Kept bounded: only entries that can still be among the earliest.
        if len(sample) < MAX_EVIDENCE or (ts, r.event_id) < sample[-1][:2]:
            insort(sample, (ts, r.event_id, source), key=_sample_key)
            del sample[MAX_EVIDENCE:]

    # Ids per item: an item travels in one Kafka message (1 MB by default)
    # and its ids become one seen segment; 5,000 ids are about 200 KB.
    MAX_IDS = 5_000

    def items(self, start: int) -> list[WindowItem]:
        """The bucket's items for this batch: one, or one per MAX_IDS ids.

        Later items carry no categories or evidence (the first has them; both
        merge idempotently) and the batch's first and last event time.
        """
        ids = [[h, n, r] for h, (n, r) in self.ids.items()]
        labels, cut = bounds.categories(self.categories)
        out: list[WindowItem] = []
        for i in range(0, len(ids), self.MAX_IDS):
            out.append(
                {
                    "bucket": start,
                    "fields": self.fields,
                    "ids": ids[i : i + self.MAX_IDS],
                    "first_seen": self.first,
                    "last_seen": self.last,
                    "categories": sorted(labels) if i == 0 else [],
                    "truncated": cut,
                    "evidence": [
                        {"event_id": e, "ts": ts, "source": src} for ts, e, src in self.sample
                    ]
                    if i == 0
                    else [],
                }
            )
        return out


def _sample_key(entry: tuple[int, str, Source]) -> tuple[int, str]:
    return entry[0], entry[1]


def window_hit(
    rule_id: str, part: int, agg: WindowAgg, evidence: list[Evidence], span: Span | None = None
) -> Hit:
    """A hit standing for every record of a hot threshold bucket so far.

    It carries the bucket's running totals, not an increment: the alert group
    keeps the latest totals per bucket (`part`) and adds only the difference.
    So buckets rebuilt after a crash, whose records come back in another
    order and cross the threshold at another record, neither count a record
    twice nor drop one (records are deduplicated by their bucket, once).
    `span` names the heaviest crossing span the bucket lies in, if any.
    """
    hit: Hit = {
        "rule": rule_id,
        "fields": agg["fields"].copy(),
        "ids": [],
        "part": part,
        "first_seen": agg["first_seen"],
        "last_seen": agg["last_seen"],
        "event_count": agg["event_count"],
        "bytes": agg["bytes"],
        "records": agg["records"],
        "categories": list(agg["categories"]),
        "evidence": evidence,
        "truncated": agg.get("truncated", False),
    }
    if span is not None:
        hit["span"] = span
    return hit
