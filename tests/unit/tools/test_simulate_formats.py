"""`xborder simulate --format`: the simulated stream as VPC flow logs, Zeek conn.log and OCSF,
read back by replay's adapters into the records the simulator meant, as far as each format
carries them, with its malformed lines dead-lettered for the reasons the simulator gave."""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import orjson
import pytest

from monitor.cli.main import main
from monitor.config.disclosures import host_of
from monitor.contract.decode import decode_line
from monitor.contract.formats import FormatOptions, LineAdapter, decode_foreign_messages, detect
from monitor.contract.schemas import DeadLetter, KafkaSource, Record, parse_ts
from tests.support.geoip_build import TEST_NETWORKS, build_country_db
from tests.support.simulation import START
from xborder_tools.simulate import FileSink, KafkaSink, SimConfig, SimItem, generate_items
from xborder_tools.simulate.formats import CARRIES, FOREIGN, FormatWriter, zeek_uid

PLATFORM, REGION, CATEGORIES = "temu", "KR", ("user.contact.email",)
OPTIONS = FormatOptions(platform=PLATFORM, subject_region=REGION, data_categories=CATEGORIES)
# The reason codes each format's malformed lines get, in a file and on Kafka (Zeek as JSON).
REASONS = {
    ("vpc-flow", False): {
        "invalid_line", "invalid_field:bytes", "invalid_field:dst_port", "invalid_field:src_ip",
        "invalid_field:ts", "missing_field:bytes",
    },
    ("zeek-conn", False): {
        "invalid_line", "invalid_field:bytes", "invalid_field:dst_port", "invalid_field:src_ip",
        "invalid_field:ts", "missing_field:bytes",
    },
    ("zeek-conn", True): {
        "invalid_json", "not_an_object", "invalid_field:bytes", "invalid_field:dst_port",
        "invalid_field:src_ip",
    },
    ("ocsf", False): {
        "invalid_json", "unknown_kind", "missing_field:class_uid", "invalid_field:ts",
        "invalid_field:bytes", "invalid_field:dst_ip", "invalid_field:status",
    },
}  # fmt: skip
REASONS[("vpc-flow", True)] = REASONS[("vpc-flow", False)]
REASONS[("ocsf", True)] = REASONS[("ocsf", False)]


def intended(fmt: str, rec: dict[str, Any]) -> dict[str, Any]:
    """What replay should read from `rec` in `fmt`: the fields it carries, and the options'."""
    ms = parse_ts(rec["ts"])
    assert ms is not None
    out: dict[str, Any] = {"kind": rec["kind"], "platform": PLATFORM, "subject_region": REGION}
    out["data_categories"] = CATEGORIES
    out["ts"] = ms - ms % 1000 if fmt == "vpc-flow" else ms  # VPC: whole seconds
    if fmt == "ocsf":
        out["event_id"] = rec["event_id"]
    elif fmt == "zeek-conn":
        out["event_id"] = f"zeek-{zeek_uid(rec['event_id'])}"
    if rec["kind"] == "egress":
        keys = ["src_ip", "dst_ip", "bytes", "dst_port", "protocol"]
        keys += ["dst_host"] if fmt == "ocsf" else []
    else:
        keys = ["dst_ip", "src_ip", "method", "status", "operation"]
        out["endpoint"] = host_of(rec["endpoint"])
    out.update({k: rec[k] for k in keys if k in rec})
    return out


def read(got: Record) -> dict[str, Any]:
    """The fields a record has, with defaults left out."""
    out = {"kind": got.kind}
    for key, value in msgspec.structs.asdict(got).items():
        if value is not None and value != () and value is not False:
            out[key] = value
    if out["kind"] == "api_call":
        out.pop("stores", None)
    return out


