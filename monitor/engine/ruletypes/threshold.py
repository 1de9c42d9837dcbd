"""Threshold rules: a field summed per key over tumbling event-time windows."""

from __future__ import annotations

from bisect import insort
from collections.abc import Callable, Mapping
from operator import attrgetter
from typing import Any, Literal, NotRequired, TypedDict, final

from monitor import bounds
from monitor.contract.schemas import Record, Source
from monitor.engine.model import Evidence, GroupFields, Hit, Totals
from monitor.engine.ruletypes.base import MAX_EVIDENCE, RuleType
from monitor.engine.state import SeenStore, Store, event_hash, scope_of, settle_recent
from monitor.geo.resolve import Flow

__all__ = [
    "ThresholdRule",
    "ThresholdState",
    "Window",
    "WindowAgg",
    "WindowBatch",
    "WindowItem",
    "earliest",
    "window_hit",
]


# Final: stages tell the items of rule types apart by their keys.
@final
class WindowItem(TypedDict):
    """A batch's records of one window of one key."""

    window: int  # the window's start, event time
    fields: GroupFields
    ids: list[list[int]]  # [event_hash, bytes, records] of each record
    first_seen: int
    last_seen: int
    categories: list[str]
    truncated: bool
    evidence: list[Evidence]


class WindowAgg(Totals):
    """A window's totals so far: the hit it sends once it has crossed."""

    truncated: NotRequired[bool]


class Window(TypedDict):
    fired: bool
    agg: WindowAgg
    recent: NotRequired[list[int]]  # ids of its last update (see settle_recent)


class ThresholdState(TypedDict):
    """A key's windows by start (as text: JSON object keys)."""

    windows: dict[str, Window]


# A key's window: its per-values (one value, or a tuple of them) and start.
_At = tuple[object, int]


class ThresholdRule(RuleType[WindowItem, ThresholdState]):
    """Sum a field per key over tumbling event-time windows; hit once the sum reaches a threshold.

    Records reach a window a batch at a time: `accumulate` folds a batch's
    matching records into one item per (key, window), carrying each record's
    id and figures, so the window is updated once per batch. Once a window
    has crossed, every update sends a hit with the window's totals.
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
        """Fold one matching record into the batch's item for its (key, window)."""
        r = flow.record
        ts = r.ts
        start = ts - ts % self.window
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
        # src_country and dataset_id are left out of a window's fields unless per.
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
        start = item["window"]
        value = store.get(key) or {"windows": {}}
        windows = value["windows"]
        w = windows.get(str(start))
        if w is None:
            w = windows[str(start)] = {"fired": False, "agg": _empty_agg(item)}
            if len(windows) > bounds.MAX_WINDOWS_PER_KEY:
                # Records spread far apart in time (the sweep has not yet
                # dropped the old windows): the oldest go, this one stays.
                bounds.REACHED["windows"] += 1
                others = sorted(int(s) for s in windows if s != str(start))
                for old in others[: len(windows) - bounds.MAX_WINDOWS_PER_KEY]:
                    del windows[str(old)]
        scope = scope_of(key, start)
        agg = w["agg"]
        recent = w.get("recent", ())
        known = seen.members(scope)
        new = [(h, n, r) for h, n, r in item["ids"] if h not in recent and h not in known]
        window_id = event_hash(key, f"window:{start}")
        if not new:
            # Redelivered records. Should the window's hit have been lost
            # while the window was saved, a fired window sends it again (the
            # alert group ignores totals it already has).
            return (
                [window_hit(self.rule_id, window_id, start, agg, agg["evidence"])]
                if w["fired"]
                else []
            )
        agg["event_count"] += len(new)
        agg["bytes"] = bounds.add(agg["bytes"], sum(n for _, n, _ in new))
        agg["records"] = bounds.add(agg["records"], sum(r for _, _, r in new))
        if bounds.COUNT_MAX in (agg["bytes"], agg["records"]):
            agg["truncated"] = True
        # Repeated records may ride along below: min, max and unions are idempotent.
        agg["first_seen"] = min(agg["first_seen"], item["first_seen"])
        agg["last_seen"] = max(agg["last_seen"], item["last_seen"])
        bounds.fold_categories(agg, item)
        agg["evidence"] = earliest(agg["evidence"] + item["evidence"])
        w["fired"] = w["fired"] or agg[self.field] >= self.threshold
        # The window (naming these records in `recent`) is written before their
        # seen-ids: see AlertGrouper.add for why the order matters.
        expires = start + self.horizon_ms()
        settle_recent(seen, scope, recent, expires)
        w["recent"] = [h for h, _, _ in new]
        store[key] = value
        seen.add_many(scope, w["recent"], expires)
        return (
            [window_hit(self.rule_id, window_id, start, agg, agg["evidence"])] if w["fired"] else []
        )

    def expire(self, value: ThresholdState, watermark: int) -> ThresholdState | None:
        keep = {s: w for s, w in value["windows"].items() if int(s) + self.horizon_ms() > watermark}
        return {"windows": keep} if keep else None

    def closed_scopes(self, key: str, value: ThresholdState, watermark: int) -> list[str]:
        return [
            scope_of(key, s) for s in value["windows"] if int(s) + self.horizon_ms() <= watermark
        ]


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


def earliest(evidence: list[Evidence]) -> list[Evidence]:
    """The MAX_EVIDENCE earliest entries, one per record, by (event time, event id)."""
    unique = {(e["ts"], e["event_id"]): e for e in evidence}
    return [unique[k] for k in sorted(unique)[:MAX_EVIDENCE]]


class WindowBatch:
    """One threshold window's records within a batch: ids and figures, earliest evidence."""

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
        """The window's items for this batch: one, or one per MAX_IDS ids.

        Later items carry no categories or evidence (the first has them; both
        merge idempotently) and the batch's first and last event time.
        """
        ids = [[h, n, r] for h, (n, r) in self.ids.items()]
        labels, cut = bounds.categories(self.categories)
        out: list[WindowItem] = []
        for i in range(0, len(ids), self.MAX_IDS):
            out.append(
                {
                    "window": start,
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
    rule_id: str, window_id: int, start: int, agg: WindowAgg, evidence: list[Evidence]
) -> Hit:
    """A hit standing for every record of a threshold window so far.

    It carries the window's running totals, not an increment: the alert group
    keeps the latest totals per window (`part`) and adds only the difference.
    So a window rebuilt after a crash, whose records come back in another
    order and cross the threshold at another record, neither counts a record
    twice nor drops one (records are deduplicated by the window, once).
    `evidence` is what the group may not have yet: all of the window's when it
    crosses, then the new record's own entry when it is among the earliest.
    `start`, the window's own start, says which alert group the totals go to.
    """
    return {
        "rule": rule_id,
        "fields": agg["fields"].copy(),
        "ids": [],
        "part": window_id,
        "part_start": start,
        "first_seen": agg["first_seen"],
        "last_seen": agg["last_seen"],
        "event_count": agg["event_count"],
        "bytes": agg["bytes"],
        "records": agg["records"],
        "categories": list(agg["categories"]),
        "evidence": evidence,
        "truncated": agg.get("truncated", False),
    }
