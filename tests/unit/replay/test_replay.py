"""`xborder replay` on the hand-written scenario: every alert group and dead letter, exactly."""

from __future__ import annotations

import gzip
import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from monitor.config.runtime import Runtime, load_runtime
from monitor.config.settings import Settings
from monitor.contract.decode import decode_message
from monitor.contract.schemas import JSON_WHITESPACE, MAX_RECORD_BYTES, DeadLetter, Record
from monitor.replay.runner import ReplaySummary, read_lines, replay
from tests.support.replay import line_count, readable_part, run_replay
from tests.support.scenario import EXPECTED_ALERTS, EXPECTED_DEAD_LETTERS, records, summarize


def test_scenario_alert_groups_and_counts(
    tmp_path: Path, scenario_file: Path, country_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, alerts, _ = run_replay(tmp_path, [scenario_file], country_db)
    assert code == 0
    assert summarize(alerts) == EXPECTED_ALERTS
    assert len({a["alert_id"] for a in alerts}) == len(alerts)
    out = capsys.readouterr().out
    assert "dead letters: 8" in out and "alerts: 13" in out


def test_scenario_dead_letters(tmp_path: Path, scenario_file: Path, country_db: Path) -> None:
    _, _, dead = run_replay(tmp_path, [scenario_file], country_db)
    by_reason: dict[str, list[int]] = {}
    for d in dead:
        assert d["source"]["file"] == str(scenario_file)
        assert d["received_at"].endswith("Z")
        by_reason.setdefault(d["reason"], []).append(d["source"]["line"])
    assert by_reason == EXPECTED_DEAD_LETTERS
    binary = next(d for d in dead if d["source"]["line"] == 12)
    assert "raw_base64" in binary and "raw" not in binary
    assert next(d for d in dead if d["source"]["line"] == 7)["raw"] == "[1, 2]"


def test_alert_carries_evidence_custody_and_no_personal_data(
    tmp_path: Path, scenario_file: Path, country_db: Path
) -> None:
    _, alerts, _ = run_replay(tmp_path, [scenario_file], country_db)
    nlb = sorted(
        (a for a in alerts if a["rule_id"] == "pipa.xborder.no_legal_basis"),
        key=lambda a: a["first_seen"],
    )[0]
    assert nlb["severity"] == "critical" and nlb["legal_ref"] == "PIPA Art. 28-8(1)"
    assert nlb["subject_region"] == "KR"
    assert [e["event_id"] for e in nlb["evidence"]] == ["ali-2", "ali-3"]
    assert nlb["evidence"][0]["source"] == {"file": str(scenario_file), "line": 2}
    assert (
        nlb["first_seen"] == "2026-10-01T00:01:00.000Z"
        and nlb["last_seen"] == "2026-10-01T00:02:00.000Z"
    )
    assert nlb["geoip_build"] == "2026-06-17"
    assert nlb["rules_version"].startswith("1.0.0+")
    assert set(nlb["data_categories"]) == {"user.contact.email", "user.name"}
    onward = next(
        a
        for a in alerts
        if a["rule_id"] == "pipa.xborder.onward_transfer" and a["dataset_id"] == "ds-2"
    )
    assert onward["evidence"][0]["event_id"] == "ali-5"
    assert onward["evidence"][0]["first_hop"]["event_id"] == "ali-6"
    assert onward["evidence"][0]["first_hop"]["source"]["line"] == 15
    text = orjson.dumps(alerts).decode()
    for personal in ("u-9", "u-10", "u-11", "211.234.", "240e:", "2001:e60", "47.92."):
        assert personal not in text


def test_same_input_same_alert_ids(tmp_path: Path, scenario_file: Path, country_db: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _, first, _ = run_replay(tmp_path / "a", [scenario_file], country_db)
    _, second, _ = run_replay(tmp_path / "b", [scenario_file], country_db)
    assert sorted(a["alert_id"] for a in first) == sorted(a["alert_id"] for a in second)


def test_replaying_twice_counts_nothing_twice(
    tmp_path: Path, scenario_file: Path, country_db: Path
) -> None:
    # Two copies of the same export: every record is a duplicate of one already seen.
    _, alerts, dead = run_replay(tmp_path, [scenario_file, scenario_file], country_db)
    assert summarize(alerts) == EXPECTED_ALERTS
    assert len(dead) == 16


def test_missing_inputs_and_databases_fail_clearly(
    tmp_path: Path, scenario_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, _ = run_replay(tmp_path, [tmp_path / "nope.jsonl"], tmp_path / "x.mmdb")
    assert code == 2 and "input file not found" in capsys.readouterr().err
    missing_db = tmp_path / "missing.mmdb"
    code, _, _ = run_replay(tmp_path, [scenario_file], missing_db)
    err = capsys.readouterr().err
    assert code == 2 and str(missing_db) in err and "xborder geoip fetch" in err
    bad_rules = tmp_path / "rules"
    bad_rules.mkdir()
    code, _, _ = run_replay(tmp_path, [scenario_file], missing_db, "--rules", str(bad_rules))
    err = capsys.readouterr().err
    assert code == 2 and str(bad_rules) in err and "file not found" in err


def test_read_lines_streams_overlong_lines_without_holding_them() -> None:
    data = b'{"a": 1}\n' + b"x" * (3 * MAX_RECORD_BYTES) + b"\n" + b'{"b": 2}'
    got = list(read_lines(io.BytesIO(data)))
    assert [(n, too_large) for n, _, too_large in got] == [(1, False), (2, True), (3, False)]
    assert len(got[1][1]) == MAX_RECORD_BYTES


def test_gzip_exports_and_a_byte_order_mark_are_read(
    tmp_path: Path, scenario_file: Path, country_db: Path
) -> None:
    packed = tmp_path / "scenario.jsonl.gz"
    packed.write_bytes(gzip.compress(b"\xef\xbb\xbf" + scenario_file.read_bytes()))
    code, alerts, dead = run_replay(tmp_path, [packed], country_db)
    assert code == 0 and summarize(alerts) == EXPECTED_ALERTS
    assert sorted(d["source"]["line"] for d in dead) == sorted(
        n for v in EXPECTED_DEAD_LETTERS.values() for n in v
    )


# --- blank lines and line ends ------------------------------------------------

ROWS = [orjson.dumps(r) for r in records()[:4]]  # valid records of the scenario
NOT_RECORDS = [b"{broken", b"[1, 2]"]


@pytest.fixture(scope="module")
def runtime() -> Iterator[Runtime]:
    rt = load_runtime(Settings(use_geoip=False))
    yield rt
    rt.close()


def replay_files(runtime: Runtime, *files: Path) -> tuple[ReplaySummary, list[dict[str, Any]]]:
    """Replay's summary and dead letters for `files`."""
    alerts, dead = io.BytesIO(), io.BytesIO()
    summary = replay(files, runtime.pack, runtime.resolver(), alerts, dead)
    return summary, [orjson.loads(x) for x in dead.getvalue().splitlines()]


def reasons_by_line(dead: list[dict[str, Any]]) -> dict[int, str]:
    return {d["source"]["line"]: d["reason"] for d in dead}


def test_only_json_whitespace_makes_a_line_blank(tmp_path: Path, runtime: Runtime) -> None:
    body = [
        ROWS[0],
        b"\x0b",  # 2
        b" \t ",
        b"\x0c",  # 4
        b"",
        ROWS[1] + b"\x0c",  # 6: a record, then a byte JSON does not allow
        b"\x0b" + ROWS[2],  # 7
        b"\xc2\xa0",  # 8: no-break space
        b"\x1c",  # 9: a separator Python's str.split would take for space
        ROWS[3],
    ]
    path = tmp_path / "ws.jsonl"
    path.write_bytes(b"\n".join(body) + b"\n")
    summary, dead = replay_files(runtime, path)
    assert reasons_by_line(dead) == {n: "invalid_json" for n in (2, 4, 6, 7, 8, 9)}
    assert summary.records == 2
    assert summary.records + len(dead) == len([x for x in body if x.strip(b" \t")])
    assert [d["raw"] for d in dead[:2]] == ["\x0b", "\x0c"]


LINE_ENDS = {"LF": [b"\n"], "CRLF": [b"\r\n"], "CR": [b"\r"], "mixed": [b"\r\n", b"\r", b"\n"]}


def join_lines(lines: list[bytes], ends: list[bytes], last: bool) -> bytes:
    text = b"".join(line + ends[i % len(ends)] for i, line in enumerate(lines))
    return text if last else text[: -len(ends[(len(lines) - 1) % len(ends)])]


@pytest.mark.parametrize("last", [True, False], ids=["ended", "unended"])
@pytest.mark.parametrize("ends", LINE_ENDS.values(), ids=LINE_ENDS.keys())
def test_lf_crlf_and_lone_cr_each_end_a_line(
    tmp_path: Path, runtime: Runtime, ends: list[bytes], last: bool
) -> None:
    body = [ROWS[0], NOT_RECORDS[0], ROWS[1], ROWS[2], NOT_RECORDS[1], ROWS[3]]
    path = tmp_path / "ends.jsonl"
    path.write_bytes(join_lines(body, ends, last))
    summary, dead = replay_files(runtime, path)
    assert (summary.lines, summary.records) == (6, 4)
    assert reasons_by_line(dead) == {2: "invalid_json", 5: "not_an_object"}
    assert [d["raw"] for d in dead] == ["{broken", "[1, 2]"]


class Trickle:
    """A stream that hands out a few bytes a call, to cut line ends across blocks."""

    def __init__(self, data: bytes, step: int) -> None:
        self.data, self.step, self.at = data, step, 0

    def read(self, size: int = -1, /) -> bytes:
        block = self.data[self.at : self.at + self.step]
        self.at += len(block)
        return block


@pytest.mark.parametrize("step", [1, 2, 3, 5])
def test_a_crlf_split_between_two_blocks_ends_one_line(step: int) -> None:
    data = b"a\r\nb\r\rc\n\r\nd\r"
    got = [(n, line.strip(JSON_WHITESPACE)) for n, line, _ in read_lines(Trickle(data, step))]
    assert got == [(1, b"a"), (2, b"b"), (3, b""), (4, b"c"), (5, b""), (6, b"d")]


def test_overlong_lines_ended_by_lone_crs_stay_bounded() -> None:
    data = b'{"a": 1}\r' + b"x" * (3 * MAX_RECORD_BYTES) + b"\r" + b'{"b": 2}'
    got = list(read_lines(io.BytesIO(data)))
    assert [(n, too_large) for n, _, too_large in got] == [(1, False), (2, True), (3, False)]
    assert got[2][1] == b'{"b": 2}'


@pytest.mark.parametrize("ends", LINE_ENDS.values(), ids=LINE_ENDS.keys())
def test_a_jsonl_batch_splits_like_a_file(
    tmp_path: Path, runtime: Runtime, ends: list[bytes]
) -> None:
    body = [ROWS[0], NOT_RECORDS[0], b"\x0b", ROWS[1], NOT_RECORDS[1], b"\x0c" + ROWS[2], ROWS[3]]
    text = join_lines(body, ends, last=True)
    path = tmp_path / "batch.jsonl"
    path.write_bytes(text)
    summary, dead = replay_files(runtime, path)
    from_file = {d["source"]["line"] - 1: d["reason"] for d in dead}
    from_message = {
        at["index"]: got.reason
        for got, at in decode_message(text, {"topic": "t", "partition": 0, "offset": 0})
        if isinstance(got, DeadLetter)
    }
    assert (
        from_file
        == from_message
        == {1: "invalid_json", 2: "invalid_json", 4: "not_an_object", 5: "invalid_json"}
    )
    assert summary.records == 3


@pytest.mark.parametrize(
    "value", [b"\x0b", b"\x0c\n", ROWS[0] + b"\x0c", b"\x0b" + ROWS[0], b" \x0b \r\n"]
)
def test_a_message_of_non_json_whitespace_is_a_dead_letter(value: bytes) -> None:
    got = list(decode_message(value, {"topic": "t", "partition": 0, "offset": 7}))
    assert [(type(r).__name__, getattr(r, "reason", None)) for r, _ in got] == [
        ("DeadLetter", "invalid_json")
    ]


def test_a_record_with_a_raw_cr_between_its_tokens_is_still_one_message_record() -> None:
    value = ROWS[0].replace(b",", b",\r", 1)
    got = list(decode_message(value, {"topic": "t", "partition": 0, "offset": 7}))
    assert len(got) == 1 and isinstance(got[0][0], Record)


# --- files that cannot be read to their end -------------------------------------


def test_a_truncated_gzip_file_is_replayed_as_far_as_it_reads(
    tmp_path: Path, runtime: Runtime
) -> None:
    data = b"".join(row + b"\n" for row in [*ROWS, *NOT_RECORDS] * 2000)
    packed = gzip.compress(data)
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(packed[: len(packed) // 2])
    after = tmp_path / "after.jsonl"
    after.write_bytes(b"\n".join([ROWS[0], NOT_RECORDS[0]]))
    readable = readable_part(cut.read_bytes())
    assert 0 < len(readable) < len(data)

    summary, dead = replay_files(runtime, cut, after)
    read = line_count(readable)
    assert summary.lines == read + 2
    (error,) = summary.read_errors
    assert (error.file, error.line, error.offset) == (str(cut), read, len(readable))
    assert error.ends_line is readable.endswith(b"\n")
    assert "inside line" in str(error) and "cut short" in str(error)
    from_cut = [d for d in dead if d["source"]["file"] == str(cut)]
    complete = readable[: readable.rfind(b"\n") + 1]
    assert len(from_cut) >= complete.count(b"\n") // 3  # every third line is not a record
    assert [d["source"] for d in dead if d["source"]["file"] == str(after)] == [
        {"file": str(after), "line": 2}
    ]


def test_a_gzip_file_with_a_bad_check_sum_is_replayed_and_reported(
    tmp_path: Path, runtime: Runtime
) -> None:
    packed = bytearray(gzip.compress(b"\n".join(ROWS) + b"\n"))
    packed[-6] ^= 0xFF  # inside the CRC-32 of the gzip trailer
    path = tmp_path / "crc.jsonl.gz"
    path.write_bytes(bytes(packed))
    summary, _ = replay_files(runtime, path)
    assert summary.records == len(ROWS)
    (error,) = summary.read_errors
    assert (error.line, error.ends_line) == (len(ROWS), True)
    assert f"after line {len(ROWS)}" in str(error) and "CRC check failed" in str(error)


def test_a_file_name_that_is_not_utf8_is_escaped_in_sources(
    tmp_path: Path, runtime: Runtime
) -> None:
    path = tmp_path / os.fsdecode(b"export-\xff.jsonl")
    path.write_bytes(ROWS[0] + b"\n" + NOT_RECORDS[0] + b"\n")
    _, dead = replay_files(runtime, path)
    assert dead[0]["source"] == {"file": str(tmp_path / "export-\\xff.jsonl"), "line": 2}
