"""`make bench`: the data path side by side with the consume limit and Quix Streams, in one run.

    .venv/bin/python -m benchmarks.bench [--records 1000000] [--shapes 100,1]

One Apache Kafka (KRaft, jars from Maven Central), the project's simulator
(seeded, with its default rates of invalid and duplicate records), both
input shapes (records per message: 100 as JSON arrays, and 1). For each
shape, the same preloaded topics are read by:

  (a) limit   aiokafka consuming every message and `orjson.loads` of it;
  (b) worker  `xborder worker` (default pack, GeoIP, metrics, alerts, dead
              letters), end to end: every record ingested and every message
              of its internal topics consumed;
  (c) quix    the same job in Quix Streams (`benchmarks/quix_job.py`): the
              project's own core per message, state in Quix State after
              `group_by` repartitioning, alerts to a topic;
  (d) replay  `xborder replay` of the same records from a file.

Rates exclude start-up (reported apart: process start to first record).
CPU is the process's user+system time over the measured span, per record.
Then, at half the worker's measured rate of one-record messages, p50/p99
from sending a record to its alert; and two workers in one group against
one. Figures go to `--out` as JSON, a markdown table and a PNG chart. This
prints figures and asserts nothing: speed is never a test.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import orjson

from monitor.config.settings import Settings, Topics
from monitor.kafka_admin import create_topics
from tests.support.geoip_build import TEST_NETWORKS, build_country_db
from tests.support.kafka_apache import ApacheKafka, kafka_version
from tests.support.worker_harness import WorkerRun, metric_value
from xborder_tools.simulate import SimConfig, generate_items

PARTITIONS = 4
# The worker harness of the tests sweeps state and re-emits alerts far more
# often than a deployment; the benchmark runs the defaults.
PRODUCTION = {
    "XBORDER_SWEEP_INTERVAL": str(Settings().sweep_interval),
    "XBORDER_ALERT_UPDATE_INTERVAL": str(Settings().alert_update_interval),
    "XBORDER_SESSION_TIMEOUT": str(Settings().session_timeout),
    "XBORDER_STATE_GRACE": str(Settings().state_grace),
}
START_MS = 1_790_812_800_000
KIND_TOPIC = {"egress": "egress", "api_call": "api", "consent": "consent"}


@dataclasses.dataclass
class Figure:
    path: str  # limit | worker | quix | replay | worker x2
    shape: int  # records per message (0: a file)
    records: int
    seconds: float
    cpu_seconds: float
    startup: float | None = None

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0

    @property
    def cpu_us(self) -> float:
        return self.cpu_seconds / self.records * 1e6 if self.records else 0.0


def cpu_of(pid: int) -> float:
    """User + system CPU seconds of a process (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def simulated(n: int) -> tuple[list[tuple[str, bytes]], int]:
    """(kind, raw) of n simulated items in stream order; and how many are valid records.

    Invalid items keep the kind they were broken from, hence the topic they
    travel on; invalid JSON is marked with kind "alone": inside a JSON array
    it would spoil the whole message, so producers send it on its own.
    """
    items = list(generate_items(SimConfig(seed=11, count=n, start_ms=START_MS)))
    valid = sum(1 for i in items if i.reason is None)
    return [
        (
            "alone" if i.reason == "invalid_json" else i.kind if i.kind in KIND_TOPIC else "egress",
            i.raw,
        )
        for i in items
    ], valid


def topics_for(prefix: str) -> Topics:
    # Short names: Quix Streams names its internal topics after every input.
    return Topics(
        egress=f"{prefix}.egress",
        api=f"{prefix}.api",
        consent=f"{prefix}.consent",
        alerts=f"{prefix}.alerts",
        dead_letters=f"{prefix}.dead-letters",
    )


def worker_env(topics: Topics) -> dict[str, str]:
    """A benchmarked worker's settings: these topics, production defaults, quiet logs."""
    return {
        **PRODUCTION,
        "XBORDER_TOPIC_EGRESS": topics.egress,
        "XBORDER_TOPIC_API": topics.api,
        "XBORDER_TOPIC_CONSENT": topics.consent,
        "XBORDER_TOPIC_ALERTS": topics.alerts,
        "XBORDER_TOPIC_DEAD_LETTERS": topics.dead_letters,
        "XBORDER_LOG_LEVEL": "warning",
    }


def preload(bootstrap: str, topics: Topics, items: list[tuple[str, bytes]], shape: int) -> int:
    """Write the items to their kind's topic, `shape` per message; the number of messages."""
    from confluent_kafka import Producer

    create_topics(bootstrap, [*topics.inputs, topics.alerts, topics.dead_letters], PARTITIONS)
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "message.max.bytes": 4 << 20})
    by_topic: dict[str, list[bytes]] = {}
    alone: list[bytes] = []
    for kind, raw in items:
        if kind == "alone":
            alone.append(raw)
        else:
            by_topic.setdefault(getattr(topics, KIND_TOPIC[kind]), []).append(raw)
    messages = 0
    for raw in alone:
        p.produce(topics.egress, raw)
        messages += 1
    for topic, raws in by_topic.items():
        for i in range(0, len(raws), shape):
            part = raws[i : i + shape]
            value = part[0] if shape == 1 else b"[" + b",".join(part) + b"]"
            while True:
                try:
                    p.produce(topic, value)
                    break
                except BufferError:
                    p.poll(0.05)
            messages += 1
            if messages % 10_000 == 0:
                p.poll(0)
    p.flush()
    return messages


