"""Decode telemetry fast, many records at a time, with the contract's exact answers.

msgspec decodes and type-checks a record straight into its `Record` class (a
tagged union on `kind`); `_valid` adds what a type cannot say (time format,
addresses, country codes, labels, lengths, ranges). A record either step
refuses goes to the reference check, `schemas.check_record`, which names the
first failure in the contract's order. So this module changes the speed of
decoding, never its answers: the tests hold it to the reference.

Single-record texts of the form `{...}` are decoded many at a time: joined
by newlines, they decode in one call (`decode_lines`). A line that starts
with `{` and ends with `}` cannot continue a value on the next line (a `{`
may not follow a `}`, and strings hold no raw newline), so when the call
returns one value per line, each value is that line's record.

Decisions where the contract is silent:
- the size of a record inside a JSON array is its text as sent (the slice
  of the message), and a dead letter of such a record holds that slice;
- a message that is a JSON array or JSON Lines locates each record by
  `index`; a message holding one record has no `index`;
- JSON Lines batches split into lines as files do (LF, CRLF or a lone CR;
  see `monitor.contract.schemas`), so a text gives the same records either way; a
  message that does not split into valid records is still tried whole
  (pretty-printed JSON), so one record with a raw CR between its tokens
  stays valid.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Final, cast

import msgspec
import orjson

from monitor.contract.countries import ISO_ALPHA2
from monitor.contract.schemas import (
    JSON_WHITESPACE,
    LABEL_PATTERN,
    LEGAL_BASES,
    MAX_IP_TEXT,
    MAX_RECORD_BYTES,
    MAX_SUBJECT_IDS,
    MAX_TEXT,
    PLATFORM_PATTERN,
    TS_MAX,
    ApiCall,
    Consent,
    DeadLetter,
    Egress,
    KafkaSource,
    Record,
    Source,
    check_record,
    parse_ts,
)

__all__ = [
    "Decoded",
    "check",
    "decode_line",
    "decode_many",
    "decode_message",
    "decode_messages",
    "lf_line_ends",
]


# The record classes refuse unknown fields, so a record the strict decoders
# accept had every byte of it checked. The contract ignores unknown fields;
# these lenient twins decode records that carry some, but msgspec skips an
# unknown value more leniently than the reference parser (invalid UTF-8,
# numbers too large for a double), so `_skipped_ok` checks the text for those.
class _LooseEgress(Egress, kw_only=True, gc=False, tag="egress", forbid_unknown_fields=False):
    pass


class _LooseApiCall(ApiCall, kw_only=True, gc=False, tag="api_call", forbid_unknown_fields=False):
    pass


class _LooseConsent(Consent, kw_only=True, gc=False, tag="consent", forbid_unknown_fields=False):
    pass


_CANONICAL: Final[dict[type, type[Record]]] = {
    _LooseEgress: Egress,
    _LooseApiCall: ApiCall,
    _LooseConsent: Consent,
}
_ONE: Final = msgspec.json.Decoder(Egress | ApiCall | Consent)
_LOOSE: Final = msgspec.json.Decoder(_LooseEgress | _LooseApiCall | _LooseConsent)
_MANY: Final = msgspec.json.Decoder(list[Egress | ApiCall | Consent])
# A number the reference parser would read as infinity (and refuse) needs
# more than 308 digits, or an exponent of 100 or more; this is cautious
# (a match only sends the record to the reference).
_HUGE: Final = re.compile(rb"[0-9]{200}|[eE]\+?0*[1-9][0-9]{2}")
_RAW_ITEMS: Final = msgspec.json.Decoder(list[msgspec.Raw])
# RecursionError: msgspec refuses deep nesting (hostile input) that way.
_FAILED: Final = (msgspec.ValidationError, msgspec.DecodeError, RecursionError)
_CHUNK: Final = 64  # records per joint decode: small, as one bad record sends its chunk one by one
# orjson, the reference parser, reads integers in this range only (others as floats).
_INT_MIN: Final = -(1 << 63)
_INT_MAX: Final = (1 << 64) - 1


class _Memo:
    """Values already found valid (platforms, labels, addresses repeat): a set, bounded.

    Cleared when full, so hostile input with endless distinct values costs
    time, never memory.
    """

    __slots__ = ("known", "limit")

    def __init__(self, limit: int = 1 << 16) -> None:
        self.known: set[str] = set()
        self.limit = limit

    def add(self, value: str) -> None:
        if len(self.known) >= self.limit:
            self.known.clear()
        self.known.add(value)


_PLATFORMS = _Memo()
_LABELS = _Memo()
_IPS = _Memo()


def _platform_ok(value: str) -> bool:
    if value in _PLATFORMS.known:
        return True
    if PLATFORM_PATTERN.fullmatch(value) is None:
        return False
    _PLATFORMS.add(value)
    return True


def _ip_ok(value: str) -> bool:
    if value in _IPS.known:
        return True
    if len(value) > MAX_IP_TEXT:
        return False
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, value)
        except (OSError, ValueError):
            continue
        _IPS.add(value)
        return True
    return False


def _labels_ok(labels: tuple[str, ...]) -> bool:
    known = _LABELS.known
    for label in labels:
        if label not in known:
            if LABEL_PATTERN.fullmatch(label) is None:
                return False
            _LABELS.add(label)
    return True


def _text_ok(value: str | None) -> bool:
    return value is None or 0 < len(value) <= MAX_TEXT


def _country_ok(value: str | None) -> bool:
    return value is None or value in ISO_ALPHA2


def _count_ok(value: int | None) -> bool:
    return value is None or 0 <= value <= _INT_MAX


def _flow_ok(r: Egress | ApiCall) -> bool:
    """Checks egress and api_call share; normalises null lists."""
    if r.data_categories is None:
        r.data_categories = ()
    elif not _labels_ok(r.data_categories):
        return False
    return (
        _country_ok(r.src_country)
        and _country_ok(r.subject_region)
        and _count_ok(r.records)
        and _text_ok(r.dataset_id)
        and (r.src_ip is None or _ip_ok(r.src_ip))
        and (r.dst_ip is None or _ip_ok(r.dst_ip))
    )


def _valid(r: Record) -> bool:
    """Whether a decoded record meets what its types do not say; normalises it in place."""
    if r.v is not None and r.v != 1:
        return False
    if not 0 < len(r.event_id) <= 128 or not _platform_ok(r.platform):
        return False
    ts = r.ts
    if type(ts) is int:
        if not 0 <= ts < TS_MAX:
            return False
    else:
        parsed = parse_ts(ts)
        if parsed is None:
            return False
        r.ts = parsed
    if isinstance(r, Egress):  # not type(r): the lenient twins are subclasses
        return (
            0 <= r.bytes <= _INT_MAX
            and (r.dst_port is None or 0 <= r.dst_port <= 65535)
            and _text_ok(r.dst_host)
            and _flow_ok(r)
        )
    if isinstance(r, ApiCall):
        if r.subject_ids is None:
            r.subject_ids = ()
        elif len(r.subject_ids) > MAX_SUBJECT_IDS or not all(r.subject_ids):
            return False
        if r.stores is None:
            r.stores = False
        return (
            0 < len(r.operation) <= MAX_TEXT
            and 0 < len(r.endpoint) <= MAX_TEXT
            and (r.status is None or _INT_MIN <= r.status <= _INT_MAX)
            and (r.legal_basis is None or r.legal_basis in LEGAL_BASES)
            and _flow_ok(r)
        )
    if not isinstance(r, Consent):
        return False
    if r.countries is None:
        r.countries = ("*",)
    elif not r.countries or not all(c == "*" or c in ISO_ALPHA2 for c in r.countries):
        return False
    return 0 < len(r.subject_id) <= MAX_TEXT and r.scope == "overseas_transfer"


def _skipped_ok(raw: bytes) -> bool:
    """Whether text msgspec skipped as an unknown value is valid to the reference too."""
    if not raw.isascii():
        try:
            raw.decode()
        except UnicodeDecodeError:
            return False
    return _HUGE.search(raw) is None


def _loose(raw: bytes) -> Record | str:
    """A record the strict decoder refused, perhaps for unknown fields only."""
    try:
        loose = _LOOSE.decode(raw)
    except _FAILED:
        return check_record(raw)
    if not (_skipped_ok(raw) and _valid(loose)):
        return check_record(raw)
    canonical: Record = _CANONICAL[type(loose)](**msgspec.structs.asdict(loose))
    return canonical


def check(raw: bytes) -> Record | str:
    """One record's text (stripped): the Record, or the reason code refusing it."""
    if len(raw) <= MAX_RECORD_BYTES:
        try:
            record: Record = _ONE.decode(raw)
        except _FAILED:
            return _loose(raw)
        if _valid(record):
            return record
    return check_record(raw)


