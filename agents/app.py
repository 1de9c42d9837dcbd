"""The Faust worker: an app factory, its topics and tables, and three thin agents.

    telemetry.* --ingest--> <app>-state (by state key) --state--> <app>-hits
                       \\-----------------------------------------> <app>-hits (by group key)
                        \\--> monitor.dead-letters          <app>-hits --group--> monitor.alerts

Every agent body only moves batches between topics and calls a function of
`monitor.detect.stages`; tables back the `Store`/`SeenStore` interfaces that replay
backs with dicts, so the logic is one implementation.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from collections import Counter
from collections.abc import Collection, Iterator
from collections.abc import Set as AbstractSet
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faust
import orjson
from prometheus_client import CollectorRegistry, start_http_server

from agents import transport
from agents.transport import Chunk, holding_changelogs, outputs_of, send_held, send_rows
from monitor.alerts.grouping import AlertContext, AlertGrouper, build_alert, iso_ms
from monitor.config.runtime import Runtime, load_runtime
from monitor.config.settings import Settings
from monitor.contract.dead_letters import dead_letter_json
from monitor.contract.schemas import Source
from monitor.detect.expiry import expire_groups, expire_seen, expire_state, horizon
from monitor.detect.local import PROCESSING_ERROR
from monitor.detect.stages import (
    Emission,
    Failures,
    UpdateLimiter,
    apply_routed,
    group_hits,
    ingest,
    item_time,
    partition_for,
)
from monitor.engine.state import owner_of
from monitor.metrics import Metrics

__all__ = ["TableSeen", "TableStore", "Worker", "create_app", "run_worker"]

log = logging.getLogger("xborder.worker")


class TableStore:
    """`Store` over a Faust table (values JSON-ready dicts).

    `direct`: a write goes to the table's store and to `rows`, whose
    changelog messages the agent sends itself in batches (`send_rows`);
    Faust's own write builds and buffers a message per write, the largest
    cost of the state stage. Not under exactly-once, where a write must
    join the transaction.
    """

    def __init__(self, table: Any, direct: bool = False) -> None:
        self.table = table
        self.direct = direct
        self.rows: list[tuple[str, Any]] = []

    def get(self, key: str, default: Any = None) -> Any:
        return self.table.get(key, default)

    def __setitem__(self, key: str, value: Any) -> None:
        if self.direct:
            self.table.data[key] = value
            self.rows.append((key, value))
        else:
            self.table[key] = value

    def take_rows(self) -> list[tuple[str, Any]]:
        rows, self.rows = self.rows, []
        return rows


SEEN_PREFIX = "seen:"


def seen_scope(key: str) -> str:
    """The scope of a seen entry's key (`seen:<scope>#<segment>`)."""
    return key[len(SEEN_PREFIX) :].rsplit("#", 1)[0]


def seen_owner(key: str) -> str:
    """The state key that owns a seen entry (for its partition)."""
    return owner_of(seen_scope(key))


class TableSeen:
    """`SeenStore` in the same Faust table as the state it guards: append-only segments.

    Each `add_many` writes one entry, `seen:<scope>#<n>` valued
    `{"expires": ms, "ids": [...]}`, the scope's next segment: a window that
    counts a batch of records costs one changelog write, not one per record.
    Segments never change once written, so a per-scope set of their ids is
    kept in memory and extended by probing the table for further segments
    (written by this process, or restored from the changelog after a
    rebalance). Same table, so the same changelog partition: the state value
    and then its segment are written in order (see AlertGrouper._save).
    Segments are dropped by the sweep once their scope has closed
    (`monitor.detect.expiry.expire_seen`), and the scope's cached set with them.
    """

    MAX_SEGMENT = 20_000  # ids per entry: well under Kafka's default 1 MB message

    def __init__(self, table: Any) -> None:
        self.table = table
        self._known: dict[str, tuple[int, set[int]]] = {}

    @staticmethod
    def _key(scope: str, segment: int) -> str:
        return f"{SEEN_PREFIX}{scope}#{segment}"

    def _load(self, scope: str) -> tuple[int, set[int]]:
        count, ids = self._known.get(scope) or (0, set())
        while True:
            value = self.table.get(self._key(scope, count))
            if value is None:
                break
            ids.update(value["ids"])
            count += 1
        if count:
            # A scope without segments is not cached: no sweep would ever
            # find an entry of it to free the cache by.
            self._known[scope] = (count, ids)
        return count, ids

    def members(self, scope: str) -> AbstractSet[int]:
        return self._load(scope)[1]

    def add_many(self, scope: str, items: Collection[int], expires: int) -> None:
        if not items:
            return
        count, ids = self._load(scope)
        batch = list(items)
        for start in range(0, len(batch), self.MAX_SEGMENT):
            part = batch[start : start + self.MAX_SEGMENT]
            self.table[self._key(scope, count)] = {"expires": expires, "ids": part}
            count += 1
        ids.update(batch)
        self._known[scope] = (count, ids)

    def drop(self, scope: str) -> None:
        """Forget the scope's ids here; the sweep removes its entries when they expire."""
        self._known.pop(scope, None)

    def forget(self) -> None:
        """Drop every cached set (partitions moved: the table is the truth)."""
        self._known.clear()


