"""The stages as the worker runs them (ingest, state, group): the same alerts as the local
detector, updates held back, a large batch in bounded messages, sweeps past each horizon."""

from __future__ import annotations

from typing import Any

import orjson

from monitor.alerts.grouping import AlertContext, Groups
from monitor.contract.decode import decode_line
from monitor.contract.schemas import KafkaSource, Record
from monitor.detect.stages import apply_routed, group_hits, ingest, partition_for
from monitor.geo.resolve import Resolver, StaticLookup
from tests.support.pack import ENDPOINTS, PACK
from tests.support.records import BULK, GEO, NLB, T0, H, api, egress, run


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
    messages: list[tuple[bytes | None, KafkaSource]] = [
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
    store: MemoryStore[Any] = MemoryStore()
    seen = MemorySeen()
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


def test_a_large_batch_of_one_bulk_window_travels_in_messages_kafka_accepts() -> None:
    """12,000 records of one window in one batch: items of bounded size, each counted once."""
    from agents.context import MAX_BATCH_BYTES, chunk_json
    from monitor.alerts.grouping import AlertGrouper
    from monitor.engine.state import MemorySeen, MemoryStore

    resolver = Resolver(StaticLookup(GEO), ENDPOINTS)
    n = 12_000
    messages: list[tuple[bytes | None, KafkaSource]] = [
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


def test_ingest_attributes_untagged_records_from_the_service_registry() -> None:
    import ipaddress

    from monitor.contract.attribution import Attributes, ServiceEntry, ServiceRegistry

    registry = ServiceRegistry(
        (
            ServiceEntry(
                "exports",
                Attributes("aliexpress", "KR", ("user.contact",)),
                src_cidrs=(ipaddress.ip_network("211.234.0.0/16"),),
            ),
            ServiceEntry(
                "labelled",
                Attributes(None, "KR", ("user.contact",)),
                workload_labels=(("team", "orders"),),
            ),
        )
    )
    untagged = egress("u", T0, "211.234.1.1", "5.45.200.1")  # RU: aliexpress did not disclose it
    del untagged["data_categories"], untagged["subject_region"]
    labelled = {**egress("l", T0, "8.219.1.1", "5.45.200.1"), "labels": {"team": "orders"}}
    del labelled["data_categories"], labelled["subject_region"]
    messages: list[tuple[bytes | None, KafkaSource]] = [
        (orjson.dumps(untagged), {"topic": "t", "partition": 0, "offset": 0}),
        (orjson.dumps([labelled]), {"topic": "t", "partition": 0, "offset": 1}),
    ]
    resolver = Resolver(StaticLookup(GEO), ENDPOINTS)
    without = ingest(messages, PACK, resolver, 4)
    got = ingest(messages, PACK, resolver, 4, services=registry)
    fired = {
        (h["rule"], e["event_id"], tuple(h["categories"]))
        for hits in got.hits.values()
        for h in hits
        for e in h["evidence"]
    }
    undisclosed = "pipa.xborder.undisclosed_destination"
    assert not any(without.hits.values())
    assert {(undisclosed, "u", ("user.contact",)), (undisclosed, "l", ("user.contact",))} <= fired


def test_a_topic_of_another_format_is_read_in_it_beside_telemetry() -> None:
    from prometheus_client import CollectorRegistry

    from monitor.contract.formats import FormatOptions
    from monitor.metrics import Metrics

    resolver = Resolver(StaticLookup(GEO), ENDPOINTS)
    start = T0 // 1000
    # One VPC message: a custom header, a flow to RU, a capture gap, a truncated line.
    flows = (
        b"version srcaddr dstaddr dstport protocol bytes start end action log-status\n"
        + f"5 211.234.1.1 5.45.200.1 443 6 10 {start} {start + 60} ACCEPT OK\n".encode()
        + f"5 - - - - - {start} {start + 60} - NODATA\n".encode()
        + b"5 211.234.1.1 5.45.200.1 443"
    )
    messages: list[tuple[bytes | None, KafkaSource]] = [
        (flows, {"topic": "flows.vpc", "partition": 0, "offset": 5}),
        (orjson.dumps(api("a", T0)), {"topic": "telemetry.api", "partition": 0, "offset": 9}),
    ]
    metrics = Metrics(CollectorRegistry())
    options = FormatOptions("aliexpress", "KR", ("user.contact",))
    out = ingest(
        messages,
        PACK,
        resolver,
        1,
        metrics,
        now=start + 60,
        input_formats={"flows.vpc": "vpc-flow"},
        format_options=options,
    )
    assert out.records == {"egress": 1, "api_call": 1}
    assert out.skipped == {"vpc-flow:NODATA": 1}
    assert metrics.lines_skipped.labels("vpc-flow", "NODATA")._value.get() == 1
    [letter] = out.dead_letters
    assert letter["reason"] == "invalid_line"
    assert letter["source"] == {"topic": "flows.vpc", "partition": 0, "offset": 5, "index": 3}
    # The flow fires what the telemetry-v1 record it stands for fires.
    twin = egress("e", T0, "211.234.1.1", "5.45.200.1", dst_port=443, protocol="tcp")
    alone = ingest(
        [(orjson.dumps(twin), {"topic": "telemetry.egress", "partition": 0, "offset": 0})],
        PACK,
        resolver,
        1,
        now=start + 60,
    )
    also = ingest(messages[1:], PACK, resolver, 1, now=start + 60)

    def rules(o: Any) -> list[str]:
        return sorted(h["rule"] for hits in o.hits.values() for h in hits)

    assert rules(alone)
    assert rules(out) == sorted(rules(alone) + rules(also))
    # Without the setting, the same message is telemetry-v1, and no JSON.
    plain = ingest(messages[:1], PACK, resolver, 1, now=start + 60)
    assert [d["reason"] for d in plain.dead_letters] == ["invalid_json"] * 4


def test_a_flow_topic_is_attributed_by_its_own_fields_and_telemetry_by_its_own() -> None:
    import ipaddress

    from monitor.contract.attribution import Attributes, ServiceEntry, ServiceRegistry

    registry = ServiceRegistry(
        (
            # A VPC flow of this account: platform and subjects, but no categories...
            ServiceEntry(
                "account",
                Attributes("aliexpress", "KR"),
                workload_labels=(("account-id", "123456789010"),),
            ),
            # ...which this broader entry would give, were a flow matched twice.
            ServiceEntry(
                "network",
                Attributes("aliexpress", "KR", ("user.contact",)),
                src_cidrs=(ipaddress.ip_network("211.234.0.0/16"),),
            ),
        )
    )
    start = T0 // 1000
    vpc = f"2 123456789010 eni-1 211.234.1.1 5.45.200.1 5001 443 6 7 376 {start} {start + 60} ACCEPT OK"
    untagged = egress("t", T0, "211.234.1.1", "5.45.200.1")
    del untagged["data_categories"]
    messages: list[tuple[bytes | None, KafkaSource]] = [
        (vpc.encode(), {"topic": "flows.vpc", "partition": 0, "offset": 0}),
        (orjson.dumps(untagged), {"topic": "telemetry.egress", "partition": 0, "offset": 0}),
    ]
    resolver = Resolver(StaticLookup(GEO), ENDPOINTS)
    out = ingest(
        messages,
        PACK,
        resolver,
        1,
        now=start + 60,
        input_formats={"flows.vpc": "vpc-flow"},
        services=registry,
    )
    assert out.records == {"egress": 2} and out.dead_letters == []
    fired = {
        (e["source"].get("topic"), tuple(h["categories"]))
        for hits in out.hits.values()
        for h in hits
        for e in h["evidence"]
    }
    # The telemetry record gains the network entry's categories; the flow, first
    # matched by its account, stays without (not personal: nothing fires on it).
    assert fired == {("telemetry.egress", ("user.contact",))}
