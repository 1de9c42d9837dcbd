"""Alert grouping, dedup, windows and the stateful rule types, through the shared core."""

from __future__ import annotations

from typing import Any

import orjson

from monitor.alerts.grouping import Alert, AlertContext, AlertGroup, Groups, build_alert, iso_ms
from monitor.contract.decode import decode_line
from monitor.contract.schemas import KafkaSource, Record
from monitor.detect.local import LocalDetector
from monitor.detect.stages import RoutedItem, apply_routed, group_hits, ingest, partition_for
from monitor.engine.model import RulePack
from monitor.engine.ruletypes import StateValue
from monitor.engine.ruletypes.onward import OnwardState
from monitor.engine.state import MemorySeen, MemoryStore
from monitor.geo.resolve import Resolver, StaticLookup
from tests.test_rules import ENDPOINTS, PACK

T0 = 1790812800000
H = 3_600_000
GEO = {"211.234.1.1": "KR", "47.92.1.1": "CN", "8.219.1.1": "SG", "5.45.200.1": "RU"}


def api(eid: str, ts: int, **extra: Any) -> dict[str, Any]:
    return {
        "kind": "api_call",
        "event_id": eid,
        "ts": ts,
        "platform": "aliexpress",
        "operation": "orders.export",
        "endpoint": "api.example.cn",
        "dst_ip": "47.92.1.1",
        "src_country": "KR",
        "subject_region": "KR",
        "data_categories": ["user.contact"],
        **extra,
    }


def egress(eid: str, ts: int, src: str, dst: str, **extra: Any) -> dict[str, Any]:
    return {
        "kind": "egress",
        "event_id": eid,
        "ts": ts,
        "platform": "aliexpress",
        "src_ip": src,
        "dst_ip": dst,
        "bytes": 10,
        "subject_region": "KR",
        "data_categories": ["user.contact"],
        **extra,
    }


def run(records: list[dict[str, Any]], pack: RulePack = PACK) -> list[Alert]:
    detector = LocalDetector(pack, Resolver(StaticLookup(GEO), ENDPOINTS), clock=lambda: 0.0)
    for i, obj in enumerate(records):
        got = decode_line(orjson.dumps(obj), {"file": "t", "line": i + 1})
        assert isinstance(got, Record), got
        detector.process(got, {"file": "t", "line": i + 1})
    return [detector.alert(r, g) for r, g in detector.open_groups()]


def of(alerts: list[Alert], rule: str) -> list[Alert]:
    return sorted((a for a in alerts if a["rule_id"] == rule), key=lambda a: a["first_seen"])


NLB = "pipa.xborder.no_legal_basis"


def test_group_window_is_24h_from_the_first_match() -> None:
    alerts = of(run([api("a", T0), api("b", T0 + 23 * H), api("c", T0 + 25 * H)]), NLB)
    assert [a["event_count"] for a in alerts] == [2, 1]
    assert alerts[0]["alert_id"] != alerts[1]["alert_id"]


def test_late_record_joins_its_group_and_moves_first_seen() -> None:
    alerts = of(run([api("b", T0 + 2 * H), api("a", T0)]), NLB)
    assert len(alerts) == 1 and alerts[0]["event_count"] == 2
    assert alerts[0]["first_seen"] == iso_ms(T0)
    assert [e["event_id"] for e in alerts[0]["evidence"]] == ["a", "b"]


def test_evidence_keeps_the_20_earliest() -> None:
    records = [api(f"e{i:02d}", T0 + (30 - i) * 60_000) for i in range(30)]
    (alert,) = of(run(records), NLB)
    assert alert["event_count"] == 30 and len(alert["evidence"]) == 20
    assert alert["evidence"][0]["event_id"] == "e29"


def test_duplicates_never_count_twice_even_across_groups() -> None:
    (alert,) = of(run([api("a", T0), api("a", T0), api("b", T0 + H), api("a", T0)]), NLB)
    assert alert["event_count"] == 2


def test_same_event_id_on_another_platform_is_another_record() -> None:
    alerts = of(run([api("a", T0), api("a", T0, platform="temu")]), NLB)
    assert sorted(a["platform"] or "" for a in alerts) == ["aliexpress", "temu"]


