"""The aiokafka transport with a consumer fetch wait we choose, and transactions per source.

Faust 0.15 builds its worker consumer with `fetch_max_wait_ms=1500`: the
broker then holds a fetch for up to 1.5 s when a partition is quiet, which
alone put alert latency p99 at 760 ms in our measurement. A 10 ms wait
brought it to 14 ms (and under half load, to 276 ms where 50 ms gave
1,036 ms), at a cost: an idle worker spends 16% of a core polling (7% at
50 ms). `XBORDER_FETCH_MAX_WAIT_MS` sets it; Faust has no setting for it,
so this transport sets the value on the consumer before it starts. Registered under the URL scheme
`xkafka://` (and as the `faust.transports` entry point `xkafka`).

Under `exactly_once`, Faust keeps one transaction per partition number and
puts each output in the transaction of the partition it is *written to*; a
transaction commits only when offsets of that partition number advance. This
worker repartitions (a record read from partition 0 updates state on
partition 2), so an output written to a partition that receives nothing
afterwards stayed in an open transaction, invisible to read-committed
consumers, until the broker aborted it. Here an output joins the transaction
of the record that caused it, as Kafka Streams does: it is committed
together with that record's offset.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import traceback
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import orjson
from faust.streams import current_event
from faust.transport import consumer as base_consumer
from faust.transport import producer as base_producer
from faust.transport.drivers import TRANSPORTS
from faust.transport.drivers import aiokafka as driver
from faust.types import TP
from faust.types.tuples import ConsumerMessage

__all__ = [
    "BATCHED_TOPICS",
    "SCHEME",
    "Chunk",
    "Transport",
    "chunk_message",
    "holding_changelogs",
    "outputs_of",
    "register",
    "send_held",
    "send_rows",
]

logger = logging.getLogger(__name__)

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
    """Send changelog messages held by `holding_changelogs`: one batch per partition.

    Faust sends each table write as its own message, through its buffer and
    aiokafka's `send`: about 100 us of the event loop per write, which made
    changelog writes the largest cost of the state stage. Here each
    partition's messages are appended to one aiokafka batch in order and the
    batch is handed to the producer's accumulator before this returns, so a
    commit (which flushes the producer) covers them, as it covers
    `send_soon`. Each held future is resolved as Faust's own send resolves
    it. Under exactly-once, writes must join the transaction: Faust's path.
    """
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


SCHEME = "xkafka"
# Set by the app factory before the consumer starts; one value per process.
FETCH_MAX_WAIT_MS = {"value": 10}
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


class ConsumerThread(driver.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # aiokafka reads this attribute when it builds its fetcher in start().
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS["value"]
        return consumer


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


class Consumer(driver.Consumer):
    """Faust's consumer, without silently skipping fetched records.

    Faust's `getmany` stops yielding a fetched batch when the consumer
    generation changes or flow stops mid-batch, and skips records of
    partitions it does not consider active; aiokafka's position has already
    moved past them. The records were never processed nor committed, but
    this process would not read them again: a worker restarted right after
    a crash took one record and then sat idle with data waiting (7 of 190
    early-kill runs; 0 of 87 with this class), and a later record of the
    same partition would have committed past them. Here every fetched
    record that was not handed on is read again: its partition is sought
    back to it.
    """

    _fetched: dict[TP, tuple[int, int]]  # set by each getmany

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Times each partition was sought back by `rewind`: records of it
        # fetched before then are not handed on (they are fetched again).
        self._rewinds: dict[TP, int] = {}
        self._rewind_on_clear(self.app.flow_control)

    def _rewind_on_clear(self, flow_control: Any) -> None:
        """Read again whatever Faust's flow control drops from the stream queues.

        mode's `FlowControlEvent.resume` (and `clear`) empties every stream
        queue::

            def resume(self) -> None:
                self._suspend.clear()
                self._resume.set()
                self.clear()

        Faust counts on a seek to committed offsets after that. But at the end
        of table recovery it resumes stream partitions, seeks them one by one
        (a broker round trip each, half a second under load) and only then
        calls `flow_control.resume()`: records fetched after their partition
        was sought reach the queues and are dropped, their partition's
        position already past them. They were never processed; a later
        record's gap then committed past them (a kill -9 series under CPU
        load lost alert hits this way in about 1 run of 20). Here each
        partition with a dropped record is sought back to the first one.
        """
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

    async def on_task_error(self, exc: BaseException) -> None:
        """An error escaped an agent: exit at once, to restart from committed offsets.

        Faust commits here and restarts the agent on the next event::

            async def on_task_error(self, exc: BaseException) -> None:
                await self.commit()

        and its commits take the first run of acknowledged offsets without
        checking that it starts at the committed one: the event that failed
        would be committed past, unprocessed. What a record can cause is
        dead-lettered inside the stages; what escapes is the framework's, the
        broker's or a bug. Exiting without a graceful stop commits nothing
        further, as a kill -9 would, which the worker recovers from (README,
        processing guarantee); the orchestrator restarts it.
        """
        exit_for_restart(exc)

    def _new_consumer_thread(self) -> driver.AIOKafkaConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _wait_next_records(self, timeout: float) -> Any:
        records, active = await super()._wait_next_records(timeout)
        # First and last offset fetched per partition in this batch.
        self._fetched = {
            tp: (recs[0].offset, recs[-1].offset) for tp, recs in (records or {}).items() if recs
        }
        return records, active

    async def getmany(self, timeout: float) -> Any:
        """Fetched records one by one; those of `BATCHED_TOPICS` one message per partition.

        Faust spends 60 to 80 us handing each message to its stream (tasks
        and an `asyncio.wait` per message), which capped one-record messages
        at about 15,000 per second whatever the agent did. A partition's
        records of one fetch go on as one message (`chunk_message`) whose
        offset is the last one; the offsets before it are registered as a
        gap, so acking that message commits the whole run.
        """
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

    async def seek_to_committed(self) -> Any:
        """Seek to the committed offsets; where there are none, to the beginning.

        aiokafka seeks only partitions with a committed offset above 0 and
        leaves the others where its fetcher is: past records fetched before
        the seek, which the stream may have skipped (flow stopped, generation
        changed). A worker killed before its first commit lost them on
        restart (seen under CPU load: windows short of records, onward alerts
        missing). Changelogs are left alone: table recovery seeks them itself.
        """
        committed = await super().seek_to_committed()
        fresh = never_committed(committed)
        if fresh:
            await self._thread.seek_to_beginning(*fresh)
        return committed

    async def _reread_skipped(self, handed: dict[TP, int]) -> None:
        fetched, self._fetched = self._fetched, {}
        if not fetched or self.should_stop:
            return
        for tp, offset in unprocessed(fetched, handed).items():
            self.rewind(tp, offset)


EXIT_AGENT_ERROR = 70  # sysexits EX_SOFTWARE


def exit_for_restart(error: BaseException) -> None:
    """Log where an agent failed (not the error's text, which may quote a record) and exit."""
    logger.critical(
        "an agent stopped on %s; exiting with %d to restart from committed offsets\n%s",
        type(error).__name__,
        EXIT_AGENT_ERROR,
        "".join(traceback.format_tb(error.__traceback__)),
    )
    logging.shutdown()
    os._exit(EXIT_AGENT_ERROR)


class ProducerBuffer(base_producer.ProducerBuffer):
    """Faust's buffer of messages sent with `send_soon` (table changelogs), flushed for real.

    Faust's `flush` returns as soon as no message went out for 0.1 s, with
    messages still waiting: under load (a busy event loop) a commit could
    then pass changelog writes that a crash loses, and state came back
    without records whose offsets were committed (seen under CPU load: a
    restarted worker lost records and split alert groups). Here `flush`
    returns only once every message, including the one being handed to
    aiokafka, is in aiokafka's accumulator, which the producer flushes next.
    """

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


class Producer(driver.Producer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.app.conf.producer_threaded:  # the threaded producer has its own queue
            buffer = ProducerBuffer(loop=self.loop, beacon=self.beacon)
            buffer.app = self.app
            self.buffer = buffer


class Transport(driver.Transport):
    Consumer = Consumer
    Producer = Producer
    TransactionManager = TransactionManager


def register(fetch_max_wait_ms: int) -> str:
    """Make `xkafka://` resolve to this transport; returns the scheme."""
    FETCH_MAX_WAIT_MS["value"] = fetch_max_wait_ms
    TRANSPORTS.aliases[SCHEME] = f"{__name__}:Transport"
    return SCHEME
