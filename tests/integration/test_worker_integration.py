"""The worker on a real Apache Kafka: telemetry in with kafka-python, alerts, dead letters, metrics out."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.support.scenario import EXPECTED_ALERTS, EXPECTED_DEAD_LETTERS, T0, lines, summarize
from tests.support.worker_harness import (
    WorkerRun,
    latest,
    metric_value,
    produce_lines,
    producer,
    read_topic,
)

pytestmark = pytest.mark.integration

BATCH_PLATFORM = "batchmart"  # declared no transfers: anything abroad is undisclosed


def batch_messages() -> list[tuple[str, bytes]]:
    """A JSON-array batch and a JSON Lines batch, each with one bad record at index 1."""
    call = {
        "kind": "api_call",
        "event_id": "bm-1",
        "ts": T0,
        "platform": BATCH_PLATFORM,
        "operation": "orders.export",
        "endpoint": "api.example.cn",
        "dst_ip": "47.92.7.7",
        "src_country": "KR",
        "subject_region": "KR",
        "data_categories": ["user.contact"],
    }
    flow = {
        "kind": "egress",
        "event_id": "bm-2",
        "ts": T0,
        "platform": BATCH_PLATFORM,
        "src_ip": "211.234.3.3",
        "dst_ip": "2406:da18::7",
        "bytes": 5,
        "subject_region": "KR",
        "data_categories": ["user.name"],
    }
    array = orjson.dumps([call, {"kind": "nope", "event_id": "x", "ts": T0, "platform": "p"}])
    jsonl = orjson.dumps(flow) + b"\n{broken\n"
    return [("api", array), ("egress", jsonl)]


@pytest.fixture(scope="module")
def scenario_run(
    kafka_bootstrap: str, country_db: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[WorkerRun, list[dict[str, Any]], list[dict[str, Any]]]]:
    run = WorkerRun(kafka_bootstrap, country_db, tmp_path_factory.mktemp("worker"))
    run.create_topics({"max.message.bytes": str(4 << 20)})
    run.start()
    try:
        produce_lines(kafka_bootstrap, run.topics, lines())
        p = producer(kafka_bootstrap)
        for which, value in batch_messages():
            p.send(run.topics.api if which == "api" else run.topics.egress, value)
        p.flush()
        p.close()
        expected_total = sum(len(v) for v in EXPECTED_ALERTS.values()) + 3

        def alerts_done(msgs: list[dict[str, Any]]) -> bool:
            got = latest(msgs)
            ours = [a for a in got if a["platform"] != BATCH_PLATFORM]
            return summarize(ours) == EXPECTED_ALERTS and len(got) == expected_total

        alerts = read_topic(kafka_bootstrap, run.topics.alerts, alerts_done)
        dead = read_topic(kafka_bootstrap, run.topics.dead_letters, lambda m: len(m) >= 11)
        assert run.process is not None and run.process.poll() is None, run.failure("worker exited")
        yield run, alerts, dead
    finally:
        run.stop()


def test_scenario_alerts_equal_replay(
    scenario_run: tuple[WorkerRun, list[dict[str, Any]], list[dict[str, Any]]],
) -> None:
    run, alerts, _ = scenario_run
    ours = [a for a in latest(alerts) if a["platform"] != BATCH_PLATFORM]
    assert summarize(ours) == EXPECTED_ALERTS, run.failure("alerts differ from the expected groups")
    # Every alert of a group is emitted under one id; evidence points into the topics.
    nlb = next(
        a for a in ours if a["rule_id"] == "pipa.xborder.no_legal_basis" and a["event_count"] == 2
    )
    for e in nlb["evidence"]:
        assert set(e["source"]) == {"topic", "partition", "offset"}
        assert e["source"]["topic"] == run.topics.api
    assert nlb["geoip_build"] == "2026-06-17"


def test_dead_letters_on_their_topic(
    scenario_run: tuple[WorkerRun, list[dict[str, Any]], list[dict[str, Any]]],
) -> None:
    run, _, dead = scenario_run
    reasons = Counter(d["reason"] for d in dead)
    expected = Counter({r: len(lines_) for r, lines_ in EXPECTED_DEAD_LETTERS.items()})
    # On Kafka the line `[1, 2]` is a batch of two records that are not objects;
    # each batch message of `batch_messages` has one bad record.
    expected.update({"not_an_object": 1, "unknown_kind": 1, "invalid_json": 1})
    assert reasons == expected
    batch_letters = [d for d in dead if "index" in d["source"]]
    assert sorted((d["reason"], d["source"]["index"]) for d in batch_letters) == [
        ("invalid_json", 1),
        ("not_an_object", 0),
        ("not_an_object", 1),
        ("unknown_kind", 1),
    ]
    binary = next(d for d in dead if "raw_base64" in d)
    assert binary["reason"] == "invalid_json" and binary["source"]["topic"] == run.topics.egress


def test_batched_records_are_located_by_index(
    scenario_run: tuple[WorkerRun, list[dict[str, Any]], list[dict[str, Any]]],
) -> None:
    _, alerts, _ = scenario_run
    ours = [a for a in latest(alerts) if a["platform"] == BATCH_PLATFORM]
    got = sorted(
        (a["rule_id"], a["dst_country"], a["evidence"][0]["source"].get("index")) for a in ours
    )
    assert got == [
        ("pipa.xborder.no_legal_basis", "CN", 0),
        ("pipa.xborder.undisclosed_destination", "CN", 0),
        ("pipa.xborder.undisclosed_destination", "SG", 0),
    ]


def test_metrics_endpoint_counts_what_happened(
    scenario_run: tuple[WorkerRun, list[dict[str, Any]], list[dict[str, Any]]],
) -> None:
    run, alerts, dead = scenario_run
    text = run.metrics()
    valid_lines = len(lines()) - sum(len(v) for v in EXPECTED_DEAD_LETTERS.values())
    assert metric_value(text, "xborder_records_in_total") == valid_lines + 2
    assert metric_value(text, "xborder_dead_letters_total") == len(dead)
    assert metric_value(text, "xborder_dead_letters_total", reason="invalid_json") == 3
    new = metric_value(text, "xborder_alerts_total", action="new")
    assert new == len(latest(alerts))
    assert (
        metric_value(
            text,
            "xborder_alerts_total",
            rule_id="pipa.xborder.consent_withdrawn",
            severity="critical",
            action="new",
        )
        == 1
    )
    assert (
        metric_value(
            text,
            "xborder_personal_transfers_total",
            src_country="KR",
            dst_country="CN",
            category="user.contact",
        )
        > 0
    )
    assert metric_value(text, "xborder_processing_seconds_count", stage="ingest") > 0
    assert metric_value(text, "xborder_event_lag_seconds_count") == valid_lines + 2
    build = {"app_id": run.app_id, "build_date": "2026-06-17"}
    assert metric_value(text, "xborder_geoip_build_info", **build) == 1
    # No label carries an address or a subject id, nor a platform the disclosures
    # file does not name (batchmart declared nothing: it is `other`).
    # (The random app id in topic names may spell one of them: it is left out.)
    labels = text.replace(run.app_id, "")
    for personal in ("211.234.", "47.92.", "u-9", "u-11", "240e", BATCH_PLATFORM):
        assert personal not in labels
    assert metric_value(text, "xborder_personal_transfers_total", platform="other") == 2
    # The scenario's bulk transfer: four calls of 60,000 records each, on contract.
    assert metric_value(
        text, "xborder_personal_records_total", platform="shein", legal_basis="contract"
    ) == pytest.approx(240_000)


def test_consumer_lag_falls_to_zero_once_everything_is_processed(
    scenario_run: tuple[WorkerRun, list[dict[str, Any]], list[dict[str, Any]]],
) -> None:
    run, _, _ = scenario_run
    inputs = run.topics.inputs
    deadline = time.monotonic() + 30
    while True:
        text = run.metrics()
        lags = {t: metric_value(text, "xborder_consumer_lag_records", topic=t) for t in inputs}
        exported = {t for t in inputs if f'xborder_consumer_lag_records{{topic="{t}"}}' in text}
        if exported == set(inputs) and not any(lags.values()):
            break
        assert time.monotonic() < deadline, run.failure(f"lag never reached 0: {lags}")
        time.sleep(1)


def test_worker_refuses_to_start_without_a_geoip_database(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    missing = tmp_path / "nowhere" / "country.mmdb"
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "XBORDER_GEOIP_COUNTRY": str(missing),
    }
    done = subprocess.run(
        [sys.executable, "-m", "monitor.cli", "worker"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert str(missing) in done.stderr and "xborder geoip fetch" in done.stderr


def test_alerts_export_matches_replay_format(
    scenario_run: tuple[WorkerRun, list[dict[str, Any]], list[dict[str, Any]]], tmp_path: Path
) -> None:
    run, _, _ = scenario_run
    out = tmp_path / "exported.jsonl"
    env = {**os.environ, "XBORDER_TOPIC_ALERTS": run.topics.alerts}
    done = subprocess.run(
        [sys.executable, "-m", "monitor.cli", "alerts", "export", "--out", str(out),
         "--bootstrap-servers", run.bootstrap, "--idle", "3"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    exported = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    ours = [a for a in exported if a["platform"] != BATCH_PLATFORM]
    assert summarize(ours) == EXPECTED_ALERTS
    assert len({a["alert_id"] for a in exported}) == len(exported)
    assert f"{len(exported)} alerts written" in done.stderr


def test_table_changelogs_are_compacted_topics(
    scenario_run: tuple[WorkerRun, list[dict[str, Any]], list[dict[str, Any]]],
) -> None:
    from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

    from tests.support.broker_fixtures import apache_kafka_selected

    if not apache_kafka_selected():
        pytest.skip("Tansu reports no topic configs")
    run, _, _ = scenario_run
    admin = KafkaAdminClient(bootstrap_servers=run.bootstrap)
    try:
        names = [f"{run.app_id}-{t}-changelog" for t in ("state", "groups")]
        resources = [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
        found = admin.describe_configs(resources, config_filter="all")
    finally:
        admin.close()
    # {resource type: {topic: {config key: config data}}}
    topics = next(iter(found.values()))
    policies = {}
    for name in names:
        entry = topics[name]["cleanup.policy"]
        policies[name] = entry["value"] if isinstance(entry, dict) else entry
    assert policies == dict.fromkeys(names, "compact"), topics
