"""`xborder notify`: alerts from the alerts topic to the receivers their routes name.

A consumer group, like the worker's: several notifiers share the topic's
partitions. Each alert revision goes to each receiver its routes name, once:

- An offset is committed only once every delivery of every alert before it
  in its partition has reached a final outcome: delivered, rejected (a 4xx
  other than 429, which no retry cures), or exhausted and written to the
  undelivered topic with its last error.
- After a restart, alerts after the committed offset are read again; the
  history says which (alert revision, receiver) pairs were delivered, and
  those are not sent again. A receiver drops what it still sees twice (a
  crash between its 2xx and the history's write) by the idempotency key.
- Deliveries of one receiver wait only for that receiver (`Sender`): the
  notifier keeps reading while a dead receiver's queue fills, and stops
  reading only when that queue is full.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import orjson

from monitor.alerts.grouping import Alert, iso_ms
from monitor.delivery import payloads, signing
from monitor.delivery.history import DeliveryHistory
from monitor.delivery.metrics import DeliveryMetrics
from monitor.delivery.model import Attempt, Delivery, Format, Receiver
from monitor.delivery.routing import DeliveryConfig
from monitor.delivery.sender import Sender
from monitor.errors import BrokerUnavailable
from monitor.kafka_security import aiokafka_config, check_access_async, describe

if TYPE_CHECKING:
    from monitor.config.settings import Settings

__all__ = ["Notifier", "Pending", "render_with_link", "undelivered_record"]

log = logging.getLogger(__name__)


def render_with_link(link: str | None) -> Callable[[Format, Alert], tuple[str, bytes]]:
    """The sender's renderer: `link` a template naming `{alert_id}` (or None)."""

    def render(fmt: Format, alert: Alert) -> tuple[str, bytes]:
        url = link.format(alert_id=alert["alert_id"]) if link else None
        return payloads.render(fmt, alert, link=url)

    return render


def undelivered_record(delivery: Delivery, error: str, now_ms: int) -> dict[str, Any]:
    """What the undelivered topic keeps of a delivery whose retries ran out."""
    return {
        "receiver": delivery.receiver,
        "key": delivery.key,
        "error": error,
        "failed_at": iso_ms(now_ms),
        "alert": delivery.alert,
    }


@dataclass
class Pending:
    """Per partition, the offsets read and how many of their deliveries are unfinished.

    `done(tp)` is the offset to commit: one past the last offset before
    which nothing is unfinished.
    """

    open: dict[Any, deque[list[int]]] = field(default_factory=dict)
    ready: dict[Any, int] = field(default_factory=dict)

    def add(self, tp: Any, offset: int, deliveries: int) -> list[int]:
        entry = [offset, deliveries]
        self.open.setdefault(tp, deque()).append(entry)
        self._advance(tp)
        return entry

    def finish(self, tp: Any, entry: list[int]) -> None:
        entry[1] -= 1
        self._advance(tp)

    def _advance(self, tp: Any) -> None:
        queue = self.open.get(tp)
        while queue and queue[0][1] <= 0:
            self.ready[tp] = queue.popleft()[0] + 1

    def take(self) -> dict[Any, int]:
        """Offsets that became committable since the last call."""
        ready, self.ready = self.ready, {}
        return ready

    def forget(self, tps: Iterable[Any]) -> None:
        for tp in tps:
            self.open.pop(tp, None)
            self.ready.pop(tp, None)

    def unfinished(self) -> int:
        return sum(entry[1] > 0 for q in self.open.values() for entry in q)


def _loads(value: bytes | None) -> object:
    try:
        return orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return None


def _alert_of(doc: object) -> Alert | None:
    """The document if it is an alert (what delivery reads of one is there)."""
    if isinstance(doc, dict) and all(k in doc for k in ("alert_id", "revision", "severity")):
        return doc  # type: ignore[return-value]
    return None


def _finished(done: Callable[[], None], future: asyncio.Future[Attempt]) -> None:
    if not future.cancelled() and future.exception() is None:
        done()


