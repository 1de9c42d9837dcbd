"""Faust tables behind the `Store` and `SeenStore` interfaces that replay backs with dicts."""

from __future__ import annotations

from collections.abc import Collection
from collections.abc import Set as AbstractSet
from typing import Any, Generic, TypedDict, TypeVar

from monitor.engine.state import owner_of

__all__ = ["SEEN_PREFIX", "SeenSegment", "TableSeen", "TableStore", "seen_owner", "seen_scope"]

V = TypeVar("V")


class TableStore(Generic[V]):
    """`Store` over a Faust table (values JSON-ready dicts).

    `direct`: a write goes to the table's store and to `rows`, whose
    changelog messages the agent sends itself in batches (`send_rows`);
    Faust's own write builds and buffers a message per write, the largest
    cost of the state stage. Not under exactly-once, where a write must
    join the transaction.
    """

    def __init__(self, table: Any, direct: bool = False) -> None:
        self.table = table
        self.direct = direct
        # Rows of a TableSeen over this store too (its segments share the table).
        self.rows: list[tuple[str, object]] = []

    def get(self, key: str, default: V | None = None) -> V | None:
        value: V | None = self.table.get(key, default)
        return value

    def __setitem__(self, key: str, value: V) -> None:
        if self.direct:
            self.table.data[key] = value
            self.rows.append((key, value))
        else:
            self.table[key] = value

    def take_rows(self) -> list[tuple[str, object]]:
        rows, self.rows = self.rows, []
        return rows


SEEN_PREFIX = "seen:"


class SeenSegment(TypedDict):
    expires: int  # event time the scope closes at
    ids: list[int]


def seen_scope(key: str) -> str:
    """The scope of a seen entry's key (`seen:<scope>#<segment>`)."""
    return key[len(SEEN_PREFIX) :].rsplit("#", 1)[0]


def seen_owner(key: str) -> str:
    """The state key that owns a seen entry (for its partition)."""
    return owner_of(seen_scope(key))


class TableSeen:
    """`SeenStore` in the same Faust table as the state it guards: append-only segments.

    Each `add_many` writes one entry, `seen:<scope>#<n>` valued
    `{"expires": ms, "ids": [...]}`, the scope's next segment: a window that
    counts a batch of records costs one changelog write, not one per record.
    Segments never change once written, so a per-scope set of their ids is
    kept in memory and extended by probing the table for further segments
    (written by this process, or restored from the changelog after a
    rebalance). Same table, so the same changelog partition: the state value
    and then its segment are written in order (see AlertGrouper._save).
    Segments are dropped by the sweep once their scope has closed
    (`monitor.detect.expiry.expire_seen`), and the scope's cached set with them.
    """

    MAX_SEGMENT = 20_000  # ids per entry: well under Kafka's default 1 MB message

    def __init__(self, table: Any) -> None:
        # A Faust table, or a TableStore over one whose rows the agent sends.
        self.table = table
        self._known: dict[str, tuple[int, set[int]]] = {}

    @staticmethod
    def _key(scope: str, segment: int) -> str:
        return f"{SEEN_PREFIX}{scope}#{segment}"

    def _load(self, scope: str) -> tuple[int, set[int]]:
        count, ids = self._known.get(scope) or (0, set())
        while True:
            value: SeenSegment | None = self.table.get(self._key(scope, count))
            if value is None:
                break
            ids.update(value["ids"])
            count += 1
        if count:
            # A scope without segments is not cached: no sweep would ever
            # find an entry of it to free the cache by.
            self._known[scope] = (count, ids)
        return count, ids

    def members(self, scope: str) -> AbstractSet[int]:
        return self._load(scope)[1]

    def add_many(self, scope: str, items: Collection[int], expires: int) -> None:
        if not items:
            return
        count, ids = self._load(scope)
        batch = list(items)
        for start in range(0, len(batch), self.MAX_SEGMENT):
            part = batch[start : start + self.MAX_SEGMENT]
            segment: SeenSegment = {"expires": expires, "ids": part}
            self.table[self._key(scope, count)] = segment
            count += 1
        ids.update(batch)
        self._known[scope] = (count, ids)

    def drop(self, scope: str) -> None:
        """Forget the scope's ids here; the sweep removes its entries when they expire."""
        self._known.pop(scope, None)

    def forget(self) -> None:
        """Drop every cached set (partitions moved: the table is the truth)."""
        self._known.clear()