def _shaped(raw: bytes) -> bool:
    return raw[:1] == b"{" and raw[-1:] == b"}" and len(raw) <= MAX_RECORD_BYTES


def decode_many(raws: Sequence[bytes]) -> list[Record | str]:
    """Each record text (stripped, not blank, no newline) as a Record or a reason, in order."""
    out: list[Record | str] = []
    chunk: list[bytes] = []
    for raw in raws:
        if _shaped(raw):
            chunk.append(raw)
            if len(chunk) == _CHUNK:
                out.extend(_decode_chunk(chunk))
                chunk = []
        else:
            if chunk:
                out.extend(_decode_chunk(chunk))
                chunk = []
            out.append(check(raw))
    if chunk:
        out.extend(_decode_chunk(chunk))
    return out


def _decode_chunk(chunk: list[bytes]) -> list[Record | str]:
    try:
        records = _ONE.decode_lines(b"\n".join(chunk))
    except _FAILED:
        return [check(raw) for raw in chunk]
    if len(records) != len(chunk):
        return [check(raw) for raw in chunk]
    return [
        record if _valid(record) else check_record(raw)
        for record, raw in zip(records, chunk, strict=True)
    ]


def decode_line(raw: bytes, source: Source) -> Record | DeadLetter | None:
    """One line of a JSON Lines file; None for a blank line."""
    stripped = raw.strip(JSON_WHITESPACE)
    if not stripped:
        return None
    got = check(stripped)
    return DeadLetter(got, source, stripped) if isinstance(got, str) else got


