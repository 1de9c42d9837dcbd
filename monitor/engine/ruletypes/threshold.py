"""Threshold rules: a field summed per key over sliding spans of event time.

A rule fires when records of one key whose event times lie within `window`
of each other sum to at least `at_least` (a sliding span, not clock hours:
60,000 records at 10:50 and 60,000 at 11:10 fire a one-hour rule). Spans are
measured in buckets of a sixtieth of the window (a minute of an hour): a
span is `SPAN_BUCKETS` consecutive buckets, so records less than `window`
minus one bucket apart always count together and records more than
`window` apart never do.

State per key is bounded: its buckets (sums, first and last event time,
labels, receiving organisations, the earliest record as evidence) for the window plus the allowed
lateness, so a late record counts in every span it falls in. Record ids are
deduplicated once per key and chunk of `window` in the seen store.

A bucket is *hot* once any span it lies in has crossed; buckets only gain
records, so hot buckets only grow. What a key's hot buckets hold is summed
per grouping window (a calendar day in the rule's zone by default), and
those running totals are what the alert group of that window receives
(`part`): they only grow, so a growing span, overlapping spans and a late
record that starts a crossing span earlier all update one alert without
counting a record twice, whatever the order records arrive in. The alert's
evidence is the earliest record of each hot bucket (the 20 earliest of
those), its `dst_orgs` the receiving organisations of the hot buckets' records
(the first MAX_ORGS sorted, as other rules'), and it names the heaviest
crossing span over its window's buckets.

A key's state is read and written once per batch (`apply_many`), and kept
compact (a bucket is a list), because it is written whole each time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from collections.abc import Set as AbstractSet
from operator import attrgetter
from typing import Any, Literal, NotRequired, TypedDict

from monitor import bounds
from monitor.engine.model import GroupFields, Hit, Span, Totals
from monitor.engine.ruletypes.base import RuleType
from monitor.engine.ruletypes.threshold_batch import (
    BUCKET_CATEGORIES,
    BUCKET_EVIDENCE,
    WindowBatch,
    WindowItem,
    earliest,
)
from monitor.engine.ruletypes.threshold_spans import (
    _BYTES,
    _COUNT,
    _EVIDENCE,
    _FIRST,
    _HOT,
    _LABELS,
    _LAST,
    _ORGS,
    _RECORDS,
    Bucket,
    heaviest,
    span_order,
)
from monitor.engine.state import SeenStore, Store, event_hash, scope_of, settle_recent
from monitor.geo.resolve import Flow

__all__ = [
    "BUCKET_EVIDENCE",
    "SPAN_BUCKETS",
    "DayAgg",
    "ThresholdRule",
    "ThresholdState",
    "WindowAgg",
    "WindowBatch",
    "WindowItem",
    "earliest",
    "span_order",
    "window_hit",
]

# Buckets per span at most (a sixtieth of the window each: a minute of an hour).
SPAN_BUCKETS = 60


class WindowAgg(Totals):
    """Running totals a hit carries: a grouping window's hot buckets so far."""

    truncated: NotRequired[bool]


class DayAgg(WindowAgg):
    span: NotRequired[Span]  # the heaviest crossing span over the window's buckets
    orgs: NotRequired[list[str]]  # receiving organisations of its hot buckets (MAX_ORGS)


class ThresholdState(TypedDict):
    """A key's buckets and its hot totals per grouping window (keys: starts, as text)."""

    fields: GroupFields
    buckets: dict[str, Bucket]
    days: dict[str, DayAgg]
    recent: NotRequired[dict[str, list[int]]]  # seen chunk -> ids of the last update


# A key's bucket: its per-values (one value, or a tuple of them) and start.
_At = tuple[object, int]


def _bucket_count(window: int) -> int:
    """Buckets per span: the largest divisor of the window up to SPAN_BUCKETS."""
    return next(n for n in range(SPAN_BUCKETS, 0, -1) if window % n == 0)