def stream(seed: int = 17, count: int = 4000, invalid_rate: float = 40.0) -> list[SimItem]:
    cfg = SimConfig(
        seed=seed,
        count=count,
        start_ms=START,
        invalid_rate=invalid_rate,
        platforms={PLATFORM: 1.0},
        violation_rates={"national_id_abroad": 3.0, "undisclosed_destination": 3.0},
    )
    return list(generate_items(cfg))


def check_read_back(
    fmt: str, written: list[SimItem], got: list[Record | DeadLetter]
) -> Counter[str]:
    """Each record as meant, each malformed line a dead letter with its reason; the reasons."""
    assert len(got) == len(written)
    reasons: Counter[str] = Counter()
    vpc_ids: dict[str, str] = {}
    for item, back in zip(written, got, strict=True):
        if item.reason is not None:
            assert isinstance(back, DeadLetter), (item.raw, back)
            assert back.reason == item.reason, item.raw
            assert back.raw == item.raw.strip()  # the line itself is the evidence
            reasons[item.reason] += 1
            continue
        assert item.record is not None and isinstance(back, Record), (item.raw, back)
        have = read(back)
        if fmt == "vpc-flow":
            # No id in a flow log: one made from the line, the same for a re-sent record.
            event_id = have.pop("event_id")
            assert event_id.startswith("vpc-")
            assert vpc_ids.setdefault(item.record["event_id"], event_id) == event_id
        assert have == intended(fmt, item.record), item.raw
    return reasons


@pytest.fixture(scope="module")
def items() -> list[SimItem]:
    return stream()


@pytest.mark.parametrize("fmt", FOREIGN)
def test_a_file_reads_back_as_the_records_meant_and_its_broken_lines_as_dead_letters(
    fmt: str, items: list[SimItem]
) -> None:
    writer = FormatWriter(fmt, seed=17)
    buf = io.BytesIO()
    sink = FileSink(buf, owned=False, header=writer.header(), footer=writer.footer(),
                    hold_invalid=not writer.header())  # fmt: skip
    written: list[SimItem] = []
    left_out: Counter[str] = Counter()
    for item in items:
        out = writer.convert(item)
        if out is None:
            left_out[item.kind] += 1
            continue
        sink.send(out)
        written.append(out)
    sink.close()
    # A re-sent record is the same line.
    lines_of_record: dict[str, set[bytes]] = {}
    for out in written:
        if out.record is not None:
            lines_of_record.setdefault(out.record["event_id"], set()).add(out.raw)
    assert any(i.label == "duplicate" for i in written)
    assert all(len(lines) == 1 for lines in lines_of_record.values())
    # Only the kinds the format cannot express are left out; invalid items all break a line.
    assert set(left_out) == {"egress", "api_call", "consent"} - CARRIES[fmt]
    assert sum(i.reason is not None for i in written) == sum(i.reason is not None for i in items)
    lines = buf.getvalue().splitlines(keepends=True)
    assert detect(lines[0].strip()) == fmt
    adapter = LineAdapter(fmt, OPTIONS)
    got: list[Record | DeadLetter] = []
    for n, line in enumerate(lines, 1):
        back = adapter.feed(line, {"file": "sim", "line": n})
        if back is None:
            assert line.startswith(b"#") or n == 1  # a header line
            continue
        assert isinstance(back, Record | DeadLetter), back  # no skips: nothing is blocked
        got.append(back)
    # In the file, invalid lines before the first valid one come after it (OCSF: detection).
    first = next(i for i, it in enumerate(written) if it.valid)
    in_file = [written[first], *written[:first], *written[first + 1 :]]
    assert set(check_read_back(fmt, in_file, got)) == REASONS[(fmt, False)]


class FakeProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []

    def send(self, topic: str, value: bytes) -> None:
        self.sent.append((topic, value))

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


