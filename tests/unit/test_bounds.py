"""Hostile but valid records: every value the monitor builds stays bounded, nothing crashes.

Each case is one of issue 8's findings, reproduced with the records that
broke the monitor before: sums past 2^64-1, alert groups unioning thousands
of labels, one call naming 1,000 subjects, one subject with thousands of
calls, a record stamped in the year 9999, and a stage raising on a record.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from monitor import bounds
from monitor.alerts.grouping import AlertContext, AlertGrouper, Groups
from monitor.contract.schemas import FileSource, KafkaSource
from monitor.detect.local import PROCESSING_ERROR, evaluate_batch
from monitor.detect.stages import Failures, apply_routed, group_hits, ingest
from monitor.engine.model import RecordRef
from monitor.engine.ruletypes import StateValue
from monitor.engine.ruletypes.consent import CallItem, ConsentItem, ConsentRule, ConsentState
from monitor.engine.state import MemorySeen, MemoryStore
from monitor.geo.resolve import FlowState, Resolver, StaticLookup
from monitor.metrics import Metrics
from tests.support.pack import ENDPOINTS, PACK
from tests.support.records import BULK, GEO, NLB, T0, H, api, egress, of, run
from tests.support.replay import run_replay

CONSENT = "pipa.xborder.consent_withdrawn"
ONWARD = "pipa.xborder.onward_transfer"
MAX = bounds.COUNT_MAX


def labels(prefix: str, n: int) -> list[str]:
    return [f"user.{prefix}{i:05d}" for i in range(n)]


def write(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    return path


# --- sums ----------------------------------------------------------------------


def test_counts_saturate_instead_of_overflowing(tmp_path: Path, country_db: Path) -> None:
    """`records` of 2^64-1 and 1, mid-file: replay exits 0 with every alert, the sums saturated."""
    before = [api("x1", T0 - H, platform="temu", dst_ip="47.92.1.10")]
    huge = [
        api("h1", T0, records=MAX, dst_ip="47.92.1.10"),
        api("h2", T0 + 60_000, records=1, dst_ip="47.92.1.10"),
        api("h3", T0 + 120_000, records=1, dst_ip="47.92.1.10"),
    ]
    after = [api("x2", T0 + 2 * H, platform="shein", dst_ip="47.92.1.10")]
    path = write(tmp_path / "in.jsonl", before + huge + after)
    code, alerts, dead = run_replay(tmp_path, [path], country_db)
    assert code == 0 and dead == []
    by_platform = {a["platform"]: a for a in alerts if a["rule_id"] == NLB}
    assert set(by_platform) == {"aliexpress", "shein", "temu"}
    big = by_platform["aliexpress"]
    assert big["records"] == MAX and big["truncated"] is True and big["event_count"] == 3
    assert by_platform["shein"]["truncated"] is False
    (bulk,) = (a for a in alerts if a["rule_id"] == BULK)
    assert bulk["records"] == MAX and bulk["truncated"] is True


def test_bytes_saturate_too() -> None:
    pair = [
        egress("e1", T0, "211.234.1.1", "5.45.200.1", bytes=MAX, src_country="KR"),
        egress("e2", T0 + 1000, "211.234.1.1", "5.45.200.1", bytes=1, src_country="KR"),
    ]
    (alert,) = run(pair)
    assert alert["bytes"] == MAX and alert["truncated"] is True
    orjson.dumps(alert)


# --- labels --------------------------------------------------------------------


def test_category_union_of_a_group_is_bounded_and_order_free() -> None:
    """Two records of 20,000 distinct labels each: the group keeps 64, whichever comes first."""
    a = api("a", T0, data_categories=labels("a", 20_000))
    b = api("b", T0 + 60_000, data_categories=labels("b", 20_000))
    forward = of(run([a, b]), NLB)
    backward = of(run([b, a]), NLB)
    assert forward[0]["data_categories"] == backward[0]["data_categories"]
    kept = forward[0]["data_categories"]
    assert len(kept) == bounds.MAX_CATEGORIES and kept == sorted(kept)
    assert forward[0]["truncated"] is True
    assert len(orjson.dumps(forward[0])) < 64 * 1024


def test_bounded_categories_of_a_union_equal_those_of_the_whole() -> None:
    rng = random.Random(5)
    pool = [*labels("p", 300), "user." + "x" * 200]  # one label too long to keep
    for _ in range(200):
        sets = [rng.sample(pool, rng.randint(0, 120)) for _ in range(rng.randint(1, 5))]
        whole, _ = bounds.categories({x for s in sets for x in s})
        folded: set[str] = set()
        for s in rng.sample(sets, len(sets)):
            part, _ = bounds.categories(s)
            folded = set(bounds.categories(folded | set(part))[0])
        assert sorted(folded) == sorted(whole)


def test_a_label_longer_than_the_bound_matches_but_is_not_kept() -> None:
    long = "user.contact." + "x" * 500
    (alert,) = of(run([api("a", T0, data_categories=[long, "user.name"])]), NLB)
    assert alert["data_categories"] == ["user.name"] and alert["truncated"] is True


# --- subjects and consent history -------------------------------------------------


def test_one_call_naming_1000_subjects_routes_bounded_items() -> None:
    """Each subject's item carries at most 32 labels: 1,000 subjects stay a few MB, not a GB."""
    resolver = Resolver(StaticLookup(GEO), ENDPOINTS)
    record = api(
        "s",
        T0,
        subject_ids=[f"subject-{i}" for i in range(1000)],
        data_categories=labels("c", 30_000),
        legal_basis="consent",
    )
    out = ingest(
        [(orjson.dumps(record), {"topic": "t", "partition": 0, "offset": 0})], PACK, resolver, 4
    )
    items = [m for part in out.routed.values() for m in part if m["rule"] == CONSENT]
    assert len(items) == 1000
    sizes = [len(orjson.dumps(m)) for m in items]
    assert max(sizes) < 8 * 1024
    item = items[0]["item"]
    assert "flow" in item
    flow = item["flow"]
    assert len(flow["data_categories"]) == bounds.MAX_RECORD_CATEGORIES and flow["truncated"]