class ThresholdRule(RuleType[WindowItem, ThresholdState]):
    """Sum a field per key over sliding spans of event time; hit once a span reaches a threshold.

    Records reach a bucket a batch at a time: `accumulate` folds a batch's
    matching records into one item per (key, bucket), carrying each record's
    id and figures. `apply_many` folds a key's items into its buckets, finds
    the spans around each changed bucket that cross, and sends one hit per
    grouping window whose hot totals (or heaviest span) changed.
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
        self._at = _RECORDS if self.field == "records" else _BYTES
        # Where a bucket's totals go: the start of its grouping window (the
        # loader sets the rule's; epoch-aligned days until then).
        self.group_start: Callable[[int], int] = lambda ts: ts - ts % 86_400_000
        self._windows: dict[int, int] = {}  # bucket start -> its grouping window's start
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
        at = (self._per_values(flow), ts - ts % self.bucket)
        acc = batch.get(at)
        if acc is None:
            acc = batch[at] = WindowBatch(self._fields(flow), ts)
        acc.add(r, flow.source, flow.dst_org)

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

    def _window_of(self, start: int) -> int:
        """The grouping window of a bucket (remembered: a zone's calendar costs microseconds)."""
        got = self._windows.get(start)
        if got is None:
            if len(self._windows) > 4 * bounds.MAX_BUCKETS_PER_KEY:
                self._windows.clear()
            got = self._windows[start] = self.group_start(start)
        return got

    def horizon_ms(self) -> int:
        return self.window + self.lateness

    def _chunk(self, start: int) -> int:
        """The seen scope of a bucket: its key's chunk of `window` (few scopes, short-lived)."""
        return start - start % self.window

    def apply(
        self, store: Store[ThresholdState], seen: SeenStore, key: str, item: WindowItem
    ) -> list[Hit]:
        return self.apply_many(store, seen, key, (item,))

    def apply_many(
        self,
        store: Store[ThresholdState],
        seen: SeenStore,
        key: str,
        items: Iterable[WindowItem],
    ) -> list[Hit]:
        value = store.get(key)
        changed: set[int] = set()  # buckets that gained records
        touched: set[int] = set()  # buckets named by the items, new records or not
        fresh: dict[int, list[int]] = {}  # chunk -> ids new to it
        # chunk -> ids it has had: its recent ones and this call's; the seen store's
        had: dict[int, tuple[set[int], AbstractSet[int]]] = {}
        for item in items:
            if value is None:
                value = {"fields": item["fields"].copy(), "buckets": {}, "days": {}}
            start = item["bucket"]
            touched.add(start)
            chunk = self._chunk(start)
            got = had.get(chunk)
            if got is None:
                recent = set(value.get("recent", {}).get(str(chunk), ()))
                got = had[chunk] = (recent, seen.members(scope_of(key, chunk)))
            mine, known = got
            new = [(h, n, r) for h, n, r in item["ids"] if h not in mine and h not in known]
            if new:
                ids = [h for h, _, _ in new]
                mine.update(ids)
                fresh.setdefault(chunk, []).extend(ids)
                self._fold(value, start, item, new)
                changed.add(start)
        if value is None:
            return []
        hits = self._hits(key, value, changed, touched)
        if not changed:
            # Redelivered records: the hits above are sent again, should they
            # have been lost while the state was saved (groups ignore repeats).
            return hits
        self._bound(value)
        # The state (naming these records in `recent`) is written before their
        # seen-ids: see AlertGrouper.add for why the order matters.
        expires = self.window + self.horizon_ms()
        for text, ids in value.get("recent", {}).items():
            settle_recent(seen, scope_of(key, int(text)), ids, int(text) + expires)
        value["recent"] = {str(c): ids for c, ids in fresh.items() if ids}
        store[key] = value
        for chunk, ids in fresh.items():
            seen.add_many(scope_of(key, chunk), ids, chunk + expires)
        return hits

    def _fold(
        self, value: ThresholdState, start: int, item: WindowItem, new: list[tuple[int, int, int]]
    ) -> None:
        """New records of a bucket into it and, when it is hot, into its window's totals."""
        b = value["buckets"].get(str(start))
        if b is None:
            b = value["buckets"][str(start)] = [
                0, 0, 0, item["first_seen"], item["last_seen"], 0, [], [], [],
            ]  # fmt: skip
        count, size, records = len(new), sum(n for _, n, _ in new), sum(r for _, _, r in new)
        b[_COUNT] += count
        b[_BYTES] = bounds.add(b[_BYTES], size)
        b[_RECORDS] = bounds.add(b[_RECORDS], records)
        # Repeated records may ride along below: min, max and unions are idempotent.
        b[_FIRST] = min(b[_FIRST], item["first_seen"])
        b[_LAST] = max(b[_LAST], item["last_seen"])
        cut = item["truncated"]
        if not set(item["categories"]) <= set(b[_LABELS]):
            labels = set(b[_LABELS]) | set(item["categories"])
            kept, over = bounds.categories(labels, BUCKET_CATEGORIES)
            b[_LABELS], cut = sorted(kept), cut or over
        b[_EVIDENCE] = earliest(b[_EVIDENCE] + item["evidence"], BUCKET_EVIDENCE)
        orgs = item.get("orgs")
        if orgs:
            if len(b) == _ORGS:
                b.append([])  # a bucket of state written before organisations were kept
            if not set(orgs) <= set(b[_ORGS]):
                union = sorted(set(b[_ORGS]) | set(orgs))
                b[_ORGS], cut = union[: bounds.MAX_ORGS], cut or len(union) > bounds.MAX_ORGS
        if b[_HOT]:
            day = self._day(value, start, b)
            _add(day, count, size, records)
            self._widen(day, start, b, cut)

    def _day(self, value: ThresholdState, start: int, b: Bucket) -> DayAgg:
        day_start = self._window_of(start)
        day = value["days"].get(str(day_start))
        if day is None:
            day = value["days"][str(day_start)] = {
                "fields": value["fields"].copy(),
                "first_seen": b[_FIRST],
                "last_seen": b[_LAST],
                "event_count": 0,
                "bytes": 0,
                "records": 0,
                "categories": [],
                "evidence": [],
            }
        return day

    def _hits(
        self, key: str, value: ThresholdState, changed: set[int], touched: set[int]
    ) -> list[Hit]:
        """Heat the buckets of crossing spans around the changed ones; a hit per window moved.

        A span's sum only changes with its buckets, so looking at the spans
        around each changed bucket finds every span that newly crosses, and
        the heaviest a window's alert names is the heaviest of all its spans
        once the records are in.
        """
        buckets = value["buckets"]
        moved: dict[int, Span | None] = {}
        n, size = self.span_buckets, self.bucket
        for start in sorted(changed):
            lo = start - (n - 1) * size
            around = [buckets.get(str(lo + i * size)) for i in range(2 * n - 1)]
            sums = [0]
            for b in around:
                sums.append(sums[-1] + (b[self._at] if b is not None else 0))
            crossing = [j for j in range(n) if sums[j + n] - sums[j] >= self.threshold]
            done = 0  # the union of the crossing spans, each bucket once
            for j in crossing:
                for i in range(max(j, done), j + n):
                    b = around[i]
                    if b is not None and not b[_HOT]:
                        b[_HOT] = 1
                        at = lo + i * size
                        day = self._day(value, at, b)
                        _add(day, b[_COUNT], b[_BYTES], b[_RECORDS])
                        self._widen(day, at, b, False)
                        moved.setdefault(self._window_of(at), None)
                done = j + n
            if crossing:
                self._spans(value, lo, around, sums, crossing, moved)
            if buckets[str(start)][_HOT]:
                moved.setdefault(self._window_of(start), None)
        if not changed:
            for start in touched:
                b = buckets.get(str(start))
                if b is not None and b[_HOT]:
                    moved.setdefault(self._window_of(start), None)
        hits = []
        for day_start in sorted(moved):
            got = value["days"].get(str(day_start))
            if got is not None:
                hits.append(window_hit(self.rule_id, key, day_start, got))
        return hits

    def _spans(
        self,
        value: ThresholdState,
        lo: int,
        around: list[Bucket | None],
        sums: list[int],
        crossing: list[int],
        moved: dict[int, Span | None],
    ) -> None:
        """The heaviest crossing span over each window's buckets, kept in its totals."""
        window_of = self._window_of
        best = heaviest(around, sums, crossing, self.span_buckets, lo, self.bucket, window_of)
        for day_start, (total, count, start, end) in best.items():
            day = value["days"].get(str(day_start))
            if day is None:
                continue  # its buckets there hold no records (a span's empty end)
            if "span" not in day or (total, count, start, end) > span_order(day["span"]):
                day["span"] = {
                    "start": -start,
                    "end": -end,
                    "sum": self.field,
                    "total": total,
                    "event_count": count,
                }
                moved.setdefault(day_start, None)

    def _widen(self, day: DayAgg, start: int, b: Bucket, truncated: bool) -> None:
        """A hot bucket's times, labels and evidence into its window's totals.

        The window's evidence is the earliest record of each hot bucket: the
        bucket's entry replaces the one it had there (a late record may be
        earlier), so the 20 kept do not depend on the order records came in.
        """
        day["first_seen"] = min(day["first_seen"], b[_FIRST])
        day["last_seen"] = max(day["last_seen"], b[_LAST])
        bounds.fold_categories(day, {"categories": b[_LABELS], "truncated": truncated})
        if len(b) > _ORGS and b[_ORGS]:
            bounds.fold_orgs(day, b[_ORGS])
        size = self.bucket
        others = [e for e in day["evidence"] if e["ts"] - e["ts"] % size != start]
        day["evidence"] = earliest(others + b[_EVIDENCE])

    def _bound(self, value: ThresholdState) -> None:
        """At most MAX_BUCKETS_PER_KEY buckets and MAX_WINDOWS_PER_KEY windows: the oldest go."""
        for name, limit in (
            ("buckets", bounds.MAX_BUCKETS_PER_KEY),
            ("days", bounds.MAX_WINDOWS_PER_KEY),
        ):
            kept: dict[str, Any] = value[name]  # type: ignore[literal-required]
            if len(kept) > limit:
                # Records spread far apart in time (the sweep has not yet
                # dropped the old ones).
                bounds.REACHED["windows"] += 1
                for old in sorted(kept, key=int)[: len(kept) - limit]:
                    del kept[old]

    def expire(self, value: ThresholdState, watermark: int) -> ThresholdState | None:
        horizon = self.horizon_ms()
        buckets = {s: b for s, b in value["buckets"].items() if int(s) + horizon > watermark}
        if not buckets:
            return None
        # A window's totals stay while any bucket of it may still change.
        starts = {self._window_of(int(s)) for s in buckets}
        days = {s: d for s, d in value["days"].items() if int(s) in starts}
        out: ThresholdState = {"fields": value["fields"], "buckets": buckets, "days": days}
        if "recent" in value:
            out["recent"] = value["recent"]
        return out


def _add(day: DayAgg, count: int, size: int, records: int) -> None:
    day["event_count"] += count
    day["bytes"] = bounds.add(day["bytes"], size)
    day["records"] = bounds.add(day["records"], records)
    if bounds.COUNT_MAX in (day["bytes"], day["records"]):
        day["truncated"] = True


def window_hit(rule_id: str, key: str, start: int, day: DayAgg) -> Hit:
    """A hit standing for every record of a grouping window's hot buckets so far.

    It carries running totals, not an increment: the alert group keeps the
    latest totals per part and adds only the difference. So state rebuilt
    after a crash, whose records come back in another order and cross at
    another record, neither counts a record twice nor drops one (records are
    deduplicated by the key's state, once). `start` is the grouping window's.
    """
    hit: Hit = {
        "rule": rule_id,
        "fields": day["fields"].copy(),
        "ids": [],
        "part": event_hash(key, f"window:{start}"),
        "part_start": start,
        "first_seen": day["first_seen"],
        "last_seen": day["last_seen"],
        "event_count": day["event_count"],
        "bytes": day["bytes"],
        "records": day["records"],
        "categories": list(day["categories"]),
        "evidence": list(day["evidence"]),
        "truncated": day.get("truncated", False),
    }
    if "span" in day:
        hit["span"] = day["span"]
    if "orgs" in day:
        hit["orgs"] = list(day["orgs"])
    return hit
