"""Kafka administration the worker, the demo and the tests share: creating topics."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from kafka import KafkaAdminClient
from kafka.errors import KafkaConnectionError, KafkaTimeoutError, MetadataEmptyBrokerList

from monitor.errors import BrokerUnavailable, XborderError
from monitor.kafka_security import check_access, describe, kafka_python_config

if TYPE_CHECKING:
    from monitor.config.settings import Settings

__all__ = ["create_topics"]

_TOPIC_ALREADY_EXISTS = 36


def create_topics(
    bootstrap: str,
    names: Iterable[str],
    partitions: int = 1,
    configs: Mapping[str, str] | None = None,
    timeout: float = 30.0,
    replication: int = 1,
    settings: Settings | None = None,
) -> None:
    """Create topics on Tansu or Apache Kafka; topics that already exist are left as they are.

    `settings`: how to connect (XBORDER_KAFKA_*); none, PLAINTEXT.
    """
    spec = {
        "num_partitions": partitions,
        "replication_factor": replication,
        "configs": dict(configs or {}),
    }
    wanted = {name: dict(spec) for name in names}
    if not wanted:
        return
    security = {}
    if settings is not None:
        security = kafka_python_config(settings)
        check_access(settings, bootstrap)
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap,
            client_id="xborder-admin",
            bootstrap_timeout_ms=int(timeout * 1000),
            request_timeout_ms=int(timeout * 1000),
            **security,
        )
    except (KafkaTimeoutError, KafkaConnectionError, MetadataEmptyBrokerList) as e:
        raise BrokerUnavailable(
            f"cannot reach Kafka at {bootstrap}{describe(settings)} within {timeout:.0f} s "
            f"({type(e).__name__}); "
            "is it running, and is KAFKA_BOOTSTRAP_SERVERS right?"
        ) from None
    try:
        result = admin.create_topics(wanted, raise_errors=False)
        failed = [
            f"{topic['name']}: {topic['error_message'] or topic['error_code']}"
            for topic in result["topics"]
            if topic["error_code"] not in (0, _TOPIC_ALREADY_EXISTS)
        ]
        if failed:
            raise XborderError(f"cannot create topics on {bootstrap}: " + "; ".join(failed))
        # Apache Kafka answers CreateTopics before the partitions have leaders;
        # a producer that starts at once would see errors.
        admin.wait_for_topics(list(wanted), timeout_ms=int(timeout * 1000))
    finally:
        admin.close()
