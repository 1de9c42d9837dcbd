"""`agents.context`: internal batches cut into messages under the broker's limit."""

from __future__ import annotations

import orjson


def test_internal_batches_are_chunked_under_the_message_limit() -> None:
    from agents.context import chunk_json

    items = [{"i": i, "pad": "x" * 100} for i in range(1000)]
    chunks = list(chunk_json(items, limit=10_000))
    assert all(len(c) <= 10_000 for c in chunks) and len(chunks) > 10
    assert [x for c in chunks for x in orjson.loads(c)] == items
    assert list(chunk_json([])) == []
