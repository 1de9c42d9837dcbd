"""Faust's exactly-once processing on Apache Kafka: transactions seen by read-committed consumers.

With `XBORDER_PROCESSING_GUARANTEE=exactly_once`, the outputs of a record
(internal batches, table changelogs, alerts, dead letters) and its input
offset are committed in one transaction; a read-committed consumer sees each
alert emission once. Behaviour across a SIGKILL is measured by
`python -m benchmarks.worker` (its kill -9 lines), not asserted here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.broker_fixtures import apache_kafka_selected
from tests.support.scenario import EXPECTED_ALERTS, lines, summarize
from tests.support.worker_harness import WorkerRun, latest, produce_lines, read_topic

pytestmark = pytest.mark.integration


def read_committed(
    bootstrap: str, topic: str, done: Any, timeout: float = 120.0
) -> list[dict[str, Any]]:
    return read_topic(bootstrap, topic, done, timeout, isolation_level="read_committed")


EOS = {"XBORDER_PROCESSING_GUARANTEE": "exactly_once", "XBORDER_ALERT_UPDATE_INTERVAL": "0"}


@pytest.mark.skipif(not apache_kafka_selected(), reason="transactions need Apache Kafka")
@pytest.mark.parametrize("input_partition", [None, 0], ids=["spread", "one-partition"])
def test_exactly_once_outputs_are_transactional(
    kafka_bootstrap: str, country_db: Path, tmp_path: Path, input_partition: int | None
) -> None:
    # With every input in partition 0, nearly all internal traffic crosses to
    # other partitions, and nothing later arrives there to commit it: outputs
    # must be committed with the offsets of the record that caused them, not
    # wait for traffic on the partition they were written to.
    run = WorkerRun(kafka_bootstrap, country_db, tmp_path, extra_env=EOS)
    run.create_topics({"max.message.bytes": str(4 << 20)})
    run.start()
    try:
        produce_lines(kafka_bootstrap, run.topics, lines(), partition=input_partition)
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
