"""Invalid records: the mistakes real shippers make, each with the dead-letter reason it must get."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import orjson

from xborder_tools.simulate.model import SimItem
from xborder_tools.simulate.records import RecordMaker
from xborder_tools.simulate.violations import INVALID_REASONS

__all__ = ["invalid"]

_REQUIRED: Final[Mapping[str, tuple[str, ...]]] = {
    "egress": ("event_id", "ts", "platform", "src_ip", "dst_ip", "bytes"),
    "api_call": ("event_id", "ts", "platform", "operation", "endpoint"),
    "consent": ("event_id", "ts", "platform", "subject_id", "scope", "granted"),
}
# (field, a value the contract rejects), by kind. Values are the mistakes real
# shippers make: local times without offset, names in the wrong case, numbers as text.
_CORRUPT: Final[Mapping[str, tuple[tuple[str, object], ...]]] = {
    "common": (
        ("event_id", ""),
        ("event_id", "x" * 200),
        ("ts", "2026-10-01 10:00:00"),
        ("ts", "yesterday"),
        ("ts", -5),
        ("platform", "AliExpress"),
        ("platform", "temu shop"),
        ("service", 17),
    ),
    "egress": (
        ("src_ip", "10.0.0.256"),
        ("dst_ip", "not-an-ip"),
        ("bytes", -1),
        ("bytes", "1024"),
        ("dst_port", 70000),
        ("src_country", "Korea"),
        ("subject_region", "kr"),
        ("data_categories", "user.contact"),
        ("records", -3),
    ),
    "api_call": (
        ("endpoint", ""),
        ("dst_ip", "47.92.1"),
        ("status", "200"),
        ("subject_region", "KOR"),
        ("data_categories", ["user contact"]),
        ("subject_ids", "u-0001"),
        ("legal_basis", "legitimate_interest"),
        ("stores", "yes"),
    ),
    "consent": (
        ("subject_id", ""),
        ("scope", "marketing"),
        ("granted", "false"),
        ("countries", []),
        ("countries", ["KR", "ZZ"]),
    ),
}


def invalid(m: RecordMaker, ms: int) -> SimItem:
    """A lawful record broken in one way of a family drawn from INVALID_REASONS."""
    rng = m.rng
    rec = m.lawful(ms)
    source = dict(rec)
    kind = rec["kind"]
    family = m.pick(INVALID_REASONS)
    if family == "invalid_json":
        raw = orjson.dumps(rec)
        how = rng.randrange(3)
        if how == 0:  # cut off mid-record (a shipper killed while writing)
            raw = raw[: rng.randrange(max(2, len(raw) // 3), len(raw) - 1)]
        elif how == 1:  # Latin-1 bytes where UTF-8 belongs: also invalid JSON by the contract
            at = rng.randrange(1, len(raw) - 1)
            raw = raw[:at] + b"\xe9\xff" + raw[at:]
        else:  # a Python repr instead of JSON
            raw = repr(rec).encode()
        return SimItem("invalid", kind, raw, reason="invalid_json", source=source)
    if family == "not_an_object":
        # Never a JSON array: a Kafka message holding an array is a batch of records.
        value: object = m.pick((rec["event_id"], 42, None, True))
        return SimItem("invalid", kind, orjson.dumps(value), reason="not_an_object", source=source)
    if family == "unknown_kind":
        rec["kind"] = m.pick(("flow", "Egress", "api-call", "audit", 3))
        return SimItem("invalid", kind, orjson.dumps(rec), reason="unknown_kind", source=source)
    if family == "unsupported_version":
        rec["v"] = m.pick((2, 0, "1", 1.5))
        return SimItem(
            "invalid", kind, orjson.dumps(rec), reason="unsupported_version", source=source
        )
    if family == "missing_field":
        name = m.pick(("kind", *_REQUIRED[kind]))
        if rng.random() < 0.5:
            del rec[name]
        else:
            rec[name] = None  # a required field set to null counts as missing
        return SimItem(
            "invalid", kind, orjson.dumps(rec), reason=f"missing_field:{name}", source=source
        )
    name, bad = m.pick(_CORRUPT["common"] + _CORRUPT[kind])
    rec[name] = bad
    return SimItem(
        "invalid", kind, orjson.dumps(rec), reason=f"invalid_field:{name}", source=source
    )
