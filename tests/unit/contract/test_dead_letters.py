"""Dead letters: raw bytes kept as evidence, every letter bounded as serialised."""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from monitor.cli.main import build_parser, main, settings_from
from monitor.config.runtime import load_runtime
from monitor.config.settings import Settings
from monitor.contract.dead_letters import (
    MAX_DEAD_LETTER_BYTES,
    MAX_SOURCE_TEXT,
    dead_letter_json,
    mask_raw,
)
from monitor.contract.schemas import (
    MAX_RECORD_BYTES,
    DeadLetter,
    FileSource,
    KafkaSource,
    Source,
)
from monitor.detect.stages import ingest
from monitor.errors import ConfigError

FILE: FileSource = {"file": "export.jsonl", "line": 7}
KAFKA: KafkaSource = {"topic": "telemetry.api", "partition": 3, "offset": 123456789, "index": 999}
AT = "2026-10-01T00:00:00.000Z"


def letter(raw: bytes, source: Source = KAFKA) -> dict[str, Any]:
    return dead_letter_json(DeadLetter("invalid_json", source, raw), AT)


def size(out: dict[str, Any]) -> int:
    return len(orjson.dumps(out))


def assert_cut_text(out: dict[str, Any], raw: bytes) -> None:
    """A cut letter: bounded, close to the bound, its raw a start of the record's text."""
    assert size(out) <= MAX_DEAD_LETTER_BYTES
    assert size(out) > MAX_DEAD_LETTER_BYTES - 6 * 64 - 200
    assert out["raw_truncated"] is True and out["raw_size"] == len(raw)
    assert raw.startswith(out["raw"].encode())


