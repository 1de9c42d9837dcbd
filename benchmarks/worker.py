"""Worker figures on a real Apache Kafka (one KRaft node from Maven Central jars): prints, asserts nothing.

    .venv/bin/python -m benchmarks.worker [--records 50000] [--kills 3]
    .venv/bin/python -m benchmarks.worker --only kill --kills 100 --kill-after 1
    .venv/bin/python -m benchmarks.worker --only kill --kills 8 --load 2 --guarantee at_least_once

- throughput: simulated telemetry (batches of 100 records per message) through
  one worker, records per second, for each processing guarantee: ingest (every
  record decoded, resolved and evaluated) and end to end (every internal
  message, committed, also through the state and group agents);
- latency: one record at a time, each opening a new alert: time from the
  producer's send to the alert on the alerts topic, p50 / p99;
- kill -9: the hand-written scenario, the worker SIGKILLed halfway (once it
  has emitted `--kill-after` alerts) and restarted, repeated; how often the
  final alerts equal the uninterrupted run, and how many emissions a
  read-committed consumer sees twice. `--load N` keeps N busy processes
  running through the series: crash windows open wider on a loaded machine.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
from kafka import KafkaConsumer

from tests.support.geoip_build import TEST_NETWORKS, build_country_db
from tests.support.kafka_apache import ApacheKafka, kafka_version
from tests.support.scenario import EXPECTED_ALERTS, lines, summarize
from tests.support.worker_harness import WorkerRun, latest, metric_value, produce_lines, producer
from xborder_tools.simulate import SimConfig, generate_items

GUARANTEES = ("at_least_once", "exactly_once")


def wait_ready(run: WorkerRun, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            run.metrics()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(run.failure("worker did not start"))


class InternalCount:
    """Committed messages of the worker's internal topics, as a read-committed consumer counts them."""

    def __init__(self, bootstrap: str, app_id: str) -> None:
        self.consumer = KafkaConsumer(
            f"{app_id}-state",
            f"{app_id}-hits",
            bootstrap_servers=bootstrap,
            group_id=None,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            isolation_level="read_committed",
            fetch_max_wait_ms=50,
        )
        self.count = 0

    def poll(self) -> int:
        batches = self.consumer.poll(timeout_ms=50, max_records=100_000)
        self.count += sum(len(records) for records in batches.values())
        return self.count


def throughput(bootstrap: str, db: Path, work: Path, guarantee: str, n: int) -> tuple[float, float]:
    """Records per second: (ingest, end to end)."""
    run = WorkerRun(bootstrap, db, work, extra_env={"XBORDER_PROCESSING_GUARANTEE": guarantee})
    run.create_topics()
    items = [
        i
        for i in generate_items(
            SimConfig(seed=3, count=n, start_ms=1790812800000, invalid_rate=0, duplicate_rate=0)
        )
        if i.record is not None
    ]
    by_topic: dict[str, list[bytes]] = {}
    topics = {
        "egress": run.topics.egress,
        "api_call": run.topics.api,
        "consent": run.topics.consent,
    }
    for item in items:
        by_topic.setdefault(topics[item.kind], []).append(item.raw)
    run.start()
    try:
        wait_ready(run)
        time.sleep(8)  # group join and recovery
        internal = InternalCount(bootstrap, run.app_id)
        p = producer(bootstrap)
        started = time.monotonic()
        for topic, raws in by_topic.items():
            for i in range(0, len(raws), 100):
                p.send(topic, b"[" + b",".join(raws[i : i + 100]) + b"]")
        p.flush()
        ingested = done = None
        while done is None or time.monotonic() - done < 1.0:
            text, sent = run.metrics(), internal.poll()
            now = time.monotonic()
            if ingested is None and metric_value(text, "xborder_records_in_total") >= len(items):
                ingested = now
            consumed = metric_value(text, "xborder_processing_seconds_count", stage="state")
            consumed += metric_value(text, "xborder_processing_seconds_count", stage="group")
            # Done once every internal message is consumed, and stays so for a second
            # (a message in flight is neither counted nor consumed yet).
            if ingested is None or consumed != sent:
                done = None
            elif done is None:
                done = now
            time.sleep(0.05)
        internal.consumer.close()
        assert ingested is not None and done is not None
        return len(items) / (ingested - started), len(items) / (done - started)
    finally:
        run.stop()


