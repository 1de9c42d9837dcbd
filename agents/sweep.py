"""The worker's expiry: stream time per partition, and a table swept a partition at a time.

What expires is decided by `monitor.detect.expiry`, as in replay; this is
only where and when. A partition is swept inside a stream event of that
partition, so the changelog records each change in the partition that owns
the key, where recovery expects it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

from agents.stores import SEEN_PREFIX, SeenSegment, TableSeen, seen_owner, seen_scope
from monitor.detect.expiry import Expired, expire_seen, horizon
from monitor.detect.stages import RoutedItem, item_time, partition_for
from monitor.engine.model import Hit, RulePack

__all__ = ["StreamTime", "TableSweep"]

V = TypeVar("V")
T = TypeVar("T")


class StreamTime:
    """One agent's stream time per partition, as Kafka Streams keeps it per task.

    A far-ahead record in one partition must not expire state in another
    (whether it did would depend on how partitions interleave).
    """

    def __init__(self, grace_ms: int) -> None:
        self.grace_ms = grace_ms
        self.watermarks: dict[int, int] = {}

    def advance(self, partition: int, items: Iterable[RoutedItem | Hit]) -> None:
        self.watermarks[partition] = max(
            [self.watermarks.get(partition, 0), *map(item_time, items)]
        )

    def horizon(self, partition: int) -> int:
        return horizon(self.watermarks.get(partition, 0), self.grace_ms)


class TableSweep(Generic[V]):
    """Expiry of one table (state values and their seen segments), a partition at a time.

    Each partition is swept at most once per `interval`. Which keys belong to
    which partition comes from one pass over the whole table, shared by the
    sweeps of every partition for an `interval`: scanning the table once per
    partition cost the number of partitions times the table each round.
    Values are read when a partition is swept, so a key written since the
    pass is swept as it is now, and one first written since, next round.
    """

    def __init__(
        self,
        table: Any,
        expire: Callable[[list[tuple[str, V]], RulePack, int], Expired[V]],
        seen: TableSeen,
        partitions: int,
        interval: float,
        size: Callable[[V], int] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.table = table
        self.expire = expire
        self.seen = seen
        self.partitions = partitions
        self.interval = interval
        # What an entry counts for in `sizes` (per partition): a metric's measure.
        self.size = size
        self.sizes: dict[int, int] = {}
        self.clock = clock
        self._last: dict[int, float] = {}
        self._index: dict[int, tuple[list[str], list[str]]] = {}
        self._indexed_at: float | None = None

    def due(self, partition: int) -> bool:
        now = self.clock()
        if now - self._last.get(partition, 0.0) < self.interval:
            return False
        self._last[partition] = now
        return True

    def forget(self) -> None:
        """Partitions moved: the table may have changed without this process.

        Keys of partitions now here were not in the last pass, and seen ids
        cached may have been written elsewhere since.
        """
        self._index.clear()
        self._indexed_at = None
        self.sizes.clear()
        self.seen.forget()

    def _keys(self, partition: int) -> tuple[list[str], list[str]]:
        now = self.clock()
        if self._indexed_at is None or now - self._indexed_at >= self.interval:
            self._reindex()
            self._indexed_at = now
        return self._index.get(partition, ([], []))

    def _reindex(self) -> None:
        index: dict[int, tuple[list[str], list[str]]] = {}
        sizes: dict[int, int] = {}
        n = self.partitions
        for key, value in list(self.table.items()):
            if key.startswith(SEEN_PREFIX):
                index.setdefault(partition_for(seen_owner(key), n), ([], []))[1].append(key)
                continue
            p = partition_for(key, n)
            index.setdefault(p, ([], []))[0].append(key)
            if self.size is not None:
                sizes[p] = sizes.get(p, 0) + self.size(value)
        self._index = index
        if self.size is not None:
            self.sizes = sizes

    def entries(self, partition: int) -> tuple[list[tuple[str, V]], list[tuple[str, SeenSegment]]]:
        """This partition's (state entries, seen entries), with their values as they are now."""
        state, seen = self._keys(partition)
        get = self.table.get
        return _present(state, get), _present(seen, get)

    def run(self, partition: int, at: int, pack: RulePack) -> Expired[V]:
        """Expire the partition's entries against the horizon `at` and the rules of `pack`
        (the one running when the sweep runs); what was expired."""
        state, seen = self.entries(partition)
        expired = self.expire(state, pack, at)
        self._apply(expired.updates, expired.deletes)
        closed = expire_seen(seen, at)
        self._apply({}, closed)
        for key in closed:
            self.seen.drop(seen_scope(key))
        if self.size is not None:
            self.sizes[partition] = sum(self.size(v) for _, v in expired.remaining(state))
        return expired

    def _apply(self, updates: dict[str, V], deletes: list[str]) -> None:
        # Runs inside the stream, on a message of the swept partition, so the
        # changelog records the change in the partition that owns the keys.
        for key, value in updates.items():
            self.table[key] = value
        for key in deletes:
            del self.table[key]


def _present(keys: list[str], get: Callable[[str], T | None]) -> list[tuple[str, T]]:
    out = []
    for key in keys:
        value = get(key)
        if value is not None:  # deleted since the pass
            out.append((key, value))
    return out