@dataclass
class Worker:
    """The app and what tests and operators reach into: its topics and tables."""

    app: faust.App
    runtime: Runtime
    metrics: Metrics
    topics: dict[str, Any]
    tables: dict[str, Any]


# Internal batch messages stay well under Kafka's default 1 MB message limit.
MAX_BATCH_BYTES = 512 * 1024


def chunk_json(items: list[Any], limit: int = MAX_BATCH_BYTES) -> Iterator[bytes]:
    """JSON arrays of the items, each at most `limit` bytes (unless one item alone is larger)."""
    parts: list[bytes] = []
    size = 2
    for item in items:
        part = orjson.dumps(item)
        if parts and size + len(part) + 1 > limit:
            yield b"[" + b",".join(parts) + b"]"
            parts, size = [], 2
        parts.append(part)
        size += len(part) + 1
    if parts:
        yield b"[" + b",".join(parts) + b"]"


def source_of(message: Any) -> Source:
    """Where an internal message is: the source of dead letters that name no record."""
    return {"topic": message.topic, "partition": message.partition, "offset": message.offset}


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
    transport.BATCHED_TOPICS.update(topics.inputs)
    dead_letters = app.topic(topics.dead_letters, value_serializer="raw")
    alerts = app.topic(topics.alerts, value_serializer="raw")
    state_topic = app.topic(f"{settings.app_id}-state", partitions=n, internal=True)
    hits_topic = app.topic(f"{settings.app_id}-hits", partitions=n, internal=True)

    def table(name: str) -> Any:
        # JSON keys: a raw key would come back from the changelog as bytes.
        schema: Any = faust.Schema(key_serializer="json", value_serializer="json")
        return app.Table(name, default=None, partitions=n, schema=schema)

    state_table, groups_table = table("state"), table("groups")
    state_changelog = state_table.changelog_topic.get_topic_name()

    pack = runtime.pack
    resolver = runtime.resolver()
    context = AlertContext(pack.version, resolver.geoip_build)
    groups_seen = TableSeen(groups_table)
    grouper = AlertGrouper(pack, TableStore(groups_table), groups_seen)
    state_store = TableStore(state_table, direct=settings.processing_guarantee != "exactly_once")
    state_seen = TableSeen(state_store)

    def forget_seen(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        # Partitions moved: tables may have changed without this process.
        state_seen.forget()
        groups_seen.forget()

    app.on_partitions_assigned.connect(forget_seen)
    app.on_partitions_revoked.connect(forget_seen)
    grace_ms = int(settings.state_grace * 1000)
    skew_ms = int(settings.max_clock_skew * 1000)
    metrics.rules_info.labels(pack.version).set(1)
    if resolver.geoip_build:
        metrics.geoip_build.labels(resolver.geoip_build).set(1)

    async def send_batches(topic: Any, batches: dict[int, list[Any]]) -> list[Any]:
        """Send the batches; the futures of their delivery."""
        return [
            await topic.send(value=chunk, partition=partition)
            for partition, items in batches.items()
            for chunk in chunk_json(items)
        ]

    @app.agent(inputs, name="ingest")
    async def ingest_agent(stream: Any) -> None:
        async for events in stream.take_events(settings.batch_size, within=settings.batch_timeout):
            started = time.perf_counter()
            for tp, part in by_source(events):
                with outputs_of(tp) if tp is not None else nullcontext():
                    await ingest_events(part)
            metrics.processing.labels("ingest").observe(time.perf_counter() - started)

    def by_source(events: list[Any]) -> Iterator[tuple[Any, list[Any]]]:
        # Under exactly_once each record's outputs must ride the transaction
        # of the partition it was read from, so a batch is split by source.
        if settings.processing_guarantee != "exactly_once":
            yield None, events
            return
        parts: dict[Any, list[Any]] = {}
        for ev in events:
            parts.setdefault(ev.message.tp, []).append(ev)
        yield from parts.items()

    async def ingest_events(events: list[Any]) -> None:
        messages = []
        counts: Counter[str] = Counter()
        for ev in events:
            # A run of a partition's records arrives as one event (transport.Chunk).
            value = ev.value
            for m in value.messages if isinstance(value, Chunk) else (ev.message,):
                counts[m.topic] += 1
                source = {"topic": m.topic, "partition": m.partition, "offset": m.offset}
                messages.append((m.value, source))
        for topic, count in counts.items():
            metrics.messages_in.labels(topic).inc(count)
        out = ingest(
            messages,
            pack,
            resolver,
            n,
            metrics,
            max_skew_ms=skew_ms,
            mask_dead_letters=settings.dead_letter_mask,
        )
        for letter in out.dead_letters:
            await dead_letters.send(value=orjson.dumps(letter))
        await send_batches(hits_topic, out.hits)
        await send_batches(state_topic, out.routed)

    # Stream time per (agent, partition), as Kafka Streams keeps it per task:
    # a far-ahead record in one partition must not expire state in another
    # (whether it did would depend on how partitions interleave).
    watermarks: dict[tuple[str, int], int] = {}

    def advance(name: str, partition: int, items: list[Any]) -> None:
        key = (name, partition)
        watermarks[key] = max([watermarks.get(key, 0), *map(item_time, items)])

    last_sweep: dict[tuple[str, int], float] = {}
    limiter = UpdateLimiter(settings.alert_update_interval)
    scanned: set[int] = set()

    def local(table: Any, partition: int) -> tuple[list[tuple[str, Any]], list[tuple[str, Any]]]:
        """This partition's (state entries, seen entries) of a table."""
        state, seen = [], []
        for k, v in list(table.items()):
            if k.startswith(SEEN_PREFIX):
                if partition_for(seen_owner(k), n) == partition:
                    seen.append((k, v))
            elif partition_for(k, n) == partition:
                state.append((k, v))
        return state, seen

    def horizon_of(name: str, partition: int) -> int:
        return horizon(watermarks.get((name, partition), 0), grace_ms)

    def sweep_due(name: str, partition: int) -> bool:
        now = time.monotonic()
        if now - last_sweep.get((name, partition), 0.0) < settings.sweep_interval:
            return False
        last_sweep[(name, partition)] = now
        return True

    def apply_sweep(table: Any, updates: dict[str, Any], deletes: list[str]) -> None:
        # Runs inside the stream, on a message of the swept partition, so the
        # changelog records the change in the partition that owns the keys.
        for key, value in updates.items():
            table[key] = value
        for key in deletes:
            del table[key]

    @app.agent(state_topic, name="state")
    async def state_agent(stream: Any) -> None:
        # One message is one partition's batch: table writes land in that
        # partition's changelog, where recovery expects them.
        async for event in stream.events():
            started = time.perf_counter()
            items = list(_batches(event.value))
            advance("state", event.message.partition, items)
            # Under at-least-once, hits and changelog are independent sends; a
            # crash could save state without its hits, and the redelivered
            # record, then a duplicate, would emit nothing: the hits lost for
            # good. So the changelog goes out once the hits are on the broker.
            # State behind its hits is redone on redelivery; hits are idempotent.
            partition = event.message.partition
            failures = Failures(source_of(event.message))
            with holding_changelogs(app.producer) as changelog:
                hits = apply_routed(items, pack, state_store, state_seen, n, failures)
            rows = state_store.take_rows()
            await send_failures("state", failures)
            await asyncio.gather(*await send_batches(hits_topic, hits))
            await send_held(app.producer, changelog)
            await send_rows(app.producer, state_changelog, partition, rows)
            if sweep_due("state", partition):
                entries, seen = local(state_table, partition)
                expired = expire_state(entries, pack, horizon_of("state", partition))
                apply_sweep(state_table, expired.updates, expired.deletes)
                closed = expire_seen(seen, horizon_of("state", partition))
                apply_sweep(state_table, {}, closed)
                for key in closed:
                    state_seen.drop(seen_scope(key))
            metrics.processing.labels("state").observe(time.perf_counter() - started)

    async def send_failures(stage: str, failures: Failures) -> None:
        """Dead letters of items a stage raised on; the stream goes on without them."""
        if not failures.letters:
            return
        received_at = iso_ms(int(time.time() * 1000))
        for letter in failures.letters:
            value = dead_letter_json(letter, received_at, settings.dead_letter_mask)
            await dead_letters.send(value=orjson.dumps(value))
        metrics.dead_letters.labels(PROCESSING_ERROR).inc(len(failures.letters))
        metrics.processing_errors.labels(stage).inc(len(failures.letters))

    async def emit(emission: Emission) -> Any:
        """Send an alert; returns the future of its delivery."""
        delivery = await alerts.send(
            key=emission.alert_id.encode(), value=orjson.dumps(emission.alert)
        )
        action = "new" if emission.is_new else "update"
        metrics.alerts.labels(emission.rule_id, emission.severity, action).inc()
        return delivery

    def mark_emitted(key: str, alert_id: str) -> None:
        value = groups_table.get(key)
        for g in value["groups"] if value else ():
            if g["alert_id"] == alert_id and g.get("emitted_rev") != g["revision"]:
                g["emitted_rev"] = g["revision"]
                groups_table[key] = value

    @app.agent(hits_topic, name="group")
    async def group_agent(stream: Any) -> None:
        async for event in stream.events():
            started = time.perf_counter()
            hits = list(_batches(event.value))
            advance("group", event.message.partition, hits)
            now = time.time()
            sent = []
            failures = Failures(source_of(event.message))
            emissions = group_hits(hits, pack, grouper, context, now, failures)
            await send_failures("group", failures)
            for emission in emissions:
                if limiter.admit(emission.alert_id, emission.group_key, emission.is_new, now):
                    sent.append((emission, await emit(emission)))
            if sent:
                # A group is marked emitted only once its alert is on the
                # broker: the table's changelog and the alert are separate
                # writes, and after a crash between them an alert marked
                # emitted but never delivered would be lost for good.
                await asyncio.gather(*(delivery for _, delivery in sent))
                for emission, _ in sent:
                    mark_emitted(emission.group_key, emission.alert_id)
            partition = event.message.partition
            if partition not in scanned:
                # After a restart: updates that were held back and never sent.
                scanned.add(partition)
                for key, value in local(groups_table, partition)[0]:
                    for g in value["groups"]:
                        if g.get("emitted_rev") != g["revision"]:
                            limiter.hold(g["alert_id"], key)
            if sweep_due("groups", partition):
                entries, seen = local(groups_table, partition)
                expired = expire_groups(entries, pack, horizon_of("group", partition))
                apply_sweep(groups_table, expired.updates, expired.deletes)
                closed = expire_seen(seen, horizon_of("group", partition))
                apply_sweep(groups_table, {}, closed)
                for key in closed:
                    groups_seen.drop(seen_scope(key))
                metrics.open_groups.set(
                    sum(
                        len(v["groups"])
                        for k, v in groups_table.items()
                        if not k.startswith(SEEN_PREFIX)
                    )
                )
            metrics.processing.labels("group").observe(time.perf_counter() - started)

    async def flush_held_updates() -> None:
        now = time.time()
        for alert_id, key in limiter.due(now):
            value = groups_table.get(key)
            group = next(
                (g for g in (value or {}).get("groups", ()) if g["alert_id"] == alert_id), None
            )
            if group is None:
                continue  # expired meanwhile
            rule = pack.by_id[group["rule"]]
            alert = build_alert(rule, group, context, int(now * 1000))
            await emit(Emission(alert_id, alert, False, rule.id, rule.severity, key))

    app.timer(1.0)(flush_held_updates)

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
        tables={"state": state_table, "groups": groups_table},
    )