def latency(bootstrap: str, db: Path, work: Path, samples: int) -> list[float]:
    run = WorkerRun(bootstrap, db, work, extra_env={"XBORDER_ALERT_UPDATE_INTERVAL": "0"})
    run.create_topics()
    run.start()
    consumer = KafkaConsumer(
        run.topics.alerts,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="latest",
        fetch_max_wait_ms=5,
    )
    consumer.poll(timeout_ms=1000)
    p = producer(bootstrap)
    out: list[float] = []
    try:
        wait_ready(run)
        time.sleep(8)
        for i in range(samples):
            rec = {
                "kind": "api_call", "event_id": f"l{i}", "ts": int(time.time() * 1000),
                "platform": f"lat-{uuid.uuid4().hex[:8]}", "operation": "x", "endpoint": "a.example",
                "dst_ip": "47.92.1.1", "src_country": "KR", "subject_region": "KR",
                "data_categories": ["user.name"],
            }  # fmt: skip
            sent = time.monotonic()
            p.send(run.topics.api, orjson.dumps(rec))
            p.flush()
            got = False
            while not got and time.monotonic() - sent < 10:
                for records in consumer.poll(timeout_ms=50).values():
                    got = got or any(
                        orjson.loads(r.value)["platform"] == rec["platform"] for r in records
                    )
            out.append(time.monotonic() - sent)
    finally:
        consumer.close()
        run.stop()
    return out


def dump_topics(bootstrap: str, run: WorkerRun, dest: Path) -> None:
    """Every topic of a run, message by message, and the group's committed offsets: to find a loss."""
    from kafka import KafkaAdminClient, TopicPartition

    dest.mkdir(parents=True, exist_ok=True)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        names = [t for t in admin.list_topics() if t.startswith(run.app_id)]
        committed = admin.list_group_offsets(run.app_id).get(run.app_id, {})
    finally:
        admin.close()
    (dest / "committed.txt").write_text(
        "".join(f"{tp.topic} {tp.partition} {om.offset}\n" for tp, om in sorted(committed.items()))
    )
    for name in names:
        consumer = KafkaConsumer(bootstrap_servers=bootstrap, consumer_timeout_ms=2000)
        tps = [TopicPartition(name, p) for p in consumer.partitions_for_topic(name) or ()]
        consumer.assign(tps)
        consumer.seek_to_beginning()
        with (dest / f"{name}.txt").open("w") as out:
            for m in consumer:
                value = m.value[:2000].decode(errors="replace") if m.value else None
                out.write(f"{m.partition} {m.offset} {m.key!r} {value}\n")
        consumer.close()
    if run.process is not None and run.process.poll() is None:
        # The worker logs where its consumer stands (assignment, paused
        # partitions, positions) on SIGUSR2.
        run.process.send_signal(signal.SIGUSR2)
        time.sleep(2)
    if run.log_path.exists():
        (dest / "worker.log").write_bytes(run.log_path.read_bytes())


