"""One expiry for replay and the worker: the same input leaves the same state behind.

Replay's `LocalDetector` keeps its state in dicts, the worker in table
partitions swept one at a time; both hand their entries to
`monitor.detect.expiry`. These tests drive both drivers over the same
records and compare what each keeps, what alert groups each closes and which
seen ids each frees, horizon after horizon.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from agents.stores import SEEN_PREFIX, TableSeen, TableStore, seen_scope
from agents.sweep import StreamTime, TableSweep
from monitor.alerts.grouping import AlertContext, AlertGrouper, Groups
from monitor.contract.decode import decode_line
from monitor.contract.schemas import KafkaSource, Record, Source
from monitor.detect.expiry import Expired, expire_groups, expire_seen, expire_state
from monitor.detect.local import LocalDetector
from monitor.detect.stages import apply_routed, group_hits, ingest
from monitor.engine.ruletypes import StateValue
from monitor.engine.state import MemorySeen
from monitor.geo.resolve import Resolver, StaticLookup
from tests.support.pack import ENDPOINTS, PACK
from tests.support.records import BULK, GEO, NLB, T0, H, api, egress

DAY = 24 * H
PARTITIONS = 4
ONWARD = "pipa.xborder.onward_transfer"
CONSENT = "pipa.xborder.consent_withdrawn"


def records() -> list[dict[str, Any]]:
    """Groups, bulk windows, first hops and consent spread over days, with duplicates."""
    out: list[dict[str, Any]] = []
    for day in range(0, 40, 3):
        t = T0 + day * DAY
        out += [api(f"nlb-{day}-{i}", t + i * H) for i in range(3)]
        out += [
            api(f"bulk-{day}-{i}", t + i * 60_000, legal_basis="contract", records=60_000)
            for i in range(2)
        ]
        out.append(egress(f"hop-{day}", t, "211.234.1.1", "47.92.1.1", dataset_id=f"d{day}"))
        out.append(
            egress(f"on-{day}", t + H, "47.92.1.1", "5.45.200.1", dataset_id=f"d{day}")
            | {"src_country": "CN"}
        )
        out.append(
            {
                "kind": "consent",
                "event_id": f"c-{day}",
                "ts": t,
                "platform": "temu",
                "subject_id": f"u-{day}",
                "scope": "overseas_transfer",
                "granted": False,
            }
        )
    return out + out[:5]  # a redelivery


def decoded() -> tuple[list[Record], list[Source]]:
    recs, sources = [], []
    for i, obj in enumerate(records()):
        source: Source = {"topic": "t", "partition": 0, "offset": i}  # as the worker's
        got = decode_line(orjson.dumps(obj), source)
        assert isinstance(got, Record), got
        recs.append(got)
        sources.append(source)
    return recs, sources


class Replay:
    """Replay's detector, its state as entries."""

    def __init__(self) -> None:
        self.detector = LocalDetector(
            PACK, Resolver(StaticLookup(GEO), ENDPOINTS), clock=lambda: 0.0, grace_ms=0
        )
        self.detector.process_batch(*decoded())

    def expire(self, at: int) -> list[str]:
        self.detector.watermark = at
        return sorted(g["alert_id"] for _, g in self.detector.expire())

    def state(self) -> dict[str, Any]:
        return {k: v for store in self.detector.stores.values() for k, v in store.items()}

    def groups(self) -> dict[str, Any]:
        return dict(self.detector.groups)

    def scopes(self) -> set[str]:
        return set(self.detector.seen.scopes)