def limit(bootstrap: str, topics: Topics, messages: int, shape: int) -> Figure:
    """(a) aiokafka reading every message from the beginning, each value through orjson."""
    from aiokafka import AIOKafkaConsumer

    async def run() -> tuple[int, float, float]:
        consumer = AIOKafkaConsumer(
            *topics.inputs,
            bootstrap_servers=bootstrap,
            group_id=f"limit-{uuid.uuid4().hex[:8]}",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            max_partition_fetch_bytes=8 << 20,
            fetch_max_bytes=64 << 20,
        )
        await consumer.start()
        seen = records = 0
        started = cpu = 0.0
        try:
            while seen < messages:
                batches = await consumer.getmany(timeout_ms=1000, max_records=50_000)
                if batches and not started:
                    started, cpu = time.perf_counter(), time.process_time()
                for batch in batches.values():
                    for m in batch:
                        try:
                            value = orjson.loads(m.value)
                        except orjson.JSONDecodeError:
                            value = None
                        records += len(value) if isinstance(value, list) else 1
                    seen += len(batch)
            return records, time.perf_counter() - started, time.process_time() - cpu
        finally:
            await consumer.stop()

    records, seconds, cpu = asyncio.run(run())
    return Figure("limit", shape, records, seconds, cpu)


class InternalCount:
    """Messages written to the worker's internal topics, and whether its group has read them all."""

    def __init__(self, bootstrap: str, app_id: str, inputs: tuple[str, ...]) -> None:
        from kafka import KafkaConsumer, TopicPartition

        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
        # Reads the worker group's committed offsets; never joins the group.
        self.group = KafkaConsumer(
            bootstrap_servers=bootstrap, group_id=app_id, enable_auto_commit=False
        )
        self.tps = [
            TopicPartition(f"{app_id}-{name}", p)
            for name in ("state", "hits")
            for p in range(PARTITIONS)
        ]
        self.inputs = [TopicPartition(t, p) for t in inputs for p in range(PARTITIONS)]

    def written(self) -> int:
        try:
            return sum(self.consumer.end_offsets(self.tps).values())
        except Exception:  # topics not created yet
            return -1

    def all_committed(self) -> bool:
        """The group committed every internal message (with two workers, some are read twice
        across a rebalance, so counting what each consumed cannot say)."""
        try:
            ends = self.consumer.end_offsets(self.tps + self.inputs)
            return all((self.group.committed(tp) or 0) >= end for tp, end in ends.items())
        except Exception:
            return False

    def close(self) -> None:
        self.consumer.close()
        self.group.close()


