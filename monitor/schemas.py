"""Telemetry contract v1: parse and validate records, or say exactly why not.

Every function here is pure. A message value (Kafka) or a line (file) becomes
`Record`s and `DeadLetter`s; nothing raises on bad input. Checks run in the
order the contract fixes (size, JSON, object, kind, v, then each field in the
order of the contract's tables) and the first failure is the reason.

Decisions where the contract is silent:
- an optional field whose value is JSON `null` counts as absent (producers
  serialise missing values both ways);
- a required field set to `null` is `missing_field:<name>`;
- a `kind` that is present but not one of the three kinds (including a
  non-string) is `unknown_kind`; a missing `kind` is `missing_field:kind`;
- country codes must be upper-case, assigned ISO 3166-1 alpha-2 codes;
- blank lines of a file or of a JSON Lines batch are not records and are
  skipped (they carry nothing that could be lost).
"""

from __future__ import annotations

import base64
import re
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final

import orjson

from monitor.countries import ISO_ALPHA2

__all__ = [
    "KINDS",
    "LEGAL_BASES",
    "MAX_RECORD_BYTES",
    "DeadLetter",
    "Record",
    "Source",
    "dead_letter_json",
    "decode_line",
    "decode_message",
    "parse_record",
    "parse_ts",
]

MAX_RECORD_BYTES: Final = 1024 * 1024
KINDS: Final = frozenset({"egress", "api_call", "consent"})
LEGAL_BASES: Final = frozenset({"consent", "contract", "certification", "adequacy", "law", "none"})
MAX_SUBJECT_IDS: Final = 1000

# Where a record came from: {"topic", "partition", "offset"[, "index"]} or
# {"file", "line"}. Kept as a plain dict because it is copied verbatim into
# dead letters, evidence and state tables.
Source = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Record:
    """A valid telemetry record. Fields a kind does not have are None."""

    kind: str
    event_id: str
    ts: int  # event time, epoch milliseconds UTC
    platform: str
    service: str | None = None
    # egress and api_call
    src_ip: str | None = None
    dst_ip: str | None = None
    bytes: int | None = None
    dst_port: int | None = None
    protocol: str | None = None
    dst_host: str | None = None
    src_country: str | None = None
    subject_region: str | None = None
    data_categories: tuple[str, ...] = ()
    records: int | None = None
    dataset_id: str | None = None
    # api_call
    operation: str | None = None
    endpoint: str | None = None
    method: str | None = None
    status: int | None = None
    recipient: str | None = None
    subject_ids: tuple[str, ...] = ()
    purpose: str | None = None
    legal_basis: str | None = None
    stores: bool = False
    # consent
    subject_id: str | None = None
    scope: str | None = None
    granted: bool | None = None
    countries: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DeadLetter:
    reason: str
    source: Source
    raw: bytes


# A dead letter must fit in one Kafka message (1 MB by default), so raw bytes
# beyond this are cut; `source` still locates the whole original record.
MAX_DEAD_LETTER_RAW: Final = 256 * 1024


def dead_letter_json(dl: DeadLetter, received_at: str) -> dict[str, Any]:
    """The dead-letter object of the contract; raw text, or base64 when not UTF-8."""
    out: dict[str, Any] = {"reason": dl.reason, "source": dl.source}
    raw = dl.raw
    if len(raw) > MAX_DEAD_LETTER_RAW:
        raw = raw[:MAX_DEAD_LETTER_RAW]
        out["raw_truncated"] = True
        out["raw_size"] = len(dl.raw)
    # A cut may fall inside a multi-byte character: drop up to 3 trailing bytes.
    for cut in range(4 if "raw_truncated" in out else 1):
        try:
            out["raw"] = raw[: len(raw) - cut].decode("utf-8")
            break
        except UnicodeDecodeError:
            continue
    else:
        out["raw_base64"] = base64.b64encode(raw).decode("ascii")
    out["received_at"] = received_at
    return out


