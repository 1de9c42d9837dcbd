"""No input escapes as an exception: generated records, random bytes and 50,000 mutated lines.

Property-based (hypothesis) over the decoder, the rule engine and the
grouper, with extreme numbers, huge lists, far-future and far-past times and
random bytes; then a seeded fuzz of replay over mutated simulated telemetry,
where every line must come out as a record or a dead letter.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor import bounds
from monitor.contract.decode import check, decode_many, decode_messages
from monitor.contract.schemas import FileSource, KafkaSource, Record
from monitor.detect.local import LocalDetector
from monitor.geo.resolve import Resolver, StaticLookup
from tests.support.pack import ENDPOINTS, PACK
from tests.support.records import GEO
from tests.support.replay import run_replay
from xborder_tools.simulate import SimConfig, generate_items

REASONS = ("invalid_json", "not_an_object", "unknown_kind", "unsupported_version", "too_large")
T_MAX = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z

EXTREME_INTS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, 2**63 - 1, 2**63, 2**64 - 1, 2**64, -1, -(2**63)]),
)
TEXT = st.text(max_size=40)
LABEL = st.from_regex(r"user(\.[a-z_]{1,12}){0,3}", fullmatch=True)
COUNTRY = st.sampled_from(["KR", "CN", "SG", "US", "RU", "kr", "ZZ", "", "*"])
IP = st.sampled_from(
    ["211.234.1.1", "47.92.1.1", "8.219.1.1", "5.45.200.1", "::1", "1.2.3.256", "x", ""]
)
TS = st.one_of(
    st.integers(min_value=-(2**40), max_value=T_MAX + 10),
    st.sampled_from(
        ["2026-10-01T10:00:00Z", "9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "1970-01-01"]
    ),
)
ANY_VALUE = st.one_of(st.none(), st.booleans(), EXTREME_INTS, TEXT, st.lists(TEXT, max_size=3))


def dumps(obj: Any) -> bytes:
    """JSON of anything generated: the standard library writes integers of any size."""
    return json.dumps(obj).encode()


def _is_reason(got: object) -> bool:
    return isinstance(got, str) and (
        got in REASONS or got.startswith(("missing_field:", "invalid_field:"))
    )


@st.composite
def records(draw: st.DrawFn, valid_kinds: bool = True) -> dict[str, Any]:
    """Record-shaped objects: mostly plausible, with extreme and wrong values mixed in."""
    kind = draw(st.sampled_from(["egress", "api_call", "consent"] + ([] if valid_kinds else ["x"])))
    rec: dict[str, Any] = {
        "kind": kind,
        "event_id": draw(st.text(min_size=1, max_size=8)),
        "ts": draw(TS),
        "platform": draw(st.sampled_from(["temu", "shein", "aliexpress", "Bad Platform"])),
    }
    if kind == "egress":
        rec |= {"src_ip": draw(IP), "dst_ip": draw(IP), "bytes": draw(EXTREME_INTS)}
    elif kind == "api_call":
        rec |= {"operation": "orders.export", "endpoint": draw(st.sampled_from(
            ["api.example.cn", "https://x.example.sg/a", ""]))}  # fmt: skip
        rec["dst_ip"] = draw(IP)
        rec["subject_ids"] = draw(st.lists(st.text(min_size=1, max_size=6), max_size=1200))
        rec["legal_basis"] = draw(st.sampled_from([None, "none", "consent", "adequacy", "?"]))
    else:
        rec |= {
            "subject_id": draw(st.text(min_size=1, max_size=6)),
            "scope": "overseas_transfer",
            "granted": draw(st.booleans()),
            "countries": draw(st.lists(COUNTRY, max_size=4)),
        }
    if kind != "consent":
        rec |= {
            "src_country": draw(COUNTRY),
            "subject_region": draw(st.sampled_from(["KR", None])),
            "records": draw(EXTREME_INTS),
            "data_categories": draw(st.lists(LABEL, max_size=draw(st.sampled_from([3, 300])))),
            "dataset_id": draw(st.sampled_from([None, "orders", "ds-" + "x" * 5000])),
        }
    for _ in range(draw(st.integers(0, 2))):  # a field set to anything, or an unknown one
        rec[draw(st.sampled_from([*rec, "extra"]))] = draw(ANY_VALUE)
    return rec


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(records(valid_kinds=False), min_size=1, max_size=8))
def test_decoder_answers_every_record_and_agrees_with_itself(objs: list[dict[str, Any]]) -> None:
    raws = [dumps(o) for o in objs]
    one_by_one = [check(r) for r in raws]
    for got in one_by_one:
        assert isinstance(got, Record) or _is_reason(got), got
    assert decode_many(raws) == one_by_one


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=200), min_size=1, max_size=6))
def test_random_bytes_become_dead_letters_never_exceptions(values: list[bytes]) -> None:
    messages: list[tuple[bytes, KafkaSource]] = [
        (v, {"topic": "t", "partition": 0, "offset": i}) for i, v in enumerate(values)
    ]
    out = decode_messages(messages)
    for letter in out.dead_letters:
        assert _is_reason(letter.reason), letter.reason
    assert len(out.records) + len(out.dead_letters) >= sum(1 for v in values if v.strip())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(records(), min_size=1, max_size=12))
def test_engine_and_grouper_never_raise_and_alerts_stay_bounded(
    objs: list[dict[str, Any]],
) -> None:
    detector = LocalDetector(
        PACK, Resolver(StaticLookup(GEO), ENDPOINTS), clock=lambda: T_MAX / 1000
    )
    valid: list[tuple[Record, FileSource]] = []
    for i, raw in enumerate(dumps(o) for o in objs):
        got = check(raw)
        if isinstance(got, Record):
            valid.append((got, {"file": "f", "line": i + 1}))
    _, letters = detector.process_guarded([r for r, _ in valid], [s for _, s in valid])
    assert letters == []  # nothing valid makes a stage raise
    for rule, group in detector.open_groups():
        alert = detector.alert(rule, group)
        assert 1 <= alert["event_count"] <= len(valid)
        assert 0 <= alert["records"] <= bounds.COUNT_MAX and 0 <= alert["bytes"] <= bounds.COUNT_MAX
        assert len(alert["data_categories"]) <= bounds.MAX_CATEGORIES
        assert len(orjson.dumps(alert)) < 256 * 1024


def mutate(rng: random.Random, line: bytes) -> bytes:
    """One or more random edits: what a careless exporter or a hostile platform writes."""
    b = bytearray(line)
    for _ in range(rng.randint(1, 3)):
        op = rng.randrange(9)
        at = rng.randrange(len(b) + 1)
        if op == 0 and b:
            b[min(at, len(b) - 1)] = rng.randrange(256)
        elif op == 1:
            del b[at : at + rng.randint(1, 20)]
        elif op == 2:
            b[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif op == 3:
            b[at:at] = rng.choice([b"\x0b", b"\x0c", b"\x00", b"\t", b" ", b"\xef\xbb\xbf"])
        elif op == 4:
            b[at:at] = rng.choice([b"18446744073709551615", b"-1", b"1e999", b"9" * 30, b"[]"])
        elif op == 5:
            del b[at:]
        elif op == 6:
            b = bytearray(b.replace(b'"ts":', b'"ts":253402300799999,"x":', 1))
        elif op == 7:
            b = bytearray(b.replace(b"[", b"[" * rng.randint(2, 2000), 1))
        else:
            b = b + b[: rng.randint(0, len(b))]
    # One line stays one line (line endings are tested on their own).
    return bytes(b).replace(b"\n", b" ").replace(b"\r", b" ")


def test_replay_of_50000_mutated_lines_accounts_for_every_line(
    tmp_path: Path, country_db: Path, capsys: Any
) -> None:
    rng = random.Random(8)
    cfg = SimConfig(seed=8, count=50_000, start_ms=1_790_812_800_000)
    lines = [item.raw for item in generate_items(cfg)]
    lines = [mutate(rng, x) if rng.random() < 0.5 else x for x in lines]
    path = tmp_path / "mutated.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    code, alerts, dead = run_replay(tmp_path, [path], country_db)
    assert code == 0
    summary = capsys.readouterr().out
    valid = int(summary.split("records: ")[1].split(" valid")[0])
    blank = sum(1 for x in lines if not x.strip(b" \t"))
    assert valid + len(dead) + blank == len(lines)
    assert all(_is_reason(d["reason"]) or d["reason"] == "processing_error" for d in dead)
    assert alerts, "valid lines of the file still raise alerts"
