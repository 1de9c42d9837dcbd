"""The private parts of faust-streaming, aiokafka and mode that `agents/` is written against.

`agents/transport/` overrides private methods of Faust's consumer, producer
buffer and transaction manager, and sets or reads private attributes of
aiokafka's consumer; `agents/worker.py` reads a few for its SIGUSR dump. None of
that is API: an upgrade may rename a method (our override then silently
never runs) or change a body our override relies on, and only the slow
broker tests would notice. Each pin below names one such thing, the code in
`agents/` that relies on it, its parameter names where it is called or
overridden, and the upstream source lines the behaviour we rely on rests on.

When a pin fails: read the upstream code it names, re-check the code in
`agents/` that the message names, and only then update the pin.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from typing import Any

import pytest

_MISSING = object()
_DECLARED = object()  # only an annotation: an instance attribute set in __init__


@dataclass(frozen=True)
class Pin:
    where: str  # "module:Class.attribute", or "module:Class.attribute@method" for lines in method
    user: str  # "transport/batched:BatchedDelivery._span": agents/transport/batched.py's code
    lines: tuple[str, ...] = ()  # upstream source lines, compared with whitespace collapsed
    params: tuple[str, ...] | None = None
    instance: bool = False  # set on instances only: `lines` (in the @method) prove it
    absent: bool = False  # a name our subclass adds: must not shadow an upstream one

    @property
    def owner(self) -> str:
        module, _, qual = self.where.split("@")[0].partition(":")
        return f"{module}:{qual.rpartition('.')[0]}"

    @property
    def name(self) -> str:
        return self.where.split("@")[0].partition(":")[2].rpartition(".")[2]

    @property
    def body(self) -> str | None:
        return self.where.partition("@")[2] or None


def pin(where: str, user: str, *lines: str, params: str | None = None, **flags: bool) -> Pin:
    return Pin(where, user, lines, None if params is None else tuple(params.split()), **flags)


def resolve(path: str) -> Any:
    module, _, qual = path.partition(":")
    obj: Any = importlib.import_module(module)
    for part in filter(None, qual.split(".")):
        obj = getattr(obj, part)
    return obj


def lookup(owner: Any, name: str) -> Any:
    found = inspect.getattr_static(owner, name, _MISSING)
    if (
        found is _MISSING
        and isinstance(owner, type)
        and any(name in vars(c).get("__annotations__", {}) for c in owner.__mro__)
    ):
        return _DECLARED
    return found


def function_of(obj: Any) -> Any:
    if isinstance(obj, staticmethod | classmethod):
        return obj.__func__
    if isinstance(obj, property):
        return obj.fget
    return getattr(obj, "fun", obj)  # mode's @Service.task wraps the function


def squash(text: str) -> str:
    return " ".join(text.split())


def problems(p: Pin, owner: Any = None) -> list[str]:
    """What no longer holds of `p`; `owner` stands in for the upstream class when given."""
    if owner is None:
        try:
            owner = resolve(p.owner)
        except (ImportError, AttributeError) as exc:
            return [f"{p.owner} is gone ({exc})"]
    found = lookup(owner, p.name)
    if p.absent:
        return [] if found is _MISSING else [f"{p.name} now exists upstream; ours would shadow it"]
    if found is _MISSING and not p.instance:
        return [f"{p.name} no longer exists"]
    out = []
    fn = function_of(found)
    if p.params is not None:
        try:
            names = tuple(inspect.signature(fn).parameters)
        except (TypeError, ValueError):
            names = ()
        if names != p.params:
            out.append(f"parameters are now {names}, were {p.params}")
    if p.lines:
        holder = fn if inspect.isfunction(fn) or inspect.isclass(fn) else owner
        if p.body is not None:
            holder = function_of(lookup(owner, p.body))
            if holder is _MISSING:
                return [*out, f"{p.body} (where {p.name} is used) no longer exists"]
        try:
            source = squash(inspect.getsource(holder))
        except (OSError, TypeError) as exc:
            return [*out, f"source unavailable ({exc})"]
        out += [f"source no longer has {line!r}" for line in p.lines if squash(line) not in source]
    return out


def message(p: Pin, found: list[str]) -> str:
    module, _, code = p.user.partition(":")
    return (
        f"{p.where}: {'; '.join(found)}. agents/{module}.py ({code}) is written against it: "
        "re-check that code and the upstream source it quotes, then update this pin."
    )


def user_code(user: str) -> Any:
    """What a pin's `user` names: "transport/batched:Chunk" is agents.transport.batched.Chunk."""
    module, _, code = user.partition(":")
    return resolve(f"agents.{module.removesuffix('/__init__').replace('/', '.')}:{code}")