@dataclass
class Decoded:
    """Records of a run of messages, in order, each with where it came from; and dead letters."""

    records: list[Record] = field(default_factory=list)
    sources: list[KafkaSource] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)

    def add(self, got: Record | str, source: KafkaSource, raw: bytes) -> None:
        if isinstance(got, str):
            self.dead_letters.append(DeadLetter(got, source, raw))
        else:
            self.records.append(got)
            self.sources.append(source)


def _indexed(source: KafkaSource, index: int) -> KafkaSource:
    return {**source, "index": index}


def lf_line_ends(text: bytes) -> bytes:
    """`text` with every CRLF and lone CR line end made LF."""
    return text.replace(b"\r\n", b"\n").replace(b"\r", b"\n")


def _lines(raw: bytes) -> list[bytes]:
    parts = lf_line_ends(raw).split(b"\n")
    return [line for line in (part.strip(JSON_WHITESPACE) for part in parts) if line]


def _array(raw: bytes, source: KafkaSource, out: Decoded) -> bool:
    """A JSON array of records; False when `raw` is not one."""
    if len(raw) <= MAX_RECORD_BYTES:
        try:
            records = _MANY.decode(raw)
        except _FAILED:
            records = None
        # Unknown fields or an invalid record: item by item below.
        if records is not None and all(_valid(r) for r in records):
            out.records.extend(records)
            out.sources.extend(_indexed(source, i) for i in range(len(records)))
            return True
    try:
        items = _RAW_ITEMS.decode(raw)
    except _FAILED:
        return False
    for i, item in enumerate(items):
        text = bytes(item)
        out.add(check(text), _indexed(source, i), text)
    return True


def decode_messages(messages: Iterable[tuple[bytes | None, KafkaSource]]) -> Decoded:
    """Kafka message values: each one record, a JSON array of records, or JSON Lines.

    Every record (or dead letter) comes with its own source: records of a
    batch carry `index`, their 0-based position in the batch. One-record
    messages are decoded together, many at a time.
    """
    out = Decoded()
    # One-record messages wait here to be decoded together, keeping their order.
    single: list[bytes] = []
    single_at: list[KafkaSource] = []

    def flush() -> None:
        for got, at, raw in zip(decode_many(single), single_at, single, strict=True):
            out.add(got, at, raw)
        single.clear()
        single_at.clear()

    for value, source in messages:
        raw = (value or b"").strip(JSON_WHITESPACE)
        if raw[:1] == b"{" and _one_line(raw):
            single.append(raw)
            single_at.append(source)
            continue
        if single:
            flush()
        _message(raw, source, out)
    if single:
        flush()
    return out


def _one_line(raw: bytes) -> bool:
    return b"\n" not in raw and b"\r" not in raw


def _message(raw: bytes, source: KafkaSource, out: Decoded) -> None:
    if _one_line(raw):
        if raw[:1] == b"[":
            if not _array(raw, source, out):
                out.add("invalid_json", source, raw)
            return
        out.add(check(raw) if raw else "invalid_json", source, raw)
        return
    lines = _lines(raw)
    if len(lines) >= 2 and all(_shaped(line) for line in lines):
        for i, (got, line) in enumerate(zip(decode_many(lines), lines, strict=True)):
            out.add(got, _indexed(source, i), line)
        return
    # Pretty-printed JSON, or JSON Lines with odd lines: the reference decides which.
    try:
        whole = orjson.loads(raw)
    except orjson.JSONDecodeError:
        for i, line in enumerate(lines):
            out.add(check(line), _indexed(source, i), line)
        return
    if isinstance(whole, list):
        if not _array(raw, source, out):
            for i, item in enumerate(whole):
                text = orjson.dumps(item)
                out.add(check_record(text, item), _indexed(source, i), text)
        return
    out.add(check_record(raw, whole), source, raw)


def decode_message(
    value: bytes | None, source: KafkaSource
) -> Iterator[tuple[Record | DeadLetter, KafkaSource]]:
    """One Kafka message value, record by record (or dead letter), each with its source."""
    decoded = decode_messages([(value, source)])
    both: list[tuple[Record | DeadLetter, KafkaSource]] = [
        *zip(decoded.records, decoded.sources, strict=True),
        # Made by decode_messages from Kafka sources, as the records' are.
        *((letter, cast(KafkaSource, letter.source)) for letter in decoded.dead_letters),
    ]
    yield from sorted(both, key=lambda pair: int(pair[1].get("index", 0)))