def ensure_topics(settings: Settings) -> None:
    """Create missing topics before Faust subscribes.

    Faust creates its internal topics while it starts; a subscription can win
    that race ("Ignoring missing topic") and then the agent never receives a
    message. Telemetry topics that a producer auto-created with another
    partition count would also crash the co-partitioned tables, so the worker
    creates every topic it uses with the configured partitions. Existing
    topics are left as they are.
    """
    from monitor.kafka_admin import create_topics

    t = settings.topics
    internal = [f"{settings.app_id}-state", f"{settings.app_id}-hits"]
    names = [*t.inputs, t.alerts, t.dead_letters, *internal]
    create_topics(settings.bootstrap, names, settings.partitions, replication=settings.replication)


def _flow_state(app: Any) -> str:
    """Where Faust's consumer stands: the first thing to read when a worker stalls."""
    consumer = app.consumer
    try:
        assigned = sorted(f"{tp.topic}:{tp.partition}" for tp in consumer.assignment())
    except Exception as exc:  # not started yet
        assigned = [repr(exc)]
    paused = sorted(f"{tp.topic}:{tp.partition}" for tp in consumer._paused_partitions)
    positions = []
    try:
        subscription = consumer._thread._ensure_consumer()._subscription.subscription
        for tp in sorted(subscription.assignment.tps):
            st = subscription.assignment.state_value(tp)
            pos = st.position if st.has_valid_position else "-"
            flags = ("P" if st.paused else "") + ("R" if st.awaiting_reset else "")
            positions.append(
                f"{tp.topic.rsplit('.', 1)[-1]}:{tp.partition}@{pos}/{st.highwater}{flags}"
            )
    except Exception as exc:  # diagnostics must never fail
        positions.append(repr(exc))
    return (
        f"positions={positions} "
        f"flow_active={consumer.flow_active} can_resume_flow={consumer.can_resume_flow.is_set()} "
        f"flow_control_active={app.flow_control.is_active()} rebalancing={app.rebalancing} "
        f"recovery_completed={app.tables.recovery.completed.is_set()} "
        f"assigned={assigned} paused={paused}"
    )


