"""Dead letters as the contract writes them, each small enough for one Kafka message.

A dead letter keeps the record's bytes as evidence: `raw` text when they
are UTF-8, `raw_base64` when not. Escaping makes text grow (a control byte
is six bytes, `\\u0001`; base64 is 4/3), so the bound is on the letter as
serialised: the raw is cut to fit, between characters, and the letter says
so with `raw_truncated: true` and `raw_size`, the size of the record as it
came. `source` is bounded as well (a file name can be long): a string too
long keeps its end (a file's own name), after `…`, and the letter carries
`source_truncated: true`.
"""

from __future__ import annotations

import base64
from typing import Any, Final

import orjson

from monitor.schemas import DeadLetter, Source

__all__ = ["MAX_DEAD_LETTER_BYTES", "dead_letter_json"]

# Kafka refuses messages over 1 MB by default; half of that leaves room for
# the record batch around it, and for a topic configured lower by half.
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


def head_that_fits(text: str, budget: int) -> str:
    """The longest start of `text` (to within `_FIT_SLACK` characters) that is at most `budget` bytes as JSON.

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
    out: Source = {}
    cut = False
    for key, value in source.items():
        if isinstance(value, str) and _json_size(value) > MAX_SOURCE_TEXT:
            budget = MAX_SOURCE_TEXT - len(_ELLIPSIS.encode())
            value = _ELLIPSIS + head_that_fits(value[::-1], budget)[::-1]
            cut = True
        out[key] = value
    return out, cut


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


def dead_letter_json(dl: DeadLetter, received_at: str) -> dict[str, Any]:
    """The dead-letter object of the contract, at most `MAX_DEAD_LETTER_BYTES` as JSON."""
    source, source_cut = _bounded_source(dl.source)
    out: dict[str, Any] = {"reason": dl.reason, "source": source}
    if source_cut:
        out["source_truncated"] = True
    # The room left for the raw: the letter without it, with every flag it may get.
    frame = {**out, "raw_base64": "", "raw_truncated": True, "raw_size": len(dl.raw)}
    budget = MAX_DEAD_LETTER_BYTES - len(orjson.dumps({**frame, "received_at": received_at}))
    raw = dl.raw
    text = _raw_text(raw, budget)
    if text is not None:
        # A text that lost a partial character does not fit: it is cut here too.
        out["raw"] = head_that_fits(text, budget)
        cut = len(out["raw"]) < len(text)
    else:
        keep = budget // 4 * 3  # base64 writes 4 bytes for every 3
        out["raw_base64"] = base64.b64encode(raw[:keep]).decode("ascii")
        cut = len(raw) > keep
    if cut:
        out["raw_truncated"] = True
        out["raw_size"] = len(raw)
    out["received_at"] = received_at
    return out
