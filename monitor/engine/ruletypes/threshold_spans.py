"""A bulk-volume key's buckets as kept, and the heaviest crossing span over them.

A bucket is a list, not a mapping: a key's state holds up to
MAX_BUCKETS_PER_KEY of them and is written whole once per batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from monitor import bounds
from monitor.engine.model import Span

__all__ = ["Bucket", "heaviest", "span_order"]

# [event_count, bytes, records, first_seen, last_seen, hot, categories,
# evidence, orgs]. State written before organisations were kept has buckets
# of eight: read as none.
Bucket = list[Any]
_COUNT, _BYTES, _RECORDS, _FIRST, _LAST, _HOT, _LABELS, _EVIDENCE, _ORGS = range(9)

# A span compared as span_order compares it.
Order = tuple[int, int, int, int]


def span_order(span: Span) -> Order:
    """Heavier first: the sum, the record count, then earlier first and last event times."""
    return span["total"], span["event_count"], -span["start"], -span["end"]


def heaviest(
    around: Sequence[Bucket | None],
    sums: Sequence[int],
    crossing: Sequence[int],
    n: int,
    lo: int,
    size: int,
    window_of: Callable[[int], int],
) -> dict[int, Order]:
    """The heaviest crossing span per grouping window, as its span_order.

    `around`: the 2n-1 buckets (None: empty) from `lo`, `size` apart; `sums`
    their prefix sums of the summed field; `crossing`: the first indexes of
    the n-bucket spans that reach the threshold. A span belongs to the
    windows of its first and last records (a grouping window is never
    shorter than a span in the packs here).
    """
    counts = [0]
    for b in around:
        counts.append(counts[-1] + (b[_COUNT] if b is not None else 0))
    # Buckets partition time: a span's first record is in its first
    # bucket holding any, its last in its last such bucket.
    last, first = [0] * len(around), [0] * len(around)
    seen = -1
    for i, b in enumerate(around):
        seen = i if b is not None else seen
        last[i] = seen
    seen = len(around)
    for i in range(len(around) - 1, -1, -1):
        seen = i if around[i] is not None else seen
        first[i] = seen
    cap = bounds.COUNT_MAX

    def order(j: int) -> Order:
        head, tail = around[first[j]], around[last[j + n - 1]]
        assert head is not None and tail is not None  # a crossing span holds records
        total = min(sums[j + n] - sums[j], cap)
        return total, counts[j + n] - counts[j], -head[_FIRST], -tail[_LAST]

    whole = window_of(lo)
    if whole == window_of(lo + (len(around) - 1) * size):
        # Every bucket around in one window (all but the spans near its
        # edge): the heaviest of all the crossing spans, in one pass.
        # (order(j), inlined: this is the common case of a hot key.)
        return {
            whole: max(
                (
                    min(sums[j + n] - sums[j], cap),
                    counts[j + n] - counts[j],
                    -around[first[j]][_FIRST],  # type: ignore[index]
                    -around[last[j + n - 1]][_LAST],  # type: ignore[index]
                )
                for j in crossing
            )
        }
    best: dict[int, Order] = {}
    for j in crossing:
        got_order = order(j)
        at_head = window_of(lo + first[j] * size)
        at_tail = window_of(lo + last[j + n - 1] * size)
        for day_start in (at_head,) if at_head == at_tail else (at_head, at_tail):
            got = best.get(day_start)
            if got is None or got_order > got:
                best[day_start] = got_order
    return best
