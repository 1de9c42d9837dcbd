"""Table changelog writes sent as aiokafka batches, one per partition, when the agent chooses.

Faust sends each table write as its own message: `Collection.send_changelog`
does::

    return self.changelog_topic.send_soon(
        key=key, value=value, partition=partition, ...,
        callback=self._on_changelog_sent,
        eager_partitioning=True,
    )

which reaches `Producer.send_soon` (`self.buffer.put(fut)`), and the
buffer hands it to aiokafka's `send`: about 100 us of the event loop per
write, which made changelog writes the largest cost of the state stage.
`holding_changelogs` catches those futures instead; `send_held` appends each
partition's messages to one aiokafka batch (`create_batch`, `send_batch`) in
order and resolves each future as Faust's `Topic._on_published` does
(`message.set_result(res)`, then the message's callback). `send_rows` does
the same for writes made straight to a table's store, without building
Faust's futures at all. Under exactly-once, writes must join the
transaction: Faust's path.

The batch is handed to the producer's accumulator before these return, so a
commit (which flushes the producer) covers them, as it covers `send_soon`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson

__all__ = ["holding_changelogs", "send_held", "send_rows"]

logger = logging.getLogger("agents.transport")


@contextmanager
def holding_changelogs(producer: Any) -> Iterator[list[Any]]:
    """Table changelog messages written in this block are collected, not sent.

    Faust queues changelog writes with the producer's `send_soon` (already
    serialized); the caller hands them back to it, in order, when it chooses.
    Only around code that does not await: no other task may send meanwhile.
    """
    held: list[Any] = []
    send_soon = producer.send_soon
    producer.send_soon = held.append
    try:
        yield held
    finally:
        producer.send_soon = send_soon


async def send_held(producer: Any, held: list[Any]) -> None:
    """Send changelog messages held by `holding_changelogs`: one batch per partition."""
    if not held:
        return
    if producer.app.conf.processing_guarantee == "exactly_once":
        for fut in held:
            producer.send_soon(fut)
        return
    runs: dict[tuple[str, int], list[tuple[Any, Any, Any]]] = {}
    for fut in held:
        m = fut.message
        runs.setdefault((m.channel.get_topic_name(), m.partition), []).append((m.key, m.value, fut))
    # Table writes sent earlier through Faust's buffer go first: a changelog
    # must keep the order of its table's writes.
    await producer.buffer.flush()
    raw = producer._ensure_producer()
    for (topic, partition), entries in runs.items():
        await _send_run(raw, topic, partition, entries)


async def send_rows(producer: Any, topic: str, partition: int, rows: list[tuple[Any, Any]]) -> None:
    """Changelog messages of table writes made straight to a table's store (JSON key and value).

    What `send_held` does for Faust's held futures, without building them:
    a Faust write costs about 60 us before it is even sent. At-least-once
    only (no transaction).
    """
    if not rows:
        return
    await producer.buffer.flush()
    dumps = orjson.dumps
    entries = [(dumps(k), None if v is None else dumps(v), None) for k, v in rows]
    await _send_run(producer._ensure_producer(), topic, partition, entries)


async def _send_run(
    raw: Any, topic: str, partition: int, entries: list[tuple[Any, Any, Any]]
) -> None:
    """(key, value, Faust future or None) in order, in as few batches as fit."""
    batch, futs = raw.create_batch(), list[Any]()
    for key, value, fut in entries:
        if batch.append(key=key, value=value, timestamp=None) is None:
            if futs:
                await _send_batch(raw, batch, topic, partition, futs)
                batch, futs = raw.create_batch(), []
            if batch.append(key=key, value=value, timestamp=None) is None:
                # Larger than a batch: on its own, still in order.
                delivery = await raw.send(topic, value, key=key, partition=partition)
                delivery.add_done_callback(functools.partial(_resolve, [fut]))
                continue
        futs.append(fut)
    if futs:
        await _send_batch(raw, batch, topic, partition, futs)


async def _send_batch(raw: Any, batch: Any, topic: str, partition: int, futs: list[Any]) -> None:
    delivery = await raw.send_batch(batch, topic, partition=partition)
    delivery.add_done_callback(functools.partial(_resolve, futs))


def _resolve(futs: list[Any], delivery: asyncio.Future[Any]) -> None:
    """Resolve Faust's futures of a delivered batch (offsets counted from its base)."""
    try:
        meta = delivery.result()
    except Exception as exc:
        for fut in futs:
            if fut is not None and not fut.done():
                fut.set_exception(exc)
        logger.warning("changelog batch failed: %r", exc)
        return
    for i, fut in enumerate(futs):
        if fut is None or fut.done():
            continue
        fut.set_result(meta._replace(offset=meta.offset + i))
        callback = fut.message.callback
        if callback:
            callback(fut)
