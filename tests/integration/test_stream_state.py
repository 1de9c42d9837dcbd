"""Stateful detection in the stream: the worker on Apache Kafka finds what replay finds.

One seeded simulated stream (every rule fires, some lines are invalid, some are
re-sent) goes through `xborder replay` and, produced to Kafka by kind, through
`xborder worker` processes:

- one worker: the final alerts and the dead letters equal replay's;
- one worker killed with SIGKILL halfway and restarted on the same app id:
  state comes back from the changelogs, nothing is lost or counted twice, and
  an alert re-emitted after recovery does not restart its count;
- two workers in one consumer group, sharing the partitions: same alerts.

The worker reads three topics of several partitions each, so records arrive
in another order than the file's. Grouping windows are calendar days in
Seoul, laid out on event time, so that order decides no group: alerts are
compared by `alert_id`. The stream starts 150 s before midnight in Seoul, so
most group keys have an alert on each side of it.
"""

from __future__ import annotations

import functools
import signal
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaAdminClient, KafkaConsumer

from monitor.alerts.grouping import iso_ms
from monitor.cli import main as cli
from monitor.config.settings import Topics
from tests.support.scenario import HOUR, T0
from tests.support.simulation import every_rule
from tests.support.worker_harness import WorkerRun, latest, metric_value, producer
from xborder_tools.simulate import SimConfig, SimItem, generate_items

pytestmark = pytest.mark.integration

# Every rule fires with 60 violation episodes per 1000 items; at 10 events/s the
# 3000 items take about 5 minutes, and the last second hops come hours later.
MIDNIGHT = T0 + 15 * HOUR  # 2026-10-02T00:00 in Seoul
CONFIG = SimConfig(
    seed=11,
    count=3000,
    start_ms=MIDNIGHT - 150_000,
    events_per_second=10.0,
    violation_rates=every_rule(60.0),
    invalid_rate=5.0,
    duplicate_rate=10.0,
)
EXPECTED_RULES = {
    "monitor.unresolved_destination",
    "pipa.xborder.adequacy_not_recognised",
    "pipa.xborder.bulk_volume",
    "pipa.xborder.certification_not_in_force",
    "pipa.xborder.consent_withdrawn",
    "pipa.xborder.national_id_abroad",
    "pipa.xborder.no_legal_basis",
    "pipa.xborder.onward_transfer",
    "pipa.xborder.stored_in_watch_country",
    "pipa.xborder.undisclosed_destination",
    "pipa.xborder.undisclosed_recipient",
    # Resident registration numbers sent to SG, an item no platform disclosed
    # for it (the simulator's ALSO_FIRES).
    "pipa.xborder.undisclosed_items",
}
SETTLE_TIMEOUT = 120.0  # seconds to wait for the expected alerts
QUIET_GIVE_UP = 45.0  # give up earlier when nothing new arrived for this long
AFTER_MATCH = 3.0  # keep reading this long after a match, to catch late over-counting

# rule_id, platform, src_country, dst_country, dataset_id, first_seen, last_seen,
# event_count, records, bytes
Content = tuple[Any, ...]
Summary = dict[str, list[Content]]  # alert_id -> the alert's latest content (one: one line)


# --- the stream and its expectation ---------------------------------------------------------


@functools.cache
def stream() -> tuple[SimItem, ...]:
    return tuple(generate_items(CONFIG))


def summarize(alerts: Iterable[dict[str, Any]]) -> Summary:
    """Latest alerts by `alert_id`: what they say that does not depend on arrival order."""
    out: Summary = defaultdict(list)
    for a in alerts:
        out[a["alert_id"]].append(
            (
                a["rule_id"], a["platform"], a["src_country"], a["dst_country"], a["dataset_id"],
                a["first_seen"], a["last_seen"], a["event_count"], a["records"], a["bytes"],
            )
        )  # fmt: skip
    return {k: sorted(v) for k, v in out.items()}


def summary_diff(expected: Summary, got: Summary) -> str:
    lines = []
    for key in sorted(set(expected) | set(got), key=repr):
        want, have = expected.get(key), got.get(key)
        if want != have:
            lines.append(f"  {key}: expected {want}, got {have}")
    return "\n".join(lines) or "  (none)"


@dataclass(frozen=True)
class Expectation:
    alerts: Summary
    dead_letters: Counter[str]
    records: int  # valid records (duplicates included)