def test_alert_id_is_deterministic_and_depends_on_group() -> None:
    first = of(run([api("a", T0), api("b", T0 + H)]), NLB)[0]["alert_id"]
    again = of(run([api("a", T0), api("b", T0 + H)]), NLB)[0]["alert_id"]
    other = of(run([api("a", T0, src_country="JP")]), NLB)[0]["alert_id"]
    assert first == again != other


def test_bulk_volume_fires_once_per_window_with_every_record_of_it() -> None:
    recs = [
        api(f"b{i}", T0 + i * 5 * 60_000, legal_basis="contract", records=30000) for i in range(6)
    ]
    (alert,) = of(run(recs), "pipa.xborder.bulk_volume")
    # 30,000 x 4 crosses 100,000 at the 4th record; the 5th and 6th update the same alert.
    assert alert["event_count"] == 6 and alert["records"] == 180000
    assert alert["src_country"] is None and alert["dst_country"] == "CN"


def test_bulk_volume_windows_are_separate() -> None:
    recs = [api(f"b{i}", T0 + i * H, legal_basis="contract", records=90000) for i in range(3)]
    assert of(run(recs), "pipa.xborder.bulk_volume") == []


BULK = "pipa.xborder.bulk_volume"


def bulk_items(n: int) -> list[list[RoutedItem]]:
    """Routed bulk-window items of n records; the 4th record crosses 100,000."""
    resolver = Resolver(StaticLookup(GEO), ENDPOINTS)
    items = []
    for i in range(n):
        rec = api(f"b{i}", T0 + i * 60_000, legal_basis="contract", records=30000 + i)
        out = ingest(
            [(orjson.dumps(rec), {"topic": "t", "partition": 0, "offset": i})], PACK, resolver, 1
        )
        items.append([m for m in out.routed[0] if m["rule"] == BULK])
    return items


def test_bulk_window_rebuilt_after_a_crash_neither_double_counts_nor_loses() -> None:
    """At-least-once recovery, as the worker goes through it, on the shared core.

    The window's saved state and the hits the alert group already received are
    independent writes, so after a crash the window can come back older than the
    alert (or newer, its hits lost). Records are then redelivered, with
    duplicates, in another order, so the window crosses the threshold at another
    record than before; and the window can come back without the seen entry of
    its last record (written after it), a copy of which arrives after other
    records. Whatever the crash point, the final alert equals the uninterrupted
    run's.
    """
    import copy
    import random

    from monitor.alerts.grouping import AlertGrouper
    from monitor.engine.state import MemorySeen, MemoryStore

    n = 7
    items = bulk_items(n)

    def final(runs: list[list[int]], saved: int, delivered: int, torn: bool) -> tuple[Any, ...]:
        state: MemoryStore[StateValue] = MemoryStore()
        seen, groups = MemorySeen(), MemoryStore[Groups]()
        grouper = AlertGrouper(PACK, groups, MemorySeen())
        history = [copy.deepcopy((state, seen))]  # after each step of the first run
        for run_no, order in enumerate(runs):
            if run_no:
                # Restart: the window state as last saved (torn: without the seen
                # entry of its last record, written after it); the group as it is.
                state = copy.deepcopy(history[saved][0])
                seen = copy.deepcopy(history[saved - 1 if torn and saved else saved][1])
            for step, i in enumerate(order):
                hits = apply_routed(items[i], PACK, state, seen, 1).get(0, [])
                if run_no or step < delivered:
                    group_hits(hits, PACK, grouper, AlertContext("v", None), now=0)
                if not run_no:
                    history.append(copy.deepcopy((state, seen)))
        ((_, value),) = groups.items()
        (g,) = value["groups"]
        return (
            g["event_count"], g["records"], g["first_seen"], g["last_seen"],
            [e["event_id"] for e in g["evidence"]],
        )  # fmt: skip

    expected = final([list(range(n))], 0, n, False)
    assert expected[:2] == (n, sum(30000 + i for i in range(n)))
    rng = random.Random(7)
    for _ in range(3000):
        first = rng.sample(range(n), n)
        crashed = rng.randint(1, n)
        saved, delivered = rng.randint(0, crashed), rng.randint(0, crashed)
        # Everything after the older of the two writes comes again, plus duplicates.
        again = first[min(saved, delivered) :] + rng.choices(first[:crashed], k=2)
        rng.shuffle(again)
        runs = [first[:crashed], again]
        torn = rng.random() < 0.5
        assert final(runs, saved, delivered, torn) == expected, (runs, saved, delivered, torn)


