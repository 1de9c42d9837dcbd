"""The Faust worker app: its topics and tables, and three thin agents wired to them.

    telemetry.* --ingest--> <app>-state (by state key) --state--> <app>-hits
                       \\-----------------------------------------> <app>-hits (by group key)
                        \\--> monitor.dead-letters          <app>-hits --group--> monitor.alerts

Every agent body (`agents.ingest`, `agents.state`, `agents.group`) only moves
batches between topics and calls a function of `monitor.detect.stages`;
tables back the `Store`/`SeenStore` interfaces that replay backs with dicts
(`agents.stores`), and expire as replay's state does (`agents.sweep`), so the
logic is one implementation.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import faust
from faust.auth import Credentials, SASLCredentials, SSLCredentials

from agents import transport
from agents.context import Context, Topics
from agents.group import GroupAgent, open_groups
from agents.ingest import IngestAgent
from agents.lag import LAG_INTERVAL, LagReporter
from agents.reload import ConfigReload
from agents.state import StateAgent
from agents.stores import TableSeen, TableStore
from agents.sweep import StreamTime, TableSweep
from monitor.alerts.grouping import AlertGrouper
from monitor.config.reload import Loaded, Reloader, Snapshot
from monitor.config.runtime import Runtime
from monitor.config.settings import Settings
from monitor.detect.expiry import expire_groups, expire_state
from monitor.detect.stages import UpdateLimiter
from monitor.engine.ruletypes import StateValue
from monitor.kafka_security import SASL_PROTOCOLS, sasl_password, ssl_context
from monitor.metrics import Metrics

__all__ = ["Worker", "create_app", "ensure_topics", "faust_credentials"]


@dataclass
class Worker:
    """The app and what tests and operators reach into: its topics, tables and agents."""

    app: faust.App
    runtime: Runtime
    metrics: Metrics
    topics: dict[str, Any]
    tables: dict[str, Any]
    agents: dict[str, Any]  # the objects behind the Faust agents, by agent name
    reload: ConfigReload


# The worker's tables (each has a changelog topic `<app>-<name>-changelog`).
TABLES = ("state", "groups")


def internal_topics(settings: Settings) -> tuple[str, str]:
    """The topics between the agents: routed state items, hits."""
    return f"{settings.app_id}-state", f"{settings.app_id}-hits"


def faust_credentials(settings: Settings) -> Credentials | None:
    """Faust's `broker_credentials` for XBORDER_KAFKA_*; None for PLAINTEXT.

    Faust hands them to every aiokafka client it makes (consumers, producers,
    transactional producers, topic creation), as aiokafka's keywords.
    """
    context = ssl_context(settings)
    if settings.kafka_security_protocol in SASL_PROTOCOLS:
        # With a context, SASL_SSL; without, SASL_PLAINTEXT.
        return SASLCredentials(
            username=settings.kafka_sasl_username,
            password=sasl_password(settings),
            ssl_context=context,
            mechanism=settings.kafka_sasl_mechanism,
        )
    if context is not None:
        return SSLCredentials(context)
    return None


def create_app(
    settings: Settings, runtime: Runtime, metrics: Metrics, stamps: Snapshot | None = None
) -> Worker:
    """Build a worker app. Tests build their own; nothing is global.

    `stamps`: of the files `runtime` was loaded from, taken before it was
    (monitor.config.reload.snapshot), so a change during the load is reloaded.
    """
    scheme = transport.register(settings.fetch_max_wait_ms)
    app = faust.App(
        settings.app_id,
        broker=f"{scheme}://{settings.bootstrap}",
        broker_credentials=faust_credentials(settings),
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
        datadir=str(settings.state_path),
        autodiscover=False,
    )
    names = settings.topics
    n = settings.partitions
    state_name, hits_name = internal_topics(settings)
    topics = Topics(
        inputs=app.topic(*settings.input_topics, value_serializer="raw"),
        dead_letters=app.topic(names.dead_letters, value_serializer="raw"),
        alerts=app.topic(names.alerts, value_serializer="raw"),
        state=app.topic(state_name, partitions=n, internal=True),
        hits=app.topic(hits_name, partitions=n, internal=True),
    )
    transport.BATCHED_TOPICS.update(settings.input_topics)

    def table(name: str) -> Any:
        # JSON keys: a raw key would come back from the changelog as bytes.
        schema: Any = faust.Schema(key_serializer="json", value_serializer="json")
        return app.Table(name, default=None, partitions=n, schema=schema)

    state_table, groups_table = (table(name) for name in TABLES)

    config = Loaded.of(runtime)
    ctx = Context(settings, config, metrics, topics)
    grace_ms = int(settings.state_grace * 1000)
    interval = settings.sweep_interval

    direct = settings.processing_guarantee != "exactly_once"
    state_store: TableStore[StateValue] = TableStore(state_table, direct=direct)
    state_seen = TableSeen(state_store)
    state = StateAgent(
        ctx,
        app,
        state_store,
        state_seen,
        changelog=state_table.changelog_topic.get_topic_name(),
        sweep=TableSweep(state_table, expire_state, state_seen, n, interval),
        stream_time=StreamTime(grace_ms),
    )
    groups_seen = TableSeen(groups_table)
    group = GroupAgent(
        ctx,
        groups_table,
        AlertGrouper(config.pack, TableStore(groups_table), groups_seen),
        UpdateLimiter(settings.alert_update_interval),
        sweep=TableSweep(groups_table, expire_groups, groups_seen, n, interval, size=open_groups),
        stream_time=StreamTime(grace_ms),
    )
    ingest = IngestAgent(ctx)

    def forget(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        state.sweep.forget()
        group.sweep.forget()

    app.on_partitions_assigned.connect(forget)
    app.on_partitions_revoked.connect(forget)
    reload = ConfigReload(
        ctx,
        Reloader(settings, config, runtime.subject_key, stamps),
        settings.config_poll_interval,
    )
    reload.started()

    app.agent(topics.inputs, name="ingest")(ingest.run)
    app.agent(topics.state, name="state")(state.run)
    app.agent(topics.hits, name="group")(group.run)
    app.timer(1.0)(group.flush_held_updates)
    app.task(reload.run)
    lag = LagReporter(app, metrics, (*settings.input_topics, state_name, hits_name))
    app.timer(LAG_INTERVAL)(lag.report)

    # Topics the worker writes but does not read must exist too.
    async def declare_outputs() -> None:
        for topic in (topics.dead_letters, topics.alerts):
            await topic.maybe_declare()

    app.task(declare_outputs)

    return Worker(
        app,
        runtime,
        metrics,
        topics={f.name: getattr(topics, f.name) for f in fields(topics)},
        tables={"state": state_table, "groups": groups_table},
        agents={"ingest": ingest, "state": state, "group": group},
        reload=reload,
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
    names = [*settings.input_topics, t.alerts, t.dead_letters, *internal_topics(settings)]
    create_topics(
        settings.bootstrap,
        names,
        settings.partitions,
        replication=settings.replication,
        settings=settings,
    )
    # The tables' changelogs too, compacted as Faust makes them: a table write
    # made before Faust's own creation reached the metadata raised
    # PartitionsMismatch (once in 40 kill runs under load; once in the tests).
    create_topics(
        settings.bootstrap,
        [f"{settings.app_id}-{table}-changelog" for table in TABLES],
        settings.partitions,
        configs={"cleanup.policy": "compact"},
        replication=settings.replication,
        settings=settings,
    )