def _await_chains() -> list[str]:
    """For each task, the whole chain of awaits down to where it waits.

    Asyncio's own task stacks stop at the first async generator, and
    Faust's streams are async generators: this follows them too.
    """
    import asyncio
    import gc

    out = []
    for task in asyncio.all_tasks():
        frames: list[str] = []
        obj: Any = task.get_coro()
        for _ in range(64):
            if obj is None:
                break
            frame = next(
                (getattr(obj, a) for a in ("cr_frame", "ag_frame", "gi_frame") if hasattr(obj, a)),
                None,
            )
            if frame is None:
                # Wrappers (an async generator's asend, a coroutine wrapper)
                # expose what they wrap only to the garbage collector.
                frames.append(type(obj).__name__)
                obj = next(
                    (
                        r
                        for r in gc.get_referents(obj)
                        if any(hasattr(r, a) for a in ("cr_frame", "ag_frame", "gi_frame"))
                    ),
                    None,
                )
                continue
            frames.append(f"{frame.f_code.co_name}:{frame.f_lineno}")
            obj = next(
                (
                    getattr(obj, a)
                    for a in ("cr_await", "ag_await", "gi_yieldfrom")
                    if hasattr(obj, a)
                ),
                None,
            )
        out.append(f"{task.get_name()} " + " > ".join(frames))
    return sorted(out)


