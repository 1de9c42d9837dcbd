"""Faust's exactly-once processing on Apache Kafka: transactions seen by read-committed consumers.

With `XBORDER_PROCESSING_GUARANTEE=exactly_once`, outputs, table changelogs
and input offsets are committed in one transaction per partition; a
read-committed consumer sees each alert emission once. Behaviour across a
SIGKILL is measured by `benchmarks/exactly_once.py` (see its notes): Faust
0.15.3 does not always recover table state after aborted transactions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.broker_fixtures import apache_kafka_selected
from tests.scenario import EXPECTED_ALERTS, lines, summarize
from tests.worker_harness import WorkerRun, latest, produce_lines, read_topic

pytestmark = pytest.mark.integration


def read_committed(
    bootstrap: str, topic: str, done: Any, timeout: float = 120.0
) -> list[dict[str, Any]]:
    return read_topic(bootstrap, topic, done, timeout, isolation_level="read_committed")


@pytest.mark.skipif(not apache_kafka_selected(), reason="transactions need Apache Kafka")
def test_exactly_once_outputs_are_transactional(
    kafka_bootstrap: str, country_db: Path, tmp_path: Path
) -> None:
    eos = {"XBORDER_PROCESSING_GUARANTEE": "exactly_once", "XBORDER_ALERT_UPDATE_INTERVAL": "0"}
    run = WorkerRun(kafka_bootstrap, country_db, tmp_path, extra_env=eos)
    run.create_topics({"max.message.bytes": str(4 << 20)})
    run.start()
    try:
        produce_lines(kafka_bootstrap, run.topics, lines())
        alerts = read_committed(
            kafka_bootstrap, run.topics.alerts, lambda m: summarize(latest(m)) == EXPECTED_ALERTS
        )
        dead = read_committed(kafka_bootstrap, run.topics.dead_letters, lambda m: len(m) >= 9)
        log = run.log_path.read_text()
    finally:
        run.stop()
    got = summarize(latest(alerts))
    assert got == EXPECTED_ALERTS, run.failure(f"final alerts differ: {got}")
    assert len(dead) == 9  # the scenario's 8 bad lines, `[1, 2]` being two records on Kafka
    # The worker really ran transactions (a read-committed consumer sees only committed ones).
    assert "transactional producers" in log
    emissions = [(a["alert_id"], a["revision"]) for a in alerts]
    assert len(emissions) == len(set(emissions))