class Worker:
    """The worker's stages over dict tables, swept as its agents sweep them."""

    def __init__(self) -> None:
        self.state_table: dict[str, Any] = {}
        self.groups_table: dict[str, Any] = {}
        self.state_seen = TableSeen(TableStore(self.state_table))
        self.groups_seen = TableSeen(self.groups_table)
        grouper = AlertGrouper(PACK, TableStore(self.groups_table), self.groups_seen)
        resolver = Resolver(StaticLookup(GEO), ENDPOINTS)
        messages: list[tuple[bytes, KafkaSource]] = [
            (orjson.dumps(obj), {"topic": "t", "partition": 0, "offset": i})
            for i, obj in enumerate(records())
        ]
        out = ingest(messages, PACK, resolver, PARTITIONS, now=T0 / 1000 + 60 * 86400)
        hits = out.hits
        for items in out.routed.values():
            store: TableStore[StateValue] = TableStore(self.state_table)
            for p, more in apply_routed(items, PACK, store, self.state_seen, PARTITIONS).items():
                hits[p] += more
        for p in sorted(hits):
            group_hits(hits[p], PACK, grouper, AlertContext("v", None), now=0)
        self.sweeps: list[TableSweep[Any]] = [
            TableSweep(self.state_table, expire_state, self.state_seen, PARTITIONS, 0.0),
            TableSweep(self.groups_table, expire_groups, self.groups_seen, PARTITIONS, 0.0),
        ]

    def expire(self, at: int) -> list[str]:
        closed = []
        for p in range(PARTITIONS):
            for sweep in self.sweeps:
                closed += sweep.run(p, at, PACK).closed
        return sorted(g["alert_id"] for g in closed)

    def state(self) -> dict[str, Any]:
        return {k: v for k, v in self.state_table.items() if not k.startswith(SEEN_PREFIX)}

    def groups(self) -> dict[str, Any]:
        return {k: v for k, v in self.groups_table.items() if not k.startswith(SEEN_PREFIX)}

    def scopes(self) -> set[str]:
        tables = (self.state_table, self.groups_table)
        return {seen_scope(k) for t in tables for k in t if k.startswith(SEEN_PREFIX)}


def test_replay_and_the_worker_sweep_expire_the_same_entries_at_every_horizon() -> None:
    replay, worker = Replay(), Worker()
    rules = {k.split("|", 1)[0] for k in replay.state()}
    assert {BULK, ONWARD} <= rules and NLB in {
        g["rule"] for v in replay.groups().values() for g in v["groups"]
    }
    assert replay.state() == worker.state() and replay.scopes() == worker.scopes()
    assert replay.groups() == worker.groups()
    closed_any = False
    for day in range(0, 90, 2):
        at = T0 + day * DAY
        before = replay.scopes()
        closed = replay.expire(at)
        assert closed == worker.expire(at), day
        assert replay.state() == worker.state(), day
        assert replay.groups() == worker.groups(), day
        assert replay.scopes() == worker.scopes(), day
        closed_any = closed_any or bool(closed and replay.scopes() < before)
    assert closed_any, "the horizons never closed a group nor freed a seen id"
    # Past every horizon only the latest consent of each subject is left (it
    # decides later calls however old); seen ids go too (replay once kept them all).
    assert {k.split("|", 1)[0] for k in replay.state()} == {CONSENT}
    assert replay.groups() == {} and replay.scopes() == set() and replay.detector.seen.expires == {}
    assert worker.state_table == replay.state() and worker.groups_table == {}
    assert worker.state_seen._known == worker.groups_seen._known == {}


def test_seen_entries_expire_by_the_time_they_were_written_with_in_both_stores() -> None:
    memory, table = MemorySeen(), TableSeen({})
    for seen in (memory, table):
        seen.add_many("k\x1e100", [1, 2], expires=100)
        seen.add_many("k\x1e100", [3], expires=100)
        seen.add_many("k\x1e200", [4], expires=200)
    assert expire_seen(memory.entries(), 150) == ["k\x1e100"]
    keys = expire_seen(table.table.items(), 150)
    assert sorted(keys) == ["seen:k\x1e100#0", "seen:k\x1e100#1"]
    assert {seen_scope(k) for k in keys} == {"k\x1e100"}
    assert expire_seen(memory.entries(), 100) == []  # closes after its time, not at it


def test_groups_close_a_window_after_their_own_and_with_their_rule_gone() -> None:
    window = PACK.by_id[NLB].group_window_ms
    start = T0 - 9 * H  # a group's anchor is its window's start: T0's day began at 00:00 in Seoul
    group: Any = {"rule": NLB, "anchor": start}
    gone: Any = {"rule": "a.rule.removed", "anchor": start}
    entries: list[tuple[str, Groups]] = [("k", {"groups": [group, gone]})]
    assert expire_groups(entries, PACK, start + 2 * window) == Expired(
        updates={"k": {"groups": [group]}}, closed=[gone]
    )
    assert expire_groups(entries, PACK, start + 2 * window + 1).deletes == ["k"]


