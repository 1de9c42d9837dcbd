"""The worker's transport: which fetched records are read again, which transaction an output joins."""

from __future__ import annotations

from typing import Any

from faust.types import TP

from agents.transport.reread import never_committed, unprocessed
from agents.transport.transactions import outputs_of, source_of_output

A, B, C = TP("in", 0), TP("in", 1), TP("in", 2)


def test_records_fetched_but_never_handed_on_are_read_again_from_the_first() -> None:
    # A: all handed on; B: none (a partition Faust skipped); C: cut off after 11.
    fetched = {A: (5, 7), B: (0, 3), C: (10, 14)}
    handed = {A: 7, C: 11}
    assert unprocessed(fetched, handed) == {B: 0, C: 12}


def test_nothing_is_read_again_when_every_fetched_record_was_handed_on() -> None:
    assert unprocessed({A: (0, 0), B: (3, 9)}, {A: 0, B: 9}) == {}


def test_an_output_belongs_to_the_partition_named_by_outputs_of_and_only_inside_it() -> None:
    assert source_of_output() is None  # no current event, no explicit source
    with outputs_of(B):
        assert source_of_output() == B
        with outputs_of(C):
            assert source_of_output() == C
        assert source_of_output() == B
    assert source_of_output() is None


def test_producer_buffer_flush_waits_for_every_message_however_slow() -> None:
    """Faust's own flush gives up after 0.1 s without a message out; a commit then passed them."""
    import asyncio
    from types import SimpleNamespace

    from agents.transport.producer_buffer import ProducerBuffer

    published: list[int] = []

    async def publish_message(fut: Any, wait: bool = False) -> None:
        await asyncio.sleep(0.25)  # a busy loop or a slow broker
        published.append(fut.n)

    def message(n: int) -> Any:
        return SimpleNamespace(
            n=n, message=SimpleNamespace(channel=SimpleNamespace(publish_message=publish_message))
        )

    async def scenario() -> list[int]:
        buffer = ProducerBuffer()
        buffer.app = SimpleNamespace(conf=SimpleNamespace(producer_threaded=False))  # type: ignore[assignment]
        await buffer.start()
        try:
            for n in range(3):
                buffer.put(message(n))
            await buffer.flush()
            return list(published)
        finally:
            await buffer.stop()

    assert asyncio.run(scenario()) == [0, 1, 2]


def test_partitions_never_committed_restart_from_the_beginning_but_changelogs_do_not() -> None:
    changelog = TP("app-state-changelog", 0)
    committed = {A: None, B: 0, C: 12, changelog: None}
    assert never_committed(committed) == [A, B]


def test_a_run_of_records_becomes_one_message_with_the_last_offset_and_every_value() -> None:
    from faust.types.tuples import ConsumerMessage

    from agents.transport import Chunk, chunk_message

    run = [
        ConsumerMessage("in", 1, offset, 1.0, 0, None, None, f"v{offset}".encode(), None, 0, 2, B)
        for offset in (7, 8, 10)
    ]
    message = chunk_message(B, run)
    assert message.offset == 10 and message.tp == B
    assert isinstance(message.value, Chunk) and message.value.messages == run
    assert message.serialized_value_size == 6


def test_records_dropped_from_stream_queues_when_flow_resumes_are_fetched_again() -> None:
    """The kill -9 loss under load, made deterministic.

    At the end of table recovery Faust resumes stream partitions, seeks them
    to their committed offsets one by one, and only then resumes flow
    control, which empties every stream queue. Records fetched during the
    seek sat in the queues and were dropped, their partitions' positions past
    them: never processed, and a later record's gap committed past them.
    """
    import asyncio
    from types import SimpleNamespace

    import faust
    from faust.events import Event
    from faust.types.tuples import ConsumerMessage

    from agents import transport
    from agents.transport import Chunk, chunk_message

    hits, telemetry, changelog = TP("app-hits", 1), TP("in", 0), TP("app-state-changelog", 0)

    def record(tp: TP, offset: int) -> Any:
        return ConsumerMessage(
            tp.topic, tp.partition, offset, 1.0, 0, None, None, b"[]", None, 0, 2, tp
        )

    async def scenario() -> tuple[dict[TP, int], dict[Any, int], int]:
        app = faust.App("rewind-test", broker=f"{transport.register(10)}://127.0.0.1:9")
        consumer: Any = app.consumer
        assert isinstance(app.consumer, transport.Consumer)
        positions = {hits: 4, telemetry: 9, changelog: 3}
        sought: dict[TP, int] = {}
        state = SimpleNamespace(
            tps=set(positions),
            state_value=lambda tp: SimpleNamespace(position=positions[tp]),
        )
        raw = SimpleNamespace(
            _subscription=SimpleNamespace(subscription=SimpleNamespace(assignment=state))
        )
        consumer._thread = SimpleNamespace(
            _ensure_consumer=lambda: raw, seek=lambda tp, offset: sought.__setitem__(tp, offset)
        )
        consumer.assignment = lambda: set(positions)
        app.flow_control.suspend()
        queue = app.channel().queue
        for message in (record(hits, 3), record(hits, 2), record(changelog, 1)):
            queue.put_nowait(Event(app, None, message.value, {}, message))
        run = chunk_message(telemetry, [record(telemetry, n) for n in (5, 6, 7)])
        assert isinstance(run.value, Chunk)
        queue.put_nowait(Event(app, None, run.value, {}, run))
        app.flow_control.resume()  # what Faust's recovery calls after its seek
        return sought, dict(consumer._read_offset), queue.qsize()

    sought, read, left = asyncio.run(scenario())
    assert left == 0  # Faust dropped them: what happens upstream, pinned
    # Each partition goes back to its first dropped record (a run from its
    # first record); changelogs are recovery's business.
    assert sought == {hits: 2, telemetry: 5}
    assert read[hits] == 2 and read[telemetry] == 5


def test_a_rewind_never_moves_a_partition_forward() -> None:
    import asyncio
    from types import SimpleNamespace

    import faust

    from agents import transport

    async def scenario() -> dict[TP, int]:
        app = faust.App("rewind-forward", broker=f"{transport.register(10)}://127.0.0.1:9")
        consumer: Any = app.consumer
        sought: dict[TP, int] = {}
        state = SimpleNamespace(tps={A}, state_value=lambda tp: SimpleNamespace(position=3))
        raw = SimpleNamespace(
            _subscription=SimpleNamespace(subscription=SimpleNamespace(assignment=state))
        )
        consumer._thread = SimpleNamespace(
            _ensure_consumer=lambda: raw, seek=lambda tp, offset: sought.__setitem__(tp, offset)
        )
        consumer.assignment = lambda: {A}
        consumer.rewind(A, 3)  # not past it yet: nothing to read again
        consumer.rewind(A, 7)
        consumer.rewind(B, 0)  # not assigned here
        return sought

    assert asyncio.run(scenario()) == {}


def test_the_faust_transports_entry_point_names_this_transport() -> None:
    """`xkafka://` resolves without `register` too, where the package is installed."""
    import importlib
    import tomllib

    from agents import transport
    from tests.support.paths import ROOT

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    target = project["project"]["entry-points"]["faust.transports"][transport.SCHEME]
    module, _, name = target.partition(":")
    assert getattr(importlib.import_module(module), name) is transport.Transport
