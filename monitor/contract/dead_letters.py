"""Dead letters as the contract writes them, each small enough for one Kafka message.

A dead letter keeps the record's bytes as evidence: `raw` text when they
are UTF-8, `raw_base64` when not. Escaping makes text grow (a control byte
is six bytes, `\\u0001`; base64 is 4/3), so the bound is on the letter as
serialised: the raw is cut to fit, between characters, and the letter says
so with `raw_truncated: true` and `raw_size`, the size of the record as it
came. `source` is bounded as well (a file name can be long): a string too
long keeps its end (a file's own name), after `…`, and the letter carries
`source_truncated: true`.

Masking (off unless configured): IPv4 and IPv6 addresses anywhere in the
raw, and the values of `subject_id`, `subject_ids`, `src_ip` and `dst_ip`,
become `***` (a masked value `"***"`, so valid JSON stays valid), before
the letter is cut to size; the letter then carries `raw_masked: true`. The
raw may be anything but JSON, so masking works on its bytes with patterns
that match each byte one way only: time grows with the length of the raw,
never faster.
"""

from __future__ import annotations

import base64
import re
import socket
from typing import Any, Final, cast

import orjson

from monitor.contract.schemas import DeadLetter, Source

__all__ = ["MAX_DEAD_LETTER_BYTES", "MAX_SOURCE_TEXT", "dead_letter_json", "mask_raw"]

# Kafka refuses messages over 1 MB by default (max.message.bytes); half of
# that leaves ample room for the record batch around a letter.
MAX_DEAD_LETTER_BYTES: Final = 512 * 1024
# The most a source string keeps, as JSON; a source holds at most four values.
MAX_SOURCE_TEXT: Final = 2048
# How close to the longest fitting cut the search for it goes, in characters:
# a few bytes of evidence are not worth more passes over half a megabyte.
_FIT_SLACK: Final = 64
_ELLIPSIS: Final = "…"


def _json_size(text: str) -> int:
    """Bytes of `text` as a JSON string, without its quotes."""
    return len(orjson.dumps(text)) - 2


def _head_that_fits(text: str, budget: int) -> str:
    """The longest start of `text` that is at most `budget` bytes as JSON (to `_FIT_SLACK`).

    A str is cut between characters, so the cut never splits a UTF-8 sequence.
    """
    if _json_size(text) <= budget:
        return text
    lo, hi = 0, min(len(text), budget)  # a character is one byte at least
    while hi - lo > _FIT_SLACK:
        mid = (lo + hi) // 2
        if _json_size(text[:mid]) <= budget:
            lo = mid
        else:
            hi = mid
    return text[:lo]


def _bounded_source(source: Source) -> tuple[Source, bool]:
    """`source` with each string value at most `MAX_SOURCE_TEXT` bytes as JSON; whether one was cut."""
    out: dict[str, object] = {}
    cut = False
    for key, value in source.items():
        if isinstance(value, str) and _json_size(value) > MAX_SOURCE_TEXT:
            budget = MAX_SOURCE_TEXT - len(_ELLIPSIS.encode())
            value = _ELLIPSIS + _head_that_fits(value[::-1], budget)[::-1]
            cut = True
        out[key] = value
    # The same keys, a string value at most shortened: still the source's shape.
    return cast(Source, out), cut


def _raw_text(raw: bytes, budget: int) -> str | None:
    """`raw` as text, or None when it is not UTF-8.

    A record cut short before it came here (replay keeps the first MiB of
    an over-long line) may end inside a character; when its text is to be
    cut to fit anyway, that partial character goes with the cut instead of
    turning the whole record into base64.
    """
    try:
        return raw.decode()
    except UnicodeDecodeError as e:
        if e.end != len(raw) or e.reason != "unexpected end of data":
            return None
        head = raw[: e.start].decode()
        return head if _json_size(head) > budget else None


# --- masking --------------------------------------------------------------------

