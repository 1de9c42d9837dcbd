"""Where a simulated stream goes: a JSON Lines file or Kafka topics; and its summary."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Final

from xborder_tools.simulate.model import SimItem

if TYPE_CHECKING:
    from kafka import KafkaProducer

    from monitor.config.settings import Settings

__all__ = ["FileSink", "KafkaSink", "SimStats"]


@dataclass
class SimStats:
    by_kind: Counter[str] = field(default_factory=Counter)  # valid records, duplicates included
    episodes: Counter[str] = field(default_factory=Counter)
    invalid: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    # Records the output format cannot express, by kind, and of them violations' by kind.
    unexpressed: Counter[str] = field(default_factory=Counter)
    unexpressed_violations: Counter[str] = field(default_factory=Counter)
    _seen_episodes: set[int] = field(default_factory=set)

    def add(self, item: SimItem) -> None:
        if item.reason is not None:
            self.invalid[item.reason.split(":")[0]] += 1
            return
        self.by_kind[item.kind] += 1
        if item.label == "duplicate":
            self.duplicates += 1
        elif item.episode is not None and item.episode not in self._seen_episodes:
            self._seen_episodes.add(item.episode)
            self.episodes[item.label] += 1

    def skip(self, item: SimItem) -> None:
        """An item the output format cannot express: not written."""
        self.unexpressed[item.kind] += 1
        if item.episode is not None and item.label != "duplicate":
            self.unexpressed_violations[item.label] += 1

    @property
    def total(self) -> int:
        return sum(self.by_kind.values()) + sum(self.invalid.values())

    def render(self) -> str:
        def counts(c: Counter[str]) -> str:
            return ", ".join(f"{k} {n}" for k, n in sorted(c.items())) or "none"

        return (
            f"{self.total} items: records {counts(self.by_kind)}"
            f" | violations {counts(self.episodes)}"
            f" | invalid {sum(self.invalid.values())} ({counts(self.invalid)})"
            f" | duplicates {self.duplicates}"
            + (f" | not expressible {counts(self.unexpressed)}" if self.unexpressed else "")
        )

    def unexpressed_note(self, fmt: str) -> str | None:
        """What the format left out, for stderr; None when it left nothing out."""
        if not self.unexpressed:
            return None
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(self.unexpressed.items()))
        note = f"{fmt} cannot express these records, not written: {kinds}"
        if self.unexpressed_violations:
            among = ", ".join(f"{k} {n}" for k, n in sorted(self.unexpressed_violations.items()))
            note += f" (violation records among them: {among})"
        return note


class FileSink:
    """One item a line, in stream order, between a format's header and footer lines.

    `hold_invalid`: invalid lines before the first valid one wait for it, as
    replay detects a file's format from its first line (OCSF has no header).
    """

    def __init__(
        self,
        stream: IO[bytes],
        owned: bool = True,
        header: Sequence[bytes] = (),
        footer: Sequence[bytes] = (),
        hold_invalid: bool = False,
    ) -> None:
        self.stream = stream
        self.owned = owned
        self.footer = footer
        self.held: list[bytes] | None = [] if hold_invalid else None
        for line in header:
            stream.write(line + b"\n")

    def send(self, item: SimItem) -> None:
        if self.held is not None:
            if not item.valid:
                self.held.append(item.raw)
                return
            self.stream.write(item.raw + b"\n")
            self.stream.writelines(raw + b"\n" for raw in self.held)
            self.held = None
            return
        self.stream.write(item.raw + b"\n")

    def close(self) -> None:
        self.stream.writelines(raw + b"\n" for raw in (*(self.held or ()), *self.footer))
        if self.owned:
            self.stream.close()
        else:
            self.stream.flush()


# Kafka's default message.max.bytes is about 1 MB; batches are cut below it.
_MAX_BATCH_BYTES: Final = 900_000


class KafkaSink:
    """Values to the topic of each item's kind, one record or one batch per message."""

    def __init__(
        self,
        producer: KafkaProducer,
        topics: Mapping[str, str],
        batch: int = 1,
        batch_format: str = "array",
    ) -> None:
        self.producer = producer
        self.topics = topics
        self.batch = max(1, batch)
        self.array = batch_format == "array"
        self.pending: dict[str, list[bytes]] = {}
        self.pending_bytes: dict[str, int] = {}

    @classmethod
    def connect(
        cls,
        bootstrap: str,
        topics: Mapping[str, str],
        batch: int,
        batch_format: str,
        acks: str,
        settings: Settings | None = None,
    ) -> KafkaSink:
        """`settings`: how to connect (XBORDER_KAFKA_*); none, PLAINTEXT."""
        # kafka-python checksums every record batch with CRC-32C; with the `crc32c`
        # package installed it uses that C implementation instead of its pure-Python
        # fallback, which otherwise dominates the producer's CPU time.
        from kafka import KafkaProducer

        from monitor.kafka_security import check_access, kafka_python_config

        security = {}
        if settings is not None:
            security = kafka_python_config(settings)
            check_access(settings, bootstrap)
        producer = KafkaProducer(
            bootstrap_servers=bootstrap.split(","),
            client_id="xborder-simulate",
            acks="all" if acks == "all" else int(acks),
            linger_ms=5,
            compression_type=None,
            **security,
        )
        return cls(producer, topics, batch, batch_format)

    def send(self, item: SimItem) -> None:
        topic = self.topics[item.kind]
        if self.batch == 1 or (self.array and item.reason == "invalid_json"):
            # Inside a JSON array, one broken element would turn the whole batch
            # into a single invalid_json dead letter: such items travel alone.
            self.producer.send(topic, value=item.raw)
            return
        buf = self.pending.setdefault(topic, [])
        size = self.pending_bytes.get(topic, 0)
        if buf and size + len(item.raw) > _MAX_BATCH_BYTES:
            self._flush(topic)
            buf = self.pending.setdefault(topic, [])
            size = 0
        buf.append(item.raw)
        self.pending_bytes[topic] = size + len(item.raw) + 1
        if len(buf) >= self.batch:
            self._flush(topic)

    def _flush(self, topic: str) -> None:
        buf = self.pending.pop(topic, [])
        self.pending_bytes.pop(topic, None)
        if not buf:
            return
        value = b"[" + b",".join(buf) + b"]" if self.array else b"\n".join(buf)
        self.producer.send(topic, value=value)

    def close(self) -> None:
        for topic in list(self.pending):
            self._flush(topic)
        self.producer.flush()
        self.producer.close()