def test_onward_transfer_needs_the_first_hop_within_30_days() -> None:
    day = 24 * H
    first = egress("h1", T0, "211.234.1.1", "47.92.1.1", dataset_id="d")
    second = egress("h2", T0 + 29 * day, "47.92.1.1", "5.45.200.1", dataset_id="d")
    late = egress("h3", T0 + 31 * day, "47.92.1.1", "5.45.200.1", dataset_id="d")
    alerts = of(run([first, second, late]), "pipa.xborder.onward_transfer")
    assert [(a["event_count"], a["dataset_id"]) for a in alerts] == [(1, "d")]
    # A second hop before the first in event time is not onward.
    before = egress("h0", T0 - day, "47.92.1.1", "5.45.200.1", dataset_id="d")
    assert of(run([first, before]), "pipa.xborder.onward_transfer") == []


def test_an_unresolved_country_is_no_hop_of_an_onward_transfer() -> None:
    """A pack whose first hop does not ask for a resolved destination: its state stays JSON."""
    from monitor.engine.ruletypes.onward import OnwardRule

    rule = OnwardRule("onward", {"window": 30 * 24 * H}, "KR", PACK.conditions.predicate("True"))
    resolver = Resolver(StaticLookup(GEO), ENDPOINTS)
    store: MemoryStore[OnwardState] = MemoryStore()
    hits = []
    for i, obj in enumerate(
        [
            egress("h1", T0, "211.234.1.1", "10.0.0.1", dataset_id="d"),
            egress("h2", T0 + H, "10.0.0.2", "5.45.200.1", dataset_id="d"),
        ]
    ):
        got = decode_line(orjson.dumps(obj), {"file": "t", "line": i + 1})
        assert isinstance(got, Record), got
        flow = resolver.resolve(got, {"file": "t", "line": i + 1})
        for key, item in rule.route(flow, matched=True):
            hits += rule.apply(store, MemorySeen(), key, item)
    assert hits == []
    orjson.dumps(dict(store))


def test_consent_latest_in_event_time_decides() -> None:
    def consent(
        eid: str, ts: int, granted: bool, countries: list[str] | None = None
    ) -> dict[str, Any]:
        rec = {
            "kind": "consent",
            "event_id": eid,
            "ts": ts,
            "platform": "aliexpress",
            "subject_id": "s1",
            "scope": "overseas_transfer",
            "granted": granted,
        }
        if countries:
            rec["countries"] = countries
        return rec

    call = api("x", T0 + 2 * H, legal_basis="consent", subject_ids=["s1"])
    rule = "pipa.xborder.consent_withdrawn"
    # Withdrawn, then granted again later in event time but arriving first: no alert.
    assert of(run([consent("c2", T0 + H, True), consent("c1", T0, False), call]), rule) == []
    # Withdrawn for SG only: a call to CN is covered by the older grant.
    assert (
        of(run([consent("c1", T0, True), consent("c2", T0 + H, False, ["SG"]), call]), rule) == []
    )
    # Withdrawal after the call in event time does not apply to it.
    assert of(run([call, consent("c1", T0 + 3 * H, False)]), rule) == []
    assert len(of(run([consent("c1", T0, False), call]), rule)) == 1


def test_build_alert_payload_fields() -> None:
    alerts = run([api("a", T0, legal_basis="none", records=7)])
    (alert,) = of(alerts, NLB)
    assert set(alert) >= {
        "alert_id", "rule_id", "title", "severity", "legal_ref", "platform", "src_country",
        "dst_country", "subject_region", "dataset_id", "first_seen", "last_seen", "event_count",
        "bytes", "records", "data_categories", "evidence", "rules_version", "geoip_build", "emitted_at",
    }  # fmt: skip
    assert alert["records"] == 7 and alert["emitted_at"] == "1970-01-01T00:00:00.000Z"
    assert alert["geoip_build"] == "static"
    ctx = AlertContext("v", None)
    group: AlertGroup = {
        "alert_id": "x", "rule": NLB, "anchor": T0,
        "fields": {
            "platform": "p", "src_country": None, "dst_country": None, "subject_region": None,
            "dataset_id": None,
        },
        "first_seen": T0, "last_seen": T0, "event_count": 1, "bytes": 0, "records": 0,
        "categories": [], "evidence": [], "revision": 1,
    }  # fmt: skip
    assert build_alert(PACK.by_id[NLB], group, ctx, 0)["geoip_build"] is None


