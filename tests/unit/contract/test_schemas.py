"""The telemetry contract: valid records parse, invalid ones get the contract's reason."""

from __future__ import annotations

import base64

import orjson
import pytest

from monitor.contract.dead_letters import MAX_DEAD_LETTER_BYTES, dead_letter_json
from monitor.contract.decode import decode_line, decode_message
from monitor.contract.schemas import (
    MAX_RECORD_BYTES,
    DeadLetter,
    FileSource,
    KafkaSource,
    Record,
    parse_ts,
)

SRC: FileSource = {"file": "t.jsonl", "line": 1}

EGRESS = {
    "kind": "egress",
    "event_id": "e-1",
    "ts": "2026-10-01T10:00:00+09:00",
    "platform": "temu",
    "src_ip": "211.234.1.1",
    "dst_ip": "2406:da18::1",
    "bytes": 10,
}
API = {
    "kind": "api_call",
    "event_id": "a-1",
    "ts": 1790000000000,
    "platform": "aliexpress",
    "operation": "orders.export",
    "endpoint": "https://oss-cn-hangzhou.aliyuncs.com/x",
}
CONSENT = {
    "kind": "consent",
    "event_id": "c-1",
    "ts": "2026-10-01T01:00:00Z",
    "platform": "shein",
    "subject_id": "u-1",
    "scope": "overseas_transfer",
    "granted": False,
}


def line(obj: object) -> bytes:
    return orjson.dumps(obj)


def reason(obj: object) -> str:
    got = decode_line(line(obj), SRC)
    assert isinstance(got, DeadLetter), got
    return got.reason


def test_valid_records_of_every_kind() -> None:
    e = decode_line(line(EGRESS), SRC)
    a = decode_line(line(API), SRC)
    c = decode_line(line(CONSENT), SRC)
    assert isinstance(e, Record) and e.ts == 1790816400000 and e.dst_ip == "2406:da18::1"
    assert isinstance(a, Record) and a.ts == 1790000000000 and a.stores is False
    assert isinstance(c, Record) and c.countries == ("*",) and c.granted is False


def test_timestamps_both_forms_and_offsets() -> None:
    assert parse_ts("2026-10-01T10:00:00+09:00") == parse_ts("2026-10-01T01:00:00Z")
    assert parse_ts("2026-10-01t01:00:00.5z") == parse_ts("2026-10-01T01:00:00Z") + 500  # type: ignore[operator]
    assert parse_ts(1790000000000) == 1790000000000
    for bad in (
        "2026-10-01T10:00:00",
        "2026-10-01",
        "20261001T100000Z",
        "2026-13-01T00:00:00Z",
        1.5,
        True,
        -1,
    ):
        assert parse_ts(bad) is None, bad


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"kind": None}, "missing_field:kind"),
        ({"kind": "flow"}, "unknown_kind"),
        ({"kind": 3}, "unknown_kind"),
        ({"v": 2}, "unsupported_version"),
        ({"v": "1"}, "unsupported_version"),
        ({"event_id": None}, "missing_field:event_id"),
        ({"event_id": ""}, "invalid_field:event_id"),
        ({"event_id": "x" * 129}, "invalid_field:event_id"),
        ({"ts": "yesterday"}, "invalid_field:ts"),
        ({"platform": "Temu"}, "invalid_field:platform"),
        ({"service": 5}, "invalid_field:service"),
        ({"src_ip": None}, "missing_field:src_ip"),
        ({"dst_ip": "300.1.1.1"}, "invalid_field:dst_ip"),
        ({"bytes": -1}, "invalid_field:bytes"),
        ({"bytes": 1.5}, "invalid_field:bytes"),
        ({"dst_port": 70000}, "invalid_field:dst_port"),
        ({"src_country": "kr"}, "invalid_field:src_country"),
        ({"subject_region": "XX"}, "invalid_field:subject_region"),
        ({"data_categories": "user.name"}, "invalid_field:data_categories"),
        ({"records": True}, "invalid_field:records"),
        ({"dataset_id": 7}, "invalid_field:dataset_id"),
    ],
)
def test_egress_reasons(change: dict[str, object], expected: str) -> None:
    obj = {k: v for k, v in ({**EGRESS, **change}).items() if v is not None}
    assert reason(obj) == expected


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"operation": None}, "missing_field:operation"),
        ({"endpoint": None}, "missing_field:endpoint"),
        ({"legal_basis": "vibes"}, "invalid_field:legal_basis"),
        ({"subject_ids": ["u"] * 1001}, "invalid_field:subject_ids"),
        ({"stores": "yes"}, "invalid_field:stores"),
        ({"status": "200"}, "invalid_field:status"),
    ],
)
def test_api_reasons(change: dict[str, object], expected: str) -> None:
    obj = {k: v for k, v in ({**API, **change}).items() if v is not None}
    assert reason(obj) == expected


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"subject_id": None}, "missing_field:subject_id"),
        ({"scope": "marketing"}, "invalid_field:scope"),
        ({"granted": None}, "missing_field:granted"),
        ({"granted": "false"}, "invalid_field:granted"),
        ({"countries": ["CN", "Korea"]}, "invalid_field:countries"),
    ],
)
def test_consent_reasons(change: dict[str, object], expected: str) -> None:
    obj = {k: v for k, v in ({**CONSENT, **change}).items() if v is not None}
    assert reason(obj) == expected


