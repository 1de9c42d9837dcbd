"""The Faust worker: an app factory, its topics and tables, and three thin agents.

    telemetry.* --ingest--> <app>-state (by state key) --state--> <app>-hits
                       \\-----------------------------------------> <app>-hits (by group key)
                        \\--> monitor.dead-letters          <app>-hits --group--> monitor.alerts

Every agent body only moves batches between topics and calls a function of
`monitor.stages`; tables back the `Store`/`SeenStore` interfaces that replay
backs with dicts, so the logic is one implementation.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import faust
import orjson
from prometheus_client import CollectorRegistry, start_http_server

from agents import transport
from monitor.alerts import AlertContext, AlertGrouper
from monitor.metrics import Metrics
from monitor.runtime import Runtime, load_runtime
from monitor.settings import Settings
from monitor.stages import apply_routed, group_hits, ingest

__all__ = ["TableSeen", "TableStore", "Worker", "create_app", "run_worker"]

log = logging.getLogger("xborder.worker")


class TableStore:
    """`Store` over a Faust table (values JSON-ready dicts)."""

    def __init__(self, table: Any) -> None:
        self.table = table

    def get(self, key: str, default: Any = None) -> Any:
        return self.table.get(key, default)

    def __setitem__(self, key: str, value: Any) -> None:
        self.table[key] = value


class TableSeen:
    """`SeenStore` over a Faust table, one entry per (scope, id)."""

    def __init__(self, table: Any) -> None:
        self.table = table

    @staticmethod
    def _key(scope: str, item: int) -> str:
        return f"{scope}#{item:016x}"

    def contains(self, scope: str, item: int) -> bool:
        return self._key(scope, item) in self.table

    def add(self, scope: str, item: int) -> None:
        self.table[self._key(scope, item)] = 1

    def drop(self, scope: str) -> None:
        prefix = f"{scope}#"
        for key in [k for k in self.table if k.startswith(prefix)]:
            del self.table[key]


@dataclass
class Worker:
    """The app and what tests and operators reach into: its topics and tables."""

    app: faust.App
    runtime: Runtime
    metrics: Metrics
    topics: dict[str, Any]
    tables: dict[str, Any]


def _batches(payload: bytes) -> Iterator[dict[str, Any]]:
    items = orjson.loads(payload)
    yield from items


def create_app(settings: Settings, runtime: Runtime, metrics: Metrics) -> Worker:
    """Build a worker app. Tests build their own; nothing is global."""
    scheme = transport.register(settings.fetch_max_wait_ms)
    app = faust.App(
        settings.app_id,
        broker=f"{scheme}://{settings.bootstrap}",
        store="memory://",
        value_serializer="raw",
        key_serializer="raw",
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication,
        processing_guarantee=settings.processing_guarantee,
        web_enabled=False,
        broker_session_timeout=settings.session_timeout,
        broker_heartbeat_interval=min(3.0, settings.session_timeout / 3),
        broker_commit_interval=1.0,
        producer_linger_ms=1,
        stream_wait_empty=False,
        consumer_auto_offset_reset="earliest",
        table_cleanup_interval=60.0,
        datadir=str(settings.state_dir) if settings.state_dir else None,
        autodiscover=False,
    )
    topics = settings.topics
    n = settings.partitions
    inputs = app.topic(*topics.inputs, value_serializer="raw")
    dead_letters = app.topic(topics.dead_letters, value_serializer="raw")
    alerts = app.topic(topics.alerts, value_serializer="raw")
    state_topic = app.topic(f"{settings.app_id}-state", partitions=n, internal=True)
    hits_topic = app.topic(f"{settings.app_id}-hits", partitions=n, internal=True)

    def table(name: str) -> Any:
        # JSON keys: a raw key would come back from the changelog as bytes.
        schema: Any = faust.Schema(key_serializer="json", value_serializer="json")
        return app.Table(name, default=None, partitions=n, schema=schema)

    state_table, groups_table, seen_table = table("state"), table("groups"), table("seen")

    pack = runtime.pack
    resolver = runtime.resolver()
    context = AlertContext(pack.version, resolver.geoip_build)
    grouper = AlertGrouper(pack, TableStore(groups_table), TableSeen(seen_table))
    state_store, seen_store = TableStore(state_table), TableSeen(seen_table)
    metrics.rules_info.labels(pack.version).set(1)
    if resolver.geoip_build:
        metrics.geoip_build.labels(resolver.geoip_build).set(1)

    async def send_batches(topic: Any, batches: dict[int, list[Any]]) -> None:
        for partition, items in batches.items():
            if items:
                await topic.send(value=orjson.dumps(items), partition=partition)

    @app.agent(inputs, name="ingest")
    async def ingest_agent(stream: Any) -> None:
        async for events in stream.take_events(settings.batch_size, within=settings.batch_timeout):
            started = time.perf_counter()
            messages = []
            for ev in events:
                m = ev.message
                metrics.messages_in.labels(m.topic).inc()
                source = {"topic": m.topic, "partition": m.partition, "offset": m.offset}
                messages.append((ev.value, source))
            out = ingest(messages, pack, resolver, n, metrics)
            for letter in out.dead_letters:
                await dead_letters.send(value=orjson.dumps(letter))
            await send_batches(hits_topic, out.hits)
            await send_batches(state_topic, out.routed)
            metrics.processing.labels("ingest").observe(time.perf_counter() - started)

    @app.agent(state_topic, name="state")
    async def state_agent(stream: faust.StreamT[bytes]) -> None:
        # One message is one partition's batch: table writes land in that
        # partition's changelog, where recovery expects them.
        async for payload in stream:
            started = time.perf_counter()
            hits = apply_routed(_batches(payload), pack, state_store, seen_store, n)
            await send_batches(hits_topic, hits)
            metrics.processing.labels("state").observe(time.perf_counter() - started)

    @app.agent(hits_topic, name="group")
    async def group_agent(stream: faust.StreamT[bytes]) -> None:
        async for payload in stream:
            started = time.perf_counter()
            for emission in group_hits(_batches(payload), pack, grouper, context):
                await alerts.send(
                    key=emission.alert_id.encode(), value=orjson.dumps(emission.alert)
                )
                action = "new" if emission.is_new else "update"
                metrics.alerts.labels(emission.rule_id, emission.severity, action).inc()
            metrics.processing.labels("group").observe(time.perf_counter() - started)

    # Topics the worker writes but does not read must exist too.
    async def declare_outputs() -> None:
        for topic in (dead_letters, alerts):
            await topic.maybe_declare()

    app.task(declare_outputs)

    return Worker(
        app,
        runtime,
        metrics,
        topics={
            "inputs": inputs,
            "dead_letters": dead_letters,
            "alerts": alerts,
            "state": state_topic,
            "hits": hits_topic,
        },
        tables={"state": state_table, "groups": groups_table, "seen": seen_table},
    )


def run_worker(settings: Settings) -> int:
    """`xborder worker`: load everything (failing fast), serve metrics, run until stopped."""
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    runtime = load_runtime(settings)
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    start_http_server(settings.metrics_port, addr=settings.metrics_host, registry=registry)
    log.info(
        "metrics on http://%s:%d/metrics; rules %s; geoip %s",
        settings.metrics_host,
        settings.metrics_port,
        runtime.pack.version,
        runtime.resolver().geoip_build,
    )
    worker = create_app(settings, runtime, metrics)
    # faust.Worker handles SIGINT/SIGTERM itself: it stops agents, flushes the
    # producer and commits what was processed before exiting.
    fw = faust.Worker(worker.app, loglevel=settings.log_level.upper(), quiet=True)
    try:
        fw.execute_from_commandline()
    finally:
        runtime.close()
    return 0