# A JSON string to its closing quote, or to the end of a raw cut short inside
# it; each byte matches one way only (the unrolled-loop form), and the end
# always matches, so a failed attempt never backtracks through the string.
_STRING: Final = rb'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)'
# A bare value where a string belongs (a number, true, null, a typo).
_SCALAR: Final = rb'[^\s,:"\[\]{}]+'
_TOKEN: Final = re.compile(_STRING + rb"|" + _SCALAR, re.DOTALL)
# A masked field and its value: a string, a scalar, or an array (or object)
# up to its end or its first nested bracket.
_FIELD: Final = re.compile(
    rb'("(?:subject_ids?|src_ip|dst_ip)"\s*:\s*)'
    rb"(" + _STRING + rb"|" + _SCALAR + rb"|[\[{](?:" + _STRING + rb'|[^"\[\]{}])*)',
    re.DOTALL,
)
# Candidates only, checked by the system's parser: a run of hex digits,
# dots and at least two colons that does not start inside a word (so each
# run is tried once), and dotted quads.
_IPV6_RUN: Final = re.compile(rb"(?<![0-9A-Za-z:.])[0-9A-Fa-f.]*:[0-9A-Fa-f.]*:[0-9A-Fa-f:.]*")
_IPV4: Final = re.compile(rb"(?<![0-9.])[0-9]{1,3}(?:\.[0-9]{1,3}){3}(?![0-9])")
_MASK: Final = b"***"
_MASKED_VALUE: Final = b'"***"'
_IPV6_TEXT: Final = 45  # longest IPv6 text, with an IPv4 tail


def _masked_field(m: re.Match[bytes]) -> bytes:
    return m[1] + _TOKEN.sub(_MASKED_VALUE, m[2])


def _is_ipv6(text: bytes) -> bool:
    if len(text) > _IPV6_TEXT:
        return False
    try:
        socket.inet_pton(socket.AF_INET6, text.decode("ascii"))
    except (OSError, ValueError):
        return False
    return True


def _masked_ipv6(m: re.Match[bytes]) -> bytes:
    run = m[0]
    # A run may go on past the address with a colon or a dot of the text around it.
    for end in (len(run), len(run.rstrip(b":."))):
        if _is_ipv6(run[:end]):
            return _MASK + run[end:]
    return run


def mask_raw(raw: bytes) -> bytes:
    """`raw` with subject ids and IP addresses masked (see the module docstring)."""
    raw = _FIELD.sub(_masked_field, raw)
    raw = _IPV6_RUN.sub(_masked_ipv6, raw)
    return _IPV4.sub(_MASK, raw)


# --- the letter -----------------------------------------------------------------


def dead_letter_json(dl: DeadLetter, received_at: str, mask: bool = False) -> dict[str, Any]:
    """The dead-letter object of the contract, at most `MAX_DEAD_LETTER_BYTES` as JSON.

    `mask`: mask subject ids and IP addresses in the raw first.
    """
    source, source_cut = _bounded_source(dl.source)
    out: dict[str, Any] = {"reason": dl.reason, "source": source}
    if source_cut:
        out["source_truncated"] = True
    if dl.detail is not None:
        out["detail"] = dl.detail
    # The room left for the raw: the letter without it, with every flag it may get.
    frame = {
        **out,
        "raw_base64": "",
        "raw_truncated": True,
        "raw_size": len(dl.raw),
        "raw_masked": True,
        "received_at": received_at,
    }
    budget = MAX_DEAD_LETTER_BYTES - len(orjson.dumps(frame))
    raw = mask_raw(dl.raw) if mask else dl.raw
    if raw != dl.raw:
        out["raw_masked"] = True
    text = _raw_text(raw, budget)
    if text is not None:
        # A text that lost a partial character does not fit: it is cut here too.
        out["raw"] = _head_that_fits(text, budget)
        cut = len(out["raw"]) < len(text)
    else:
        keep = budget // 4 * 3  # base64 writes 4 bytes for every 3
        out["raw_base64"] = base64.b64encode(raw[:keep]).decode("ascii")
        cut = len(raw) > keep
    if cut:
        out["raw_truncated"] = True
        out["raw_size"] = len(dl.raw)
    out["received_at"] = received_at
    return out