def consent(eid: str, ts: int, granted: bool) -> ConsentItem:
    return {"role": "consent", "event_id": eid, "ts": ts, "granted": granted, "countries": ["*"]}


def call(eid: str, ts: int) -> CallItem:
    flow: FlowState = {
        "kind": "api_call", "event_id": eid, "ts": ts, "platform": "temu", "src_country": "KR",
        "dst_country": "CN", "subject_region": "KR", "dataset_id": None, "bytes": 1,
        "records": 1, "data_categories": ["user.contact"], "source": {"file": "f", "line": 1},
    }  # fmt: skip
    return {"role": "call", "flow": flow}


def test_one_subject_keeps_a_bounded_history_and_still_fires() -> None:
    rule = PACK.by_id[CONSENT].type
    assert isinstance(rule, ConsentRule)
    store, seen = MemoryStore[ConsentState](), MemorySeen()
    key = f"{CONSENT}|subject"
    reached = bounds.REACHED["calls"], bounds.REACHED["consents"]
    for i in range(8_000):
        rule.apply(store, seen, key, call(f"c{i}", T0 + i * 1000))
    for i in range(200):
        rule.apply(store, seen, key, consent(f"k{i}", T0 + i, True))
    value = store[key]
    assert len(value["calls"]) == bounds.MAX_CALLS_PER_SUBJECT
    assert len(value["consents"]) == bounds.MAX_CONSENTS_PER_SUBJECT
    assert bounds.REACHED["calls"] > reached[0] and bounds.REACHED["consents"] > reached[1]
    # The newest calls are the ones kept, and a late withdrawal still reaches them.
    kept = bounds.MAX_CALLS_PER_SUBJECT
    assert min(c["flow"]["ts"] for c in value["calls"]) == T0 + (8_000 - kept) * 1000
    hits = rule.apply(store, seen, key, consent("w", T0 + 7_980 * 1000, False))
    assert len(hits) == 20  # the kept calls at or after the withdrawal