def test_worker_stages_give_the_same_alerts_as_the_local_detector() -> None:
    records = [
        api("a", T0),
        api("b", T0 + H, legal_basis="none"),
        api("a", T0),
        egress("h2", T0 + 2 * H, "47.92.1.1", "5.45.200.1", dataset_id="d"),
        egress("h1", T0 + H, "211.234.1.1", "47.92.1.1", dataset_id="d"),
    ]
    expected = {(a["rule_id"], a["event_count"]) for a in run(records)}

    from monitor.alerts.grouping import AlertGrouper
    from monitor.engine.state import MemorySeen, MemoryStore

    resolver = Resolver(StaticLookup(GEO), ENDPOINTS)
    messages: list[tuple[bytes, KafkaSource]] = [
        (orjson.dumps(r), {"topic": "t", "partition": 0, "offset": i})
        for i, r in enumerate(records)
    ]
    out = ingest(messages, PACK, resolver, 4)
    seen = MemorySeen()
    routed = [item for items in out.routed.values() for item in items]
    state_hits = apply_routed(routed, PACK, MemoryStore(), seen, 4)
    for p, hits in state_hits.items():
        out.hits[p].extend(hits)
    grouper = AlertGrouper(PACK, MemoryStore(), seen)
    emissions = []
    for p in sorted(out.hits):
        emissions += group_hits(out.hits[p], PACK, grouper, AlertContext("v", None), now=0)
    latest = {e.alert_id: e.alert for e in emissions}
    assert {(a["rule_id"], a["event_count"]) for a in latest.values()} == expected
    assert all(e.is_new for e in emissions)
    assert 0 <= partition_for("some key", 4) < 4 and partition_for("k", 4) == partition_for("k", 4)


def test_update_limiter_holds_updates_and_releases_them_when_due() -> None:
    from monitor.detect.stages import UpdateLimiter

    lim = UpdateLimiter(60.0)
    assert lim.admit("a", "k", is_new=True, now=0.0)
    assert not lim.admit("a", "k", is_new=False, now=10.0)
    assert not lim.admit("a", "k", is_new=False, now=20.0)
    assert lim.due(30.0) == []
    assert lim.due(61.0) == [("a", "k")]
    assert lim.due(62.0) == []  # sent once, not again
    assert lim.admit("a", "k", is_new=False, now=130.0)
    lim.hold("b", "k2")  # found unsent in state after a restart
    assert lim.due(131.0) == [("b", "k2")]
    assert UpdateLimiter(0).admit("c", "k", is_new=False, now=1.0)


def test_sweeps_drop_state_past_each_rules_horizon() -> None:
    from monitor.alerts.grouping import AlertGrouper
    from monitor.detect.expiry import Expired, expire_groups, expire_seen, expire_state
    from monitor.engine.state import MemorySeen, MemoryStore

    day = 24 * H
    first = egress("h1", T0, "211.234.1.1", "47.92.1.1", dataset_id="d")
    resolver = Resolver(StaticLookup(GEO), ENDPOINTS)
    got = decode_line(orjson.dumps(first), {"file": "t", "line": 1})
    assert isinstance(got, Record)
    flow = resolver.resolve(got, {"file": "t", "line": 1})
    rule = PACK.by_id["pipa.xborder.onward_transfer"]
    assert rule.type is not None
    store, seen = MemoryStore[StateValue](), MemorySeen()
    for key, item in rule.type.route(flow, False):
        rule.type.apply(store, seen, key, item)
    assert len(store) == 1
    assert expire_state(store.items(), PACK, T0 + 29 * day) == Expired()
    assert expire_state(store.items(), PACK, T0 + 31 * day).deletes == list(store)

    groups = MemoryStore[Groups]()
    grouper = AlertGrouper(PACK, groups, seen)
    from monitor.engine.ruletypes.base import single_hit

    grouper.add(single_hit(NLB, flow.to_state()))
    assert expire_groups(groups.items(), PACK, T0 + day) == Expired()
    closed = expire_groups(groups.items(), PACK, T0 + 3 * day)
    assert closed.deletes == list(groups) and closed.closed == groups[closed.deletes[0]]["groups"]
    assert expire_seen([("s#1", T0), ("s#2", T0 + 5 * day), ("s#3", 1)], T0 + day) == ["s#1", "s#3"]


