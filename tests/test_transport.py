"""The worker's transport: which fetched records are read again, which transaction an output joins."""

from __future__ import annotations

from typing import Any

from faust.types import TP

from agents.transport import never_committed, outputs_of, source_of_output, unprocessed

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

    from agents.transport import ProducerBuffer

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