@pytest.mark.parametrize("fmt", FOREIGN)
@pytest.mark.parametrize("batch", [1, 20])
def test_kafka_messages_read_back_as_the_records_meant(
    fmt: str, batch: int, items: list[SimItem]
) -> None:
    writer = FormatWriter(fmt, seed=17, stream=True)
    assert writer.header() == [] and writer.footer() == []
    topics = {"egress": "t.egress", "api_call": "t.api", "consent": "t.consent"}
    producer = FakeProducer()
    sink = KafkaSink(producer, topics, batch=batch, batch_format="jsonl")
    written = [out for out in map(writer.convert, items) if out is not None]
    for out in written:
        sink.send(out)
    sink.close()
    by_topic: dict[str, list[SimItem]] = {}
    for out in written:
        by_topic.setdefault(topics[out.kind], []).append(out)
    assert set(by_topic) == {topics[k] for k in CARRIES[fmt]}
    reasons: Counter[str] = Counter()
    for topic, sent in by_topic.items():
        messages: list[tuple[bytes | None, KafkaSource]] = [
            (value, {"topic": t, "partition": 0, "offset": n})
            for n, (t, value) in enumerate(producer.sent)
            if t == topic
        ]
        decoded, skipped = decode_foreign_messages(messages, fmt, OPTIONS)
        assert not skipped
        # Records and dead letters come out apart: compare each with its own items.
        reasons += check_read_back(
            fmt,
            [i for i in sent if i.valid] + [i for i in sent if not i.valid],
            [*decoded.records, *decoded.dead_letters],
        )
    assert set(reasons) == REASONS[(fmt, True)]


# --- the command -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def geo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_country_db(tmp_path_factory.mktemp("simfmt") / "country.mmdb", TEST_NETWORKS)


def simulate(path: Path, geo_db: Path, *options: str) -> list[str]:
    args = ["simulate", "--count", "3000", "--seed", "9", "--platform", PLATFORM]
    args += ["--start", "2026-10-01T09:00:00+09:00", "--geoip-country", str(geo_db)]
    args += ["--invalid-rate", "20", "--out", str(path), *options]
    assert main(args) == 0
    return args


def replayed(
    path: Path, geo_db: Path, capsys: pytest.CaptureFixture[str], *options: str
) -> tuple[str, list[dict[str, Any]]]:
    alerts, dead = path.with_suffix(".alerts"), path.with_suffix(".dead")
    args = ["replay", str(path), "--geoip-country", str(geo_db), "--alerts-out", str(alerts)]
    args += ["--dead-letters-out", str(dead), "--platform", PLATFORM]
    args += ["--subject-region", REGION, "--data-category", CATEGORIES[0], *options]
    assert main(args) == 0
    out = capsys.readouterr().out
    return out, [orjson.loads(line) for line in dead.read_bytes().splitlines()]


def lines_of(path: Path, fmt: str) -> Iterator[Record | DeadLetter]:
    adapter = LineAdapter(fmt, OPTIONS)
    for n, line in enumerate(path.read_bytes().splitlines(keepends=True), 1):
        back = adapter.feed(line, {"file": path.name, "line": n})
        if isinstance(back, Record | DeadLetter):
            yield back


