"""The worker's consumer: Faust's, with the fetch wait, batched delivery and re-reading.

`getmany` is where batched delivery (`batched.py`) and re-reading
(`reread.py`) meet: it replaces Faust's, which it still runs underneath::

    records, active_partitions = await self._wait_next_records(timeout)
    generation_id = self.app.consumer_generation_id
    ...
    for tp, record in records_it:
        if not self.flow_active:
            break
        ...
        yield tp, to_message(tp, record)

Every record Faust yields goes on, alone or in its partition's run, unless
its partition was sought back since the fetch; whatever is not handed on
(Faust stopped, or a run held back by a rebalance) is read again.
"""

from __future__ import annotations

import logging
from typing import Any

from faust.types import TP

from agents.transport.batched import BATCHED_TOPICS, BatchedDelivery, chunk_message
from agents.transport.fetch_wait import FetchWait
from agents.transport.reread import Reread
from agents.transport.task_errors import ExitOnTaskError

__all__ = ["Consumer"]

logger = logging.getLogger("agents.transport")


class Consumer(ExitOnTaskError, Reread, BatchedDelivery, FetchWait):
    async def getmany(self, timeout: float) -> Any:
        """Fetched records one by one; those of `BATCHED_TOPICS` one message per partition."""
        self._fetched = {}
        handed: dict[TP, int] = {}
        below: set[TP] = set()
        runs: dict[TP, list[Any]] = {}
        generation = self.app.consumer_generation_id
        rewinds = dict(self._rewinds)
        try:
            async for tp, message in super().getmany(timeout):
                if self._rewinds.get(tp) != rewinds.get(tp):
                    continue  # sought back since this fetch: fetched again
                if tp.topic in BATCHED_TOPICS:
                    runs.setdefault(tp, []).append(message)
                    continue
                self._deliver_below_read_offset(tp, message, below)
                handed[tp] = message.offset
                yield tp, message
            for tp, run in runs.items():
                if self.app.consumer_generation_id != generation or not self.flow_active:
                    break  # a rebalance meanwhile: not handed on, so read again
                if self._rewinds.get(tp) != rewinds.get(tp):
                    continue
                message = chunk_message(tp, run)
                self._deliver_below_read_offset(tp, run[0], below)
                await self._span(tp, run)
                handed[tp] = message.offset
                yield tp, message
        finally:
            if below:
                logger.info("delivering records below the read offset again: %s", sorted(below))
            await self._reread_skipped(handed)