def worker(
    bootstrap: str,
    db: Path,
    work: Path,
    topics: Topics,
    total: int,
    shape: int,
    processes: int = 1,
    label: str = "worker",
    items: list[tuple[str, bytes]] | None = None,
) -> Figure:
    """(b) end to end: every item ingested (record or dead letter), every internal message consumed.

    With `items`, the topics start empty and the items are written once the
    workers have settled into one group: with several workers starting
    together, reading preloaded topics would measure their rebalances.
    """
    app_id = f"xb-{uuid.uuid4().hex[:8]}"
    env = worker_env(topics)
    runs = [
        WorkerRun(bootstrap, db, work / f"{app_id}-{i}", app_id, PARTITIONS, env)
        for i in range(processes)
    ]
    # Created before anything asks for their offsets: a metadata request for a
    # missing topic has the broker create it with one partition.
    create_topics(bootstrap, [f"{app_id}-state", f"{app_id}-hits"], PARTITIONS)
    launched = time.perf_counter()
    for run in runs:
        run.start()
    internal = InternalCount(bootstrap, app_id, topics.inputs)
    if items is not None:
        _settle(bootstrap, topics, runs)
        preload(bootstrap, topics, items, shape)
    first = cpu_first = None
    try:
        while True:
            texts = [_metrics(run) for run in runs]
            now = time.perf_counter()
            seen = sum(
                metric_value(t, "xborder_records_in_total")
                + metric_value(t, "xborder_dead_letters_total")
                for t in texts
            )
            if first is None and seen > 0:
                first = now
                cpu_first = sum(cpu_of(r.process.pid) for r in runs if r.process)
            consumed = sum(
                metric_value(t, "xborder_processing_seconds_count", stage=stage)
                for t in texts
                for stage in ("state", "group")
            )
            settled = consumed == internal.written() if processes == 1 else internal.all_committed()
            if seen >= total and settled:
                if os.environ.get("XB_BENCH_DEBUG"):
                    for stage in ("ingest", "state", "group"):
                        busy = sum(
                            metric_value(t, "xborder_processing_seconds_sum", stage=stage)
                            for t in texts
                        )
                        print(f"  {stage}: {busy:.2f} s busy", file=sys.stderr)
                end = now
                cpu_end = sum(cpu_of(r.process.pid) for r in runs if r.process)
                break
            if any(r.process and r.process.poll() is not None for r in runs):
                raise RuntimeError(runs[0].failure("worker exited"))
            time.sleep(0.2)  # scraping costs the worker CPU too
        assert first is not None and cpu_first is not None
        # Start-up is only meaningful when the workers start on waiting records.
        startup = first - launched if items is None else None
        return Figure(label, shape, total, end - first, cpu_end - cpu_first, startup)
    finally:
        internal.close()
        for run in runs:
            run.stop()


def _settle(bootstrap: str, topics: Topics, runs: list[WorkerRun], quiet: float = 10.0) -> None:
    """Until every worker has ingested a warm-up record and no rebalance happened for a while."""
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap})
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        for partition in range(PARTITIONS):
            p.produce(topics.api, _probe(f"warm-{uuid.uuid4().hex[:6]}"), partition=partition)
        p.flush()
        time.sleep(1)
        if all(metric_value(_metrics(r), "xborder_records_in_total") > 0 for r in runs):
            break
    time.sleep(quiet)


def _metrics(run: WorkerRun) -> str:
    try:
        return run.metrics()
    except OSError:
        return ""