def test_control_bytes_escape_six_fold_and_are_cut_to_the_bound() -> None:
    raw = bytes(range(1, 32)) * (200 * 1024 // 31)
    out = letter(raw)
    assert_cut_text(out, raw)
    assert len(out["raw"]) < MAX_DEAD_LETTER_BYTES // 5


@pytest.mark.parametrize("char", ["é", "한", "😀"])
def test_multibyte_text_is_cut_between_characters(char: str) -> None:
    raw = b'{"pad": "' + char.encode() * (MAX_RECORD_BYTES // 2) + b'"}'
    out = letter(raw)
    assert_cut_text(out, raw)
    assert out["raw"].endswith(char)


def test_quotes_and_backslashes_count_twice() -> None:
    raw = b'\\"' * (300 * 1024)
    out = letter(raw)
    assert_cut_text(out, raw)
    assert len(out["raw"]) <= MAX_DEAD_LETTER_BYTES // 2


def test_invalid_utf8_goes_base64_and_is_cut_by_four_thirds() -> None:
    raw = b"\xff\x00abc" * (MAX_RECORD_BYTES // 5)
    out = letter(raw)
    assert "raw" not in out and size(out) <= MAX_DEAD_LETTER_BYTES
    kept = base64.b64decode(out["raw_base64"])
    assert raw.startswith(kept) and len(kept) > MAX_DEAD_LETTER_BYTES * 3 // 4 - 300
    assert out["raw_truncated"] is True and out["raw_size"] == len(raw)


def test_a_record_already_cut_inside_a_character_stays_text() -> None:
    # Replay keeps the first MiB of an over-long line, wherever that falls.
    raw = ("é" * MAX_RECORD_BYTES).encode()[: MAX_RECORD_BYTES - 1]
    out = dead_letter_json(DeadLetter("too_large", FILE, raw), AT)
    assert_cut_text(out, raw)


def test_a_small_record_ending_in_a_partial_character_is_base64_whole() -> None:
    raw = b'{"a": "\xc3'
    out = letter(raw)
    assert base64.b64decode(out["raw_base64"]) == raw and "raw_truncated" not in out


def test_small_letters_are_whole_and_unmarked() -> None:
    out = letter(b'{"a": "\\u0001\x01"}', FILE)
    assert out == {
        "reason": "invalid_json",
        "source": FILE,
        "raw": '{"a": "\\u0001\x01"}',
        "received_at": AT,
    }


def test_a_long_file_name_keeps_its_end() -> None:
    name = "/exports/" + "\x01" * 5000 + "/day-07.jsonl"
    out = letter(b"{nope", {"file": name, "line": 3})
    assert out["source_truncated"] is True and out["source"]["line"] == 3
    kept = out["source"]["file"]
    assert kept.startswith("…") and kept.endswith("\x01/day-07.jsonl")
    assert len(orjson.dumps(kept)) <= MAX_SOURCE_TEXT + 2
    assert out["raw"] == "{nope"


# --- masking ----------------------------------------------------------------------

PERSONAL = {
    "kind": "api_call",
    "src_ip": "211.234.1.1",
    "dst_ip": "2406:da18::1",
    "subject_ids": ["u-9", 'u-"10"'],
    "endpoint": "http://47.92.3.3:8080/x",
    "note": "from ::ffff:10.0.0.1 and fe80::1%eth0, [2001:db8::7]:443 and 2001:db8::2.",
    "consent": {"subject_id": 12345},
    "ts": "2026-10-01T10:00:00+09:00",
    "mac": "00:1a:2b:3c:4d:5e",
}
SECRETS = ["211.234", "2406:", "u-9", "10\\", "47.92", "10.0.0.1", "fe80", "2001:", "12345"]


def test_masking_hides_subject_ids_and_addresses_and_keeps_the_json_shape() -> None:
    raw = orjson.dumps(PERSONAL)
    out = dead_letter_json(DeadLetter("invalid_field:bytes", FILE, raw), AT, mask=True)
    assert out["raw_masked"] is True and "raw_truncated" not in out
    for secret in SECRETS:
        assert secret not in out["raw"], secret
    assert orjson.loads(out["raw"]) == {
        **PERSONAL,
        "src_ip": "***",
        "dst_ip": "***",
        "subject_ids": ["***", "***"],
        "endpoint": "http://***:8080/x",
        "note": "from *** and ***%eth0, [***]:443 and ***.",
        "consent": {"subject_id": "***"},
    }


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        (b'{"subject_id": "u-12', b'{"subject_id": "***"'),  # cut short inside the value
        (b'{"subject_id": "u-12\\', b'{"subject_id": "***"'),
        (b'{"subject_ids" : [ 1 , "x\\"y" ', b'{"subject_ids" : [ "***" , "***" '),
        (b'{"src_ip":null,"dst_ip" :3232235777}', b'{"src_ip":"***","dst_ip" :"***"}'),
        (b'{"subject_id": "\xff\xfe", "x": 1.2.3.4}', b'{"subject_id": "***", "x": ***}'),
        (b"2026-10-01T10:00:00.123Z 00:1a:2b:3c:4d:5e v1.2", None),  # nothing to mask
    ],
)
def test_masking_works_on_text_that_is_not_json(raw: bytes, masked: bytes | None) -> None:
    assert mask_raw(raw) == (raw if masked is None else masked)


def test_masked_bytes_that_are_not_utf8_stay_base64() -> None:
    raw = b'{"subject_id": "u-1", "x": "\xff"}'
    out = dead_letter_json(DeadLetter("invalid_json", KAFKA, raw), AT, mask=True)
    assert base64.b64decode(out["raw_base64"]) == b'{"subject_id": "***", "x": "\xff"}'
    assert out["raw_masked"] is True


def test_masking_is_off_by_default_and_unmarked_when_nothing_changed() -> None:
    raw = orjson.dumps(PERSONAL)
    assert dead_letter_json(DeadLetter("invalid_json", KAFKA, raw), AT)["raw"] == raw.decode()
    plain = dead_letter_json(DeadLetter("invalid_json", KAFKA, b"{nope"), AT, mask=True)
    assert plain["raw"] == "{nope" and "raw_masked" not in plain


HOSTILE = {
    "open arrays": b'"subject_ids": [' * 70_000,
    "backslashes": b'"src_ip": "' + b"\\" * MAX_RECORD_BYTES,
    "unclosed strings": b'"subject_id":"' * 70_000,
    "colons": b"1:" * (MAX_RECORD_BYTES // 2),
    "dots": b"1." * (MAX_RECORD_BYTES // 2),
    "addresses": b"::1 " * (MAX_RECORD_BYTES // 4),
    "hex": b"a" * MAX_RECORD_BYTES,
}


@pytest.mark.parametrize("raw", HOSTILE.values(), ids=HOSTILE.keys())
def test_masking_takes_linear_time_on_hostile_input(raw: bytes) -> None:
    # Backtracking that grew faster than the input would take minutes here;
    # linear work takes well under a second.
    started = time.perf_counter()
    out = dead_letter_json(DeadLetter("too_large", KAFKA, raw), AT, mask=True)
    assert time.perf_counter() - started < 5
    assert size(out) <= MAX_DEAD_LETTER_BYTES


# --- the setting, in replay and in the worker ---------------------------------------


def test_the_mask_setting_is_off_by_default_and_reads_1_or_0() -> None:
    assert Settings.from_env({}).dead_letter_mask is False
    assert Settings.from_env({"XBORDER_DEAD_LETTER_MASK": "1"}).dead_letter_mask is True
    assert Settings.from_env({"XBORDER_DEAD_LETTER_MASK": "false"}).dead_letter_mask is False
    with pytest.raises(ConfigError, match="XBORDER_DEAD_LETTER_MASK"):
        Settings.from_env({"XBORDER_DEAD_LETTER_MASK": "maybe"})
    worker = build_parser().parse_args(["worker", "--mask-dead-letters"])
    assert settings_from(worker).dead_letter_mask is True


def test_replay_masks_dead_letters_by_flag_or_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(orjson.dumps(PERSONAL) + b"\n")  # no event_id: a dead letter

    def dead_letter(*flags: str) -> dict[str, Any]:
        out = tmp_path / "dead.jsonl"
        args = ["replay", str(path), "--no-geoip", "--alerts-out", str(tmp_path / "a.jsonl")]
        assert main([*args, "--dead-letters-out", str(out), *flags]) == 0
        (letter,) = [dict(orjson.loads(x)) for x in out.read_bytes().splitlines()]
        assert letter["reason"] == "missing_field:event_id"
        return letter

    assert "raw_masked" not in dead_letter() and "211.234.1.1" in dead_letter()["raw"]
    masked = dead_letter("--mask-dead-letters")
    assert masked["raw_masked"] is True and "211.234.1.1" not in masked["raw"]
    monkeypatch.setenv("XBORDER_DEAD_LETTER_MASK", "1")
    assert dead_letter()["raw_masked"] is True
    assert "raw_masked" not in dead_letter("--no-mask-dead-letters")


def test_the_worker_ingest_stage_masks_dead_letters_when_asked() -> None:
    runtime = load_runtime(Settings(use_geoip=False))
    messages = [(orjson.dumps(PERSONAL), KAFKA)]
    plain = ingest(messages, runtime.pack, runtime.resolver(), 4).dead_letters
    masked = ingest(
        messages, runtime.pack, runtime.resolver(), 4, mask_dead_letters=True
    ).dead_letters
    assert "u-9" in plain[0]["raw"] and "raw_masked" not in plain[0]
    assert "u-9" not in masked[0]["raw"] and masked[0]["raw_masked"] is True
    assert masked[0]["source"] == KAFKA
