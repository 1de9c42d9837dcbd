"""What the agents of one worker share: its settings, rules, metrics, topics and how they send."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka.errors import KafkaError
from faust.exceptions import FaustError

from monitor.alerts.grouping import iso_ms
from monitor.config.reload import Loaded
from monitor.config.settings import Settings
from monitor.contract.dead_letters import dead_letter_json
from monitor.contract.schemas import KafkaSource
from monitor.detect.local import PROCESSING_ERROR
from monitor.detect.stages import Failures
from monitor.engine.model import RulePack
from monitor.metrics import Metrics

# Errors of the framework or the broker, not of the item being processed: a
# stage does not dead-letter an item for them (monitor.detect.stages.Failures);
# they escape the agent and the worker exits to restart from its committed
# offsets (agents/transport/task_errors.py).
INFRASTRUCTURE: tuple[type[BaseException], ...] = (FaustError, KafkaError)

__all__ = ["MAX_BATCH_BYTES", "Context", "Topics", "batch_items", "chunk_json", "source_of"]

# Internal batch messages stay well under Kafka's default 1 MB message limit.
MAX_BATCH_BYTES = 512 * 1024


def chunk_json(items: Iterable[object], limit: int = MAX_BATCH_BYTES) -> Iterator[bytes]:
    """JSON arrays of the items, each at most `limit` bytes (unless one item alone is larger)."""
    parts: list[bytes] = []
    size = 2
    for item in items:
        part = orjson.dumps(item)
        if parts and size + len(part) + 1 > limit:
            yield b"[" + b",".join(parts) + b"]"
            parts, size = [], 2
        parts.append(part)
        size += len(part) + 1
    if parts:
        yield b"[" + b",".join(parts) + b"]"


def batch_items(payload: bytes) -> list[Any]:
    """The items of an internal batch message, as JSON: the caller says what they are."""
    items: list[Any] = orjson.loads(payload)
    return items


def source_of(message: Any) -> KafkaSource:
    """Where a message is (a record's, or an internal batch for dead letters that name no record)."""
    return {"topic": message.topic, "partition": message.partition, "offset": message.offset}


@dataclass
class Topics:
    """The worker's topics (Faust topic objects)."""

    inputs: Any
    dead_letters: Any
    alerts: Any
    state: Any
    hits: Any


@dataclass
class Context:
    """One worker's shared parts; each agent keeps its own state beside it."""

    settings: Settings
    # What detection reads, replaced whole by a reload (agents/reload.py). An
    # agent reads it once per batch, so a batch sees one version throughout.
    config: Loaded
    metrics: Metrics
    topics: Topics

    @property
    def pack(self) -> RulePack:
        return self.config.pack

    @property
    def partitions(self) -> int:
        """Partitions of the internal topics and tables."""
        return self.settings.partitions

    async def send_batches(self, topic: Any, batches: Mapping[int, Iterable[object]]) -> list[Any]:
        """Send the batches; the futures of their delivery."""
        return [
            await topic.send(value=chunk, partition=partition)
            for partition, items in batches.items()
            for chunk in chunk_json(items)
        ]

    async def send_failures(self, stage: str, failures: Failures) -> None:
        """Dead letters of items a stage raised on; the stream goes on without them."""
        if not failures.letters:
            return
        received_at = iso_ms(int(time.time() * 1000))
        mask = self.settings.dead_letter_mask
        for letter in failures.letters:
            value = dead_letter_json(letter, received_at, mask)
            await self.topics.dead_letters.send(value=orjson.dumps(value))
        self.metrics.dead_letters.labels(PROCESSING_ERROR).inc(len(failures.letters))
        self.metrics.processing_errors.labels(stage).inc(len(failures.letters))
