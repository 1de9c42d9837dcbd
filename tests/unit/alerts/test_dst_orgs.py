"""Who received the data: the organisations an alert names beside the destination country."""

from __future__ import annotations

import random

import orjson

from monitor import bounds
from monitor.alerts.grouping import Alert
from monitor.contract.decode import decode_line
from monitor.contract.schemas import Record
from monitor.detect.local import LocalDetector
from monitor.geo.resolve import Resolver, StaticLookup
from tests.support.pack import ENDPOINTS, PACK
from tests.support.records import GEO, NLB, T0, api, egress, of, run


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
