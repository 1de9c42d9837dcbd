"""Each test broker takes, keeps and hands back records the way the monitor needs."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType

from monitor.kafka_admin import create_topics
from tests.support.broker_fixtures import GROUP_CONSUMER_CONFIG, apache_kafka_selected

pytestmark = pytest.mark.integration

COUNT = 100


def _drain(consumer: KafkaConsumer, wanted: int, timeout: float = 60.0) -> list[bytes]:
    """Values polled until `wanted` arrived or `timeout` passed; closes the consumer."""
    received: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while len(received) < wanted and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                received.extend(record.value for record in records)
    finally:
        consumer.close()
    return received


def _round_trip(bootstrap: str, topic: str, acks: int | str) -> None:
    create_topics(bootstrap, [topic], partitions=3)
    create_topics(bootstrap, [topic], partitions=3)  # a second time is not an error
    sent = {f"value-{i}".encode() for i in range(COUNT)}
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks=acks)
    try:
        metadata = [producer.send(topic, key=value, value=value) for value in sorted(sent)]
        producer.flush(timeout=30)
        assert {m.get(timeout=30).partition for m in metadata} == {0, 1, 2}
    finally:
        producer.close(timeout=10)

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"{topic}-group",
        auto_offset_reset="earliest",
        **GROUP_CONSUMER_CONFIG,
    )
    received = _drain(consumer, COUNT)
    assert len(received) == COUNT
    assert set(received) == sent


def test_tansu_round_trip(tansu_bootstrap: str, topic_factory: Callable[[str], str]) -> None:
    _round_trip(tansu_bootstrap, topic_factory(""), acks=1)


def test_kafka_round_trip(kafka_bootstrap: str, topic_factory: Callable[[str], str]) -> None:
    _round_trip(kafka_bootstrap, topic_factory(""), acks="all" if apache_kafka_selected() else 1)


@pytest.mark.skipif(not apache_kafka_selected(), reason="Tansu keeps no topic configs")
def test_apache_keeps_compaction_config(
    kafka_bootstrap: str, topic_factory: Callable[[str], str]
) -> None:
    topic = topic_factory("compact")
    create_topics(kafka_bootstrap, [topic], configs={"cleanup.policy": "compact"})
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    finally:
        admin.close()
    assert described["topic"][topic]["cleanup.policy"]["value"] == "compact"


@pytest.mark.skipif(not apache_kafka_selected(), reason="Tansu does not isolate transactions")
def test_apache_hides_aborted_transactions(
    kafka_bootstrap: str, topic_factory: Callable[[str], str]
) -> None:
    topic = topic_factory("tx")
    create_topics(kafka_bootstrap, [topic])
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, transactional_id=topic)
    try:
        producer.init_transactions()
        producer.begin_transaction()
        producer.send(topic, b"aborted")
        producer.flush()
        producer.abort_transaction()
        producer.begin_transaction()
        producer.send(topic, b"committed")
        producer.commit_transaction()
    finally:
        producer.close(timeout=10)
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
    )
    # The aborted record comes first in the log, so it would be read first.
    assert _drain(consumer, 1) == [b"committed"]
