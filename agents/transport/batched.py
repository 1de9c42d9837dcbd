"""Batched delivery: a partition's run of fetched records reaches its stream as one message.

Faust spends 60 to 80 us handing each message to its stream (tasks and an
`asyncio.wait` per message, in `Consumer._drain_messages`), which capped
one-record messages at about 15,000 per second whatever the agent did. For
topics in `BATCHED_TOPICS`, `Consumer.getmany` (see `consumer.py`) hands on
a partition's records of one fetch as one message (`chunk_message`) whose
offset is the last one. The offsets before it are registered as a gap
(`_span`), so acking that message commits the whole run. What makes that
hold is how Faust's drain loop counts offsets::

    offset = message.offset
    r_offset = get_read_offset(tp)
    if r_offset is None or offset >= r_offset:
        gap = offset - (r_offset or 0)
        if gap > 1 and r_offset:
            await self._add_gap(tp, r_offset + 1, offset)
        ...
        set_read_offset(tp, offset)

and that a `Chunk` (a bytes subclass) passes Faust's raw codec untouched
(`raw._loads` is `want_bytes(s)`, which returns bytes as they are).
"""

from __future__ import annotations

from typing import Any

from faust.transport.drivers import aiokafka as driver
from faust.types import TP
from faust.types.tuples import ConsumerMessage

__all__ = ["BATCHED_TOPICS", "BatchedDelivery", "Chunk", "chunk_message"]

# Topics whose fetched records reach their stream a partition's run at a time.
BATCHED_TOPICS: set[str] = set()


class Chunk(bytes):
    """The value of a message standing for a run of records of one partition.

    `messages` holds the records themselves, in offset order. A bytes
    subclass because Faust's raw codec hands values on untouched.
    """

    messages: list[Any]


def chunk_message(tp: TP, messages: list[Any]) -> Any:
    """One message for consecutive records of a partition: offset, time and key of the last."""
    last = messages[-1]
    value = Chunk()
    value.messages = messages
    return ConsumerMessage(
        last.topic,
        last.partition,
        last.offset,
        last.timestamp,
        last.timestamp_type,
        last.headers,
        last.key,
        value,
        last.checksum,
        last.serialized_key_size,
        sum(m.serialized_value_size or 0 for m in messages),
        tp,
        generation_id=last.generation_id,
    )


class BatchedDelivery(driver.Consumer):
    async def _span(self, tp: TP, run: list[Any]) -> None:
        """Let the ack of a run's last record commit the run (see `getmany`)."""
        first, last = run[0].offset, run[-1].offset
        read = self._read_offset[tp]
        start = first if read is None else min(first, read + 1)
        if start < last:
            await self._add_gap(tp, start, last - 1)
        # Faust's drain loop adds a gap up to the message's own offset when
        # the read offset is behind it; that gap would count as acked first.
        self._read_offset[tp] = last - 1 if read is None or last - 1 > read else read
