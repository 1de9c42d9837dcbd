"""One expiry for replay and the worker (`monitor.detect.expiry`)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from agents.app import TableSeen, seen_scope
from monitor.contract.decode import decode_line
from monitor.contract.schemas import Record, Source
from monitor.detect.expiry import Expired, expire_groups, expire_seen
from monitor.detect.local import LocalDetector
from monitor.engine.state import MemorySeen
from monitor.geo.resolve import Resolver, StaticLookup
from tests.test_alerts import GEO, NLB, T0, H, api, egress
from tests.test_rules import ENDPOINTS, PACK

DAY = 24 * H
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


def test_replay_frees_every_seen_id_once_its_window_or_group_closes() -> None:
    """Replay once kept them all: it freed scopes by a name other than the one written."""
    replay = Replay()
    assert replay.scopes() and replay.scopes() == set(replay.detector.seen.expires)
    closed_any = False
    for day in range(0, 90, 2):
        before = replay.scopes()
        closed = replay.expire(T0 + day * DAY)
        closed_any = closed_any or bool(closed and replay.scopes() < before)
    assert closed_any, "the horizons never closed a group nor freed a seen id"
    # Past every horizon only the latest consent of each subject is left (it
    # decides later calls however old).
    assert {k.split("|", 1)[0] for k in replay.state()} == {CONSENT}
    assert replay.groups() == {} and replay.scopes() == set() and replay.detector.seen.expires == {}


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
    group = {"rule": NLB, "anchor": T0}
    gone = {"rule": "a.rule.removed", "anchor": T0}
    entries = [("k", {"groups": [group, gone]})]
    assert expire_groups(entries, PACK, T0 + 2 * window) == Expired(
        updates={"k": {"groups": [group]}}, closed=[gone]
    )
    assert expire_groups(entries, PACK, T0 + 2 * window + 1).deletes == ["k"]


@pytest.mark.parametrize("count", [0, 1])
def test_a_scope_is_cached_only_once_it_has_a_segment_to_be_freed_by(count: int) -> None:
    table: dict[str, Any] = {}
    seen = TableSeen(table)
    if count:
        seen.add_many("s", [1], expires=5)
    assert set(seen.members("s")) == set(range(1, count + 1))
    assert ("s" in seen._known) == bool(count)
