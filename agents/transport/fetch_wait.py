"""A consumer fetch wait we choose, where Faust hard-codes one.

Faust 0.15 (`faust/transport/drivers/aiokafka.py`) builds the worker's
aiokafka consumer with a fixed wait and no setting for it::

    def _create_worker_consumer(self, transport):
        ...
        return aiokafka.AIOKafkaConsumer(
            ...
            fetch_max_wait_ms=1500,

The broker then holds a fetch for up to 1.5 s when a partition is quiet,
which alone put alert latency p99 at 760 ms in our measurement. A 10 ms wait
brought it to 14 ms (and under half load, to 276 ms where 50 ms gave
1,036 ms), at a cost: an idle worker spends 16% of a core polling (7% at
50 ms). `XBORDER_FETCH_MAX_WAIT_MS` sets it.

aiokafka keeps the value in an attribute until `start()` builds its fetcher
(`self._fetcher = Fetcher(..., fetch_max_wait_ms=self._fetch_max_wait_ms,`),
so the value is set on the consumer after Faust builds it, before it starts.
"""

from __future__ import annotations

from typing import Any

from faust.transport.drivers import aiokafka as driver

__all__ = ["FETCH_MAX_WAIT_MS", "ConsumerThread", "FetchWait"]

# Set by `register` before the consumer starts; one value per process.
FETCH_MAX_WAIT_MS = {"value": 10}


class ConsumerThread(driver.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # aiokafka reads this attribute when it builds its fetcher in start().
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS["value"]
        return consumer


class FetchWait(driver.Consumer):
    """The consumer part: Faust's own thread class is named in the method replaced here::

    def _new_consumer_thread(self) -> ConsumerThread:
        return AIOKafkaConsumerThread(self, loop=self.loop, beacon=self.beacon)
    """

    def _new_consumer_thread(self) -> driver.AIOKafkaConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)