class CountingTable(dict[str, Any]):
    passes = 0

    def items(self) -> Any:
        self.passes += 1
        return super().items()


def test_a_sweep_round_reads_the_table_once_for_every_partition() -> None:
    now = [0.0]
    table = CountingTable()
    seen = TableSeen(table)
    sweep = TableSweep(table, expire_state, seen, PARTITIONS, 30.0, clock=lambda: now[0])
    worker = Worker()
    table.update(worker.state_table)
    keys = {p: sweep.entries(p) for p in range(PARTITIONS)}
    assert table.passes == 1
    assert sum(len(s) + len(t) for s, t in keys.values()) == len(table)
    new = f"{BULK}|new"
    table[new] = {"buckets": {}}

    def found() -> bool:
        return any(k == new for p in range(PARTITIONS) for k, _ in sweep.entries(p)[0])

    assert not found() and table.passes == 1  # swept next round
    now[0] = 30.0
    assert found() and table.passes == 2
    seen.add_many("x", [1], expires=0)
    sweep.forget()  # a rebalance: partitions now here were not in the pass
    assert not seen._known
    sweep.entries(0)
    assert table.passes == 3


def test_a_sweep_reads_values_as_they_are_when_it_runs() -> None:
    """A key rewritten or deleted since the pass is not swept from its old value."""
    table: dict[str, Any] = {}
    sweep = TableSweep(table, expire_state, TableSeen(table), 1, 30.0, clock=lambda: 0.0)
    table[f"{BULK}|a"] = {"fields": {}, "buckets": {str(T0): []}, "days": {}}
    table[f"{BULK}|b"] = {"fields": {}, "buckets": {str(T0): []}, "days": {}}
    assert len(sweep.entries(0)[0]) == 2
    table[f"{BULK}|a"] = {"fields": {}, "buckets": {str(T0 + 40 * DAY): []}, "days": {}}
    del table[f"{BULK}|b"]
    sweep.run(0, T0 + 30 * DAY, PACK)
    assert table == {f"{BULK}|a": {"fields": {}, "buckets": {str(T0 + 40 * DAY): []}, "days": {}}}


def test_stream_time_is_per_partition_and_expiry_stays_a_grace_behind() -> None:
    time = StreamTime(grace_ms=DAY)
    hit: Any = {"last_seen": T0}
    routed: Any = {"item": {"flow": {"ts": T0 + H}}}
    time.advance(0, [hit, routed])
    later: Any = {"last_seen": T0 + 10 * DAY}
    time.advance(1, [later])
    assert time.horizon(0) == T0 + H - DAY and time.horizon(1) == T0 + 9 * DAY
    assert time.horizon(2) == -DAY


def test_stream_time_follows_every_kind_of_routed_item() -> None:
    """A partition routed only threshold windows still moves on, so its windows expire."""
    messages: list[tuple[bytes, KafkaSource]] = [
        (
            orjson.dumps(api(f"bulk-{i}", T0 + i * H, legal_basis="contract", records=60_000)),
            {"topic": "t", "partition": 0, "offset": i},
        )
        for i in range(3)
    ]
    resolver = Resolver(StaticLookup(GEO), ENDPOINTS)
    out = ingest(messages, PACK, resolver, 1, now=(T0 + DAY) / 1000)
    windows = [m for m in out.routed[0] if m["rule"] == BULK]
    assert len(windows) == 3
    time = StreamTime(grace_ms=DAY)
    time.advance(0, windows)
    assert time.horizon(0) == T0 + 2 * H - DAY


@pytest.mark.parametrize("count", [0, 1])
def test_a_scope_is_cached_only_once_it_has_a_segment_to_be_freed_by(count: int) -> None:
    table: dict[str, Any] = {}
    seen = TableSeen(table)
    if count:
        seen.add_many("s", [1], expires=5)
    assert set(seen.members("s")) == set(range(1, count + 1))
    assert ("s" in seen._known) == bool(count)