class Notifier:
    """Reads alerts, routes them, hands deliveries to a `Sender`, commits what is finished."""

    def __init__(
        self,
        config: DeliveryConfig,
        history: DeliveryHistory,
        *,
        bootstrap: str,
        alerts_topic: str,
        undelivered_topic: str,
        group_id: str,
        link: str | None = None,
        metrics: DeliveryMetrics | None = None,
        receivers: Iterable[Receiver] | None = None,
        settings: Settings | None = None,
    ) -> None:
        """`settings`: how to connect to Kafka (XBORDER_KAFKA_*); none, PLAINTEXT."""
        self.config = config
        self.settings = settings
        self.history = history
        self.bootstrap = bootstrap
        self.alerts_topic = alerts_topic
        self.undelivered_topic = undelivered_topic
        self.group_id = group_id
        self.metrics = metrics
        self.link = link
        self.receivers = list(receivers if receivers is not None else config.receivers.values())
        self.pending = Pending()
        self.sent = 0  # deliveries handed to the sender
        self.skipped = 0  # deliveries the history had as delivered
        self._producer: Any = None

    def sender(self) -> Sender:
        return Sender(
            self.receivers,
            render=render_with_link(self.link),
            sign=signing.sign,
            on_attempt=self._record,
            on_exhausted=self._undelivered,
            metrics=self.metrics,
        )

    async def _record(self, attempt: Attempt) -> None:
        # The history is synchronous (SQLite, psycopg): kept off the loop.
        await asyncio.to_thread(self.history.record, attempt)

    async def _undelivered(self, delivery: Delivery, error: str) -> None:
        record = undelivered_record(delivery, error, int(time.time() * 1000))
        await self._producer.send_and_wait(
            self.undelivered_topic,
            orjson.dumps(record),
            key=delivery.alert["alert_id"].encode(),
        )
        log.warning(
            "delivery: %s to %s undelivered after its retries (%s); `xborder deliveries retry` "
            "sends it again",
            delivery.key,
            delivery.receiver,
            error,
        )

    def routed(self, value: bytes | None) -> tuple[Alert, list[Receiver]] | None:
        """An alert of the alerts topic and the receivers its routes name; None if no alert."""
        alert = _alert_of(_loads(value))
        return None if alert is None else (alert, self.config.receivers_for(alert))

    def returned(self, value: bytes | None) -> tuple[Alert, list[Receiver]] | None:
        """An undelivered record and its receiver, if still configured; None otherwise."""
        record = _loads(value)
        if not isinstance(record, dict) or "receiver" not in record:
            return None
        name = record["receiver"]
        alert = _alert_of(record.get("alert"))
        receiver = self.config.receivers.get(name)
        if alert is None or receiver is None:
            log.warning("delivery: an undelivered record for %r: no such receiver now", name)
            return None
        return alert, [receiver]

    async def deliver(
        self,
        sender: Sender,
        alert: Alert,
        receivers: list[Receiver],
        hold: Callable[[], Callable[[], None]],
    ) -> int:
        """Submit an alert's deliveries; how many (those the history has are not sent).

        `hold()` is called before each submission and returns what to call
        once that delivery has reached a final outcome. A delivery cancelled
        (the sender closing) or failed (its undelivered record not written)
        never calls it: its offset stays uncommitted and is read again.
        """
        submitted = 0
        for receiver in receivers:
            delivery = Delivery(alert, receiver.name)
            if await asyncio.to_thread(self.history.delivered, delivery.key, receiver.name):
                self.skipped += 1
                if self.metrics is not None:
                    self.metrics.deliveries.labels(receiver.name, "duplicate").inc()
                continue
            done = hold()
            future = await sender.submit(delivery)
            future.add_done_callback(partial(_finished, done))
            submitted += 1
        self.sent += submitted
        return submitted

    async def run(
        self,
        stop: asyncio.Event,
        *,
        idle_exit_s: float | None = None,
        retry: bool = False,
    ) -> None:
        """Until `stop` is set (or no alert came for `idle_exit_s` with nothing unfinished).

        `retry`: read the undelivered topic instead (group `<group>-retry`) and
        send each record to its receiver again; what fails again goes back there.
        """
        topic = self.undelivered_topic if retry else self.alerts_topic
        group = f"{self.group_id}-retry" if retry else self.group_id
        pick = self.returned if retry else self.routed
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
        from aiokafka.errors import KafkaConnectionError

        notifier = self

        class Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
            async def on_partitions_revoked(self, revoked: Any) -> None:
                await notifier._commit(consumer)
                notifier.pending.forget(revoked)

            async def on_partitions_assigned(self, assigned: Any) -> None:
                return None

        security: dict[str, Any] = {}
        if self.settings is not None:
            security = aiokafka_config(self.settings)
            await check_access_async(self.settings, self.bootstrap)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            **security,
        )
        # No idempotent producer: the embedded broker (Tansu) has none, and a
        # repeated undelivered record is harmless (retry asks the history first).
        self._producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all", **security)
        idle_since = time.monotonic()
        try:
            try:
                await self._producer.start()
                await consumer.start()
            except KafkaConnectionError:
                raise BrokerUnavailable(
                    f"cannot reach Kafka at {self.bootstrap}{describe(self.settings)}; is it "
                    "running, and is KAFKA_BOOTSTRAP_SERVERS right?"
                ) from None
            consumer.subscribe([topic], listener=Rebalance())
            async with self.sender() as sender:
                while not stop.is_set():
                    batch = await consumer.getmany(timeout_ms=200, max_records=500)
                    for tp, messages in batch.items():
                        for m in messages:
                            await self._one(sender, tp, m.offset, pick(m.value))
                    await self._commit(consumer)
                    if batch or self.pending.unfinished():
                        idle_since = time.monotonic()
                    elif idle_exit_s is not None and time.monotonic() - idle_since > idle_exit_s:
                        break
                await sender.close()
                await self._commit(consumer)
        finally:
            await consumer.stop()
            await self._producer.stop()

    async def _one(
        self, sender: Sender, tp: Any, offset: int, picked: tuple[Alert, list[Receiver]] | None
    ) -> None:
        if picked is None:
            # The worker writes these topics; anything else on them is nothing to deliver.
            log.warning("delivery: %s offset %d holds nothing to deliver; skipped", tp, offset)
            self.pending.add(tp, offset, 0)
            return
        entry = self.pending.add(tp, offset, 1)  # held open while it is being submitted

        def hold() -> Callable[[], None]:
            entry[1] += 1
            return partial(self.pending.finish, tp, entry)

        await self.deliver(sender, picked[0], picked[1], hold)
        self.pending.finish(tp, entry)

    async def _commit(self, consumer: Any) -> None:
        from aiokafka import TopicPartition
        from aiokafka.structs import OffsetAndMetadata

        ready = self.pending.take()
        if ready:
            await consumer.commit(
                {
                    TopicPartition(tp.topic, tp.partition): OffsetAndMetadata(o, "")
                    for tp, o in ready.items()
                }
            )