def kill_run(
    bootstrap: str,
    db: Path,
    work: Path,
    guarantee: str,
    kill_after: int = 3,
    dump: Path | None = None,
    log_level: str = "info",
) -> tuple[bool, int]:
    env = {
        "XBORDER_PROCESSING_GUARANTEE": guarantee,
        "XBORDER_ALERT_UPDATE_INTERVAL": "0",
        "XBORDER_LOG_LEVEL": log_level,
    }
    run = WorkerRun(bootstrap, db, work, extra_env=env)
    run.create_topics({"max.message.bytes": str(4 << 20)})
    data = lines()
    consumer = KafkaConsumer(
        run.topics.alerts,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        consumer_timeout_ms=500,
    )
    alerts: list[dict[str, Any]] = []
    run.start()
    try:
        produce_lines(bootstrap, run.topics, data[: len(data) // 2])
        deadline = time.monotonic() + 60
        while len(alerts) < kill_after and time.monotonic() < deadline:
            alerts.extend(orjson.loads(m.value) for m in consumer)
        run.stop(signal.SIGKILL)
        produce_lines(bootstrap, run.topics, data[len(data) // 2 :])
        run.start()
        deadline = time.monotonic() + 180  # a loaded machine catches up slowly
        while summarize(latest(alerts)) != EXPECTED_ALERTS and time.monotonic() < deadline:
            alerts.extend(orjson.loads(m.value) for m in consumer)
        got = summarize(latest(alerts))
        for key in sorted(set(got) | set(EXPECTED_ALERTS), key=repr):
            if got.get(key) != EXPECTED_ALERTS.get(key):
                print(f"  differs: {key}: expected {EXPECTED_ALERTS.get(key)}, got {got.get(key)}")
        if got != EXPECTED_ALERTS and dump is not None:
            try:
                dump_topics(bootstrap, run, dump / run.app_id)
                print(f"  topics dumped to {dump / run.app_id}")
            except Exception as e:  # a diagnostic: the series goes on
                print(f"  could not dump the topics: {e!r}")
    finally:
        consumer.close()
        run.stop()
    twice = sum(
        1 for n in Counter((a["alert_id"], a["revision"]) for a in alerts).values() if n > 1
    )
    return summarize(latest(alerts)) == EXPECTED_ALERTS, twice


@contextlib.contextmanager
def cpu_load(processes: int) -> Iterator[None]:
    """`processes` busy loops for as long as the block runs."""
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(processes)]
    try:
        yield
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--kill-after", type=int, default=3, help="alerts seen before the kill")
    parser.add_argument("--only", choices=("all", "kill"), default="all")
    parser.add_argument("--load", type=int, default=0, help="busy processes during the kills")
    parser.add_argument(
        "--guarantee", choices=("at_least_once", "exactly_once"), help="kill series of one only"
    )
    parser.add_argument("--dump", type=Path, help="folder for the topics of a run that differs")
    parser.add_argument("--log-level", default="info", help="the killed worker's (debug: Faust's)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        db = work / "country.mmdb"
        build_country_db(db, TEST_NETWORKS)
        with ApacheKafka(log_path=work / "kafka.log") as kafka:
            print(f"Apache Kafka {kafka_version()}, one worker, 4 partitions, 2 cores")
            for guarantee in ("at_least_once", "exactly_once") if args.only == "all" else ():
                ingest, end = throughput(kafka.bootstrap, db, work, guarantee, args.records)
                print(
                    f"throughput {guarantee:<14} ingest {ingest:7.0f} records/s, "
                    f"end to end {end:7.0f} records/s ({args.records} simulated)"
                )
            if args.only == "all":
                lat = sorted(latency(kafka.bootstrap, db, work, args.samples))
                p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
                print(
                    f"latency    send -> alert     p50 {statistics.median(lat) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms ({len(lat)} alerts)"
                )
            for guarantee in [args.guarantee] if args.guarantee else GUARANTEES:
                with cpu_load(args.load):
                    results = [
                        kill_run(
                            kafka.bootstrap,
                            db,
                            work,
                            guarantee,
                            args.kill_after,
                            args.dump,
                            args.log_level,
                        )
                        for _ in range(args.kills)
                    ]
                same = sum(ok for ok, _ in results)
                twice = sum(t for _, t in results)
                print(
                    f"kill -9    {guarantee:<14} final alerts equal in {same}/{len(results)} runs; emissions seen twice: {twice}"
                    f" (busy processes: {args.load})"
                )


if __name__ == "__main__":
    main()
