"""Topics of other formats on a real broker: the worker reads them as replay reads the files.

Each public sample file (tests/data/{vpc-flow,zeek-conn,ocsf}) is produced as
one message of its format's topic (a message is read as its own file); the
flows are attributed by a service registry, as an operator would run it.
The worker's alerts, dead letters and skips must be replay's of the same files.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from monitor.kafka_admin import create_topics
from tests.support.geoip_build import TEST_NETWORKS, build_country_db
from tests.support.replay import run_replay
from tests.support.worker_harness import WorkerRun, latest, metric_value, producer, read_topic

pytestmark = pytest.mark.integration

DATA = Path(__file__).resolve().parents[1] / "data"
FILES = {
    "vpc-flow": sorted((DATA / "vpc-flow").glob("*.log")),
    "zeek-conn": sorted((DATA / "zeek-conn").glob("*.log"))
    + sorted((DATA / "zeek-conn").glob("*.ndjson")),
    "ocsf": sorted((DATA / "ocsf").glob("*.jsonl")),
}
# Every flow is acme's, of Korean users' e-mail addresses: what the
# inventory of a platform that captured them would say.
SERVICES = """\
- name: acme-everything
  match:
    src_cidrs: [0.0.0.0/0, "::/0"]
  platform: acme
  subject_region: KR
  data_categories: [user.contact.email]
"""
# The samples' receivers, beside the test networks.
NETWORKS = {
    **TEST_NETWORKS,
    "8.8.8.0/24": "US",
    "52.213.0.0/16": "IE",
    "198.71.247.0/24": "US",
    "20.190.128.0/18": "US",
}
# The CloudTrail sample's service, in its region.
ENDPOINTS = "- suffix: .us-west-2.amazonaws.com\n  country: US\n"


def summary(alerts: list[dict[str, Any]]) -> set[tuple[Any, ...]]:
    return {
        (a["alert_id"], a["rule_id"], a["platform"], a.get("dst_country"), a["event_count"])
        for a in alerts
    }


@pytest.fixture(scope="module")
def formats_run(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[WorkerRun, dict[str, Any]]]:
    work = tmp_path_factory.mktemp("formats")
    geoip = build_country_db(work / "country.mmdb", NETWORKS)
    services, endpoints = work / "services.yaml", work / "endpoints.yaml"
    services.write_text(SERVICES)
    endpoints.write_text(ENDPOINTS)
    config = ("--services", str(services), "--endpoints", str(endpoints))
    files = [path for paths in FILES.values() for path in paths]
    code, expected_alerts, expected_dead = run_replay(work, files, geoip, *config)
    assert code == 0 and expected_alerts

    run = WorkerRun(kafka_bootstrap, geoip, work)
    topic = {fmt: f"{run.app_id}.{fmt}" for fmt in FILES}
    run.extra_env.update(
        XBORDER_INPUT_FORMATS=",".join(f"{t}={fmt}" for fmt, t in topic.items()),
        XBORDER_SERVICES=str(services),
        XBORDER_ENDPOINTS=str(endpoints),
    )
    run.create_topics()
    create_topics(kafka_bootstrap, list(topic.values()), run.partitions)
    run.start()
    try:
        p = producer(kafka_bootstrap)
        for fmt, paths in FILES.items():
            for path in paths:
                p.send(topic[fmt], path.read_bytes())
        p.flush()
        p.close()
        want = summary(expected_alerts)
        alerts = read_topic(
            kafka_bootstrap, run.topics.alerts, lambda m: summary(latest(m)) >= want
        )
        dead = read_topic(
            kafka_bootstrap, run.topics.dead_letters, lambda m: len(m) >= len(expected_dead)
        )
        assert run.process is not None and run.process.poll() is None, run.failure("worker exited")
        yield (
            run,
            {
                "topics": topic,
                "alerts": alerts,
                "dead": dead,
                "expected_alerts": expected_alerts,
                "expected_dead": expected_dead,
                "metrics": run.metrics(),
            },
        )
    finally:
        run.stop()


def test_worker_alerts_equal_replay_of_the_same_files(
    formats_run: tuple[WorkerRun, dict[str, Any]],
) -> None:
    run, got = formats_run
    alerts = latest(got["alerts"])
    assert summary(alerts) == summary(got["expected_alerts"]), run.failure("alerts differ")
    # Every format reached a rule; a record is located by its line's index in the message.
    sources = [e["source"] for a in alerts for e in a["evidence"]]
    assert {s["topic"] for s in sources} == set(got["topics"].values())
    assert all("index" in s for s in sources if s["topic"] == got["topics"]["vpc-flow"])


def test_worker_dead_letters_and_skips_equal_replay(
    formats_run: tuple[WorkerRun, dict[str, Any]],
) -> None:
    run, got = formats_run
    reasons = Counter(d["reason"] for d in got["dead"])
    assert reasons == Counter(d["reason"] for d in got["expected_dead"]), run.failure("dead")
    vpc = b"".join(path.read_bytes() for path in FILES["vpc-flow"])
    for status in ("NODATA", "SKIPDATA", "REJECT"):
        counted = metric_value(
            got["metrics"], "xborder_lines_skipped_total", format="vpc-flow", reason=status
        )
        assert counted == vpc.count(status.encode()), status