def quix(bootstrap: str, db: Path, work: Path, topics: Topics, total: int, shape: int) -> Figure:
    """(c) the Quix Streams job, in its own process, timed like the worker."""
    status = work / f"quix-{uuid.uuid4().hex[:8]}.json"
    launched = time.perf_counter()
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "benchmarks.quix_job", "--bootstrap", bootstrap,
            "--geoip", str(db), "--prefix", topics.egress.rsplit(".", 1)[0],
            "--total", str(total), "--status", str(status), "--state-dir", str(work / "quix"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=(work / "quix.log").open("ab"),
    )  # fmt: skip
    first = cpu_first = None
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"quix job exited {proc.returncode}; see {work / 'quix.log'}")
            got = _status(status)
            now = time.perf_counter()
            if first is None and got.get("seen", 0) > 0:
                first, cpu_first = now, cpu_of(proc.pid)
            if got.get("done"):
                end, cpu_end = now, cpu_of(proc.pid)
                break
            time.sleep(0.05)
        assert first is not None and cpu_first is not None
        return Figure("quix", shape, total, end - first, cpu_end - cpu_first, first - launched)
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def _status(path: Path) -> dict[str, Any]:
    try:
        got: dict[str, Any] = json.loads(path.read_text())
        return got
    except (OSError, ValueError):
        return {}


def replay(db: Path, work: Path, items: list[tuple[str, bytes]], valid: int) -> Figure:
    """(d) `xborder replay` of the same records from a JSON Lines file."""
    path = work / "replay.jsonl"
    path.write_bytes(b"".join(raw + b"\n" for _, raw in items))
    out = subprocess.run(
        [
            sys.executable, "-c",
            "import resource, sys; from monitor.cli.main import main; code = main(sys.argv[1:]);"
            " u = resource.getrusage(resource.RUSAGE_SELF);"
            " print(f'cpu {u.ru_utime + u.ru_stime}', file=sys.stderr); sys.exit(code)",
            "replay", str(path), "--geoip-country", str(db),
            "--alerts-out", str(work / "replay-alerts.jsonl"),
            "--dead-letters-out", str(work / "replay-dead.jsonl"),
        ],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    seconds = float(out.stdout.split(" in ", 1)[1].split("s", 1)[0])
    cpu = float(out.stderr.rsplit("cpu ", 1)[1])
    return Figure("replay", 0, len(items), seconds, cpu)


def latency(
    bootstrap: str, db: Path, work: Path, rate: float, seconds: float = 20.0, warmup: float = 10.0
) -> tuple[float, float, int]:
    """p50, p99 (seconds) from send to alert of probe records, under load at `rate` records/s.

    Probes start after `warmup` seconds of the paced load: a worker just
    started falls behind for its first seconds (caches cold, first fetches)
    and catches up; that backlog is start-up, reported apart, and made the
    first hundred probes wait 1 to 2 s.
    """
    from confluent_kafka import Consumer, Producer

    prefix = f"lat-{uuid.uuid4().hex[:6]}"
    topics = topics_for(prefix)
    create_topics(bootstrap, [*topics.inputs, topics.alerts, topics.dead_letters], PARTITIONS)
    run = WorkerRun(bootstrap, db, work, partitions=PARTITIONS, extra_env=worker_env(topics))
    run.start()
    # Lawful background traffic at the paced rate, event time now.
    background, _ = simulated(int(rate * (seconds + warmup)) + 1000)
    sent_at: dict[str, float] = {}
    got_at: dict[str, float] = {}
    stop = threading.Event()

    def collect() -> None:
        c = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"{prefix}-probe",
                "auto.offset.reset": "earliest",
                "fetch.wait.max.ms": 5,
            }
        )
        c.subscribe([topics.alerts])
        while not stop.is_set():
            m = c.poll(0.05)
            if m is None or m.error():
                continue
            alert = orjson.loads(m.value())
            for e in alert.get("evidence", ()):
                if e["event_id"] in sent_at and e["event_id"] not in got_at:
                    got_at[e["event_id"]] = time.perf_counter()
        c.close()

    collector = threading.Thread(target=collect, daemon=True)
    collector.start()
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 1})
    try:
        deadline = time.monotonic() + 90
        while "xborder_records_in" not in _metrics(run) and time.monotonic() < deadline:
            time.sleep(0.2)
        _wait_joined(p, topics, run)
        started = time.perf_counter()
        i = probes = 0
        while time.perf_counter() - started < seconds + warmup:
            elapsed = time.perf_counter() - started
            due = int(elapsed * rate)
            while i < min(due, len(background)):
                kind, raw = background[i]
                p.produce(getattr(topics, KIND_TOPIC.get(kind, "egress")), raw)
                i += 1
            if elapsed > warmup and (elapsed - warmup) * 20 > probes:
                event_id = f"probe-{probes}"
                p.produce(topics.api, _probe(event_id))
                sent_at[event_id] = time.perf_counter()
                probes += 1
            p.poll(0)
            time.sleep(0.001)
        p.flush()
        time.sleep(3)
    finally:
        stop.set()
        collector.join(5)
        run.stop()
    waits = sorted(got_at[k] - sent_at[k] for k in got_at)
    if not waits:
        return float("nan"), float("nan"), 0
    p99 = waits[min(len(waits) - 1, int(len(waits) * 0.99))]
    return statistics.median(waits), p99, len(waits)