@pytest.fixture(scope="module")
def expected(country_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Expectation:
    items = stream()

    folder = tmp_path_factory.mktemp("replay")
    path = folder / "stream.jsonl"
    path.write_bytes(b"".join(i.raw + b"\n" for i in items))
    alerts_out, dead_out = folder / "alerts.jsonl", folder / "dead-letters.jsonl"
    code = cli.main(
        [
            "replay",
            str(path),
            "--geoip-country",
            str(country_db),
            "--alerts-out",
            str(alerts_out),
            "--dead-letters-out",
            str(dead_out),
        ]
    )
    assert code == 0
    alerts = [orjson.loads(line) for line in alerts_out.read_bytes().splitlines()]
    dead = [orjson.loads(line) for line in dead_out.read_bytes().splitlines()]
    assert {a["rule_id"] for a in alerts} == EXPECTED_RULES, "every rule must fire"
    # The stream is meant to exercise dedup and the dead-letter path too.
    assert any(i.label == "duplicate" for i in items) and dead
    summary = summarize(alerts)
    assert all(len(v) == 1 for v in summary.values()), "replay writes one line per alert"
    # Group keys split at midnight in Seoul: some have an alert on each side.
    sides = {v[0][5] >= iso_ms(MIDNIGHT) for v in summary.values()}
    assert sides == {False, True}, "the stream must cross midnight in Seoul"
    assert max(Counter(v[0][:5] for v in summary.values()).values()) > 1
    return Expectation(
        alerts=summary,
        dead_letters=Counter(d["reason"] for d in dead),
        records=sum(1 for i in items if i.valid),
    )


# --- Kafka helpers ------------------------------------------------------------------------------


def produce_items(bootstrap: str, topics: Topics, items: Sequence[SimItem]) -> None:
    """Each item to the topic of its kind, as a platform would publish it (one per message)."""
    by_kind = {"egress": topics.egress, "api_call": topics.api, "consent": topics.consent}
    p = producer(bootstrap)
    for item in items:
        p.send(by_kind[item.kind], item.raw)
    p.flush()
    p.close()


class TopicReader:
    """Every JSON message of a topic, accumulated across polls by one consumer."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.consumer = KafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=None,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            fetch_max_wait_ms=100,
        )
        self.messages: list[dict[str, Any]] = []

    def poll(self, timeout: float = 0.2) -> int:
        """Read what is there now; how many new messages."""
        new = 0
        while True:
            batches = self.consumer.poll(timeout_ms=int(timeout * 1000), max_records=1000)
            got = [orjson.loads(m.value) for records in batches.values() for m in records]
            if not got:
                return new
            self.messages.extend(got)
            new += len(got)
            timeout = 0.05

    def close(self) -> None:
        self.consumer.close()


@dataclass
class Outputs:
    alerts: TopicReader
    dead_letters: TopicReader

    @classmethod
    def of(cls, bootstrap: str, topics: Topics) -> Outputs:
        return cls(
            TopicReader(bootstrap, topics.alerts), TopicReader(bootstrap, topics.dead_letters)
        )

    def poll(self) -> int:
        return self.alerts.poll() + self.dead_letters.poll()

    def summary(self) -> Summary:
        return summarize(latest(self.alerts.messages))

    def dead_letter_reasons(self, unique: bool = False) -> Counter[str]:
        """Reasons of the dead letters; with `unique`, one per source record."""
        if not unique:
            return Counter(d["reason"] for d in self.dead_letters.messages)
        by_source = {
            orjson.dumps(d["source"], option=orjson.OPT_SORT_KEYS): d["reason"]
            for d in self.dead_letters.messages
        }
        return Counter(by_source.values())

    def close(self) -> None:
        self.alerts.close()
        self.dead_letters.close()


def settle(out: Outputs, expected: Expectation, unique_dead_letters: bool = False) -> float:
    """Read until the latest alerts and the dead letters match, or time runs out; seconds taken."""
    started = last_new = time.monotonic()
    while time.monotonic() - started < SETTLE_TIMEOUT:
        if out.poll():
            last_new = time.monotonic()
        matched = out.summary() == expected.alerts and (
            out.dead_letter_reasons(unique_dead_letters) == expected.dead_letters
        )
        if matched:
            took = time.monotonic() - started
            end = time.monotonic() + AFTER_MATCH
            while time.monotonic() < end:
                out.poll()
            return took
        if out.alerts.messages and time.monotonic() - last_new > QUIET_GIVE_UP:
            break
    return time.monotonic() - started


def report(
    runs: Sequence[WorkerRun], out: Outputs, expected: Expectation, what: str, unique: bool = False
) -> str:
    got_dead = out.dead_letter_reasons(unique)
    text = (
        f"{what}\n"
        f"alerts: {len(latest(out.alerts.messages))} latest of {len(out.alerts.messages)} "
        f"emissions; {len(expected.alerts)} groups expected\n"
        f"differences (key: expected, got):\n{summary_diff(expected.alerts, out.summary())}\n"
        f"dead letters: expected {dict(expected.dead_letters)}, got {dict(got_dead)}"
    )
    return "\n".join([text, *(log_excerpt(run) for run in runs)])


_LOG_NOISE = ("producer buffer full", "producer flush took")


def log_excerpt(run: WorkerRun, lines: int = 40) -> str:
    """The worker's warnings and errors, and its last lines, without per-flush chatter."""
    if not run.log_path.is_file():
        return run.failure(f"worker {run.app_id}")
    text = run.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
    kept = [line for line in text if not any(n in line for n in _LOG_NOISE)]
    problems = [line for line in kept if "[ERROR]" in line or "[WARNING]" in line]
    return (
        f"--- worker {run.app_id} log ({run.log_path}), warnings and errors:\n"
        + "\n".join(problems[-lines:])
        + "\n--- last lines:\n"
        + "\n".join(kept[-lines:])
    )


def emission_conflicts(alerts: Iterable[dict[str, Any]]) -> list[str]:
    """Re-emissions that disagree with an earlier emission of the same alert and revision.

    Consumers keep the highest revision of an alert and take re-emissions as
    idempotent, so one (alert_id, revision) must always carry the same counts,
    and a higher revision never carries fewer events.
    """
    seen: dict[tuple[str, int], set[tuple[Any, ...]]] = defaultdict(set)
    for a in alerts:
        seen[(a["alert_id"], a["revision"])].add(
            (a["first_seen"], a["last_seen"], a["event_count"], a["records"], a["bytes"])
        )
    problems = [
        f"{alert_id[:12]} revision {rev}: {sorted(versions)}"
        for (alert_id, rev), versions in sorted(seen.items())
        if len(versions) > 1
    ]
    by_id: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for (alert_id, rev), versions in seen.items():
        by_id[alert_id].extend((rev, v[2]) for v in versions)
    for alert_id, revs in sorted(by_id.items()):
        counts = [n for _, n in sorted(revs)]
        if counts != sorted(counts):
            problems.append(f"{alert_id[:12]} event_count goes down with revision: {sorted(revs)}")
    return problems


def first_emission_conflicts(alerts: Iterable[dict[str, Any]]) -> list[str]:
    """alert_ids whose revision-1 emissions differ (a recovery that restarted the count)."""
    firsts: dict[str, set[tuple[Any, ...]]] = defaultdict(set)
    for a in alerts:
        if a["revision"] == 1:
            firsts[a["alert_id"]].add((a["first_seen"], a["event_count"]))
    return [f"{k[:12]}: {sorted(v)}" for k, v in sorted(firsts.items()) if len(v) > 1]


def group_members(bootstrap: str, group: str) -> tuple[str, int]:
    """(state, number of members) of a consumer group."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="xborder-test-admin")
    try:
        info = admin.describe_groups([group])[group]
    finally:
        admin.close()
    return str(info.get("group_state") or info.get("state")), len(info.get("members") or ())


def alive(run: WorkerRun) -> bool:
    return run.process is not None and run.process.poll() is None


# --- the tests ----------------------------------------------------------------------------------


@pytest.mark.timeout(240)
def test_worker_alerts_equal_replay(
    kafka_bootstrap: str, country_db: Path, tmp_path: Path, expected: Expectation
) -> None:
    run = WorkerRun(kafka_bootstrap, country_db, tmp_path / "w")
    run.create_topics()
    out = Outputs.of(kafka_bootstrap, run.topics)
    run.start()
    try:
        produce_items(kafka_bootstrap, run.topics, stream())
        took = settle(out, expected)
        assert alive(run), report([run], out, expected, "the worker exited")
        assert out.summary() == expected.alerts, report(
            [run], out, expected, f"alerts differ from replay after {took:.0f}s"
        )
        assert out.dead_letter_reasons() == expected.dead_letters, report(
            [run], out, expected, "dead letters differ from replay"
        )
        assert not emission_conflicts(out.alerts.messages), emission_conflicts(out.alerts.messages)
        assert metric_value(run.metrics(), "xborder_records_in_total") == expected.records
    finally:
        out.close()
        run.stop()


@pytest.mark.timeout(240)
def test_worker_killed_halfway_recovers_without_loss_or_double_count(
    kafka_bootstrap: str, country_db: Path, tmp_path: Path, expected: Expectation
) -> None:
    items = stream()
    half = len(items) // 2
    run = WorkerRun(kafka_bootstrap, country_db, tmp_path / "w")
    run.create_topics()
    out = Outputs.of(kafka_bootstrap, run.topics)
    run.start()
    try:
        produce_items(kafka_bootstrap, run.topics, items[:half])
        deadline = time.monotonic() + 60
        while len(out.alerts.messages) < 10 and time.monotonic() < deadline:
            out.poll()
        assert len(out.alerts.messages) >= 10, report([run], out, expected, "no alerts before kill")
        assert alive(run), report([run], out, expected, "the worker exited before the kill")
        run.stop(signal.SIGKILL)
        before_kill = len(out.alerts.messages)

        produce_items(kafka_bootstrap, run.topics, items[half:])
        run.start()  # same app id, topics and state dir: recovers from the changelogs
        took = settle(out, expected, unique_dead_letters=True)
        what = f"after SIGKILL ({before_kill} emissions before) and restart, {took:.0f}s"
        assert alive(run), report([run], out, expected, f"the restarted worker exited; {what}")
        assert out.summary() == expected.alerts, report(
            [run], out, expected, f"alerts differ from replay {what}", unique=True
        )
        assert out.dead_letter_reasons(unique=True) == expected.dead_letters, report(
            [run], out, expected, f"dead letters differ {what}", unique=True
        )
        restarted = first_emission_conflicts(out.alerts.messages)
        assert not restarted, report(
            [run], out, expected, "revision 1 emitted twice, differently:\n" + "\n".join(restarted)
        )
        conflicts = emission_conflicts(out.alerts.messages)
        assert not conflicts, report(
            [run], out, expected, "re-emissions that disagree:\n" + "\n".join(conflicts)
        )
    finally:
        out.close()
        run.stop()


@pytest.mark.timeout(240)
def test_two_workers_share_the_partitions_and_equal_replay(
    kafka_bootstrap: str, country_db: Path, tmp_path: Path, expected: Expectation
) -> None:
    first = WorkerRun(kafka_bootstrap, country_db, tmp_path / "a")
    second = WorkerRun(kafka_bootstrap, country_db, tmp_path / "b", app_id=first.app_id)
    runs = [first, second]
    first.create_topics()  # 4 partitions of every input, before either worker starts
    out = Outputs.of(kafka_bootstrap, first.topics)
    for run in runs:
        run.start()
    try:
        # Both in the group before any record, so that both get records to process.
        deadline = time.monotonic() + 60
        state, members = "", 0
        while time.monotonic() < deadline:
            state, members = group_members(kafka_bootstrap, first.app_id)
            if (state, members) == ("Stable", 2):
                break
            time.sleep(0.5)
        assert (state, members) == ("Stable", 2), report(
            runs, out, expected, f"group never stable with two members: {state}, {members}"
        )
        produce_items(kafka_bootstrap, first.topics, stream())
        took = settle(out, expected)
        assert all(alive(run) for run in runs), report(runs, out, expected, "a worker exited")
        assert out.summary() == expected.alerts, report(
            runs, out, expected, f"alerts of two workers differ from replay after {took:.0f}s"
        )
        assert out.dead_letter_reasons() == expected.dead_letters, report(
            runs, out, expected, "dead letters differ from replay"
        )
        conflicts = emission_conflicts(out.alerts.messages)
        assert not conflicts, report(
            runs, out, expected, "re-emissions that disagree:\n" + "\n".join(conflicts)
        )
        counted = [metric_value(run.metrics(), "xborder_records_in_total") for run in runs]
        assert all(n > 0 for n in counted), report(
            runs, out, expected, f"records per worker: {counted}"
        )
        assert sum(counted) >= expected.records, report(
            runs, out, expected, f"records per worker: {counted}"
        )
    finally:
        out.close()
        for run in runs:
            run.stop()
