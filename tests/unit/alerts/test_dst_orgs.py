"""Who received the data: the organisations an alert names beside the destination country."""

from __future__ import annotations

import random
from typing import cast

import orjson

from monitor import bounds
from monitor.alerts.grouping import Alert
from monitor.contract.decode import decode_line
from monitor.contract.schemas import Record
from monitor.detect.local import LocalDetector
from monitor.engine.ruletypes.threshold import ThresholdState
from monitor.geo.resolve import Resolver, StaticLookup
from tests.support.pack import ENDPOINTS, PACK
from tests.support.records import BULK, GEO, NLB, T0, api, egress, of, run


class AsnLookup(StaticLookup):
    """A static country map with an ASN database behind it."""

    def asn(self, ip: str) -> tuple[int, str] | None:
        return (37963, "Hangzhou Alibaba Advertising Co.,Ltd.") if ip == "47.92.1.1" else None


def test_recipient_named_by_the_record_is_the_organisation() -> None:
    records = [api("a", T0, legal_basis="none", recipient="Alibaba (China) Co., Ltd.")]
    (alert,) = of(run(records), NLB)
    assert alert["dst_orgs"] == ["Alibaba (China) Co., Ltd."]


def test_without_a_recipient_the_asn_organisation_of_dst_ip() -> None:
    detector = LocalDetector(PACK, Resolver(AsnLookup(GEO), ENDPOINTS), clock=lambda: 0.0)
    got = decode_line(orjson.dumps(api("a", T0, legal_basis="none")), {"file": "t", "line": 1})
    assert isinstance(got, Record)
    ((rule, group),) = [
        (r, g) for r, g in detector.process(got, {"file": "t", "line": 1}) if r.id == NLB
    ]
    assert detector.alert(rule, group)["dst_orgs"] == ["Hangzhou Alibaba Advertising Co.,Ltd."]


def test_unknown_organisation_leaves_the_field_out() -> None:
    alerts = run([api("a", T0, legal_basis="none")])
    assert alerts and all("dst_orgs" not in a for a in alerts)


def _orgs_alert(records: list[dict[str, object]]) -> Alert:
    (alert,) = of(run(records), NLB)
    return alert


def test_organisations_of_a_group_are_a_bounded_sorted_union_in_any_order() -> None:
    names = [f"Org {i:02d}" for i in range(12)]
    records = [
        api(f"e{i}", T0 + i * 60_000, legal_basis="none", recipient=name)
        for i, name in enumerate(names)
    ]
    records.append(records[0])  # a redelivery
    alert = _orgs_alert(records)
    assert alert["dst_orgs"] == names[: bounds.MAX_ORGS]
    assert alert["truncated"] is True
    shuffled = records[:]
    random.Random(3).shuffle(shuffled)
    assert _orgs_alert(shuffled)["dst_orgs"] == alert["dst_orgs"]


def test_a_few_organisations_are_not_truncated_and_egress_has_them_too() -> None:
    records = [
        api("a", T0, legal_basis="none", recipient="B Corp"),
        api("b", T0, legal_basis="none", recipient="A Corp"),
        api("c", T0, legal_basis="none", recipient="B Corp"),
    ]
    alert = _orgs_alert(records)
    assert alert["dst_orgs"] == ["A Corp", "B Corp"]
    assert alert["truncated"] is False
    flows = [egress("x", T0, "211.234.1.1", "47.92.1.1", platform="temu")]
    detector = LocalDetector(PACK, Resolver(AsnLookup(GEO), ENDPOINTS), clock=lambda: 0.0)
    got = decode_line(orjson.dumps(flows[0]), {"file": "t", "line": 1})
    assert isinstance(got, Record)
    fired = detector.process(got, {"file": "t", "line": 1})
    assert fired
    for rule, group in fired:
        assert detector.alert(rule, group)["dst_orgs"] == ["Hangzhou Alibaba Advertising Co.,Ltd."]


# --- threshold rules: the organisations of the records their windows count ------------------


def _bulk(eid: str, minute: int, recipient: str | None, records: int = 60_000) -> dict[str, object]:
    extra: dict[str, object] = {"recipient": recipient} if recipient is not None else {}
    return api(eid, T0 + minute * 60_000, legal_basis="contract", records=records, **extra)


def test_bulk_volume_names_the_organisations_of_the_records_it_counts() -> None:
    # Two minutes cross together; a record hours later in the same day crosses nothing:
    # it is not counted, and neither is its recipient named.
    records = [_bulk("a", 0, "B Corp"), _bulk("b", 1, "A Corp"), _bulk("c", 300, "Cold Corp", 5)]
    (alert,) = of(run(records), BULK)
    assert alert["records"] == 120_000
    assert alert["dst_orgs"] == ["A Corp", "B Corp"]
    assert alert["truncated"] is False
    (again,) = of(run(records[::-1]), BULK)
    assert again["dst_orgs"] == alert["dst_orgs"]


def test_bulk_volume_organisations_are_bounded_sorted_and_order_free() -> None:
    names = [f"Org {i:02d}" for i in range(12)]
    # Several organisations in one minute too: a bucket keeps the sorted first MAX_ORGS.
    records = [_bulk(f"e{i}", i // 3, name, 10_000) for i, name in enumerate(names)]
    (alert,) = of(run(records), BULK)
    assert alert["dst_orgs"] == names[: bounds.MAX_ORGS]
    assert alert["truncated"] is True
    shuffled = records[:]
    random.Random(5).shuffle(shuffled)
    (again,) = of(run(shuffled), BULK)
    assert again["dst_orgs"] == alert["dst_orgs"]


def test_bulk_volume_without_recipients_names_the_asn_organisation_or_none() -> None:
    records = [_bulk("a", 0, None), _bulk("b", 1, None)]
    (alert,) = of(run(records), BULK)
    assert "dst_orgs" not in alert
    detector = LocalDetector(PACK, Resolver(AsnLookup(GEO), ENDPOINTS), clock=lambda: 0.0)
    for n, obj in enumerate(records, 1):
        got = decode_line(orjson.dumps(obj), {"file": "t", "line": n})
        assert isinstance(got, Record)
        detector.process(got, {"file": "t", "line": n})
    (found,) = [detector.alert(r, g) for r, g in detector.open_groups() if r.id == BULK]
    assert found["dst_orgs"] == ["Hangzhou Alibaba Advertising Co.,Ltd."]


def test_bulk_volume_state_written_before_organisations_were_kept_still_reads() -> None:
    detector = LocalDetector(PACK, Resolver(StaticLookup(GEO), ENDPOINTS), clock=lambda: 0.0)

    def feed(obj: dict[str, object], n: int) -> None:
        got = decode_line(orjson.dumps(obj), {"file": "t", "line": n})
        assert isinstance(got, Record)
        detector.process(got, {"file": "t", "line": n})

    feed(_bulk("a", 0, "B Corp"), 1)
    store = detector.stores[BULK]
    for key in list(store):
        value = cast(ThresholdState, store[key])
        for bucket in value["buckets"].values():
            del bucket[8:]  # the eight fields buckets had
        store[key] = value
    feed(_bulk("b", 0, "A Corp"), 2)
    feed(_bulk("c", 1, "C Corp"), 3)
    (alert,) = [detector.alert(r, g) for r, g in detector.open_groups() if r.id == BULK]
    # The first record's organisation went with the old state; the others are named.
    assert alert["dst_orgs"] == ["A Corp", "C Corp"]