def _probe(event_id: str) -> bytes:
    """A call storing personal data in China with no legal basis: a new alert of its own."""
    return orjson.dumps(
        {
            "kind": "api_call", "event_id": event_id, "ts": int(time.time() * 1000),
            "platform": f"probe-{uuid.uuid4().hex[:8]}", "operation": "x",
            "endpoint": "https://probe.example/x", "dst_ip": "47.92.1.1", "src_country": "KR",
            "subject_region": "KR", "data_categories": ["user.name"],
        }
    )  # fmt: skip


def _wait_joined(p: Any, topics: Topics, run: WorkerRun, timeout: float = 90.0) -> None:
    """Until the worker has ingested a warm-up record (group joined, partitions assigned)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        p.produce(topics.api, _probe(f"warm-{uuid.uuid4().hex[:6]}"))
        p.flush()
        if metric_value(_metrics(run), "xborder_records_in_total") > 0:
            return
        time.sleep(0.5)
    raise RuntimeError(run.failure("worker did not start consuming"))


def table(figures: list[Figure], extra: dict[str, Any]) -> str:
    rows = [
        "| path | records per message | records/s | CPU us/record | start-up s | vs limit | vs quix |",
        "|---|---|---|---|---|---|---|",
    ]
    by = {(f.path, f.shape): f for f in figures}
    for f in figures:
        a = by.get(("limit", f.shape))
        c = by.get(("quix", f.shape))
        shape = "file" if f.path == "replay" else str(f.shape)
        rows.append(
            f"| {f.path} | {shape} | {f.rate:,.0f} | {f.cpu_us:.1f} | "
            f"{'' if f.startup is None else f'{f.startup:.1f}'} | "
            f"{'' if a is None or f.path == 'limit' else f'{f.rate / a.rate:.3f}'} | "
            f"{'' if c is None or f.path != 'worker' else f'{f.rate / c.rate:.2f}'} |"
        )
    lines = ["\n".join(rows), ""]
    for k, v in extra.items():
        lines.append(f"- {k}: {v}")
    return "\n".join(lines)


def chart(figures: list[Figure], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{f.path}\n{'file' if f.path == 'replay' else f'{f.shape}/msg'}" for f in figures]
    fig, ax = plt.subplots(figsize=(max(6, len(figures) * 1.1), 4))
    ax.bar(labels, [f.rate for f in figures], color="#4878a8")
    ax.set_yscale("log")
    ax.set_ylabel("records per second (log)")
    ax.set_title("xborder-monitor data path, one run on one Apache Kafka")
    for i, f in enumerate(figures):
        ax.text(i, f.rate, f"{f.rate:,.0f}", ha="center", va="bottom", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--shapes", default="100,1", help="records per message, comma-separated")
    parser.add_argument("--skip", default="", help="paths to leave out: quix,latency,scale")
    parser.add_argument(
        "--quix-records",
        type=int,
        default=100_000,
        help="items Quix Streams is timed on, from the start of the same topics (it runs "
        "about 1,000 one-record messages per second: 1M would take a quarter of an hour)",
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    shapes = [int(s) for s in args.shapes.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    figures: list[Figure] = []
    extra: dict[str, Any] = {}

    def note(figure: Figure) -> None:
        figures.append(figure)
        print(
            f"{figure.path:<10} {figure.shape:>3}/msg {figure.rate:>10,.0f} records/s "
            f"{figure.cpu_us:6.1f} us/record"
            + ("" if figure.startup is None else f"  start-up {figure.startup:.1f} s"),
            flush=True,
        )

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        db = work / "country.mmdb"
        build_country_db(db, TEST_NETWORKS)
        items, valid = simulated(args.records)
        print(
            f"Apache Kafka {kafka_version()}, {PARTITIONS} partitions, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}; {len(items):,} simulated items "
            f"({valid:,} valid)",
            flush=True,
        )
        with ApacheKafka(log_path=work / "kafka.log", heap="1g") as kafka:
            for shape in shapes:
                topics = topics_for(f"b{shape}-{uuid.uuid4().hex[:6]}")
                messages = preload(kafka.bootstrap, topics, items, shape)
                note(limit(kafka.bootstrap, topics, messages, shape))
                note(worker(kafka.bootstrap, db, work, topics, len(items), shape))
                if "quix" not in skip:
                    n = min(args.quix_records, len(items))
                    note(quix(kafka.bootstrap, db, work, topics, n, shape))
                if "scale" not in skip and shape == shapes[0]:
                    # Both on topics written after the workers settled.
                    fresh = [topics_for(f"s{n}-{uuid.uuid4().hex[:6]}") for n in (1, 2)]
                    for t in fresh:
                        create_topics(
                            kafka.bootstrap, [*t.inputs, t.alerts, t.dead_letters], PARTITIONS
                        )
                    total = len(items) + PARTITIONS  # and a warm-up record per partition
                    one = worker(
                        kafka.bootstrap, db, work, fresh[0], total, shape, 1, "worker x1", items
                    )
                    two = worker(
                        kafka.bootstrap, db, work, fresh[1], total, shape, 2, "worker x2", items
                    )
                    note(one)
                    note(two)
                    extra[f"two workers vs one ({shape}/msg)"] = f"{two.rate / one.rate:.2f}x"
            note(replay(db, work, items, valid))
            if "latency" not in skip:
                single = [f for f in figures if f.path == "worker" and f.shape == min(shapes)]
                rate = single[0].rate / 2 if single else 1000.0
                p50, p99, n = latency(kafka.bootstrap, db, work, rate)
                extra["send -> alert at half load"] = (
                    f"p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms "
                    f"({n} probe alerts over 20 s after 10 s of warm-up, "
                    f"background {rate:,.0f} records/s)"
                )
                print(f"latency    {extra['send -> alert at half load']}", flush=True)
    md = table(figures, extra)
    print()
    print(md)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    result = {
        "when": stamp,
        "records": len(items),
        "valid": valid,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "figures": [dataclasses.asdict(f) | {"rate": f.rate, "cpu_us": f.cpu_us} for f in figures],
        "notes": extra,
    }
    (args.out / "bench.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "bench.md").write_text(f"Run {stamp}\n\n{md}\n")
    chart(figures, args.out / "bench.png")
    print(f"\nwritten: {args.out}/bench.json, bench.md, bench.png")


if __name__ == "__main__":
    main()
