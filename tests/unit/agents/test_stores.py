"""`agents.stores`: seen ids kept in a table as segments another process reads back."""

from __future__ import annotations

from typing import Any


def test_seen_ids_are_written_one_segment_per_add_and_read_back_by_a_fresh_process() -> None:
    from agents.stores import TableSeen

    table: dict[str, Any] = {}
    seen = TableSeen(table)
    seen.add_many("k\x1e1", [1, 2, 3], expires=99)
    seen.add_many("k\x1e1", [4], expires=99)
    seen.add_many("k\x1e1", [], expires=99)
    assert sorted(table) == ["seen:k\x1e1#0", "seen:k\x1e1#1"]
    assert table["seen:k\x1e1#0"] == {"expires": 99, "ids": [1, 2, 3]}
    # Another process (after a rebalance) reads the same segments; more come in order.
    other = TableSeen(table)
    assert set(other.members("k\x1e1")) == {1, 2, 3, 4}
    seen.add_many("k\x1e1", range(TableSeen.MAX_SEGMENT + 1), expires=99)
    assert len(table) == 4  # over MAX_SEGMENT ids: two segments
    assert TableSeen.MAX_SEGMENT in other.members("k\x1e1")
    assert other.members("other") == set()
