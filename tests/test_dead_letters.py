"""Dead letters: raw bytes kept as evidence, every letter bounded as serialised."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.dead_letters import MAX_DEAD_LETTER_BYTES, MAX_SOURCE_TEXT, dead_letter_json
from monitor.schemas import MAX_RECORD_BYTES, DeadLetter, Source

FILE = {"file": "export.jsonl", "line": 7}
KAFKA = {"topic": "telemetry.api", "partition": 3, "offset": 123456789, "index": 999}
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


# Bytes with what grows most when escaped, in long runs: the bound must hold
# for any of them, whatever the size up to past the record limit.
PIECES = st.one_of(
    st.binary(max_size=8),
    st.sampled_from([b"\x01", b"\x1f", b'"', b"\\", b"\n", "é".encode(), "😀".encode(), b"\xff"]),
)


@st.composite
def raws(draw: st.DrawFn) -> bytes:
    unit = b"".join(draw(st.lists(PIECES, min_size=1, max_size=8))) or b"x"
    length = draw(st.integers(0, MAX_RECORD_BYTES + 1024))
    return (unit * (length // len(unit) + 1))[:length]


SOURCES = st.one_of(
    st.builds(
        lambda name, n, line: {"file": name * n, "line": line},
        st.text(max_size=20),
        st.integers(1, 1000),
        st.integers(1, 1 << 40),
    ),
    st.builds(
        lambda topic, offset: {"topic": topic, "partition": 0, "offset": offset, "index": 3},
        st.text(max_size=300),
        st.integers(0, 1 << 62),
    ),
)


@settings(max_examples=150, deadline=None)
@given(raw=raws(), source=SOURCES)
def test_every_dead_letter_is_bounded_as_serialised(raw: bytes, source: Source) -> None:
    out = dead_letter_json(DeadLetter("missing_field:subject_ids", source, raw), AT)
    assert size(out) <= MAX_DEAD_LETTER_BYTES
    kept = out["raw"].encode() if "raw" in out else base64.b64decode(out["raw_base64"])
    if out.get("raw_truncated"):
        assert out["raw_size"] == len(raw) and len(kept) < len(raw)
    else:
        assert kept == raw