def test_checks_run_in_contract_order() -> None:
    # Several faults at once: the first in contract order is the reason.
    assert reason({"kind": "egress", "v": 9}) == "unsupported_version"
    assert reason({**EGRESS, "event_id": None, "ts": "bad"}) == "missing_field:event_id"
    assert reason({**EGRESS, "src_ip": "bad", "bytes": -5}) == "invalid_field:src_ip"
    assert reason({"v": 2}) == "missing_field:kind"


def test_not_json_not_object_too_large_and_binary() -> None:
    assert decode_line(b"{nope", SRC).reason == "invalid_json"  # type: ignore[union-attr]
    assert decode_line(b"[1, 2]", SRC).reason == "not_an_object"  # type: ignore[union-attr]
    assert decode_line(b'"text"', SRC).reason == "not_an_object"  # type: ignore[union-attr]
    big = line({**EGRESS, "pad": "x" * MAX_RECORD_BYTES})
    assert decode_line(big, SRC).reason == "too_large"  # type: ignore[union-attr]
    binary = b'{"kind": "egress\xff"}'
    dl = decode_line(binary, SRC)
    assert isinstance(dl, DeadLetter) and dl.reason == "invalid_json"
    out = dead_letter_json(dl, "2026-01-01T00:00:00.000Z")
    assert base64.b64decode(out["raw_base64"]) == binary and "raw" not in out
    assert decode_line(b"   \n", SRC) is None


def test_unknown_fields_and_null_optionals_are_accepted() -> None:
    got = decode_line(line({**EGRESS, "future_field": {"a": 1}, "protocol": None}), SRC)
    assert isinstance(got, Record) and got.protocol is None


def test_message_batches_array_and_jsonl_locate_each_record() -> None:
    src: KafkaSource = {"topic": "telemetry.api", "partition": 2, "offset": 41}
    array = orjson.dumps([API, {"kind": "nope"}, 5])
    got = list(decode_message(array, src))
    assert [type(r).__name__ for r, _ in got] == ["ApiCall", "DeadLetter", "DeadLetter"]
    assert [at["index"] for _, at in got] == [0, 1, 2]
    assert got[1][0].reason == "unknown_kind"  # type: ignore[union-attr]
    assert got[2][0].reason == "not_an_object"  # type: ignore[union-attr]
    assert got[1][0].source == {**src, "index": 1}  # type: ignore[union-attr]

    jsonl = line(API) + b"\n\n{broken\n" + line(CONSENT) + b"\n"
    got = list(decode_message(jsonl, src))
    assert [(type(r).__name__, at["index"]) for r, at in got] == [
        ("ApiCall", 0),
        ("DeadLetter", 1),
        ("Consent", 2),
    ]
    single = list(decode_message(line(EGRESS), src))
    assert len(single) == 1 and single[0][1] == src and "index" not in single[0][1]
    assert next(iter(decode_message(None, src)))[0].reason == "invalid_json"  # type: ignore[union-attr]


def test_dead_letters_of_huge_records_keep_a_bounded_raw() -> None:
    big = b'{"pad": "' + "é".encode() * MAX_RECORD_BYTES + b'"}'
    dl = decode_line(big, SRC)
    assert isinstance(dl, DeadLetter) and dl.reason == "too_large"
    out = dead_letter_json(dl, "t")
    assert out["raw_truncated"] is True and out["raw_size"] == len(big)
    assert len(orjson.dumps(out)) <= MAX_DEAD_LETTER_BYTES and out["raw"].startswith('{"pad": "é')
    small = dead_letter_json(DeadLetter("invalid_json", SRC, b"{x"), "t")
    assert "raw_truncated" not in small and small["raw"] == "{x"


def test_country_fields_take_the_249_officially_assigned_codes_only() -> None:
    from monitor.contract.countries import ISO_ALPHA2

    assert len(ISO_ALPHA2) == 249
    assert {"KR", "CN", "SG", "US", "RU"} <= ISO_ALPHA2
    assert not {"XK", "EU", "UK", "ZZ"} & ISO_ALPHA2  # user-assigned, reserved, or not a code
