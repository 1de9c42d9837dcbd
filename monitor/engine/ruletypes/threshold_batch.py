"""What a batch's matching records of one threshold bucket become: an item for the state stage."""

from __future__ import annotations

from bisect import insort
from typing import NotRequired, TypedDict, final

from monitor import bounds
from monitor.contract.schemas import Record, Source
from monitor.engine.model import Evidence, GroupFields
from monitor.engine.ruletypes.base import MAX_EVIDENCE
from monitor.engine.state import event_hash

__all__ = ["BUCKET_CATEGORIES", "BUCKET_EVIDENCE", "WindowBatch", "WindowItem", "earliest"]

# Evidence a bucket keeps: its earliest record. One per bucket keeps a key's
# state small; the alert names one record a minute of a one-hour rule.
BUCKET_EVIDENCE = 1
# Labels a bucket keeps (a sorted prefix, as bounds.categories cuts): a key
# keeps MAX_BUCKETS_PER_KEY buckets in one value, which must stay under a
# Kafka message with the longest labels too (64 of 128 characters would not).
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
    # Receiving organisations (bounds.MAX_ORGS, sorted prefix); absent when none is known.
    orgs: NotRequired[list[str]]


def earliest(evidence: list[Evidence], limit: int = MAX_EVIDENCE) -> list[Evidence]:
    """The `limit` earliest entries, one per record, by (event time, event id)."""
    unique = {(e["ts"], e["event_id"]): e for e in evidence}
    return [unique[k] for k in sorted(unique)[:limit]]


class WindowBatch:
    """One threshold bucket's records within a batch: ids and figures, earliest evidence."""

    __slots__ = ("categories", "fields", "first", "ids", "last", "orgs", "sample")

    def __init__(self, fields: GroupFields, ts: int) -> None:
        self.fields = fields
        self.ids: dict[int, tuple[int, int]] = {}
        self.first = ts
        self.last = ts
        self.categories: set[str] = set()
        self.orgs: set[str] = set()
        self.sample: list[tuple[int, str, Source]] = []

    def add(self, r: Record, source: Source, org: str | None = None) -> None:
        """One record; `org` its receiving organisation, when known (Flow.dst_org)."""
        ts = r.ts
        self.ids[event_hash(r.platform, r.event_id)] = (r.bytes or 0, r.records or 0)
        if ts < self.first:
            self.first = ts
        elif ts > self.last:
            self.last = ts
        self.categories.update(r.data_categories)
        if org:
            self.orgs.add(org[: bounds.MAX_LABEL])
        sample = self.sample
        # Kept bounded: only entries that can still be the bucket's earliest.
        if len(sample) < BUCKET_EVIDENCE or (ts, r.event_id) < sample[-1][:2]:
            insort(sample, (ts, r.event_id, source), key=_sample_key)
            del sample[BUCKET_EVIDENCE:]

    # Ids per item: an item travels in one Kafka message (1 MB by default)
    # and its ids become one seen segment; 5,000 ids are about 200 KB.
    MAX_IDS = 5_000

    def items(self, start: int) -> list[WindowItem]:
        """The bucket's items for this batch: one, or one per MAX_IDS ids.

        Later items carry no categories, organisations or evidence (the first
        has them; all merge idempotently) and the batch's first and last event time.
        """
        ids = [[h, n, r] for h, (n, r) in self.ids.items()]
        labels, cut = bounds.categories(self.categories)
        orgs = sorted(self.orgs)
        if len(orgs) > bounds.MAX_ORGS:
            orgs, cut = orgs[: bounds.MAX_ORGS], True
        out: list[WindowItem] = []
        for i in range(0, len(ids), self.MAX_IDS):
            item: WindowItem = {
                "bucket": start,
                "fields": self.fields,
                "ids": ids[i : i + self.MAX_IDS],
                "first_seen": self.first,
                "last_seen": self.last,
                "categories": sorted(labels) if i == 0 else [],
                "truncated": cut,
                "evidence": [{"event_id": e, "ts": ts, "source": src} for ts, e, src in self.sample]
                if i == 0
                else [],
            }
            if orgs and i == 0:
                item["orgs"] = orgs
            out.append(item)
        return out


def _sample_key(entry: tuple[int, str, Source]) -> tuple[int, str]:
    return entry[0], entry[1]
