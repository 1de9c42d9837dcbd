"""Reading again every fetched record that was skipped or dropped before it was processed.

aiokafka moves a partition's position when it hands records over, before
Faust yields them (`FetchResult.getall` calls `self._update_position()`).
Three places in Faust and aiokafka then lose records that were never
processed nor committed; a later record of the same partition would commit
past them. Each partition with such a record is sought back to it (`rewind`).

1. Faust's `Consumer.getmany` stops yielding a fetched batch when the
   consumer generation changes or flow stops, and skips partitions it does
   not consider active::

       if not self.flow_active:
           break
       if new_generation_id != generation_id:
           ...
           break
       if (active_partitions is None or tp in active_partitions ...):
           yield tp, to_message(tp, record)

   A worker restarted right after a crash took one record and then sat idle
   with data waiting (7 of 190 early-kill runs; 0 of 87 with this patch).
   `unprocessed` and `_reread_skipped` read those records again.

2. mode's `FlowControlEvent.resume` (and `clear`) empties every stream queue::

       def resume(self) -> None:
           self._suspend.clear()
           self._resume.set()
           self.clear()

   Faust counts on a seek to committed offsets after that. But at the end of
   table recovery it resumes stream partitions, seeks them one by one (a
   broker round trip each, half a second under load) and only then calls
   `flow_control.resume()`: records fetched after their partition was sought
   reach the queues and are dropped. A kill -9 series under CPU load lost
   alert hits this way in about 1 run of 20. `_rewind_on_clear` seeks each
   partition with a dropped record back to the first one (`first_queued`).

3. aiokafka's `seek_to_committed` seeks only offsets above 0::

       if offset and offset > 0:
           self._fetcher.seek_to(tp, offset)

   and leaves the others where its fetcher is: past records fetched before
   the seek that the stream may have skipped. A worker killed before its
   first commit lost them on restart (windows short of records, onward
   alerts missing). `seek_to_committed` seeks those to the beginning
   (`never_committed`).

Records a seek brings back below the partition's read offset would be
dropped by Faust as already read; `_deliver_below_read_offset` lets them
through (processing is idempotent).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from faust.transport.drivers import aiokafka as driver
from faust.types import TP

from agents.transport.batched import Chunk

__all__ = ["Reread", "first_queued", "never_committed", "unprocessed"]

logger = logging.getLogger("agents.transport")


def unprocessed(fetched: dict[TP, tuple[int, int]], handed: dict[TP, int]) -> dict[TP, int]:
    """Where to read again: per partition, the first fetched offset not handed on.

    `fetched` holds the first and last offset fetched per partition, `handed`
    the last offset handed on.
    """
    out = {}
    for tp, (first, last) in fetched.items():
        resume = handed[tp] + 1 if tp in handed else first
        if resume <= last:
            out[tp] = resume
    return out


def first_queued(queues: Iterable[Any]) -> dict[TP, int]:
    """Per partition, the first offset among the events waiting in these stream queues."""
    first: dict[TP, int] = {}
    for queue in queues:
        for event in list(queue._queue):
            message = getattr(event, "message", None)
            if message is None:
                continue
            value = event.value
            offset = value.messages[0].offset if isinstance(value, Chunk) else message.offset
            if offset < first.get(message.tp, offset + 1):
                first[message.tp] = offset
    return first


def never_committed(committed: Mapping[Any, int | None]) -> list[Any]:
    """Stream partitions that aiokafka's seek to committed offsets leaves where they are.

    It seeks only offsets above 0. Changelogs are not among them: table
    recovery seeks those itself.
    """
    return [
        tp for tp, offset in committed.items() if not offset and not tp.topic.endswith("-changelog")
    ]


class Reread(driver.Consumer):
    """Faust's consumer, without silently skipping fetched records."""

    _fetched: dict[TP, tuple[int, int]]  # set by each getmany

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Times each partition was sought back by `rewind`: records of it
        # fetched before then are not handed on (they are fetched again).
        self._rewinds: dict[TP, int] = {}
        self._rewind_on_clear(self.app.flow_control)

    def _rewind_on_clear(self, flow_control: Any) -> None:
        """Read again whatever Faust's flow control drops from the stream queues (2. above)."""
        clear = flow_control.clear

        def clear_and_rewind() -> None:
            dropped = first_queued(flow_control._queues)
            clear()
            for tp, offset in dropped.items():
                self.rewind(tp, offset)

        flow_control.clear = clear_and_rewind

    def rewind(self, tp: TP, offset: int) -> None:
        """Fetch `tp` again from `offset` if the consumer is past it (never forward)."""
        if self.should_stop or tp.topic.endswith("-changelog"):
            return
        try:
            if tp not in self.assignment():
                return
            state = self._thread._ensure_consumer()._subscription.subscription.assignment
            position = state.state_value(tp).position if tp in state.tps else None
        except Exception:  # not started, or mid-rebalance: the next seek decides
            return
        if position is not None and position <= offset:
            return
        logger.info("re-reading %s from offset %d: fetched but not processed", tp, offset)
        self._thread.seek(tp, offset)
        self._read_offset[tp] = offset
        self._rewinds[tp] = self._rewinds.get(tp, 0) + 1

    async def _wait_next_records(self, timeout: float) -> Any:
        records, active = await super()._wait_next_records(timeout)
        # First and last offset fetched per partition in this batch.
        self._fetched = {
            tp: (recs[0].offset, recs[-1].offset) for tp, recs in (records or {}).items() if recs
        }
        return records, active

    def _deliver_below_read_offset(self, tp: TP, message: Any, below: set[TP]) -> None:
        read = self._read_offset[tp]
        if read is not None and message.offset < read:
            # Faust drops a record below the partition's read offset as
            # already read. But records delivered before a seek can have
            # been skipped by the stream (flow stopped, generation
            # changed) and still have raised it: their copies read after
            # the seek would be dropped too, never processed. Processing
            # is idempotent, so deliver them.
            self._read_offset[tp] = message.offset
            below.add(tp)

    async def seek_to_committed(self) -> Any:
        """Seek to the committed offsets; where there are none, to the beginning (3. above).

        Changelogs are left alone: table recovery seeks them itself.
        """
        committed = await super().seek_to_committed()
        fresh = never_committed(committed)
        if fresh:
            await self._thread.seek_to_beginning(*fresh)
        return committed

    async def _reread_skipped(self, handed: dict[TP, int]) -> None:
        """Seek back each partition of the last fetch to its first record not handed on (1.)."""
        fetched, self._fetched = self._fetched, {}
        if not fetched or self.should_stop:
            return
        for tp, offset in unprocessed(fetched, handed).items():
            self.rewind(tp, offset)
