"""Every dead letter stays within its bound as serialised, whatever the bytes and the source
(property-based, up to past the record limit), masked or not."""

from __future__ import annotations

import base64

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.contract.dead_letters import MAX_DEAD_LETTER_BYTES, dead_letter_json, mask_raw
from monitor.contract.schemas import MAX_RECORD_BYTES, DeadLetter, Source

AT = "2026-10-01T00:00:00.000Z"


# Bytes with what grows most when escaped, in long runs: the bound must hold
# for any of them, whatever the size up to past the record limit.
PIECES = st.one_of(
    st.binary(max_size=8),
    st.sampled_from([b"\x01", b"\x1f", b'"', b"\\", b"\n", "é".encode(), "😀".encode(), b"\xff"]),
)


@st.composite
def raws(draw: st.DrawFn) -> bytes:
    unit = b"".join(draw(st.lists(PIECES, min_size=1, max_size=8))) or b"x"
    # Small, or around where escaping starts to need a cut, up to past the record limit.
    length = draw(st.integers(0, 4096) | st.integers(80_000, MAX_RECORD_BYTES + 1024))
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
@given(raw=raws(), source=SOURCES, mask=st.booleans())
def test_every_dead_letter_is_bounded_as_serialised(raw: bytes, source: Source, mask: bool) -> None:
    out = dead_letter_json(DeadLetter("missing_field:subject_ids", source, raw), AT, mask)
    assert len(orjson.dumps(out)) <= MAX_DEAD_LETTER_BYTES
    kept = out["raw"].encode() if "raw" in out else base64.b64decode(out["raw_base64"])
    held = mask_raw(raw) if mask else raw
    assert out.get("raw_masked", False) is (held != raw)
    if out.get("raw_truncated"):
        assert out["raw_size"] == len(raw) and len(kept) < len(held)
    else:
        assert kept == held