def test_bounds_reached_are_exported() -> None:
    registry = CollectorRegistry()
    Metrics(registry)
    bounds.add(MAX, 1)
    text = generate_latest(registry).decode()
    line = next(
        x for x in text.splitlines() if x.startswith('xborder_bounds_reached_total{bound="count"}')
    )
    assert float(line.split()[-1]) >= 1


# --- stream time -----------------------------------------------------------------


def test_far_future_record_is_dead_lettered_and_expires_nothing(
    tmp_path: Path, country_db: Path
) -> None:
    """A record of the year 9999 between the two hops of an onward transfer: still detected."""
    first = egress("hop1", T0, "211.234.1.10", "47.92.1.10", dataset_id="orders", src_country="KR")
    future = egress("late", 253_402_300_000_000, "211.234.1.10", "47.92.1.10", dataset_id="orders")
    second = egress("hop2", T0 + H, "47.92.1.10", "5.45.200.1", dataset_id="orders")
    lines = [first, future] + [api(f"f{i}", T0 + i) for i in range(3000)] + [second]
    path = write(tmp_path / "in.jsonl", lines)
    code, alerts, dead = run_replay(tmp_path, [path], country_db)
    assert code == 0
    assert [(d["reason"], d["source"]["line"]) for d in dead] == [(PROCESSING_ERROR, 2)]
    assert "ahead of the clock" in dead[0]["detail"]
    assert orjson.loads(dead[0]["raw"])["event_id"] == "late"
    assert [a["rule_id"] for a in alerts].count(ONWARD) == 1


def test_worker_ingest_dead_letters_records_ahead_of_the_clock() -> None:
    resolver = Resolver(StaticLookup(GEO), ENDPOINTS)
    now = T0 / 1000
    messages: list[tuple[bytes, KafkaSource]] = [
        (orjson.dumps(api("ok", T0 + 59 * 60_000)), {"topic": "t", "partition": 0, "offset": 0}),
        (orjson.dumps(api("ahead", T0 + 61 * 60_000)), {"topic": "t", "partition": 0, "offset": 1}),
    ]
    out = ingest(messages, PACK, resolver, 1, now=now, max_skew_ms=H)
    assert [(d["reason"], d["source"]["offset"]) for d in out.dead_letters] == [
        (PROCESSING_ERROR, 1)
    ]
    assert out.records["api_call"] == 1
    assert [h["evidence"][0]["event_id"] for h in out.hits[0]] == ["ok"]


# --- a stage raising on a record ---------------------------------------------------


class Poisoned(Resolver):
    """Raises on one event id, as a bug of the monitor would."""

    def resolve(self, record: Any, source: Any) -> Any:
        if record.event_id == "poison":
            raise ValueError("boom")
        return super().resolve(record, source)