FB = "faust.transport.consumer:"  # Faust's base consumer, transaction manager
FD = "faust.transport.drivers.aiokafka:"  # what agents/transport/ subclasses
FP = "faust.transport.producer:"
AK = "aiokafka.consumer.consumer:AIOKafkaConsumer."
AF = "aiokafka.consumer.fetcher:"
SS = "aiokafka.consumer.subscription_state:"
MA = "aiokafka.producer.message_accumulator:"

# One pin a few lines: the formatter would spread each over a dozen.
# fmt: off
PINS = [
    # Registration and transport classes.
    pin("faust.transport.drivers:TRANSPORTS.aliases", "transport/__init__:register"),
    pin("mode.utils.imports:FactoryMapping.by_name", "transport/__init__:register",
        "symbol_by_name(name, aliases=self.aliases)"),
    pin("faust.transport.base:Transport.create_transaction_manager", "transport/__init__:Transport",
        "return self.TransactionManager(", params="self consumer producer kwargs"),
    # Transactions: an output joins its source's transaction (ids as Faust makes them).
    pin(FB + "TransactionManager.send", "transport/transactions:TransactionManager.send",
        "p = self.consumer.key_partition(topic, key, partition)",
        'transactional_id = f"{self.app.conf.id}-{group}-{p}"',
        params="self topic key value partition timestamp headers transactional_id"),
    pin(FB + "TransactionManager.transactional_id_format", "transport/transactions:TransactionManager._tid_of",
        'transactional_id_format = "{group_id}-{tpg.group}-{tpg.partition}"'),
    pin(FB + "TransactionManager._tid", "transport/transactions:TransactionManager._tid", absent=True),
    pin(FB + "TransactionManager._tid_of", "transport/transactions:TransactionManager._tid_of", absent=True),
    pin(FD + "Producer.send", "transport/transactions:TransactionManager.send",
        params="self topic key value partition timestamp headers transactional_id"),
    pin("faust.assignor.partition_assignor:PartitionAssignor.group_for_topic",
        "transport/transactions:TransactionManager._tid_of", "return self._topic_groups[topic]",
        params="self topic"),
    pin("faust.streams:current_event", "transport/transactions:source_of_output",
        "_current_event.get(None)", params=""),
    # The fetch wait: set on aiokafka's consumer after Faust builds it, before it starts.
    pin(FD + "AIOKafkaConsumerThread._create_worker_consumer",
        "transport/fetch_wait:ConsumerThread._create_worker_consumer",
        "return aiokafka.AIOKafkaConsumer(", "fetch_max_wait_ms=1500,", params="self transport"),
    pin(FD + "Consumer._new_consumer_thread", "transport/fetch_wait:FetchWait._new_consumer_thread",
        "return AIOKafkaConsumerThread(self, loop=self.loop, beacon=self.beacon)", params="self"),
    pin(AK + "_fetch_max_wait_ms@__init__", "transport/fetch_wait:ConsumerThread._create_worker_consumer",
        "self._fetch_max_wait_ms = fetch_max_wait_ms", instance=True),
    pin(AK + "_fetch_max_wait_ms@start", "transport/fetch_wait:ConsumerThread._create_worker_consumer",
        "self._fetcher = Fetcher(", "fetch_max_wait_ms=self._fetch_max_wait_ms,",
        instance=True),
    # getmany: what Faust's own skips, so which fetched records are read again.
    pin(FD + "Consumer._wait_next_records", "transport/reread:Reread._wait_next_records",
        "return records, active_partitions", params="self timeout"),
    pin(FD + "Consumer.getmany", "transport/consumer:Consumer.getmany",
        "records, active_partitions = await self._wait_next_records(timeout)",
        "generation_id = self.app.consumer_generation_id",
        "if not self.flow_active: break",
        "if new_generation_id != generation_id:",
        "or tp in active_partitions",
        "yield tp, to_message(tp, record)", params="self timeout"),
    pin(FD + "Consumer._to_message", "transport/batched:chunk_message",
        "generation_id=self.app.consumer_generation_id,", params="self tp record"),
    pin("faust.types.tuples:ConsumerMessage", "transport/batched:chunk_message", params=(
        "topic partition offset timestamp timestamp_type headers key value checksum "
        "serialized_key_size serialized_value_size tp time_in time_out time_total generation_id")),
    pin("faust.streams:Stream._py_aiter", "transport/batched:chunk_message",
        "or message.generation_id != self.app.consumer_generation_id"),
    pin("faust.app.base:App.consumer_generation_id", "transport/consumer:Consumer.getmany"),
    pin(FD + "Consumer.flow_active@stop_flow", "transport/consumer:Consumer.getmany",
        "self.flow_active = False", "self.can_resume_flow.clear()", "self.suspend_flow.set()"),
    pin(FD + "Consumer.can_resume_flow@resume_flow", "worker:_flow_state",
        "self.can_resume_flow.set()"),
    pin(FD + "Consumer.suspend_flow@_drain_messages", "transport/consumer:Consumer.getmany",
        "await self.wait_first( callback(message), self.suspend_flow.wait() )"),
    pin(FD + "Consumer._fetched", "transport/reread:Reread._wait_next_records", absent=True),
    pin(FD + "Consumer._span", "transport/batched:BatchedDelivery._span", absent=True),
    pin(FD + "Consumer._reread_skipped", "transport/reread:Reread._reread_skipped", absent=True),
    pin(FD + "Consumer._deliver_below_read_offset",
        "transport/reread:Reread._deliver_below_read_offset", absent=True),
    # Read offsets and gaps: a run's last record acked commits the run.
    pin(FB + "Consumer._read_offset@__init__", "transport/batched:BatchedDelivery._span",
        "self._read_offset = defaultdict(lambda: None)"),
    pin(FB + "Consumer._committed_offset@__init__", "transport/batched:BatchedDelivery._span",
        "self._committed_offset = defaultdict(lambda: None)"),
    pin(FD + "Consumer._add_gap", "transport/batched:BatchedDelivery._span",
        "offset_from = max(offset_from, committed + 1)",
        "gap_for_tp.addi(offset_from, offset_to + 1)", params="self tp offset_from offset_to"),
    pin(FD + "Consumer._gap@_new_offset", "transport/batched:BatchedDelivery._span",
        "gap_for_tp: IntervalTree = self._gap[tp]",
        "candidates = gap_for_tp.overlap(0, max_offset)", "acked.extend(stuff_to_add)"),
    pin(FD + "Consumer._acked@_new_offset", "transport/batched:BatchedDelivery._span",
        "acked = self._acked[tp]", "batch = next(consecutive_numbers(acked))",
        "return batch[-1] + 1"),
    pin(FD + "Consumer._drain_messages", "transport/batched:BatchedDelivery._span",
        "getmany = self.getmany",
        "set_read_offset = self._read_offset.__setitem__",
        "if r_offset is None or offset >= r_offset:",
        "gap = offset - (r_offset or 0)",
        "if gap > 1 and r_offset:",
        "await self._add_gap(tp, r_offset + 1, offset)",
        "set_read_offset(tp, offset)", params="self fetcher"),
    # Reading again: a seek drops buffered records; seek_to_committed leaves offset 0 alone.
    # An error escaping an agent: Faust commits and restarts it; the worker exits instead.
    pin("faust.app.base:App._on_agent_error", "transport/task_errors:ExitOnTaskError.on_task_error",
        "await self._consumer.on_task_error(exc)", params="self agent exc"),
    pin("faust.app.base:App.agent", "transport/task_errors:ExitOnTaskError.on_task_error",
        "on_error=self._on_agent_error,"),
    pin(FB + "Consumer.on_task_error", "transport/task_errors:ExitOnTaskError.on_task_error",
        "await self.commit()", params="self exc"),
    # Stream queues emptied by flow control are read again (Consumer.rewind).
    pin("mode.utils.queues:FlowControlEvent.resume", "transport/reread:Reread._rewind_on_clear",
        "self._resume.set()", "self.clear()", params="self"),
    pin("mode.utils.queues:FlowControlEvent.clear", "transport/reread:Reread._rewind_on_clear",
        "for queue in self._queues:", "queue.clear()", params="self"),
    pin("mode.utils.queues:FlowControlEvent._queues@__init__",
        "transport/reread:Reread._rewind_on_clear", "self._queues = WeakSet()", instance=True),
    pin("mode.utils.queues:ThrowableQueue.clear", "transport/reread:first_queued",
        "self._queue.clear()", params="self"),
    pin("faust.tables.recovery:Recovery.on_recovery_completed",
        "transport/reread:Reread._rewind_on_clear", "consumer.resume_partitions(",
        "consumer.perform_seek()", "self.app.flow_control.resume()"),
    pin(FD + "AIOKafkaConsumerThread.seek", "transport/reread:Reread.rewind",
        "self._ensure_consumer().seek(partition, offset)", params="self partition offset"),
    pin(FD + "Consumer.rewind", "transport/reread:Reread.rewind", absent=True),
    pin(FD + "Consumer._rewinds", "transport/consumer:Consumer.getmany", absent=True),
    pin(FD + "Consumer._rewind_on_clear", "transport/reread:Reread._rewind_on_clear", absent=True),
    pin(FD + "Consumer.seek", "transport/reread:Reread.rewind",
        "await self._seek(partition, offset)",
        "self._read_offset[ensure_TP(partition)] = offset if offset else None",
        params="self partition offset"),
    pin(AF + "Fetcher.seek_to", "transport/reread:Reread._reread_skipped",
        "self._subscriptions.seek(tp, offset)", "del self._records[tp]", params="self tp offset"),
    pin(FD + "Consumer.seek_to_committed", "transport/reread:Reread.seek_to_committed",
        "return await self._thread.seek_to_committed()", params="self"),
    pin(FD + "Consumer.perform_seek", "transport/reread:Reread.seek_to_committed",
        "_committed_offsets = await self.seek_to_committed()"),
    pin(AK + "seek_to_committed", "transport/reread:never_committed",
        "if offset and offset > 0:", "return committed_offsets", params="self partitions"),
    pin(FD + "Consumer._thread", "transport/reread:Reread.seek_to_committed"),
    pin(FD + "AIOKafkaConsumerThread.seek_to_beginning", "transport/reread:Reread.seek_to_committed",
        params="self partitions"),
    # aiokafka moves its position when it hands records over, before Faust yields them.
    pin(FD + "AIOKafkaConsumerThread._fetch_records", "transport/consumer:Consumer.getmany",
        "return await fetcher.fetched_records("),
    pin(AF + "Fetcher.fetched_records", "transport/consumer:Consumer.getmany",
        "records = res_or_error.getall(max_records)", params="self partitions timeout max_records"),
    pin(AF + "FetchResult.getall", "transport/consumer:Consumer.getmany",
        "self._update_position()", params="self max_records"),
    pin(AF + "FetchResult._update_position", "transport/consumer:Consumer.getmany",
        "state.consumed_to(self._partition_records.next_fetch_offset)"),
    # The producer buffer whose flush waits for every message.
    pin(FP + "ProducerBuffer._send_pending", "transport/producer_buffer:ProducerBuffer._send_pending",
        "await fut.message.channel.publish_message(fut, wait=False)", params="self fut"),
    pin(FP + "ProducerBuffer._handle_pending", "transport/producer_buffer:ProducerBuffer._send_pending",
        "send_pending = self._send_pending", "await send_pending(msg)",
        "self.message_sent.set()"),
    pin(FP + "ProducerBuffer.message_sent@__post_init__", "transport/producer_buffer:ProducerBuffer.flush",
        "self.message_sent = asyncio.Event()", instance=True),
    pin(FP + "ProducerBuffer.size", "transport/producer_buffer:ProducerBuffer.flush",
        "queue_items = self.pending._queue"),
    pin(FP + "ProducerBuffer.flush", "transport/producer_buffer:ProducerBuffer.flush", params="self"),
    pin(FP + "ProducerBuffer.in_flight", "transport/producer_buffer:ProducerBuffer", absent=True),
    pin("mode.services:Service.state", "transport/producer_buffer:ProducerBuffer.flush", 'return "running"'),
    pin(FP + "Producer.__init__", "transport/producer_buffer:FlushedBuffer.__init__",
        "self.buffer = ProducerBuffer(loop=self.loop, beacon=self.beacon)",
        "self.buffer.app = self.app", params="self transport loop kwargs"),
    pin(FP + "Producer.on_start", "transport/producer_buffer:FlushedBuffer.__init__",
        "await self.add_runtime_dependency(self.buffer)"),
    # Changelog writes held and sent as aiokafka batches.
    pin(FP + "Producer.send_soon", "transport/changelogs:holding_changelogs", "self.buffer.put(fut)",
        params="self fut"),
    pin("faust.topics:Topic.send_soon", "transport/changelogs:holding_changelogs",
        "self.app.producer.send_soon(fut)"),
    pin("faust.tables.base:Collection.send_changelog", "transport/changelogs:send_held",
        "return self.changelog_topic.send_soon(", "eager_partitioning=True,"),
    pin("faust.types.tuples:PendingMessage", "transport/changelogs:send_held", params=(
        "channel key value partition timestamp headers key_serializer value_serializer "
        "callback topic offset generation_id")),
    pin("faust.topics:Topic._on_published", "transport/changelogs:_resolve",
        "message.set_result(res)", "if message.message.callback: message.message.callback(message)"),
    pin(FD + "Producer._ensure_producer", "transport/changelogs:send_held", "return self._producer",
        params="self"),
    pin(FD + "Producer.flush", "transport/changelogs:send_held",
        "await self.buffer.flush()", "await self._producer.flush()", params="self"),
    pin("aiokafka:AIOKafkaProducer.create_batch", "transport/changelogs:_send_run", params="self"),
    pin("aiokafka:AIOKafkaProducer.send_batch", "transport/changelogs:_send_batch",
        params="self batch topic partition"),
    pin("aiokafka:AIOKafkaProducer.send", "transport/changelogs:_send_run",
        params="self topic value key partition timestamp_ms headers"),
    pin(MA + "MessageAccumulator.add_batch", "transport/changelogs:send_held",
        "batch = self._append_batch(builder, tp)", "return asyncio.shield(batch.future)"),
    pin(MA + "MessageBatch.done", "transport/changelogs:_resolve",
        "self.future.set_result( _record_metadata_class( topic, partition, tp, base_offset,"),
    pin(MA + "BatchBuilder.append", "transport/changelogs:_send_run",
        "if metadata is None: self.close() return None", params="self timestamp key value headers"),
    pin("aiokafka.structs:RecordMetadata", "transport/changelogs:_resolve", params=(
        "topic partition topic_partition offset timestamp timestamp_type log_start_offset")),
    # A Chunk (a bytes subclass) reaches the agent untouched through the raw codec.
    pin("faust.serializers.codecs:raw._loads", "transport/batched:Chunk", "return want_bytes(s)"),
    pin("mode.utils.compat:want_bytes", "transport/batched:Chunk",
        "if isinstance(s, str): return s.encode() return s"),
    pin("faust.tables.base:Collection.data", "stores:TableStore"),
    # agents/worker.py: the flow-state dump and the signals that trigger it.
    pin(FD + "Consumer._paused_partitions", "worker:_flow_state"),
    pin(FD + "AIOKafkaConsumerThread._ensure_consumer", "worker:_flow_state",
        "return self._consumer", params="self"),
    pin(AK + "_subscription@__init__", "worker:_flow_state",
        "self._subscription = SubscriptionState(loop=loop)", instance=True),
    pin("faust.tables.recovery:Recovery.completed", "worker:_flow_state"),
    pin(SS + "SubscriptionState.subscription", "worker:_flow_state"),
    pin(SS + "Subscription.assignment", "worker:_flow_state"),
    pin(SS + "Assignment.tps", "worker:_flow_state"),
    pin(SS + "Assignment.state_value", "worker:_flow_state", params="self tp"),
    pin(SS + "TopicPartitionState.position", "worker:_flow_state"),
    pin(SS + "TopicPartitionState.has_valid_position", "worker:_flow_state"),
    pin(SS + "TopicPartitionState.paused", "worker:_flow_state"),
    pin(SS + "TopicPartitionState.awaiting_reset", "worker:_flow_state"),
    pin(SS + "TopicPartitionState.highwater@__init__", "worker:_flow_state",
        "self.highwater = None", instance=True),
    pin("faust.worker:Worker._on_sigusr1", "worker:_Worker._on_sigusr1",
        "self.add_future(self._cry())", params="self"),
    pin("faust.worker:Worker._on_sigusr2", "worker:_Worker._on_sigusr2",
        "self._enter_debugger()", params="self"),
    pin("faust.worker:Worker._install_signal_handlers_unix", "worker:_Worker",
        "self.loop.add_signal_handler(signal.SIGUSR1, self._on_sigusr1)",
        "self.loop.add_signal_handler(signal.SIGUSR2, self._on_sigusr2)"),
    # SIGHUP is added beside mode's handlers once they are installed.
    pin("mode.worker:Worker.install_signal_handlers", "worker:_Worker.install_signal_handlers",
        "self._install_signal_handlers_unix()", params="self"),
]
# fmt: on


