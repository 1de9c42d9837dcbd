"""The fast decoder gives exactly the reference's answers, record by record and message by message."""

from __future__ import annotations

import random

import orjson
import pytest

from monitor.contract.decode import check, decode_many, decode_messages
from monitor.contract.schemas import ApiCall, Egress, KafkaSource, Record, check_record
from xborder_tools.simulate import SimConfig, generate_items

START = 1_790_000_000_000


def _items(seed: int, count: int) -> list[bytes]:
    cfg = SimConfig(seed=seed, count=count, start_ms=START, invalid_rate=80.0, duplicate_rate=5.0)
    return [item.raw for item in generate_items(cfg)]


# Values that msgspec and the reference parser might read differently when
# they sit in a field the record does not know, or in one it does.
ODD_VALUES: list[bytes] = [
    b"1e999", b"-1e999", b"1E+400", b"1e-400", b"9" * 400, b"9" * 250, b"1" + b"0" * 308,
    b"1.5e308", b"17976931348623157e292", b'"\xff"', b'"\xc3\xa9"', b'"\\ud800"',
    b'"\\ud800\\udc00"', b'"\\u0000"', b"[" * 300 + b"]" * 300, b"[" * 1100 + b"]" * 1100,
    b"01", b"1.", b"tru", b"NaN", b"[1,]", b'{"a":1,}', b"-", b'"\x01"', b"null", b"{}",
    b"18446744073709551615", b"18446744073709551616", b"-9223372036854775809", b"1.0",
    b'"2026-10-01T10:00:00Z"', b'"2026-10-01T10:00:00.123456789+09:00"', b'"2026-10-01t10:00:00z"',
    b'"2016-12-31T23:59:60Z"', b'"9999-12-31T23:59:59Z"', b'"0000-01-01T00:00:00Z"',
    b'"2026-02-29T00:00:00Z"', b'"2026-10-01T10:00:00+24:00"', b'"\\u0032026-10-01T10:00:00Z"',
    b'"\xd9\xa2026-10-01T10:00:00Z"', b"-1", b"65536", b"true", b'["x"]', b'[""]', b'["A_b"]',
    b'"KR"', b'"kr"', b'"ZZ"', b'"::1"', b'"1.2.3.256"', b'"1.2.3.4 "', b'"*"', b'["*","CN"]',
    b'"consent"', b'"none"', b'"overseas_transfer"', b"2", b"1",
]  # fmt: skip
FIELDS = [
    "unknown_x", "ts", "v", "bytes", "records", "src_ip", "dst_ip", "dst_port", "platform",
    "event_id", "data_categories", "src_country", "subject_region", "subject_ids", "legal_basis",
    "status", "countries", "granted", "stores", "dataset_id", "kind", "scope",
]  # fmt: skip


def _set_field(raw: bytes, name: str, value: bytes) -> bytes:
    """The record's text with one field (added or replaced) holding `value`, byte for byte."""
    obj = orjson.loads(raw)
    obj.pop(name, None)
    body = orjson.dumps(obj)
    return (
        body[:-1] + (b"," if len(body) > 2 else b"") + b'"' + name.encode() + b'":' + value + b"}"
    )


def _same(fast: Record | str, reference: Record | str) -> None:
    assert type(fast) is type(reference), (fast, reference)
    assert fast == reference


def test_every_simulated_item_gets_the_reference_answer() -> None:
    raws = _items(seed=11, count=20_000)
    batch = decode_many(raws)
    for raw, got in zip(raws, batch, strict=True):
        reference = check_record(raw)
        _same(check(raw), reference)
        _same(got, reference)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_odd_values_in_known_and_unknown_fields_get_the_reference_answer(seed: int) -> None:
    rng = random.Random(seed)
    valid = [raw for raw in _items(seed=seed, count=600) if isinstance(check_record(raw), Record)]
    mutated = [
        _set_field(rng.choice(valid), rng.choice(FIELDS), rng.choice(ODD_VALUES))
        for _ in range(3000)
    ]
    accepted = 0
    for raw, got in zip(mutated, decode_many(mutated), strict=True):
        reference = check_record(raw)
        _same(check(raw), reference)
        _same(got, reference)
        accepted += isinstance(reference, Record)
    # The mutations reach both answers, so both paths were compared.
    assert 0 < accepted < len(mutated)


def test_unknown_fields_are_ignored_on_the_fast_path_too() -> None:
    raw = _set_field(
        _set_field(_items(1, 50)[0], "shipper", b'{"host":"a","n":[1,2.5]}'), "x", b"1"
    )
    got = check(raw)
    assert type(got) in (Egress, ApiCall)
    assert got == check_record(raw)


def _messages(raws: list[bytes], rng: random.Random) -> list[tuple[bytes, KafkaSource]]:
    """The same records as messages of every shape: one record, array, JSON Lines, pretty."""
    out: list[tuple[bytes, KafkaSource]] = []
    i = 0
    while i < len(raws):
        n = rng.choice([1, 1, 2, 5, 40])
        part = raws[i : i + n]
        shape = rng.choice(["single", "array", "lines", "pretty"])
        if shape == "single" or n == 1:
            value = part[0]
            part = part[:1]
        elif shape == "array":
            value = b"[" + b",".join(part) + b"]"
        elif shape == "lines":
            value = b"\n".join(part) + b"\n"
        else:
            value = b"[\n  " + b",\n  ".join(part) + b"\n]"
        out.append((value, {"topic": "t", "partition": 0, "offset": len(out)}))
        i += len(part)
    return out


def _reference_messages(messages: list[tuple[bytes, KafkaSource]]) -> list[object]:
    """What each message yields, by the reference alone: records and reasons in order."""
    out: list[object] = []
    for value, _ in messages:
        raw = value.strip()
        lines = [line.strip() for line in raw.split(b"\n") if line.strip()]
        try:
            whole = orjson.loads(raw)
        except orjson.JSONDecodeError:
            out.extend(check_record(line) for line in lines)
            continue
        if isinstance(whole, list):
            out.extend(check_record(orjson.dumps(item), item) for item in whole)
        else:
            out.append(check_record(raw, whole))
    return out


def test_messages_of_every_shape_decode_as_the_reference_says() -> None:
    rng = random.Random(4)
    raws = [raw for raw in _items(seed=4, count=3000) if raw.strip()]
    # Invalid JSON cannot sit inside an array or a pretty batch without
    # spoiling it; keep those alone, as the simulator's sink does.
    valid_json = [raw for raw in raws if _parses(raw)]
    messages = _messages(valid_json, rng)
    decoded = decode_messages(messages)
    reference = _reference_messages(messages)
    got: list[object] = []
    records = iter(decoded.records)
    letters = iter(decoded.dead_letters)
    for expected in reference:
        got.append(next(letters).reason if isinstance(expected, str) else next(records))
    assert got == reference
    assert len(decoded.records) + len(decoded.dead_letters) == len(reference)


def _parses(raw: bytes) -> bool:
    try:
        orjson.loads(raw)
    except orjson.JSONDecodeError:
        return False
    return True
