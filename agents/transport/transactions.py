"""Under `exactly_once`, an output joins the transaction of the record that caused it.

Faust 0.15 (`faust/transport/consumer.py`) keeps one transaction per
partition number and puts each output in the transaction of the partition it
is *written to*::

    async def send(self, topic, key, value, partition, timestamp, headers, *,
                   transactional_id=None):
        group = transactional_id = None
        p = self.consumer.key_partition(topic, key, partition)
        if p is not None:
            group = self.app.assignor.group_for_topic(topic)
            transactional_id = f"{self.app.conf.id}-{group}-{p}"

A transaction commits only when offsets of that partition number advance.
This worker repartitions (a record read from partition 0 updates state on
partition 2), so an output written to a partition that receives nothing
afterwards stayed in an open transaction, invisible to read-committed
consumers, until the broker aborted it. Here, as in Kafka Streams, an output
is committed together with the offset of the record that caused it: the
transaction id is built the same way, from the source partition.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from faust.streams import current_event
from faust.transport import consumer as base_consumer
from faust.types import TP

__all__ = ["TransactionManager", "outputs_of", "source_of_output"]

_SOURCE: ContextVar[TP | None] = ContextVar("xborder_output_source", default=None)


@contextmanager
def outputs_of(tp: TP) -> Iterator[None]:
    """Messages sent inside this block are outputs of records read from `tp`.

    Needed where the current event is not the cause: an agent that takes a
    batch of events from several partitions.
    """
    token = _SOURCE.set(tp)
    try:
        yield
    finally:
        _SOURCE.reset(token)


def source_of_output() -> TP | None:
    """The partition whose record caused the message being sent, if any."""
    source = _SOURCE.get()
    if source is None:
        event = current_event()
        source = event.message.tp if event is not None else None
    return source


class TransactionManager(base_consumer.TransactionManager):
    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        timestamp: float | None,
        headers: Any,
        *,
        transactional_id: str | None = None,
    ) -> Any:
        p = self.consumer.key_partition(topic, key, partition)
        return await self.producer.send(
            topic, key, value, p, timestamp, headers, transactional_id=self._tid(topic, p)
        )

    def _tid(self, topic: str, partition: int | None) -> str | None:
        source = source_of_output()
        if source is not None:
            return self._tid_of(source.topic, source.partition)
        # Table changelog writes are flushed from Faust's producer buffer, a
        # task without a current event; they go to the partition of the event
        # that wrote them, so Faust's own rule (by destination) is right.
        # Anything else without a source (a timer sending held alert updates)
        # is sent outside any transaction: at-least-once, as in the default mode.
        return self._tid_of(topic, partition) if partition is not None else None

    def _tid_of(self, topic: str, partition: int) -> str | None:
        try:
            group = self.app.assignor.group_for_topic(topic)
        except KeyError:  # a topic this worker writes but does not read
            return None
        return f"{self.app.conf.id}-{group}-{partition}"
