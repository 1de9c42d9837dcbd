"""Flow attribution applied: foreign formats through the hook, telemetry-v1 records after decoding."""

from __future__ import annotations

import ipaddress
from typing import Any

import orjson

from monitor.contract.attribution import (
    Attributes,
    ServiceEntry,
    ServiceRegistry,
    attribute_records,
    labels_of,
    message_labels,
)
from monitor.contract.decode import decode_messages
from monitor.contract.formats import FormatOptions, LineAdapter
from monitor.contract.schemas import KafkaSource, Record

ORDERS = Attributes("temu", "KR", ("user.contact.email",), "temu-kr-orders")
REGISTRY = ServiceRegistry(
    (
        ServiceEntry("orders", ORDERS, workload_labels=(("account-id", "123456789010"),)),
        ServiceEntry(
            "payments",
            Attributes("temu", "KR", ("user.payment",)),
            src_cidrs=(ipaddress.ip_network("10.8.0.0/16"),),
        ),
        ServiceEntry(
            "crm", Attributes(None, "JP", ("user.name",), "crm"), services=frozenset({"crm"})
        ),
        ServiceEntry(
            "ocsf-svc",
            Attributes("shein", "KR", ("user.contact",)),
            services=frozenset({"checkout-api"}),
        ),
    )
)
VPC = b"2 123456789010 eni-1 10.0.0.62 52.213.180.42 443 43416 6 7 376 1566848875 1566848933 ACCEPT OK"


def one(fmt: str, line: bytes, options: FormatOptions) -> Record:
    got = LineAdapter(fmt, options).feed(line, {"file": "f", "line": 1})
    assert isinstance(got, Record), got
    return got


def with_registry(**options: Any) -> FormatOptions:
    return FormatOptions(attribute=REGISTRY.attribute, **options)


# --- foreign formats -----------------------------------------------------------------


def test_a_vpc_flow_is_attributed_by_its_account_without_any_flag() -> None:
    r = one("vpc-flow", VPC, with_registry())
    assert (r.platform, r.subject_region, r.data_categories, r.dataset_id) == (
        "temu",
        "KR",
        ("user.contact.email",),
        "temu-kr-orders",
    )


def test_the_registry_wins_over_the_run_wide_flags_which_fill_what_it_leaves() -> None:
    flags = with_registry(platform="acme", subject_region="US", data_categories=("user",))
    r = one("vpc-flow", VPC, flags)
    assert (r.platform, r.subject_region, r.data_categories) == (
        "temu",
        "KR",
        ("user.contact.email",),
    )
    # Another account: the registry knows nothing; the flags stand.
    other = one("vpc-flow", VPC.replace(b"123456789010", b"999999999999"), flags)
    assert (other.platform, other.subject_region, other.data_categories, other.dataset_id) == (
        "acme",
        "US",
        ("user",),
        None,
    )
    # The crm entry names no platform: the flag gives it, the entry the rest.
    crm = FormatOptions(
        platform="acme", attribute=lambda ip, svc, own: REGISTRY.attribute(ip, "crm", own)
    )
    r = one("vpc-flow", VPC.replace(b"123456789010", b"999999999999"), crm)
    assert (r.platform, r.subject_region, r.dataset_id) == ("acme", "JP", "crm")


def test_an_ocsf_event_is_matched_by_its_service_name() -> None:
    event = {
        "class_uid": 4001,
        "time": 1729052821000,
        "metadata": {"uid": "e1"},
        "src_endpoint": {"ip": "192.0.2.1", "svc_name": "checkout-api"},
        "dst_endpoint": {"ip": "37.120.182.208", "port": 443},
        "traffic": {"bytes_out": 10},
    }
    r = one("ocsf", orjson.dumps(event), with_registry())
    assert (r.platform, r.data_categories) == ("shein", ("user.contact",))
    event["src_endpoint"] = {"ip": "192.0.2.1", "svc_name": "search"}
    got = LineAdapter("ocsf", with_registry()).feed(orjson.dumps(event), {"file": "f", "line": 1})
    assert got.reason == "missing_field:platform"  # type: ignore[union-attr]


def test_a_zeek_flow_is_matched_by_its_source_network() -> None:
    line = {
        "ts": 1.5,
        "uid": "C1",
        "id.orig_h": "10.8.1.2",
        "id.resp_h": "8.8.8.8",
        "id.resp_p": 443,
        "proto": "tcp",
        "orig_bytes": 5,
    }
    r = one("zeek-conn", orjson.dumps(line), with_registry())
    assert (r.platform, r.subject_region, r.data_categories) == ("temu", "KR", ("user.payment",))