class _Invalid(Exception):
    """Internal: carries a reason code out of the field checks."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


# --- field checkers -----------------------------------------------------------

_PLATFORM = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
_LABEL = re.compile(r"[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*")
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})"
)
# Epoch milliseconds accepted: 1970-01-01 up to the end of year 9999.
_TS_MAX: Final = 253_402_300_800_000


_MONTH_DAYS: Final = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def parse_ts(value: Any) -> int | None:
    """RFC 3339 with offset, or integer epoch milliseconds -> epoch ms; None if invalid."""
    if type(value) is int:
        return value if 0 <= value < _TS_MAX else None
    if not isinstance(value, str):
        return None
    m = _RFC3339.fullmatch(value)
    if m is None:
        return None
    year, month, day, hour, minute, second, frac, off = m.groups()
    y, mo, d = int(year), int(month), int(day)
    h, mi, sec = int(hour), int(minute), int(second)
    if not 1 <= mo <= 12 or h > 23 or mi > 59 or sec > 60:
        return None
    leap = mo == 2 and y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)
    if not 1 <= d <= _MONTH_DAYS[mo - 1] + leap:
        return None
    offset = 0
    if off not in ("Z", "z"):
        oh, om = int(off[1:3]), int(off[4:6])
        if oh > 23 or om > 59:
            return None
        offset = (oh * 60 + om) * (-60 if off[0] == "-" else 60)
    # RFC 3339 allows a leap second (60); it is counted as the last instant of 59.
    seconds = _days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + min(sec, 59) - offset
    epoch = seconds * 1000 + (int(frac[1:4].ljust(3, "0")) if frac else 0)
    return epoch if 0 <= epoch < _TS_MAX else None


# Each field converter returns the value to keep, or None when it is invalid.
Convert = Callable[[Any], Any]


def _is_int(v: Any) -> Any:
    return v if type(v) is int else None


def _ip(v: Any) -> Any:
    if not isinstance(v, str) or len(v) > 64:
        return None
    # inet_pton is the C parser: an order of magnitude cheaper than ipaddress.
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, v)
        except (OSError, ValueError):
            continue
        return v
    return None


def _str(v: Any) -> Any:
    return v if isinstance(v, str) else None


def _nonempty_str(v: Any) -> Any:
    return v if isinstance(v, str) and 0 < len(v) <= 4096 else None


def _nonneg_int(v: Any) -> Any:
    return v if type(v) is int and v >= 0 else None


def _port(v: Any) -> Any:
    return v if type(v) is int and 0 <= v <= 65535 else None


def _country(v: Any) -> Any:
    return v if isinstance(v, str) and v in ISO_ALPHA2 else None


def _categories(v: Any) -> Any:
    if isinstance(v, list) and all(isinstance(x, str) and _LABEL.fullmatch(x) for x in v):
        return tuple(v)
    return None


def _subject_ids(v: Any) -> Any:
    if (
        isinstance(v, list)
        and len(v) <= MAX_SUBJECT_IDS
        and all(isinstance(x, str) and x for x in v)
    ):
        return tuple(v)
    return None


def _legal_basis(v: Any) -> Any:
    return v if isinstance(v, str) and v in LEGAL_BASES else None


def _bool(v: Any) -> Any:
    return v if type(v) is bool else None


def _consent_countries(v: Any) -> Any:
    if (
        isinstance(v, list)
        and len(v) > 0
        and all(isinstance(x, str) and (x == "*" or x in ISO_ALPHA2) for x in v)
    ):
        return tuple(v)
    return None


def _scope(v: Any) -> Any:
    return v if v == "overseas_transfer" else None


def _event_id(v: Any) -> Any:
    return v if isinstance(v, str) and 1 <= len(v) <= 128 else None


def _platform(v: Any) -> Any:
    return v if isinstance(v, str) and _PLATFORM.fullmatch(v) is not None else None


# (field, required, converter) in the order of the contract's tables.
_COMMON: Final[tuple[tuple[str, bool, Convert], ...]] = (
    ("event_id", True, _event_id),
    ("ts", True, parse_ts),
    ("platform", True, _platform),
    ("service", False, _str),
)
_FIELDS: Final[dict[str, tuple[tuple[str, bool, Convert], ...]]] = {
    "egress": (
        ("src_ip", True, _ip),
        ("dst_ip", True, _ip),
        ("bytes", True, _nonneg_int),
        ("dst_port", False, _port),
        ("protocol", False, _str),
        ("dst_host", False, _nonempty_str),
        ("src_country", False, _country),
        ("subject_region", False, _country),
        ("data_categories", False, _categories),
        ("records", False, _nonneg_int),
        ("dataset_id", False, _nonempty_str),
    ),
    "api_call": (
        ("operation", True, _nonempty_str),
        ("endpoint", True, _nonempty_str),
        ("dst_ip", False, _ip),
        ("src_ip", False, _ip),
        ("src_country", False, _country),
        ("method", False, _str),
        ("status", False, _is_int),
        ("recipient", False, _str),
        ("subject_region", False, _country),
        ("data_categories", False, _categories),
        ("records", False, _nonneg_int),
        ("subject_ids", False, _subject_ids),
        ("dataset_id", False, _nonempty_str),
        ("purpose", False, _str),
        ("legal_basis", False, _legal_basis),
        ("stores", False, _bool),
    ),
    "consent": (
        ("subject_id", True, _nonempty_str),
        ("scope", True, _scope),
        ("granted", True, _bool),
        ("countries", False, _consent_countries),
    ),
}
# Per kind: (field, converter, reason if missing or None, reason if invalid).
_SPECS: Final = {
    kind: tuple(
        (name, convert, f"missing_field:{name}" if required else None, f"invalid_field:{name}")
        for name, required, convert in _COMMON + fields
    )
    for kind, fields in _FIELDS.items()
}


def parse_record(obj: object) -> Record:
    """Validate one decoded JSON value; raise `_Invalid` with the reason code."""
    if not isinstance(obj, dict):
        raise _Invalid("not_an_object")
    kind = obj.get("kind")
    if kind is None:
        raise _Invalid("missing_field:kind")
    if not isinstance(kind, str) or kind not in KINDS:
        raise _Invalid("unknown_kind")
    v = obj.get("v")
    if v is not None and not (type(v) is int and v == 1):
        raise _Invalid("unsupported_version")
    values: dict[str, Any] = {"kind": kind}
    get = obj.get
    for name, convert, missing, invalid in _SPECS[kind]:
        value = get(name)
        if value is None:
            if missing is not None:
                raise _Invalid(missing)
            continue
        value = convert(value)
        if value is None:
            raise _Invalid(invalid)
        values[name] = value
    if kind == "consent" and "countries" not in values:
        values["countries"] = ("*",)
    return Record(**values)


def _one(raw: bytes, source: Source, obj: object | None = None) -> Record | DeadLetter:
    """Validate one record given its raw bytes (and its parsed value, when known)."""
    if len(raw) > MAX_RECORD_BYTES:
        return DeadLetter("too_large", source, raw)
    if obj is None:
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return DeadLetter("invalid_json", source, raw)
    try:
        return parse_record(obj)
    except _Invalid as e:
        return DeadLetter(e.reason, source, raw)


def decode_line(raw: bytes, source: Source) -> Record | DeadLetter | None:
    """One line of a JSON Lines file; None for a blank line."""
    stripped = raw.strip()
    if not stripped:
        return None
    return _one(stripped, source)


def decode_message(
    value: bytes | None, source: Source
) -> Iterator[tuple[Record | DeadLetter, Source]]:
    """A Kafka message value: one record, a JSON array of records, or JSON Lines.

    Yields each record (or dead letter) with its own source: records of a
    batch get `index`, their 0-based position in the batch.
    """
    raw = (value or b"").strip()
    if len(raw) > MAX_RECORD_BYTES and not raw.startswith(b"[") and b"\n" not in raw:
        yield DeadLetter("too_large", source, raw), source
        return
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        if b"\n" not in raw:
            yield DeadLetter("invalid_json", source, raw), source
            return
        index = 0
        for line in raw.split(b"\n"):
            line = line.strip()
            if line:
                at = {**source, "index": index}
                yield _one(line, at), at
                index += 1
        return
    if isinstance(obj, list):
        for index, item in enumerate(obj):
            at = {**source, "index": index}
            yield _one(orjson.dumps(item), at, item), at
        return
    yield _one(raw, source, obj), source