def test_a_group_restored_without_the_seen_entry_of_its_last_hit_still_counts_it_once() -> None:
    """The group names its last hit's ids in `recent`; a copy arriving later is still a duplicate."""
    from monitor.alerts.grouping import AlertGrouper
    from monitor.engine.ruletypes.base import single_hit
    from monitor.engine.state import MemorySeen, MemoryStore

    resolver = Resolver(StaticLookup(GEO), ENDPOINTS)

    def hit(eid: str, ts: int) -> Any:
        got = decode_line(orjson.dumps(api(eid, ts, legal_basis="none")), {"file": "t", "line": 1})
        assert isinstance(got, Record)
        return single_hit(NLB, resolver.resolve(got, {"file": "t", "line": 1}).to_state())

    groups = MemoryStore[Groups]()
    grouper = AlertGrouper(PACK, groups, MemorySeen())
    grouper.add(hit("a", T0))
    # A crash: the group was saved, the seen entry of its last hit was not.
    grouper.seen = MemorySeen()
    assert grouper.add(hit("b", T0 + H)) is not None
    assert grouper.add(hit("a", T0)) is None  # the copy, after another hit
    ((_, value),) = groups.items()
    assert value["groups"][0]["event_count"] == 2


def test_observe_many_gives_the_histogram_observe_gives() -> None:
    from prometheus_client import CollectorRegistry, Histogram

    from monitor.metrics import observe_many

    amounts = [0.0, 0.01, 0.011, 0.5, 3.0, 1e9, 0.01, 2.5]
    one, many = CollectorRegistry(), CollectorRegistry()
    a = Histogram("lag", "x", buckets=(0.01, 0.5, 2.5), registry=one)
    b = Histogram("lag", "x", buckets=(0.01, 0.5, 2.5), registry=many)
    for v in amounts:
        a.observe(v)
    observe_many(b, amounts)
    observe_many(b, [])

    def samples(registry: CollectorRegistry) -> list[tuple[str, dict[str, str], float]]:
        return [
            (s.name, s.labels, s.value)
            for m in registry.collect()
            for s in m.samples
            if not s.name.endswith("_created")
        ]

    assert samples(one) == samples(many)
    assert ("lag_count", {}, len(amounts)) in samples(many)


def test_a_large_batch_of_one_bulk_window_travels_in_messages_kafka_accepts() -> None:
    """12,000 records of one window in one batch: items of bounded size, each counted once."""
    from agents.context import MAX_BATCH_BYTES, chunk_json
    from monitor.alerts.grouping import AlertGrouper
    from monitor.engine.state import MemorySeen, MemoryStore

    resolver = Resolver(StaticLookup(GEO), ENDPOINTS)
    n = 12_000
    messages: list[tuple[bytes, KafkaSource]] = [
        (
            orjson.dumps(api(f"big-{i}", T0 + i, legal_basis="contract", records=10)),
            {"topic": "t", "partition": 0, "offset": i},
        )
        for i in range(n)
    ]
    out = ingest(messages, PACK, resolver, 1)
    items = [m for m in out.routed[0] if m["rule"] == BULK]
    assert len(items) == 3  # 5,000 ids per item at most
    assert all(len(chunk) <= MAX_BATCH_BYTES for chunk in chunk_json(out.routed[0]))
    seen = MemorySeen()
    hits = apply_routed(out.routed[0], PACK, MemoryStore(), seen, 1)[0]
    # Redelivered, the same items change nothing.
    hits += apply_routed(out.routed[0], PACK, MemoryStore(), seen, 1)[0]
    grouper = AlertGrouper(PACK, MemoryStore(), seen)
    emissions = group_hits(
        [h for h in hits if h["rule"] == BULK], PACK, grouper, AlertContext("v", None)
    )
    (alert,) = {e.alert_id: e.alert for e in emissions}.values()
    assert alert["event_count"] == n and alert["records"] == 10 * n
