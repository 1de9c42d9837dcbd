"""Consumer lag: records behind on each topic the worker consumes, for `xborder_consumer_lag_records`.

Read from what the consumer already knows (the high watermarks of its last
fetches, the offsets it committed), on a timer of the event loop: no request
to the broker, nothing on the data path. The private parts of Faust and
aiokafka read here are pinned by tests/unit/agents/test_framework_pins.py (a
rename would otherwise leave the gauge at 0 without a word).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from monitor.metrics import Metrics

__all__ = ["LagReporter", "lag_by_topic"]

log = logging.getLogger("xborder.worker")

# How often the gauge is refreshed: well under any scrape interval worth having.
LAG_INTERVAL = 5.0


def _fetch_position(consumer: Any, tp: Any) -> int | None:
    """The fetch position of a partition nothing was committed for yet, if the client has one."""
    try:
        client = consumer._thread._ensure_consumer()
        state = client._subscription.subscription.assignment.state_value(tp)
    except Exception:  # no client yet, or the partition was revoked meanwhile
        return None
    if state is None or not state.has_valid_position:
        return None
    position: int = state.position
    return position


def lag_by_topic(consumer: Any, topics: Iterable[str]) -> dict[str, int]:
    """Per topic, log end minus committed offset summed over this consumer's partitions.

    A partition with no committed offset yet counts from the consumer's
    position; one not fetched yet (no high watermark) counts nothing.
    """
    behind = dict.fromkeys(topics, 0)
    committed_offsets = consumer._committed_offset
    for tp in consumer.assignment():
        if tp.topic not in behind:
            continue  # changelogs: read by table recovery, not behind on the stream
        end = consumer.highwater(tp)
        if end is None or end < 0:
            continue
        # .get: Faust's mapping is a defaultdict, and a lookup must not add to it.
        done = committed_offsets.get(tp)
        if done is None:
            done = _fetch_position(consumer, tp)
        if done is not None:
            behind[tp.topic] += max(0, end - done)
    return behind


class LagReporter:
    """Sets the lag gauge from the app's consumer; a timer of the app calls `report`."""

    def __init__(self, app: Any, metrics: Metrics, topics: Iterable[str]) -> None:
        self.app = app
        self.metrics = metrics
        self.topics = tuple(topics)
        for topic in self.topics:
            metrics.consumer_lag.labels(topic)

    async def report(self) -> None:
        try:
            lags = lag_by_topic(self.app.consumer, self.topics)
        except Exception as exc:  # a metric must never stop the worker (not started, rebalancing)
            log.debug("consumer lag not read: %r", exc)
            return
        for topic, n in lags.items():
            self.metrics.consumer_lag.labels(topic).set(n)