@pytest.mark.parametrize("fmt", FOREIGN)
def test_command_writes_the_format_replay_reads_and_detects(
    fmt: str, tmp_path: Path, geo_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    telemetry, path = tmp_path / "sim.jsonl", tmp_path / f"sim.{fmt}"
    simulate(telemetry, geo_db)
    capsys.readouterr()
    simulate(path, geo_db, "--format", fmt)
    captured = capsys.readouterr()
    assert captured.out.count("\n") == 1 and f"({fmt})" in captured.out
    # The same stream: the telemetry run's lines, as the format carries them, in order (a
    # telemetry line that is invalid is a malformed line of the format).
    meant: list[dict[str, Any] | None] = []
    left_out: Counter[str] = Counter()
    for line in telemetry.read_bytes().splitlines():
        decoded = decode_line(line, {"file": "sim.jsonl", "line": 0})
        if isinstance(decoded, DeadLetter):
            meant.append(None)
        elif decoded is not None and decoded.kind in CARRIES[fmt]:
            meant.append(orjson.loads(line))
        elif decoded is not None:
            left_out[decoded.kind] += 1
    for kind, n in left_out.items():
        assert f"{kind} {n}" in captured.err
    if fmt == "ocsf":  # no header: invalid lines before the first record come after it
        first = next(i for i, m in enumerate(meant) if m is not None)
        meant = [meant[first], *meant[:first], *meant[first + 1 :]]
    got = list(lines_of(path, fmt))
    assert len(got) == len(meant)
    for want, back in zip(meant, got, strict=True):
        if want is None:
            assert isinstance(back, DeadLetter)
            continue
        assert isinstance(back, Record), back
        have = read(back)
        if fmt == "vpc-flow":
            assert have.pop("event_id").startswith("vpc-")
        assert have == intended(fmt, want)
    records = [g for g in got if isinstance(g, Record)]

    # replay, told what the flows do not say; then without --format: detected alike.
    summary, dead = replayed(path, geo_db, capsys, "--format", fmt)
    assert f"files by format: {fmt} 1" in summary
    assert f"records: {len(records)} valid" in summary
    want = Counter(g.reason for g in got if isinstance(g, DeadLetter))
    assert Counter(d["reason"] for d in dead) == want and sum(want.values()) > 20
    detected, dead_again = replayed(path, geo_db, capsys)
    assert f"files by format: {fmt} 1" in detected
    assert [(d["reason"], d["source"]) for d in dead_again] == [
        (d["reason"], d["source"]) for d in dead
    ]
    # Same options, same bytes.
    simulate(tmp_path / "again", geo_db, "--format", fmt)
    assert (tmp_path / "again").read_bytes() == path.read_bytes()


def test_command_needs_the_platform_for_another_format(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = str(tmp_path / "x.log")
    assert main(["simulate", "--out", out, "--count", "10", "--format", "vpc-flow"]) == 2
    err = capsys.readouterr().err
    assert "--platform" in err and "aliexpress, temu, shein" in err


def test_command_to_kafka_sends_lines_each_message_readable_alone(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    producer = FakeProducer()
    made: dict[str, Any] = {}

    def connect(
        bootstrap: str, topics: dict[str, str], batch: int, batch_format: str, *_: Any
    ) -> KafkaSink:
        made.update(topics=topics, batch_format=batch_format)
        return KafkaSink(producer, topics, batch, batch_format)

    monkeypatch.setattr(KafkaSink, "connect", staticmethod(connect))
    args = ["simulate", "--count", "1500", "--seed", "4", "--platform", PLATFORM]
    args += ["--format", "zeek-conn", "--batch", "10", "--batch-format", "array"]
    args += ["--topic-egress", "flows", "--invalid-rate", "20"]
    assert main(args) == 0
    assert "(zeek-conn)" in capsys.readouterr().out
    # Lines, not a JSON array; Zeek as JSON, as no message has a header before it.
    assert made["batch_format"] == "jsonl"
    assert producer.sent and {t for t, _ in producer.sent} == {"flows"}
    lines = [line for _, v in producer.sent for line in v.split(b"\n")]
    assert len(lines) > len(producer.sent) and all(line[:1] in (b"{", b"[") for line in lines)
    messages: list[tuple[bytes | None, KafkaSource]] = [
        (v, {"topic": t, "partition": 0, "offset": n}) for n, (t, v) in enumerate(producer.sent)
    ]
    decoded, _ = decode_foreign_messages(messages, "zeek-conn", OPTIONS)
    assert len(decoded.records) > 500
    assert all(r.event_id.startswith("zeek-C") for r in decoded.records)
    assert {d.reason for d in decoded.dead_letters} <= REASONS[("zeek-conn", True)]
    assert decoded.dead_letters
