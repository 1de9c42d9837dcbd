"""Issue 8's poison records, sent to a worker on Apache Kafka between valid ones.

Each of them crashed a stage or lost alerts before. The worker must stay up,
emit every alert of the valid records, keep what it builds within a Kafka
message (topics here keep the broker's default 1 MB limit) and dead-letter
what it cannot use.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from monitor.bounds import COUNT_MAX, MAX_CATEGORIES
from tests.support.records import T0, api
from tests.support.worker_harness import WorkerRun, latest, metric_value, producer, read_topic

pytestmark = pytest.mark.integration

NLB = "pipa.xborder.no_legal_basis"
CN = "47.92.1.10"


def labels(prefix: str, n: int) -> list[str]:
    return [f"user.{prefix}{i:05d}" for i in range(n)]


def poison_and_valid() -> list[tuple[str, bytes]]:
    """(platform it concerns, message) in sending order; each platform is one alert group."""
    out: list[tuple[str, bytes]] = []

    def send(record: dict[str, Any]) -> None:
        out.append((record["platform"], orjson.dumps(record)))

    send(api("v1", T0, platform="valid-a", dst_ip=CN))
    # Two records of about 900 KB of distinct labels: their union was a 1.7 MB alert.
    for name in ("w1", "w2"):
        send(api(name, T0, platform="wide", dst_ip=CN, data_categories=labels(name, 58_000)))
    # Counts whose sum passes 2^64-1.
    send(api("o1", T0, platform="overflow", dst_ip=CN, records=COUNT_MAX))
    send(api("o2", T0 + 1000, platform="overflow", dst_ip=CN, records=1))
    # 200 KB of control bytes: escaped 6x in its dead letter.
    control = bytes(b for b in range(1, 32) if b not in b"\r\n")  # one line, not JSON Lines
    out.append(("control", control * 7000))
    # One call naming 1,000 subjects with many labels.
    subjects = [f"subject-{i:04d}" for i in range(1000)]
    send(
        api(
            "s1",
            T0,
            platform="subjects",
            dst_ip=CN,
            subject_ids=subjects,
            data_categories=labels("s", 20_000),
        )
    )
    # A record of the year 9999 (it would expire every window and group of its partition).
    send(api("f1", 253_402_300_000_000, platform="future", dst_ip=CN))
    send(api("v2", T0 + 2000, platform="valid-b", dst_ip=CN))
    return out


@pytest.fixture(scope="module")
def poisoned(
    kafka_bootstrap: str, country_db: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[WorkerRun, list[dict[str, Any]], list[dict[str, Any]]]]:
    run = WorkerRun(kafka_bootstrap, country_db, tmp_path_factory.mktemp("poison"))
    run.create_topics()  # the broker's default message size limit
    run.start()
    try:
        p = producer(kafka_bootstrap)
        for _, value in poison_and_valid():
            p.send(run.topics.api, value)
        p.flush()
        p.close()
        # Records per group once every update is out (updates are rate-limited).
        want = {"valid-a": 1, "valid-b": 1, "wide": 2, "overflow": 2, "subjects": 1}

        def done(msgs: list[dict[str, Any]]) -> bool:
            counts = {a["platform"]: a["event_count"] for a in latest(msgs) if a["rule_id"] == NLB}
            return all(counts.get(p) == n for p, n in want.items())

        alerts = latest(read_topic(kafka_bootstrap, run.topics.alerts, done))
        dead = read_topic(kafka_bootstrap, run.topics.dead_letters, lambda m: len(m) >= 2)
        assert run.process is not None and run.process.poll() is None, run.failure("worker died")
        yield run, alerts, dead
    finally:
        run.stop()


def test_worker_stays_up_and_emits_every_valid_alert(
    poisoned: tuple[WorkerRun, list[dict[str, Any]], list[dict[str, Any]]],
) -> None:
    run, alerts, _ = poisoned
    by_platform = {a["platform"]: a for a in alerts if a["rule_id"] == NLB}
    assert {"valid-a", "valid-b"} <= set(by_platform), run.failure("valid alerts missing")
    wide = by_platform["wide"]
    assert wide["event_count"] == 2 and wide["truncated"] is True
    assert len(wide["data_categories"]) == MAX_CATEGORIES
    overflow = by_platform["overflow"]
    assert overflow["records"] == COUNT_MAX and overflow["truncated"] is True
    assert by_platform["subjects"]["event_count"] == 1
    assert "future" not in by_platform


def test_poison_is_dead_lettered_within_a_message(
    poisoned: tuple[WorkerRun, list[dict[str, Any]], list[dict[str, Any]]],
) -> None:
    run, _, dead = poisoned
    reasons = sorted(d["reason"] for d in dead)
    assert reasons == ["invalid_json", "processing_error"], run.failure(f"dead letters {reasons}")
    control = next(d for d in dead if d["reason"] == "invalid_json")
    assert control["raw_truncated"] is True and len(orjson.dumps(control)) < 1 << 20
    future = next(d for d in dead if d["reason"] == "processing_error")
    assert orjson.loads(future["raw"])["event_id"] == "f1"
    assert metric_value(run.metrics(), "xborder_dead_letters_total", reason="processing_error") == 1