class _Worker(faust.Worker):
    """faust.Worker with diagnostics fit for a service.

    `kill -USR1 <pid>` logs the consumer's flow state, then every asyncio
    task's stack (mode's own dump); SIGUSR2 logs the flow state alone
    (mode would enter the debugger, which hangs a worker without a terminal).
    """

    def _on_sigusr1(self) -> None:
        log.warning("flow state: %s", _flow_state(self.app))
        for line in _await_chains():
            log.warning("await chain: %s", line)
        super()._on_sigusr1()

    def _on_sigusr2(self) -> None:
        log.warning("flow state: %s", _flow_state(self.app))


def run_worker(settings: Settings) -> int:
    """`xborder worker`: load everything (failing fast), serve metrics, run until stopped."""
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    runtime = load_runtime(settings, require_subject_key=True)
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
    ensure_topics(settings)
    worker = create_app(settings, runtime, metrics)
    # faust.Worker handles SIGINT/SIGTERM itself: it stops agents, flushes the
    # producer and commits what was processed before exiting.
    fw = _Worker(worker.app, loglevel=settings.log_level.upper(), quiet=True)
    profile = os.environ.get("XBORDER_PROFILE")
    profiler = _start_profiler() if profile else None
    try:
        fw.execute_from_commandline()
    finally:
        runtime.close()
        if profiler is not None and profile:
            profiler.stop()
            Path(profile).write_text(
                profiler.output_text(
                    show_all=bool(os.environ.get("XBORDER_PROFILE_ALL")), timeline=False
                )
            )
    return 0


def _start_profiler() -> Any:
    """A sampling profile of the worker's event loop, written at exit (XBORDER_PROFILE=path).

    For measuring where time goes (docs/performance.md); needs pyinstrument,
    a development dependency.
    """
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.001, async_mode="disabled")
    profiler.start()
    return profiler