@pytest.mark.parametrize("p", PINS, ids=[p.where for p in PINS])
def test_framework_still_has_what_agents_rely_on(p: Pin) -> None:
    found = problems(p)
    assert not found, message(p, found)


@pytest.mark.parametrize("user", sorted({p.user for p in PINS}))
def test_every_pin_names_code_in_agents_that_exists(user: str) -> None:
    """A failing pin's message sends the reader to this code: it must be there."""
    assert user_code(user) is not None


def test_every_pin_is_named_once() -> None:
    assert len({p.where for p in PINS}) == len(PINS)


def test_the_checker_names_what_changed() -> None:
    """A checker that cannot fail pins nothing: each kind of change is reported by name."""

    class Upstream:
        _read_offset: dict[Any, Any]

        async def _add_gap(self, tp: Any, offset_from: int, offset_to: int) -> None:
            self._gap = (offset_from, offset_to + 1)

    class Renamed:
        async def _add_gap_range(self, tp: Any, start: int, end: int) -> None: ...

    class Changed:
        async def _add_gap(self, tp: Any, start: int, end: int) -> None:
            self._gap = (start, end)

    def check(where: str, owner: Any, *lines: str, **kw: Any) -> str:
        p = pin(where, "transport/batched:BatchedDelivery._span", *lines, **kw)
        return message(p, problems(p, owner))

    gap, line = "x:Consumer._add_gap", "self._gap = (offset_from, offset_to + 1)"
    assert problems(pin(gap, "", line, params="self tp offset_from offset_to"), Upstream) == []
    assert problems(pin("x:Consumer._read_offset", ""), Upstream) == []
    assert "_add_gap no longer exists" in check(gap, Renamed, line)
    assert "agents/transport/batched.py (BatchedDelivery._span)" in check(gap, Renamed, line)
    assert "parameters are now ('self', 'tp', 'start', 'end')" in check(
        gap, Changed, params="self tp offset_from offset_to"
    )
    assert f"source no longer has {line!r}" in check(gap, Changed, line)
    assert "_read_offset no longer exists" in check("x:Consumer._read_offset", Renamed)
    assert "ours would shadow it" in check(gap, Upstream, absent=True)
    assert "is gone" in problems(pin("faust.transport.consumer:Nope.x", ""))[0]