# --- telemetry-v1 --------------------------------------------------------------------


def egress(**extra: Any) -> dict[str, Any]:
    base = {
        "kind": "egress",
        "event_id": "e",
        "ts": 1,
        "platform": "temu",
        "src_ip": "10.8.0.9",
        "dst_ip": "8.8.8.8",
        "bytes": 1,
    }
    return {**base, **extra}


def decoded(*objs: dict[str, Any]) -> tuple[list[Record], list[bytes]]:
    raws = [orjson.dumps(o) for o in objs]
    out = decode_messages(
        [(raw, {"topic": "t", "partition": 0, "offset": i}) for i, raw in enumerate(raws)]
    )
    assert not out.dead_letters
    return out.records, raws


def test_a_record_without_categories_gains_them_and_one_with_its_own_keeps_them() -> None:
    records, raws = decoded(
        egress(),
        egress(data_categories=["user.name"], subject_region="US"),
        egress(src_ip="10.9.0.1"),
        {
            "kind": "consent",
            "event_id": "c",
            "ts": 1,
            "platform": "temu",
            "subject_id": "s",
            "scope": "overseas_transfer",
            "granted": True,
        },
    )
    got = attribute_records(records, REGISTRY, lambda i: labels_of(raws[i]))
    assert (got[0].subject_region, got[0].data_categories) == ("KR", ("user.payment",))
    # Its own fields win; what it lacks (none here but dataset_id, which the entry lacks) stays.
    assert got[1] is records[1]
    assert (got[1].subject_region, got[1].data_categories) == ("US", ("user.name",))
    assert got[2] is records[2] and got[2].data_categories == ()  # no entry matches
    assert got[3] is records[3]
    assert records[0].data_categories == ()  # the decoded record is not changed in place


def test_a_record_fills_field_by_field_and_its_platform_picks_the_entries() -> None:
    records, raws = decoded(
        egress(subject_region="US"),
        egress(platform="shein"),
        egress(platform="shein", service="crm"),
    )
    got = attribute_records(records, REGISTRY, lambda i: labels_of(raws[i]))
    assert (got[0].subject_region, got[0].data_categories) == ("US", ("user.payment",))
    assert got[1] is records[1]  # temu's network entry is not shein's
    assert (got[2].subject_region, got[2].dataset_id) == ("JP", "crm")


def test_a_record_is_matched_by_its_own_labels_read_from_its_text() -> None:
    records, raws = decoded(
        egress(src_ip="192.0.2.1", labels={"account-id": "123456789010", "team": "x"}),
        egress(src_ip="192.0.2.1", labels={"account-id": 123456789010}),
        egress(src_ip="192.0.2.1", labels=["account-id"]),
    )
    asked: list[int] = []

    def labels(i: int) -> dict[str, str]:
        asked.append(i)
        return dict(labels_of(raws[i]))

    got = attribute_records(records, REGISTRY, labels)
    assert got[0].dataset_id == "temu-kr-orders"
    assert got[1] is records[1] and got[2] is records[2]  # labels that are no text, or no mapping
    assert asked == [0, 1, 2]
    no_labels = ServiceRegistry(REGISTRY.entries[1:])
    attribute_records(records, no_labels, labels)
    assert asked == [0, 1, 2]  # a registry matching no labels never reads them


def test_labels_of_records_in_kafka_batches_are_found_by_index() -> None:
    a = egress(event_id="a", labels={"k": "1"})
    b = egress(event_id="b", labels={"k": "2"})
    messages: list[tuple[bytes | None, KafkaSource]] = [
        (orjson.dumps(a), {"topic": "t", "partition": 0, "offset": 0}),
        (orjson.dumps([a, b]), {"topic": "t", "partition": 0, "offset": 1}),
        (
            orjson.dumps(a) + b"\n\n" + orjson.dumps(b) + b"\n",
            {"topic": "t", "partition": 1, "offset": 1},
        ),
    ]
    out = decode_messages(messages)
    find = message_labels(messages)
    assert [find(s).get("k") for s in out.sources] == ["1", "1", "2", "1", "2"]
    assert find({"topic": "t", "partition": 0, "offset": 1, "index": 9}) == {}


def test_an_empty_registry_returns_the_records_as_they_are() -> None:
    records, _ = decoded(egress())
    got = attribute_records(records, ServiceRegistry(), lambda i: {})
    assert got == records and got[0] is records[0]