def test_replay_dead_letters_a_record_a_stage_raises_on(
    tmp_path: Path, country_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("monitor.config.runtime.Resolver", Poisoned)
    records = [api(f"a{i}", T0 + i * 1000, dst_ip="47.92.1.10") for i in range(5)]
    records.insert(2, api("poison", T0 + 1500, dst_ip="47.92.1.10"))
    path = write(tmp_path / "in.jsonl", records)
    code, alerts, dead = run_replay(tmp_path, [path], country_db)
    assert code == 0
    assert [(d["reason"], d["source"]["line"], d["detail"]) for d in dead] == [
        (PROCESSING_ERROR, 3, "evaluate: ValueError")
    ]
    (alert,) = (a for a in alerts if a["rule_id"] == NLB)
    assert alert["event_count"] == 5  # every other record, none counted twice


def test_ingest_sets_aside_only_the_message_that_raises() -> None:
    resolver = Poisoned(StaticLookup(GEO), ENDPOINTS)
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    messages: list[tuple[bytes, KafkaSource]] = [
        (orjson.dumps(api(eid, T0)), {"topic": "t", "partition": 0, "offset": i})
        for i, eid in enumerate(["a", "poison", "b"])
    ]
    out = ingest(messages, PACK, resolver, 1, metrics, now=T0 / 1000)
    assert [(d["reason"], d["source"]["offset"], d["detail"]) for d in out.dead_letters] == [
        (PROCESSING_ERROR, 1, "ingest: ValueError")
    ]
    assert sorted(h["evidence"][0]["event_id"] for h in out.hits[0] if h["rule"] == NLB) == [
        "a",
        "b",
    ]
    assert registry.get_sample_value("xborder_processing_errors_total", {"stage": "ingest"}) == 1


def test_state_and_group_stages_set_aside_what_raises() -> None:
    resolver = Resolver(StaticLookup(GEO), ENDPOINTS)
    recs = [api(f"b{i}", T0 + i * 1000, legal_basis="contract", records=60_000) for i in range(2)]
    msgs: list[tuple[bytes, KafkaSource]] = [
        (orjson.dumps(r), {"topic": "t", "partition": 0, "offset": i}) for i, r in enumerate(recs)
    ]
    out = ingest(msgs, PACK, resolver, 1, now=T0 / 1000)
    bad: Any = {"rule": BULK, "key": f"{BULK}|bad", "item": {"window": "x"}}
    items = [*out.routed[0], bad]
    failures = Failures({"topic": "state", "partition": 0, "offset": 9})
    hits = apply_routed(items, PACK, MemoryStore[StateValue](), MemorySeen(), 1, failures)
    assert [h["rule"] for h in hits[0]] == [BULK]
    assert [(d.reason, d.source, d.detail) for d in failures.letters] == [
        (PROCESSING_ERROR, {"topic": "state", "partition": 0, "offset": 9}, "state: KeyError")
    ]
    grouper = AlertGrouper(PACK, MemoryStore[Groups](), MemorySeen())
    broken: Any = {**hits[0][0], "first_seen": None}
    failures = Failures({"topic": "hits", "partition": 0, "offset": 3})
    emitted = group_hits([broken, *hits[0]], PACK, grouper, AlertContext("v", None), 0, failures)
    assert [e.rule_id for e in emitted] == [BULK]
    assert [d.detail for d in failures.letters] == ["group: TypeError"]
    assert failures.letters[0].source == hits[0][0]["evidence"][0]["source"]
    with pytest.raises(KeyError):
        apply_routed(items, PACK, MemoryStore(), MemorySeen(), 1)


def test_errors_of_the_infrastructure_are_not_set_aside_as_the_items_fault() -> None:
    """A broker or framework error says nothing about the item: dead-lettering it would lose it."""

    class BrokerDown(Exception):
        pass

    class FailingStore(MemoryStore[Any]):
        def __setitem__(self, key: str, value: Any) -> None:
            raise BrokerDown

    resolver = Resolver(StaticLookup(GEO), ENDPOINTS)
    recs = [api(f"b{i}", T0 + i * 1000, legal_basis="contract", records=60_000) for i in range(2)]
    msgs: list[tuple[bytes, KafkaSource]] = [
        (orjson.dumps(r), {"topic": "t", "partition": 0, "offset": i}) for i, r in enumerate(recs)
    ]
    out = ingest(msgs, PACK, resolver, 1, now=T0 / 1000)
    failures = Failures({"topic": "state", "partition": 0, "offset": 1}, passthrough=(BrokerDown,))
    with pytest.raises(BrokerDown):
        apply_routed(out.routed[0], PACK, FailingStore(), MemorySeen(), 1, failures)
    hits = apply_routed(out.routed[0], PACK, MemoryStore(), MemorySeen(), 1)[0]
    assert hits
    grouper = AlertGrouper(PACK, FailingStore(), MemorySeen())
    with pytest.raises(BrokerDown):
        group_hits(hits, PACK, grouper, AlertContext("v", None), 0, failures)
    assert failures.letters == []


def test_routed_items_of_a_batch_stay_within_a_message() -> None:
    """Bulk items split by ids; each routed item of hostile records fits a Kafka message."""
    resolver = Resolver(StaticLookup(GEO), ENDPOINTS)
    recs = [
        api(f"r{i}", T0 + i, records=MAX, data_categories=labels(f"r{i}x", 2000), dataset_id="d")
        for i in range(20)
    ]
    flows = [resolver.resolve(_decoded(r), {"file": "f", "line": i}) for i, r in enumerate(recs)]
    hits, routed = evaluate_batch(PACK, flows)
    biggest = max(len(orjson.dumps(x)) for x in [*hits, *(item for _, _, item in routed)])
    assert biggest < 64 * 1024


def _decoded(obj: dict[str, Any]) -> Any:
    from monitor.contract.decode import check

    got = check(orjson.dumps(obj))
    assert not isinstance(got, str), got
    return got


def test_state_values_of_hostile_keys_stay_under_a_kafka_message() -> None:
    """Many windows, datasets' hops and groups per key: the oldest go, each value stays small."""
    long_source: FileSource = {"file": "f" * 4000, "line": 1}
    detector_records = [
        api(
            f"w{i}",
            T0 - i * 25 * H,  # each in a window and a group window of its own
            dataset_id="d" * 4000,
            records=120_000,
            legal_basis="contract",
            data_categories=labels(f"x{i}", 100),
        )
        for i in range(60)
    ]
    # More minutes of one key than a key keeps buckets for, with the longest labels and
    # more of the longest receiving organisations a minute than a bucket keeps.
    longest = "x" * (bounds.MAX_LABEL - 20)
    detector_records += [
        api(f"m{i}-{j}", T0 + 100 * H + i * 60_000 + j, records=1, legal_basis="contract",
            data_categories=labels(f"{longest}{i}", 100), recipient=f"{longest}{i}-{j}")
        for i in range(bounds.MAX_BUCKETS_PER_KEY + 10)
        for j in range(bounds.MAX_ORGS + 1)
    ]  # fmt: skip
    detector_records += [
        egress(f"h{i}", T0 + i, "47.92.1.1", "5.45.200.1", dataset_id="e" * 4000, src_country="CN")
        for i in range(300)
    ]
    from monitor.detect.local import LocalDetector

    detector = LocalDetector(PACK, Resolver(StaticLookup(GEO), ENDPOINTS), clock=lambda: T0 / 1000)
    for obj in detector_records:
        detector.process_batch([_decoded(obj)], [long_source])
    sizes = {
        rule_id: max((len(orjson.dumps(v)) for v in store.values()), default=0)
        for rule_id, store in detector.stores.items()
    }
    sizes["groups"] = max(len(orjson.dumps(v)) for v in detector.groups.values())
    assert max(sizes.values()) < 900 * 1024, sizes
    assert bounds.REACHED["windows"] and bounds.REACHED["groups"] and bounds.REACHED["hops"]


def test_first_hops_keep_the_newest_across_countries() -> None:
    from monitor.engine.ruletypes.onward import _keep_newest_hops

    at: FileSource = {"file": "f", "line": 1}
    first: dict[str, list[RecordRef]] = {
        c: [{"event_id": f"{c}{i}", "ts": i * 10 + n, "source": at} for i in range(4)]
        for n, c in enumerate(["CN", "SG", "RU"])
    }
    _keep_newest_hops(first, 5)
    kept = sorted((h["ts"], h["event_id"]) for hops in first.values() for h in hops)
    assert kept == [(21, "SG2"), (22, "RU2"), (30, "CN3"), (31, "SG3"), (32, "RU3")]
