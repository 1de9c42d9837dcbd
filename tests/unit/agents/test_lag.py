"""Consumer lag from what Faust's consumer knows: high watermarks and committed offsets."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, NamedTuple

from prometheus_client import CollectorRegistry

from agents.lag import LagReporter, lag_by_topic
from monitor.metrics import Metrics


class TP(NamedTuple):
    topic: str
    partition: int


@dataclass
class _State:
    position: int | None

    @property
    def has_valid_position(self) -> bool:
        return self.position is not None


@dataclass
class FakeConsumer:
    """The parts of Faust's consumer (and its aiokafka client) the lag is read from."""

    ends: dict[TP, int | None]
    committed: dict[TP, int]
    positions: dict[TP, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._committed_offset: defaultdict[TP, int | None] = defaultdict(lambda: None)
        self._committed_offset.update(self.committed)
        # consumer._thread._ensure_consumer()._subscription.subscription.assignment, as aiokafka has it
        client = SimpleNamespace(
            _subscription=SimpleNamespace(subscription=SimpleNamespace(assignment=self))
        )
        self._thread = SimpleNamespace(_ensure_consumer=lambda: client)

    def state_value(self, tp: TP) -> _State | None:
        return _State(self.positions.get(tp))

    def assignment(self) -> set[TP]:
        return set(self.ends)

    def highwater(self, tp: TP) -> int | None:
        return self.ends[tp]


def test_lag_is_log_end_minus_committed_summed_per_topic() -> None:
    consumer = FakeConsumer(
        ends={
            TP("in", 0): 100,
            TP("in", 1): 50,
            TP("in", 2): None,  # not fetched yet
            TP("app-state", 0): 10,
            TP("app-groups-changelog", 0): 999,  # a table's: not a stream topic
        },
        committed={TP("in", 0): 90, TP("in", 1): 50, TP("app-state", 0): 12},
    )
    got = lag_by_topic(consumer, ["in", "app-state", "app-hits"])
    # A commit ahead of a stale high watermark is no negative lag.
    assert got == {"in": 10, "app-state": 0, "app-hits": 0}


def test_a_partition_never_committed_counts_from_the_fetch_position() -> None:
    consumer = FakeConsumer(
        ends={TP("in", 0): 100, TP("in", 1): 30},
        committed={},
        positions={TP("in", 0): 40},
    )
    assert lag_by_topic(consumer, ["in"]) == {"in": 60}
    # The lookup added nothing to Faust's own mapping.
    assert dict(consumer._committed_offset) == {}


def test_reporter_exports_every_topic_and_survives_a_consumer_not_started() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)

    class App:
        consumer: Any = FakeConsumer(ends={TP("in", 0): 7}, committed={TP("in", 0): 2})

    reporter = LagReporter(App(), metrics, ["in", "app-hits"])

    def lag(topic: str) -> float | None:
        return registry.get_sample_value("xborder_consumer_lag_records", {"topic": topic})

    assert lag("in") == 0 and lag("app-hits") == 0
    asyncio.run(reporter.report())
    assert lag("in") == 5

    class NotStarted:
        @property
        def consumer(self) -> Any:
            raise RuntimeError("consumer thread not yet started")

    reporter.app = NotStarted()
    asyncio.run(reporter.report())
    assert lag("in") == 5
