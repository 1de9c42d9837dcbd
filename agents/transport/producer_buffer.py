"""Faust's producer buffer (table changelogs sent with `send_soon`), flushed for real.

Faust 0.15 (`faust/transport/producer.py`) gives up flushing as soon as no
message went out for 0.1 s, with messages still waiting::

    if self.size != 0 and (...):
        self.message_sent.clear()
        try:
            await asyncio.wait_for(self.message_sent.wait(), timeout=0.1)
            flushed_messages += 1
        except asyncio.TimeoutError:
            return flushed_messages

Under load (a busy event loop) a commit could then pass changelog writes
that a crash loses, and state came back without records whose offsets were
committed (seen under CPU load: a restarted worker lost records and split
alert groups). Here `flush` returns only once every message, including the
one being handed to aiokafka, is in aiokafka's accumulator, which the
producer flushes next (`Producer.flush`: `await self.buffer.flush()`, then
`await self._producer.flush()`). Faust's `Producer.__init__` builds the
buffer (`self.buffer = ProducerBuffer(loop=self.loop, beacon=self.beacon)`,
`self.buffer.app = self.app`), so `FlushedBuffer` replaces it right after.
"""

from __future__ import annotations

import asyncio
from typing import Any

from faust.transport import producer as base_producer
from faust.transport.drivers import aiokafka as driver

__all__ = ["FlushedBuffer", "ProducerBuffer"]


class ProducerBuffer(base_producer.ProducerBuffer):
    in_flight = 0

    async def _send_pending(self, fut: Any) -> None:
        self.in_flight += 1
        try:
            await super()._send_pending(fut)
        finally:
            self.in_flight -= 1

    async def flush(self) -> None:
        while self.size or self.in_flight:
            if self.state != "running":
                raise RuntimeError("Cannot flush: Producer not Running")
            self.message_sent.clear()
            try:
                await asyncio.wait_for(self.message_sent.wait(), timeout=0.1)
            except TimeoutError:
                continue  # a busy loop, not an empty buffer: look again


class FlushedBuffer(driver.Producer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.app.conf.producer_threaded:  # the threaded producer has its own queue
            buffer = ProducerBuffer(loop=self.loop, beacon=self.beacon)
            buffer.app = self.app
            self.buffer = buffer
