"""Alert grouping, dedup, windows and the stateful rule types, through the shared core."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import orjson

from monitor.alerts.grouping import AlertContext, AlertGroup, Groups, alert_id, build_alert, iso_ms
from monitor.alerts.windows import DAY_MS, window_start
from monitor.contract.decode import decode_line
from monitor.contract.schemas import Record
from monitor.engine.loader import load_pack
from monitor.geo.resolve import Resolver, StaticLookup
from tests.support.hostile_config import edit
from tests.support.pack import DISCLOSURES, ENDPOINTS, PACK, copy_pack
from tests.support.records import BULK, GEO, NLB, T0, H, api, egress, of, run


def test_group_window_is_the_calendar_day_in_seoul() -> None:
    # T0 is 09:00 in Seoul: T0 + 23 h is 08:00 the next day there, so it no
    # longer joins T0's group (it did when the first match opened 24 hours).
    alerts = of(run([api("a", T0), api("b", T0 + 23 * H), api("c", T0 + 25 * H)]), NLB)
    assert [a["event_count"] for a in alerts] == [1, 2]
    assert alerts[0]["alert_id"] != alerts[1]["alert_id"]
    # 23:59:59.999 in Seoul still belongs to the day T0 falls on.
    day_end = T0 + 15 * H - 1
    (alert,) = of(run([api("a", T0), api("b", day_end)]), NLB)
    assert alert["event_count"] == 2


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


def test_bulk_volume_records_an_hour_apart_are_separate() -> None:
    recs = [api(f"b{i}", T0 + i * H, legal_basis="contract", records=90000) for i in range(3)]
    assert of(run(recs), "pipa.xborder.bulk_volume") == []


def _bulk(eid: str, minute: int, records: int = 60000) -> dict[str, Any]:
    # T0 is midnight: minute 50 is 00:50, minute 70 is 01:10.
    return api(eid, T0 + minute * 60_000, legal_basis="contract", records=records)


def test_bulk_volume_spans_slide_across_clock_hours() -> None:
    """60,000 at 00:50 and 60,000 at 01:10: one 60-minute span, though two clock hours."""
    (alert,) = of(run([_bulk("a", 50), _bulk("b", 70)]), BULK)
    assert alert["event_count"] == 2 and alert["records"] == 120000
    assert alert["span"] == {
        "start": iso_ms(T0 + 50 * 60_000),
        "end": iso_ms(T0 + 70 * 60_000),
        "sum": "records",
        "total": 120000,
        "event_count": 2,
    }


def test_bulk_volume_records_seventy_minutes_apart_do_not_fire() -> None:
    assert of(run([_bulk("a", 50), _bulk("b", 120)]), BULK) == []
    assert of(run([_bulk("b", 120), _bulk("a", 50)]), BULK) == []


def test_bulk_volume_a_redelivered_record_does_not_count_twice() -> None:
    assert of(run([_bulk("a", 50), _bulk("a", 50), _bulk("a", 50)]), BULK) == []
    (alert,) = of(run([_bulk("a", 50), _bulk("b", 70), _bulk("a", 50), _bulk("b", 70)]), BULK)
    assert alert["event_count"] == 2 and alert["records"] == 120000
    assert alert["span"]["total"] == 120000


def test_bulk_volume_a_growing_span_updates_one_alert_and_names_the_heaviest_span() -> None:
    recs = [_bulk("a", 50), _bulk("b", 70), _bulk("c", 100, 30000), _bulk("d", 200, 10)]
    (alert,) = of(run(recs), BULK)
    # d is 100 minutes after c: in no span that crossed. a..c lie within 60 minutes.
    assert alert["event_count"] == 3 and alert["records"] == 150000
    assert alert["span"]["total"] == 150000 and alert["span"]["end"] == iso_ms(T0 + 100 * 60_000)


def test_bulk_volume_decision_and_totals_do_not_depend_on_order() -> None:
    recs = [
        _bulk("a", 10, 30000),
        _bulk("b", 50, 40000),
        _bulk("c", 75, 40000),
        _bulk("d", 109, 25000),
        _bulk("e", 200, 90000),
        _bulk("f", 290, 20000),
        _bulk("b", 50, 40000),
    ]
    expected = None
    for seed in range(12):
        shuffled = recs[:]
        random.Random(seed).shuffle(shuffled)
        (alert,) = of(run(shuffled), BULK)
        got = (alert["event_count"], alert["records"], alert["span"], alert["first_seen"])
        assert expected is None or got == expected, seed
        expected = got
    # a is 65 minutes before c and has 70,000 with b alone; b+c+d, within 59
    # minutes, make 105,000; e and f are 90 minutes apart.
    assert expected is not None and expected[:2] == (3, 105000)
    assert expected[2]["total"] == 105000 and expected[2]["event_count"] == 3


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


def test_an_onward_chain_fires_for_each_hop_in_any_order_and_shows_the_chain() -> None:
    """Korea -> China -> Russia -> Singapore: the dataset passed on twice, two alerts."""
    from itertools import permutations

    hops = [
        egress("h1", T0, "211.234.1.1", "47.92.1.1", dataset_id="d"),
        egress("h2", T0 + H, "47.92.1.1", "5.45.200.1", dataset_id="d"),
        egress("h3", T0 + 2 * H, "5.45.200.1", "8.219.1.1", dataset_id="d"),
    ]
    for order in permutations(hops):
        alerts = of(run(list(order)), "pipa.xborder.onward_transfer")
        assert [(a["src_country"], a["dst_country"]) for a in alerts] == [
            ("CN", "RU"),
            ("RU", "SG"),
        ]
        to_russia, to_singapore = (a["evidence"][0] for a in alerts)
        assert to_russia["first_hop"]["event_id"] == "h1"
        assert "via" not in to_russia["first_hop"]
        # The hop that took the data to Russia, and the one before it, from home.
        assert to_singapore["first_hop"]["event_id"] == "h2"
        assert [v["event_id"] for v in to_singapore["first_hop"]["via"]] == ["h1"]
    # Without the hop from home there is no chain to follow.
    assert of(run(hops[1:]), "pipa.xborder.onward_transfer") == []


def test_an_unresolved_country_is_no_hop_of_an_onward_transfer() -> None:
    """A pack whose first hop does not ask for a resolved destination: its state stays JSON."""
    from monitor.engine.ruletypes.onward import OnwardRule, OnwardState
    from monitor.engine.state import MemorySeen, MemoryStore

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


def test_groups_and_ids_do_not_depend_on_arrival_order() -> None:
    """Windows are calendar days in Seoul: a group is not opened by whichever record came first."""
    records = [api(f"e{i}", T0 + i * 5 * H) for i in range(8)]  # 09:00 on Oct 1 to 20:00 Oct 2

    def outcome(order: list[dict[str, Any]]) -> list[tuple[str, int, str, str]]:
        alerts = of(run(order), NLB)
        return [(a["alert_id"], a["event_count"], a["first_seen"], a["last_seen"]) for a in alerts]

    expected = outcome(records)
    assert [n for _, n, _, _ in expected] == [3, 5]  # 09:00-19:00, then from 00:00 on Oct 2
    assert outcome(records[::-1]) == expected
    assert outcome(records[3:] + records[:3]) == expected


def test_alert_id_hashes_the_rule_the_group_key_and_the_window_start_only() -> None:

    rule = PACK.by_id[NLB]
    start = window_start(T0, DAY_MS, rule.group_zone)
    key = f"{NLB}|platform=aliexpress|src_country=KR|dst_country=CN"
    # Whichever record of the day comes, the day's alert has one id.
    for first in (T0, start, start + DAY_MS - 1):
        (alert,) = of(run([api("a", first), api("b", T0)]), NLB)
        assert alert["alert_id"] == alert_id(key, start)


def test_a_crossing_span_over_midnight_fires_in_both_days_and_each_names_it(
    tmp_path: Path,
) -> None:
    """Alerts are per calendar day: a span that crosses midnight there is named by both days'.

    In Kolkata (UTC+05:30, a zone whose days are not whole UTC hours).
    """
    rules = copy_pack(tmp_path)
    edit(
        rules / "detections" / "bulk_volume.yaml",
        "group_by: [platform, dst_country]\n",
        "group_by: [platform, dst_country]\ngroup_time_zone: Asia/Kolkata\n",
    )
    pack = load_pack(rules, DISCLOSURES)
    hour = T0 + 18 * H  # 18:00-19:00 UTC is 23:30-00:30 in Kolkata
    before, after = hour + 10 * 60_000, hour + 40 * 60_000  # 23:40 and 00:10 there
    recs = [
        api(e, ts, legal_basis="contract", records=60000)
        for e, ts in (("b1", before), ("b2", after))
    ]
    zone = pack.by_id[BULK].group_zone
    day = window_start(before, DAY_MS, zone)
    assert window_start(after, DAY_MS, zone) == day + DAY_MS
    key = f"{BULK}|platform=aliexpress|dst_country=CN"
    for order in (recs, recs[::-1]):
        first, second = sorted(of(run(order, pack), BULK), key=lambda a: a["first_seen"])
        assert (first["alert_id"], second["alert_id"]) == (
            alert_id(key, day),
            alert_id(key, day + DAY_MS),
        )
        for alert, ts in ((first, before), (second, after)):
            assert alert["event_count"] == 1 and alert["records"] == 60000
            assert alert["first_seen"] == alert["last_seen"] == iso_ms(ts)
            assert alert["span"]["total"] == 120000
            assert (alert["span"]["start"], alert["span"]["end"]) == (iso_ms(before), iso_ms(after))
