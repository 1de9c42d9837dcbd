"""The Faust agents in Faust's test context: what each agent sends for what it receives.

No broker here (the integration tests run one): the topics' `send` is
replaced by a recorder, so these tests see exactly what an agent emits.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from agents.app import Worker, create_app
from monitor.config.runtime import load_runtime
from monitor.config.settings import Settings
from monitor.detect.stages import partition_for
from monitor.metrics import Metrics
from tests.support.pack import copy_pack

T0 = 1790812800000
BULK = "pipa.xborder.bulk_volume"

CALL = {
    "kind": "api_call",
    "event_id": "e1",
    "ts": T0,
    "platform": "temu",
    "operation": "sync",
    "endpoint": "https://unknown.example/x",
    "src_country": "KR",
    "subject_region": "KR",
    "data_categories": ["user.name"],
}


@dataclasses.dataclass
class Harness:
    worker: Worker
    sent: list[tuple[str, Any, Any, Any]]
    registry: CollectorRegistry

    def of(self, topic: str) -> list[Any]:
        return [orjson.loads(v) for name, _, _, v in self.sent if name == topic]


@pytest.fixture
def harness() -> Iterator[Harness]:
    yield build_harness()


def build_harness(**overrides: Any) -> Harness:
    settings = Settings(use_geoip=False, bootstrap="127.0.0.1:9", app_id="agent-test", **overrides)
    registry = CollectorRegistry()
    runtime = load_runtime(settings)
    metrics = Metrics(registry, platforms=runtime.disclosures.by_platform)
    worker = create_app(settings, runtime, metrics)
    worker.app.finalize()
    worker.app.flow_control.resume()
    sent: list[tuple[str, Any, Any, Any]] = []
    for name in ("dead_letters", "alerts", "state", "hits"):

        async def send(
            *,
            key: Any = None,
            value: Any = None,
            partition: Any = None,
            _name: str = name,
            **_: Any,
        ) -> asyncio.Future[None]:
            sent.append((_name, key, partition, value))
            # Like Topic.send: the returned future resolves once the broker has the message.
            delivered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            delivered.set_result(None)
            return delivered

        worker.topics[name].send = send
    # Table writes go to their changelog through the producer's buffer: record them too.
    worker.app.producer.send_soon = lambda fut: sent.append(  # type: ignore[method-assign]
        ("changelog", fut.message.key, fut.message.partition, fut.message.value)
    )

    async def send_held(producer: Any, held: list[Any]) -> None:
        # The batched path needs a running producer; here, the same messages in order.
        for fut in held:
            producer.send_soon(fut)

    async def send_rows(producer: Any, topic: str, partition: int, rows: list[Any]) -> None:
        for key, value in rows:
            sent.append(("changelog", orjson.dumps(key), partition, orjson.dumps(value)))

    state = worker.agents["state"]
    state.send_held, state.send_rows = send_held, send_rows
    return Harness(worker, sent, registry)


async def put_all(harness: Harness, agent: str, values: list[bytes]) -> None:
    async with harness.worker.app.agents[agent].test_context() as ctx:
        for value in values:
            await ctx.put(value)
        await asyncio.sleep(0.2)  # the ingest agent batches for up to 50 ms


def test_ingest_sends_dead_letters_and_partitioned_hits(harness: Harness) -> None:
    batch = orjson.dumps([{"kind": "egress"}, CALL])
    asyncio.run(put_all(harness, "ingest", [batch]))
    (letter,) = harness.of("dead_letters")
    assert letter["reason"] == "missing_field:event_id" and letter["source"]["index"] == 0
    hit_messages = [(p, orjson.loads(v)) for n, _, p, v in harness.sent if n == "hits"]
    assert len(hit_messages) == 1
    partition, hits = hit_messages[0]
    assert 0 <= partition < 4 and hits[0]["rule"] == "monitor.unresolved_destination"
    assert hits[0]["evidence"][0]["source"]["index"] == 1
    assert harness.registry.get_sample_value("xborder_records_in_total", {"kind": "api_call"}) == 1
    assert (
        harness.registry.get_sample_value(
            "xborder_dead_letters_total", {"reason": "missing_field:event_id"}
        )
        == 1
    )


def test_ingest_routes_stateful_items_to_the_state_topic(harness: Harness) -> None:
    consent = {
        "kind": "consent",
        "event_id": "c1",
        "ts": T0,
        "platform": "temu",
        "subject_id": "u-1",
        "scope": "overseas_transfer",
        "granted": False,
    }
    asyncio.run(put_all(harness, "ingest", [orjson.dumps(consent)]))
    (items,) = harness.of("state")
    assert items[0]["rule"] == "pipa.xborder.consent_withdrawn"
    # State keys are hashes: the raw subject id never leaves the ingest agent.
    assert "u-1" not in orjson.dumps(items).decode()


def test_group_agent_emits_new_then_update_and_ignores_redelivery(harness: Harness) -> None:
    asyncio.run(
        put_all(harness, "ingest", [orjson.dumps(CALL), orjson.dumps({**CALL, "event_id": "e2"})])
    )
    payloads = [v for n, _, _, v in harness.sent if n == "hits"]
    harness.sent.clear()
    # The same hits twice, as a redelivery after a crash would bring them.
    asyncio.run(put_all(harness, "group", payloads + payloads))
    alerts = harness.of("alerts")
    keys = {k for n, k, _, _ in harness.sent if n == "alerts"}
    assert len(keys) == 1 and alerts[-1]["event_count"] == 2
    assert alerts[-1]["alert_id"].encode() in keys
    assert (
        harness.registry.get_sample_value(
            "xborder_alerts_total",
            {
                "rule_id": "monitor.unresolved_destination",
                "severity": "low",
                "action": "new",
                "platform": "temu",
                "dst_country": "unresolved",
            },
        )
        == 1
    )


def test_state_agent_applies_threshold_windows(harness: Harness) -> None:
    bulk = {
        **CALL,
        "endpoint": "api.example.cn",
        "dst_ip": None,
        "legal_basis": "contract",
        "records": 60000,
    }
    bulk["endpoint"] = "https://oss-cn-hangzhou.aliyuncs.com/b"
    records = [orjson.dumps({**bulk, "event_id": f"b{i}", "ts": T0 + i * 60_000}) for i in range(2)]
    asyncio.run(put_all(harness, "ingest", records))
    state_payloads = [v for n, _, _, v in harness.sent if n == "state"]
    harness.sent.clear()
    asyncio.run(put_all(harness, "state", state_payloads))
    hits = [h for batch in harness.of("hits") for h in batch]
    bulk_hits = [h for h in hits if h["rule"] == "pipa.xborder.bulk_volume"]
    # One hit: the hot totals of the day's window, naming the span that crossed.
    (hit,) = bulk_hits
    assert (hit["event_count"], hit["records"]) == (2, 120000)
    assert hit.get("span", {}).get("total") == 120000


def test_state_is_saved_only_once_its_hits_are_on_the_broker(harness: Harness) -> None:
    """A crash between the two must never leave state saved and its hits lost."""
    bulk = {**CALL, "endpoint": "https://oss-cn-hangzhou.aliyuncs.com/b", "records": 120000}
    asyncio.run(put_all(harness, "ingest", [orjson.dumps({**bulk, "legal_basis": "contract"})]))
    state_payloads = [v for n, _, _, v in harness.sent if n == "state"]
    pending: list[asyncio.Future[None]] = []

    async def undelivered(*, value: Any = None, **_: Any) -> asyncio.Future[None]:
        harness.sent.append(("hits", None, None, value))
        pending.append(asyncio.get_running_loop().create_future())
        return pending[-1]

    harness.worker.topics["hits"].send = undelivered
    harness.sent.clear()

    async def scenario() -> tuple[list[str], list[str]]:
        async with harness.worker.app.agents["state"].test_context() as ctx:
            for value in state_payloads:
                await ctx.put(value)
            await asyncio.sleep(0.2)
            before = [name for name, *_ in harness.sent]  # hits sent, not yet delivered
            for fut in pending:
                fut.set_result(None)
            await asyncio.sleep(0.2)
            return before, [name for name, *_ in harness.sent]

    before, after = asyncio.run(scenario())
    assert before == ["hits"], "the window crossed: a hit, and no changelog yet"
    # Then the window and its record's seen entry, in that order.
    assert after == ["hits", "changelog", "changelog"]
    keys = [orjson.loads(k) for name, k, _, _ in harness.sent if name == "changelog"]
    assert keys[0].startswith(BULK) and keys[1].startswith("seen:")


def test_stream_time_is_kept_per_partition() -> None:
    """A record far ahead in one partition must not expire a window open in another.

    Kafka keeps no order across partitions, so whether it did would depend on
    how they interleave: stream time is per (agent, partition), as Kafka
    Streams keeps it per task.
    """
    harness = build_harness(sweep_interval=0.0)  # sweep after every message
    bulk = {
        **CALL,
        "endpoint": "https://oss-cn-hangzhou.aliyuncs.com/b",
        "legal_basis": "contract",
        "records": 40000,
    }
    # Three records of one hourly window cross 100,000 together; a record 30 h
    # ahead (past the window's horizon plus the 24 h grace) comes in between,
    # in the partition of another platform's window.
    platform = next(
        p
        for p in ("aliexpress", "shein", "coupang", "gmarket")
        if partition_for(f"{BULK}|{p}|CN", 4) != partition_for(f"{BULK}|temu|CN", 4)
    )
    records = [
        {**bulk, "event_id": "a", "ts": T0},
        {**bulk, "event_id": "far", "ts": T0 + 30 * 3_600_000, "platform": platform},
        {**bulk, "event_id": "c", "ts": T0 + 60_000},
        {**bulk, "event_id": "d", "ts": T0 + 120_000},
    ]
    messages = []
    for rec in records:
        harness.sent.clear()
        asyncio.run(put_all(harness, "ingest", [orjson.dumps(rec)]))
        messages += [(p, v) for n, _, p, v in harness.sent if n == "state"]
    assert len(messages) == 4 and messages[1][0] != messages[0][0]
    harness.sent.clear()

    async def feed() -> None:
        async with harness.worker.app.agents["state"].test_context() as ctx:
            for partition, value in messages:
                await ctx.put(value, partition=partition)
            await asyncio.sleep(0.2)

    asyncio.run(feed())
    bulk_hits = [h for batch in harness.of("hits") for h in batch if h["rule"] == BULK]
    # d crosses: one hit with the totals of the three records' day.
    assert [h["fields"]["platform"] for h in bulk_hits] == ["temu"]
    assert (bulk_hits[0]["event_count"], bulk_hits[0]["records"]) == (3, 120000)
    assert sum(h["event_count"] for h in bulk_hits) == 3
    assert sum(h["records"] for h in bulk_hits) == 120000


def hit_rules(harness: Harness) -> list[tuple[str, str | None]]:
    return [(h["rule"], h["fields"]["dst_country"]) for batch in harness.of("hits") for h in batch]


def test_ingest_reads_the_config_a_reload_swapped_in(tmp_path: Path) -> None:
    rules = copy_pack(tmp_path)
    harness = build_harness(rules_dir=rules)
    asyncio.run(put_all(harness, "ingest", [orjson.dumps(CALL)]))
    assert hit_rules(harness) == [("monitor.unresolved_destination", None)]
    endpoints = rules / "config" / "endpoints.yaml"
    endpoints.write_text(endpoints.read_text() + "\n- {host: unknown.example, country: SG}\n")
    reload = harness.worker.reload
    reload.apply(reload.reloader.reload(["endpoints"]))
    harness.sent.clear()
    asyncio.run(put_all(harness, "ingest", [orjson.dumps({**CALL, "event_id": "e2"})]))
    # Placed now, and temu declared no legal basis for it.
    assert hit_rules(harness) == [("pipa.xborder.no_legal_basis", "SG")]


def test_ingest_attributes_with_the_service_registry_a_reload_swapped_in(tmp_path: Path) -> None:
    rules = copy_pack(tmp_path)
    harness = build_harness(rules_dir=rules)
    untagged = {k: v for k, v in CALL.items() if k not in ("subject_region", "data_categories")}
    untagged["labels"] = {"team": "sync"}
    asyncio.run(put_all(harness, "ingest", [orjson.dumps(untagged)]))
    assert hit_rules(harness) == []  # not personal: no category
    services = rules / "config" / "services.yaml"
    services.write_text(
        "- name: sync\n  match: {workload_labels: {team: sync}}\n"
        "  subject_region: KR\n  data_categories: [user.name]\n"
    )
    reload = harness.worker.reload
    reload.apply(reload.reloader.reload(["services"]))
    harness.sent.clear()
    asyncio.run(put_all(harness, "ingest", [orjson.dumps({**untagged, "event_id": "e2"})]))
    assert hit_rules(harness) == [("monitor.unresolved_destination", None)]


def test_a_held_update_of_a_rule_a_reload_removed_is_dropped(tmp_path: Path) -> None:
    rules = copy_pack(tmp_path)
    harness = build_harness(rules_dir=rules)
    payloads = []
    for event_id in ("e1", "e2"):
        harness.sent.clear()
        asyncio.run(put_all(harness, "ingest", [orjson.dumps({**CALL, "event_id": event_id})]))
        payloads += [v for n, _, _, v in harness.sent if n == "hits"]
    harness.sent.clear()
    asyncio.run(put_all(harness, "group", payloads))
    group = harness.worker.agents["group"]
    assert len(harness.of("alerts")) == 1 and group.limiter.pending  # the update waits
    (rules / "detections" / "unresolved_destination.yaml").unlink()
    reload = harness.worker.reload
    reload.apply(reload.reloader.reload(["rules"]))
    group.limiter.interval = 0  # due now
    harness.sent.clear()
    asyncio.run(group.flush_held_updates())
    assert harness.of("alerts") == [] and not group.limiter.pending
